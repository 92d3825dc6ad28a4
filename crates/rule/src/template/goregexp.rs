//! Go's RE2 regular expressions on the `regex` crate: the pattern is translated where the
//! syntaxes differ (ASCII-only `\d \w \s \b`, `\Q…\E`), Go's parse errors are reproduced for
//! the common mistakes, and `ReplaceAllString` keeps Go's empty-match and `$name` rules.

use regex::Regex;

fn err(code: &str, expr: &str) -> String {
    format!("error parsing regexp: {code}: `{expr}`")
}

/// Compiles a Go regular expression; the error is Go's text.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)?;
    Regex::new(&translated).map_err(|e| {
        let msg = e.to_string();
        let last = msg
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("error: invalid syntax");
        err(last.trim_start_matches("error: "), pattern)
    })
}

fn class_escape(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "0-9",
        'w' => "0-9A-Za-z_",
        's' => "\\t\\n\\x0C\\r ",
        _ => return None,
    })
}

const VALID_ESCAPES: &str = "aftnrvAbBzpPxdDwWsSQ0123456789";

/// Rewrites a Go pattern for the `regex` crate, checking what Go checks on the way.
fn translate(p: &str) -> Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut depth = 0usize;
    // Whether the previous item can take a repetition, and the text of a repetition just seen.
    let mut can_repeat = false;
    let mut last_repeat: Option<usize> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    return Err(err("trailing backslash at end of expression", ""));
                };
                if e.is_ascii_alphanumeric() && !VALID_ESCAPES.contains(e) {
                    return Err(err("invalid escape sequence", &format!("\\{e}")));
                }
                i += 2;
                match e {
                    'd' | 'w' | 's' => {
                        out.push_str(&format!("[{}]", class_escape(e).unwrap_or("")))
                    }
                    'D' | 'W' | 'S' => {
                        out.push_str(&format!(
                            "[^{}]",
                            class_escape(e.to_ascii_lowercase()).unwrap_or("")
                        ));
                    }
                    'b' => out.push_str("(?-u:\\b)"),
                    'B' => out.push_str("(?-u:\\B)"),
                    'Q' => {
                        let rest: String = chars[i..].iter().collect();
                        let (lit, consumed) = match rest.find("\\E") {
                            Some(end) => (rest[..end].to_string(), rest[..end].chars().count() + 2),
                            None => (rest.clone(), rest.chars().count()),
                        };
                        out.push_str(&regex::escape(&lit));
                        i += consumed;
                    }
                    'p' | 'P' | 'x' => {
                        out.push('\\');
                        out.push(e);
                        if chars.get(i) == Some(&'{') {
                            while i < chars.len() {
                                out.push(chars[i]);
                                i += 1;
                                if chars[i - 1] == '}' {
                                    break;
                                }
                            }
                        } else if e == 'x' {
                            for _ in 0..2 {
                                if let Some(&h) = chars.get(i) {
                                    out.push(h);
                                    i += 1;
                                }
                            }
                        } else if let Some(&h) = chars.get(i) {
                            out.push(h);
                            i += 1;
                        }
                    }
                    e => {
                        out.push('\\');
                        out.push(e);
                    }
                }
                can_repeat = true;
                last_repeat = None;
                continue;
            }
            '[' => {
                let (class, next) = translate_class(&chars, i)?;
                out.push_str(&class);
                i = next;
                can_repeat = true;
                last_repeat = None;
                continue;
            }
            '(' => {
                if chars.get(i + 1) == Some(&'?') {
                    let rest: String = chars[i..].iter().collect();
                    if let Some(name_end) = rest.strip_prefix("(?P<").and_then(|r| r.find('>')) {
                        let header = &rest[..4 + name_end + 1];
                        out.push_str(header);
                        i += header.chars().count();
                        depth += 1;
                        can_repeat = false;
                        last_repeat = None;
                        continue;
                    }
                    // Flags: (?imsU-imsU) or (?flags:...).
                    let mut j = i + 2;
                    loop {
                        match chars.get(j) {
                            Some('i' | 'm' | 's' | 'U' | '-') => j += 1,
                            Some(':') => {
                                let header: String = chars[i..=j].iter().collect();
                                out.push_str(&header);
                                depth += 1;
                                can_repeat = false;
                                break;
                            }
                            Some(')') => {
                                let header: String = chars[i..=j].iter().collect();
                                out.push_str(&header);
                                break;
                            }
                            Some(_) => {
                                let text: String = chars[i..=j].iter().collect();
                                return Err(err("invalid or unsupported Perl syntax", &text));
                            }
                            None => return Err(err("missing closing )", p)),
                        }
                    }
                    i = j + 1;
                    last_repeat = None;
                    continue;
                }
                depth += 1;
                out.push('(');
                i += 1;
                can_repeat = false;
                last_repeat = None;
                continue;
            }
            ')' => {
                if depth == 0 {
                    return Err(err("unexpected )", p));
                }
                depth -= 1;
                out.push(')');
                i += 1;
                can_repeat = true;
                last_repeat = None;
                continue;
            }
            '|' => {
                out.push('|');
                i += 1;
                can_repeat = false;
                last_repeat = None;
                continue;
            }
            '*' | '+' | '?' | '{' => {
                let start = i;
                let mut j = i + 1;
                if c == '{' {
                    // A valid {n}, {n,} or {n,m}; anything else is a literal brace in Go.
                    let rest: String = chars[i..].iter().collect();
                    let Some((min, max, len)) = parse_repeat(&rest) else {
                        out.push_str("\\{");
                        i += 1;
                        can_repeat = true;
                        last_repeat = None;
                        continue;
                    };
                    if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
                        return Err(err("invalid repeat count", &rest[..len]));
                    }
                    j = i + rest[..len].chars().count();
                }
                if chars.get(j) == Some(&'?') {
                    j += 1;
                }
                let op: String = chars[start..j].iter().collect();
                if let Some(prev) = last_repeat {
                    let text: String = chars[prev..j].iter().collect();
                    return Err(err("invalid nested repetition operator", &text));
                }
                if !can_repeat {
                    return Err(err("missing argument to repetition operator", &op));
                }
                out.push_str(&op);
                last_repeat = Some(start);
                i = j;
                continue;
            }
            c => {
                out.push(c);
                i += 1;
                can_repeat = true;
                last_repeat = None;
            }
        }
    }
    if depth > 0 {
        return Err(err("missing closing )", p));
    }
    Ok(out)
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `s`: (min, max, byte length).
fn parse_repeat(s: &str) -> Option<(u64, Option<u64>, usize)> {
    let end = s.find('}')?;
    let body = &s[1..end];
    let (min, max) = match body.split_once(',') {
        None => {
            let n = body
                .parse()
                .ok()
                .filter(|_| !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()))?;
            (n, Some(n))
        }
        Some((a, b)) => {
            if a.is_empty()
                || !a.bytes().all(|c| c.is_ascii_digit())
                || !b.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            let min = a.parse().ok()?;
            let max = if b.is_empty() {
                None
            } else {
                Some(b.parse().ok()?)
            };
            (min, max)
        }
    };
    Some((min, max, end + 1))
}

