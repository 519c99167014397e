//! Interrupted `convert --apply` (issue 11, proof 3): the real
//! [`domuify::convert::apply`], with the image's writes failing after k of the n
//! a full run issues (below the undo log, as a power loss would:
//! [`domuify::fault::FailAfter`]). For every k (a spread sample with a module
//! tree):
//! - with the undo file: `apply` fails, no host file is written, and
//!   `domuify undo UNDO IMAGE` (the binary) gives back the original image bit for
//!   bit (for k = 0 nothing was written and no undo file is left);
//! - without it (a second copy): `apply` fails, no host file is written,
//!   `e2fsck -fy` then a strict `e2fsck -fn` is clean, and `/etc/fstab` read by
//!   debugfs is the old one or the planned one, byte for byte, never a mix.
//!
//! Cases: the seed disk in partition mode with a split directory (`--root 5
//! --swap 2 --split-to DIR --force`: its kernels are placeholders), the seed in
//! whole-disk mode, and Debian's real module tree (`scripts/debian-modules`,
//! ≈4000 files) into a whole-disk image with `--kernel` and `--modules`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use domuify::convert::{self, ConvertOptions, ConvertPlan, DomuRequest, UndoChoice};
use domuify::disk::{Access, Disk, ReadAt};
use domuify::domu::ConfigOptions;
use domuify::kernel::guest::HostKernel;
use domuify::plan::boot::BootAsk;
use domuify::plan::devmap::{MapOptions, Mode};
use domuify::testing::FailAfter;
use domuify::xlcfg::Format;

use super::fixtures;
use super::harness::{
    assert_fsck_clean, bin, debugfs_cat, make_image, run, sha256_file, ImageSpec,
};

/// Stop points tried with a module tree, per undo setting (each copies up to
/// the whole tree, ≈3 s a point on the project's loaded 2-core machine): the
/// first and last five and an even spread between.
/// `DOMUIFY_CRASH_SAMPLE=N` tries N (up to every point).
const MODULE_SAMPLE: u64 = 20;

fn module_sample() -> u64 {
    std::env::var("DOMUIFY_CRASH_SAMPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MODULE_SAMPLE)
        .max(10)
}

/// A missing prerequisite: a failure under CI, a skip (said on stderr) elsewhere.
fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "prerequisite missing under CI: {what}"
    );
    eprintln!("skipped: {what}");
}

/// One conversion, as the command line would ask for it.
struct Case {
    /// The image every run starts from (never changed).
    base: PathBuf,
    root: u32,
    swap: Option<u32>,
    mode: Mode,
    split: bool,
    /// `--kernel` (else the guest's newest kernel, forced).
    kernel: Option<PathBuf>,
    /// `--modules`.
    modules: Option<PathBuf>,
}

/// Where one run's files go: the image, and the host files the plan names.
struct Run {
    _dir: tempfile::TempDir,
    img: PathBuf,
    out: PathBuf,
    parts: PathBuf,
    undo: PathBuf,
}

impl Case {
    /// A fresh copy of the base image in a new directory.
    fn fresh(&self) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let ok = Command::new("cp")
            .arg("--sparse=always")
            .arg(&self.base)
            .arg(&img)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cp of {}", self.base.display());
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        Run {
            img,
            parts: dir.path().join("parts"),
            undo: dir.path().join("guest.undo"),
            out,
            _dir: dir,
        }
    }

    fn plan(&self, r: &Run, undo: bool) -> ConvertPlan {
        let boot = match &self.kernel {
            Some(k) => BootAsk::Host(HostKernel {
                kernel: k.clone(),
                config: None,
                initrd: None,
                modules: self.modules.clone(),
            }),
            None => BootAsk::Newest,
        };
        let o = ConvertOptions {
            domu: DomuRequest {
                map: MapOptions {
                    mode: Some(self.mode),
                    root: Some(self.root),
                    swap: self.swap,
                    force: true,
                    ..MapOptions::default()
                },
                host_fstab: None,
                boot,
                kernel_dir: None,
                config: ConfigOptions {
                    split_to: self.split.then(|| r.parts.clone()),
                    force: true,
                    ..ConfigOptions::default()
                },
                format: Format::Xl,
            },
            modules: self.modules.clone(),
            out: Some(r.out.join("guest.cfg")),
            undo: if undo {
                UndoChoice::File(r.undo.clone())
            } else {
                UndoChoice::Off
            },
            wait: false,
        };
        convert::plan(&r.img, o).expect("plan")
    }

    /// Byte offset of the guest's filesystem.
    fn root_offset(&self) -> u64 {
        let disk = Arc::new(Disk::open(&self.base, Access::ReadOnly).unwrap());
        let t = domuify::part::read_table(&*disk, disk.logical_sector_size()).unwrap();
        t.locate(Some(self.root), "base", disk.size()).unwrap().0
    }
}

