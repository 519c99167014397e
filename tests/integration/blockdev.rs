//! Block devices: `inspect` on a read-only loop device gives what it gives on the
//! image file, without changing a byte; a 4096-byte-sector device is read with
//! 4096-byte sectors. Needs root and loop devices (CI has both): under `CI=true`
//! their absence fails the test; elsewhere each test says it was skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::Command as Bin;
use serde_json::Value;

use crate::fixtures::{self, run};

/// A loop device, detached on drop (also when an assertion fails).
pub struct Loop(pub PathBuf);

impl Loop {
    pub fn attach(img: &Path, extra: &[&str]) -> Option<Loop> {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .args(extra)
            .arg(img)
            .output()
            .ok()?;
        if !out.status.success() {
            crate::harness::missing(format!(
                "cannot attach a loop device: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(Loop(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim(),
        )))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn inspect(dev: &Path) -> Value {
    let out = Bin::cargo_bin("domuify")
        .unwrap()
        .args(["inspect", "--json"])
        .arg(dev)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn read_only_block_device_matches_the_image_file() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let before = fixtures::sha256(&img);
    let Some(dev) = Loop::attach(&img, &["-r"]) else {
        return;
    };
    assert_eq!(
        run("blockdev", &["--getro", dev.0.to_str().unwrap()]).trim(),
        "1"
    );
    let on_dev = inspect(&dev.0);
    let on_file = inspect(&img);
    assert_eq!(on_dev["device_kind"], "block-device");
    // Attached without partition scanning, the kernel has no partition nodes: none
    // may be invented. (An image file never has one.)
    for p in on_dev["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(on_file["partitions"].as_array().unwrap())
    {
        assert_eq!(p["device_node"], serde_json::Value::Null);
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        for p in v.as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("device_node");
        }
        v
    };
    assert_eq!(strip(&on_dev["partitions"]), strip(&on_file["partitions"]));
    assert_eq!(on_dev["systems"], on_file["systems"]);
    drop(dev);
    assert_eq!(fixtures::sha256(&img), before);
}

/// Write `script` with sfdisk onto a fresh 64 MiB loop device of 4096-byte
/// sectors (sfdisk on the device itself uses its sectors), then return what
/// inspect reports and sfdisk's own `--json` partitions, each partition checked to
/// agree on number, start and size; `None` where loop devices cannot be had.
fn inspect_4k_device(name: &str, script: &[u8]) -> Option<(Value, Vec<Value>)> {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join(name);
    run("truncate", &["-s", "64M", img.to_str().unwrap()]);
    let dev = Loop::attach(&img, &["-b", "4096"])?;
    let node = dev.0.to_str().unwrap().to_string();
    let mut sfdisk = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel", &node])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(sfdisk.stdin.as_mut().unwrap(), script).unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let v = inspect(&dev.0);
    assert_eq!(v["sector_size"], 4096);
    let sf: Value = serde_json::from_str(&run("sfdisk", &["--json", &node])).unwrap();
    let sector = sf["partitiontable"]["sectorsize"].as_u64().unwrap();
    assert_eq!(sector, 4096);
    let sf_parts = sf["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .clone();
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), sf_parts.len());
    for (ours, theirs) in parts.iter().zip(&sf_parts) {
        let node = theirs["node"].as_str().unwrap();
        let digits = node.len() - node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        assert_eq!(
            ours["number"].as_u64().unwrap().to_string(),
            node[node.len() - digits..]
        );
        assert_eq!(
            ours["start_bytes"].as_u64().unwrap(),
            theirs["start"].as_u64().unwrap() * sector
        );
        assert_eq!(
            ours["size_bytes"].as_u64().unwrap(),
            theirs["size"].as_u64().unwrap() * sector
        );
    }
    Some((v, sf_parts))
}

#[test]
fn gpt_on_4096_byte_sectors() {
    let Some((v, _)) = inspect_4k_device(
        "4k.img",
        b"label: gpt\nstart=256, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data\nstart=4352, size=2048, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n",
    ) else {
        return;
    };
    assert_eq!(v["table"], "gpt");
    assert_eq!(v["partitions"][0]["partlabel"], "data");
}

/// An MBR with an extended partition and logicals on a 4096-byte-sector device:
/// the EBR chain is walked in 4096-byte sectors, as sfdisk and the kernel walk it.
#[test]
fn mbr_with_logicals_on_4096_byte_sectors() {
    let Some((v, sf_parts)) = inspect_4k_device(
        "4k-mbr.img",
        b"label: dos\nlabel-id: 0x4b4b0001\nstart=256, size=2048, type=83\nstart=2560, size=8192, type=5\nstart=2816, size=1024, type=83\nstart=4096, size=1024, type=82\n",
    ) else {
        return;
    };
    assert_eq!(v["table"], "mbr");
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    for (ours, theirs) in parts.iter().zip(&sf_parts) {
        assert_eq!(
            u8::from_str_radix(ours["type"].as_str().unwrap().trim_start_matches("0x"), 16)
                .unwrap(),
            u8::from_str_radix(theirs["type"].as_str().unwrap(), 16).unwrap()
        );
    }
    assert_eq!(parts[2]["slot"], "logical");
    assert_eq!(parts[3]["partuuid"], "4b4b0001-06");
}
