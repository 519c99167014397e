//! Handlers of the file commands (`ls`, `cat`, `copy-out`, `write`, `copy-in`,
//! `mkdir`, `rm`, `undo`).
//!
//! Read commands open the image `O_RDONLY` and read through ext4-view, falling back
//! to our engine's reader (with a note on stderr saying why) when ext4-view cannot
//! read the filesystem. Writing commands run one [`writer`] transaction: it locks
//! and checks the target, keeps the undo log, and commits once at the end.

use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

use super::{
    CopyInArgs, CopyOutArgs, LsArgs, MkdirArgs, PathArgs, RmArgs, Target, UndoArgs, UsageError,
    WriteArgs, WriteOpts,
};
use crate::copy::{self, GuestRead, Node};
use crate::disk::{Access, Disk, ReadAt, Window};
use crate::ext::{FileType, Timestamp};
use crate::guest::reader as guest_reader;
use crate::undo;
use crate::writer::{self, ops, WriteOptions};

/// Open the partition `part` of `image` (the whole disk when `None` and the disk
/// has no partition table).
fn open_partition(
    image: &Path,
    part: Option<u32>,
    access: Access,
) -> anyhow::Result<Window<Arc<Disk>>> {
    let disk = Disk::open(image, access)?;
    let table = crate::part::read_table(&disk, disk.logical_sector_size())
        .with_context(|| format!("{}: partition table", image.display()))?;
    let (start, len) = table.locate(part, &image.display().to_string(), disk.size())?;
    Ok(Window::new(Arc::new(disk), start, len)?)
}

fn target_name(t: &Target) -> String {
    match t.part {
        Some(n) => format!("{} partition {n}", t.image.display()),
        None => t.image.display().to_string(),
    }
}

/// A reader for the read commands: ext4-view, or our engine when ext4-view
/// refuses the filesystem (said on stderr).
fn open_reader(t: &Target) -> anyhow::Result<Box<dyn GuestRead>> {
    let win = open_partition(&t.image, t.part, Access::ReadOnly)?;
    let (reader, fallback) = guest_reader::open(win).with_context(|| target_name(t))?;
    if let Some(why) = fallback {
        eprintln!("domuify: note: {}: {why}", target_name(t));
    }
    Ok(reader)
}

fn guest_path(p: &str) -> anyhow::Result<Vec<u8>> {
    if !p.starts_with('/') {
        return Err(UsageError(format!("{p}: guest paths must be absolute (start with /)")).into());
    }
    Ok(p.as_bytes().to_vec())
}

