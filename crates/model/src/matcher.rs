//! Label matchers: `=`, `!=`, `=~`, `!~`, with Prometheus 2.x's semantics. Regexes are fully
//! anchored (`job=~"api"` does not match `api-2`), `.` does not match a newline (that changed
//! only in Prometheus 3), and a label that is absent matches as the empty string. Alternations of literals (`a|b|c`) are recognised, so indexes can look the
//! values up instead of scanning.

use std::fmt;

/// The four matcher types, numbered as in the StoreAPI and remote-read protos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// `=`
    Equal = 0,
    /// `!=`
    NotEqual = 1,
    /// `=~`
    Regex = 2,
    /// `!~`
    NotRegex = 3,
}

/// Error building a matcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("matcher {name}: invalid regular expression {value:?}: {reason}")]
pub struct MatcherError {
    /// The label name.
    pub name: String,
    /// The regex text.
    pub value: String,
    /// The regex engine's message.
    pub reason: String,
}

/// A label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The value or regex text.
    pub value: String,
    /// How `value` is compared.
    pub kind: MatchType,
    /// The anchored regex, for `=~` and `!~`.
    regex: Option<regex::Regex>,
    /// For regexes that are an alternation of literals: the literals, sorted.
    set: Option<Vec<String>>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value && self.kind == other.kind
    }
}

impl Eq for Matcher {}

