//! The index cache: postings lists and series entries read from the bucket, kept in memory
//! up to `--index-cache-size` bytes (a moka cache weighted by size, least recently used out
//! first), with Thanos's `thanos_store_index_cache_*` metrics.

use bytes::Bytes;
use prometheus::{IntCounterVec, Opts, Registry};

/// Memory an entry costs beyond its key and value: the entry, its key's allocation, and the
/// cache's bookkeeping.
const ENTRY_OVERHEAD: usize = 256;

/// What a cache entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemType {
    /// A postings list, by label name and value.
    Postings,
    /// A series entry, by series ID.
    Series,
}

impl ItemType {
    fn name(self) -> &'static str {
        match self {
            ItemType::Postings => "Postings",
            ItemType::Series => "Series",
        }
    }
}

/// A cache key: the block, the item type, and the item (label pair or series ID).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    block: ulid::Ulid,
    item: Item,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    Postings(String, String),
    Series(u64),
}

impl Key {
    /// The postings list of `name="value"` in `block`.
    pub fn postings(block: ulid::Ulid, name: &str, value: &str) -> Self {
        Self {
            block,
            item: Item::Postings(name.to_string(), value.to_string()),
        }
    }

    /// The series entry `id` of `block`.
    pub fn series(block: ulid::Ulid, id: u64) -> Self {
        Self {
            block,
            item: Item::Series(id),
        }
    }

    fn item_type(&self) -> ItemType {
        match self.item {
            Item::Postings(..) => ItemType::Postings,
            Item::Series(_) => ItemType::Series,
        }
    }
}

/// The in-memory index cache.
pub struct IndexCache {
    cache: moka::sync::Cache<Key, Bytes>,
    requests: IntCounterVec,
    hits: IntCounterVec,
}

impl IndexCache {
    /// A cache of at most `max_bytes`, its metrics registered in `registry`.
    pub fn new(max_bytes: u64, registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "thanos_store_index_cache_requests_total",
                "Total number of items requests to the cache.",
            ),
            &["item_type"],
        )?;
        let hits = IntCounterVec::new(
            Opts::new(
                "thanos_store_index_cache_hits_total",
                "Total number of items requests to the cache that were a hit.",
            ),
            &["item_type"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(hits.clone()))?;
        for t in [ItemType::Postings, ItemType::Series] {
            requests.with_label_values(&[t.name()]);
            hits.with_label_values(&[t.name()]);
        }
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            // Weighed by the bytes kept, the key, and the cache's own cost per entry (about
            // 250 bytes measured with massif), so --index-cache-size bounds real memory.
            .weigher(|key: &Key, value: &Bytes| {
                let key_len = match &key.item {
                    Item::Postings(n, v) => n.len() + v.len(),
                    Item::Series(_) => 8,
                };
                u32::try_from(value.len() + key_len + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .build();
        Ok(Self {
            cache,
            requests,
            hits,
        })
    }

    /// The cached bytes of `key`, counting the request and the hit.
    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let kind = key.item_type().name();
        self.requests.with_label_values(&[kind]).inc();
        let found = self.cache.get(key);
        if found.is_some() {
            self.hits.with_label_values(&[kind]).inc();
        }
        found
    }

    /// Keeps `value` for `key`.
    pub fn insert(&self, key: Key, value: Bytes) {
        self.cache.insert(key, value);
    }
}
