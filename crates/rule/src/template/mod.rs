//! Prometheus's template language (Go 1.19's text/template with Prometheus 2.42's functions),
//! used to expand alerting rules' labels and annotations.
//!
//! Prometheus expands each label and annotation value of a firing alert with Go's
//! `text/template`, its own function map (`template/template.go`) and the alert's data
//! (`rules/alerting.go`). No Rust template crate prints Go's way (floats as `1e+06`, maps
//! as `map[a:b]`, `%!d(string=x)`) or words errors as Go does, and users' annotations
//! depend on both, so the language is implemented here: [`lex`] → [`parse`] (a tree of
//! [`node`]s) → [`exec`] over [`value`]s, with Go's `fmt` ([`fmt`], [`ftoa`]), builtins
//! ([`builtins`]) and Prometheus's functions ([`funcs`], [`goregexp`], [`time`]).
//!
//! ```
//! use rthanos_rule::template::{expand_alert_template, NoQueries, TemplateData};
//! let mut data = TemplateData::default();
//! data.labels.insert("instance".into(), "host:9090".into());
//! data.value = 1234567.0;
//! let out = expand_alert_template("HighLoad", "{{ $labels.instance }} at {{ $value | humanize }}", &data, 0, &mut NoQueries)
//!     .expect("expands");
//! assert_eq!(out, "host:9090 at 1.235M");
//! ```

mod builtins;
mod exec;
mod fmt;
mod ftoa;
mod funcs;
mod goregexp;
mod lex;
mod node;
mod number;
mod parse;
mod quote;
mod time;
mod value;

use std::collections::BTreeMap;
use std::rc::Rc;

/// The data an alert template sees as `.` (Prometheus's `AlertTemplateData`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateData {
    /// The alert's labels (`.Labels`, `$labels`).
    pub labels: BTreeMap<String, String>,
    /// The ruler's external labels (`.ExternalLabels`, `$externalLabels`).
    pub external_labels: BTreeMap<String, String>,
    /// The external URL (`.ExternalURL`, `$externalURL`, and the `externalURL` and
    /// `pathPrefix` functions).
    pub external_url: String,
    /// The alert's value (`.Value`, `$value`).
    pub value: f64,
}

/// One sample of a `query` result: `.Labels` and `.Value` in a template.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuerySample {
    /// The series' labels, `__name__` included.
    pub labels: BTreeMap<String, String>,
    /// The sample's value.
    pub value: f64,
}

/// Runs the template function `query`: an instant query at the expansion's time. A scalar
/// result is one sample with no labels; any other non-vector result is an error
/// (Prometheus's `rule result is not a vector or scalar`).
pub trait QueryFunc {
    /// Evaluates `expr` at `timestamp_ms`; the error text is what the template's error shows
    /// after `error calling query: `.
    fn query(&mut self, expr: &str, timestamp_ms: i64) -> Result<Vec<QuerySample>, String>;
}

/// A [`QueryFunc`] for expansions that may not query (checks, tests): every query fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoQueries;

impl QueryFunc for NoQueries {
    fn query(&mut self, _expr: &str, _timestamp_ms: i64) -> Result<Vec<QuerySample>, String> {
        Err("queries are not available here".to_string())
    }
}

/// A template that did not parse or execute, worded as Prometheus words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The text is not a valid template.
    #[error("error parsing template {name}: {error}")]
    Parse {
        /// The template's name (`__alert_<rule name>`).
        name: String,
        /// text/template's error, `template: NAME:LINE: …`.
        error: String,
    },
    /// Execution failed.
    #[error("error executing template {name}: {error}")]
    Execute {
        /// The template's name.
        name: String,
        /// text/template's error, `template: NAME:LINE:COL: executing "…" at <…>: …`.
        error: String,
    },
}

impl TemplateError {
    /// text/template's own error, without Prometheus's `error parsing template X: ` (what
    /// `promtool check rules` prints after `annotation "summary": `).
    pub fn go_error(&self) -> &str {
        match self {
            TemplateError::Parse { error, .. } | TemplateError::Execute { error, .. } => error,
        }
    }

    /// What Prometheus puts in place of a label or annotation whose expansion failed.
    pub fn expansion_failure_text(&self) -> String {
        format!("<error expanding template: {self}>")
    }
}

/// The variables Prometheus defines before every alert template.
const PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn template_name(rule_name: &str) -> String {
    format!("__alert_{rule_name}")
}

fn parse_alert(name: &str, text: &str) -> Result<(parse::TreeSet, String), TemplateError> {
    let full = format!("{PREFIX}{text}");
    match parse::parse(name, &full, &funcs::AllFuncs) {
        Ok(set) => Ok((set, full)),
        Err(e) => Err(TemplateError::Parse {
            name: name.to_string(),
            error: e.0,
        }),
    }
}

struct Env<'q> {
    query: &'q mut dyn QueryFunc,
    timestamp_ms: i64,
    external_url: String,
}

impl funcs::FuncEnv for Env<'_> {
    fn query(&mut self, expr: &str) -> Result<Vec<QuerySample>, String> {
        self.query.query(expr, self.timestamp_ms)
    }

    fn external_url(&self) -> &str {
        &self.external_url
    }
}

