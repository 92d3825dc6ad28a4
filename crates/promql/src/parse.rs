//! Parsing with `promql-parser`, held to what Prometheus 2.42 accepts.

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};

use crate::error::QueryError;
use crate::function::HOLT_WINTERS_3X;

/// A parsed query, and the stack its depth needs. Parsing, walking, evaluating and dropping an
/// expression recurse once per level of nesting, and Prometheus answers queries nested tens of
/// thousands deep (slowly): each of those steps runs on a stack grown to the query's depth
/// ([`ParsedQuery::on_stack`]), the drop included, so no query can overflow a thread's stack.
pub struct ParsedQuery {
    expr: Expr,
    stack: usize,
}

impl ParsedQuery {
    /// The expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Runs `f`, which may recurse over the expression, on a stack deep enough for it.
    pub fn on_stack<'a, R>(&'a self, f: impl FnOnce(&'a Expr) -> R) -> R {
        on_stack(self.stack, || f(&self.expr))
    }
}

impl Drop for ParsedQuery {
    fn drop(&mut self) {
        // Dropping a nested `Expr` recurses through its boxes.
        let expr = std::mem::replace(&mut self.expr, Expr::from(0.0));
        on_stack(self.stack, move || drop(expr));
    }
}

impl std::fmt::Debug for ParsedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedQuery")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

/// Stack for a query of `depth` levels at most: what one level costs on the deepest of the
/// recursions (the evaluator's), measured by `deep_nesting_of_every_kind_evaluates`, twice
/// over; debug builds' frames are several times larger.
fn stack_for(depth: usize) -> usize {
    const BASE: usize = 256 << 10;
    const PER_LEVEL: usize = if cfg!(debug_assertions) {
        24 << 10
    } else {
        8 << 10
    };
    BASE.saturating_add(depth.saturating_mul(PER_LEVEL))
}

/// Deepest nesting accepted: its stack (reserved address space, touched only as deep as a
/// query goes) stays under 1 GiB in release builds. Prometheus 2.42 times out (after its
/// default 2 minutes) on most queries this deep; rthanos refuses deeper ones at once with a
/// parse error.
pub const MAX_DEPTH: usize = 100_000;

/// Runs `f` with at least `bytes` of stack left, on a new stack segment when this thread's is
/// too short.
pub(crate) fn on_stack<R>(bytes: usize, f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(bytes, bytes, f)
}

/// Parses a query as Prometheus 2.42 would.
pub fn parse_query(query: &str) -> Result<ParsedQuery, QueryError> {
    let rewritten = rewrite_identifiers(query)?;
    let depth = check_tokens_2x(&rewritten)?;
    if depth > MAX_DEPTH {
        return Err(QueryError::Parse(format!(
            "1:1: parse error: query nested too deeply: at most {MAX_DEPTH} levels are accepted"
        )));
    }
    let stack = stack_for(depth);
    on_stack(stack, || {
        // The parser panics on some inputs (a duration beyond what it can hold): never let a
        // query take the process down. The token checks refuse every such input known; this
        // is the last resort.
        let parsed = std::panic::catch_unwind(|| parser::parse(&rewritten))
            .unwrap_or_else(|_| Err("invalid promql query".to_string()));
        let expr = parsed.map_err(|e| QueryError::Parse(with_position(query, &e)))?;
        let parsed = ParsedQuery { expr, stack };
        check_2x(parsed.expr())?;
        Ok(parsed)
    })
}

