//! Go's `fmt` for template values: `Sprint`, `Sprintln`, `Sprintf` (verbs, flags, width,
//! precision, argument indexes and the `%!verb(type=value)` error forms), and how the
//! executor prints an action's value.

use super::ftoa::format_float;
use super::quote::{can_backquote, go_quote, go_quote_ascii, go_quote_rune, is_print};
use super::time::go_time_string;
use super::value::{DATA_TYPE, Value};

/// What Go prints for a pointer's address; real addresses vary from run to run anyway.
const FAKE_ADDRESS: u64 = 0xc000010000;

#[derive(Clone, Copy, Default)]
struct Flags {
    wid_present: bool,
    prec_present: bool,
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
    wid: usize,
    prec: usize,
    erroring: bool,
}

/// `fmt.Sprint`: operands separated by a space when neither side is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let arg = arg.indirect_interface();
        let is_string = arg.as_str().is_some();
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(arg, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// `fmt.Sprintln`: operands separated by spaces, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut p = Printer::default();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(arg.indirect_interface(), 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// `fmt.Sprint` of one value.
pub(crate) fn sprint1(v: &Value) -> String {
    sprint(std::slice::from_ref(v))
}

/// How the executor prints an action's value (`printableValue`, then `fmt.Fprint`): a
/// pointer prints what it points to, no value prints `<no value>`.
pub(crate) fn print_action_value(v: &Value) -> String {
    match v {
        Value::Invalid => "<no value>".to_string(),
        Value::Sample(Some(s)) => {
            let mut p = Printer::default();
            p.print_sample_struct(s, 'v', 1);
            p.buf
        }
        v => sprint1(v),
    }
}

fn parse_num(s: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let mut num = 0usize;
    let mut isnum = false;
    let mut i = start;
    while i < end && s[i].is_ascii_digit() {
        if num > 1_000_000 {
            return (0, false, end);
        }
        num = num * 10 + usize::from(s[i] - b'0');
        isnum = true;
        i += 1;
    }
    (num, isnum, i)
}

fn int_from_arg(args: &[Value], arg_num: usize) -> (i64, bool, usize) {
    let Some(a) = args.get(arg_num) else {
        return (0, false, arg_num);
    };
    let (n, ok) = match a.indirect_interface() {
        Value::Int(i) => (*i, true),
        Value::Uint8(u) => (i64::from(*u), true),
        _ => (0, false),
    };
    if !(-1_000_000..=1_000_000).contains(&n) {
        return (0, false, arg_num + 1);
    }
    (n, ok, arg_num + 1)
}

/// `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut p = Printer::default();
    let s = format.as_bytes();
    let end = s.len();
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut i = 0;
    while i < end {
        let mut good_arg_num = true;
        let last = i;
        while i < end && s[i] != b'%' {
            i += 1;
        }
        if i > last {
            p.buf.push_str(&format[last..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        p.f = Flags::default();
        while i < end {
            match s[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => break,
            }
            i += 1;
        }
        // Argument index, width.
        let mut after_index;
        (arg_num, i, after_index) =
            arg_number(&mut reordered, &mut good_arg_num, arg_num, s, i, args.len());
        if i < end && s[i] == b'*' {
            i += 1;
            let (w, ok, n) = int_from_arg(args, arg_num);
            arg_num = n;
            p.f.wid_present = ok;
            if !ok {
                p.buf.push_str("%!(BADWIDTH)");
            }
            if w < 0 {
                p.f.minus = true;
                p.f.zero = false;
            }
            p.wid = w.unsigned_abs() as usize;
            after_index = false;
        } else {
            let (w, ok, n) = parse_num(s, i, end);
            p.wid = w;
            p.f.wid_present = ok;
            i = n;
            if after_index && ok {
                good_arg_num = false;
            }
        }
        // Precision.
        if i + 1 < end && s[i] == b'.' {
            i += 1;
            if after_index {
                good_arg_num = false;
            }
            (arg_num, i, after_index) =
                arg_number(&mut reordered, &mut good_arg_num, arg_num, s, i, args.len());
            if i < end && s[i] == b'*' {
                i += 1;
                let (pr, ok, n) = int_from_arg(args, arg_num);
                arg_num = n;
                p.prec = pr.max(0) as usize;
                p.f.prec_present = ok && pr >= 0;
                if !p.f.prec_present {
                    p.buf.push_str("%!(BADPREC)");
                }
                after_index = false;
            } else {
                let (pr, ok, n) = parse_num(s, i, end);
                i = n;
                p.prec = if ok { pr } else { 0 };
                p.f.prec_present = true;
            }
        }
        if !after_index {
            (arg_num, i, _) =
                arg_number(&mut reordered, &mut good_arg_num, arg_num, s, i, args.len());
        }
        if i >= end {
            p.buf.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('?');
        i += verb.len_utf8();
        if verb == '%' {
            p.buf.push('%');
        } else if !good_arg_num {
            p.buf.push_str(&format!("%!{verb}(BADINDEX)"));
        } else if arg_num >= args.len() {
            p.buf.push_str(&format!("%!{verb}(MISSING)"));
        } else {
            if verb == 'v' {
                p.f.sharp_v = p.f.sharp;
                p.f.sharp = false;
                p.f.plus_v = p.f.plus;
                p.f.plus = false;
            }
            p.print_arg(args[arg_num].indirect_interface(), verb);
            arg_num += 1;
        }
    }
    if !reordered && arg_num < args.len() {
        p.f = Flags::default();
        p.buf.push_str("%!(EXTRA ");
        for (k, arg) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                p.buf.push_str(", ");
            }
            let arg = arg.indirect_interface();
            if matches!(arg, Value::Invalid | Value::NilIface) {
                p.buf.push_str("<nil>");
            } else {
                p.buf.push_str(arg.type_name());
                p.buf.push('=');
                p.print_arg(arg, 'v');
            }
        }
        p.buf.push(')');
    }
    p.buf
}

fn arg_number(
    reordered: &mut bool,
    good: &mut bool,
    arg_num: usize,
    s: &[u8],
    i: usize,
    num_args: usize,
) -> (usize, usize, bool) {
    if s.len() <= i || s[i] != b'[' {
        return (arg_num, i, false);
    }
    *reordered = true;
    // parseArgNumber on s[i..].
    let f = &s[i..];
    let (index, wid, ok) = 'parse: {
        if f.len() < 3 {
            break 'parse (0usize, 1usize, false);
        }
        for j in 1..f.len() {
            if f[j] == b']' {
                let (w, isnum, newi) = parse_num(f, 1, j);
                if !isnum || newi != j {
                    break 'parse (0, j + 1, false);
                }
                break 'parse (w.wrapping_sub(1), j + 1, true);
            }
        }
        (0, 1, false)
    };
    if ok && index < num_args {
        return (index, i + wid, true);
    }
    *good = false;
    (arg_num, i + wid, ok)
}

impl Printer {
    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    fn pad(&mut self, s: &str) {
        if !self.f.wid_present || self.wid == 0 {
            self.buf.push_str(s);
            return;
        }
        let width = self.wid.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            self.write_padding(width);
        } else {
            self.write_padding(width);
            self.buf.push_str(s);
        }
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        if self.f.prec_present {
            if let Some((i, _)) = s.char_indices().nth(self.prec) {
                return &s[..i];
            }
        }
        s
    }

    fn bad_verb(&mut self, verb: char, v: &Value) {
        self.erroring = true;
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        if matches!(v, Value::Invalid) {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(v.type_name());
            self.buf.push('=');
            self.print_arg(v, 'v');
        }
        self.buf.push(')');
        self.erroring = false;
    }

    fn fmt_integer(&mut self, u: u64, base: u32, signed: bool, verb: char, upper: bool) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative {
            (u as i64).unsigned_abs()
        } else {
            u
        };
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let mut prec = 0;
        if self.f.prec_present {
            prec = self.prec;
            if prec == 0 && u == 0 {
                let z = self.f.zero;
                self.f.zero = false;
                self.write_padding(self.wid);
                self.f.zero = z;
                return;
            }
        } else if self.f.zero && self.f.wid_present {
            prec = self.wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut out: Vec<u8> = Vec::new();
        let b = u64::from(base);
        while u >= b {
            out.push(digits[(u % b) as usize]);
            u /= b;
        }
        out.push(digits[u as usize]);
        while out.len() < prec {
            out.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => out.extend_from_slice(b"b0"),
                8 if out.last() != Some(&b'0') => out.push(b'0'),
                16 => {
                    out.push(digits[16]);
                    out.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            out.extend_from_slice(b"o0");
        }
        if negative {
            out.push(b'-');
        } else if self.f.plus {
            out.push(b'+');
        } else if self.f.space {
            out.push(b' ');
        }
        out.reverse();
        let s = String::from_utf8_lossy(&out).into_owned();
        let z = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = z;
    }

    fn fmt_unicode(&mut self, u: u64) {
        let mut s = format!("U+{u:04X}");
        if self.f.prec_present && self.prec > 4 {
            s = format!("U+{u:0width$X}", width = self.prec.min(64));
        }
        if self.f.sharp {
            if let Some(c) = u32::try_from(u).ok().and_then(char::from_u32) {
                if is_print(c) {
                    s.push_str(&format!(" '{c}'"));
                }
            }
        }
        let z = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = z;
    }

    fn rune_of(u: u64) -> char {
        u32::try_from(u)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}')
    }

    fn fmt_int_verb(&mut self, u: u64, signed: bool, verb: char, v: &Value) {
        match verb {
            'v' if self.f.sharp_v && !signed => {
                let sharp = self.f.sharp;
                self.f.sharp = true;
                self.fmt_integer(u, 16, false, 'v', false);
                self.f.sharp = sharp;
            }
            'v' | 'd' => self.fmt_integer(u, 10, signed, verb, false),
            'b' => self.fmt_integer(u, 2, signed, verb, false),
            'o' | 'O' => self.fmt_integer(u, 8, signed, verb, false),
            'x' => self.fmt_integer(u, 16, signed, verb, false),
            'X' => self.fmt_integer(u, 16, signed, verb, true),
            'c' => {
                let c = Self::rune_of(u);
                self.pad(c.encode_utf8(&mut [0; 4]));
            }
            'q' => {
                let q = go_quote_rune(Self::rune_of(u), self.f.plus);
                self.pad(&q);
            }
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_float(&mut self, v: f64, verb: char, default_prec: i32) {
        let prec = if self.f.prec_present {
            self.prec as i32
        } else {
            default_prec
        };
        let mut num = format_float(v, verb, prec);
        if !num.starts_with(['-', '+']) {
            num.insert(0, '+');
        }
        if self.f.space && num.starts_with('+') && !self.f.plus {
            num.replace_range(0..1, " ");
        }
        if num[1..].starts_with(['I', 'N']) {
            let z = self.f.zero;
            self.f.zero = false;
            if num[1..].starts_with('N') && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&num);
            self.f.zero = z;
            return;
        }
        if self.f.sharp && verb != 'b' {
            num = sharp_float(&num, verb, prec);
        }
        if self.f.plus || !num.starts_with('+') {
            if self.f.zero && self.f.wid_present && self.wid > num.len() {
                self.buf.push_str(&num[..1]);
                self.write_padding(self.wid - num.len());
                self.buf.push_str(&num[1..]);
                return;
            }
            self.pad(&num);
            return;
        }
        self.pad(&num[1..]);
    }

    fn fmt_float_verb(&mut self, f: f64, verb: char, v: &Value) {
        match verb {
            'v' => self.fmt_float(f, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(f, verb, -1),
            'f' | 'e' | 'E' => self.fmt_float(f, verb, 6),
            'F' => self.fmt_float(f, 'f', 6),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_string(&mut self, s: &str, verb: char, v: &Value) {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => {
                let t = self.truncate(s).to_string();
                self.pad(&t);
            }
            'x' | 'X' => self.fmt_sx(s, verb == 'X'),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        if self.f.sharp && can_backquote(&s) {
            self.pad(&format!("`{s}`"));
        } else if self.f.plus {
            self.pad(&go_quote_ascii(&s));
        } else {
            self.pad(&go_quote(&s));
        }
    }

    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let b = s.as_bytes();
        let length = if self.f.prec_present {
            b.len().min(self.prec)
        } else {
            b.len()
        };
        let mut width = 2 * length;
        if width == 0 {
            if self.f.wid_present {
                self.write_padding(self.wid);
            }
            return;
        }
        if self.f.space {
            if self.f.sharp {
                width *= 2;
            }
            width += length - 1;
        } else if self.f.sharp {
            width += 2;
        }
        if self.f.wid_present && self.wid > width && !self.f.minus {
            self.write_padding(self.wid - width);
        }
        let mut out = String::new();
        if self.f.sharp {
            out.push('0');
            out.push(char::from(digits[16]));
        }
        for (i, c) in b[..length].iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
                if self.f.sharp {
                    out.push('0');
                    out.push(char::from(digits[16]));
                }
            }
            out.push(char::from(digits[usize::from(c >> 4)]));
            out.push(char::from(digits[usize::from(c & 15)]));
        }
        self.buf.push_str(&out);
        if self.f.wid_present && self.wid > width && self.f.minus {
            self.write_padding(self.wid - width);
        }
    }

    fn fmt_bool(&mut self, b: bool, verb: char, v: &Value) {
        match verb {
            't' | 'v' => self.pad(if b { "true" } else { "false" }),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_pointer(&mut self, v: &Value, verb: char) {
        let u = if v.is_nil() { 0 } else { FAKE_ADDRESS };
        match verb {
            'v' if self.f.sharp_v => {
                self.buf.push_str(&format!("({})(", v.type_name()));
                if u == 0 {
                    self.buf.push_str("nil");
                } else {
                    self.buf.push_str(&format!("{u:#x}"));
                }
                self.buf.push(')');
            }
            'v' if u == 0 => self.pad("<nil>"),
            'v' | 'p' => {
                let sharp = self.f.sharp;
                self.f.sharp = !sharp;
                self.fmt_integer(u, 16, false, 'v', false);
                self.f.sharp = sharp;
            }
            'b' | 'o' | 'd' | 'x' | 'X' => self.fmt_int_verb(u, false, verb, v),
            _ => self.bad_verb(verb, v),
        }
    }

    /// Go's `handleMethods`: a `*time.Time` prints through its `String` method.
    fn handle_methods(&mut self, v: &Value, verb: char) -> bool {
        if self.erroring || self.f.sharp_v {
            return false;
        }
        if let Value::Time(t) = v {
            if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
                match t {
                    Some(ns) => self.fmt_string(&go_time_string(*ns), verb, v),
                    // String on a nil *time.Time panics; fmt prints <nil>.
                    None => self.buf.push_str("<nil>"),
                }
                return true;
            }
        }
        false
    }

    fn print_arg(&mut self, v: &Value, verb: char) {
        if matches!(v, Value::Invalid | Value::NilIface) {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, &Value::Invalid),
            }
            return;
        }
        match verb {
            'T' => {
                let t = self.truncate(v.type_name()).to_string();
                self.pad(&t);
                return;
            }
            'p' => {
                match v {
                    Value::Sample(_)
                    | Value::Time(_)
                    | Value::Samples(_)
                    | Value::StrMap(_)
                    | Value::AnyMap(_) => {
                        self.fmt_pointer(v, 'p');
                    }
                    _ => self.bad_verb('p', v),
                }
                return;
            }
            _ => {}
        }
        if !self.handle_methods(v, verb) {
            self.print_value(v, verb, 0);
        }
    }

    fn print_sample_struct(&mut self, s: &super::QuerySample, verb: char, depth: usize) {
        if self.f.sharp_v {
            self.buf.push_str("template.sample");
        }
        self.buf.push('{');
        self.field_name("Labels");
        self.print_str_map(&s.labels, verb, depth + 1);
        self.field_sep();
        self.field_name("Value");
        self.print_value(&Value::Float(s.value), verb, depth + 1);
        self.buf.push('}');
    }

    fn field_name(&mut self, name: &str) {
        if self.f.plus_v || self.f.sharp_v {
            self.buf.push_str(name);
            self.buf.push(':');
        }
    }

    fn field_sep(&mut self) {
        self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
    }

    fn print_str_map(
        &mut self,
        m: &std::collections::BTreeMap<String, String>,
        verb: char,
        depth: usize,
    ) {
        let entries: Vec<(Value, Value)> = m
            .iter()
            .map(|(k, v)| (Value::str(k), Value::str(v)))
            .collect();
        self.print_map("map[string]string", &entries, verb, depth);
    }

    fn print_map(&mut self, type_name: &str, entries: &[(Value, Value)], verb: char, depth: usize) {
        if self.f.sharp_v {
            self.buf.push_str(type_name);
            self.buf.push('{');
        } else {
            self.buf.push_str("map[");
        }
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
            }
            self.print_value(k, verb, depth + 1);
            self.buf.push(':');
            self.print_value(v, verb, depth + 1);
        }
        self.buf.push(if self.f.sharp_v { '}' } else { ']' });
    }

    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        if depth > 0 && self.handle_methods(v, verb) {
            return;
        }
        match v {
            Value::Invalid => {
                if depth == 0 {
                    self.buf.push_str("<invalid reflect.Value>");
                } else if verb == 'v' {
                    self.buf.push_str("<nil>");
                } else {
                    self.bad_verb(verb, v);
                }
            }
            Value::Bool(b) => self.fmt_bool(*b, verb, v),
            Value::Int(i) => self.fmt_int_verb(*i as u64, true, verb, v),
            Value::Uint8(u) => self.fmt_int_verb(u64::from(*u), false, verb, v),
            Value::Float(f) => self.fmt_float_verb(*f, verb, v),
            Value::Complex(re, im) => match verb {
                'v' | 'b' | 'g' | 'G' | 'x' | 'X' | 'f' | 'F' | 'e' | 'E' => {
                    let plus = self.f.plus;
                    self.buf.push('(');
                    self.fmt_float_verb(*re, verb, v);
                    self.f.plus = true;
                    self.fmt_float_verb(*im, verb, v);
                    self.buf.push_str("i)");
                    self.f.plus = plus;
                }
                _ => self.bad_verb(verb, v),
            },
            Value::Str(s) | Value::Html(s) => self.fmt_string(s, verb, v),
            Value::StrMap(m) => self.print_str_map(m, verb, depth),
            Value::AnyMap(m) => {
                let entries: Vec<(Value, Value)> =
                    m.iter().map(|(k, v)| (Value::str(k), v.clone())).collect();
                self.print_map("map[string]interface {}", &entries, verb, depth);
            }
            Value::NilIface => {
                if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            Value::Iface(inner) => self.print_value(inner, verb, depth + 1),
            Value::Data(d) => {
                if self.f.sharp_v {
                    self.buf.push_str(DATA_TYPE);
                }
                self.buf.push('{');
                self.field_name("Labels");
                self.print_str_map(&d.labels, verb, depth + 1);
                self.field_sep();
                self.field_name("ExternalLabels");
                self.print_str_map(&d.external_labels, verb, depth + 1);
                self.field_sep();
                self.field_name("ExternalURL");
                self.print_value(&Value::str(&d.external_url), verb, depth + 1);
                self.field_sep();
                self.field_name("Value");
                self.print_value(&Value::Float(d.value), verb, depth + 1);
                self.buf.push('}');
            }
            Value::Samples(s) => {
                if self.f.sharp_v {
                    self.buf.push_str("template.queryResult");
                    let Some(s) = s else {
                        self.buf.push_str("(nil)");
                        return;
                    };
                    self.buf.push('{');
                    for i in 0..s.len() {
                        if i > 0 {
                            self.buf.push_str(", ");
                        }
                        self.fmt_pointer(&Value::Sample(s.get(i).cloned()), verb);
                    }
                    self.buf.push('}');
                } else {
                    self.buf.push('[');
                    for (i, e) in s.iter().flat_map(|s| s.iter()).enumerate() {
                        if i > 0 {
                            self.buf.push(' ');
                        }
                        self.fmt_pointer(&Value::Sample(Some(std::rc::Rc::clone(e))), verb);
                    }
                    self.buf.push(']');
                }
            }
            Value::Sample(Some(s)) if depth == 0 => {
                self.buf.push('&');
                self.print_sample_struct(s, verb, depth + 1);
            }
            Value::Sample(_) | Value::Time(_) => self.fmt_pointer(v, verb),
        }
    }
}

