//! Go's string literals: `strconv.Quote` (for `%q` and error texts), `strconv.Unquote`
//! (for the template's string and character constants) and `%#U`.

/// Go's `unicode.IsPrint`, approximated: letters, marks, numbers, punctuation and symbols
/// (everything but controls, format characters, separators other than U+0020, and
/// private use).
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    !matches!(u,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x08E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0xE0001 | 0xE0020..=0xE007F
        | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD | 0xFFFE | 0xFFFF)
}

fn quote_with(s: &str, quote: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        push_escaped(&mut out, c, quote, ascii_only);
    }
    out.push(quote);
    out
}

fn push_escaped(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii_only {
        if c.is_ascii() && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    quote_with(s, '"', false)
}

/// `strconv.QuoteToASCII`.
pub(crate) fn go_quote_ascii(s: &str) -> String {
    quote_with(s, '"', true)
}

/// `strconv.QuoteRune` (or `QuoteRuneToASCII`).
pub(crate) fn go_quote_rune(c: char, ascii_only: bool) -> String {
    quote_with(c.encode_utf8(&mut [0; 4]), '\'', ascii_only)
}

/// `strconv.CanBackquote`.
pub(crate) fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !(c < ' ' || c == '\x7f')))
}

/// `%#U`: `U+0021 '!'`, or just `U+0001` for a character that does not print.
pub(crate) fn rune_desc(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// Go's `strconv.ErrSyntax` text.
pub(crate) const INVALID_SYNTAX: &str = "invalid syntax";

/// Decodes one possibly escaped character at the start of `s` (Go's `strconv.UnquoteChar`),
/// returning it as bytes (a `\x` escape is a single byte) and the rest of `s`.
fn unquote_char(s: &str, quote: char) -> Result<(Vec<u8>, &str), &'static str> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(INVALID_SYNTAX)?;
    if c == quote && (quote == '\'' || quote == '"') {
        return Err(INVALID_SYNTAX);
    }
    if c != '\\' {
        return Ok((
            c.encode_utf8(&mut [0; 4]).as_bytes().to_vec(),
            chars.as_str(),
        ));
    }
    let e = chars.next().ok_or(INVALID_SYNTAX)?;
    let rest = chars.as_str();
    let simple = |b: u8| Ok((vec![b], rest));
    match e {
        'a' => simple(7),
        'b' => simple(8),
        'f' => simple(12),
        'n' => simple(b'\n'),
        'r' => simple(b'\r'),
        't' => simple(b'\t'),
        'v' => simple(11),
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let digits = rest.get(..n).ok_or(INVALID_SYNTAX)?;
            let v = u32::from_str_radix(digits, 16).map_err(|_| INVALID_SYNTAX)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(INVALID_SYNTAX);
            }
            let rest = &rest[n..];
            if e == 'x' {
                return Ok((vec![v as u8], rest));
            }
            let c = char::from_u32(v).ok_or(INVALID_SYNTAX)?;
            Ok((c.encode_utf8(&mut [0; 4]).as_bytes().to_vec(), rest))
        }
        '0'..='7' => {
            let digits = rest.get(..2).ok_or(INVALID_SYNTAX)?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(INVALID_SYNTAX);
            }
            let v = (e as u32 - '0' as u32) * 64
                + u32::from_str_radix(digits, 8).map_err(|_| INVALID_SYNTAX)?;
            if v > 255 {
                return Err(INVALID_SYNTAX);
            }
            Ok((vec![v as u8], &rest[2..]))
        }
        '\\' => simple(b'\\'),
        '\'' | '"' if e == quote => simple(e as u8),
        _ => Err(INVALID_SYNTAX),
    }
}

/// Go's `strconv.Unquote` for a `"…"` or `` `…` `` literal. Bytes that `\x` escapes make
/// and that are not UTF-8 become U+FFFD (a Go string may hold any bytes; ours hold text).
pub(crate) fn unquote(lit: &str) -> Result<String, &'static str> {
    if lit.len() < 2 {
        return Err(INVALID_SYNTAX);
    }
    let quote = lit.as_bytes()[0];
    if lit.as_bytes()[lit.len() - 1] != quote {
        return Err(INVALID_SYNTAX);
    }
    let body = &lit[1..lit.len() - 1];
    match quote {
        b'`' => {
            if body.contains('`') {
                return Err(INVALID_SYNTAX);
            }
            Ok(body.replace('\r', ""))
        }
        b'"' => {
            let mut bytes = Vec::with_capacity(body.len());
            let mut rest = body;
            while !rest.is_empty() {
                if rest.starts_with('\n') {
                    return Err(INVALID_SYNTAX);
                }
                let (b, r) = unquote_char(rest, '"')?;
                bytes.extend_from_slice(&b);
                rest = r;
            }
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => Err(INVALID_SYNTAX),
    }
}

/// A character constant's value: `'a'`, `'\n'`, `'\x41'`. Errors as Go's parser words them.
pub(crate) fn unquote_rune(lit: &str) -> Result<u32, String> {
    let inner = &lit[1..];
    let (bytes, tail) = unquote_char(inner, '\'').map_err(str::to_string)?;
    if tail != "'" {
        return Err(format!("malformed character constant: {lit}"));
    }
    if bytes.len() == 1 {
        return Ok(u32::from(bytes[0]));
    }
    let s = std::str::from_utf8(&bytes).map_err(|_| INVALID_SYNTAX.to_string())?;
    Ok(s.chars().next().map_or(0, |c| c as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(
            go_quote("a\"b\\\n\t\u{1}é\u{200b}"),
            "\"a\\\"b\\\\\\n\\t\\x01é\\u200b\""
        );
        assert_eq!(go_quote_ascii("é😀"), "\"\\u00e9\\U0001f600\"");
        assert_eq!(go_quote_rune('\'', false), "'\\''");
        assert_eq!(rune_desc('+'), "U+002B '+'");
    }

    #[test]
    fn unquotes_like_go() {
        assert_eq!(unquote("\"a\\tb\\u00e9\\101\""), Ok("a\tbéA".to_string()));
        assert_eq!(unquote("`a\\n`"), Ok("a\\n".to_string()));
        assert_eq!(unquote("\"\\'\""), Err(INVALID_SYNTAX));
        assert_eq!(unquote_rune("'\\n'"), Ok(10));
        assert_eq!(
            unquote_rune("'ab'"),
            Err("malformed character constant: 'ab'".to_string())
        );
    }
}