/// No host file was written: the config directory is empty (the kernel is
/// extracted there too), no split directory, and the undo file only if `undo`.
fn assert_no_host_files(r: &Run, what: &str) {
    let left: Vec<_> = std::fs::read_dir(&r.out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{what}: host files written: {left:?}");
    assert!(!r.parts.exists(), "{what}: split directory made");
}

/// `k` for every point when `n <= max`, else the first and last five and an
/// even spread between, `max` in all.
fn stop_points(n: u64, max: u64) -> Vec<u64> {
    if n <= max {
        return (0..n).collect();
    }
    let mut v: Vec<u64> = (0..5).chain(n - 5..n).collect();
    let inner = max - 10;
    for i in 0..inner {
        v.push(5 + (n - 10) * (2 * i + 1) / (2 * inner));
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The writes of an uninterrupted run; checks it converted cleanly. Returns n
/// and the planned fstab.
fn count(case: &Case, undo: bool, off: u64) -> (u64, Vec<u8>, Vec<u8>) {
    let r = case.fresh();
    let plan = case.plan(&r, undo);
    assert!(plan.image_changes, "nothing to write");
    let f = FailAfter::counting();
    convert::apply_with_fault(&plan, None, Some(f.clone())).expect("uninterrupted apply");
    assert_fsck_clean(&r.img, off);
    assert_eq!(debugfs_cat(&r.img, off, "/etc/fstab"), plan.fstab.new);
    assert!(
        plan.fstab.new != plan.fstab.current,
        "the fstab does not change"
    );
    (
        f.writes(),
        plan.fstab.current.clone(),
        plan.fstab.new.clone(),
    )
}

fn crash_case(name: &str, case: &Case, max: u64) {
    let off = case.root_offset();
    let original = sha256_file(&case.base);
    let old_on_disk = debugfs_cat(&case.base, off, "/etc/fstab");

    // With the undo file: `domuify undo` gives the original back.
    let (n, old, new) = count(case, true, off);
    assert_eq!(old, old_on_disk, "the plan's current fstab");
    assert!(n > 2, "{name}: only {n} writes");
    let ks = stop_points(n, max);
    eprintln!(
        "{name}, undo on: {n} image writes; {} stop points",
        ks.len()
    );
    on_two_threads(&ks, |k| {
        let what = format!("{name} undo k={k}/{n}");
        let r = case.fresh();
        let plan = case.plan(&r, true);
        let e = convert::apply_with_fault(&plan, None, Some(FailAfter::new(k)));
        let e = e
            .expect_err(&format!("{what}: apply did not fail"))
            .to_string();
        assert!(
            e.contains("not issued"),
            "{what}: not the injected fault: {e}"
        );
        let undo_left = r.undo.exists();
        assert_eq!(undo_left, k > 0, "{what}: undo file kept: {undo_left}");
        // The error says how to get the image back, or that it is unchanged.
        let says = if undo_left {
            "domuify undo"
        } else {
            "nothing was written"
        };
        assert!(
            e.contains(says),
            "{what}: the error does not say {says:?}: {e}"
        );
        if undo_left {
            undo(&r.undo, &r.img, &what);
            std::fs::remove_file(&r.undo).unwrap();
        }
        assert_no_host_files(&r, &what);
        assert_eq!(sha256_file(&r.img), original, "{what}: not the original");
    });

    // Without: e2fsck repairs to clean, the fstab is the old or the new one.
    let (n, _, _) = count(case, false, off);
    let ks = stop_points(n, max);
    eprintln!(
        "{name}, no undo: {n} image writes; {} stop points",
        ks.len()
    );
    on_two_threads(&ks, |k| {
        let what = format!("{name} no-undo k={k}/{n}");
        let r = case.fresh();
        let plan = case.plan(&r, false);
        let e = convert::apply_with_fault(&plan, None, Some(FailAfter::new(k)));
        let e = e
            .expect_err(&format!("{what}: apply did not fail"))
            .to_string();
        assert!(
            e.contains("not issued"),
            "{what}: not the injected fault: {e}"
        );
        assert_no_host_files(&r, &what);
        let out = run(Command::new("e2fsck")
            .arg("-fy")
            .arg(fixtures::at(&r.img, off)));
        let rc = out.status.code().unwrap_or(-1);
        assert!(
            rc <= 1,
            "{what}: e2fsck -fy exit {rc}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_fsck_clean(&r.img, off);
        let fstab = debugfs_cat(&r.img, off, "/etc/fstab");
        assert!(
            fstab == old || fstab == new,
            "{what}: /etc/fstab is neither the old nor the new one:\n{}",
            String::from_utf8_lossy(&fstab)
        );
    });
}

/// `domuify undo UNDO IMAGE` (the binary), which must succeed. The writer's
/// `flock` belongs to the open file description, and a child another test
/// thread forks while `apply` holds it keeps a copy of the descriptor until it
/// execs: on a loaded machine that can outlast `apply` by a moment, and `undo`
/// then meets the lock. Only that refusal is retried, for up to 10 s.
fn undo(undo: &Path, img: &Path, what: &str) {
    for _ in 0..100 {
        let out = bin().arg("undo").arg(undo).arg(img).output().unwrap();
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is being written by another program"),
            "{what}: domuify undo failed: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what}: domuify undo: the image stayed locked for 10 s");
}

/// Run `f` for every stop point, on two threads (each point is independent:
/// its own copy, its own directory).
fn on_two_threads(ks: &[u64], f: impl Fn(u64) + Sync) {
    std::thread::scope(|s| {
        for half in [0, 1] {
            let f = &f;
            s.spawn(move || {
                for &k in ks.iter().skip(half).step_by(2) {
                    f(k);
                }
            });
        }
    });
}

#[test]
fn convert_crash_seed_partitions_split() {
    let case = Case {
        base: fixtures::image("seed.img"),
        root: 5,
        swap: Some(2),
        mode: Mode::Partitions,
        split: true,
        kernel: None,
        modules: None,
    };
    crash_case("seed, partitions, --split-to", &case, u64::MAX);
}

#[test]
fn convert_crash_seed_whole_disk() {
    let case = Case {
        base: fixtures::image("seed.img"),
        root: 5,
        swap: Some(2),
        mode: Mode::WholeDisk,
        split: false,
        kernel: None,
        modules: None,
    };
    crash_case("seed, whole disk", &case, u64::MAX);
}

/// Debian's module tree (`scripts/debian-modules`, cached).
fn debian_tree() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(Command::new("bash").arg(root.join("scripts/debian-modules")));
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && p.join("kernel").is_dir() {
        return Some(p);
    }
    missing(&format!(
        "Debian's module tree (scripts/debian-modules): {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ));
    None
}

#[test]
fn convert_crash_debian_module_tree() {
    let Some(tree) = debian_tree() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // A whole-disk image whose root has room for the tree (≈400 MB): an MBR
    // disk, one ext4 partition (the host's mke2fs defaults), an /dev/sda fstab.
    let t = tmp.path().join("tree");
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::create_dir_all(t.join("lib/modules")).unwrap();
    std::fs::write(
        t.join("etc/fstab"),
        "/dev/sda1 / ext4 errors=remount-ro 0 1\nproc /proc proc defaults 0 0\n",
    )
    .unwrap();
    std::fs::write(t.join("etc/hostname"), "modguest\n").unwrap();
    let (img, _) = make_image(
        tmp.path(),
        "modules.img",
        Some(&t),
        &ImageSpec {
            mkfs: &["-t", "ext4"],
            fs_size: "600M",
            image_mib: 608,
            partitioned: true,
        },
    );
    let kernel = super::config::kernel_kit(&tmp.path().join("kit"), super::config::READY);
    let case = Case {
        base: img,
        root: 1,
        swap: None,
        mode: Mode::WholeDisk,
        split: false,
        kernel: Some(kernel),
        modules: Some(tree),
    };
    crash_case("Debian module tree, whole disk", &case, module_sample());
}