/// The matchers of a series selector (`match[]` of the metadata APIs), e.g. `up{job="a"}`.
pub fn parse_selector(selector: &str) -> Result<Vec<rthanos_model::Matcher>, QueryError> {
    match parse_query(selector)?.expr() {
        // Prometheus's `ParseMetricSelector` takes a bare selector: no offset, no `@`.
        Expr::VectorSelector(vs) if vs.offset.is_some() || vs.at.is_some() => {
            Err(QueryError::Parse(format!(
                "invalid parameter \"match[]\": {selector:?}: unexpected modifier in a series selector"
            )))
        }
        Expr::VectorSelector(vs) => crate::plan::selector_matchers(vs),
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
                Expr::VectorSelector(vs) => self.0.push(crate::plan::selector_matchers(vs)?),
                Expr::MatrixSelector(ms) => {
                    self.0.push(crate::plan::selector_matchers(&ms.vs)?);
                }
                _ => {}
            }
            Ok(true)
        }
    }
    let parsed = parse_query(query)?;
    parsed.on_stack(|expr| {
        let mut found = Collect(Vec::new());
        promql_parser::util::walk_expr(&mut found, expr)?;
        Ok(found.0)
    })
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
/// nanoseconds, number literals fit in a float, `@` times in an int64 of milliseconds, and
/// label and metric names are never quoted strings. Returns a bound on the depth of the
/// query's expression: its opening and operand tokens outside label matchers.
fn check_tokens_2x(query: &str) -> Result<usize, QueryError> {
    use lrpar::{Lexeme, Lexer};
    use promql_parser::parser::token::{
        T_ADD, T_AT, T_BY, T_COMMA, T_DURATION, T_GROUP_LEFT, T_GROUP_RIGHT, T_IGNORING,
        T_LEFT_BRACE, T_LEFT_BRACKET, T_LEFT_PAREN, T_NUMBER, T_OFFSET, T_ON, T_RIGHT_BRACE,
        T_RIGHT_BRACKET, T_RIGHT_PAREN, T_STRING, T_SUB, T_WITHOUT,
    };
    // Lexer errors are left to the parser, which words them (the lexer stops at the first,
    // so the depth of what it read bounds what the parser builds).
    let Ok(lexer) = parser::lexer(query) else {
        return Ok(query.len());
    };
    let fail = |start: usize, what: String| {
        let column = query[..start].chars().count() + 1;
        Err(QueryError::Parse(format!(
            "1:{column}: parse error: {what}"
        )))
    };
    let (mut brackets, mut braces) = (0i32, 0i32);
    let mut grouping = false;
    let (mut prev, mut prev2): (Option<u16>, Option<u16>) = (None, None);
    // Whether the token before is `@` (a sign between them allowed).
    let mut after_at = false;
    let mut depth = 1usize;
    for lexeme in lexer.iter().filter_map(Result::ok) {
        let id = lexeme.tok_id();
        let span = lexeme.span();
        let text = &query[span.start()..span.end()];
        // Closing and separating tokens add no level; nor do label matchers.
        if braces == 0 && !matches!(id, T_RIGHT_PAREN | T_RIGHT_BRACKET | T_COMMA) {
            depth += 1;
        }
        let at_number = after_at;
        after_at = id == T_AT || (after_at && matches!(id, T_ADD | T_SUB) && prev == Some(T_AT));
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
            T_NUMBER
                if brackets > 0
                    || prev == Some(T_OFFSET)
                    || (matches!(prev, Some(T_ADD | T_SUB)) && prev2 == Some(T_OFFSET)) =>
            {
                return fail(
                    span.start(),
                    format!("unexpected number {text:?}: a duration needs a unit"),
                );
            }
            T_NUMBER => {
                let value = number_value(text);
                // Go's ParseFloat refuses what overflows a float; Rust's gives infinity.
                if value.is_infinite() && !text.to_ascii_lowercase().contains("inf") {
                    return fail(
                        span.start(),
                        format!(
                            "error parsing number: strconv.ParseFloat: parsing {text:?}: value out of range"
                        ),
                    );
                }
                let sign = if prev == Some(T_SUB) { -1.0 } else { 1.0 };
                // Prometheus's bounds of an `@` time, in seconds: within (-2^63, 2^63).
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if at_number && !(value < LIMIT && value > -LIMIT) {
                    return Err(QueryError::Parse(format!(
                        "1:1: parse error: timestamp out of bounds for @ modifier: {}",
                        go_float(sign * value)
                    )));
                }
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
        prev2 = prev;
        prev = Some(id);
    }
    Ok(depth)
}

/// A number literal's value as the parser reads it (hexadecimal and octal integers too).
fn number_value(text: &str) -> f64 {
    let lower = text.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).map_or(f64::INFINITY, |v| v as f64);
    }
    lower.parse().unwrap_or(0.0)
}

/// A float as Go's `%f` prints it in Prometheus's `@` error (`NaN`, `+Inf`, `-Inf`, or six
/// decimals).
fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:.6}")
    }
}

/// For a syntax error the parser does not locate: the token after the longest prefix of the
/// query that parses on its own (`foo bar` → `bar`), with its byte offset.
fn unexpected_token(query: &str) -> Option<(usize, String)> {
    use lrpar::{Lexeme, Lexer};
    // One parse per prefix: past a few hundred tokens the position is not worth the time.
    const MAX_TOKENS: usize = 256;
    let lexer = parser::lexer(query).ok()?;
    let spans: Vec<(usize, usize)> = lexer
        .iter()
        .filter_map(Result::ok)
        .take(MAX_TOKENS + 1)
        .map(|l| (l.span().start(), l.span().end()))
        .collect();
    if spans.len() > MAX_TOKENS {
        return None;
    }
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
            if !vs.matchers.or_matchers.is_empty() {
                return refuse("unexpected \"or\" in label matching".into());
            }
            for m in &vs.matchers.matchers {
                if matches!(m.op, MatchOp::Re(_) | MatchOp::NotRe(_)) {
                    rthanos_model::go_regex_refused(&m.value).or_else(refuse)?;
                }
            }
            Ok(())
        }
        Expr::MatrixSelector(ms) => check_2x(&Expr::VectorSelector(ms.vs.clone())),
        Expr::Call(call) => {
            let name = call.func.name;
            if crate::function::Function::of_call(name).is_none() {
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
