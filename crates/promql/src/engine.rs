//! The evaluator: fetches every selector's series, then evaluates the expression for all steps
//! at once. Intermediate instant vectors are series with one optional value per step, so each
//! node runs once per query, not once per step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use promql_parser::parser::{Expr, VectorSelector};
use rthanos_model::Labels;

use crate::context::{
    Ctx, StepSeries, Val, drop_name, millis, offset_ms, step_times, too_many_steps, unique_labels,
};
use crate::error::{QueryError, exec_err};
use crate::parse::ParsedQuery;
use crate::plan::{Fetch, Walk, collect, selector_matchers};
use crate::steps::{SampleBudget, StepValues};
use crate::storage::{Queryable, SelectHints};
use crate::value::{InstantSample, Sample, Series, Value, is_stale};
use crate::windows::{Windows, matrix_windows, reference_span, series_samples, subquery_windows};

/// Engine settings (the querier's `--query.*` flags).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// `--query.lookback-delta`: how far back an instant selector looks for a sample.
    pub lookback_delta: Duration,
    /// `--query.max-samples`: most samples held at once by one query.
    pub max_samples: usize,
    /// `--query.timeout`.
    pub timeout: Duration,
    /// Step of subqueries that give none (Prometheus: the global evaluation interval).
    pub default_subquery_step: Duration,
    /// `--query.max-concurrency`: queries evaluated at once; more wait for a slot.
    pub max_concurrency: usize,
    /// `--query.max-concurrent-select`: selects of one query made at once.
    pub max_concurrent_select: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
            max_concurrency: 20,
            max_concurrent_select: 4,
        }
    }
}

/// The PromQL engine.
#[derive(Clone, Debug)]
pub struct Engine {
    options: EngineOptions,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(EngineOptions::default())
    }
}

impl Engine {
    /// An engine with `options`.
    pub fn new(options: EngineOptions) -> Self {
        let slots = Arc::new(tokio::sync::Semaphore::new(options.max_concurrency.max(1)));
        Self { options, slots }
    }

