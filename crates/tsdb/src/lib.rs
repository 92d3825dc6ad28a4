//! Prometheus TSDB blocks, read and written as Prometheus 2.42 does: `meta.json` (with Thanos's
//! section), index v2, chunk segment files and tombstones. The sidecar, the store gateway and
//! the compactor all stand on this crate. Formats are described in `FORMAT.md` beside it.
//!
//! Every reader takes untrusted bytes: a corrupt block is an error naming the section and the
//! cause ("index postings: CRC32 mismatch"), never a panic, and no length read from a file sizes
//! an allocation before it is checked against the bytes present.

mod block;
pub mod check;
pub mod chunks;
pub mod db;
pub mod dump;
mod encoding;
pub mod head;
pub mod index;
pub mod index_header;
pub mod meta;
pub mod postings;
pub mod tombstones;
pub mod wal;
pub mod writer;

use std::path::{Path, PathBuf};

pub use block::Block;
pub use meta::BlockMeta;

/// Errors of reading and writing blocks.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A section's bytes are not what the format allows.
    #[error("{what}: {detail}")]
    Corrupt {
        /// Which section, e.g. "index postings".
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// meta.json is malformed.
    #[error("meta.json: {0}")]
    Meta(String),
}

impl From<rthanos_durable::DurableError> for TsdbError {
    fn from(e: rthanos_durable::DurableError) -> Self {
        TsdbError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl TsdbError {
    pub(crate) fn corrupt(what: &'static str, detail: &str) -> Self {
        TsdbError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TsdbError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
