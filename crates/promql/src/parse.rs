//! Parsing with `promql-parser`, held to what Prometheus 2.42 accepts.

use promql_parser::parser::{self, Expr};

use crate::engine::QueryError;

/// Functions of Prometheus 2.42 (native-histogram functions included: they parse, and
/// evaluate to nothing on float data).
const FUNCTIONS_2_42: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_count",
    "histogram_sum",
    "histogram_fraction",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "label_join",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// The name `promql-parser` knows Prometheus 2's `holt_winters` by.
pub(crate) const HOLT_WINTERS_3X: &str = "double_exponential_smoothing";

/// Parses a query as Prometheus 2.42 would.
pub fn parse_query(query: &str) -> Result<Expr, QueryError> {
    let rewritten = rewrite_identifiers(query)?;
    check_tokens_2x(&rewritten)?;
    // The parser panics on some inputs (a duration beyond what it can hold): never let a query
    // take the process down.
    let parsed = std::panic::catch_unwind(|| parser::parse(&rewritten))
        .unwrap_or_else(|_| Err("invalid promql query".to_string()));
    let expr = parsed.map_err(|e| QueryError::Parse(with_position(query, &e)))?;
    check_2x(&expr)?;
    Ok(expr)
}

/// The matchers of a series selector (`match[]` of the metadata APIs), e.g. `up{job="a"}`.
pub fn parse_selector(selector: &str) -> Result<Vec<rthanos_model::Matcher>, QueryError> {
    match parse_query(selector)? {
        Expr::VectorSelector(vs) => crate::engine::selector_matchers(&vs),
        _ => Err(QueryError::Parse(format!(
            "invalid parameter \"match[]\": {selector:?} is not a series selector"
        ))),
    }
}

/// The matchers of every series selector in `query` (Prometheus's `ExtractSelectors`), for
/// APIs that pass selectors on rather than evaluate them.
pub fn selectors(query: &str) -> Result<Vec<Vec<rthanos_model::Matcher>>, QueryError> {
    struct Collect(Vec<Vec<rthanos_model::Matcher>>);
    impl promql_parser::util::ExprVisitor for Collect {
        type Error = QueryError;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, QueryError> {
            match expr {
                Expr::VectorSelector(vs) => self.0.push(crate::engine::selector_matchers(vs)?),
                Expr::MatrixSelector(ms) => {
                    self.0.push(crate::engine::selector_matchers(&ms.vs)?);
                }
                _ => {}
            }
            Ok(true)
        }
    }
    let mut found = Collect(Vec::new());
    promql_parser::util::walk_expr(&mut found, &parse_query(query)?)?;
    Ok(found.0)
}

/// Prometheus's error form, `<line>:<column>: parse error: <message>`, where the parser's
/// message lets us find the column: errors at the end of the input, and messages quoting the
/// offending text. `promql-parser` reports no positions itself; other messages go without one.
fn with_position(query: &str, message: &str) -> String {
    let at_end = [
        "unclosed left parenthesis",
        "unexpected end of input",
        "unterminated quoted string",
        "unclosed left bracket",
        "unclosed left brace",
    ];
    let column = if at_end.iter().any(|m| message.starts_with(m)) {
        Some(query.chars().count() + 1)
    } else {
        // A quoted fragment: `…: ')'`, `…syntax: 5x`, `…name 'f'`.
        let fragment = message
            .rsplit_once(": ")
            .map(|(_, f)| f.trim_matches('\''))
            .or_else(|| message.split('\'').nth(1))
            .filter(|f| !f.is_empty());
        fragment
            .and_then(|f| query.find(f))
            .map(|byte| query[..byte].chars().count() + 1)
    };
    let (column, message) = match column {
        Some(c) => (Some(c), message.to_string()),
        None => match unexpected_token(query) {
            Some((byte, token)) => (
                Some(query[..byte].chars().count() + 1),
                format!("unexpected {token:?}"),
            ),
            None => (None, message.to_string()),
        },
    };
    match column {
        Some(c) => {
            // Lines count from 1, columns from 1 within the line.
            let before: String = query.chars().take(c - 1).collect();
            let line = before.matches('\n').count() + 1;
            let col = before
                .rsplit('\n')
                .next()
                .map_or(c, |l| l.chars().count() + 1);
            format!("{line}:{col}: parse error: {message}")
        }
        None => format!("parse error: {message}"),
    }
}

