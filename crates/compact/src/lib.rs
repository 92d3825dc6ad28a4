//! The compactor's work on a bucket, as Thanos's compactor does it: blocks are grouped by
//! external labels and resolution and planned level by level ([`plan`]), merged into one
//! block with the block writer ([`merge`]), downsampled to 5m and 1h aggregates
//! ([`downsample`]), expired per resolution, and their sources marked for deletion and deleted
//! after a delay. Every step leaves the bucket consistent if the process dies in the middle of
//! it: outputs appear whole (meta.json last) before their sources are marked, and a rerun
//! finds and finishes what was cut short.

mod compactor;
pub mod downsample;
pub mod merge;
pub mod metrics;
pub mod plan;

pub use compactor::{Compactor, CompactorConfig, Retention, TimeWindow};

/// Errors of the compactor.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Reading or writing a local block failed.
    #[error(transparent)]
    Tsdb(#[from] rthanos_tsdb::TsdbError),
    /// A chunk does not decode.
    #[error("block {block}: series {series}: {detail}")]
    Chunk {
        /// The block.
        block: String,
        /// The series' labels.
        series: String,
        /// What is wrong.
        detail: String,
    },
    /// A bucket operation failed.
    #[error(transparent)]
    Block(#[from] rthanos_block::BlockError),
    /// Blocks of a group overlap and vertical compaction is off: the group halts.
    #[error("{0}")]
    Halt(String),
    /// A block written here failed its check before upload.
    #[error("block {block} failed its check: {detail}")]
    Check {
        /// The block.
        block: String,
        /// What is wrong.
        detail: String,
    },
}
