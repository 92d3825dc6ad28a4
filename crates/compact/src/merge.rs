//! Merging blocks into one. Series of all sources come in label order (a k-way merge of their
//! indexes). A series' chunks are passed through as bytes when they neither overlap nor meet
//! a tombstone; otherwise its samples are decoded, merged (one sample per timestamp, from the
//! earliest source block) with deleted ranges left out, and re-encoded in chunks of 120
//! samples, as Prometheus's vertical compaction does. Series are prepared in parallel (rayon)
//! a batch at a time and written in order, so memory holds one batch of chunks.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use rayon::prelude::*;
use rthanos_chunkenc::{Encoding, xor};
use rthanos_model::Labels;
use rthanos_tsdb::index::{ChunkMeta, SeriesEntry};
use rthanos_tsdb::meta::{BlockDesc, Compaction, ThanosMeta};
use rthanos_tsdb::writer::{BlockWriter, ChunkToWrite, Lineage};
use rthanos_tsdb::{Block, BlockMeta};

use crate::CompactError;

/// Series prepared in parallel before they are written.
const BATCH: usize = 1024;
/// Samples per re-encoded chunk (Prometheus's target).
const SAMPLES_PER_CHUNK: usize = 120;

/// One output series: its labels and, per source, the series ID and chunks it had there.
struct Job {
    labels: Labels,
    parts: Vec<(usize, u64, Vec<ChunkMeta>)>,
}

/// A chunk to write, borrowed from a source when passed through.
struct OutChunk<'a> {
    min_time: i64,
    max_time: i64,
    encoding: Encoding,
    data: Cow<'a, [u8]>,
    samples: u64,
}

/// The compaction history of a block made of `sources`.
pub fn lineage(sources: &[&BlockMeta]) -> Lineage {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for meta in sources {
        ids.extend(meta.compaction.sources.iter().cloned());
        if meta.compaction.sources.is_empty() {
            ids.insert(meta.ulid.clone());
        }
    }
    Lineage {
        compaction: Compaction {
            level: sources
                .iter()
                .map(|m| m.compaction.level)
                .max()
                .unwrap_or(0)
                + 1,
            sources: ids.into_iter().collect(),
            parents: sources
                .iter()
                .map(|m| BlockDesc {
                    ulid: m.ulid.clone(),
                    min_time: m.min_time,
                    max_time: m.max_time,
                })
                .collect(),
            ..Compaction::default()
        },
        min_time: sources.iter().map(|m| m.min_time).min().unwrap_or(0),
        max_time: sources.iter().map(|m| m.max_time).max().unwrap_or(0),
    }
}

