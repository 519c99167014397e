//! `domuify kernels` and the kernel library, judged by Debian's own tools:
//! Debian 12's real kernel and the initramfs Debian's initramfs-tools built for
//! it (cached by `scripts/debian-kernel`), newc archives made with `cpio -H newc`
//! and every compressor, early-microcode prefix included; file lists against
//! `lsinitramfs`, unpacked sizes against what `unmkinitramfs` extracts,
//! extraction against `debugfs dump`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// A missing prerequisite: a failure under CI, a skip (said on stderr) elsewhere.
pub fn missing(what: &str) -> Option<PathBuf> {
    crate::harness::missing(what);
    None
}

/// The cached Debian kernel directory (vmlinuz-VER, config-VER, initrd.img-VER,
/// modules/VER), built on first use by `scripts/debian-kernel` (root).
pub fn debian() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/debian-kernel");
    let out = run(Command::new("bash").arg(&script));
    if !out.status.success() {
        return missing(&format!(
            "scripts/debian-kernel failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn version(d: &Path) -> String {
    fs::read_to_string(d.join("version"))
        .unwrap()
        .trim()
        .to_string()
}

fn tool_lines(cmd: &mut Command) -> Vec<String> {
    let out = run(cmd);
    // initramfs-tools 0.142 reads on past the last archive of an initramfs
    // without a compressed segment, and cpio then says "premature end of
    // archive" after listing everything: that remark alone is not a failure.
    let err = String::from_utf8_lossy(&out.stderr);
    let quirk = !err.is_empty() && err.lines().all(|l| l == "cpio: premature end of archive");
    assert!(out.status.success() || quirk, "{cmd:?}: {err}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What `lsinitramfs` lists, as a set of names.
fn lsinitramfs(f: &Path) -> BTreeSet<String> {
    tool_lines(Command::new("lsinitramfs").arg(f))
        .into_iter()
        .collect()
}

/// The sum of the sizes of the regular files `unmkinitramfs` extracts (each
/// inode once: hard links share their data).
fn unmkinitramfs_bytes(f: &Path, scratch: &Path) -> u64 {
    let dir = scratch.join("unmk");
    let _ = fs::remove_dir_all(&dir);
    tool_lines(Command::new("unmkinitramfs").arg(f).arg(&dir));
    let lines: BTreeSet<String> = tool_lines(
        Command::new("find")
            .arg(&dir)
            .args(["-type", "f", "-printf", "%i %s\n"]),
    )
    .into_iter()
    .collect();
    lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

fn ours(f: &Path) -> (BTreeSet<String>, domuify::kernel::initramfs::Summary) {
    let mut names = BTreeSet::new();
    let s = domuify::kernel::initramfs::walk(fs::File::open(f).unwrap(), |e| {
        names.insert(String::from_utf8_lossy(e.name).into_owned());
    })
    .unwrap();
    (names, s)
}

fn kernels_json(args: &[&std::ffi::OsStr]) -> (i32, Value) {
    let out = bin()
        .arg("kernels")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (code, v)
}

#[test]
fn debian_kernel_and_initramfs_are_pv_and_pvh_ready() {
    let Some(d) = debian() else { return };
    let t = tempfile::tempdir().unwrap();
    let v = version(&d);
    let initrd = d.join(format!("initrd.img-{v}"));
    let kernel = d.join(format!("vmlinuz-{v}"));
    // config-VER and initrd.img-VER beside the kernel are found by default.
    let (code, j) = kernels_json(
        &[
            kernel.as_os_str(),
            "--modules".as_ref(),
            d.join("modules").join(&v).as_os_str(),
        ]
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            if i == 0 {
                vec!["--kernel".as_ref(), *a]
            } else {
                vec![*a]
            }
        })
        .collect::<Vec<_>>(),
    );
    assert_eq!(code, 0, "{j:#}");
    let k = &j["kernels"][0];
    assert_eq!(k["version"], v.as_str());
    assert_eq!(
        k["verdict"],
        serde_json::json!(["pv-ready", "pvh-ready"]),
        "{k:#}"
    );
    assert_eq!(k["format"], "bzimage");
    assert_eq!(k["config_source"], "config-file");
    let i = &k["initramfs"];
    assert_eq!(i["has_xen_blkfront"], true);
    assert!(!k["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("module tree")));
    // The judges: lsinitramfs's names, unmkinitramfs's bytes.
    let (names, s) = ours(&initrd);
    assert_eq!(names, lsinitramfs(&initrd));
    let unpacked = unmkinitramfs_bytes(&initrd, t.path());
    assert_eq!(i["unpacked_bytes"].as_u64().unwrap(), unpacked);
    assert_eq!(s.unpacked_bytes, unpacked);
    let mods: BTreeSet<&str> = names
        .iter()
        .filter(|n| n.ends_with(".ko"))
        .map(String::as_str)
        .collect();
    let json_mods: BTreeSet<&str> = i["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(json_mods, mods);
    // Memory: Debian 12's initramfs needs more than the seed's 256 MiB.
    let m = k["min_memory_mib"].as_u64().unwrap();
    assert!(m > 256 && m <= 512, "{m}");

    // Without a config file: the image's own Xen ELF notes say PV and PVH.
    let alone = t.path().join(format!("vmlinuz-{v}"));
    fs::copy(&kernel, &alone).unwrap();
    let (code, j) = kernels_json(&[
        "--kernel".as_ref(),
        alone.as_os_str(),
        "--initrd".as_ref(),
        initrd.as_os_str(),
    ]);
    let k = &j["kernels"][0];
    assert_eq!(code, 0, "{k:#}");
    assert!(
        ["ikcfg", "elf-notes"].contains(&k["config_source"].as_str().unwrap()),
        "{k:#}"
    );
    assert_eq!(
        k["verdict"],
        serde_json::json!(["pv-ready", "pvh-ready"]),
        "{k:#}"
    );
}

#[test]
fn debian_kernel_negatives() {
    let Some(d) = debian() else { return };
    let t = tempfile::tempdir().unwrap();
    let v = version(&d);
    let kernel = d.join(format!("vmlinuz-{v}"));
    let config = fs::read_to_string(d.join(format!("config-{v}"))).unwrap();
    let judge = |args: &[&Path]| {
        let mut a: Vec<&std::ffi::OsStr> = vec!["--kernel".as_ref(), kernel.as_os_str()];
        for (flag, p) in ["--kernel-config", "--initrd"].iter().zip(args) {
            a.push(flag.as_ref());
            a.push(p.as_os_str());
        }
        let (code, j) = kernels_json(&a);
        (code, j["kernels"][0].clone())
    };
    let reasons = |k: &Value| k["reasons"].to_string();

    // A config without CONFIG_XEN_PV and CONFIG_XEN_PVH.
    let no_pv = t.path().join("config-nopv");
    fs::write(
        &no_pv,
        config
            .replace("CONFIG_XEN_PV=y", "# CONFIG_XEN_PV is not set")
            .replace("CONFIG_XEN_PVH=y", "# CONFIG_XEN_PVH is not set"),
    )
    .unwrap();
    let initrd = d.join(format!("initrd.img-{v}"));
    let (code, k) = judge(&[&no_pv, &initrd]);
    assert_eq!(
        (code, k["verdict"].clone()),
        (1, serde_json::json!(["not-ready"]))
    );
    assert!(reasons(&k).contains("without Xen guest support"), "{k:#}");

    // blkfront a module, missing from the initramfs (a real newc archive).
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("usr/lib/modules").join(&v).join("kernel/fs")).unwrap();
    fs::write(tree.join("init"), "#!/bin/sh\n").unwrap();
    fs::write(
        tree.join("usr/lib/modules")
            .join(&v)
            .join("kernel/fs/ext4.ko"),
        "x",
    )
    .unwrap();
    let lacking = t.path().join("lacking.img");
    make_cpio(&tree, &lacking, Some(&["zstd", "-q", "-c"]), None);
    let cfg = d.join(format!("config-{v}"));
    let (code, k) = judge(&[&cfg, &lacking]);
    assert_eq!(
        (code, k["verdict"].clone()),
        (1, serde_json::json!(["not-ready"]))
    );
    assert!(reasons(&k).contains("lacks xen-blkfront.ko"), "{k:#}");
    assert_eq!(k["initramfs"]["has_xen_blkfront"], false);

    // Truncated and corrupt initramfs: a clear reason, no panic.
    let real = fs::read(&initrd).unwrap();
    let cut = t.path().join("cut.img");
    fs::write(&cut, &real[..real.len() / 2]).unwrap();
    let bad = t.path().join("bad.img");
    let mut b = real.clone();
    let mid = b.len() / 3;
    for x in &mut b[mid..mid + 4096] {
        *x ^= 0xa5;
    }
    fs::write(&bad, &b).unwrap();
    // A bomb: a cpio entry of 4 GiB - 1 bytes, then more zeros, in zstd frames
    // of 64 MiB each: past the 4 GiB cap, refused.
    let bomb = t.path().join("bomb.img");
    let mut b = zstd::encode_all(
        format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}big\0\0\0",
            1, 0o100_644, 0, 0, 1, 0, u32::MAX, 0, 0, 0, 0, 4, 0
        )
        .as_bytes(),
        3,
    )
    .unwrap();
    let mut zeros = Vec::new();
    zstd::stream::copy_encode(std::io::repeat(0).take(64 << 20), &mut zeros, 3).unwrap();
    for _ in 0..65 {
        b.extend(&zeros);
    }
    fs::write(&bomb, &b).unwrap();
    // Each within 64 MiB of address space (a stricter bound than the RSS).
    let limited = |initrd: &Path| {
        let out = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 65536 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_domuify"))
            .args(["kernels", "--json", "--kernel"])
            .arg(&kernel)
            .arg("--kernel-config")
            .arg(&cfg)
            .arg("--initrd")
            .arg(initrd)
            .output()
            .unwrap();
        let j: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap_or(-1), j["kernels"][0].clone())
    };
    for (f, why) in [
        (&cut, "truncated"),
        (&bad, "zstd segment at offset 0x0"),
        (&bomb, "decompression bomb"),
    ] {
        let (code, k) = limited(f);
        assert_eq!(code, 1, "{k:#}");
        assert_eq!(k["verdict"], serde_json::json!(["not-ready"]));
        assert!(
            reasons(&k).contains("initramfs cannot be unpacked"),
            "{k:#}"
        );
        assert!(reasons(&k).contains(why), "{why}: {k:#}");
        assert!(k["min_memory_mib"].is_null());
    }

    // A kernel that is no kernel.
    let fake = t.path().join("vmlinuz-fake");
    fs::write(&fake, vec![0x42u8; 100_000]).unwrap();
    let (code, j) = kernels_json(&[
        "--kernel".as_ref(),
        fake.as_os_str(),
        "--kernel-config".as_ref(),
        cfg.as_os_str(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(j["kernels"][0]["format"], "unknown");
    assert!(j["kernels"][0]["reasons"]
        .to_string()
        .contains("not a Linux kernel"));
}

/// `find . | cpio -o -H newc` of `tree`, piped through `compress` (none: plain),
/// with `early` (a plain newc archive, padded to 512 bytes) in front.
fn make_cpio(tree: &Path, out: &Path, compress: Option<&[&str]>, early: Option<&Path>) {
    let mut data = Vec::new();
    if let Some(e) = early {
        data = cpio_of(e);
        data.resize(data.len().div_ceil(512) * 512, 0);
    }
    let archive = cpio_of(tree);
    match compress {
        None => data.extend(archive),
        Some(cmd) => {
            let mut c = Command::new(cmd[0]);
            c.args(&cmd[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut child = c.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            let mut stdin = child.stdin.take().unwrap();
            let w = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &archive));
            let o = child.wait_with_output().unwrap();
            w.join().unwrap().unwrap();
            assert!(o.status.success(), "{cmd:?}");
            data.extend(o.stdout);
        }
    }
    fs::write(out, data).unwrap();
}

fn cpio_of(tree: &Path) -> Vec<u8> {
    let out = run(Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet")
        .current_dir(tree));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn newc_archives_with_every_compressor_and_an_early_microcode_prefix() {
    let t = tempfile::tempdir().unwrap();
    for tool in [
        "cpio",
        "lsinitramfs",
        "unmkinitramfs",
        "lz4",
        "xz",
        "zstd",
        "bzip2",
        "gzip",
        "lzma",
        "lzop",
    ] {
        if run(Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}")))
        .status
        .code()
            != Some(0)
        {
            missing(tool);
            return;
        }
    }
    let tree = t.path().join("tree");
    let mods = tree.join("usr/lib/modules/6.1.0-9-amd64/kernel/drivers/block");
    fs::create_dir_all(&mods).unwrap();
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::write(mods.join("xen-blkfront.ko"), vec![1u8; 70_001]).unwrap();
    fs::write(mods.join("loop.ko.xz"), vec![2u8; 333]).unwrap();
    fs::write(tree.join("init"), "#!/bin/sh\nexec /sbin/init\n").unwrap();
    // Over 8 MiB: the lz4 legacy format splits there. Compressible (a 4 KiB
    // random block with a counter), so that xz and bzip2 stay quick.
    let mut x = 0x1234_5678u32;
    let block: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let big: Vec<u8> = (0..(8 << 20) + 4321)
        .map(|i: usize| block[i % 4096] ^ (i / 4096) as u8)
        .collect();
    fs::write(tree.join("bin/busybox"), &big).unwrap();
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).unwrap();
    fs::hard_link(tree.join("init"), tree.join("bin/init-link")).unwrap();
    let early = t.path().join("early");
    fs::create_dir_all(early.join("kernel/x86/microcode")).unwrap();
    fs::write(
        early.join("kernel/x86/microcode/GenuineIntel.bin"),
        vec![9u8; 12_345],
    )
    .unwrap();

    let compressors: &[(&str, Option<&[&str]>)] = &[
        ("none", None),
        ("gzip", Some(&["gzip", "-c", "-n"])),
        ("bzip2", Some(&["bzip2", "-c"])),
        ("xz", Some(&["xz", "-c", "--check=crc32"])),
        ("lzma", Some(&["lzma", "-c"])),
        ("lz4", Some(&["lz4", "-c", "-l"])),
        ("zstd", Some(&["zstd", "-q", "-c", "-T0"])),
        ("lzo", Some(&["lzop", "-c"])),
    ];
    for (name, cmd) in compressors {
        for with_early in [false, true] {
            let f = t.path().join(format!("initrd-{name}-{with_early}"));
            make_cpio(&tree, &f, *cmd, with_early.then_some(early.as_path()));
            let (names, s) = ours(&f);
            assert_eq!(names, lsinitramfs(&f), "{name} early={with_early}");
            assert_eq!(
                s.unpacked_bytes,
                unmkinitramfs_bytes(&f, t.path()),
                "{name} early={with_early}"
            );
            assert!(s.has_xen_blkfront, "{name}");
            assert_eq!(s.modules.len(), 2, "{name}");
            let comps: Vec<&str> = s.segments.iter().map(|g| g.compression.name()).collect();
            let mut want = if with_early { vec!["none"] } else { vec![] };
            if *name != "none" || !with_early {
                want.push(name);
            } else {
                want.push("none");
            }
            assert_eq!(comps, want, "{name} early={with_early}");
        }
    }
}

/// `--modules DIR` finds the block front-end wherever the tree has it: named
/// by `modules.dep` outside kernel/drivers/block, built in by
/// `modules.builtin`, or (no index) found by the walk; absent, it is said.
#[test]
fn modules_finds_blkfront_anywhere_in_the_tree() {
    let Some(d) = debian() else { return };
    let t = tempfile::tempdir().unwrap();
    let v = version(&d);
    let kernel = d.join(format!("vmlinuz-{v}"));
    // (name, files with their text, whether blkfront is there)
    type Tree<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let trees: &[Tree] = &[
        (
            "dkms",
            &[
                (
                    "modules.dep",
                    "kernel/fs/ext4/ext4.ko:
updates/dkms/xen-blkfront.ko.xz:
",
                ),
                ("updates/dkms/xen-blkfront.ko.xz", "m"),
            ],
            true,
        ),
        (
            "builtin",
            &[
                (
                    "modules.dep",
                    "kernel/fs/ext4/ext4.ko:
",
                ),
                (
                    "modules.builtin",
                    "kernel/drivers/block/xen-blkfront.ko
",
                ),
            ],
            true,
        ),
        ("walk", &[("extra/xen-blkfront.ko", "m")], true),
        (
            "absent",
            &[
                (
                    "modules.dep",
                    "kernel/fs/ext4/ext4.ko:
",
                ),
                ("kernel/fs/ext4/ext4.ko", "m"),
            ],
            false,
        ),
    ];
    for (name, files, found) in trees {
        let tree = t.path().join(name).join(&v);
        for (p, text) in *files {
            let p = tree.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let (code, j) = kernels_json(&[
            "--kernel".as_ref(),
            kernel.as_os_str(),
            "--modules".as_ref(),
            tree.as_os_str(),
        ]);
        let k = &j["kernels"][0];
        assert_eq!(code, 0, "{name}: {k:#}");
        let said = k["reasons"].to_string().contains("not in the module tree");
        assert_eq!(said, !found, "{name}: {k:#}");
    }
}

/// Debian's kernel with its xz payload recompressed by `lzop` (what
/// `CONFIG_KERNEL_LZO` builds): the payload is decoded, and says what the xz
/// one says (the Xen facts read from inside the image, no config file).
#[test]
fn a_bzimage_with_an_lzo_payload_reads_as_the_xz_one() {
    let Some(d) = debian() else { return };
    for tool in ["xz", "lzop"] {
        if run(Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}")))
        .status
        .code()
            != Some(0)
        {
            missing(tool);
            return;
        }
    }
    let t = tempfile::tempdir().unwrap();
    let v = version(&d);
    let img = fs::read(d.join(format!("vmlinuz-{v}"))).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(img[at..at + 4].try_into().unwrap()) as usize;
    // The boot protocol's setup header: setup_sects, payload_offset, payload_length.
    let setup_sects = match img[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let off = (setup_sects + 1) * 512 + u32_at(0x248);
    let len = u32_at(0x24c);
    let xz = t.path().join("payload.xz");
    fs::write(&xz, &img[off..off + len]).unwrap();
    let out = run(Command::new("sh")
        .arg("-c")
        .arg("xz -dc --single-stream payload.xz | lzop -c")
        .current_dir(t.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lzo = out.stdout;
    // The build appends the decompressed size; payload_length counts it.
    lzo.extend(&img[off + len - 4..off + len]);
    let mut made = img[..off].to_vec();
    made[0x24c..0x250].copy_from_slice(&(lzo.len() as u32).to_le_bytes());
    made.extend(&lzo);
    let judge = |name: &str, bytes: &[u8]| {
        let k = t.path().join(name).join(format!("vmlinuz-{v}"));
        fs::create_dir_all(k.parent().unwrap()).unwrap();
        fs::write(&k, bytes).unwrap();
        let (code, j) = kernels_json(&["--kernel".as_ref(), k.as_os_str()]);
        (code, j["kernels"][0].clone())
    };
    let (code_xz, xz) = judge("xz", &img);
    let (code, k) = judge("lzo", &made);
    assert_eq!(xz["compression"], "xz");
    assert_eq!(k["compression"], "lzo", "{k:#}");
    assert_eq!(code, code_xz, "{k:#}");
    assert_eq!(k["config_source"], xz["config_source"], "{k:#}");
    assert_ne!(k["config_source"], "none", "{k:#}");
    assert_eq!(k["verdict"], xz["verdict"], "{k:#}");
    assert!(
        !k["reasons"].to_string().contains("cannot decompress"),
        "{k:#}"
    );

    // Cut inside the lzo data: a clear reason, no panic.
    let mut cut = made[..off + lzo.len() / 2].to_vec();
    cut[0x24c..0x250].copy_from_slice(&((lzo.len() / 2) as u32).to_le_bytes());
    let (code, k) = judge("cut", &cut);
    assert_eq!(code, 1, "{k:#}");
    assert!(k["reasons"].to_string().contains("lzo data"), "{k:#}");
}

/// A disk with a separate /boot (partition 1) and root (partition 2) whose
/// fstab names it; /boot holds a kernel, an initrd and hostile entries.
fn boot_disk(t: &Path) -> (PathBuf, u64, u64) {
    let img = t.join("disk.img");
    let f = fs::File::create(&img).unwrap();
    f.set_len(80 << 20).unwrap();
    drop(f);
    let mut c = Command::new("sfdisk");
    c.arg("-q").arg(&img).stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"label: dos\nstart=2048, size=32768, type=83\nstart=34816, type=83\n",
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let boot = t.join("boot");
    let root = t.join("root");
    fs::create_dir_all(&boot).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("lib/modules/6.1.0-9-amd64")).unwrap();
    fs::write(
        root.join("etc/fstab"),
        "/dev/xvda2 / ext4 defaults 0 1\n/dev/xvda1 /boot ext4 defaults 0 2\n",
    )
    .unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let mut x = 7u32;
    let kbytes: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    fs::write(boot.join("vmlinuz-6.1.0-9-amd64"), &kbytes).unwrap();
    fs::write(boot.join("real-initrd"), vec![5u8; 100_000]).unwrap();
    // The initrd is a symlink that climbs out: resolved inside the guest.
    std::os::unix::fs::symlink(
        "../../../../../real-initrd",
        boot.join("initrd.img-6.1.0-9-amd64"),
    )
    .unwrap();
    // A kernel whose file is an absolute symlink to the guest's (not the host's) /etc/passwd.
    std::os::unix::fs::symlink("/etc/passwd", boot.join("vmlinuz-6.2.0-evil")).unwrap();
    for (dir, off, size) in [(&boot, 1u64 << 20, "16M"), (&root, 34816u64 * 512, "40M")] {
        let o = run(Command::new("mke2fs")
            .args(["-F", "-q", "-t", "ext4", "-E"])
            .arg(format!("offset={off}"))
            .arg("-d")
            .arg(dir)
            .arg(&img)
            .arg(size));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    (img, 1 << 20, 34816 * 512)
}

#[test]
fn extract_from_a_separate_boot_partition_never_escapes() {
    let t = tempfile::tempdir().unwrap();
    let (img, boot_off, _root_off) = boot_disk(t.path());
    let before = sha256_file(&img);
    let to = t.path().join("out/kernels");
    let canary = t.path().join("canary");
    fs::write(&canary, "host file").unwrap();

    let ok = bin()
        .args(["kernels"])
        .arg(&img)
        .args(["--extract", "6.1.0-9-amd64", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let k = fs::read(to.join("vmlinuz-6.1.0-9-amd64")).unwrap();
    assert!(k == debugfs_cat(&img, boot_off, "/vmlinuz-6.1.0-9-amd64"));
    let i = fs::read(to.join("initrd.img-6.1.0-9-amd64")).unwrap();
    assert!(i == debugfs_cat(&img, boot_off, "/real-initrd"));
    assert_eq!(
        fs::read_dir(&to).unwrap().count(),
        2,
        "only the two files, no temporary left"
    );
    // An absolute symlink is resolved inside the guest's /boot filesystem
    // (which has no /etc/passwd), never on the host: a clear error, nothing
    // written.
    let evil = bin()
        .arg("kernels")
        .arg(&img)
        .args(["--extract", "6.2.0-evil", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert_eq!(evil.status.code(), Some(1));
    let err = String::from_utf8_lossy(&evil.stderr);
    assert!(
        err.contains("no such file or directory in the guest"),
        "{err}"
    );
    assert!(!to.join("vmlinuz-6.2.0-evil").exists());

    // Identical: kept. Different: refused, untouched; --force replaces.
    let again = bin()
        .arg("kernels")
        .arg(&img)
        .args(["--extract", "6.1.0-9-amd64", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("identical"));
    fs::write(to.join("vmlinuz-6.1.0-9-amd64"), "mine").unwrap();
    let refused = bin()
        .arg("kernels")
        .arg(&img)
        .args(["--extract", "6.1.0-9-amd64", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(
        fs::read_to_string(to.join("vmlinuz-6.1.0-9-amd64")).unwrap(),
        "mine"
    );
    // A host symlink in DIR is replaced, never followed.
    fs::remove_file(to.join("initrd.img-6.1.0-9-amd64")).unwrap();
    std::os::unix::fs::symlink(&canary, to.join("initrd.img-6.1.0-9-amd64")).unwrap();
    let forced = bin()
        .arg("kernels")
        .arg(&img)
        .args(["--extract", "6.1.0-9-amd64", "--force", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(fs::read(to.join("vmlinuz-6.1.0-9-amd64")).unwrap() == k);
    assert!(fs::symlink_metadata(to.join("initrd.img-6.1.0-9-amd64"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read_to_string(&canary).unwrap(), "host file");
    // Read-only on the image; unknown version: clear error.
    let unknown = bin()
        .arg("kernels")
        .arg(&img)
        .args(["--extract", "9.9", "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no kernel 9.9"));
    assert_eq!(sha256_file(&img), before);
}

#[test]
fn kernels_of_a_guest_and_inspect_show_the_verdict() {
    let t = tempfile::tempdir().unwrap();
    let (img, _, _) = boot_disk(t.path());
    // The fake kernels are no kernels: judged not-ready, with the reason.
    let (code, j) = kernels_json(&[img.as_os_str()]);
    assert_eq!(code, 1);
    let ks = j["kernels"].as_array().unwrap();
    assert_eq!(ks.len(), 2);
    assert!(ks
        .iter()
        .all(|k| k["verdict"] == serde_json::json!(["not-ready"])));
    assert!(
        ks[0]["reasons"].to_string().contains("not a Linux kernel"),
        "{j:#}"
    );
    let out = bin()
        .arg("inspect")
        .arg(&img)
        .arg("--json")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let k = &v["systems"][0]["kernels"][0];
    assert_eq!(k["verdict"], serde_json::json!(["not-ready"]), "{k:#}");
    // --part names a partition without a system: a usage error listing them.
    let bad = bin()
        .arg("kernels")
        .arg(&img)
        .args(["--part", "1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("systems: 2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn kernels_help_has_examples() {
    let out = bin().args(["kernels", "--help"]).output().unwrap();
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        h.contains("Examples:")
            && h.contains("--extract")
            && h.contains("Writes: nothing, except with --extract")
    );
}
