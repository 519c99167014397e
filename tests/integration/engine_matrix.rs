//! The engine over the fixture matrix (`scripts/make-fixtures`, listed in
//! `build/fixtures/matrix/manifest.tsv`, or `$DOMUIFY_FIXTURES/matrix`): every
//! writable configuration takes a round of operations and must stay
//! `e2fsck -fn` clean with the contents read back by debugfs; every `refuse`
//! image must be refused with its bytes unchanged. Skipped (with a note) when
//! the matrix has not been built.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use domuify::disk::{Access, Disk, Window};
use domuify::ext::{Ext, Timestamp, ROOT_INO};
use domuify::ErrorKind;

use super::engine::{node, run};

fn matrix_dir() -> Option<PathBuf> {
    let base = std::env::var_os("DOMUIFY_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("build/fixtures"));
    let m = base.join("matrix");
    m.join("manifest.tsv").exists().then_some(m)
}

fn window(path: &std::path::Path, offset: u64, access: Access) -> Window<Arc<Disk>> {
    let disk = Arc::new(Disk::open(path, access).unwrap());
    let len = disk_size(path) - offset;
    Window::new(disk, offset, len).unwrap()
}

fn disk_size(path: &std::path::Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn engine_matrix_fixtures() {
    let Some(dir) = matrix_dir() else {
        crate::harness::missing("the fixture matrix is not built (scripts/make-fixtures)");
        return;
    };
    let manifest = fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut done = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, offset, _opts, expected, reason, _] = cols[..] else {
            continue;
        };
        let offset: u64 = offset.parse().unwrap();
        let img = tmp.path().join(name);
        fs::copy(dir.join(name), &img).unwrap();
        let spec = format!("{}?offset={offset}", img.display());
        if expected == "refuse" {
            let before = fs::read(&img).unwrap();
            let e = match Ext::open_read_write(window(&img, offset, Access::ReadWrite)) {
                Ok(_) => panic!("{name}: accepted for writing ({reason})"),
                Err(e) => e,
            };
            assert!(
                matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::Refused),
                "{name}: {e}"
            );
            if let Some(feat) = reason.strip_prefix("feature ") {
                let feat = feat.split_whitespace().next().unwrap_or(feat);
                assert_eq!(e.kind(), ErrorKind::Unsupported, "{name}: {e}");
                assert!(
                    e.message().contains(feat),
                    "{name}: does not name {feat}: {e}"
                );
            } else {
                assert_eq!(e.kind(), ErrorKind::Refused, "{name}: {e}");
            }
            assert!(fs::read(&img).unwrap() == before, "{name}: image changed");
            done += 1;
            continue;
        }
        let mut fs = Ext::open_read_write(window(&img, offset, Access::ReadWrite)).unwrap();
        let n = node(0o644, 1_700_000_000);
        let free = fs.free_space();
        let bs = u64::from(fs.block_size());
        if name.contains("full") {
            let big = vec![1u8; ((free.blocks + 1) * bs) as usize];
            let e = fs
                .create_file(ROOT_INO, b"too-big", &n, &mut &big[..], big.len() as u64)
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NoSpace, "{name}: {e}");
        }
        let d = fs.mkdir(ROOT_INO, b"engine-test", &node(0o755, 1)).unwrap();
        let small = b"hello from the engine\n".repeat(40);
        let f = fs
            .create_file(d, b"small", &n, &mut &small[..], small.len() as u64)
            .unwrap();
        let len = (free.blocks.saturating_sub(200) * bs).min(300_000);
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        fs.create_file(d, b"body", &n, &mut &body[..], len).unwrap();
        fs.replace_contents(f, &mut &b"replaced\n"[..], 9, Timestamp::now())
            .unwrap();
        fs.symlink(d, b"link", b"../etc/fstab", &n).unwrap();
        let sub = fs.mkdir(d, b"sub", &node(0o700, 1)).unwrap();
        fs.create_file(sub, b"gone", &n, &mut &b"x"[..], 1).unwrap();
        if let Ok(big) = fs.resolve(b"/big", true) {
            for i in 0..300 {
                fs.create_file(
                    big,
                    format!("engine-{i:04}").as_bytes(),
                    &n,
                    &mut &b"y"[..],
                    1,
                )
                .unwrap();
            }
        }
        fs.flush().unwrap();
        fs.remove_tree(d, b"sub").unwrap();
        fs.flush().unwrap();
        drop(fs);
        let (rc, out) = run(Command::new("e2fsck").arg("-fn").arg(&spec));
        assert_eq!(rc, 0, "{name}: e2fsck -fn:\n{out}");
        let cat = run(Command::new("debugfs")
            .arg("-R")
            .arg("cat /engine-test/small")
            .arg(&spec))
        .1;
        assert!(cat.contains("replaced\n"), "{name}: {cat}");
        let ls = run(Command::new("debugfs")
            .arg("-R")
            .arg("ls /engine-test")
            .arg(&spec))
        .1;
        assert!(
            ls.contains("body") && ls.contains("link") && !ls.contains("sub"),
            "{name}: {ls}"
        );
        done += 1;
    }
    assert!(done >= 12, "only {done} fixtures");
}
