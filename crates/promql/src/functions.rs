//! Function calls: range functions over windows, instant-vector functions per step.

use chrono::{Datelike, Timelike};
use promql_parser::parser::{Call, Expr};
use rthanos_model::{Label, Labels};

use crate::context::{
    Ctx, StepSeries, Val, drop_name, merge_same_labels, millis, offset_ms, unique_labels,
};
use crate::engine::{eval, eval_vector_selector};
use crate::error::{QueryError, exec_err};
use crate::function::Function;
use crate::quantile::quantile;
use crate::steps::StepValues;
use crate::value::Sample;
use crate::windows::{Windows, matrix_windows, subquery_windows};

fn unparen(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

/// Scalar argument values per step.
fn scalar_arg(expr: &Expr, ctx: &Ctx<'_>) -> Result<Vec<f64>, QueryError> {
    match eval(expr, ctx)? {
        Val::Scalar(v) => Ok(v),
        _ => exec_err("expected a scalar argument"),
    }
}

fn vector_arg(expr: &Expr, ctx: &Ctx<'_>) -> Result<Vec<StepSeries>, QueryError> {
    match eval(expr, ctx)? {
        Val::Vector(v) => Ok(v),
        _ => exec_err("expected an instant vector argument"),
    }
}

fn string_arg(expr: &Expr, ctx: &Ctx<'_>) -> Result<String, QueryError> {
    match eval(expr, ctx)? {
        Val::String(s) => Ok(s),
        _ => exec_err("expected a string argument"),
    }
}

/// A range argument's windows, and where each window ends relative to its step (offset, @).
struct RangeArg<'a> {
    windows: Vec<Windows<'a>>,
    range: i64,
    offset: i64,
    at: Option<i64>,
}

fn range_arg<'a>(expr: &Expr, ctx: &Ctx<'a>) -> Result<RangeArg<'a>, QueryError> {
    match unparen(expr) {
        Expr::MatrixSelector(ms) => Ok(RangeArg {
            windows: matrix_windows(&ms.vs, millis(&ms.range), ctx)?,
            range: millis(&ms.range),
            offset: offset_ms(&ms.vs.offset),
            at: ctx.at_ms(&ms.vs.at),
        }),
        Expr::Subquery(sq) => Ok(RangeArg {
            windows: subquery_windows(sq, ctx)?,
            range: millis(&sq.range),
            offset: offset_ms(&sq.offset),
            at: ctx.at_ms(&sq.at),
        }),
        _ => exec_err("expected a range vector argument"),
    }
}

/// Series above which range functions run in parallel (rayon): below, threads cost more than
/// they save.
const PARALLEL_SERIES: usize = 64;

/// Applies `f` to every window; `f` gets the window, the step index and the step's window end.
/// Series are independent, so many of them are spread over threads.
fn over_windows(
    arg: &RangeArg<'_>,
    keep_name: bool,
    ctx: &Ctx<'_>,
    f: impl Fn(&[Sample], usize, i64) -> Result<Option<f64>, QueryError> + Sync,
) -> Result<Val, QueryError> {
    use rayon::prelude::*;
    // Each series is loaded (decoded) here, evaluated, and dropped: memory holds one decoded
    // series per thread. As Prometheus counts for `--query.max-samples`: a series' window
    // while its steps are computed, then the values produced.
    let one = |w: &Windows<'_>| -> Result<Option<StepSeries>, QueryError> {
        // --query.timeout also stops a long evaluation, series by series.
        ctx.check_deadline()?;
        let loaded = w.load(&ctx.steps)?;
        let window = loaded.largest_window();
        ctx.budget.take(window)?;
        let mut values = StepValues::new();
        let computed = loaded.windows().try_for_each(|(i, samples)| {
            let end = arg.at.unwrap_or(ctx.steps[i]) - arg.offset;
            if let Some(v) = f(samples, i, end)? {
                values.push(i, v);
            }
            Ok::<(), QueryError>(())
        });
        ctx.budget.give_back(window);
        computed?;
        if values.is_empty() {
            return Ok(None);
        }
        ctx.budget.take(values.len())?;
        Ok(Some(StepSeries {
            labels: if keep_name {
                w.labels.clone()
            } else {
                drop_name(&w.labels)
            },
            values,
        }))
    };
    let results: Vec<Result<Option<StepSeries>, QueryError>> =
        if arg.windows.len() >= PARALLEL_SERIES {
            arg.windows.par_iter().map(one).collect()
        } else {
            arg.windows.iter().map(one).collect()
        };
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        if let Some(s) = r? {
            out.push(s);
        }
    }
    unique_labels(out)
}

