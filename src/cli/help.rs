//! The text at the end of every command's `--help` (and of its man page): what
//! the command reads, what it may write, and two or three real examples on the
//! sample disk.
//!
//! The convention, for every new command: a `Reads:` line, a `Writes:` line, then
//! `Examples:` with a `# what it does` line before each `$ command` line. The
//! examples use `seed.img` (made by `bash scripts/sample-image seed.img`: partition
//! 1 NTFS, 2 swap, 3 dom0's ext3 root, 4 extended, 5 the guest's ext3 root) and
//! must run as written, in order, in a directory holding it: the integration
//! test `help_examples_run` runs every `$` line of every command.

/// The end of `domuify --help`.
pub const DOMUIFY: &str = "\
Reads: the image or block device named; only the file commands and `modules --apply` write the image, and only the partition named.

Examples:
  # The sample disk (`bash scripts/sample-image seed.img` in a checkout makes it; partition 5 is the guest)
  $ domuify inspect seed.img
  # Every command's own examples
  $ domuify inspect --help";

/// The end of `domuify inspect --help`.
pub const INSPECT: &str = "\
Reads: every IMAGE, opened read-only (O_RDONLY, and O_NOATIME when allowed); with --hash, every byte once.
Writes: nothing: an image's bytes and mtime are unchanged. Exit code 1 when an image is damaged, unreadable or holds nothing recognised.

Examples:
  # The sample disk: NTFS (1), swap (2), dom0's ext3 root (3), the guest's ext3 root (5)
  $ domuify inspect seed.img
  # Hashes of the whole disk and of each partition, as sha256sum and md5sum print them
  $ domuify inspect --hash sha256 --hash md5 seed.img
  # Many images for CI: one JSON document per line, in the order given, 4 at a time
  $ domuify inspect --json --jobs 4 *.img > reports.jsonl";

/// The end of `domuify ls --help`.
pub const LS: &str = "\
Reads: the image, read-only: the directory through ext4-view (domuify's engine when ext4-view cannot read it).
Writes: nothing.

Examples:
  # The guest's root directory (partition 5 of the sample disk)
  $ domuify ls seed.img --part 5
  # The guest's /boot in long form: mode, owner, size, mtime
  $ domuify ls seed.img --part 5 -l /boot
  # dom0's /etc, on partition 3
  $ domuify ls seed.img --part 3 /etc";

/// The end of `domuify cat --help`.
pub const CAT: &str = "\
Reads: the image, read-only: one file, its symlinks resolved inside the guest.
Writes: the file's bytes to standard output only.

Examples:
  # The guest's fstab: it still names the physical disk (/dev/hda5, /dev/hda3)
  $ domuify cat seed.img --part 5 /etc/fstab
  # dom0's hostname
  $ domuify cat seed.img --part 3 /etc/hostname";

/// The end of `domuify copy-out --help`.
pub const COPY_OUT: &str = "\
Reads: the image, read-only.
Writes: files and directories under HOST_DIR only (which must exist); hostile names are skipped, symlinks are recreated, never followed.

Examples:
  # The guest's fstab and hostname into ./guest-etc
  $ mkdir -p guest-etc && domuify copy-out seed.img --part 5 /etc/fstab /etc/hostname guest-etc
  # The guest's /boot, kernel, initrd and config, into ./guest
  $ mkdir -p guest && domuify copy-out seed.img --part 5 /boot guest";

/// The end of `domuify write --help`.
pub const WRITE: &str = "\
Reads: standard input, and the image.
Writes: one file of the partition's filesystem, in place (same inode, mode, owner, xattrs); with --undo, the original bytes into FILE first.

Examples:
  # Give the guest an fstab for the domU's disk, keeping an undo file
  $ printf 'proc /proc proc defaults 0 0\\n/dev/xvda5 / ext3 defaults 0 1\\n' | domuify write seed.img --part 5 /etc/fstab --undo seed.undo
  # Rename the guest
  $ echo systemdomu-xen | domuify write seed.img --part 5 /etc/hostname";

