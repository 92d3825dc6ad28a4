//! Where the group evaluation puts rule results (one WAL commit per rule): the ruler's own
//! TSDB, where `ALERTS_FOR_STATE` is also read back after a restart, or in stateless mode the
//! remote-write log, sent on to the `--remote-write.config` targets.

use std::sync::Arc;

use rthanos_model::{Labels, Matcher};
use rthanos_tsdb::db::Db;
use rthanos_tsdb::head::AppendError;

use crate::group::{ForStateSource, Refusal, SampleSink};

/// A [`Db`] taking rule results.
#[derive(Clone)]
pub struct DbStorage {
    db: Arc<Db>,
}

impl DbStorage {
    /// Results go to `db`.
    pub fn new(db: Arc<Db>) -> Self {
        DbStorage { db }
    }
}

impl SampleSink for DbStorage {
    fn append(&self, ts: i64, samples: &[(Labels, f64)]) -> Result<Vec<Option<Refusal>>, String> {
        let mut app = self.db.appender();
        let refusals = samples
            .iter()
            .map(|(labels, v)| match app.append(labels, ts, *v) {
                Ok(_) => None,
                Err(AppendError::OutOfOrder) => Some(Refusal::OutOfOrder),
                Err(AppendError::OutOfBounds) => Some(Refusal::TooOld),
                Err(AppendError::DuplicateSampleForTimestamp) => Some(Refusal::Duplicate),
                Err(e) => Some(Refusal::Other(e.to_string())),
            })
            .collect();
        app.commit().map_err(|e| e.to_string())?;
        Ok(refusals)
    }
}

#[async_trait::async_trait]
impl ForStateSource for DbStorage {
    async fn last_sample(
        &self,
        labels: &Labels,
        min_time: i64,
        max_time: i64,
    ) -> Option<(i64, f64)> {
        let matchers: Vec<Matcher> = labels
            .iter()
            .map(|l| Matcher::equal(l.name.clone(), l.value.clone()))
            .collect();
        let selected = match self.db.select(&matchers, min_time, max_time) {
            Ok(selected) => selected,
            Err(e) => {
                tracing::warn!(err = %e, series = %labels, "reading 'for' state failed");
                return None;
            }
        };
        let (_, chunks) = selected.into_iter().find(|(l, _)| l == labels)?;
        let mut last = None;
        for chunk in &chunks {
            let chunk = rthanos_chunkenc::Chunk::new(chunk.encoding, &chunk.data);
            let Ok(samples) = chunk.xor_samples() else {
                continue;
            };
            for (t, v) in samples.map_while(Result::ok) {
                if (min_time..=max_time).contains(&t) && last.is_none_or(|(lt, _)| t > lt) {
                    last = Some((t, v));
                }
            }
        }
        last
    }
}

/// The remote-write log of stateless mode taking rule results.
#[derive(Clone)]
pub struct RemoteWriteStorage {
    store: Arc<rthanos_remote_write::WalStore>,
}

impl RemoteWriteStorage {
    /// Results go to `store`.
    pub fn new(store: Arc<rthanos_remote_write::WalStore>) -> Self {
        RemoteWriteStorage { store }
    }
}

impl SampleSink for RemoteWriteStorage {
    fn append(&self, ts: i64, samples: &[(Labels, f64)]) -> Result<Vec<Option<Refusal>>, String> {
        let refusals = self
            .store
            .append(samples.iter().map(|(labels, v)| (labels, ts, *v)))
            .map_err(|e| e.to_string())?;
        Ok(refusals
            .into_iter()
            .map(|r| {
                r.map(|why| match why {
                    rthanos_remote_write::Refusal::OutOfOrder => Refusal::OutOfOrder,
                    rthanos_remote_write::Refusal::Invalid(why) => Refusal::Other(why),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_go_in_and_the_newest_sample_comes_back() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (db, _) = Db::open(tmp.path(), Default::default()).expect("open");
        let storage = DbStorage::new(Arc::new(db));
        let a = Labels::from_pairs([("__name__", "ALERTS_FOR_STATE"), ("alertname", "A")]);
        let b = Labels::from_pairs([("__name__", "ALERTS_FOR_STATE"), ("alertname", "B")]);
        let out = storage
            .append(1000, &[(a.clone(), 1.0), (b.clone(), 1.0)])
            .expect("append");
        assert_eq!(out, [None, None]);
        storage.append(2000, &[(a.clone(), 2.0)]).expect("append");
        let out = storage.append(1500, &[(a.clone(), 3.0)]).expect("append");
        assert_eq!(out, [Some(Refusal::OutOfOrder)]);
        assert_eq!(storage.last_sample(&a, 0, 5000).await, Some((2000, 2.0)));
        assert_eq!(storage.last_sample(&a, 0, 1999).await, Some((1000, 1.0)));
        assert_eq!(storage.last_sample(&b, 1001, 5000).await, None);
        let prefix = Labels::from_pairs([("__name__", "ALERTS_FOR_STATE")]);
        assert_eq!(
            storage.last_sample(&prefix, 0, 5000).await,
            None,
            "exact labels only"
        );
    }
}
