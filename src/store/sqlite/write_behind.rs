//! Writing a large transaction's pages to disk while it is still being built.
//!
//! SQLite writes a transaction into the WAL through the page cache and, once it commits,
//! checkpoints it: it fsyncs the WAL, copies every page into the database file and fsyncs
//! that. The kernel starts writing dirty pages back only once they pass a share of memory, so
//! after a million-member write both fsyncs found all of it still in memory and waited for the
//! disk: 0.37 s of a 3.6 s import, with the second core idle. While a large write runs, a
//! thread of its own asks for the data to be written every few tens of milliseconds, so the
//! disk works beside SQLite and its fsyncs find little left to do (RocksDB's `bytes_per_sync`
//! does the same for its files). It changes what is durable only by making it durable sooner.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Writes below this many rows take too little time for the thread to pay for itself.
pub(in crate::store) const WRITE_BEHIND_FROM_ROWS: usize = 50_000;

/// How often the files are synced while the write runs.
const EVERY: Duration = Duration::from_millis(50);

/// Syncs a database's files until dropped (after the commit and its checkpoint).
pub(in crate::store) struct WriteBehind {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    syncs: Arc<AtomicU64>,
}

impl WriteBehind {
    /// Starts syncing `database` and its WAL; `None` when either cannot be opened (the write
    /// goes on as it would have without).
    pub(in crate::store) fn start(database: &Path) -> Option<Self> {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let files = [File::open(&wal), File::open(database)];
        let files: Vec<File> = match files {
            [Ok(wal), Ok(database)] => vec![wal, database],
            [wal, database] => {
                let error = wal.err().or(database.err());
                tracing::debug!(?error, "cannot open the database files to write them behind");
                return None;
            }
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let syncs = Arc::new(AtomicU64::new(0));
        let counted = syncs.clone();
        let thread = std::thread::Builder::new()
            .name("c7sync-write-behind".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    for file in &files {
                        // A failure shows again, and is reported, in SQLite's own fsync.
                        if let Err(error) = file.sync_data() {
                            tracing::debug!(%error, "syncing the database files ahead of SQLite failed");
                        }
                    }
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|error| tracing::debug!(%error, "cannot start the write-behind thread"))
            .ok()?;
        Some(WriteBehind { stop: Some(stop), thread: Some(thread), syncs })
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        tracing::debug!(rounds = self.syncs.load(Ordering::Relaxed), "database files synced ahead of SQLite");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_while_alive_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("state.db");
        assert!(WriteBehind::start(&database).is_none(), "no files, no thread");
        std::fs::write(&database, b"pages").unwrap();
        std::fs::write(dir.path().join("state.db-wal"), b"frames").unwrap();

        let behind = WriteBehind::start(&database).unwrap();
        let syncs = behind.syncs.clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while syncs.load(Ordering::Relaxed) < 2 {
            assert!(std::time::Instant::now() < deadline, "the files were never synced");
            std::thread::sleep(EVERY / 5);
        }
        drop(behind);
        // The thread's own handle on the counter went with it.
        assert_eq!(Arc::strong_count(&syncs), 1, "the thread went on after the drop");
    }
}