/// Merges `sources` into a new block under `parent` with `thanos` as its meta.json section.
/// `None` when nothing is left (every series deleted): no block is written.
pub fn merge_blocks(
    sources: &[Block],
    parent: &Path,
    thanos: ThanosMeta,
) -> Result<Option<BlockMeta>, CompactError> {
    let symbols = crate::symbols(sources)?;
    let mut writer = BlockWriter::create(parent, &symbols)?;
    drop(symbols);
    let mut cursors: Vec<Cursor<'_>> = sources.iter().map(Cursor::new).collect::<Result<_, _>>()?;
    let mut written = 0u64;
    loop {
        let mut jobs = Vec::with_capacity(BATCH);
        while jobs.len() < BATCH {
            match next_job(&mut cursors)? {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        if jobs.is_empty() {
            break;
        }
        let prepared: Vec<Result<Vec<OutChunk<'_>>, CompactError>> =
            jobs.par_iter().map(|job| prepare(sources, job)).collect();
        for (job, chunks) in jobs.iter().zip(prepared) {
            let chunks = chunks?;
            if chunks.is_empty() {
                continue;
            }
            let to_write: Vec<ChunkToWrite<'_>> = chunks
                .iter()
                .map(|c| ChunkToWrite {
                    min_time: c.min_time,
                    max_time: c.max_time,
                    encoding: c.encoding,
                    data: &c.data,
                    samples: c.samples,
                })
                .collect();
            writer.add_series(&job.labels, &to_write)?;
            written += 1;
        }
    }
    let metas: Vec<&BlockMeta> = sources.iter().map(Block::meta).collect();
    crate::finish_block(writer, parent, thanos, lineage(&metas), written, false)
}

/// One source's series, in index order.
struct Cursor<'a> {
    block: &'a Block,
    ids: std::vec::IntoIter<u64>,
    current: Option<(u64, SeriesEntry)>,
}

impl<'a> Cursor<'a> {
    fn new(block: &'a Block) -> Result<Self, CompactError> {
        let mut cursor = Cursor {
            block,
            ids: block.index().all_postings()?.into_iter(),
            current: None,
        };
        cursor.advance()?;
        Ok(cursor)
    }

    fn advance(&mut self) -> Result<(), CompactError> {
        self.current = match self.ids.next() {
            Some(id) => Some((id, self.block.index().series(id)?)),
            None => None,
        };
        Ok(())
    }
}

/// The next series in label order, with its parts from every source that has it.
fn next_job(cursors: &mut [Cursor<'_>]) -> Result<Option<Job>, CompactError> {
    let Some(labels) = cursors
        .iter()
        .filter_map(|c| c.current.as_ref().map(|(_, s)| &s.labels))
        .min()
        .cloned()
    else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    for (i, cursor) in cursors.iter_mut().enumerate() {
        if cursor
            .current
            .as_ref()
            .is_some_and(|(_, s)| s.labels == labels)
        {
            if let Some((id, series)) = cursor.current.take() {
                parts.push((i, id, series.chunks));
            }
            cursor.advance()?;
        }
    }
    Ok(Some(Job { labels, parts }))
}

fn chunk_error(block: &Block, labels: &Labels, detail: impl std::fmt::Display) -> CompactError {
    CompactError::Chunk {
        block: block.meta().ulid.clone(),
        series: labels.to_string(),
        detail: detail.to_string(),
    }
}

/// A chunk of an output series: its source block, the deleted ranges of the series there,
/// and where it lies.
type SourceChunk<'a> = (usize, &'a [(i64, i64)], &'a ChunkMeta);

/// The chunks of one output series: passed through, or merged and re-encoded.
fn prepare<'a>(sources: &'a [Block], job: &Job) -> Result<Vec<OutChunk<'a>>, CompactError> {
    let mut chunks: Vec<SourceChunk<'_>> = Vec::new();
    for (source, id, metas) in &job.parts {
        let deleted = sources[*source].tombstones().get(*id);
        chunks.extend(metas.iter().map(|m| (*source, deleted, m)));
    }
    chunks.sort_by_key(|(source, _, m)| (m.min_time, *source));
    let overlapping = chunks
        .windows(2)
        .any(|w| w[1].2.min_time <= w[0].2.max_time);
    let tombstoned = chunks.iter().any(|(_, deleted, m)| {
        deleted
            .iter()
            .any(|&(min, max)| min <= m.max_time && m.min_time <= max)
    });
    if !overlapping && !tombstoned {
        return chunks
            .iter()
            .map(|&(source, _, m)| {
                let block = &sources[source];
                let chunk = block.chunks().chunk(m.reference)?;
                let samples = chunk
                    .num_samples()
                    .map_err(|e| chunk_error(block, &job.labels, e))?;
                Ok(OutChunk {
                    min_time: m.min_time,
                    max_time: m.max_time,
                    encoding: chunk.encoding,
                    data: Cow::Borrowed(chunk.data),
                    samples: samples as u64,
                })
            })
            .collect();
    }
    // Samples of every chunk, in (time, source order); the first per timestamp is kept.
    let mut samples: Vec<(i64, usize, f64)> = Vec::new();
    for &(source, deleted, m) in &chunks {
        let block = &sources[source];
        let chunk = block.chunks().chunk(m.reference)?;
        if chunk.encoding != Encoding::Xor {
            return Err(chunk_error(
                block,
                &job.labels,
                format!(
                    "{} chunks cannot be merged sample by sample (overlapping downsampled or histogram data)",
                    chunk.encoding.name()
                ),
            ));
        }
        for sample in chunk
            .xor_samples()
            .map_err(|e| chunk_error(block, &job.labels, e))?
        {
            let (t, v) = sample.map_err(|e| chunk_error(block, &job.labels, e))?;
            if !deleted.iter().any(|&(min, max)| min <= t && t <= max) {
                samples.push((t, source, v));
            }
        }
    }
    samples.sort_by_key(|&(t, source, _)| (t, source));
    samples.dedup_by_key(|s| s.0);
    samples
        .chunks(SAMPLES_PER_CHUNK)
        .map(|run| {
            let data = xor::encode(run.iter().map(|&(t, _, v)| (t, v)))
                .map_err(|e| chunk_error(&sources[run[0].1], &job.labels, e))?;
            Ok(OutChunk {
                min_time: run[0].0,
                max_time: run[run.len() - 1].0,
                encoding: Encoding::Xor,
                data: Cow::Owned(data),
                samples: run.len() as u64,
            })
        })
        .collect()
}
