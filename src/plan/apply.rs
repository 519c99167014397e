//! Applying a plan: the only code of the planners that writes. It takes the
//! guest's filesystem open for writing (the caller owns the transaction: the
//! disk, the undo log, the final flush) and carries out exactly the plan, after
//! checking that the guest still holds what the plan was made from.

use std::io::Cursor;

use crate::disk::WriteAt;
use crate::error::{Error, Result};
use crate::ext::{Ext, FileType, Ino, NewNode, Timestamp};
use crate::guest::MAX_FSTAB;

use super::{BackupAction, FstabPlan, BACKUP, FSTAB};

/// What applying the fstab plan did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The fstab's inode (the same before and after: it is rewritten in place).
    pub ino: Ino,
    /// Whether the fstab changed.
    pub changed: bool,
    /// Whether a backup was created.
    pub backup_created: bool,
}

/// Read a whole regular file of at most `max` bytes.
fn read_all<D: WriteAt>(ext: &Ext<D>, ino: Ino, max: u64, what: &str) -> Result<Vec<u8>> {
    let st = ext.stat(ino)?;
    if st.size > max {
        return Err(Error::refused(format!(
            "{what} is {} bytes, more than the {max} bytes it may have; not read",
            st.size
        )));
    }
    let len = usize::try_from(st.size).map_err(|_| Error::refused(format!("{what}: too large")))?;
    let mut buf = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let n = ext.read_file(ino, at as u64, &mut buf[at..])?;
        if n == 0 {
            return Err(Error::corrupt(format!("{what}: ends before its size")));
        }
        at += n;
    }
    Ok(buf)
}

/// Write the fstab plan into `ext` (the guest's root filesystem): the fstab is
/// replaced in place (same inode, mode, owner, xattrs; a symlink is followed inside
/// the guest), and the backup created when the plan says so. Refused, before any
/// write, when the fstab is no longer what the plan was made from.
pub fn apply_fstab<D: WriteAt>(ext: &mut Ext<D>, plan: &FstabPlan) -> Result<Applied> {
    let ino = ext
        .resolve(FSTAB.as_bytes(), true)
        .map_err(|e| e.context(FSTAB))?;
    let st = ext.stat(ino)?;
    if st.file_type() != FileType::Regular {
        return Err(Error::refused(format!("{FSTAB} is not a regular file")));
    }
    let now_bytes = read_all(ext, ino, MAX_FSTAB, FSTAB)?;
    if now_bytes != plan.current {
        return Err(Error::refused(format!(
            "{FSTAB} changed since the plan was made; nothing written (run the command again)"
        )));
    }
    if !plan.changes() {
        return Ok(Applied {
            ino,
            changed: false,
            backup_created: false,
        });
    }
    let mut backup_created = false;
    let (dir, name) = BACKUP.rsplit_once('/').unwrap_or(("/", BACKUP));
    let parent = ext.resolve(dir.as_bytes(), true)?;
    let existing = ext.lookup(parent, name.as_bytes())?;
    match (plan.backup, existing) {
        (BackupAction::Create, None) => {
            let now = Timestamp::now();
            let node = NewNode {
                perm: st.mode & 0o7777,
                uid: st.uid,
                gid: st.gid,
                atime: now,
                mtime: now,
                ctime: now,
            };
            let len = plan.original.len() as u64;
            ext.create_file(
                parent,
                name.as_bytes(),
                &node,
                &mut Cursor::new(&plan.original),
                len,
            )?;
            backup_created = true;
        }
        (BackupAction::Create, Some(_)) => {
            return Err(Error::refused(format!(
                "{BACKUP} appeared since the plan was made; nothing written (run the command again)"
            )));
        }
        _ => {}
    }
    let len = plan.new.len() as u64;
    ext.replace_contents(ino, &mut Cursor::new(&plan.new), len, Timestamp::now())?;
    Ok(Applied {
        ino,
        changed: true,
        backup_created,
    })
}