/// Expands one label or annotation value of alerting rule `rule_name` as Prometheus 2.42
/// does: the text is prefixed with the `$labels`, `$externalLabels`, `$externalURL` and
/// `$value` definitions and executed as template `__alert_<rule_name>` with
/// `missingkey=zero`; `query` runs at `timestamp_ms`.
pub fn expand_alert_template(
    rule_name: &str,
    text: &str,
    data: &TemplateData,
    timestamp_ms: i64,
    query: &mut dyn QueryFunc,
) -> Result<String, TemplateError> {
    let name = template_name(rule_name);
    let (set, full) = parse_alert(&name, text)?;
    let mut env = Env {
        query,
        timestamp_ms,
        external_url: data.external_url.clone(),
    };
    let dot = value::Value::Data(Rc::new(data.clone()));
    exec::execute(&set, &name, &full, &dot, &mut env)
        .map_err(|e| TemplateError::Execute { name, error: e.0 })
}

/// Parses a label or annotation value of alerting rule `rule_name` without executing it,
/// as Prometheus's rule file check does (`rulefmt`'s template test, `promtool check rules`).
pub fn check_alert_template(rule_name: &str, text: &str) -> Result<(), TemplateError> {
    parse_alert(&template_name(rule_name), text).map(|_| ())
}

/// Thanos's `--alert.query-template` link: `template` executed as Go's text/template named
/// `url` with `.Expr` the query-escaped expression (Thanos's `tableLinkForExpression`).
///
/// # Errors
/// The template does not parse or execute (Thanos checks it with `test_expr` at start-up).
pub fn expand_expression_link(template: &str, escaped_expr: &str) -> Result<String, TemplateError> {
    let name = "url".to_string();
    let set =
        parse::parse(&name, template, &funcs::AllFuncs).map_err(|e| TemplateError::Parse {
            name: name.clone(),
            error: e.0,
        })?;
    let mut queries = NoQueries;
    let mut env = Env {
        query: &mut queries,
        timestamp_ms: 0,
        external_url: String::new(),
    };
    let fields = BTreeMap::from([("Expr".to_string(), escaped_expr.to_string())]);
    let dot = value::Value::StrMap(Rc::new(fields));
    exec::execute(&set, &name, template, &dot, &mut env)
        .map_err(|e| TemplateError::Execute { name, error: e.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_links_are_templates_with_expr() {
        for (template, out) in [
            (
                "/graph?g0.expr={{.Expr}}&g0.tab=1",
                "/graph?g0.expr=up%3D%3D0&g0.tab=1",
            ),
            ("/graph?g0.expr={{- .Expr -}}", "/graph?g0.expr=up%3D%3D0"),
            ("/q?e={{ .Expr | printf \"%s!\" }}", "/q?e=up%3D%3D0!"),
        ] {
            assert_eq!(
                expand_expression_link(template, "up%3D%3D0").expect(template),
                out
            );
        }
        assert!(expand_expression_link("{{.Expr", "x").is_err());
    }

    fn data() -> TemplateData {
        let mut d = TemplateData {
            external_url: "http://prom.example:9090/prefix".into(),
            value: 1.23456,
            ..TemplateData::default()
        };
        d.labels
            .insert("instance".into(), "host.example:9090".into());
        d.labels.insert("job".into(), "node".into());
        d
    }

    fn run(text: &str) -> String {
        match expand_alert_template("X", text, &data(), 0, &mut NoQueries) {
            Ok(s) => s,
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn expands_like_prometheus() {
        assert_eq!(
            run("{{ $labels.instance }} {{ $value }}"),
            "host.example:9090 1.23456"
        );
        assert_eq!(
            run("{{ .Labels }}"),
            "map[instance:host.example:9090 job:node]"
        );
        assert_eq!(run("{{ $labels.missing }}|{{ (args).x }}"), "|<no value>");
        assert_eq!(
            run("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
            "instance=host.example:9090;job=node;"
        );
        assert_eq!(
            run("{{ if gt $value 1.0 }}big{{ else }}small{{ end }}"),
            "big"
        );
        assert_eq!(
            run("{{ humanize 1e6 }} {{ humanize1024 1048576 }} {{ humanizeDuration 90061 }}"),
            "1M 1Mi 1d 1h 1m 1s"
        );
        assert_eq!(
            run("{{ printf \"%.2f\" $value }} {{ pathPrefix }}"),
            "1.23 /prefix"
        );
        assert_eq!(
            run("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" 5 }}"),
            "[5]"
        );
        assert_eq!(
            run("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}"),
            "host.example"
        );
        assert_eq!(
            run("{{ $labels.instance | stripPort | stripDomain | toUpper }}"),
            "HOST"
        );
    }

    #[test]
    fn errors_like_prometheus() {
        assert_eq!(
            run("{{ .Foo }}"),
            "error executing template __alert_X: template: __alert_X:1:115: executing \"__alert_X\" at <.Foo>: can't evaluate field Foo in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }"
        );
        assert_eq!(
            run("{{ }"),
            "error parsing template __alert_X: template: __alert_X:1: unexpected \"}\" in command"
        );
        assert_eq!(
            run("{{ eq $value 1 }}"),
            "error executing template __alert_X: template: __alert_X:1:115: executing \"__alert_X\" at <eq $value 1>: error calling eq: incompatible types for comparison"
        );
        assert!(check_alert_template("X", "{{ nosuch }}").is_err());
    }

    #[test]
    fn deep_templates_fail_without_overflowing() {
        let deep = format!(
            "{}1{}",
            "{{ if true }}".repeat(5000),
            "{{ end }}".repeat(5000)
        );
        assert!(run(&deep).contains("nests more than"));
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(run(&parens).contains("nests more than"));
        let recursive = "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}";
        assert!(run(recursive).contains("exceeded maximum template depth (100000)"));
    }
}
