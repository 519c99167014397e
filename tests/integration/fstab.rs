//! `domuify fstab` on the fixtures (the seed disk, the GPT disk) in both modes:
//! the fstab read back with debugfs, parsed by libmount (`findmnt --verify
//! --tab-file`: no parse errors), `e2fsck -fn` without a remark, the inode and
//! its xattrs unchanged, dom0's partition bit for bit unchanged, a second run a
//! no-op, `--revert` giving back the original bytes, `--undo` the original image;
//! and bad input (symlinks, a huge fstab, binary garbage, no fstab, a read-only
//! device) refused with the image unchanged.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::blockdev::Loop;
use crate::fixtures;
use crate::harness::{
    assert_fsck_clean, bin, debugfs, debugfs_cat, debugfs_stat, debugfs_w, run, sha256_file,
    stat_field,
};

/// Byte offsets and sizes of the fixtures' partitions (build/fixtures/manifest.tsv).
const SEED_P3: (u64, u64) = (26_214_400, 25_165_824);
const SEED_P5: u64 = 52_428_800;
const GPT_P2: u64 = 68_157_440;

fn fstab(img: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    bin().arg("fstab").arg(img).args(args).assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// sha256 of a byte range of a file.
fn sha256_range(img: &Path, (start, len): (u64, u64)) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(img).unwrap();
    f.seek(SeekFrom::Start(start)).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f.take(len), &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// libmount's judgement of an fstab: `findmnt --verify --tab-file` must report
/// no parse error (sources missing on this host are expected); returns the
/// sources of the entries it read.
fn findmnt_verify(text: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fstab");
    std::fs::write(&path, text).unwrap();
    let out = run(Command::new("findmnt")
        .arg("--verify")
        .arg("--tab-file")
        .arg(&path));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("0 parse errors"), "findmnt --verify:\n{all}");
    let out = run(Command::new("findmnt")
        .args(["--json", "-o", "SOURCE", "--tab-file"])
        .arg(&path));
    let v: Value = serde_json::from_slice(&out.stdout).expect("findmnt JSON");
    v["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn plan_json(img: &Path, args: &[&str]) -> Value {
    let a = fstab(img, &[args, &["--json"]].concat()).success();
    serde_json::from_slice(&a.get_output().stdout).expect("plan JSON")
}

/// The JSON plan has exactly the keys README documents.
fn check_plan_shape(v: &Value) {
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["device_map", "entries", "mode", "mode_reason", "warnings"]
    );
    for e in v["entries"].as_array().unwrap() {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["action", "line", "new", "old", "reason"]);
    }
    for e in v["device_map"].as_array().unwrap() {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["partition", "reason", "vdev"]);
    }
}

fn action(v: &Value, line: u64) -> String {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["line"] == line)
        .unwrap_or_else(|| panic!("no entry for line {line}: {v}"))["action"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The whole cycle on one image: plan, apply, judge, second run, revert, undo.
fn cycle(img: &Path, off: u64, args: &[&str], untouched: Option<(u64, u64)>) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    // An xattr on the fstab, as an SELinux label would be.
    debugfs_w(img, off, "ea_set /etc/fstab user.domuify label-of-fstab\n");
    let original = debugfs_cat(img, off, "/etc/fstab");
    let image_before = sha256_file(img);
    let stat_before = debugfs_stat(img, off, "/etc/fstab");
    let ea_before = debugfs(img, off, "ea_list /etc/fstab");
    let other_before = untouched.map(|r| sha256_range(img, r));
    // The plan alone writes nothing.
    fstab(img, args).success();
    assert_eq!(sha256_file(img), image_before);
    let undo = tmp.path().join("fstab.undo");
    let a = fstab(
        img,
        &[args, &["--apply", "--undo", undo.to_str().unwrap()]].concat(),
    )
    .success();
    assert!(
        stderr(&a).contains("wrote /etc/fstab in place"),
        "{}",
        stderr(&a)
    );
    let new = debugfs_cat(img, off, "/etc/fstab");
    assert_ne!(new, original);
    findmnt_verify(&new);
    assert_fsck_clean(img, off);
    let stat_after = debugfs_stat(img, off, "/etc/fstab");
    for field in ["Inode:", "Mode:", "User:", "Group:"] {
        assert_eq!(
            stat_field(&stat_after, field),
            stat_field(&stat_before, field),
            "{field}"
        );
    }
    assert_eq!(debugfs(img, off, "ea_list /etc/fstab"), ea_before);
    assert_eq!(
        debugfs_cat(img, off, "/etc/fstab.domuify-orig"),
        original,
        "the backup holds the original"
    );
    if let Some(r) = untouched {
        assert_eq!(Some(sha256_range(img, r)), other_before, "dom0's partition");
    }
    // --undo gives back the image bit for bit.
    bin().arg("undo").arg(&undo).arg(img).assert().success();
    assert_eq!(sha256_file(img), image_before, "undo restores the image");
    // Again, without undo; then a second run is a no-op.
    fstab(img, &[args, &["--apply"]].concat()).success();
    assert_eq!(debugfs_cat(img, off, "/etc/fstab"), new);
    let after_first = sha256_file(img);
    let a = fstab(img, &[args, &["--apply"]].concat()).success();
    assert!(stdout(&a).contains("No change"), "{}", stdout(&a));
    assert_eq!(sha256_file(img), after_first);
    // --revert gives back the original bytes.
    fstab(img, &["--revert", "--apply", "--root", &root_of(args)]).success();
    assert_eq!(debugfs_cat(img, off, "/etc/fstab"), original);
    assert_fsck_clean(img, off);
    new
}