fn perm_string(n: &Node) -> String {
    let t = match n.file_type {
        FileType::Regular => '-',
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
        FileType::Unknown => '?',
    };
    let m = n.perm;
    let bit = |mask: u16, c: char| if m & mask != 0 { c } else { '-' };
    let special = |x: bool, s: bool, lower: char, upper: char| match (x, s) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(m & 0o100 != 0, m & 0o4000 != 0, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(m & 0o010 != 0, m & 0o2000 != 0, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(m & 0o001 != 0, m & 0o1000 != 0, 't', 'T'));
    s
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn format_time(t: Timestamp) -> String {
    let days = t.sec.div_euclid(86_400);
    let secs = t.sec.rem_euclid(86_400);
    // Civil date from a day count (proleptic Gregorian), after H. Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn long_line(r: &dyn GuestRead, path: &[u8], name: &[u8], n: &Node) -> Vec<u8> {
    let mut line = format!(
        "{} {:>5} {:>5} {:>10} {} ",
        perm_string(n),
        n.uid,
        n.gid,
        n.size,
        format_time(n.mtime)
    )
    .into_bytes();
    line.extend_from_slice(name);
    if n.file_type == FileType::Symlink {
        match r.read_link(path) {
            Ok(t) => {
                line.extend_from_slice(b" -> ");
                line.extend_from_slice(&t);
            }
            Err(e) => line.extend_from_slice(format!(" -> ? ({e})").as_bytes()),
        }
    }
    line.push(b'\n');
    line
}

pub fn ls(a: LsArgs) -> anyhow::Result<()> {
    let path = guest_path(&a.path)?;
    let r = open_reader(&a.target)?;
    let out = io::stdout();
    let mut out = io::BufWriter::new(out.lock());
    let followed = r.node(&path, true);
    let is_dir = matches!(&followed, Ok(n) if n.file_type == FileType::Directory);
    if !is_dir {
        // A file, or a dangling symlink: show the entry itself.
        let n = r.node(&path, false)?;
        if a.long {
            out.write_all(&long_line(r.as_ref(), &path, &path, &n))?;
        } else {
            out.write_all(&path)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        return Ok(());
    }
    let mut names = Vec::new();
    let mut bad = 0usize;
    for e in r.list(&path)? {
        match e {
            Ok(name) => names.push(name),
            Err(e) => {
                eprintln!("domuify: ls: {e}");
                bad += 1;
            }
        }
    }
    names.sort();
    for name in &names {
        if a.long {
            let mut child = path.clone();
            if child.last() != Some(&b'/') {
                child.push(b'/');
            }
            child.extend_from_slice(name);
            match r.node(&child, false) {
                Ok(n) => out.write_all(&long_line(r.as_ref(), &child, name, &n))?,
                Err(e) => {
                    eprintln!("domuify: ls: {e}");
                    bad += 1;
                }
            }
        } else {
            out.write_all(name)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    if bad > 0 {
        bail!("{bad} entries of {} could not be read", a.path);
    }
    Ok(())
}

pub fn cat(a: PathArgs) -> anyhow::Result<()> {
    let path = guest_path(&a.path)?;
    let r = open_reader(&a.target)?;
    let out = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, out.lock());
    r.copy_file(&path, &mut out)?;
    out.flush()?;
    Ok(())
}

pub fn copy_out(a: CopyOutArgs) -> anyhow::Result<()> {
    let (host, guests) = (&a.host_dir, &a.guest_paths);
    let guests: Vec<Vec<u8>> = guests
        .iter()
        .map(|g| guest_path(g))
        .collect::<anyhow::Result<_>>()?;
    let host = PathBuf::from(host);
    if !host.is_dir() {
        return Err(UsageError(format!(
            "{}: the destination must be an existing host directory",
            host.display()
        ))
        .into());
    }
    let r = open_reader(&a.target)?;
    let rep = copy::copy_out(r.as_ref(), &guests, &host)?;
    for n in &rep.notes {
        eprintln!("domuify: copy-out: note: {n}");
    }
    for w in &rep.warnings {
        eprintln!("domuify: copy-out: warning: {w}");
    }
    for e in &rep.errors {
        eprintln!("domuify: copy-out: {e}");
    }
    if !rep.errors.is_empty() {
        bail!(
            "copy-out: {} entries skipped (copied {} files, {} directories, {} symlinks)",
            rep.errors.len(),
            rep.files,
            rep.dirs,
            rep.symlinks
        );
    }
    Ok(())
}

/// The write options of the command line, as the library takes them.
pub(super) fn write_options(o: &WriteOpts) -> WriteOptions {
    WriteOptions {
        undo: o.undo.clone(),
        wait: o.wait,
        force: o.force,
        fail_after: None,
    }
}

/// Standard input as a stream of known length: a regular file is streamed; a pipe
/// is read into memory up to 8 MiB, and beyond that spooled to an unlinked
/// temporary file, so that memory stays bounded.
fn stdin_source() -> anyhow::Result<(Box<dyn Read>, u64)> {
    const IN_MEMORY: u64 = 8 << 20;
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata()?;
    if meta.is_file() {
        let pos = file.stream_position().unwrap_or(0);
        file.seek(SeekFrom::Start(pos))?;
        let len = meta.len().saturating_sub(pos);
        return Ok((Box::new(io::BufReader::new(file).take(len)), len));
    }
    let mut stdin = io::stdin().lock();
    let mut buf = Vec::new();
    (&mut stdin).take(IN_MEMORY + 1).read_to_end(&mut buf)?;
    if (buf.len() as u64) <= IN_MEMORY {
        let len = buf.len() as u64;
        return Ok((Box::new(io::Cursor::new(buf)), len));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let spool_path =
        std::env::temp_dir().join(format!("domuify-write-{}-{nanos}", std::process::id()));
    let mut spool = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool_path)
        .with_context(|| format!("cannot create {}", spool_path.display()))?;
    let _ = std::fs::remove_file(&spool_path);
    spool.write_all(&buf)?;
    drop(buf);
    io::copy(&mut stdin, &mut spool)?;
    let len = spool.stream_position()?;
    spool.seek(SeekFrom::Start(0))?;
    Ok((Box::new(io::BufReader::new(spool).take(len)), len))
}

pub fn write(a: WriteArgs) -> anyhow::Result<()> {
    let path = guest_path(&a.path)?;
    let (mut data, len) = stdin_source().context("reading standard input")?;
    let t = &a.target;
    writer::with_ext(&t.image, t.part, &write_options(&a.opts), |ext| {
        ops::write_file(ext, &path, &mut data, len)
    })?;
    Ok(())
}

/// The progress bar of a tree copy on stderr when it is a terminal (files,
/// bytes, rate), else none.
pub(super) fn progress_bar() -> Option<Bar> {
    io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
        ) {
            pb.set_style(style);
        }
        Bar {
            bar: pb,
            items: Default::default(),
            total: Default::default(),
        }
    })
}

/// Progress bar on stderr for `copy-in` and `modules`.
pub(super) struct Bar {
    bar: indicatif::ProgressBar,
    items: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
}

impl copy::Progress for Bar {
    fn start(&self, files: u64, bytes: u64) {
        use std::sync::atomic::Ordering;
        self.total.store(files, Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} entries"));
    }
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }
    fn item(&self) {
        use std::sync::atomic::Ordering;
        let done = self.items.fetch_add(1, Ordering::Relaxed) + 1;
        if done % 64 == 0 || done == self.total.load(Ordering::Relaxed) {
            self.bar.set_message(format!(
                "{done}/{} entries",
                self.total.load(Ordering::Relaxed)
            ));
        }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub fn copy_in(a: CopyInArgs) -> anyhow::Result<()> {
    let (dest, sources) = (&a.guest_dir, &a.host_paths);
    let dest = guest_path(dest)?;
    let sources: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
    for s in &sources {
        if std::fs::symlink_metadata(s).is_err() {
            return Err(UsageError(format!("{}: no such host file", s.display())).into());
        }
        copy::source_name(s).map_err(|e| UsageError(e.to_string()))?;
    }
    let bar = progress_bar();
    let t = &a.target;
    let rep = writer::with_ext(&t.image, t.part, &write_options(&a.opts), |ext| {
        copy::copy_in(
            ext,
            &sources,
            &dest,
            bar.as_ref().map(|b| b as &dyn copy::Progress),
        )
    })?;
    for s in &rep.skipped {
        eprintln!("domuify: copy-in: {s}");
    }
    Ok(())
}

pub fn mkdir(a: MkdirArgs) -> anyhow::Result<()> {
    let path = guest_path(&a.path)?;
    let t = &a.target;
    writer::with_ext(&t.image, t.part, &write_options(&a.opts), |ext| {
        ops::mkdir(ext, &path, a.parents)
    })?;
    Ok(())
}

pub fn rm(a: RmArgs) -> anyhow::Result<()> {
    let path = guest_path(&a.path)?;
    if copy::split_guest_path(&path)?.is_none() {
        return Err(UsageError("refusing to remove the guest's root directory".into()).into());
    }
    let t = &a.target;
    let findings = writer::with_ext(&t.image, t.part, &write_options(&a.opts), |ext| {
        ops::remove(ext, &path, a.recursive)?;
        // Directory hard links met and not descended into.
        Ok(ext.take_findings())
    })?;
    for f in findings {
        eprintln!("domuify: rm: warning: {}: {}", f.place, f.message);
    }
    Ok(())
}

pub fn undo(a: UndoArgs) -> anyhow::Result<()> {
    let disk = Disk::open(&a.image, Access::ReadWrite)?;
    let _lock = writer::lock::lock_disk(&disk, false)?;
    writer::mounted::refuse_if_mounted(&disk, None)?;
    let rep = undo::restore(&a.undo_file, &disk)?;
    eprintln!(
        "domuify: restored {} regions ({} bytes) of {}{}",
        rep.records,
        rep.bytes,
        a.image.display(),
        if rep.complete {
            ""
        } else {
            "; the log has no final record: the command was interrupted, and every region it may have written is restored"
        }
    );
    if let Some(why) = rep.tail_reason {
        eprintln!(
            "domuify: ignored the last {} bytes of {}: {why} (the last append, torn by the interruption; its write never reached the image)",
            rep.ignored_tail,
            a.undo_file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(
            format_time(Timestamp { sec: 0, nsec: 0 }),
            "1970-01-01 00:00:00"
        );
        // 2024-02-29 12:34:56 UTC
        assert_eq!(
            format_time(Timestamp {
                sec: 1_709_210_096,
                nsec: 0
            }),
            "2024-02-29 12:34:56"
        );
        assert_eq!(
            format_time(Timestamp { sec: -1, nsec: 0 }),
            "1969-12-31 23:59:59"
        );
        let _ = format_time(Timestamp {
            sec: i64::MIN / 2,
            nsec: 0,
        });
    }

    #[test]
    fn perm_strings() {
        let n = |ft, perm| Node {
            file_type: ft,
            perm,
            uid: 0,
            gid: 0,
            size: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            links: None,
        };
        assert_eq!(perm_string(&n(FileType::Regular, 0o644)), "-rw-r--r--");
        assert_eq!(perm_string(&n(FileType::Directory, 0o1777)), "drwxrwxrwt");
        assert_eq!(perm_string(&n(FileType::Regular, 0o4755)), "-rwsr-xr-x");
        assert_eq!(perm_string(&n(FileType::Symlink, 0o2644)), "lrw-r-Sr--");
    }
}
