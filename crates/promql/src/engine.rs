//! The evaluator: fetches every selector's series, then evaluates the expression for all steps
//! at once. Intermediate instant vectors are series with one optional value per step, so each
//! node runs once per query, not once per step.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use promql_parser::label::MatchOp;
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};
use rthanos_model::{Labels, MatchType, Matcher};

use crate::function::{Aggregation, Function, SelectFunc};
use crate::parse::ParsedQuery;
use crate::steps::{SampleBudget, StepValues};
use crate::storage::{Queryable, SelectHints, StorageError};
use crate::value::{InstantSample, Sample, Series, Value, is_stale};

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

/// A series of an instant vector over the query's steps: its values where it has one.
#[derive(Clone, Debug)]
pub(crate) struct StepSeries {
    pub(crate) labels: Labels,
    pub(crate) values: StepValues,
}

/// A value over the query's steps.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
    String(String),
    /// Only as a query's result (an instant query of a range selector or a subquery).
    Matrix(Vec<Series>),
}

/// Where evaluation is: the steps, and the data fetched for each selector.
pub(crate) struct Ctx<'a> {
    pub(crate) steps: Vec<i64>,
    pub(crate) lookback: i64,
    /// Query start and end, for `@ start()` / `@ end()`.
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    pub(crate) data: &'a HashMap<usize, Arc<Vec<Series>>>,
    pub(crate) options: &'a EngineOptions,
    pub(crate) deadline: Instant,
    /// `--query.max-samples`, shared by the whole query (and its threads).
    pub(crate) budget: &'a SampleBudget,
}

pub(crate) fn millis(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => -millis(d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => millis(&d),
        Err(e) => -millis(&e.duration()),
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|at| match at {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(t),
        })
    }

    pub(crate) fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    /// The data fetched for a selector node.
    pub(crate) fn series_of(&self, vs: &VectorSelector) -> &'a [Series] {
        self.data
            .get(&(vs as *const VectorSelector as usize))
            .map_or(&[], |s| s.as_slice())
    }

    pub(crate) fn with_steps(&self, steps: Vec<i64>) -> Ctx<'a> {
        Ctx {
            steps,
            lookback: self.lookback,
            query_start: self.query_start,
            query_end: self.query_end,
            data: self.data,
            options: self.options,
            deadline: self.deadline,
            budget: self.budget,
        }
    }
}

/// The model's matchers for a selector, its metric name included.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    let mut out = Vec::new();
    if let Some(name) = &vs.name
        && !vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
    {
        out.push(Matcher::equal("__name__", name.as_str()));
    }
    for m in &vs.matchers.matchers {
        let (kind, value) = match &m.op {
            MatchOp::Equal => (MatchType::Equal, m.value.clone()),
            MatchOp::NotEqual => (MatchType::NotEqual, m.value.clone()),
            MatchOp::Re(_) => (MatchType::Regex, m.value.clone()),
            MatchOp::NotRe(_) => (MatchType::NotRegex, m.value.clone()),
        };
        out.push(
            Matcher::new(kind, m.name.as_str(), value.as_str())
                .map_err(|e| QueryError::Parse(e.to_string()))?,
        );
    }
    Ok(out)
}

/// A selector to fetch: its node, matchers, and the times its samples are needed for.
struct Fetch<'e> {
    node: &'e VectorSelector,
    hints: SelectHints,
}

/// Where the walk over the expression is: the times its node is evaluated at, and what the
/// nearest enclosing function and aggregation are (Prometheus's select hints).
#[derive(Clone)]
struct Walk<'o> {
    start: i64,
    end: i64,
    lookback: i64,
    query: (i64, i64),
    options: &'o EngineOptions,
    func: Option<SelectFunc>,
    grouping: Option<(Vec<String>, bool)>,
}