fn root_of(args: &[&str]) -> String {
    args.iter()
        .position(|a| *a == "--root")
        .and_then(|i| args.get(i + 1))
        .map_or("2", |r| r)
        .to_string()
}

#[test]
fn seed_partition_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let args = ["--root", "5", "--partitions"];
    let v = plan_json(&img, &args);
    check_plan_shape(&v);
    assert_eq!(v["mode"], "partitions");
    let map: Vec<(u64, &str)> = v["device_map"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["partition"].as_u64().unwrap(),
                e["vdev"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(map, [(2, "xvda2"), (5, "xvda5")]);
    for (line, want) in [
        (2, "keep"),
        (3, "rewrite"),
        (4, "comment"),
        (5, "comment"),
        (6, "rewrite"),
        (7, "comment"),
    ] {
        assert_eq!(action(&v, line), want, "line {line}");
    }
    let new = cycle(&img, SEED_P5, &args, Some(SEED_P3));
    let sources = findmnt_verify(&new);
    assert_eq!(sources, ["proc", "/dev/xvda5", "/dev/xvda2"]);
}

#[test]
fn seed_whole_disk_mode_is_the_default_for_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let v = plan_json(&img, &["--root", "5"]);
    check_plan_shape(&v);
    assert_eq!(v["mode"], "whole-disk");
    assert!(v["mode_reason"].as_str().unwrap().contains("file"));
    let new = cycle(&img, SEED_P5, &["--root", "5"], Some(SEED_P3));
    let sources = findmnt_verify(&new);
    assert_eq!(
        sources,
        [
            "proc",
            "/dev/xvda5",
            "/dev/xvda1",
            "/dev/xvda3",
            "/dev/xvda2"
        ]
    );
}

#[test]
fn gpt_disk_in_both_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("gpt.img", tmp.path());
    let original = debugfs_cat(&img, GPT_P2, "/etc/fstab");
    // The only system is found without --root.
    let whole = plan_json(&img, &[]);
    check_plan_shape(&whole);
    assert_eq!(whole["mode"], "whole-disk");
    let part = plan_json(&img, &["--partitions"]);
    assert_eq!(part["mode"], "partitions");
    // The ESP by PARTUUID: valid on the whole disk, not exported one by one.
    let esp_line = original
        .split(|&b| b == b'\n')
        .position(|l| l.starts_with(b"PARTUUID="))
        .unwrap() as u64
        + 1;
    assert_eq!(action(&whole, esp_line), "keep");
    assert_eq!(action(&part, esp_line), "comment");
    let new = cycle(&img, GPT_P2, &["--partitions"], None);
    let sources = findmnt_verify(&new);
    assert!(sources
        .iter()
        .all(|s| !s.starts_with("PARTUUID=") && s != "/dev/sr0"));
    assert!(sources.contains(&"UUID=c0ffee00-0000-4000-8000-0000000000f2".to_string()));
    let new = cycle(&img, GPT_P2, &[], None);
    let sources = findmnt_verify(&new);
    assert!(sources.iter().any(|s| s.starts_with("PARTUUID=")));
}

