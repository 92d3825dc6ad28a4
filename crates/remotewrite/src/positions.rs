//! Where each queue is in the log, kept on disk so that a restart resumes where the last
//! acknowledged request ended: nothing is skipped, and at most the one request in flight when
//! the process died is sent again. Prometheus keeps this in memory only (a restarted
//! Prometheus sends from the log's end); rthanos writes it after every acknowledged request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The next sample a queue sends: the samples record at `offset` of `segment`, of which the
/// first `sent` samples are sent already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueuePosition {
    /// The segment.
    pub segment: u32,
    /// Byte offset of the record in it (a record boundary).
    pub offset: u64,
    /// Samples of that record already sent.
    pub sent: usize,
}

/// The positions file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PositionsError {
    /// Reading failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a positions file.
    #[error(
        "{path} is not a remote-write positions file ({source}); remove it to start every queue at the log's end"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] rthanos_durable::DurableError),
}

/// The positions of the configured queues, by queue name.
pub struct Positions {
    path: PathBuf,
    by_queue: Mutex<BTreeMap<String, QueuePosition>>,
}

impl Positions {
    /// Reads `path` (absent: no queue has a position), keeping the queues in `names` only.
    ///
    /// # Errors
    /// The file cannot be read or is not a positions file.
    pub fn open(path: &Path, names: &[String]) -> Result<Positions, PositionsError> {
        let mut by_queue: BTreeMap<String, QueuePosition> = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| PositionsError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(PositionsError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        by_queue.retain(|name, position| {
            let kept = names.contains(name);
            if !kept {
                // An unnamed target's name is a hash of its entry: an edit renames it.
                tracing::warn!(
                    queue = %name, segment = position.segment, offset = position.offset,
                    "remote write queue no longer configured: what it had not sent is not sent (name targets with `name` to keep their place across edits)"
                );
            }
            kept
        });
        Ok(Positions {
            path: path.to_path_buf(),
            by_queue: Mutex::new(by_queue),
        })
    }

    /// The saved position of queue `name`.
    pub fn get(&self, name: &str) -> Option<QueuePosition> {
        self.by_queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }

    /// Saves `position` for queue `name`, durably, before returning.
    ///
    /// # Errors
    /// Writing the file failed; the previous file stays whole.
    pub fn set(&self, name: &str, position: QueuePosition) -> Result<(), PositionsError> {
        let mut by_queue = self.by_queue.lock().unwrap_or_else(PoisonError::into_inner);
        if by_queue.get(name) == Some(&position) {
            return Ok(());
        }
        by_queue.insert(name.to_string(), position);
        // A map of strings and numbers always serializes.
        let bytes = serde_json::to_vec_pretty(&*by_queue).unwrap_or_default();
        rthanos_durable::write_file(&self.path, &bytes)?;
        Ok(())
    }

    /// The lowest segment any queue still reads from, if every queue has a position.
    pub fn lowest_segment(&self, names: &[String]) -> Option<u32> {
        let by_queue = self.by_queue.lock().unwrap_or_else(PoisonError::into_inner);
        names
            .iter()
            .map(|n| by_queue.get(n).map(|p| p.segment))
            .collect::<Option<Vec<u32>>>()?
            .into_iter()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_a_reopen_and_unconfigured_queues_are_forgotten() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("positions.json");
        let names = vec!["a".to_string(), "b".to_string()];
        let positions = Positions::open(&path, &names).expect("open");
        assert_eq!(positions.get("a"), None);
        assert_eq!(positions.lowest_segment(&names), None, "b has none yet");
        let at = |segment, offset, sent| QueuePosition {
            segment,
            offset,
            sent,
        };
        positions.set("a", at(3, 100, 2)).expect("set");
        positions.set("b", at(2, 0, 0)).expect("set");
        assert_eq!(positions.lowest_segment(&names), Some(2));
        drop(positions);
        let positions = Positions::open(&path, &["a".to_string()]).expect("reopen");
        assert_eq!(positions.get("a"), Some(at(3, 100, 2)));
        assert_eq!(positions.get("b"), None);
        std::fs::write(&path, b"{not json").expect("write");
        let err = Positions::open(&path, &names).err().expect("corrupt");
        assert!(err.to_string().contains("remove it"), "{err}");
    }
}