/// Translates a bracketed class starting at `chars[i] == '['`.
fn translate_class(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut out = String::from("[");
    let mut i = start + 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    let mut prev_char: Option<char> = None;
    loop {
        let Some(&c) = chars.get(i) else {
            let rest: String = chars[start..].iter().collect();
            return Err(err("missing closing ]", &rest));
        };
        if c == ']' && !first {
            out.push(']');
            return Ok((out, i + 1));
        }
        first = false;
        if c == '[' && chars.get(i + 1) == Some(&':') {
            let rest: String = chars[i..].iter().collect();
            if let Some(end) = rest.find(":]") {
                out.push_str(&rest[..end + 2]);
                i += rest[..end + 2].chars().count();
                prev_char = None;
                continue;
            }
        }
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else {
                return Err(err("trailing backslash at end of expression", ""));
            };
            if e.is_ascii_alphanumeric() && !VALID_ESCAPES.contains(e) {
                return Err(err("invalid escape sequence", &format!("\\{e}")));
            }
            match e {
                'd' | 'w' | 's' => out.push_str(class_escape(e).unwrap_or("")),
                'D' | 'W' | 'S' => {
                    out.push_str(&format!(
                        "[^{}]",
                        class_escape(e.to_ascii_lowercase()).unwrap_or("")
                    ));
                }
                e => {
                    out.push('\\');
                    out.push(e);
                }
            }
            prev_char = if e.is_ascii_alphanumeric() {
                None
            } else {
                Some(e)
            };
            i += 2;
            continue;
        }
        if c == '-' {
            if let (Some(lo), Some(&hi)) = (prev_char, chars.get(i + 1)) {
                if hi != ']' && hi != '\\' && hi < lo {
                    return Err(err("invalid character class range", &format!("{lo}-{hi}")));
                }
            }
        }
        if c == '[' || c == '&' || c == '~' || (c == '-' && out.ends_with('-')) {
            out.push('\\');
        }
        out.push(c);
        prev_char = Some(c);
        i += 1;
    }
}