    /// This engine (its concurrency slots shared) with a timeout of at most `timeout`: a
    /// request's own `timeout` parameter. Zero makes every query time out at once.
    pub fn with_timeout(&self, timeout: Duration) -> Engine {
        let mut options = self.options.clone();
        options.timeout = options.timeout.min(timeout);
        Engine {
            options,
            slots: Arc::clone(&self.slots),
        }
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at time `t` (ms).
    pub async fn instant_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        t: i64,
    ) -> Result<Value, QueryError> {
        let parsed = Arc::new(crate::parse::parse_query(query)?);
        let val = self.run(storage, parsed, t, t, 0).await?;
        Ok(match val {
            Val::Scalar(v) => Value::Scalar { t, v: v[0] },
            Val::String(s) => Value::String { t, s },
            Val::Vector(series) => Value::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        s.values.get(0).map(|v| InstantSample {
                            labels: s.labels,
                            t,
                            v,
                        })
                    })
                    .collect(),
            ),
            Val::Matrix(m) => Value::Matrix(m),
        })
    }

    /// Evaluates `query` from `start` to `end` every `step` (ms).
    pub async fn range_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value, QueryError> {
        if step <= 0 {
            return Err(QueryError::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(QueryError::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        let parsed = Arc::new(crate::parse::parse_query(query)?);
        let kind = parsed.on_stack(Expr::value_type);
        if kind != promql_parser::parser::value::ValueType::Scalar
            && kind != promql_parser::parser::value::ValueType::Vector
        {
            return Err(QueryError::Parse(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                match kind {
                    promql_parser::parser::value::ValueType::Matrix => "range vector",
                    _ => "string",
                }
            )));
        }
        // Every step holds at least a scalar's value: refuse before allocating them.
        if too_many_steps(start, end, step, self.options.max_samples) {
            return Err(QueryError::TooManySamples("query execution"));
        }
        let steps = step_times(start, end, step);
        let val = self.run(storage, parsed, start, end, step).await?;
        Ok(Value::Matrix(to_matrix(val, &steps)))
    }

    /// Selects the data of `expr` (on the caller's task) and evaluates it on a blocking
    /// thread, so that a long evaluation never holds an async worker: probes, gRPC health and
    /// other requests go on being answered while heavy queries run. The selected data is
    /// keyed by the address of its selector in the expression, which the `Arc` keeps in place.
    async fn run(
        &self,
        storage: &dyn Queryable,
        parsed: Arc<ParsedQuery>,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Val, QueryError> {
        if self.options.timeout.is_zero() {
            return Err(QueryError::Timeout("query queue"));
        }
        let deadline = Instant::now() + self.options.timeout;
        // A slot first; the wait counts against the query's timeout, as in Prometheus.
        let slot = tokio::time::timeout(
            self.options.timeout,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        .map_err(|_| QueryError::Timeout("query queue"))?
        .map_err(|_| QueryError::Timeout("query queue"))?;
        // Zero means the default, as Prometheus's engine reads it.
        let lookback = match millis(&self.options.lookback_delta) {
            0 => 300_000,
            ms => ms,
        };
        let mut fetches = Vec::new();
        let walk = Walk {
            start,
            end,
            lookback,
            query: (start, end),
            options: &self.options,
            func: None,
            grouping: None,
        };
        parsed.on_stack(|expr| collect(expr, &walk, &mut fetches));
        // The selectors' selects run together, `max_concurrent_select` at a time, as
        // Thanos's querier makes them.
        let mut data = HashMap::new();
        // 0 is no limit, as Thanos's gate reads it.
        let limit = match self.options.max_concurrent_select {
            0 => usize::MAX,
            n => n,
        };
        let mut waiting = fetches.into_iter();
        let mut running = futures::stream::FuturesUnordered::new();
        loop {
            while running.len() < limit {
                let Some(fetch) = waiting.next() else { break };
                running.push(select_one(storage, fetch, step, deadline));
            }
            let Some(selected) = running.next().await else {
                break;
            };
            let (key, selected) = selected?;
            data.insert(key, Arc::new(selected));
        }
        // They borrow the expression, which the evaluation takes next.
        drop(running);
        drop(waiting);
        let steps: Vec<i64> = if step == 0 {
            vec![start]
        } else {
            step_times(start, end, step)
        };
        let options = self.options.clone();
        let budget = SampleBudget::new(options.max_samples);
        let inline = evaluates_inline(&parsed, steps.len(), &data);
        // The slot goes with the evaluation: a caller that gives up does not free it while
        // the evaluation still runs (to its deadline).
        let evaluate = move || {
            let _slot = slot;
            let ctx = Ctx {
                steps,
                lookback,
                query_start: start,
                query_end: end,
                data: &data,
                options: &options,
                deadline,
                budget: &budget,
            };
            parsed.on_stack(|expr| eval(expr, &ctx))
        };
        if inline {
            return evaluate();
        }
        let evaluation = tokio::task::spawn_blocking(evaluate);
        match evaluation.await {
            Ok(result) => result,
            // A panic in the evaluation is the query's error, not the process's end.
            Err(e) => exec_err(format!("query evaluation failed: {e}")),
        }
    }
}

/// Data up to which an instant query is evaluated where its data arrived.
const INLINE_EVALUATION_BYTES: usize = 256 * 1024;

/// Whether an evaluation is small enough to run on the async worker that fetched its data
/// rather than on the blocking pool: an instant query without subqueries over at most
/// [`INLINE_EVALUATION_BYTES`] of data takes less time than the hop to the pool and back
/// (two thread wake-ups, a third of a small query's time; docs/performance.md). Anything
/// larger goes to the pool, so that probes and other requests never wait behind it.
fn evaluates_inline(
    parsed: &ParsedQuery,
    steps: usize,
    data: &HashMap<usize, Arc<Vec<Series>>>,
) -> bool {
    if steps != 1 || parsed.on_stack(has_subquery) {
        return false;
    }
    let mut bytes = 0usize;
    for series in data.values().flat_map(|s| s.iter()) {
        bytes = bytes.saturating_add(series.encoded_bytes());
        if bytes > INLINE_EVALUATION_BYTES {
            return false;
        }
    }
    true
}

fn has_subquery(expr: &Expr) -> bool {
    match expr {
        Expr::Subquery(_) => true,
        Expr::Aggregate(a) => has_subquery(&a.expr) || a.param.as_deref().is_some_and(has_subquery),
        Expr::Unary(u) => has_subquery(&u.expr),
        Expr::Binary(b) => has_subquery(&b.lhs) || has_subquery(&b.rhs),
        Expr::Paren(p) => has_subquery(&p.expr),
        Expr::Call(c) => c.args.args.iter().any(|a| has_subquery(a)),
        _ => false,
    }
}

/// The series of one selector, keyed by the selector's address in the expression.
async fn select_one(
    storage: &dyn Queryable,
    fetch: Fetch<'_>,
    step: i64,
    deadline: Instant,
) -> Result<(usize, Vec<Series>), QueryError> {
    let key = fetch.node as *const VectorSelector as usize;
    let matchers = selector_matchers(fetch.node)?;
    let hints = SelectHints {
        step,
        ..fetch.hints
    };
    let selected = tokio_timeout(deadline, storage.select(&matchers, &hints)).await??;
    Ok((key, selected))
}

async fn tokio_timeout<T>(
    deadline: Instant,
    fut: impl Future<Output = T>,
) -> Result<T, QueryError> {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, fut)
        .await
        .map_err(|_| QueryError::Timeout("query preparation"))
}

/// A range query's result: one series per label set, points where it has a value.
fn to_matrix(val: Val, steps: &[i64]) -> Vec<Series> {
    let mut out: Vec<Series> = match val {
        Val::Scalar(values) => vec![Series::new(
            Labels::default(),
            steps
                .iter()
                .zip(values)
                .map(|(&t, v)| Sample { t, v })
                .collect(),
        )],
        Val::Vector(series) => series
            .into_iter()
            .map(|s| {
                Series::new(
                    s.labels,
                    s.values
                        .iter()
                        .map(|(i, v)| Sample { t: steps[i], v })
                        .collect(),
                )
            })
            .filter(|s| !s.samples.is_empty())
            .collect(),
        Val::Matrix(m) => m,
        Val::String(_) => Vec::new(),
    };
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// Evaluates a node over the context's steps, holding it to `--query.max-samples` as
/// Prometheus counts: while a node runs, what its inputs hold counts; when it is done they are
/// let go and its result (the values it produced over all steps) counts instead.
pub(crate) fn eval(expr: &Expr, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    ctx.check_deadline()?;
    let before = ctx.budget.held();
    let val = eval_node(expr, ctx)?;
    let held = match &val {
        Val::Vector(series) => series.iter().map(|s| s.values.len()).sum(),
        Val::Matrix(series) => series.iter().map(|s| s.samples.len()).sum(),
        Val::Scalar(values) => values.len(),
        Val::String(_) => 0,
    };
    ctx.budget.hold(before.saturating_add(held))?;
    Ok(val)
}

fn eval_node(expr: &Expr, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    match expr {
        Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; ctx.steps.len()])),
        Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
        Expr::Paren(p) => eval(&p.expr, ctx),
        Expr::Unary(u) => match eval(&u.expr, ctx)? {
            Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
            Val::Vector(series) => {
                let out = series
                    .into_iter()
                    .map(|mut s| {
                        s.values.values_mut().iter_mut().for_each(|x| *x = -*x);
                        StepSeries {
                            labels: drop_name(&s.labels),
                            values: s.values,
                        }
                    })
                    .collect();
                unique_labels(out)
            }
            _ => exec_err("unary minus needs a scalar or an instant vector"),
        },
        Expr::VectorSelector(vs) => Ok(Val::Vector(eval_vector_selector(vs, ctx, false)?.0)),
        Expr::MatrixSelector(ms) => {
            let windows = matrix_windows(&ms.vs, millis(&ms.range), ctx)?;
            first_windows(&windows, ctx)
        }
        Expr::Subquery(sq) => {
            let windows = subquery_windows(sq, ctx)?;
            first_windows(&windows, ctx)
        }
        Expr::Aggregate(a) => crate::aggregate::eval_aggregate(a, ctx),
        Expr::Binary(b) => crate::binary::eval_binary(b, ctx),
        Expr::Call(c) => crate::functions::eval_call(c, ctx),
        Expr::Extension(_) => exec_err("extension expressions are not supported"),
    }
}