/// The end of `domuify copy-in --help`.
pub const COPY_IN: &str = "\
Reads: the host files and trees named, and the image.
Writes: new files and directories in the partition's filesystem (modes, owners, times, symlinks, hard links kept); with --undo, the original bytes into FILE first.

Examples:
  # A host tree into the guest's /etc, with an undo file
  $ mkdir -p conf/xen && echo hvc0 > conf/xen/securetty
  $ domuify copy-in seed.img --part 5 conf/xen /etc --undo seed.undo
  # Take it back: the image is as it was, bit for bit
  $ domuify undo seed.undo seed.img";

/// The end of `domuify mkdir --help`.
pub const MKDIR: &str = "\
Reads: the image.
Writes: new directories in the partition's filesystem (0755, root); with --undo, the original bytes into FILE first.

Examples:
  # A mount point for the domU's second disk
  $ domuify mkdir seed.img --part 5 /media/xvdb
  # A whole path at once, with an undo file
  $ domuify mkdir seed.img --part 5 -p /etc/xen/scripts --undo seed.undo";

/// The end of `domuify rm --help`.
pub const RM: &str = "\
Reads: the image.
Writes: the partition's filesystem (the entries removed, their blocks and inodes freed); with --undo, the original bytes into FILE first.

Examples:
  # The guest's mount point of dom0's root, which the domU will not see
  $ domuify rm seed.img --part 5 -r /media/hda3 --undo seed.undo
  # A symlink is removed, never followed: the guest's /vmlinuz, not its kernel
  $ domuify rm seed.img --part 5 /vmlinuz";

/// The end of `domuify undo --help`.
pub const UNDO: &str = "\
Reads: UNDO_FILE, and the image's size and first MiB (it must be the image the file was recorded on).
Writes: the image: every saved region back in place.

Examples:
  # Change a file, then take the change back
  $ echo test | domuify write seed.img --part 5 /etc/hostname --undo seed.undo
  $ domuify undo seed.undo seed.img";

/// The end of `domuify man --help`.
pub const MAN: &str = "\
Reads: nothing.
Writes: domuify.1 and one domuify-COMMAND.1 per command into DIR (created when missing), replacing pages of those names.

Examples:
  # Install the pages for the current user, then read one
  $ domuify man --out ~/.local/share/man/man1
  $ MANWIDTH=80 man -l ~/.local/share/man/man1/domuify-inspect.1 > /dev/null
  # Into the current directory
  $ domuify man";

/// The end of `domuify completions --help`.
pub const COMPLETIONS: &str = "\
Reads: nothing.
Writes: the completion script to standard output only.

Examples:
  # bash, for the current user (bash-completion loads it on first use)
  $ mkdir -p ~/.local/share/bash-completion/completions && domuify completions bash > ~/.local/share/bash-completion/completions/domuify
  # zsh: a file named _domuify in a directory of $fpath
  $ mkdir -p ~/.zfunc && domuify completions zsh > ~/.zfunc/_domuify
  # fish
  $ mkdir -p ~/.config/fish/completions && domuify completions fish > ~/.config/fish/completions/domuify.fish";

/// The end of `domuify modules --help`.
pub const MODULES: &str = "\
Reads: the host module tree DIR and the guest's root filesystem.
Writes: only with --apply: the guest's /lib/modules/VER (a usrmerge /lib -> usr/lib followed), and with --undo, the original bytes into FILE first. Without --apply, nothing.

Examples:
  # A module tree made on the spot; then the plan: what would be copied, the space it needs
  $ mkdir -p tree/6.1.0-test/kernel/drivers/block && echo x > tree/6.1.0-test/modules.dep
  $ domuify modules seed.img --part 5 --from tree/6.1.0-test
  # Copy it into the guest's /lib/modules/6.1.0-test, with an undo file
  $ domuify modules seed.img --part 5 --from tree/6.1.0-test --apply --undo seed.undo";

/// The end of `domuify config --help`.
pub const CONFIG: &str = "\
Reads: the image (partition table, the guest's fstab, hostname and kernels), read-only; the kernel given with --kernel, its config and initramfs (judged as `domuify kernels` does).
Writes: the config to --out (standard output by default); with --split-to DIR, each exported partition as a sparse file; with --guest-kernel, its kernel and initramfs into --kernel-dir. Never the image.

