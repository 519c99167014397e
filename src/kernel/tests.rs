//! The verdict rules, on crafted images in memory.

use std::io::Cursor;

use super::*;

/// A bzImage whose payload is `payload` compressed with zstd.
fn bzimage(payload: &[u8]) -> Vec<u8> {
    let packed = zstd::encode_all(payload, 1).unwrap();
    let mut b = vec![0u8; 5 * 512];
    b[0x1f1] = 4;
    b[0x1fe..0x200].copy_from_slice(&0xAA55u16.to_le_bytes());
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
    b[0x24c..0x250].copy_from_slice(&(packed.len() as u32).to_le_bytes());
    b.extend(packed);
    b
}

fn newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (name, data) in files.iter().chain([&("TRAILER!!!", &b""[..])]) {
        let mode = if *name == "TRAILER!!!" { 0 } else { 0o100644 };
        v.extend(
            format!(
                "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                1, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
            )
            .bytes(),
        );
        v.extend(name.bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend(*data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
    }
    v
}

fn files<'a>(config: Option<&str>, initrd: Option<Vec<u8>>) -> KernelFiles<'a> {
    KernelFiles {
        version: "6.1.0-9-amd64".into(),
        image_path: "/boot/vmlinuz-6.1.0-9-amd64".into(),
        image: Box::new(Cursor::new(bzimage(b"\x7fELF vmlinux"))),
        config: config.map(|c| ("/boot/config-6.1.0-9-amd64".into(), c.as_bytes().to_vec())),
        initrd: initrd.map(|i| {
            (
                "/boot/initrd.img-6.1.0-9-amd64".to_string(),
                Box::new(Cursor::new(i)) as Box<dyn ReadSeek>,
            )
        }),
        module_tree: None,
    }
}

const DEBIAN: &str = "CONFIG_XEN=y\nCONFIG_XEN_PV=y\nCONFIG_XEN_PVH=y\n\
    CONFIG_XEN_BLKDEV_FRONTEND=m\nCONFIG_XEN_NETDEV_FRONTEND=m\nCONFIG_HVC_XEN=y\n";

#[test]
fn debian_like_kernel_with_blkfront_in_its_initramfs_is_ready() {
    let initrd = newc(&[(
        "usr/lib/modules/6.1.0-9-amd64/kernel/drivers/block/xen-blkfront.ko",
        b"m",
    )]);
    let r = judge(files(Some(DEBIAN), Some(initrd)), Depth::Full);
    assert_eq!(r.verdict, vec!["pv-ready", "pvh-ready"], "{:?}", r.reasons);
    assert_eq!(r.config_source, ConfigSource::ConfigFile);
    assert_eq!(r.compression, Some(Compression::Zstd));
    assert!(
        r.reasons.iter().any(|m| m.contains("Xen 4.15")),
        "{:?}",
        r.reasons
    );
    assert_eq!(
        r.min_memory_mib,
        Some(memory::min_memory_mib(
            r.initramfs.as_ref().unwrap().compressed_bytes,
            1
        ))
    );
    assert!(r.initramfs.unwrap().has_xen_blkfront);
}

#[test]
fn blkfront_module_missing_from_the_initramfs_is_not_ready() {
    let initrd = newc(&[("init", b"#!/bin/sh")]);
    let r = judge(files(Some(DEBIAN), Some(initrd)), Depth::Full);
    assert_eq!(r.verdict, vec!["not-ready"]);
    assert!(
        r.reasons[0].contains("lacks xen-blkfront.ko"),
        "{:?}",
        r.reasons
    );
    let none = judge(files(Some(DEBIAN), None), Depth::Full);
    assert_eq!(none.verdict, vec!["not-ready"]);
    assert!(
        none.reasons[0].contains("no initramfs"),
        "{:?}",
        none.reasons
    );
}

#[test]
fn no_xen_pv_no_pvh_is_not_ready_and_pv_only_is_pv_ready() {
    let cfg = "CONFIG_XEN=y\n# CONFIG_XEN_PV is not set\nCONFIG_XEN_BLKDEV_FRONTEND=y\n";
    let r = judge(files(Some(cfg), None), Depth::Full);
    assert_eq!(r.verdict, vec!["not-ready"]);
    assert!(
        r.reasons[0].contains("without Xen guest support"),
        "{:?}",
        r.reasons
    );
    let pv = "CONFIG_XEN_PV=y\nCONFIG_XEN_BLKDEV_FRONTEND=y\nCONFIG_HVC_XEN=y\n";
    let r = judge(files(Some(pv), None), Depth::Full);
    assert_eq!(r.verdict, vec!["pv-ready"], "{:?}", r.reasons);
    assert!(r.reasons.iter().any(|m| m.contains("network front-end")));
}

#[test]
fn a_corrupt_initramfs_is_not_ready_with_its_reason() {
    let mut initrd = newc(&[("init", &[1u8; 5000])]);
    initrd.truncate(3000);
    let r = judge(files(Some(DEBIAN), Some(initrd)), Depth::Full);
    assert_eq!(r.verdict, vec!["not-ready"]);
    assert!(r.reasons[0].contains("truncated"), "{:?}", r.reasons);
    assert_eq!(r.min_memory_mib, None);
}

#[test]
fn no_kernel_is_not_ready() {
    let mut f = files(Some(DEBIAN), None);
    f.image = Box::new(Cursor::new(b"#!/bin/sh\necho I am no kernel\n".to_vec()));
    let r = judge(f, Depth::Full);
    assert_eq!(r.verdict, vec!["not-ready"]);
    assert_eq!(r.format, Format::Unknown);
    assert!(
        r.reasons[0].contains("not a Linux kernel"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn cheap_depth_does_not_walk_the_initramfs() {
    let r = judge(files(Some(DEBIAN), Some(b"garbage".to_vec())), Depth::Cheap);
    assert_eq!(r.verdict, vec!["pv-ready", "pvh-ready"]);
    assert!(r.initramfs.is_none() && r.min_memory_mib.is_none());
    let r = judge(files(None, None), Depth::Cheap);
    assert_eq!(r.verdict, vec!["unknown"]);
}
