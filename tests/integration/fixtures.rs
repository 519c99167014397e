//! Test fixtures: images built by `scripts/make-fixtures` (once per test run, into
//! `build/fixtures`, or `$DOMUIFY_FIXTURES` when set), and helpers that run the
//! independent judges (sfdisk, blkid, dumpe2fs, debugfs, e2fsck).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding the fixtures, built on first use.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("DOMUIFY_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("build/fixtures"));
        let status = Command::new("bash")
            .arg(root.join("scripts/make-fixtures"))
            .arg(&dir)
            .status()
            .expect("run scripts/make-fixtures");
        assert!(status.success(), "scripts/make-fixtures failed");
        dir
    })
}

/// Path of one fixture image.
pub fn image(name: &str) -> PathBuf {
    let p = dir().join(name);
    assert!(p.exists(), "fixture {} is missing", p.display());
    p
}

/// A private copy of a fixture in `tmp`, for tests that change or chmod it.
pub fn copy(name: &str, tmp: &Path) -> PathBuf {
    let dst = tmp.join(name.replace('/', "_"));
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(image(name))
        .arg(&dst)
        .status()
        .expect("cp");
    assert!(status.success());
    dst
}

pub use crate::harness::run_judge as run;

/// `blkid -p -O OFFSET -o export IMG` as key/value pairs (empty when nothing found).
pub fn blkid(img: &Path, offset: u64) -> std::collections::BTreeMap<String, String> {
    let out = Command::new("blkid")
        .args(["-p", "-O", &offset.to_string(), "-o", "export"])
        .arg(img)
        .output()
        .expect("blkid");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `img?offset=N`, the e2fsprogs way to reach a filesystem inside an image.
pub fn at(img: &Path, offset: u64) -> String {
    format!("{}?offset={offset}", img.display())
}

/// sha256 of a file, through the system tool (an independent judge).
pub fn sha256(p: &Path) -> String {
    run("sha256sum", &[p.to_str().expect("utf-8 path")])
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
