//! The ruler (`rthanos rule`): recording and alerting rules evaluated over the querier's
//! global view, their results kept in a TSDB of its own (`rthanos-tsdb`'s head and WAL).
//! This crate holds the rule files' format, read and checked as Prometheus 2.42's `rulefmt`
//! reads and checks them, with Thanos's per-group `partial_response_strategy` (`rulefmt`);
//! the groups' evaluation slots (`schedule`); a recording rule's results and staleness
//! (`recording`); and an alerting rule's states (`alerting`).
//! The evaluation loop and alert delivery build on them.

pub mod alerting;
pub mod api;
pub mod group;
pub mod manager;
pub mod querier;
pub mod recording;
pub mod rulefmt;
pub mod schedule;
pub mod storage;
pub mod store;
