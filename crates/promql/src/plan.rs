//! What a query reads: every selector of the expression with the time range its samples are
//! needed for and Prometheus's select hints (the enclosing function and aggregation), found
//! by one walk over the expression before anything is fetched.

use promql_parser::label::MatchOp;
use promql_parser::parser::{AtModifier, Expr, LabelModifier, MatrixSelector, VectorSelector};
use rthanos_model::{MatchType, Matcher};

use crate::context::{millis, offset_ms, subquery_first_step, system_time_ms};
use crate::engine::EngineOptions;
use crate::error::QueryError;
use crate::function::{Aggregation, Function, SelectFunc};
use crate::storage::SelectHints;

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
pub(crate) struct Fetch<'e> {
    pub(crate) node: &'e VectorSelector,
    pub(crate) hints: SelectHints,
}

/// Where the walk over the expression is: the times its node is evaluated at, and what the
/// nearest enclosing function and aggregation are (Prometheus's select hints).
#[derive(Clone)]
pub(crate) struct Walk<'o> {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) lookback: i64,
    pub(crate) query: (i64, i64),
    pub(crate) options: &'o EngineOptions,
    pub(crate) func: Option<SelectFunc>,
    pub(crate) grouping: Option<(Vec<String>, bool)>,
}

/// Collects the selectors of `expr`, evaluated at times [walk.start, walk.end].
pub(crate) fn collect<'e>(expr: &'e Expr, walk: &Walk<'_>, out: &mut Vec<Fetch<'e>>) {
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
