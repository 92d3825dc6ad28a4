//! `meta.json`: a block's identity, time range, statistics and compaction history as Prometheus
//! writes them, plus the `thanos` section (external labels, resolution, source, files). Fields
//! this version does not know are kept, so rewriting a meta.json never drops what a newer
//! Prometheus or Thanos put there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::TsdbError;

/// A block's meta.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// The block's ULID, as a string.
    pub ulid: String,
    /// First timestamp in the block (ms, inclusive).
    pub min_time: i64,
    /// End of the block's range (ms, exclusive).
    pub max_time: i64,
    /// Sample, series and chunk counts.
    #[serde(default)]
    pub stats: BlockStats,
    /// Compaction history.
    pub compaction: Compaction,
    /// Format version; 1.
    pub version: u32,
    /// Thanos's section, absent in blocks Prometheus wrote on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
    /// Fields of newer versions, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `stats` of meta.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    /// Samples in the block.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    /// Series in the block.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    /// Chunks in the block.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    /// Tombstones in the block.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
    /// Fields of newer versions (e.g. float/histogram sample counts).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `compaction` of meta.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 for a block cut from the head; +1 for each compaction.
    pub level: u32,
    /// ULIDs of the level-1 blocks this block holds the data of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The blocks this one was compacted from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    /// Set when the compaction that made this block failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Set on blocks that may be deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletable: bool,
    /// Fields of newer versions.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A parent block in `compaction.parents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDesc {
    /// The parent's ULID.
    pub ulid: String,
    /// Its first timestamp.
    pub min_time: i64,
    /// Its end timestamp.
    pub max_time: i64,
}

/// The `thanos` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    /// External labels of the Prometheus the data came from.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Resolution of the data.
    #[serde(default)]
    pub downsample: Downsample,
    /// What made the block: "sidecar", "compactor", "receive", "ruler", "bucket.rewrite", …
    #[serde(default)]
    pub source: String,
    /// Chunk segment file names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    /// Every file of the block and its size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<BlockFile>,
    /// Largest series and chunk sizes in the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_stats: Option<IndexStats>,
    /// Fields of newer versions (e.g. `upload_time`, `extensions`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `thanos.downsample`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    /// Milliseconds between downsampled points: 0 (raw), 300000 (5m), 3600000 (1h).
    pub resolution: i64,
}

/// An entry of `thanos.files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    /// Path inside the block directory, e.g. `chunks/000001`.
    pub rel_path: String,
    /// Size in bytes (absent for meta.json itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Hash of the file, when one was computed (`--hash-func`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<serde_json::Value>,
}

/// `thanos.index_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    /// Largest series entry in the index, in bytes.
    #[serde(default)]
    pub series_max_size: i64,
    /// Largest chunk, in bytes.
    #[serde(default)]
    pub chunk_max_size: i64,
}

impl BlockMeta {
    /// Parses meta.json, checking what readers rely on: version 1 and a non-empty time range.
    pub fn parse(bytes: &[u8]) -> Result<Self, TsdbError> {
        let meta: BlockMeta =
            serde_json::from_slice(bytes).map_err(|e| TsdbError::Meta(e.to_string()))?;
        if meta.version != 1 {
            return Err(TsdbError::Meta(format!(
                "unsupported meta.json version {}",
                meta.version
            )));
        }
        if meta.max_time < meta.min_time {
            return Err(TsdbError::Meta(format!(
                "maxTime {} before minTime {}",
                meta.max_time, meta.min_time
            )));
        }
        Ok(meta)
    }

    /// meta.json text, tab-indented as Prometheus writes it.
    pub fn to_json(&self) -> Result<Vec<u8>, TsdbError> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        self.serialize(&mut ser)
            .map_err(|e| TsdbError::Meta(e.to_string()))?;
        Ok(out)
    }

    /// The data's resolution in ms (0 for raw blocks, and for blocks without a thanos section).
    pub fn resolution(&self) -> i64 {
        self.thanos.as_ref().map_or(0, |t| t.downsample.resolution)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THANOS_META: &str = r#"{
	"ulid": "01HQ5Z8N9P3W5E8T6Y7G9K2M4N",
	"minTime": 1700000000000,
	"maxTime": 1700007200000,
	"stats": {"numSamples": 1234, "numSeries": 10, "numChunks": 20, "numFloatSamples": 1234},
	"compaction": {"level": 2, "sources": ["01A", "01B"], "parents": [{"ulid": "01A", "minTime": 1, "maxTime": 2}]},
	"version": 1,
	"thanos": {
		"labels": {"cluster": "eu", "replica": "0"},
		"downsample": {"resolution": 300000},
		"source": "compactor",
		"segment_files": ["000001"],
		"files": [{"rel_path": "chunks/000001", "size_bytes": 100}, {"rel_path": "meta.json"}],
		"index_stats": {"series_max_size": 300, "chunk_max_size": 200},
		"upload_time": "2024-01-01T00:00:00Z"
	}
}"#;

    #[test]
    fn thanos_meta_round_trips_keeping_unknown_fields() {
        let meta = BlockMeta::parse(THANOS_META.as_bytes()).expect("parse");
        assert_eq!(meta.resolution(), 300_000);
        assert_eq!(meta.compaction.parents[0].ulid, "01A");
        let thanos = meta.thanos.as_ref().expect("thanos");
        assert_eq!(thanos.labels["cluster"], "eu");
        assert_eq!(thanos.files[1].size_bytes, None);
        let again = BlockMeta::parse(&meta.to_json().expect("json")).expect("reparse");
        assert_eq!(again, meta);
        let text = String::from_utf8(meta.to_json().expect("json")).expect("utf8");
        assert!(
            text.contains("\"upload_time\"") && text.contains("\"numFloatSamples\""),
            "{text}"
        );
    }

    #[test]
    fn bad_meta_is_an_error() {
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"ulid":"x","minTime":5,"maxTime":1,"compaction":{"level":1},"version":1}"#,
            r#"{"ulid":"x","minTime":1,"maxTime":5,"compaction":{"level":1},"version":2}"#,
        ] {
            assert!(BlockMeta::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
