//! Feature names: the one table (e2p's `lib/e2p/feature.c`) as the probe and
//! the engine report it, judged by `dumpe2fs -h` on every ext filesystem of the
//! fixtures (`build/fixtures/manifest.tsv`) and of the engine matrix
//! (`build/fixtures/matrix/manifest.tsv`), refused ones included, and on
//! filesystems with every bit of one feature word set (`dumpe2fs -f`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use domuify::disk::{Access, Disk, Window};
use domuify::ext::Ext;

use super::engine::Img;
use super::harness::{run, spec};

fn fixtures_dir() -> Option<PathBuf> {
    let base = std::env::var_os("DOMUIFY_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("build/fixtures"));
    if base.join("manifest.tsv").exists() {
        return Some(base);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "fixtures not built (scripts/make-fixtures) under CI"
    );
    None
}

/// The `Filesystem features:` of `dumpe2fs -h` (`-f`: also with unknown bits);
/// `None` when dumpe2fs cannot read the superblock (a damaged fixture).
fn dumpe2fs_features(img: &Path, off: u64) -> Option<Vec<String>> {
    let out = run(Command::new("dumpe2fs")
        .arg("-f")
        .arg("-h")
        .arg(spec(img, off)));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Filesystem features:"))?;
    Some(match line.trim() {
        "(none)" => Vec::new(),
        l => l.split_whitespace().map(str::to_string).collect(),
    })
}

/// The filesystem at `off` of `img`, `len` bytes, read-only.
fn window(img: &Path, off: u64, len: u64) -> Window<Arc<Disk>> {
    let disk = Arc::new(Disk::open(img, Access::ReadOnly).unwrap());
    Window::new(disk, off, len).unwrap()
}

/// The probe's names equal dumpe2fs's; so do the engine's when it opens the
/// filesystem. Returns whether the engine opened it.
fn check(img: &Path, off: u64, len: u64, what: &str) -> bool {
    let Some(want) = dumpe2fs_features(img, off) else {
        return false;
    };
    let len = len.min(fs::metadata(img).unwrap().len().saturating_sub(off));
    let info = domuify::probe::probe(&window(img, off, len)).unwrap();
    let ext = info
        .ext
        .unwrap_or_else(|| panic!("{what}: not probed as ext"));
    assert_eq!(ext.features, want, "{what}: probe vs dumpe2fs -h");
    match Ext::open_read_only(window(img, off, len)) {
        Ok(fs) => {
            assert_eq!(fs.feature_names(), want, "{what}: engine vs dumpe2fs -h");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn feature_names_match_dumpe2fs_on_every_fixture() {
    let Some(dir) = fixtures_dir() else {
        crate::harness::missing("the fixtures are not built (scripts/make-fixtures)");
        return;
    };
    let mut seen = 0;
    let mut engine = 0;
    let manifest = fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, _, offset, size, fstype, ..] = cols[..] else {
            continue;
        };
        if !fstype.starts_with("ext") {
            continue;
        }
        let (off, len) = (offset.parse().unwrap(), size.parse().unwrap());
        engine += usize::from(check(&dir.join(name), off, len, &format!("{name}@{off}")));
        seen += 1;
    }
    let manifest = fs::read_to_string(dir.join("matrix/manifest.tsv")).unwrap();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, offset, ..] = cols[..] else {
            continue;
        };
        let img = dir.join("matrix").join(name);
        let off: u64 = offset.parse().unwrap();
        let len = fs::metadata(&img).unwrap().len() - off;
        engine += usize::from(check(&img, off, len, name));
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} ext filesystems in the manifests");
    assert!(engine >= 20, "the engine opened only {engine} of {seen}");
}

#[test]
fn every_bit_of_each_feature_word_is_named_like_dumpe2fs() {
    let base = Img::new(&["-t", "ext4"], None, 16);
    // Every incompat bit but journal_dev (an external journal is not probed as ext).
    for (field, bits) in [
        ("feature_compat", 0xffff_ffffu32),
        ("feature_incompat", !0x8),
        ("feature_ro_compat", 0xffff_ffff),
    ] {
        let img = Img::copy_of(&base);
        img.debugfs_w(&format!("ssv {field} {bits:#x}"));
        let want = dumpe2fs_features(&img.path, super::engine::OFFSET).unwrap();
        assert!(want.len() >= 31, "{field}: {want:?}");
        let info =
            domuify::probe::probe(&window(&img.path, super::engine::OFFSET, img.len)).unwrap();
        assert_eq!(info.ext.unwrap().features, want, "{field}");
    }
}