/// An instant query's range result: each series' samples in the (only) step's window.
fn first_windows(windows: &[Windows<'_>], ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let mut out = Vec::with_capacity(windows.len());
    for w in windows {
        let loaded = w.load(&ctx.steps)?;
        if let Some((0, samples)) = loaded.windows().next() {
            ctx.budget.take(samples.len())?;
            out.push(Series::new(w.labels.clone(), samples.to_vec()));
        }
    }
    Ok(Val::Matrix(out))
}

/// An instant selector at each step: the latest sample in [t - lookback, t] (after offset and
/// @), unless it is a staleness marker. With `stamps`, also returns, per series, each present
/// value's own timestamp (for `timestamp()`), in the order of its values.
pub(crate) fn eval_vector_selector(
    vs: &VectorSelector,
    ctx: &Ctx<'_>,
    stamps: bool,
) -> Result<(Vec<StepSeries>, Vec<Vec<i64>>), QueryError> {
    let data = ctx.series_of(vs);
    let offset = offset_ms(&vs.offset);
    let at = ctx.at_ms(&vs.at);
    let reference = |step: i64| at.unwrap_or(step).saturating_sub(offset);
    let mut out = Vec::new();
    let mut times = Vec::new();
    // Only the samples some step can see: from the first step's lookback to the last step.
    let Some((first, max_t)) = reference_span(&ctx.steps, at, offset) else {
        return Ok((out, times));
    };
    let min_t = first.saturating_sub(ctx.lookback);
    for stored in data.iter() {
        let samples = series_samples(stored, min_t, max_t)?;
        let mut values = StepValues::new();
        let mut own_times = Vec::new();
        // The reference times never go back, so one cursor walks the samples; steps where
        // the series can have no value (before its next sample) are skipped, so a short-lived
        // series costs its samples, not the query's steps.
        let mut idx = 0usize;
        let mut i = 0usize;
        while i < ctx.steps.len() {
            let t = reference(ctx.steps[i]);
            // Past the last sample at or before the reference time.
            while idx < samples.len() && samples[idx].t <= t {
                idx += 1;
            }
            let found = idx
                .checked_sub(1)
                .map(|k| samples[k])
                .filter(|s| s.t >= t.saturating_sub(ctx.lookback) && !is_stale(s.v));
            if let Some(s) = found {
                values.push(i, s.v);
                if stamps {
                    own_times.push(s.t);
                }
                i += 1;
                continue;
            }
            // Nothing until the reference time reaches the next sample.
            let Some(next) = samples.get(idx) else { break };
            i += 1 + ctx.steps[i + 1..].partition_point(|&step| reference(step) < next.t);
        }
        if !values.is_empty() {
            ctx.budget.take(values.len())?;
            out.push(StepSeries {
                labels: stored.labels.clone(),
                values,
            });
            times.push(own_times);
        }
    }
    Ok((out, times))
}