#[test]
fn dom0_root_and_swap_are_never_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let host = tmp.path().join("dom0-fstab");
    std::fs::write(&host, debugfs_cat(&img, SEED_P3.0, "/etc/fstab")).unwrap();
    let host = host.to_str().unwrap();
    let before = sha256_file(&img);
    // Whole-disk would export dom0's root (partition 3).
    let a = fstab(&img, &["--root", "5", "--host-fstab", host, "--apply"]).code(1);
    assert!(stderr(&a).contains("dom0's own root"), "{}", stderr(&a));
    // Partition mode: the guest's swap is dom0's swap (hda2 in both fstabs).
    let a = fstab(
        &img,
        &[
            "--root",
            "5",
            "--partitions",
            "--host-fstab",
            host,
            "--apply",
        ],
    )
    .code(1);
    assert!(stderr(&a).contains("dom0's swap"), "{}", stderr(&a));
    assert_eq!(sha256_file(&img), before);
    // Two systems and no --root: a usage error naming both.
    let a = fstab(&img, &[]).code(2);
    assert!(stderr(&a).contains("partition 3") && stderr(&a).contains("partition 5"));
    // --force writes it, and says so.
    let a = fstab(
        &img,
        &[
            "--root",
            "5",
            "--partitions",
            "--host-fstab",
            host,
            "--force",
        ],
    )
    .success();
    assert!(stdout(&a).contains("(forced)"), "{}", stdout(&a));
}

#[test]
fn fstab_symlinks_resolve_inside_the_guest() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let original = debugfs_cat(&img, SEED_P5, "/etc/fstab");
    let real = tmp.path().join("real");
    std::fs::write(&real, &original).unwrap();
    // /etc/fstab -> ../../../../etc/fstab.real: the `..` stop at the guest's root.
    debugfs_w(
        &img,
        SEED_P5,
        &format!(
            "rm /etc/fstab\nwrite {} /etc/fstab.real\nsymlink /etc/fstab ../../../../etc/fstab.real\n",
            real.display()
        ),
    );
    fstab(&img, &["--root", "5", "--partitions", "--apply"]).success();
    let new = debugfs_cat(&img, SEED_P5, "/etc/fstab.real");
    assert!(String::from_utf8_lossy(&new).contains("/dev/xvda5 /"));
    assert_eq!(
        stat_field(&debugfs_stat(&img, SEED_P5, "/etc/fstab"), "Type:"),
        "symlink"
    );
    assert_fsck_clean(&img, SEED_P5);
    // A link to an absolute path the guest does not have (the host has /etc/passwd).
    debugfs_w(
        &img,
        SEED_P5,
        "rm /etc/fstab\nsymlink /etc/fstab /etc/passwd-of-the-host\n",
    );
    let before = sha256_file(&img);
    let a = fstab(&img, &["--root", "5", "--apply"]).failure();
    assert!(stderr(&a).contains("/etc/fstab"), "{}", stderr(&a));
    assert_eq!(sha256_file(&img), before);
}

#[test]
fn bad_fstabs_are_refused_with_the_image_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    // 100 MB (a sparse file): refused by its size, never read whole.
    debugfs_w(&img, SEED_P5, "sif /etc/fstab size 104857600\n");
    let before = sha256_file(&img);
    let start = std::time::Instant::now();
    let a = fstab(&img, &["--root", "5", "--apply"]).code(1);
    assert!(
        stderr(&a).contains("104857600 bytes, more than"),
        "{}",
        stderr(&a)
    );
    assert!(start.elapsed().as_secs() < 5);
    assert_eq!(sha256_file(&img), before);
    // Binary garbage.
    let garbage = tmp.path().join("garbage");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&garbage, bytes).unwrap();
    debugfs_w(
        &img,
        SEED_P5,
        &format!("rm /etc/fstab\nwrite {} /etc/fstab\n", garbage.display()),
    );
    let before = sha256_file(&img);
    let a = fstab(&img, &["--root", "5", "--apply"]).code(1);
    assert!(stderr(&a).contains("binary data"), "{}", stderr(&a));
    assert_eq!(sha256_file(&img), before);
    // No fstab: partition 5 is no longer an installed system.
    debugfs_w(&img, SEED_P5, "rm /etc/fstab\n");
    let before = sha256_file(&img);
    let a = fstab(&img, &["--root", "5", "--apply"]).code(2);
    assert!(
        stderr(&a).contains("holds no installed Linux system"),
        "{}",
        stderr(&a)
    );
    assert_eq!(sha256_file(&img), before);
}

#[test]
fn read_only_device_plans_and_refuses_to_write() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let before = sha256_file(&img);
    let Some(dev) = Loop::attach(&img, &["-r"]) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs loop devices (root) for this test"
        );
        return;
    };
    // A block device: partition mode by default.
    let v = plan_json(&dev.0, &["--root", "5"]);
    assert_eq!(v["mode"], "partitions");
    assert!(v["mode_reason"].as_str().unwrap().contains("block device"));
    let a = fstab(&dev.0, &["--root", "5", "--apply"]).code(1);
    assert!(stderr(&a).contains("cannot open"), "{}", stderr(&a));
    drop(dev);
    assert_eq!(sha256_file(&img), before);
}
