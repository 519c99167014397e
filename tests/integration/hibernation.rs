//! Hibernation as a safety state (issue 14): a swap holding a hibernation image,
//! its signature written as the kernel writes it (`kernel/power/swap.c`,
//! `mark_swapfiles`: the original signature and `S1SUSPEND` in the last 20 bytes
//! of the first page, the rest of the page kept). `inspect` reports it (blkid -p
//! judges the type); every writing command on a frozen filesystem refuses with
//! the image unchanged (sha256); `--force` writes and `e2fsck -fn` stays clean.

use std::path::Path;

use serde_json::Value;

use crate::fixtures::{self, blkid};
use crate::harness::{assert_fsck_clean, bin, debugfs_cat, sha256_file};

/// Offset of partition `n` from `inspect --json`.
fn start(v: &Value, n: u64) -> u64 {
    v["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["number"] == n)
        .and_then(|p| p["start_bytes"].as_u64())
        .unwrap_or_else(|| panic!("no partition {n}"))
}

fn inspect(img: &Path) -> (Value, i32) {
    let out = bin()
        .args(["inspect", "--json"])
        .arg(img)
        .output()
        .expect("run");
    let v = serde_json::from_slice(&out.stdout).expect("json");
    (v, out.status.code().expect("exit code"))
}

/// Write the hibernation signature into the swap at byte `off` of `img`.
fn hibernate(img: &Path, off: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .expect("open");
    let mut tail = [0u8; 20];
    tail[..10].copy_from_slice(b"SWAPSPACE2");
    tail[10..19].copy_from_slice(b"S1SUSPEND");
    f.write_all_at(&tail, off + 4096 - 20).expect("sig");
    // swsusp_header->image: the image's first swap page.
    f.write_all_at(&1u64.to_le_bytes(), off + 4096 - 32)
        .expect("image");
}

/// A copy of `fixture` whose partition 2 swap holds a hibernation image.
fn hibernated(fixture: &str, dir: &Path) -> (std::path::PathBuf, Value) {
    let img = fixtures::copy(fixture, dir);
    let (v, _) = inspect(&img);
    hibernate(&img, start(&v, 2));
    let (v, code) = inspect(&img);
    assert_eq!(code, 0, "a hibernation image is a warning, not damage: {v}");
    (img, v)
}

#[test]
fn inspect_reports_a_hibernated_swap_and_what_it_freezes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (img, v) = hibernated("seed.img", dir.path());
    let p2 = start(&v, 2);
    assert_eq!(
        blkid(&img, p2).get("TYPE").map(String::as_str),
        Some("swsuspend")
    );
    let fs = &v["partitions"][1]["filesystem"];
    assert_eq!(fs["type"], "swsuspend");
    assert_eq!(fs["version"], "s1suspend");
    assert_eq!(
        fs["label"].as_str(),
        blkid(&img, p2).get("LABEL").map(String::as_str)
    );
    // Both systems' fstabs name /dev/hda2: both are frozen.
    let h = &v["hibernation"][0];
    assert_eq!(h["swap_partition"], 2);
    assert_eq!(h["systems"], serde_json::json!([3, 5]));
    assert_eq!(h["frozen"], serde_json::json!([3, 5]));
    let w = crate::harness::findings(&v, "warning")[0];
    assert_eq!(w["severity"], "warning");
    assert_eq!(w["where"], "partition 2");
    let text = bin().arg("inspect").arg(&img).output().expect("run");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("hibernation image") && text.contains("shut it down"),
        "{text}"
    );
}

#[test]
fn every_writing_command_refuses_a_frozen_filesystem_and_force_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (img, v) = hibernated("seed-2logicals.img", dir.path());
    let host = dir.path().join("host.txt");
    std::fs::write(&host, "from the host\n").expect("host file");
    let before = sha256_file(&img);
    let i = img.display().to_string();
    let h = host.display().to_string();
    for part in ["5", "3"] {
        let cmds: [Vec<&str>; 4] = [
            vec!["write", &i, "--part", part, "/etc/motd"],
            vec!["copy-in", &i, "--part", part, &h, "/root"],
            vec!["mkdir", &i, "--part", part, "/newdir"],
            vec!["rm", &i, "--part", part, "/etc/hostname"],
        ];
        for args in cmds {
            let out = bin().args(&args).write_stdin("x\n").output().expect("run");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.contains("hibernation image")
                    && err.contains("partition 2")
                    && err.contains("shut it down"),
                "{args:?}: {err}"
            );
            assert_eq!(sha256_file(&img), before, "{args:?} changed the image");
        }
    }
    // Partition 6 is in no fstab of a system that names the swap: not frozen.
    let out = bin()
        .args(["mkdir", &i, "--part", "6", "/free"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_fsck_clean(&img, start(&v, 6));
    // --force writes, and the filesystem stays consistent.
    let out = bin()
        .args(["write", &i, "--part", "5", "/etc/motd", "--force"])
        .write_stdin("forced\n")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p5 = start(&v, 5);
    assert_fsck_clean(&img, p5);
    assert_eq!(debugfs_cat(&img, p5, "/etc/motd"), b"forced\n");
}

#[test]
fn a_swap_no_fstab_names_freezes_every_linux_filesystem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = fixtures::copy("gpt.img", dir.path());
    let (v, _) = inspect(&img);
    let p3 = start(&v, 3);
    // A new swap UUID (as after mkswap elsewhere): the fstab's UUID= no
    // longer names it.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .expect("open");
        f.write_all_at(&[0x77; 16], p3 + 1024 + 0x0C).expect("uuid");
    }
    hibernate(&img, p3);
    let (v, code) = inspect(&img);
    assert_eq!(code, 0);
    let h = &v["hibernation"][0];
    assert_eq!(h["swap_partition"], 3);
    assert_eq!(h["systems"], serde_json::json!([]));
    assert_eq!(h["frozen"], serde_json::json!([2]));
    let before = sha256_file(&img);
    let out = bin()
        .args(["mkdir", &img.display().to_string(), "--part", "2", "/x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no installed system's fstab names it"));
    assert_eq!(sha256_file(&img), before);
}
