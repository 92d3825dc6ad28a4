//! The ruler (`rthanos rule`): recording and alerting rules evaluated over the querier's
//! global view, their results kept in a TSDB of its own (`rthanos-tsdb`'s head and WAL).
//! Rule files are read and checked as Prometheus 2.42's `rulefmt` does, with Thanos's
//! per-group `partial_response_strategy` (`rulefmt`); the manager runs each group at its
//! aligned slots (`manager`, `schedule`); a group's evaluation (`group`) queries the querier's
//! HTTP API (`querier`), records results (`recording`) or keeps alert states (`alerting`,
//! labels and annotations expanded by Prometheus's template language, `template`), appends
//! into the TSDB (`storage`) and queues alerts for Alertmanager (`notifier`). The TSDB is
//! served over the StoreAPI (`store`), the rules over Thanos's Rules API and the HTTP API
//! (`api`).

pub mod alerting;
pub mod api;
pub mod expand;
pub mod group;
pub mod manager;
pub mod notifier;
pub mod querier;
pub mod recording;
pub mod rulefmt;
pub mod schedule;
pub mod storage;
pub mod store;
pub mod summary;
pub mod template;
