//! The data directory: who owns it (a lock file) and whether its last owner stopped cleanly (a
//! marker file that only a clean close removes).

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Name of the lock file; held with an exclusive advisory lock for as long as a store is open.
const LOCK_FILE: &str = "livehub.lock";

/// Name of the marker written at open and removed by a clean close. Found at open, it means the
/// previous process died with the store open (SIGKILL, a crash, a power cut).
const RUNNING_MARKER: &str = "livehub.running";

/// An opened data directory, locked against other processes until dropped.
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    /// Holds the lock; the OS releases it when the file closes, however the process ends.
    _lock: File,
    /// Whether the previous owner left the marker behind.
    unclean: bool,
}

impl DataDir {
    /// Creates (when missing) and locks `path`, and notes whether its last owner crashed.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::io(path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked(path.to_owned())),
            Err(TryLockError::Error(e)) => return Err(StoreError::io(&lock_path, e)),
        }
        let marker = path.join(RUNNING_MARKER);
        let unclean = marker.exists();
        std::fs::write(&marker, format!("{}\n", std::process::id()))
            .map_err(|e| StoreError::io(&marker, e))?;
        Ok(Self { path: path.to_owned(), _lock: lock, unclean })
    }

    /// Whether the previous process stopped without closing the store.
    pub(crate) fn unclean(&self) -> bool {
        self.unclean
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Marks a clean stop: everything was written and the database closed.
    pub(crate) fn close(self) -> Result<(), StoreError> {
        let marker = self.path.join(RUNNING_MARKER);
        std::fs::remove_file(&marker).map_err(|e| StoreError::io(&marker, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time_and_crashes_are_noticed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = DataDir::open(tmp.path()).expect("open");
        assert!(!first.unclean(), "a new directory has no marker");
        let second = DataDir::open(tmp.path()).expect_err("locked");
        assert!(matches!(second, StoreError::Locked(_)), "{second}");
        drop(first); // as a SIGKILL would: lock released, marker left
        let again = DataDir::open(tmp.path()).expect("open after the owner died");
        assert!(again.unclean(), "the marker of a process that died is seen");
        again.close().expect("close");
        let clean = DataDir::open(tmp.path()).expect("open after a clean close");
        assert!(!clean.unclean());
    }
}
