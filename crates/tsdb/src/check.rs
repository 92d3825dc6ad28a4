//! A block's health, as Thanos's index verification reads it before a block is uploaded or
//! after `tools bucket verify`: every series' labels sorted with no repeated name or empty
//! value, series in label order with no two equal, chunks in time order without overlap,
//! inside the block's range, readable (CRC) and with samples; and meta.json's counts.

use crate::{Block, TsdbError};

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Series read.
    pub series: u64,
    /// Chunks read.
    pub chunks: u64,
    /// Samples in those chunks.
    pub samples: u64,
    /// Problems, each naming its series; empty for a healthy block.
    pub issues: Vec<String>,
}

/// At most this many problems are listed (a broken block would list every series).
const MAX_ISSUES: usize = 20;

impl CheckReport {
    fn issue(&mut self, text: String) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(text);
        }
    }
}

/// Checks the block at `dir`. Errors are for a block that cannot be opened or whose index
/// cannot be walked at all; everything else is an issue in the report.
pub fn check_block(dir: &std::path::Path) -> Result<CheckReport, TsdbError> {
    let block = Block::open(dir)?;
    let meta = block.meta();
    let index = block.index();
    let mut report = CheckReport::default();
    let mut previous: Option<rthanos_model::Labels> = None;
    for id in index.all_postings()? {
        let series = match index.series(id) {
            Ok(series) => series,
            Err(e) => {
                report.issue(format!("series {id}: {e}"));
                continue;
            }
        };
        report.series += 1;
        let labels = &series.labels;
        if labels.is_empty() {
            report.issue(format!("series {id} has no labels"));
        }
        for pair in labels.iter().collect::<Vec<_>>().windows(2) {
            if pair[0].name >= pair[1].name {
                report.issue(format!(
                    "series {labels}: label names out of order or repeated"
                ));
            }
        }
        if labels
            .iter()
            .any(|l| l.value.is_empty() || l.name.is_empty())
        {
            report.issue(format!("series {labels}: empty label name or value"));
        }
        if previous.as_ref().is_some_and(|p| p >= labels) {
            report.issue(format!("series {labels}: out of order or repeated"));
        }
        let mut last_max: Option<i64> = None;
        for chunk in &series.chunks {
            report.chunks += 1;
            if chunk.min_time > chunk.max_time {
                report.issue(format!("series {labels}: chunk ends before it starts"));
            }
            if last_max.is_some_and(|m| chunk.min_time <= m) {
                report.issue(format!(
                    "series {labels}: chunks overlap or are out of order"
                ));
            }
            last_max = Some(chunk.max_time);
            if chunk.min_time < meta.min_time || chunk.max_time >= meta.max_time {
                report.issue(format!(
                    "series {labels}: chunk {}..{} outside the block's {}..{}",
                    chunk.min_time, chunk.max_time, meta.min_time, meta.max_time
                ));
            }
            match block.chunks().chunk(chunk.reference) {
                Ok(data) => match data.num_samples() {
                    Ok(0) => report.issue(format!("series {labels}: empty chunk")),
                    Ok(n) => report.samples += n as u64,
                    Err(e) => report.issue(format!("series {labels}: chunk: {e}")),
                },
                Err(e) => report.issue(format!("series {labels}: {e}")),
            }
        }
        previous = Some(series.labels);
    }
    let stats = &meta.stats;
    if (stats.num_series, stats.num_chunks, stats.num_samples)
        != (report.series, report.chunks, report.samples)
        && (stats.num_series, stats.num_chunks) != (0, 0)
    {
        report.issue(format!(
            "meta.json counts {} series, {} chunks, {} samples; the block has {}, {}, {}",
            stats.num_series,
            stats.num_chunks,
            stats.num_samples,
            report.series,
            report.chunks,
            report.samples
        ));
    }
    Ok(report)
}