/// Collects the selectors of `expr`, evaluated at times [walk.start, walk.end].
fn collect<'e>(expr: &'e Expr, walk: &Walk<'_>, out: &mut Vec<Fetch<'e>>) {
    let at = |at: &Option<AtModifier>| match at {
        None => None,
        Some(AtModifier::Start) => Some(walk.query.0),
        Some(AtModifier::End) => Some(walk.query.1),
        Some(AtModifier::At(t)) => Some(system_time_ms(t)),
    };
    let window = |at_time: Option<i64>, offset: i64| match at_time {
        Some(t) => (t.saturating_sub(offset), t.saturating_sub(offset)),
        None => (
            walk.start.saturating_sub(offset),
            walk.end.saturating_sub(offset),
        ),
    };
    let hints = |start: i64, end: i64, range: i64| {
        let (grouping, by) = walk.grouping.clone().unwrap_or_default();
        SelectHints {
            start,
            end,
            step: 0,
            range,
            func: walk.func,
            grouping,
            by,
        }
    };
    match expr {
        Expr::VectorSelector(vs) => {
            let (s, e) = window(at(&vs.at), offset_ms(&vs.offset));
            out.push(Fetch {
                node: vs,
                hints: hints(s.saturating_sub(walk.lookback), e, 0),
            });
        }
        Expr::MatrixSelector(MatrixSelector { vs, range }) => {
            let (s, e) = window(at(&vs.at), offset_ms(&vs.offset));
            let range = millis(range);
            out.push(Fetch {
                node: vs,
                hints: hints(s.saturating_sub(range), e, range),
            });
        }
        Expr::Subquery(sq) => {
            let (s, e) = window(at(&sq.at), offset_ms(&sq.offset));
            let range = millis(&sq.range);
            let step = sq
                .step
                .as_ref()
                .map_or(millis(&walk.options.default_subquery_step), millis);
            let first = subquery_first_step(s.saturating_sub(range), step.max(1));
            let inner = Walk {
                start: first,
                end: e,
                ..walk.clone()
            };
            collect(&sq.expr, &inner, out);
        }
        Expr::Aggregate(a) => {
            let grouping = a.modifier.as_ref().map_or((Vec::new(), true), |m| match m {
                LabelModifier::Include(l) => (l.labels.clone(), true),
                LabelModifier::Exclude(l) => (l.labels.clone(), false),
            });
            let inner = Walk {
                func: Aggregation::from_name(&a.op.to_string()).map(SelectFunc::Aggregate),
                grouping: Some(grouping),
                ..walk.clone()
            };
            collect(&a.expr, &inner, out);
            if let Some(p) = &a.param {
                collect(p, walk, out);
            }
        }
        Expr::Unary(u) => collect(&u.expr, walk, out),
        Expr::Binary(b) => {
            // A binary operation ends the search for an enclosing function.
            let inner = Walk {
                func: None,
                ..walk.clone()
            };
            collect(&b.lhs, &inner, out);
            collect(&b.rhs, &inner, out);
        }
        Expr::Paren(p) => collect(&p.expr, walk, out),
        Expr::Call(c) => {
            let inner = Walk {
                func: Function::of_call(c.func.name).map(SelectFunc::Call),
                ..walk.clone()
            };
            for arg in &c.args.args {
                collect(arg, &inner, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Subqueries step on absolute multiples of their step: the first step at or after `start`.
pub(crate) fn subquery_first_step(start: i64, step: i64) -> i64 {
    let aligned = start.div_euclid(step) * step;
    if aligned < start {
        aligned.saturating_add(step)
    } else {
        aligned
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

/// Whether evaluating every `step` from `start` to `end` passes `max_samples` (a step holds at
/// least one value) or the steps that [`StepValues`] can index.
pub(crate) fn too_many_steps(start: i64, end: i64, step: i64, max_samples: usize) -> bool {
    let count = (end.saturating_sub(start) / step.max(1)).saturating_add(1);
    count > i64::try_from(max_samples).unwrap_or(i64::MAX) || count > i64::from(u32::MAX)
}

/// `start`, `start + step`, … up to `end`, without overflowing near the ends of time.
pub(crate) fn step_times(start: i64, end: i64, step: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = start;
    while t <= end {
        out.push(t);
        match t.checked_add(step) {
            Some(next) => t = next,
            None => break,
        }
    }
    out
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

/// The labels a `by (…)` / `on (…)` keeps (`Include`), or that a `without (…)` /
/// `ignoring (…)` leaves (`Exclude`, which also drops `__name__`).
pub(crate) fn labels_by_modifier(labels: &Labels, modifier: &LabelModifier) -> Labels {
    let kept = labels.iter().filter(|l| match modifier {
        LabelModifier::Include(names) => names.labels.contains(&l.name),
        LabelModifier::Exclude(names) => l.name != "__name__" && !names.labels.contains(&l.name),
    });
    Labels::from_sorted(kept.cloned().collect())
}

/// The labels without `__name__`.
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    if labels.get("__name__").is_none() {
        return labels.clone();
    }
    Labels::from_sorted(
        labels
            .iter()
            .filter(|l| l.name != "__name__")
            .cloned()
            .collect(),
    )
}

/// A range function's (or unary minus's) series: Prometheus refuses any two with equal labels,
/// whatever their steps.
pub(crate) fn unique_labels(series: Vec<StepSeries>) -> Result<Val, QueryError> {
    let mut seen = std::collections::HashSet::with_capacity(series.len());
    for s in &series {
        if !seen.insert(&s.labels) {
            return exec_err("vector cannot contain metrics with the same labelset");
        }
    }
    Ok(Val::Vector(series))
}

/// Series with equal labels joined into one; two values at one step are Prometheus's
/// "vector cannot contain metrics with the same labelset" error.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Val, QueryError> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let target = &mut out[i];
                let values = std::mem::take(&mut target.values);
                target.values = values.merge(s.values).or_else(|_| {
                    exec_err("vector cannot contain metrics with the same labelset")
                })?;
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(Val::Vector(out))
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

/// The first and last reference times of `steps` (each step, or the @ time, less the
/// offset): the span a selector's samples are read for; `None` without steps.
fn reference_span(steps: &[i64], at: Option<i64>, offset: i64) -> Option<(i64, i64)> {
    let reference = |step: i64| at.unwrap_or(step).saturating_sub(offset);
    Some((reference(*steps.first()?), reference(*steps.last()?)))
}

/// Where a series' windows end: at each step (or at the @ time), less the offset; each window
/// spans `range` back from its end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WindowEnds {
    pub(crate) at: Option<i64>,
    pub(crate) offset: i64,
    pub(crate) range: i64,
}

/// A range argument's series: its samples are loaded (chunks decoded) only when the series is
/// evaluated, so a query holds one decoded series per thread, not all of them.
pub(crate) struct Windows<'a> {
    pub(crate) labels: Labels,
    source: WindowSource<'a>,
    ends: WindowEnds,
}

enum WindowSource<'a> {
    Stored(&'a Series),
    Owned(Vec<Sample>),
}

/// A series' samples with the steps whose window holds some (`samples[from..to]`): windows
/// overlap, so they index one copy of the data.
pub(crate) struct Loaded<'s> {
    samples: Cow<'s, [Sample]>,
    /// (step index, from, to) of each step whose window is not empty, in step order.
    bounds: Vec<(u32, u32, u32)>,
}

impl Loaded<'_> {
    /// The steps whose window holds samples, and those samples, in step order.
    pub(crate) fn windows(&self) -> impl Iterator<Item = (usize, &[Sample])> + '_ {
        self.bounds
            .iter()
            .map(|&(step, from, to)| (step as usize, &self.samples[from as usize..to as usize]))
    }

    /// The most samples any one window holds.
    pub(crate) fn largest_window(&self) -> usize {
        self.bounds
            .iter()
            .map(|&(_, from, to)| (to - from) as usize)
            .max()
            .unwrap_or(0)
    }
}

impl Windows<'_> {
    /// The samples (staleness markers left out) and each step's window.
    pub(crate) fn load(&self, steps: &[i64]) -> Result<Loaded<'_>, QueryError> {
        let WindowEnds { at, offset, range } = self.ends;
        let samples: Cow<'_, [Sample]> = match &self.source {
            WindowSource::Owned(samples) => Cow::Borrowed(samples),
            WindowSource::Stored(series) => {
                // Only the samples some window holds.
                let (first, last) = reference_span(steps, at, offset).unwrap_or((0, -1));
                let all = series_samples(series, first.saturating_sub(range), last)?;
                if all.iter().any(|s| is_stale(s.v)) {
                    Cow::Owned(all.iter().filter(|s| !is_stale(s.v)).copied().collect())
                } else {
                    all
                }
            }
        };
        let bounds = window_bounds(
            &samples,
            steps,
            |step| at.unwrap_or(step).saturating_sub(offset),
            range,
        );
        Ok(Loaded { samples, bounds })
    }
}

