//! PromQL evaluation with Prometheus 2.x semantics, over any storage.
//!
//! Queries are parsed by the `promql-parser` crate and evaluated here: every selector's data is
//! fetched first through the [`Queryable`] trait (the querier plugs its StoreAPI fan-out in,
//! tests an in-memory store), then the expression is evaluated for all steps of the query at
//! once, series by series: an instant query is a range query of one step.
//!
//! Gaps of the parser against Prometheus 2.42: `promql-parser` 0.11 follows Prometheus 3, so
//! `holt_winters` is known to it as `double_exponential_smoothing` (we accept the 2.x name and
//! refuse the 3.x one), and Prometheus 3 additions (`limitk`, `limit_ratio`, `info`,
//! `sort_by_label`, `{a="1" or b="2"}`, fill modifiers, …) are refused as Prometheus 2.42
//! refuses them.

mod aggregate;
mod binary;
mod context;
mod engine;
mod error;
mod function;
mod functions;
mod parse;
mod plan;
mod quantile;
mod steps;
mod storage;
mod value;
mod windows;

pub use engine::{Engine, EngineOptions};
pub use error::QueryError;
pub use function::{Aggregation, Function, SelectFunc};
pub use parse::{MAX_DEPTH, ParsedQuery, parse_query, parse_selector, selectors};
pub use storage::{MemoryStorage, Queryable, SelectHints, StorageError};
pub use value::{DeferredSamples, InstantSample, Sample, Series, Value, XorChunk, format_value};
