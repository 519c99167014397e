//! `domuify config`: every config emitted here is read back by Xen's own parser
//! (libxlutil through `tests/xlcheck/xlcheck.c`, built on first use with
//! `pkg-config xlutil xenlight`), and the values compared with what the parser
//! returned. Split partition files are judged with `cmp` against the image's
//! bytes, the extracted kernel with `debugfs cat`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fixtures;
use crate::harness::{bin, debugfs_cat, run, sha256_file};

const SEED_P5: u64 = 50 << 20;

/// The libxlutil checker, built once; `None` (skipped with a message) when
/// libxen-dev is missing outside CI; under `CI=true` that fails.
pub fn xlcheck() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out_bin = root.join("target/xlcheck");
        let flags =
            run(Command::new("pkg-config").args(["--cflags", "--libs", "xlutil", "xenlight"]));
        let built = flags.status.success() && {
            let f = String::from_utf8_lossy(&flags.stdout).to_string();
            run(Command::new("cc")
                .arg("-Wall")
                .arg(root.join("tests/xlcheck/xlcheck.c"))
                .args(f.split_whitespace())
                .arg("-o")
                .arg(&out_bin))
            .status
            .success()
        };
        if built {
            return Some(out_bin);
        }
        crate::harness::missing(
            "the libxlutil checker cannot be built (libxen-dev missing? scripts/test-deps)",
        );
        None
    })
    .as_deref()
}

/// What Xen's parser read from `cfg` (`key` -> value); panics when it refuses.
pub fn parsed(check: &Path, cfg: &Path) -> BTreeMap<String, String> {
    let out = run(Command::new(check).arg(cfg));
    assert!(
        out.status.success(),
        "libxlutil refused {}:\n{}\n{}",
        cfg.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(cfg).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A kernel of dom0 with its config beside it (`config-VER`): a bzImage setup
/// header (boot protocol 2.15) over a small gzip payload, as the kernel judge
/// reads it; the Xen facts come from the config.
pub fn kernel_kit(dir: &Path, kconfig: &str) -> PathBuf {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let k = dir.join("vmlinuz-6.1.0-test");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0x7f; 4096]).unwrap();
    let packed = gz.finish().unwrap();
    let mut b = vec![0u8; 5 * 512];
    b[0x1f1] = 4;
    b[0x1fe..0x200].copy_from_slice(&0xAA55u16.to_le_bytes());
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
    b[0x24c..0x250].copy_from_slice(&(packed.len() as u32).to_le_bytes());
    b.extend(packed);
    std::fs::write(&k, b).unwrap();
    std::fs::write(dir.join("config-6.1.0-test"), kconfig).unwrap();
    k
}

/// An initramfs that holds nothing: a newc archive of only its trailer.
fn newc_trailer() -> Vec<u8> {
    let name = b"TRAILER!!!\0";
    let mut v = format!(
        "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        name.len(),
        0
    )
    .into_bytes();
    v.extend(name);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.resize(512, 0);
    v
}

/// Xen-ready, with the block front-end built in (no initramfs needed).
pub const READY: &str = "CONFIG_XEN=y\nCONFIG_XEN_PV=y\nCONFIG_XEN_PVH=y\nCONFIG_XEN_BLKDEV_FRONTEND=y\nCONFIG_HVC_XEN=y\n";