/// Longest duration Prometheus accepts: what an int64 of nanoseconds holds (~292 years).
const MAX_DURATION_MS: i64 = i64::MAX / 1_000_000;

/// Lexical rules of Prometheus 2.42 that `promql-parser` (following Prometheus 3) relaxes:
/// durations need a unit (`x[300]` and `offset 60` are errors), durations fit in an int64 of
/// nanoseconds, and label and metric names are never quoted strings.
fn check_tokens_2x(query: &str) -> Result<(), QueryError> {
    use lrpar::{Lexeme, Lexer};
    use promql_parser::parser::token::{
        T_BY, T_COMMA, T_DURATION, T_GROUP_LEFT, T_GROUP_RIGHT, T_IGNORING, T_LEFT_BRACE,
        T_LEFT_BRACKET, T_LEFT_PAREN, T_NUMBER, T_OFFSET, T_ON, T_RIGHT_BRACE, T_RIGHT_BRACKET,
        T_RIGHT_PAREN, T_STRING, T_WITHOUT,
    };
    // Lexer errors are left to the parser, which words them.
    let Ok(lexer) = parser::lexer(query) else {
        return Ok(());
    };
    let fail = |start: usize, what: String| {
        let column = query[..start].chars().count() + 1;
        Err(QueryError::Parse(format!(
            "1:{column}: parse error: {what}"
        )))
    };
    let (mut brackets, mut braces) = (0i32, 0i32);
    let mut grouping = false;
    let mut prev: Option<u16> = None;
    for lexeme in lexer.iter().filter_map(Result::ok) {
        let id = lexeme.tok_id();
        let span = lexeme.span();
        let text = &query[span.start()..span.end()];
        match id {
            T_LEFT_BRACKET => brackets += 1,
            T_RIGHT_BRACKET => brackets -= 1,
            T_LEFT_BRACE => braces += 1,
            T_RIGHT_BRACE => braces -= 1,
            T_LEFT_PAREN => {
                grouping = matches!(
                    prev,
                    Some(T_BY | T_WITHOUT | T_ON | T_IGNORING | T_GROUP_LEFT | T_GROUP_RIGHT)
                );
            }
            T_RIGHT_PAREN => grouping = false,
            T_NUMBER if brackets > 0 || prev == Some(T_OFFSET) => {
                return fail(
                    span.start(),
                    format!("unexpected number {text:?}: a duration needs a unit"),
                );
            }
            T_DURATION => {
                let too_long = text
                    .parse::<rthanos_model::PromDuration>()
                    .map_or(true, |d| d.as_millis() >= MAX_DURATION_MS);
                if too_long {
                    return fail(span.start(), format!("duration {text:?} out of range"));
                }
            }
            T_STRING
                if (braces > 0 && matches!(prev, Some(T_LEFT_BRACE | T_COMMA))) || grouping =>
            {
                return fail(
                    span.start(),
                    format!("unexpected string {text}: label names are not quoted"),
                );
            }
            _ => {}
        }
        prev = Some(id);
    }
    Ok(())
}

/// For a syntax error the parser does not locate: the token after the longest prefix of the
/// query that parses on its own (`foo bar` → `bar`), with its byte offset.
fn unexpected_token(query: &str) -> Option<(usize, String)> {
    use lrpar::{Lexeme, Lexer};
    let lexer = parser::lexer(query).ok()?;
    let spans: Vec<(usize, usize)> = lexer
        .iter()
        .filter_map(Result::ok)
        .map(|l| (l.span().start(), l.span().end()))
        .collect();
    (1..spans.len()).rev().find_map(|k| {
        let prefix = &query[..spans[k - 1].1];
        parser::parse(prefix).ok()?;
        let (start, end) = spans[k];
        Some((start, query[start..end].to_string()))
    })
}