/// Go's `Regexp.ReplaceAllString`: `$1`, `${1}`, `$name`, `$$` in `repl`; an empty match
/// right after a previous match is not replaced.
pub(crate) fn replace_all(re: &Regex, src: &str, repl: &str) -> String {
    let mut out = String::new();
    let mut last_match_end = 0;
    let mut search_pos = 0;
    let mut locs = re.capture_locations();
    while search_pos <= src.len() {
        let Some(m) = re.captures_read_at(&mut locs, src, search_pos) else {
            break;
        };
        let (a0, a1) = (m.start(), m.end());
        out.push_str(&src[last_match_end..a0]);
        if a1 > last_match_end || a0 == 0 {
            expand(&mut out, repl, src, re, &locs);
        }
        last_match_end = a1;
        let width = src[search_pos..].chars().next().map_or(0, char::len_utf8);
        if search_pos + width > a1 {
            search_pos += width;
        } else if search_pos + 1 > a1 {
            search_pos += 1;
        } else {
            search_pos = a1;
        }
        if width == 0 && search_pos > src.len() {
            break;
        }
    }
    out.push_str(&src[last_match_end.min(src.len())..]);
    out
}

fn expand(out: &mut String, template: &str, src: &str, re: &Regex, locs: &regex::CaptureLocations) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with("$$") {
            out.push('$');
            rest = &rest[2..];
            continue;
        }
        let (name, after) = if let Some(body) = rest.strip_prefix("${") {
            match body.find('}') {
                Some(end)
                    if end > 0 && body[..end].chars().all(|c| c == '_' || c.is_alphanumeric()) =>
                {
                    (&body[..end], &body[end + 1..])
                }
                _ => ("", rest),
            }
        } else {
            let body = &rest[1..];
            let n = body
                .find(|c: char| !(c == '_' || c.is_alphanumeric()))
                .unwrap_or(body.len());
            (&body[..n], &body[n..])
        };
        if name.is_empty() {
            // Malformed: the $ is copied as text.
            out.push('$');
            rest = &rest[1..];
            continue;
        }
        let group = if name.bytes().all(|b| b.is_ascii_digit()) {
            name.parse::<usize>().ok()
        } else {
            re.capture_names().position(|n| n == Some(name))
        };
        if let Some((s, e)) = group.and_then(|g| locs.get(g)) {
            out.push_str(&src[s..e]);
        }
        rest = after;
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(p: &str, src: &str, repl: &str) -> String {
        replace_all(&compile(p).expect("compiles"), src, repl)
    }

    #[test]
    fn replace_all_like_go() {
        assert_eq!(rep("a*", "baaac", "X"), "XbXcX");
        assert_eq!(rep("(\\w+):(\\d+)", "host:9090", "$1"), "host");
        assert_eq!(rep("(\\w+):(\\d+)", "host:9090", "$1x"), "");
        assert_eq!(rep("(\\w+):(\\d+)", "host:9090", "${1}x"), "hostx");
        assert_eq!(rep("(?P<h>\\w+):", "host:", "[$h]$$"), "[host]$");
        assert_eq!(rep("\\d", "١2", "#"), "١#");
    }

    #[test]
    fn errors_like_go() {
        assert_eq!(
            compile("(").err(),
            Some("error parsing regexp: missing closing ): `(`".to_string())
        );
        assert_eq!(
            compile("a)").err(),
            Some("error parsing regexp: unexpected ): `a)`".to_string())
        );
        assert_eq!(
            compile("[a").err(),
            Some("error parsing regexp: missing closing ]: `[a`".to_string())
        );
        assert_eq!(
            compile("*a").err(),
            Some("error parsing regexp: missing argument to repetition operator: `*`".to_string())
        );
        assert_eq!(
            compile("a**").err(),
            Some("error parsing regexp: invalid nested repetition operator: `**`".to_string())
        );
        assert_eq!(
            compile("\\q").err(),
            Some("error parsing regexp: invalid escape sequence: `\\q`".to_string())
        );
        assert_eq!(
            compile("[z-a]").err(),
            Some("error parsing regexp: invalid character class range: `z-a`".to_string())
        );
        assert_eq!(
            compile("a{1001}").err(),
            Some("error parsing regexp: invalid repeat count: `{1001}`".to_string())
        );
        assert_eq!(
            compile("(?<n>a)").err(),
            Some("error parsing regexp: invalid or unsupported Perl syntax: `(?<`".to_string())
        );
    }
}
