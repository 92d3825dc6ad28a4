//! A block directory on local disk: meta.json, index, chunks/ and tombstones, opened together.

use std::path::{Path, PathBuf};

use crate::chunks::ChunkReader;
use crate::index::IndexReader;
use crate::tombstones::Tombstones;
use crate::{BlockMeta, TsdbError};

/// An opened local block.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader<memmap2::Mmap>,
    chunks: ChunkReader,
    tombstones: Tombstones,
}

impl Block {
    /// Opens the block in `dir`; errors name the block and the part that is wrong.
    pub fn open(dir: &Path) -> Result<Self, TsdbError> {
        let meta_path = dir.join("meta.json");
        let meta_bytes = std::fs::read(&meta_path).map_err(|e| TsdbError::io(&meta_path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            meta: BlockMeta::parse(&meta_bytes)?,
            index: IndexReader::open(&dir.join("index"))?,
            chunks: ChunkReader::open(&dir.join("chunks"))?,
            tombstones: Tombstones::read(&dir.join("tombstones"))?,
        })
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its meta.json.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Its index.
    pub fn index(&self) -> &IndexReader<memmap2::Mmap> {
        &self.index
    }

    /// Its chunks.
    pub fn chunks(&self) -> &ChunkReader {
        &self.chunks
    }

    /// Its deleted intervals.
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }
}
