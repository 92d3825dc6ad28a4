//! Why a query fails: the errors every part of the engine returns, mapped by the HTTP API
//! onto Prometheus's status codes and error types.

use crate::storage::StorageError;

/// Why a query failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse (HTTP 400, `bad_data`).
    #[error("{0}")]
    Parse(String),
    /// The query parses but cannot be evaluated as asked (HTTP 422, `execution`).
    #[error("{0}")]
    Execution(String),
    /// Storage failed (HTTP 422/503).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `--query.max-samples` was passed.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// `--query.timeout` was passed.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
}

pub(crate) fn exec_err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError::Execution(msg.into()))
}
