//! One writer at a time (issue 7, class 1): every writing command holds an
//! exclusive lock on the image for its whole run. A second writer is refused at
//! once, naming the holder, or waits with `--wait`; reaching the same file through
//! a symlink, a hard link or `/proc/PID/fd` changes nothing. The holder in these
//! tests is util-linux's `flock(1)`, an independent program; the judges are
//! sha256, `e2fsck -fn` and `debugfs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, bin, debugfs_cat, make_image, sha256_file, ImageSpec};

/// `flock -x -o IMG sleep SECS`, returned once the lock is really held (`-o`:
/// only flock itself holds it, so killing flock releases it).
// The child is handed to the caller, which kills and reaps it.
#[allow(clippy::zombie_processes)]
fn hold(img: &Path, secs: u32) -> Child {
    let mut child = Command::new("flock")
        .args(["-x", "-o"])
        .arg(img)
        .args(["sleep", &secs.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock(1) (util-linux)");
    let start = Instant::now();
    loop {
        let free = Command::new("flock")
            .args(["-n", "-x"])
            .arg(img)
            .arg("true")
            .status()
            .unwrap()
            .success();
        if !free {
            return child;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flock never took the lock");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn image(dir: &Path) -> (PathBuf, u64) {
    make_image(dir, "img", None, &ImageSpec::default())
}

fn write(img: &Path, path: &str, data: &[u8], extra: &[&str]) -> std::process::Output {
    bin()
        .arg("write")
        .args(extra)
        .args(["--part", "1"])
        .arg(img)
        .arg(path)
        .write_stdin(data.to_vec())
        .output()
        .unwrap()
}

#[test]
fn lock_second_writer_is_refused_through_any_path_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, off) = image(tmp.path());
    let link = tmp.path().join("symlink");
    std::os::unix::fs::symlink(&img, &link).unwrap();
    let hard = tmp.path().join("hardlink");
    std::fs::hard_link(&img, &hard).unwrap();
    let before = sha256_file(&img);

    let mut holder = hold(&img, 60);
    // The holder's own descriptor of the image, as another process reaches it.
    let fd = std::fs::read_dir(format!("/proc/{}/fd", holder.id()))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::canonicalize(p).ok() == std::fs::canonicalize(&img).ok())
        .expect("flock holds the image open");
    for path in [&img, &link, &hard, &fd] {
        let out = write(path, "/x", b"hello", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
        assert!(
            err.contains("being written by another program") && err.contains("flock"),
            "{}: the message names the holder: {err}",
            path.display()
        );
        assert_eq!(
            sha256_file(&img),
            before,
            "{}: image changed",
            path.display()
        );
    }
    holder.kill().unwrap();
    holder.wait().unwrap();

    let out = write(&img, "/x", b"hello", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(debugfs_cat(&img, off, "/x"), b"hello");
    harness::assert_fsck_clean(&img, off);
}

#[test]
fn lock_wait_waits_for_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, off) = image(tmp.path());
    let mut holder = hold(&img, 2);
    let out = write(&img, "/waited", b"after the holder", &["--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The write could only finish once the holder had let go.
    assert!(
        holder.try_wait().unwrap().is_some(),
        "--wait returned while the holder still held the lock"
    );
    assert_eq!(debugfs_cat(&img, off, "/waited"), b"after the holder");
    harness::assert_fsck_clean(&img, off);
}

/// Several writers started together on one image: with `--wait` every one of them
/// lands, whole; without it each either lands whole or is refused. Never a lost
/// or mixed file, never an inconsistent filesystem.
#[test]
fn lock_concurrent_writers_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, off) = image(tmp.path());
    let payload = |i: usize| -> Vec<u8> {
        (0..(3 << 20))
            .map(|j: usize| (j.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8)
            .collect()
    };
    for wait in [true, false] {
        let children: Vec<(String, Child)> = (0..4)
            .map(|i| {
                let name = format!("/f-{wait}-{i}");
                let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("domuify"));
                c.arg("write");
                if wait {
                    c.arg("--wait");
                }
                let mut child = c
                    .args(["--part", "1"])
                    .arg(&img)
                    .arg(&name)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = child.stdin.take().unwrap();
                let data = payload(i);
                std::thread::spawn(move || {
                    use std::io::Write;
                    let _ = stdin.write_all(&data);
                });
                (name, child)
            })
            .collect();
        let mut landed = 0;
        for (i, (name, child)) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                landed += 1;
                assert!(
                    debugfs_cat(&img, off, &name) == payload(i),
                    "{name}: contents differ"
                );
            } else {
                assert!(!wait, "{name} failed with --wait: {err}");
                assert!(err.contains("being written by another program"), "{err}");
                let ls =
                    String::from_utf8_lossy(&harness::debugfs(&img, off, "ls -l /")).into_owned();
                assert!(!ls.contains(&name[1..]), "{name} refused but present");
            }
        }
        if wait {
            assert_eq!(landed, 4);
        }
        assert!(landed >= 1);
        harness::assert_fsck_clean(&img, off);
    }
}