/// A stored series' samples, its chunks decoded.
pub(crate) fn series_samples(
    series: &Series,
    min_t: i64,
    max_t: i64,
) -> Result<Cow<'_, [Sample]>, QueryError> {
    series
        .samples_between(min_t, max_t)
        .map_err(|e| QueryError::Storage(StorageError(e)))
}

/// A range selector's windows: samples in [t - range, t] after offset and @, staleness
/// markers left out.
pub(crate) fn matrix_windows<'a>(
    vs: &VectorSelector,
    range: i64,
    ctx: &Ctx<'a>,
) -> Result<Vec<Windows<'a>>, QueryError> {
    let ends = WindowEnds {
        at: ctx.at_ms(&vs.at),
        offset: offset_ms(&vs.offset),
        range,
    };
    Ok(ctx
        .series_of(vs)
        .iter()
        .map(|series| Windows {
            labels: series.labels.clone(),
            source: WindowSource::Stored(series),
            ends,
        })
        .collect())
}

/// The steps whose window [end(step) - range, end(step)] holds samples, with the index range
/// of those samples. Window ends never go back (steps increase; with @ they stay put), so two
/// cursors walk the samples once, and steps before the next sample's window are skipped: a
/// short-lived series costs its samples, not the query's steps.
fn window_bounds(
    samples: &[Sample],
    steps: &[i64],
    end: impl Fn(i64) -> i64,
    range: i64,
) -> Vec<(u32, u32, u32)> {
    let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    // At most one window per step; the bounds live while one series is evaluated.
    let mut out = Vec::with_capacity(steps.len());
    let (mut from, mut to) = (0usize, 0usize);
    let mut i = 0usize;
    while i < steps.len() {
        let hi = end(steps[i]);
        let lo = hi.saturating_sub(range);
        while from < samples.len() && samples[from].t < lo {
            from += 1;
        }
        let Some(next) = samples.get(from) else { break };
        to = to.max(from);
        while to < samples.len() && samples[to].t <= hi {
            to += 1;
        }
        if to > from {
            out.push((index(i), index(from), index(to)));
            i += 1;
        } else {
            // The next sample is after this window: skip to the first window that reaches it.
            i += 1 + steps[i + 1..].partition_point(|&step| end(step) < next.t);
        }
    }
    out
}