/// What Go's RE2 (Go 1.19, which Prometheus 2.42 is built with) refuses and Rust's `regex`
/// accepts: repeat counts over 1000, and `(?<name>…)` groups (Go 1.22 added them).
pub fn go_regex_refused(pattern: &str) -> Result<(), String> {
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class && pattern[i..].starts_with("(?<") => {
                return Err(
                    "error parsing regexp: invalid or unsupported Perl syntax: `(?<`".to_string(),
                );
            }
            b'{' if !in_class => {
                // `{n}`, `{n,}` or `{n,m}`; anything else is a literal brace.
                let rest = &pattern[i + 1..];
                if let Some(end) = rest.find('}') {
                    let body = &rest[..end];
                    let counts: Vec<&str> = body.splitn(2, ',').collect();
                    let numeric = !counts[0].is_empty()
                        && counts.iter().all(|c| c.bytes().all(|d| d.is_ascii_digit()));
                    if numeric
                        && counts
                            .iter()
                            .any(|c| !c.is_empty() && c.parse::<u32>().map_or(true, |n| n > 1000))
                    {
                        return Err(format!(
                            "error parsing regexp: invalid repeat count: `{{{body}}}`"
                        ));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// A regex as Go's RE2 reads it, in Rust's syntax: Perl classes (`\d`, `\w`, `\s`) and word
/// boundaries are ASCII in Go and Unicode in Rust, so they are spelled out as ASCII.
pub fn go_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            out.push(c);
            break;
        };
        match next {
            'd' => out.push_str("[0-9]"),
            'D' => out.push_str("[^0-9]"),
            'w' => out.push_str("[0-9A-Za-z_]"),
            'W' => out.push_str("[^0-9A-Za-z_]"),
            's' => out.push_str("[\\t\\n\\f\\r ]"),
            'S' => out.push_str("[^\\t\\n\\f\\r ]"),
            'b' => out.push_str("(?-u:\\b)"),
            'B' => out.push_str("(?-u:\\B)"),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

impl Matcher {
    /// Builds a matcher; regexes are compiled (anchored) here, with Go's RE2 meaning.
    pub fn new(
        kind: MatchType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let (name, value) = (name.into(), value.into());
        let (regex, set) = match kind {
            MatchType::Regex | MatchType::NotRegex => {
                let re = crate::regex_cache::compiled(&format!("^(?:{})$", go_regex(&value)))
                    .map_err(|e| MatcherError {
                        name: name.clone(),
                        value: value.clone(),
                        reason: e.to_string(),
                    })?;
                (Some(re), literal_alternation(&value))
            }
            _ => (None, None),
        };
        Ok(Self {
            name,
            value,
            kind,
            regex,
            set,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            kind: MatchType::Equal,
            regex: None,
            set: None,
        }
    }

    /// Whether a label value matches (an absent label is the empty string).
    pub fn matches(&self, value: &str) -> bool {
        match self.kind {
            MatchType::Equal => self.value == value,
            MatchType::NotEqual => self.value != value,
            MatchType::Regex => self.regex_matches(value),
            MatchType::NotRegex => !self.regex_matches(value),
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        match (&self.set, &self.regex) {
            (Some(set), _) => set.binary_search_by(|s| s.as_str().cmp(value)).is_ok(),
            (None, Some(re)) => re.is_match(value),
            (None, None) => false,
        }
    }

    /// The matcher with the opposite result for every value.
    pub fn inverse(&self) -> Self {
        let kind = match self.kind {
            MatchType::Equal => MatchType::NotEqual,
            MatchType::NotEqual => MatchType::Equal,
            MatchType::Regex => MatchType::NotRegex,
            MatchType::NotRegex => MatchType::Regex,
        };
        Self {
            kind,
            ..self.clone()
        }
    }

    /// For `=` the value, for `=~` over an alternation of literals the literals: the exact
    /// values this matcher accepts, when they can be listed.
    pub fn set_matches(&self) -> Option<Vec<&str>> {
        match self.kind {
            MatchType::Equal => Some(vec![self.value.as_str()]),
            MatchType::Regex => self
                .set
                .as_ref()
                .map(|s| s.iter().map(String::as_str).collect()),
            _ => None,
        }
    }

    /// Whether this is `=~".*"`, which matches every value including absence.
    pub fn matches_everything(&self) -> bool {
        self.kind == MatchType::Regex && self.value == ".*"
    }
}

/// The literals of a regex that is only an alternation of plain strings (`a|b|c`, `api`).
fn literal_alternation(re: &str) -> Option<Vec<String>> {
    let body = re
        .strip_prefix("(?:")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(re);
    let mut out = Vec::new();
    for alt in body.split('|') {
        if alt.chars().any(|c| "\\.+*?()[]{}^$|".contains(c)) {
            return None;
        }
        out.push(alt.to_string());
    }
    out.sort();
    out.dedup();
    Some(out)
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.kind {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        };
        write!(f, "{}{op}", self.name)?;
        crate::write_go_quoted(f, &self.value)
    }
}

/// A PromQL series selector for `matchers`: `{name="value", other=~"re"}`.
pub fn selector(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers.iter().map(ToString::to_string).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_go_regexp_refuses() {
        for refused in ["a{1001}", "a{1,1001}", "(?<n>a)", "x{99999999999}"] {
            assert!(super::go_regex_refused(refused).is_err(), "{refused}");
        }
        for accepted in [
            "a{1000}", "a{2,}", "(?P<n>a)", "[{]1001}", "\\{1001}", "a{x}",
        ] {
            assert!(super::go_regex_refused(accepted).is_ok(), "{accepted}");
        }
    }

    use super::*;

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let m = |re: &str| Matcher::new(MatchType::Regex, "a", re).expect("valid");
        assert!(m(r"\d+").matches("42"));
        assert!(
            !m(r"\d+").matches("٤٢"),
            "Arabic-Indic digits are not \\d in Go"
        );
        assert!(!m(r"\w+").matches("é"));
        assert!(m(r"[\d\s]+").matches("1 2"));
        assert!(
            m(r"\\d").matches(r"\d"),
            "an escaped backslash stays literal"
        );
        assert!(m(r"a\b").matches("a"));
    }

    fn m(kind: MatchType, value: &str) -> Matcher {
        Matcher::new(kind, "l", value).expect("matcher")
    }

    #[test]
    fn prometheus_semantics() {
        assert!(m(MatchType::Equal, "a").matches("a"));
        assert!(!m(MatchType::Equal, "a").matches(""));
        assert!(m(MatchType::NotEqual, "a").matches(""));
        assert!(m(MatchType::Regex, "a.*").matches("abc"));
        assert!(
            !m(MatchType::Regex, "b").matches("abc"),
            "regexes are anchored"
        );
        assert!(m(MatchType::Regex, ".*").matches(""));
        assert!(!m(MatchType::Regex, ".+").matches(""));
        assert!(m(MatchType::Regex, "a|b").matches("b"));
        assert!(!m(MatchType::Regex, "a|b").matches("ab"));
        assert!(m(MatchType::NotRegex, "a|b").matches("c"));
        assert!(
            !m(MatchType::Regex, "line.*").matches("line1\nline2"),
            "dot does not match newline in Prometheus 2.x"
        );
        assert!(
            m(MatchType::Regex, "a|").matches(""),
            "an empty alternative matches the empty value"
        );
        assert!(Matcher::new(MatchType::Regex, "l", "(").is_err());
    }

    #[test]
    fn set_matches_are_recognised() {
        assert_eq!(
            m(MatchType::Regex, "b|a|b").set_matches(),
            Some(vec!["a", "b"])
        );
        assert_eq!(
            m(MatchType::Regex, "(?:x|y)").set_matches(),
            Some(vec!["x", "y"])
        );
        assert_eq!(m(MatchType::Regex, "a.*").set_matches(), None);
        assert_eq!(m(MatchType::Equal, "v").set_matches(), Some(vec!["v"]));
        assert_eq!(m(MatchType::NotEqual, "v").set_matches(), None);
        assert_eq!(
            m(MatchType::Regex, "a|b").inverse().kind,
            MatchType::NotRegex
        );
        assert_eq!(m(MatchType::Regex, "a|b").to_string(), r#"l=~"a|b""#);
    }
}