/// Renames `holt_winters` calls for the parser and refuses the 3.x name, outside string
/// literals and comments.
fn rewrite_identifiers(query: &str) -> Result<String, QueryError> {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'\'' | b'`' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    if bytes[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                out.push_str(&query[start..i]);
            }
            b'#' => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                out.push_str(&query[start..i]);
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                let word = &query[start..i];
                let called = query[i..].trim_start().starts_with('(');
                match word {
                    "holt_winters" if called => out.push_str(HOLT_WINTERS_3X),
                    HOLT_WINTERS_3X if called => {
                        return Err(QueryError::Parse(format!(
                            "1:{}: parse error: unknown function with name \"{word}\"",
                            start + 1
                        )));
                    }
                    _ => out.push_str(word),
                }
            }
            _ => {
                let ch = query[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Ok(out)
}

/// Refuses what the parser accepts but Prometheus 2.42 does not.
fn check_2x(expr: &Expr) -> Result<(), QueryError> {
    let refuse = |what: String| Err(QueryError::Parse(format!("parse error: {what}")));
    match expr {
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if op == "limitk" || op == "limit_ratio" {
                return refuse(format!("unknown aggregation {op:?}"));
            }
            check_2x(&a.expr)?;
            if let Some(p) = &a.param {
                check_2x(p)?;
            }
            Ok(())
        }
        Expr::Unary(u) => check_2x(&u.expr),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier
                && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return refuse("fill modifiers are not supported".into());
            }
            check_2x(&b.lhs)?;
            check_2x(&b.rhs)
        }
        Expr::Paren(p) => check_2x(&p.expr),
        Expr::Subquery(s) => check_2x(&s.expr),
        Expr::VectorSelector(vs) => {
            if vs.matchers.or_matchers.is_empty() {
                Ok(())
            } else {
                refuse("unexpected \"or\" in label matching".into())
            }
        }
        Expr::MatrixSelector(ms) => check_2x(&Expr::VectorSelector(ms.vs.clone())),
        Expr::Call(call) => {
            let name = call.func.name;
            let known = name == HOLT_WINTERS_3X || FUNCTIONS_2_42.contains(&name);
            if !known {
                return refuse(format!("unknown function with name {name:?}"));
            }
            for arg in &call.args.args {
                check_2x(arg)?;
            }
            Ok(())
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_carry_a_position_where_one_is_known() {
        let err = |q: &str| parse_query(q).expect_err("invalid").to_string();
        assert_eq!(err("sum("), "1:5: parse error: unclosed left parenthesis");
        assert_eq!(
            err("rate(foo[5m)"),
            "1:12: parse error: unexpected character inside brackets: ')'"
        );
        assert_eq!(
            err("foo[5x]"),
            "1:5: parse error: bad number or duration syntax: 5x"
        );
        assert_eq!(err("foo bar"), "1:5: parse error: unexpected \"bar\"");
        assert_eq!(err("sum(x) 3"), "1:8: parse error: unexpected \"3\"");
    }

    #[test]
    fn holt_winters_is_the_2x_name() {
        assert!(parse_query("holt_winters(x[5m], 0.5, 0.5)").is_ok());
        assert!(parse_query("double_exponential_smoothing(x[5m], 0.5, 0.5)").is_err());
        // Not a call, or inside a string: untouched.
        assert!(parse_query(r#"holt_winters{a="holt_winters("}"#).is_ok());
        assert!(parse_query("sort_by_label(x, \"a\")").is_err());
        assert!(parse_query("limitk(1, x)").is_err());
    }

    #[test]
    fn prometheus_2_lexical_rules() {
        for bad in [
            "x[300]",
            "x offset 60",
            "x[5m:30]",
            "foo[1e400]",
            "foo offset 1e30",
            "foo[100000000y]",
            r#"{"foo.bar"="x"}"#,
            r#"{"up"}"#,
            r#"sum by ("a") (x)"#,
        ] {
            assert!(
                matches!(parse_query(bad), Err(QueryError::Parse(_))),
                "{bad} must be a parse error"
            );
        }
        for good in [
            r#"x{a="b"}[5m:30s] offset 1m"#,
            "x @ 300",
            r#"label_replace(x, "a", "b", "c", "d")"#,
        ] {
            assert!(parse_query(good).is_ok(), "{good}");
        }
    }
}