/// Neumaier's compensated sum step, as Prometheus's `kahanSumInc`.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `extrapolatedRate` (2.x): rate, increase, delta.
fn extrapolated_rate(
    samples: &[Sample],
    range_end: i64,
    range: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let range_start = range_end.saturating_sub(range);
    let mut result = last.v - first.v;
    if counter {
        let mut prev = first.v;
        for s in &samples[1..] {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let mut duration_to_start = first.t.saturating_sub(range_start) as f64 / 1000.0;
    let duration_to_end = range_end.saturating_sub(last.t) as f64 / 1000.0;
    let sampled_interval = last.t.saturating_sub(first.t) as f64 / 1000.0;
    let average_between = sampled_interval / (samples.len() - 1) as f64;
    if counter && result > 0.0 && first.v >= 0.0 {
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        average_between / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        average_between / 2.0
    };
    // In Prometheus's order of operations: the factor first, then the product, so that the
    // answer is the same to the last bit.
    let mut factor = extrapolate_to / sampled_interval;
    if per_second {
        factor /= go_seconds(range);
    }
    Some(result * factor)
}

/// Go's `time.Duration.Seconds()` of a duration in milliseconds: whole seconds plus the
/// remainder's nanoseconds over 1e9 (not the milliseconds over 1000, which can round apart).
pub(crate) fn go_seconds(ms: i64) -> f64 {
    let (seconds, rest_ms) = (ms / 1000, ms % 1000);
    seconds as f64 + (rest_ms * 1_000_000) as f64 / 1e9
}

/// irate / idelta: the last two samples.
fn instant_value(samples: &[Sample], per_second: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let last = samples[samples.len() - 1];
    let prev = samples[samples.len() - 2];
    let mut result = if per_second && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t.saturating_sub(prev.t);
    if interval == 0 {
        return None;
    }
    if per_second {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept (at `intercept_time`), as Prometheus's `linearRegression`.
fn linear_regression(samples: &[Sample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = samples[0].v;
    let mut const_y = true;
    for (i, s) in samples.iter().enumerate() {
        if const_y && i > 0 && s.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = s.t.saturating_sub(intercept_time) as f64 / 1000.0;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(s.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * s.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn avg_over_time(samples: &[Sample]) -> f64 {
    let (mut mean, mut c, mut count) = (0.0f64, 0.0, 0.0);
    for s in samples {
        count += 1.0;
        if mean.is_infinite() {
            if s.v.is_infinite() && (mean > 0.0) == (s.v > 0.0) {
                continue;
            }
            if !s.v.is_infinite() && !s.v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(s.v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

fn stdvar_over_time(samples: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for s in samples {
        count += 1.0;
        let delta = s.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (s.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn holt_winters(samples: &[Sample], sf: f64, tf: f64) -> Result<Option<f64>, QueryError> {
    if sf <= 0.0 || sf >= 1.0 {
        return exec_err(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        ));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return exec_err(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        ));
    }
    if samples.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, samples[0].v);
    let mut b = samples[1].v - samples[0].v;
    for (i, s) in samples.iter().enumerate().skip(1) {
        let x = sf * s.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

/// Labels for `absent()`: the equality matchers of a selector argument (a name given twice
/// is left out).
fn absent_labels(expr: &Expr) -> Labels {
    let vs = match unparen(expr) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    // As Prometheus: a name with one equality matcher and nothing else gives its label; a
    // name matched twice, or not by equality, gives none.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" {
            continue;
        }
        let equal = matches!(m.op, promql_parser::label::MatchOp::Equal);
        if equal && m.value.is_empty() {
            // An empty value is no label.
            dropped.push(m.name.clone());
        } else if equal && !pairs.iter().any(|(n, _)| *n == m.name) {
            pairs.push((m.name.clone(), m.value.clone()));
        } else {
            dropped.push(m.name.clone());
        }
    }
    pairs.retain(|(n, _)| !dropped.contains(n));
    Labels::from_pairs(pairs)
}

/// Per step, whether any series of `series` has a value.
fn present_per_step(series: &[StepSeries], steps: usize) -> Vec<bool> {
    let mut present = vec![false; steps];
    for s in series {
        for (step, _) in s.values.iter() {
            present[step] = true;
        }
    }
    present
}

/// Applies `f` to every value of a vector, dropping `__name__`.
fn map_values(series: Vec<StepSeries>, f: impl Fn(f64, usize) -> f64) -> Result<Val, QueryError> {
    filter_map_values(series, |x, i| Some(f(x, i)))
}

/// Applies `f` to every value of a vector, dropping `__name__`; `None` drops the value.
fn filter_map_values(
    series: Vec<StepSeries>,
    f: impl Fn(f64, usize) -> Option<f64>,
) -> Result<Val, QueryError> {
    let out = series
        .into_iter()
        .map(|s| StepSeries {
            labels: drop_name(&s.labels),
            values: s.values.filter_map(|i, x| f(x, i)),
        })
        .collect();
    merge_same_labels(out)
}

fn date_part(t_seconds: f64, part: Function) -> f64 {
    let Some(time) = chrono::DateTime::from_timestamp(t_seconds as i64, 0) else {
        return f64::NAN;
    };
    f64::from(match part {
        Function::Minute => time.minute(),
        Function::Hour => time.hour(),
        Function::DayOfWeek => time.weekday().num_days_from_sunday(),
        Function::DayOfMonth => time.day(),
        Function::DayOfYear => time.ordinal(),
        Function::Month => time.month(),
        Function::Year => return f64::from(time.year()),
        _ => {
            // days_in_month
            let (y, m) = (time.year(), time.month());
            let next = if m == 12 {
                chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
            };
            match (next, chrono::NaiveDate::from_ymd_opt(y, m, 1)) {
                (Some(n), Some(f)) => u32::try_from((n - f).num_days()).unwrap_or(0),
                _ => return f64::NAN,
            }
        }
    })
}

fn set_label(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut pairs: Vec<(String, String)> = labels
        .iter()
        .filter(|l| l.name != name)
        .map(|Label { name, value }| (name.clone(), value.clone()))
        .collect();
    if !value.is_empty() {
        pairs.push((name.to_string(), value.to_string()));
    }
    Labels::from_pairs(pairs)
}

/// A call's arguments, with the function they are for.
struct Args<'c> {
    func: Function,
    args: &'c [Box<Expr>],
}

impl Args<'_> {
    /// Argument `i`, which the parser has checked is there.
    fn arg(&self, i: usize) -> Result<&Expr, QueryError> {
        self.args.get(i).map(|a| a.as_ref()).ok_or_else(|| {
            QueryError::Parse(format!("missing argument {i} of {}", self.func.name()))
        })
    }

    /// Optional argument `i`.
    fn optional(&self, i: usize) -> Option<&Expr> {
        self.args.get(i).map(|a| a.as_ref())
    }
}

/// How a function is evaluated from its arguments.
type Evaluator = fn(&Args<'_>, &Ctx<'_>) -> Result<Val, QueryError>;

/// The evaluation column of the function table ([`Function`]): one evaluator per function,
/// several functions sharing one where they differ by a flag (`rate` / `increase` / `delta`).
fn evaluator(func: Function) -> Evaluator {
    use Function as F;
    match func {
        F::Time => time,
        F::Pi => |_, ctx| Ok(Val::Scalar(vec![std::f64::consts::PI; ctx.steps.len()])),
        F::Vector => vector,
        F::Scalar => scalar,
        F::Timestamp => timestamp,
        F::Rate | F::Increase | F::Delta => extrapolated_delta,
        F::Irate | F::Idelta => last_two_samples,
        F::Changes | F::Resets => changes_or_resets,
        F::Deriv => deriv,
        F::PredictLinear => predict_linear,
        F::HoltWinters => holt_winters_call,
        F::AvgOverTime => |args, ctx| over_range(args, ctx, |w| Some(avg_over_time(w))),
        F::SumOverTime => |args, ctx| over_range(args, ctx, |w| Some(sum_over_time(w))),
        F::CountOverTime => |args, ctx| over_range(args, ctx, |w| Some(w.len() as f64)),
        F::PresentOverTime => |args, ctx| over_range(args, ctx, |_| Some(1.0)),
        F::LastOverTime => last_over_time,
        F::MinOverTime => |args, ctx| over_range(args, ctx, |w| Some(extreme(w, false))),
        F::MaxOverTime => |args, ctx| over_range(args, ctx, |w| Some(extreme(w, true))),
        F::StddevOverTime => {
            |args, ctx| over_range(args, ctx, |w| Some(stdvar_over_time(w).sqrt()))
        }
        F::StdvarOverTime => |args, ctx| over_range(args, ctx, |w| Some(stdvar_over_time(w))),
        F::QuantileOverTime => quantile_over_time,
        F::AbsentOverTime => absent_over_time,
        F::Absent => absent,
        F::LabelReplace => label_replace,
        F::LabelJoin => label_join,
        F::HistogramQuantile => |args, ctx| {
            crate::aggregate::histogram_quantile(
                &scalar_arg(args.arg(0)?, ctx)?,
                &vector_arg(args.arg(1)?, ctx)?,
                ctx.steps.len(),
            )
        },
        // Native-histogram functions: float series have no native histograms.
        F::HistogramCount | F::HistogramSum | F::HistogramFraction => {
            |_, _| Ok(Val::Vector(Vec::new()))
        }
        F::Sort | F::SortDesc => sort,
        F::Clamp => clamp,
        F::ClampMin | F::ClampMax => clamp_min_max,
        F::Round => round,
        F::Minute
        | F::Hour
        | F::DayOfWeek
        | F::DayOfMonth
        | F::DayOfYear
        | F::Month
        | F::Year
        | F::DaysInMonth => date_function,
        // Each is its own monomorphised loop: no indirect call per sample.
        F::Abs => |args, ctx| math(args, ctx, f64::abs),
        F::Ceil => |args, ctx| math(args, ctx, f64::ceil),
        F::Floor => |args, ctx| math(args, ctx, f64::floor),
        F::Exp => |args, ctx| math(args, ctx, f64::exp),
        F::Sqrt => |args, ctx| math(args, ctx, f64::sqrt),
        F::Ln => |args, ctx| math(args, ctx, f64::ln),
        F::Log2 => |args, ctx| math(args, ctx, f64::log2),
        F::Log10 => |args, ctx| math(args, ctx, f64::log10),
        F::Sgn => |args, ctx| math(args, ctx, sgn),
        F::Sin => |args, ctx| math(args, ctx, f64::sin),
        F::Cos => |args, ctx| math(args, ctx, f64::cos),
        F::Tan => |args, ctx| math(args, ctx, f64::tan),
        F::Asin => |args, ctx| math(args, ctx, f64::asin),
        F::Acos => |args, ctx| math(args, ctx, f64::acos),
        F::Atan => |args, ctx| math(args, ctx, f64::atan),
        F::Sinh => |args, ctx| math(args, ctx, f64::sinh),
        F::Cosh => |args, ctx| math(args, ctx, f64::cosh),
        F::Tanh => |args, ctx| math(args, ctx, f64::tanh),
        F::Asinh => |args, ctx| math(args, ctx, f64::asinh),
        F::Acosh => |args, ctx| math(args, ctx, f64::acosh),
        F::Atanh => |args, ctx| math(args, ctx, f64::atanh),
        // Go's order of operations, for the same last bit.
        F::Deg => |args, ctx| math(args, ctx, |x| x * 180.0 / std::f64::consts::PI),
        F::Rad => |args, ctx| math(args, ctx, |x| x * std::f64::consts::PI / 180.0),
    }
}

/// Evaluates a function call.
pub(crate) fn eval_call(call: &Call, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let name = call.func.name;
    let Some(func) = Function::of_call(name) else {
        return exec_err(format!("unknown function {name}"));
    };
    evaluator(func)(
        &Args {
            func,
            args: &call.args.args,
        },
        ctx,
    )
}

fn time(_: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    Ok(Val::Scalar(
        ctx.steps.iter().map(|&t| t as f64 / 1000.0).collect(),
    ))
}

fn vector(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let v = scalar_arg(args.arg(0)?, ctx)?;
    Ok(Val::Vector(vec![StepSeries {
        labels: Labels::default(),
        values: v.into_iter().map(Some).collect(),
    }]))
}

fn scalar(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    let n = ctx.steps.len();
    let mut out = vec![f64::NAN; n];
    let mut counts = vec![0usize; n];
    for s in &series {
        for (i, v) in s.values.iter() {
            counts[i] += 1;
            out[i] = v;
        }
    }
    for (o, c) in out.iter_mut().zip(counts) {
        if c != 1 {
            *o = f64::NAN;
        }
    }
    Ok(Val::Scalar(out))
}

fn timestamp(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    if let Expr::VectorSelector(vs) = unparen(args.arg(0)?) {
        let (series, stamps) = eval_vector_selector(vs, ctx, true)?;
        let out = series
            .into_iter()
            .zip(stamps)
            .map(|(mut s, ts)| {
                // The stamps are in the order of the values.
                for (v, t) in s.values.values_mut().iter_mut().zip(ts) {
                    *v = t as f64 / 1000.0;
                }
                StepSeries {
                    labels: drop_name(&s.labels),
                    values: s.values,
                }
            })
            .collect();
        return merge_same_labels(out);
    }
    let series = vector_arg(args.arg(0)?, ctx)?;
    map_values(series, |_, i| ctx.steps[i] as f64 / 1000.0)
}

/// `f` over the windows of the range argument (the first), `__name__` dropped.
fn over_range(
    args: &Args<'_>,
    ctx: &Ctx<'_>,
    f: impl Fn(&[Sample]) -> Option<f64> + Sync,
) -> Result<Val, QueryError> {
    over_windows(&range_arg(args.arg(0)?, ctx)?, false, ctx, |w, _, _| {
        Ok(f(w))
    })
}

/// rate, increase, delta.
fn extrapolated_delta(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let counter = args.func != Function::Delta;
    let per_second = args.func == Function::Rate;
    let r = range_arg(args.arg(0)?, ctx)?;
    let range = r.range;
    over_windows(&r, false, ctx, |w, _, end| {
        Ok(extrapolated_rate(w, end, range, counter, per_second))
    })
}

/// irate, idelta.
fn last_two_samples(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let per_second = args.func == Function::Irate;
    over_range(args, ctx, |w| instant_value(w, per_second))
}

fn changes_or_resets(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let resets = args.func == Function::Resets;
    over_range(args, ctx, |w| {
        let count = w
            .windows(2)
            .filter(|p| {
                if resets {
                    p[1].v < p[0].v
                } else {
                    p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan())
                }
            })
            .count();
        Some(count as f64)
    })
}

fn deriv(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    over_range(args, ctx, |w| {
        (w.len() >= 2).then(|| linear_regression(w, w[0].t).0)
    })
}

fn predict_linear(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let duration = scalar_arg(args.arg(1)?, ctx)?;
    let steps = ctx.steps.clone();
    over_windows(&range_arg(args.arg(0)?, ctx)?, false, ctx, |w, i, _| {
        if w.len() < 2 {
            return Ok(None);
        }
        let (slope, intercept) = linear_regression(w, steps[i]);
        Ok(Some(slope * duration[i] + intercept))
    })
}

fn holt_winters_call(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let sf = scalar_arg(args.arg(1)?, ctx)?;
    let tf = scalar_arg(args.arg(2)?, ctx)?;
    over_windows(&range_arg(args.arg(0)?, ctx)?, false, ctx, |w, i, _| {
        holt_winters(w, sf[i], tf[i])
    })
}

fn sum_over_time(w: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for s in w {
        (sum, c) = kahan_inc(s.v, sum, c);
    }
    if f64::is_infinite(sum) { sum } else { sum + c }
}

/// The window's largest (`max`) or smallest value; NaN only when all are NaN.
fn extreme(w: &[Sample], max: bool) -> f64 {
    let mut best = w[0].v;
    for s in w {
        if (max && s.v > best) || (!max && s.v < best) || best.is_nan() {
            best = s.v;
        }
    }
    best
}

fn last_over_time(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    // The only range function that keeps the metric name.
    over_windows(&range_arg(args.arg(0)?, ctx)?, true, ctx, |w, _, _| {
        Ok(w.last().map(|s| s.v))
    })
}

fn quantile_over_time(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let q = scalar_arg(args.arg(0)?, ctx)?;
    over_windows(&range_arg(args.arg(1)?, ctx)?, false, ctx, |w, i, _| {
        let mut values: Vec<f64> = w.iter().map(|s| s.v).collect();
        Ok(Some(quantile(q[i], &mut values)))
    })
}

fn absent_over_time(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let r = range_arg(args.arg(0)?, ctx)?;
    let mut present = vec![false; ctx.steps.len()];
    for w in &r.windows {
        let loaded = w.load(&ctx.steps)?;
        for (i, _) in loaded.windows() {
            present[i] = true;
        }
    }
    absent_result(present, absent_labels(args.arg(0)?))
}

fn absent(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    absent_result(
        present_per_step(&series, ctx.steps.len()),
        absent_labels(args.arg(0)?),
    )
}

fn label_replace(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    let dst = string_arg(args.arg(1)?, ctx)?;
    let replacement = string_arg(args.arg(2)?, ctx)?;
    let src = string_arg(args.arg(3)?, ctx)?;
    let pattern = string_arg(args.arg(4)?, ctx)?;
    // Prometheus 2.x anchors without (?s): `.` does not match a newline.
    let regex = rthanos_model::regex_cache::compiled(&format!(
        "^(?:{})$",
        rthanos_model::go_regex(&pattern)
    ))
    .map_err(|e| {
        QueryError::Execution(format!(
            "invalid regular expression in label_replace(): {pattern}: {e}"
        ))
    })?;
    if !rthanos_model::is_valid_label_name(&dst) {
        return exec_err(format!(
            "invalid destination label name in label_replace(): {dst}"
        ));
    }
    let out = series
        .into_iter()
        .map(|s| {
            let value = s.labels.get(&src).unwrap_or("");
            let labels = match regex.captures(value) {
                Some(caps) => {
                    let mut result = String::new();
                    caps.expand(&replacement, &mut result);
                    set_label(&s.labels, &dst, &result)
                }
                None => s.labels.clone(),
            };
            StepSeries {
                labels,
                values: s.values,
            }
        })
        .collect();
    merge_same_labels(out)
}

fn label_join(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    let dst = string_arg(args.arg(1)?, ctx)?;
    let sep = string_arg(args.arg(2)?, ctx)?;
    let mut sources = Vec::new();
    for i in 3..args.args.len() {
        sources.push(string_arg(args.arg(i)?, ctx)?);
    }
    if !rthanos_model::is_valid_label_name(&dst) {
        return exec_err(format!(
            "invalid destination label name in label_join(): {dst}"
        ));
    }
    for src in &sources {
        if !rthanos_model::is_valid_label_name(src) {
            return exec_err(format!("invalid source label name in label_join(): {src}"));
        }
    }
    let out = series
        .into_iter()
        .map(|s| {
            let joined = sources
                .iter()
                .map(|src| s.labels.get(src).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&sep);
            StepSeries {
                labels: set_label(&s.labels, &dst, &joined),
                values: s.values,
            }
        })
        .collect();
    merge_same_labels(out)
}

fn sort(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let mut series = vector_arg(args.arg(0)?, ctx)?;
    if ctx.steps.len() == 1 {
        let desc = args.func == Function::SortDesc;
        series.sort_by(|a, b| {
            let (x, y) = (
                a.values.get(0).unwrap_or(f64::NAN),
                b.values.get(0).unwrap_or(f64::NAN),
            );
            // NaN last in both directions, as Prometheus.
            match (x.is_nan(), y.is_nan()) {
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if desc => y.total_cmp(&x),
                _ => x.total_cmp(&y),
            }
        });
    }
    Ok(Val::Vector(series))
}

fn clamp(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    let lo = scalar_arg(args.arg(1)?, ctx)?;
    let hi = scalar_arg(args.arg(2)?, ctx)?;
    // No result at a step whose bounds are the wrong way round (NaN bounds give NaN).
    filter_map_values(series, |x, i| {
        (hi[i].partial_cmp(&lo[i]) != Some(std::cmp::Ordering::Less))
            .then(|| go_max(lo[i], go_min(hi[i], x)))
    })
}

fn clamp_min_max(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    let bound = scalar_arg(args.arg(1)?, ctx)?;
    if args.func == Function::ClampMin {
        map_values(series, |x, i| go_max(bound[i], x))
    } else {
        map_values(series, |x, i| go_min(bound[i], x))
    }
}

fn round(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    let to_nearest = match args.optional(1) {
        Some(a) => scalar_arg(a, ctx)?,
        None => vec![1.0; ctx.steps.len()],
    };
    map_values(series, |x, i| {
        let inverse = 1.0 / to_nearest[i];
        (x * inverse + 0.5).floor() / inverse
    })
}

/// minute, hour, day_of_week, …: of the argument's values, or of each step's time.
fn date_function(args: &Args<'_>, ctx: &Ctx<'_>) -> Result<Val, QueryError> {
    let series = match args.optional(0) {
        Some(a) => vector_arg(a, ctx)?,
        None => vec![StepSeries {
            labels: Labels::default(),
            values: ctx.steps.iter().map(|&t| Some(t as f64 / 1000.0)).collect(),
        }],
    };
    let func = args.func;
    map_values(series, |x, _| date_part(x, func))
}

/// A function of each value (abs, ln, sin, …).
fn math(args: &Args<'_>, ctx: &Ctx<'_>, f: impl Fn(f64) -> f64) -> Result<Val, QueryError> {
    let series = vector_arg(args.arg(0)?, ctx)?;
    map_values(series, |x, _| f(x))
}

/// Go's `sgn` of Prometheus: the sign, and zero or NaN as they are.
fn sgn(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// Go's `math.Max`: NaN if either is NaN (Rust's `max` ignores NaN).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn absent_result(present: Vec<bool>, labels: Labels) -> Result<Val, QueryError> {
    let values: StepValues = present
        .into_iter()
        .map(|p| if p { None } else { Some(1.0) })
        .collect();
    if values.is_empty() {
        return Ok(Val::Vector(Vec::new()));
    }
    Ok(Val::Vector(vec![StepSeries { labels, values }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_multiplies_by_prometheus_s_factor_to_the_last_bit() {
        // 20 counter samples 15 s apart, the window ending 7 s after the last: the factor
        // (extrapolated / sampled interval, over the range) is computed before the product,
        // as Prometheus 2.42 does; the other order answers 0.6526315789473685.
        let samples: Vec<Sample> = (0..20)
            .map(|i| Sample {
                t: i * 15_000,
                v: if i == 19 {
                    341.0
                } else {
                    155.0 + i as f64 * 9.0
                },
            })
            .collect();
        let rate = extrapolated_rate(&samples, 292_000, 300_000, true, true);
        assert_eq!(rate, Some(0.652_631_578_947_368_3));
    }

    #[test]
    fn seconds_are_go_s_duration_seconds() {
        assert_eq!(go_seconds(300_000), 300.0);
        assert_eq!(go_seconds(1_500), 1.5);
        assert_eq!(go_seconds(-1_500), -1.5);
    }
}