/// `cmp` of `len` bytes of `img` at `start` with `file`, and `file` is that long.
pub fn assert_same_bytes(img: &Path, start: u64, len: u64, file: &Path) {
    assert_eq!(std::fs::metadata(file).unwrap().len(), len);
    let out = run(Command::new("cmp")
        .arg(format!("--ignore-initial={start}:0"))
        .arg(format!("--bytes={len}"))
        .arg(img)
        .arg(file));
    assert!(
        out.status.success(),
        "cmp: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn config_seed_partition_mode_split_files() {
    let Some(check) = xlcheck() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let before = sha256_file(&img);
    let k = kernel_kit(&tmp.path().join("kit"), READY);
    let parts = tmp.path().join("parts");
    let cfg = tmp.path().join("seed.cfg");
    bin()
        .args([
            "config",
            s(&img),
            "--root",
            "5",
            "--swap",
            "2",
            "--split-to",
            s(&parts),
        ])
        .args(["--kernel", s(&k), "--out", s(&cfg)])
        .assert()
        .success();
    assert_eq!(sha256_file(&img), before, "config changed the image");
    let p = parsed(check, &cfg);
    assert_eq!(p["name"], "systemdomu");
    assert_eq!(p["root"], "/dev/xvda5 ro");
    assert_eq!(p["extra"], "console=hvc0");
    assert_eq!(p["memory"], "512");
    assert_eq!(p["vcpus"], "1");
    assert_eq!(p["type"], "pv");
    assert_eq!(p["kernel"], s(&k));
    assert_eq!(p["disk.count"], "2");
    assert_eq!(p["vif.count"], "1");
    assert_eq!(p["vif[0]"], "");
    for (i, (n, vdev, start, len)) in [
        (5, "xvda5", 50u64 << 20, 40u64 << 20),
        (2, "xvda2", 17 << 20, 8 << 20),
    ]
    .into_iter()
    .enumerate()
    {
        let file = parts.join(format!("part{n}.img"));
        assert_eq!(p[&format!("disk[{i}].vdev")], vdev);
        assert_eq!(p[&format!("disk[{i}].access")], "rw");
        assert_eq!(p[&format!("disk[{i}].format")], "raw");
        assert_eq!(p[&format!("disk[{i}].target")], s(&file));
        assert_same_bytes(&img, start, len, &file);
    }
    // Holes kept: the guest's partition is mostly free space.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(parts.join("part5.img")).unwrap();
    assert!(
        m.blocks() * 512 < m.len() / 2,
        "part5.img is not sparse: {} of {}",
        m.blocks() * 512,
        m.len()
    );
    // The split file is a filesystem e2fsck finds clean.
    assert_eq!(crate::harness::e2fsck_n(&parts.join("part5.img"), 0).0, 0);

    // Again, the same request: every file is already right; kept, not rewritten.
    let cfg_sum = sha256_file(&cfg);
    let again = |extra: &[&str]| {
        bin()
            .args([
                "config",
                s(&img),
                "--root",
                "5",
                "--swap",
                "2",
                "--split-to",
                s(&parts),
            ])
            .args(["--kernel", s(&k), "--out", s(&cfg)])
            .args(extra)
            .output()
            .unwrap()
    };
    let mtimes = |dir: &Path| -> Vec<std::time::SystemTime> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().modified().unwrap())
            .collect();
        v.sort();
        v
    };
    let before = (
        mtimes(&parts),
        std::fs::metadata(&cfg).unwrap().modified().unwrap(),
    );
    let out = again(&[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (
            mtimes(&parts),
            std::fs::metadata(&cfg).unwrap().modified().unwrap()
        ),
        before
    );
    // A different config over the existing one: refused without --force,
    // nothing rewritten.
    let out = again(&["--memory", "1024"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(sha256_file(&cfg), cfg_sum);

    // The xm form of the seed: Xen's parser reads its legacy disk specs.
    let xm = tmp.path().join("seed.xm");
    bin()
        .args([
            "config",
            s(&img),
            "--root",
            "5",
            "--swap",
            "2",
            "--split-to",
            s(&parts),
            "--force",
        ])
        .args([
            "--kernel",
            s(&k),
            "--format",
            "xm",
            "--vdev-style",
            "hd",
            "--out",
            s(&xm),
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(&xm).unwrap();
    assert!(
        text.contains(&format!(
            "'file:{},hda5,w'",
            parts.join("part5.img").display()
        )),
        "{text}"
    );
    assert!(!text.contains("type"), "{text}");
    let p = parsed(check, &xm);
    assert_eq!(p["root"], "/dev/hda5 ro");
    assert_eq!(p["disk[0].vdev"], "hda5");
    assert_eq!(p["disk[1].vdev"], "hda2");
    assert_eq!(p["disk[1].access"], "rw");
    assert_eq!(p["disk[0].target"], s(&parts.join("part5.img")));
}

#[test]
fn config_gpt_whole_disk_pygrub() {
    let Some(check) = xlcheck() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("gpt.img", tmp.path());
    let cfg = tmp.path().join("gpt.cfg");
    // The fixture's kernel files are placeholders: pygrub's kernels are
    // judged, found not to be kernels, and the config is refused...
    let out = bin()
        .args(["config", s(&img), "--bootloader", "pygrub"])
        .args(["--out", s(&cfg)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no kernel of the guest can boot") && err.contains("not a Linux kernel"),
        "{err}"
    );
    assert!(!cfg.exists());
    // ... unless forced, and then the warning is shown.
    let out = bin()
        .args([
            "config",
            s(&img),
            "--bootloader",
            "pygrub",
            "--memory",
            "1024",
            "--vcpus",
            "2",
            "--force",
        ])
        .args([
            "--bridge",
            "xenbr0",
            "--mac",
            "00:16:3E:12:34:56",
            "--bridge",
            "xenbr1",
        ])
        .args(["--out", s(&cfg)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(--force)"),
        "{out:?}"
    );
    let p = parsed(check, &cfg);
    assert_eq!(p["name"], "bookworm");
    assert_eq!(p["bootloader"], "pygrub");
    assert_eq!(p["memory"], "1024");
    assert_eq!(p["vcpus"], "2");
    assert_eq!(p["disk.count"], "1");
    assert_eq!(p["disk[0].vdev"], "xvda");
    assert_eq!(
        p["disk[0].target"],
        s(&std::fs::canonicalize(&img).unwrap())
    );
    assert!(
        !p.contains_key("root") && !p.contains_key("kernel"),
        "{p:?}"
    );
    assert_eq!(p["vif.count"], "2");
    assert_eq!(p["vif[0].bridge"], "xenbr0");
    assert_eq!(p["vif[0].mac"], "00:16:3e:12:34:56");
    assert_eq!(p["vif[1].bridge"], "xenbr1");
    // --no-network: an empty list, still parsed.
    let cfg2 = tmp.path().join("gpt2.cfg");
    bin()
        .args([
            "config",
            s(&img),
            "--bootloader",
            "pygrub",
            "--no-network",
            "--force",
            "--out",
            s(&cfg2),
        ])
        .assert()
        .success();
    assert_eq!(parsed(check, &cfg2)["vif.count"], "0");
}

#[test]
fn config_strings_round_trip_through_xl() {
    let Some(check) = xlcheck() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("gpt.img", tmp.path());
    // A kit whose path holds quotes, a backslash, a comma and '='.
    let kit = tmp.path().join("k\"it 'a\\b,c=d");
    let k = kernel_kit(&kit, READY);
    let extra = r#"init=/bin/sh "quoted arg" back\slash 'single'"#;
    std::fs::write(kit.join("initrd.img-6.1.0-test"), newc_trailer()).unwrap();
    let parts = tmp.path().join("p,a=rts");
    let cfg = tmp.path().join("rt.cfg");
    bin()
        .args([
            "config",
            s(&img),
            "--partitions",
            "--split-to",
            s(&parts),
            "--kernel",
            s(&k),
        ])
        .args([
            "--initrd",
            s(&kit.join("initrd.img-6.1.0-test")),
            "--extra",
            extra,
        ])
        .args(["--name", "domu-1.test_x", "--out", s(&cfg)])
        .assert()
        .success();
    let p = parsed(check, &cfg);
    assert_eq!(p["kernel"], s(&k));
    assert_eq!(p["ramdisk"], s(&kit.join("initrd.img-6.1.0-test")));
    assert_eq!(p["extra"], format!("console=hvc0 {extra}"));
    assert_eq!(p["name"], "domu-1.test_x");
    assert_eq!(p["disk[0].target"], s(&parts.join("part2.img")));
    assert_eq!(p["root"], "/dev/xvda2 ro");
    // The same in xm form is refused: its disk line cannot carry a comma.
    let out = bin()
        .args([
            "config",
            s(&img),
            "--partitions",
            "--split-to",
            s(&parts),
            "--kernel",
            s(&k),
            "--force",
        ])
        .args(["--format", "xm"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn config_refusals_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let k = kernel_kit(&tmp.path().join("kit"), READY);
    let parts = tmp.path().join("parts");
    let cfg = tmp.path().join("x.cfg");
    let base = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "config",
            s(&img),
            "--root",
            "5",
            "--split-to",
            s(&parts),
            "--kernel",
            s(&k),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v.push("--out".into());
        v.push(s(&cfg).into());
        v
    };
    for (extra, want) in [
        (&["--memory", "0"][..], "memory 0"),
        (&["--vcpus", "0"][..], "vcpus 0"),
        (&["--name", "my domu"][..], "not allowed"),
        (&["--name", "my\"domu"][..], "not allowed"),
        (&["--mac", "00:16:3e:zz:00:01"][..], "MAC"),
        (&["--mac", "03:16:3e:00:00:01"][..], "multicast"),
        (&["--export", "3=xvda5"][..], "cannot share one vdev"),
        (&["--export", "4"][..], "extended"),
        (&["--export", "9"][..], "no partition 9"),
        (&["--whole-disk"][..], "--split-to"),
    ] {
        let out = bin().args(base(extra)).output().unwrap();
        assert_ne!(out.status.code(), Some(0), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(
            !cfg.exists() && !parts.exists(),
            "{extra:?} wrote something"
        );
    }
    // Partition mode on an image file needs --split-to.
    let out = bin()
        .args([
            "config",
            s(&img),
            "--root",
            "5",
            "--partitions",
            "--kernel",
            s(&k),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--split-to"));
    // Two systems and no --root: a usage error naming both.
    let out = bin()
        .args(["config", s(&img), "--kernel", s(&k)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("partition 3") && err.contains("partition 5"),
        "{err}"
    );
    // A kernel without Xen PV: refused, accepted with --force and a warning.
    let bare = kernel_kit(&tmp.path().join("bare"), "CONFIG_XEN_BLKDEV_FRONTEND=y\n");
    let out = bin()
        .args([
            "config",
            s(&img),
            "--root",
            "5",
            "--split-to",
            s(&parts),
            "--kernel",
            s(&bare),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONFIG_XEN_PV"));
    assert!(!parts.exists());
    // PVH asked of a kernel without CONFIG_XEN_PVH.
    let pv_only = kernel_kit(
        &tmp.path().join("pv"),
        "CONFIG_XEN_PV=y\nCONFIG_XEN_BLKDEV_FRONTEND=y\n",
    );
    let out = bin()
        .args([
            "config",
            s(&img),
            "--root",
            "5",
            "--split-to",
            s(&parts),
            "--kernel",
            s(&pv_only),
            "--type",
            "pvh",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONFIG_XEN_PVH"));
    // An existing --out is kept without --force.
    std::fs::write(&cfg, "keep me\n").unwrap();
    let out = bin().args(base(&[])).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "keep me\n");
    assert!(!parts.exists());
}

#[test]
fn config_guest_kernel_extracted() {
    let Some(check) = xlcheck() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let kdir = tmp.path().join("kernels/new");
    let parts = tmp.path().join("parts");
    let cfg = tmp.path().join("g.cfg");
    bin()
        .args(["config", s(&img), "--root", "5", "--split-to", s(&parts)])
        .args([
            "--guest-kernel",
            "2.6.32-5-xen-686",
            "--kernel-dir",
            s(&kdir),
            "--out",
            s(&cfg),
            // The fixture's kernel files are placeholders, not kernels.
            "--force",
        ])
        .assert()
        .success();
    let p = parsed(check, &cfg);
    let kernel = kdir.join("vmlinuz-2.6.32-5-xen-686");
    let initrd = kdir.join("initrd.img-2.6.32-5-xen-686");
    assert_eq!(p["kernel"], s(&kernel));
    assert_eq!(p["ramdisk"], s(&initrd));
    assert_eq!(
        std::fs::read(&kernel).unwrap(),
        debugfs_cat(&img, SEED_P5, "/boot/vmlinuz-2.6.32-5-xen-686")
    );
    assert_eq!(
        std::fs::read(&initrd).unwrap(),
        debugfs_cat(&img, SEED_P5, "/boot/initrd.img-2.6.32-5-xen-686")
    );
}

#[test]
fn config_help_has_examples() {
    for cmd in ["config", "modules"] {
        let out = bin().args([cmd, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples"), "{cmd}: {text}");
        assert!(
            text.trim_end()
                .lines()
                .last()
                .unwrap()
                .contains(&format!("domuify {cmd} ")),
            "{text}"
        );
    }
}

// The kernels of this project's machines (CI's included) make no partition
// nodes for loop devices (`losetup -P` creates no loopNpM), so this cannot run
// there: ignored, not skipped, and run with `--ignored` on a machine that has them.
#[test]
#[ignore = "needs loop partition nodes (losetup -P), which this project's machines lack"]
fn config_block_device_partition_nodes() {
    let Some(check) = xlcheck() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let Some(dev) = crate::blockdev::Loop::attach(&img, &["-P", "-r"]) else {
        return;
    };
    let name = dev.0.file_name().unwrap().to_str().unwrap().to_string();
    if !Path::new(&format!("/dev/{name}p5")).exists() {
        // Without partition scanning (some containers) the kernel makes no node.
        crate::harness::missing(format!("losetup -P made no /dev/{name}p5"));
        return;
    }
    let k = kernel_kit(&tmp.path().join("kit"), READY);
    let cfg = tmp.path().join("blk.cfg");
    // A block device: partition mode by default, each disk its partition's node.
    bin()
        .args([
            "config",
            s(&dev.0),
            "--root",
            "5",
            "--kernel",
            s(&k),
            "--out",
            s(&cfg),
        ])
        .assert()
        .success();
    let p = parsed(check, &cfg);
    let node = |n: u32| format!("{}p{n}", dev.0.display());
    assert_eq!(p["disk.count"], "2");
    assert_eq!(p["disk[0].target"], node(5));
    assert_eq!(p["disk[0].vdev"], "xvda5");
    assert_eq!(p["disk[1].target"], node(2));
    assert_eq!(p["disk[1].vdev"], "xvda2");
    assert_eq!(p["root"], "/dev/xvda5 ro");
}

/// The memory comes from the kernel's judgement: Debian's real kernel kit
/// (its initramfs walked as `kernels` does) gives the least memory; the default
/// is the larger of 512 and that; less is refused without --force, accepted with
/// it and a warning. dom0's swap named by --host-fstab is refused as in `fstab`.
#[test]
fn config_memory_from_the_initramfs_and_host_fstab() {
    let Some(check) = xlcheck() else { return };
    let Some(kit) = crate::kernels::debian() else {
        return;
    };
    let ver = std::fs::read_to_string(kit.join("version"))
        .unwrap()
        .trim()
        .to_string();
    let kernel = kit.join(format!("vmlinuz-{ver}"));
    let kj = bin()
        .args(["kernels", "--kernel", s(&kernel), "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&kj.stdout).unwrap();
    let min = v["kernels"][0]["min_memory_mib"].as_u64().unwrap();
    assert!(min > 256, "{min}");
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    let parts = tmp.path().join("parts");
    let cfg = tmp.path().join("m.cfg");
    let base = |extra: &[&str]| {
        let mut c = bin();
        c.args([
            "config",
            s(&img),
            "--root",
            "5",
            "--swap",
            "2",
            "--split-to",
        ])
        .arg(&parts)
        .args(["--kernel", s(&kernel)])
        .args(extra);
        c
    };
    base(&["--out", s(&cfg)]).assert().success();
    let p = parsed(check, &cfg);
    assert_eq!(p["memory"], min.max(512).to_string());
    assert_eq!(p["ramdisk"], s(&kit.join(format!("initrd.img-{ver}"))));
    let out = base(&["--memory", "256", "--out", s(&tmp.path().join("low.cfg"))])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("at least {min} MiB")), "{err}");
    assert!(!tmp.path().join("low.cfg").exists());
    let low = tmp.path().join("low2.cfg");
    let out = base(&["--memory", "256", "--force", "--out", s(&low)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("below"),
        "{out:?}"
    );
    assert_eq!(parsed(check, &low)["memory"], "256");
    // dom0's fstab names partition 2 as its swap: refused (the guest's swap).
    let host = tmp.path().join("dom0.fstab");
    std::fs::write(
        &host,
        "/dev/sda3 / ext3 defaults 0 1\n/dev/sda2 none swap sw 0 0\n",
    )
    .unwrap();
    let out = base(&[
        "--host-fstab",
        s(&host),
        "--out",
        s(&tmp.path().join("h.cfg")),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dom0's swap"),
        "{out:?}"
    );
    assert!(!tmp.path().join("h.cfg").exists());
}
