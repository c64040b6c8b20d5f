//! Whether the store can take writes now: the faults that do not heal by retrying a statement
//! (disk full, I/O errors, a read-only file, the file deleted or replaced under the process)
//! are noticed here, refused as [`StoreError::Unavailable`], reported by `/readyz`, and
//! cleared by the first write that succeeds again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::StoreError;

/// The store's write health, shared by its pool hooks, write sessions and readiness probe.
#[derive(Debug)]
pub(super) struct Health {
    file: Option<OpenedFile>,
    /// Why the last write failed, while no write has succeeded since.
    fault: Mutex<Option<String>>,
}

/// The database file as it was when the store opened it.
#[derive(Debug)]
struct OpenedFile {
    path: PathBuf,
    /// Device and inode: a file deleted and recreated at the same path is another database.
    identity: (u64, u64),
}

impl Health {
    /// Health of a store on `file` (`None`: in memory).
    pub(super) fn new(file: Option<&Path>) -> Result<Self, StoreError> {
        let file = match file {
            None => None,
            Some(path) => {
                let metadata = std::fs::metadata(path)
                    .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
                Some(OpenedFile { path: path.to_owned(), identity: (metadata.dev(), metadata.ino()) })
            }
        };
        Ok(Health { file, fault: Mutex::new(None) })
    }

    /// The database file, when the store is one (SQLite on disk).
    pub(super) fn database_file(&self) -> Option<&Path> {
        self.file.as_ref().map(|file| file.path.as_path())
    }

    /// Refuses when the file this store opened is no longer at its path. SQLite keeps writing
    /// to the unlinked inode and acknowledging it, and all of that is gone at the next start.
    pub(super) fn check_file(&self) -> Result<(), StoreError> {
        let Some(file) = &self.file else { return Ok(()) };
        let now = std::fs::metadata(&file.path).ok().map(|m| (m.dev(), m.ino()));
        match now {
            Some(identity) if identity == file.identity => Ok(()),
            Some(_) => Err(StoreError::Unavailable(format!(
                "{} was replaced by another file while open; restart c7sync to use it",
                file.path.display()
            ))),
            None => Err(StoreError::Unavailable(format!(
                "{} was deleted while open; restore it and restart c7sync",
                file.path.display()
            ))),
        }
    }

    /// Notes what a write's outcome says about the storage, and passes it on.
    pub(super) fn record<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        let Ok(mut fault) = self.fault.lock() else { return outcome };
        match &outcome {
            Err(StoreError::Unavailable(why)) => {
                if fault.is_none() {
                    tracing::error!(error = %why, "database writes are failing; refusing them until one succeeds");
                }
                *fault = Some(why.clone());
            }
            Ok(_) if fault.is_some() => {
                tracing::info!("database writes succeed again");
                *fault = None;
            }
            _ => {}
        }
        outcome
    }

    /// Why writes are failing, if they are.
    pub(super) fn fault(&self) -> Option<String> {
        self.fault.lock().ok().and_then(|fault| fault.clone())
    }
}