Examples:
  # The seed's domU: partitions 5 (root) and 2 (swap) split into files, booting the guest's kernel (the sample's kernel files are placeholders: --force writes the config anyway and says so)
  $ domuify config seed.img --root 5 --swap 2 --split-to parts --guest-kernel 2.6.32-5-xen-686 --kernel-dir kernels --force --out systemdomu.cfg
  # The same in the legacy xm form, on standard output
  $ domuify config seed.img --root 5 --split-to parts2 --guest-kernel 2.6.32-5-xen-686 --kernel-dir kernels2 --force --format xm
  # The whole disk as xvda, booted by pygrub
  $ domuify config seed.img --root 5 --bootloader pygrub --force --out whole.cfg";

/// The end of `domuify convert --help`.
pub const CONVERT: &str = "\
Reads: the image read-only while planning (partition table, filesystems, the guest's fstab, hostname, kernels and initramfs, /lib/modules); --kernel's files and --modules DIR; --host-fstab; for a block device of this host, /proc/swaps and /proc/self/mountinfo.
Writes: nothing without --apply. With --apply: the guest's /etc/fstab in place (the old one kept as /etc/fstab.domuify-orig), the module tree of --modules, in one write with an undo file (NAME.undo beside the config unless --undo FILE or --no-undo); then the guest's kernel and initramfs (into --kernel-dir, default beside the config), the split partition files, and the config (default NAME.cfg here). Never overwrites a different file without --force, never an undo file. Exit code 0 done (or nothing to do), 1 refused or failed (nothing written when refused), 2 usage.

Examples:
  # The plan for the seed disk's guest (partition 5, swap 2, each partition its own file); the sample's kernels are placeholders, so --force
  $ domuify convert seed.img --root 5 --swap 2 --split-to parts --force
  # Carry it out: fstab, extracted kernel, split files, config, and seedsys.undo to go back
  $ domuify convert seed.img --root 5 --swap 2 --split-to parts --force --apply --out seedsys.cfg
  # Undo it: the image is bit for bit as before (the host files stay)
  $ domuify undo seedsys.undo seed.img";

/// The end of `domuify fstab --help`.
pub const FSTAB: &str = "\
Reads: the image read-only: the partition table, the filesystems, the guest's /etc/fstab (symlinks resolved inside the guest); with --host-fstab, that file; for a block device of this host, /proc/swaps and /proc/self/mountinfo.
Writes: nothing without --apply. With --apply: the guest's /etc/fstab in place (same inode, mode, owner, xattrs), /etc/fstab.domuify-orig unless --no-backup, and the --undo file.

Examples:
  # The seed disk holds two systems: name the guest (5) and its swap (2); each exported partition becomes its own device
  $ domuify fstab seed.img --root 5 --swap 2 --partitions
  # Write it, keeping an undo file (`domuify undo seed-fstab.undo seed.img` restores the image)
  $ domuify fstab seed.img --root 5 --swap 2 --partitions --apply --undo seed-fstab.undo
  # Give back the original fstab, from the markers domuify left
  $ domuify fstab seed.img --root 5 --revert --apply";

/// The end of `domuify kernels --help`.
pub const KERNELS: &str = "\
Reads: the image read-only (the partition table, the guest's /etc/fstab, /boot, also on a separate /boot partition, /lib/modules), or the host files given with --kernel.
Writes: nothing, except with --extract: the kernel image and its initramfs into DIR (created when missing), never overwriting a different file without --force. Exit code 0 when every kernel judged is ready, 1 when one is not (the report is printed), 2 for a usage error.

Examples:
  # Judge every kernel of the guest on partition 5 (the sample's kernels are placeholders: not ready, exit 1)
  $ domuify kernels seed.img --part 5 || echo \"not every kernel is ready (exit $?)\"
  # The same as one JSON document
  $ domuify kernels seed.img --part 5 --json > kernels.json || test $? -eq 1
  # Judge dom0's own kernel as a domU kernel, the seed guide's way
  $ domuify kernels --kernel /boot/vmlinuz-$(uname -r) --initrd /boot/initrd.img-$(uname -r) || true";
