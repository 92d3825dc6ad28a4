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

pub use compactor::{
    Compactor, CompactorConfig, PARTIAL_UPLOAD_THRESHOLD_AGE, Retention, TimeWindow,
};

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

/// Every symbol of `blocks`: the symbol table of a block made from them.
pub(crate) fn symbols<'a>(
    blocks: impl IntoIterator<Item = &'a rthanos_tsdb::Block>,
) -> Result<std::collections::BTreeSet<String>, CompactError> {
    let mut out = std::collections::BTreeSet::new();
    for block in blocks {
        for symbol in block.index().symbols() {
            let symbol = symbol?;
            if !out.contains(symbol) {
                out.insert(symbol.to_string());
            }
        }
    }
    Ok(out)
}

/// Finishes a block made from others under `parent`. With no series written, nothing is left
/// behind and the answer is `None`, unless `keep_empty` (a downsampled block stands for its
/// source even when empty, as in Thanos, so the source is not downsampled again and again).
pub(crate) fn finish_block(
    writer: rthanos_tsdb::writer::BlockWriter,
    parent: &std::path::Path,
    thanos: rthanos_tsdb::meta::ThanosMeta,
    lineage: rthanos_tsdb::writer::Lineage,
    series: u64,
    keep_empty: bool,
) -> Result<Option<rthanos_tsdb::BlockMeta>, CompactError> {
    let id = writer.ulid();
    let meta = writer.finish_with(Some(thanos), Some(lineage))?;
    if series > 0 || keep_empty {
        return Ok(Some(meta));
    }
    let dir = parent.join(id.to_string());
    std::fs::remove_dir_all(&dir)
        .map_err(|source| rthanos_tsdb::TsdbError::Io { path: dir, source })?;
    Ok(None)
}