/// A subquery's windows: the inner expression evaluated every subquery step over the range,
/// then, per outer step, the points in [t - range, t].
pub(crate) fn subquery_windows<'a>(
    sq: &SubqueryExpr,
    ctx: &Ctx<'a>,
) -> Result<Vec<Windows<'a>>, QueryError> {
    let offset = offset_ms(&sq.offset);
    let at = ctx.at_ms(&sq.at);
    let range = millis(&sq.range);
    let step = sq
        .step
        .as_ref()
        .map_or(millis(&ctx.options.default_subquery_step), millis)
        .max(1);
    let (first_end, last_end) = match at {
        Some(t) => (t.saturating_sub(offset), t.saturating_sub(offset)),
        None => (
            ctx.steps
                .first()
                .copied()
                .unwrap_or(0)
                .saturating_sub(offset),
            ctx.steps
                .last()
                .copied()
                .unwrap_or(0)
                .saturating_sub(offset),
        ),
    };
    let start = subquery_first_step(first_end.saturating_sub(range), step);
    // Every inner step holds at least a scalar's value: refuse before allocating them.
    let held = ctx.budget.held();
    if too_many_steps(
        start,
        last_end,
        step,
        ctx.options.max_samples.saturating_sub(held),
    ) {
        return Err(QueryError::TooManySamples("query execution"));
    }
    let inner_steps = step_times(start, last_end, step);
    let inner = eval(&sq.expr, &ctx.with_steps(inner_steps.clone()))?;
    let series: Vec<(Labels, Vec<Sample>)> = match inner {
        Val::Vector(series) => series
            .into_iter()
            .map(|s| {
                let samples = s
                    .values
                    .iter()
                    .map(|(i, v)| Sample {
                        t: inner_steps[i],
                        v,
                    })
                    .collect();
                (s.labels, samples)
            })
            .collect(),
        Val::Scalar(values) => vec![(
            Labels::default(),
            inner_steps
                .iter()
                .zip(values)
                .map(|(&t, v)| Sample { t, v })
                .collect(),
        )],
        _ => return exec_err("subquery is only allowed on instant vector or scalar"),
    };
    let ends = WindowEnds { at, offset, range };
    Ok(series
        .into_iter()
        .map(|(labels, samples)| Windows {
            labels,
            source: WindowSource::Owned(samples),
            ends,
        })
        .collect())
}
