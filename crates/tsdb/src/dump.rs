//! `tools tsdb dump`: every sample of the blocks of a TSDB directory, one line each, in the
//! text of `promtool tsdb dump` (`{labels} value timestamp`, value as Go's `%g`), so the two
//! outputs can be diffed. Series are merged across blocks and printed in label order.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rthanos_model::Labels;

use crate::{Block, TsdbError};

/// Which samples to dump.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// Only this block (its ULID); all blocks when `None`.
    pub block: Option<String>,
    /// Earliest timestamp, inclusive.
    pub min_time: i64,
    /// Latest timestamp, inclusive.
    pub max_time: i64,
}

impl Default for DumpOptions {
    fn default() -> Self {
        Self {
            block: None,
            min_time: i64::MIN,
            max_time: i64::MAX,
        }
    }
}

/// The block directories of a TSDB directory (those with a meta.json), in name (time) order.
pub fn block_dirs(tsdb: &Path) -> Result<Vec<PathBuf>, TsdbError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tsdb)
        .map_err(|e| TsdbError::io(tsdb, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Writes the dump of the blocks under `tsdb` to `out`.
pub fn dump(tsdb: &Path, options: &DumpOptions, out: &mut impl Write) -> Result<(), TsdbError> {
    let mut blocks = Vec::new();
    for dir in block_dirs(tsdb)? {
        let block = Block::open(&dir)?;
        if options
            .block
            .as_deref()
            .is_none_or(|ulid| ulid == block.meta().ulid)
        {
            blocks.push(block);
        }
    }
    if let Some(ulid) = &options.block
        && blocks.is_empty()
    {
        return Err(TsdbError::Meta(format!(
            "no block {ulid} in {}",
            tsdb.display()
        )));
    }
    // Series of every block, by labels, with their chunk metas (read once, in the time range).
    type Place = (usize, u64, Vec<crate::index::ChunkMeta>);
    let mut series: BTreeMap<Labels, Vec<Place>> = BTreeMap::new();
    for (b, block) in blocks.iter().enumerate() {
        for id in block.index().all_postings()? {
            let mut entry = block.index().series(id)?;
            entry
                .chunks
                .retain(|c| c.max_time >= options.min_time && c.min_time <= options.max_time);
            series
                .entry(entry.labels)
                .or_default()
                .push((b, id, entry.chunks));
        }
    }
    let stdout_err = |e: std::io::Error| TsdbError::io(Path::new("<output>"), e);
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut line = String::new();
    for (labels, places) in series {
        samples.clear();
        for (b, id, chunks) in places {
            let block = &blocks[b];
            for meta in &chunks {
                let chunk = block.chunks().chunk(meta.reference)?;
                let iter = chunk
                    .xor_samples()
                    .map_err(|e| TsdbError::corrupt("chunk", &e.to_string()))?;
                for sample in iter {
                    let (t, v) = sample.map_err(|e| TsdbError::corrupt("chunk", &e.to_string()))?;
                    if t >= options.min_time
                        && t <= options.max_time
                        && !block.tombstones().is_deleted(id, t)
                    {
                        samples.push((t, v));
                    }
                }
            }
        }
        // Overlapping blocks: time order, one sample per timestamp.
        samples.sort_by_key(|s| s.0);
        samples.dedup_by_key(|s| s.0);
        let prefix = labels.to_string();
        for &(t, v) in &samples {
            line.clear();
            line.push_str(&prefix);
            line.push(' ');
            format_go_g(&mut line, v);
            line.push(' ');
            line.push_str(&t.to_string());
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(stdout_err)?;
        }
    }
    Ok(())
}

/// Appends `v` as Go's `%g` (`strconv.FormatFloat(v, 'g', -1, 64)`) writes it: the shortest
/// digits that round-trip, in exponent form (`1.234567e+06`, `1.234e-05`) when the decimal
/// exponent is below -4 or at least 6, else plain (`123456`, `0.0001234`).
pub fn format_go_g(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-d.ddde<exp>".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if let Some(rest) = mantissa.strip_prefix('-') {
        out.push('-');
        push_digits(out, rest, exp);
    } else {
        push_digits(out, mantissa, exp);
    }
}

fn push_digits(out: &mut String, mantissa: &str, exp: i32) {
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned to what promtool 2.42 prints for these values.
    #[test]
    fn floats_print_as_go_percent_g() {
        for (v, want) in [
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001234, "0.0001234"),
            (0.00001234, "1.234e-05"),
            (-1e21, "-1e+21"),
            (100.0, "100"),
            (1e6, "1e+06"),
            (0.1, "0.1"),
            (-0.0, "-0"),
            (5e-324, "5e-324"),
            (1.5, "1.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (17.234, "17.234"),
        ] {
            let mut s = String::new();
            format_go_g(&mut s, v);
            assert_eq!(s, want, "{v:e}");
        }
    }
}
