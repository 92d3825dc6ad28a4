//! The values a Prometheus template computes with: the few Go types its data and functions
//! produce, each knowing its Go type name (error texts and `%T` print it) and its truth.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{QuerySample, TemplateData};

/// A Go value as the executor sees it (a `reflect.Value` restricted to the types that occur).
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// No value (an invalid `reflect.Value`): a missing map entry of interface type, an
    /// absent pipeline. Prints as `<no value>`.
    Invalid,
    /// A nil `interface{}` (a missing `args` entry before a pipeline unwraps it).
    NilIface,
    /// A non-nil `interface{}` holding a value (an `args` entry).
    Iface(Rc<Value>),
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `uint8` (indexing a string).
    Uint8(u8),
    /// `float64`.
    Float(f64),
    /// `complex128`.
    Complex(f64, f64),
    /// `string`.
    Str(Rc<str>),
    /// `html/template.HTML` (what `safeHtml` returns).
    Html(Rc<str>),
    /// `map[string]string`.
    StrMap(Rc<BTreeMap<String, String>>),
    /// `map[string]interface {}` (what `args` returns).
    AnyMap(Rc<BTreeMap<String, Value>>),
    /// Prometheus's `queryResult` (`[]*sample`); `None` is a nil slice.
    Samples(Option<Rc<Vec<Rc<QuerySample>>>>),
    /// `*sample`; `None` is a nil pointer.
    Sample(Option<Rc<QuerySample>>),
    /// The alert data struct (`.` of an alert template).
    Data(Rc<TemplateData>),
    /// `*time.Time` (what `toTime` returns), as nanoseconds since the epoch.
    Time(Option<i128>),
}

/// The alert data struct's type, as Go prints it.
pub(crate) const DATA_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }";

/// Go's kinds, as far as the executor distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Invalid,
    Interface,
    Bool,
    Int,
    Uint,
    Float,
    Complex,
    String,
    Map,
    Slice,
    Pointer,
    Struct,
}

impl Value {
    pub(crate) fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    /// The value inside an interface (Go's `indirectInterface`): a nil interface is no value.
    pub(crate) fn indirect_interface(&self) -> &Value {
        match self {
            Value::Iface(v) => v.as_ref(),
            Value::NilIface => &Value::Invalid,
            v => v,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Value::Invalid => Kind::Invalid,
            Value::NilIface | Value::Iface(_) => Kind::Interface,
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) => Kind::Int,
            Value::Uint8(_) => Kind::Uint,
            Value::Float(_) => Kind::Float,
            Value::Complex(..) => Kind::Complex,
            Value::Str(_) | Value::Html(_) => Kind::String,
            Value::StrMap(_) | Value::AnyMap(_) => Kind::Map,
            Value::Samples(_) => Kind::Slice,
            Value::Sample(_) | Value::Time(_) => Kind::Pointer,
            Value::Data(_) => Kind::Struct,
        }
    }

    /// Go's type name (`reflect.Type.String()`).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid => "<nil>",
            Value::NilIface | Value::Iface(_) => "interface {}",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint8(_) => "uint8",
            Value::Float(_) => "float64",
            Value::Complex(..) => "complex128",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::StrMap(_) => "map[string]string",
            Value::AnyMap(_) => "map[string]interface {}",
            Value::Samples(_) => "template.queryResult",
            Value::Sample(_) => "*template.sample",
            Value::Data(_) => DATA_TYPE,
            Value::Time(_) => "*time.Time",
        }
    }

    /// Go's `isTrue`: empty strings, maps and slices, zero numbers, false and nil are false.
    pub(crate) fn truth(&self) -> bool {
        match self.indirect_interface() {
            Value::Invalid | Value::NilIface => false,
            Value::Iface(_) => true,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint8(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Complex(re, im) => *re != 0.0 || *im != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::AnyMap(m) => !m.is_empty(),
            Value::Samples(s) => s.as_ref().is_some_and(|s| !s.is_empty()),
            Value::Sample(s) => s.is_some(),
            Value::Time(t) => t.is_some(),
            Value::Data(_) => true,
        }
    }

    /// The text of a string-kind value.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Html(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the value is a nil pointer, map, slice or interface (Go's `isNil`).
    pub(crate) fn is_nil(&self) -> bool {
        matches!(
            self,
            Value::Invalid
                | Value::NilIface
                | Value::Samples(None)
                | Value::Sample(None)
                | Value::Time(None)
        )
    }
}
