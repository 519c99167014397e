//! The domU half of a plan, shared by `config` and `convert`: one read of the
//! image, the device map, the boot kernel judged, the config and its text.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::{Disk, DiskKind};
use crate::domu::{self, BootChoice, ConfigOptions, ConfigPlan};
use crate::error::{Error, Result};
use crate::inspect::Report;
use crate::kernel::guest::GuestFiles;
use crate::plan::boot::{self, BootAsk, BootKernel, BootPlan};
use crate::plan::devmap::{DeviceMap, MapOptions, Mode};
use crate::plan::{self, FstabInputs};
use crate::xlcfg::{self, Format};

/// What the user asked of the domU (the flags `config` and `convert` share).
#[derive(Debug)]
pub struct DomuRequest {
    /// The device map's options.
    pub map: MapOptions,
    /// dom0's fstab (`--host-fstab`): its text and how to name it.
    pub host_fstab: Option<(Vec<u8>, String)>,
    /// What boots.
    pub boot: BootAsk,
    /// Where the guest's kernel is extracted (`--kernel-dir`).
    pub kernel_dir: Option<PathBuf>,
    /// The rest of the config's options (`boot` and `min_memory_mib` are
    /// filled in from the boot plan).
    pub config: ConfigOptions,
    /// xl or xm.
    pub format: Format,
}

/// The domU half of a plan: what `config` needs, and what `convert` builds on.
pub struct DomuPlan {
    /// What was read of the image: the facts and the guest's fstab.
    pub inputs: FstabInputs,
    /// The inspection.
    pub report: Report,
    /// The device map.
    pub map: DeviceMap,
    /// The boot kernel, judged.
    pub boot: BootPlan,
    /// The config.
    pub config: ConfigPlan,
    /// The config as text.
    pub text: String,
    /// The guest's files, when a guest kernel was judged (for extraction).
    pub guest: Option<GuestFiles>,
}

/// The image's absolute path.
fn absolute(p: &Path) -> Result<PathBuf> {
    fs::canonicalize(p).map_err(|e| Error::io(p.display().to_string(), e))
}

/// Plan the domU of the guest on `disk` (opened read-only from `image`).
/// `kernel_dir_default` is where the guest's kernel goes when `req.kernel_dir`
/// is not given (`None`: it must be given).
pub fn plan_domu(
    disk: Arc<Disk>,
    image: &Path,
    mut req: DomuRequest,
    kernel_dir_default: Option<&Path>,
) -> Result<DomuPlan> {
    let (inputs, report) = plan::gather_all(Arc::clone(&disk), req.map.root)?;
    let host = plan::host::for_disk(
        &disk,
        &inputs.facts,
        req.host_fstab
            .as_ref()
            .map(|(t, w)| (t.as_slice(), w.as_str())),
    );
    let split_implies = req.map.mode.is_none() && req.config.split_to.is_some();
    if split_implies {
        req.map.mode = Some(Mode::Partitions);
    }
    let mut map = plan::device_map(&inputs, &host, &req.map)?;
    if split_implies {
        map.mode_reason = "--split-to given: each exported partition is its own file".into();
    }
    let needs_guest = !matches!(req.boot, BootAsk::Host(_));
    let guest = if needs_guest {
        Some(GuestFiles::from_report(
            Arc::clone(&disk),
            &report,
            Some(inputs.root),
        )?)
    } else {
        None
    };
    let ty = req.config.guest_type;
    let force = req.config.force;
    let boot = boot::plan_boot(req.boot, guest.as_ref(), ty, force)?;
    let choice = match &boot.kernel {
        BootKernel::Host { kernel, initrd } => BootChoice::Kernel {
            kernel: kernel.clone(),
            initrd: initrd.clone(),
        },
        BootKernel::Guest { version } => {
            let dir = req
                .kernel_dir
                .clone()
                .or_else(|| kernel_dir_default.map(Path::to_path_buf))
                .ok_or_else(|| {
                    Error::usage(
                        "the guest's kernel is extracted to --kernel-dir DIR: give it".to_string(),
                    )
                })?;
            BootChoice::GuestKernel {
                version: version.clone(),
                dir,
            }
        }
        BootKernel::Pygrub => BootChoice::Pygrub,
    };
    req.config.boot = Some(choice);
    req.config.min_memory_mib = boot.min_memory_mib;
    let image_abs = absolute(image)?;
    let is_block = disk.kind() == DiskKind::BlockDevice;
    let mut config = domu::plan(&report, &map, &image_abs, is_block, &req.config)?;
    config.findings.extend(boot.findings.iter().cloned());
    // A value the config syntax cannot carry is refused (exit 1), not a usage
    // error: the flags were well formed.
    let text =
        xlcfg::render(&config.config, req.format).map_err(|e| Error::refused(e.to_string()))?;
    Ok(DomuPlan {
        inputs,
        report,
        map,
        boot,
        config,
        text,
        guest,
    })
}