/// The `#` flag on floats: keep the decimal point and, for `%g`, trailing zeros.
fn sharp_float(num: &str, verb: char, prec: i32) -> String {
    let mut digits: i32 = match verb {
        'v' | 'g' | 'G' | 'x' => {
            if prec == -1 {
                6
            } else {
                prec
            }
        }
        _ => 0,
    };
    let b = num.as_bytes();
    let mut head = num.to_string();
    let mut tail = String::new();
    let mut has_point = false;
    let mut saw_nonzero = false;
    for i in 1..b.len() {
        match b[i] {
            b'.' => has_point = true,
            b'p' | b'P' => {
                tail = num[i..].to_string();
                head = num[..i].to_string();
                break;
            }
            b'e' | b'E' if verb != 'x' && verb != 'X' => {
                tail = num[i..].to_string();
                head = num[..i].to_string();
                break;
            }
            c => {
                if c != b'0' {
                    saw_nonzero = true;
                }
                if saw_nonzero {
                    digits -= 1;
                }
            }
        }
    }
    if !has_point {
        if head.len() == 2 && head.ends_with('0') {
            digits -= 1;
        }
        head.push('.');
    }
    while digits > 0 {
        head.push('0');
        digits -= 1;
    }
    head + &tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            sprintf(
                "%d|%5.1f|%-5s|%t|%%|%x|%q",
                &[
                    Value::Int(42),
                    Value::Float(1.23456),
                    s("ab"),
                    Value::Bool(true),
                    s("hi"),
                    s("a\"")
                ]
            ),
            "42|  1.2|ab   |true|%|6869|\"a\\\"\""
        );
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%s %s", &[s("a")]), "a %!s(MISSING)");
        assert_eq!(
            sprintf("%s", &[s("a"), Value::Int(1), Value::Float(2.5)]),
            "a%!(EXTRA int=1, float64=2.5)"
        );
        assert_eq!(
            sprintf(
                "%v %g %e %.2f",
                &[
                    Value::Float(1e6),
                    Value::Float(1e-7),
                    Value::Float(1234.5678),
                    Value::Float(2.345)
                ]
            ),
            "1e+06 1e-07 1.234568e+03 2.35"
        );
        assert_eq!(
            sprintf(
                "%05d|%+d|%x|%X|%o|%b|%c|%U",
                &[
                    Value::Int(-42),
                    Value::Int(5),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5),
                    Value::Int(65),
                    Value::Int(0x1F600)
                ]
            ),
            "-0042|+5|ff|FF|10|101|A|U+1F600"
        );
        assert_eq!(
            sprintf("%[2]d %[1]d", &[Value::Int(1), Value::Int(2)]),
            "2 1"
        );
        assert_eq!(
            sprintf(
                "%*d|%.*f",
                &[
                    Value::Int(4),
                    Value::Int(7),
                    Value::Int(1),
                    Value::Float(2.25)
                ]
            ),
            "   7|2.2"
        );
        assert_eq!(
            sprintf(
                "%v|%v|%v",
                &[
                    Value::Float(f64::INFINITY),
                    Value::Float(f64::NAN),
                    Value::Float(f64::NEG_INFINITY)
                ]
            ),
            "+Inf|NaN|-Inf"
        );
        assert_eq!(sprintf("%", &[]), "%!(NOVERB)");
        assert_eq!(sprintf("%!", &[]), "%!!(MISSING)");
    }

    #[test]
    fn print_spacing() {
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                s("a"),
                Value::Int(3),
                s("b"),
                s("c")
            ]),
            "1 2a3bc"
        );
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
        let mut m = std::collections::BTreeMap::new();
        m.insert("b".to_string(), "2".to_string());
        m.insert("a".to_string(), "1".to_string());
        assert_eq!(sprint1(&Value::StrMap(std::rc::Rc::new(m))), "map[a:1 b:2]");
        assert_eq!(sprint1(&Value::Invalid), "<nil>");
    }
}
