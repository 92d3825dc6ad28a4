//! The executor: walks a parsed template over the data as Go 1.19's `text/template` does
//! (variables, field chains, pipelines, calls with Go's argument checks), keeping the node
//! Go would name in an error.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::fmt::{print_action_value, sprint1};
use super::funcs::{Call, Func, FuncEnv, Param, lookup};
use super::node::{Arg, Branch, BranchKind, Command, List, Node, Number, Pipe, Variable};
use super::parse::TreeSet;
use super::quote::go_quote;
use super::time;
use super::value::{Kind, Value};

/// How deeply `{{template}}` calls may nest (Go's limit).
const MAX_TEMPLATE_DEPTH: usize = 100_000;
/// The most output one expansion may write.
const MAX_OUTPUT: usize = 16 << 20;
/// The most nodes one expansion may walk (loops over large query results nest).
const MAX_STEPS: u64 = 50_000_000;

/// The node an error is reported at (Go's `state.node`).
#[derive(Clone, Copy)]
enum At<'a> {
    None,
    Node(&'a Node),
    List(&'a List),
    Pipe(&'a Pipe),
    Cmd(&'a Command),
    Arg(&'a Arg),
    Number(&'a Number),
}

impl At<'_> {
    fn pos_and_text(&self) -> Option<(usize, String)> {
        Some(match self {
            At::None => return None,
            At::Node(n) => (n.pos(), n.to_string()),
            At::List(l) => (l.pos, l.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Arg(a) => (a.pos(), a.to_string()),
            At::Number(n) => (n.pos, n.text.clone()),
        })
    }
}

/// An execution failure, already worded as Go's (`template: NAME:L:C: executing …`).
#[derive(Debug)]
pub(crate) struct ExecError(pub(crate) String);

type R<T> = Result<T, Flow>;

/// Why a walk stopped early.
enum Flow {
    Error(ExecError),
    Break,
    Continue,
}

/// Executes template `name` of `set` with `data` as dot; `text` is the parsed text (for
/// error positions) and `top` the name errors are located in.
pub(crate) fn execute(
    set: &TreeSet,
    name: &str,
    text: &str,
    data: &Value,
    env: &mut dyn FuncEnv,
) -> Result<String, ExecError> {
    let Some(root) = set.trees.get(name) else {
        return Err(ExecError(format!(
            "template: {name}: {} is an incomplete or empty template",
            go_quote(name)
        )));
    };
    let mut s = State {
        set,
        text,
        top: name,
        tmpl: name,
        out: String::new(),
        at: At::None,
        vars: vec![("$".to_string(), data.clone())],
        depth: 0,
        steps: 0,
        env,
    };
    match s.walk_list(data, root) {
        Ok(()) => Ok(s.out),
        Err(Flow::Error(e)) => Err(e),
        // The parser allows break and continue only inside range.
        Err(Flow::Break | Flow::Continue) => Ok(s.out),
    }
}

struct State<'a, 'e> {
    set: &'a TreeSet,
    text: &'a str,
    top: &'a str,
    tmpl: &'a str,
    out: String,
    at: At<'a>,
    vars: Vec<(String, Value)>,
    depth: usize,
    steps: u64,
    env: &'e mut dyn FuncEnv,
}

fn indirect(v: &Value) -> (Value, bool) {
    let mut v = v.clone();
    loop {
        v = match v {
            Value::Iface(inner) => inner.as_ref().clone(),
            Value::NilIface | Value::Sample(None) | Value::Time(None) => return (v, true),
            other => return (other, false),
        }
    }
}

impl<'a> State<'a, '_> {
    fn errorf<T>(&self, msg: impl std::fmt::Display) -> R<T> {
        let name = self.tmpl;
        let text = match self.at.pos_and_text() {
            None => format!("template: {name}: {msg}"),
            Some((pos, context)) => {
                let before = self.text.get(..pos).unwrap_or(self.text);
                let line = 1 + before.matches('\n').count();
                let col = match before.rfind('\n') {
                    Some(i) => pos - (i + 1),
                    None => pos,
                };
                format!(
                    "template: {}:{line}:{col}: executing {} at <{context}>: {msg}",
                    self.top,
                    go_quote(name)
                )
            }
        };
        Err(Flow::Error(ExecError(text)))
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return self.errorf(format!("output exceeds {MAX_OUTPUT} bytes"));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return self.errorf(format!("execution took more than {MAX_STEPS} steps"));
        }
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &'a List) -> R<()> {
        self.at = At::List(list);
        for n in &list.nodes {
            self.walk(dot, n)?;
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &'a Node) -> R<()> {
        self.step()?;
        self.at = At::Node(node);
        match node {
            Node::Action { pipe, .. } => {
                let val = self.eval_pipeline(dot, Some(pipe))?;
                if pipe.decl.is_empty() {
                    self.at = At::Node(node);
                    let text = print_action_value(&val);
                    self.write(&text)?;
                }
                Ok(())
            }
            Node::Break { .. } => Err(Flow::Break),
            Node::Continue { .. } => Err(Flow::Continue),
            Node::Text { text, .. } => self.write(text),
            Node::Branch(b) => match b.kind {
                BranchKind::Range => self.walk_range(dot, node, b),
                _ => self.walk_if_or_with(dot, b),
            },
            Node::Template { name, pipe, .. } => self.walk_template(dot, node, name, pipe.as_ref()),
        }
    }

    fn walk_if_or_with(&mut self, dot: &Value, b: &'a Branch) -> R<()> {
        let mark = self.vars.len();
        let r = (|| {
            let val = self.eval_pipeline(dot, Some(&b.pipe))?;
            if val.truth() {
                if b.kind == BranchKind::With {
                    self.walk_list(&val, &b.list)
                } else {
                    self.walk_list(dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk_list(dot, e)
            } else {
                Ok(())
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, node: &'a Node, r: &'a Branch) -> R<()> {
        self.at = At::Node(node);
        let mark0 = self.vars.len();
        let result = self.walk_range_inner(dot, r);
        self.vars.truncate(mark0);
        match result {
            Err(Flow::Break) => Ok(()),
            other => other,
        }
    }

    fn walk_range_inner(&mut self, dot: &Value, r: &'a Branch) -> R<()> {
        let (val, _) = indirect(&self.eval_pipeline(dot, Some(&r.pipe))?);
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &val {
            Value::Samples(s) => s
                .iter()
                .flat_map(|s| s.iter())
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), Value::Sample(Some(Rc::clone(e)))))
                .collect(),
            Value::StrMap(m) => m
                .iter()
                .map(|(k, v)| (Value::str(k), Value::str(v)))
                .collect(),
            Value::AnyMap(m) => m.iter().map(|(k, v)| (Value::str(k), iface(v))).collect(),
            Value::Invalid => Vec::new(),
            v => return self.errorf(format!("range can't iterate over {}", sprint1(v))),
        };
        if items.is_empty() {
            if let Some(e) = &r.else_list {
                return self.walk_list(dot, e);
            }
            return Ok(());
        }
        for (index, elem) in items {
            let n = self.vars.len();
            if !r.pipe.decl.is_empty() {
                self.vars[n - 1].1 = elem.clone();
            }
            if r.pipe.decl.len() > 1 {
                self.vars[n - 2].1 = index;
            }
            let res = self.walk_list(&elem, &r.list);
            self.vars.truncate(mark);
            match res {
                Ok(()) | Err(Flow::Continue) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        node: &'a Node,
        name: &'a str,
        pipe: Option<&'a Pipe>,
    ) -> R<()> {
        self.at = At::Node(node);
        let Some(tree) = self.set.trees.get(name) else {
            return self.errorf(format!("template {} not defined", go_quote(name)));
        };
        if self.depth == MAX_TEMPLATE_DEPTH {
            return self.errorf(format!(
                "exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"
            ));
        }
        let new_dot = self.eval_pipeline(dot, pipe)?;
        let saved_vars =
            std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
        let saved_tmpl = std::mem::replace(&mut self.tmpl, name);
        self.depth += 1;
        let r = stacker::maybe_grow(128 * 1024, 2 * 1024 * 1024, || {
            self.walk_list(&new_dot, tree)
        });
        self.depth -= 1;
        self.tmpl = saved_tmpl;
        self.vars = saved_vars;
        r
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: Option<&'a Pipe>) -> R<Value> {
        let Some(pipe) = pipe else {
            return Ok(Value::Invalid);
        };
        self.at = At::Pipe(pipe);
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
                self.eval_command(dot, cmd, value.take())
            })?;
            value = Some(match v {
                Value::Iface(inner) => inner.as_ref().clone(),
                Value::NilIface => Value::Invalid,
                v => v,
            });
        }
        let value = value.unwrap_or(Value::Invalid);
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(&var.ident[0], value.clone())?;
            } else {
                self.vars.push((var.ident[0].clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn set_var(&mut self, name: &str, value: Value) -> R<()> {
        for v in self.vars.iter_mut().rev() {
            if v.0 == name {
                v.1 = value;
                return Ok(());
            }
        }
        self.errorf(format!("undefined variable: {name}"))
    }

    fn var_value(&self, name: &str) -> R<Value> {
        for v in self.vars.iter().rev() {
            if v.0 == name {
                return Ok(v.1.clone());
            }
        }
        self.errorf(format!("undefined variable: {name}"))
    }

    fn not_a_function(&self, args: &[Arg], final_: &Option<Value>) -> R<()> {
        if args.len() > 1 || final_.is_some() {
            return self.errorf(format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'a Command, final_: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { ident, .. } => {
                self.at = At::Arg(first);
                return self.eval_field_chain(dot, dot.clone(), ident, Some(&cmd.args), final_);
            }
            Arg::Chain { .. } => return self.eval_chain(dot, first, Some(&cmd.args), final_),
            Arg::Identifier { name, .. } => {
                return self.eval_function(dot, first, name, At::Cmd(cmd), Some(&cmd.args), final_);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &final_)?;
                return self.eval_pipeline(dot, Some(p));
            }
            Arg::Variable(v) => return self.eval_variable(dot, first, v, Some(&cmd.args), final_),
            _ => {}
        }
        self.at = At::Arg(first);
        self.not_a_function(&cmd.args, &final_)?;
        match first {
            Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => self.errorf("nil is not a command"),
            Arg::Number(n) => self.ideal_constant(n),
            Arg::String { text, .. } => Ok(Value::str(text)),
            _ => self.errorf(format!(
                "can't evaluate command {}",
                go_quote(&first.to_string())
            )),
        }
    }

    fn ideal_constant(&mut self, n: &'a Number) -> R<Value> {
        self.at = At::Number(n);
        let t = &n.text;
        let is_hex_int = t.len() > 2
            && t.starts_with('0')
            && (t.as_bytes()[1] | 0x20) == b'x'
            && !t.contains(['p', 'P']);
        if let Some((re, im)) = n.complex {
            return Ok(Value::Complex(re, im));
        }
        if let Some(f) = n.float {
            if !is_hex_int && !t.starts_with('\'') && t.contains(['.', 'e', 'E', 'p', 'P']) {
                return Ok(Value::Float(f));
            }
        }
        if let Some(i) = n.int {
            return Ok(Value::Int(i));
        }
        if n.uint.is_some() {
            return self.errorf(format!("{t} overflows int"));
        }
        Ok(Value::Invalid)
    }

    fn eval_chain(
        &mut self,
        dot: &Value,
        node: &'a Arg,
        args: Option<&'a [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        let Arg::Chain {
            node: inner, field, ..
        } = node
        else {
            return self.errorf("internal error: not a chain");
        };
        self.at = At::Arg(node);
        if let Arg::Nil { .. } = inner.as_ref() {
            return self.errorf(format!("indirection through explicit nil in {node}"));
        }
        let pipe = self.eval_arg(dot, None, inner)?;
        self.eval_field_chain(dot, pipe, field, args, final_)
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        node: &'a Arg,
        v: &'a Variable,
        args: Option<&'a [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        self.at = At::Arg(node);
        let value = self.var_value(&v.ident[0])?;
        if v.ident.len() == 1 {
            if let Some(args) = args {
                self.not_a_function(args, &final_)?;
            } else if final_.is_some() {
                self.errorf(format!("can't give argument to non-function {node}"))?;
            }
            return Ok(value);
        }
        self.eval_field_chain(dot, value, &v.ident[1..], args, final_)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        ident: &'a [String],
        args: Option<&'a [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        let n = ident.len();
        for name in &ident[..n - 1] {
            receiver = self.eval_field(dot, name, None, None, &receiver)?;
        }
        self.eval_field(dot, &ident[n - 1], args, final_, &receiver)
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        node: &'a Arg,
        name: &str,
        call_at: At<'a>,
        args: Option<&'a [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        self.at = At::Arg(node);
        let Some(func) = lookup(name) else {
            return self.errorf(format!("{} is not a defined function", go_quote(name)));
        };
        self.eval_call(dot, &func, call_at, name, args, final_)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        field: &str,
        args: Option<&'a [Arg]>,
        final_: Option<Value>,
        receiver: &Value,
    ) -> R<Value> {
        if let Value::Invalid = receiver {
            return Ok(Value::Invalid);
        }
        let typ = receiver.type_name();
        let (recv, is_nil) = indirect(receiver);
        if recv.kind() == Kind::Interface && is_nil {
            return self.errorf(format!("nil pointer evaluating {typ}.{field}"));
        }
        if let Value::Time(t) = &recv {
            if let Some(arity) = time::method_arity(field) {
                let func = Func::method(arity);
                let Some(ns) = *t else {
                    return self.errorf(format!("nil pointer evaluating {typ}.{field}"));
                };
                let vals = self.eval_call_args(dot, &func, field, args, final_)?;
                return Ok(time::call_method(ns, field, &vals));
            }
        }
        let has_args = args.is_some_and(|a| a.len() > 1) || final_.is_some();
        let struct_field = |v: &Value| -> Option<Value> {
            match v {
                Value::Data(d) => Some(match field {
                    "Labels" => Value::StrMap(Rc::new(d.labels.clone())),
                    "ExternalLabels" => Value::StrMap(Rc::new(d.external_labels.clone())),
                    "ExternalURL" => Value::str(&d.external_url),
                    "Value" => Value::Float(d.value),
                    _ => return None,
                }),
                Value::Sample(Some(s)) => Some(match field {
                    "Labels" => Value::StrMap(Rc::new(s.labels.clone())),
                    "Value" => Value::Float(s.value),
                    _ => return None,
                }),
                _ => None,
            }
        };
        match &recv {
            Value::Data(_) | Value::Sample(Some(_)) => {
                if let Some(v) = struct_field(&recv) {
                    if has_args {
                        return self.errorf(format!(
                            "{field} has arguments but cannot be invoked as function"
                        ));
                    }
                    return Ok(v);
                }
            }
            Value::StrMap(m) => {
                if has_args {
                    return self.errorf(format!("{field} is not a method but has arguments"));
                }
                return Ok(Value::str(m.get(field).map_or("", String::as_str)));
            }
            Value::AnyMap(m) => {
                if has_args {
                    return self.errorf(format!("{field} is not a method but has arguments"));
                }
                return Ok(m.get(field).map_or(Value::NilIface, iface));
            }
            Value::Sample(None) if matches!(field, "Labels" | "Value") => {
                return self.errorf(format!("nil pointer evaluating {typ}.{field}"));
            }
            _ => {}
        }
        self.errorf(format!("can't evaluate field {field} in type {typ}"))
    }

    /// Checks the argument count and evaluates the arguments of a call (Go's `evalCall` up
    /// to the call itself).
    fn eval_call_args(
        &mut self,
        dot: &Value,
        func: &Func,
        name: &str,
        args: Option<&'a [Arg]>,
        final_: Option<Value>,
    ) -> R<Vec<Value>> {
        let args: &'a [Arg] = args.map_or(&[], |a| &a[1..]);
        let num_in = args.len() + usize::from(final_.is_some());
        let num_fixed = if func.variadic.is_some() {
            func.params.len()
        } else {
            args.len()
        };
        if func.variadic.is_some() {
            if num_in < num_fixed {
                return self.errorf(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    func.params.len(),
                    args.len()
                ));
            }
        } else if num_in != func.params.len() {
            return self.errorf(format!(
                "wrong number of args for {name}: want {} got {num_in}",
                func.params.len()
            ));
        }
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < num_fixed && i < args.len() {
            argv.push(self.eval_arg(dot, Some(func.params[i]), &args[i])?);
            i += 1;
        }
        if let Some(v) = func.variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, Some(v), &args[i])?);
                i += 1;
            }
        }
        if let Some(f) = final_ {
            let t = match func.variadic {
                Some(v) if num_in > num_fixed => v,
                _ => func.params[num_in - 1],
            };
            argv.push(self.validate_type(f, Some(t))?);
        }
        Ok(argv)
    }

    fn eval_call(
        &mut self,
        dot: &Value,
        func: &Func,
        call_at: At<'a>,
        name: &str,
        args: Option<&'a [Arg]>,
        final_: Option<Value>,
    ) -> R<Value> {
        if let Call::AndOr { is_or } = func.call {
            let arg_nodes: &'a [Arg] = args.map_or(&[], |a| &a[1..]);
            if arg_nodes.is_empty() && final_.is_none() {
                return self.errorf(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut v = Value::Invalid;
            for a in arg_nodes {
                v = self.eval_arg(dot, Some(Param::RValue), a)?;
                if v.truth() == is_or {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = self.validate_type(f, Some(Param::RValue))?;
            }
            return Ok(v);
        }
        let argv = self.eval_call_args(dot, func, name, args, final_)?;
        let Call::Fn(body) = func.call else {
            return self.errorf("internal error: and/or called directly");
        };
        match body(self.env, argv) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.at = call_at;
                self.errorf(format!("error calling {name}: {e}"))
            }
        }
    }

    /// Go's `validateType`: a computed value as an argument of type `typ`.
    fn validate_type(&self, value: Value, typ: Option<Param>) -> R<Value> {
        let Some(typ) = typ else {
            return Ok(value);
        };
        if let Value::Invalid = value {
            return match typ.zero() {
                Some(z) => Ok(z),
                None => self.errorf(format!("invalid value; expected {}", typ.type_name())),
            };
        }
        if typ == Param::RValue {
            return Ok(value);
        }
        let inner = match &value {
            Value::Iface(v) => v.as_ref().clone(),
            Value::NilIface if typ == Param::Any => return Ok(Value::Invalid),
            v => v.clone(),
        };
        if typ.accepts(&inner) {
            return Ok(inner);
        }
        self.errorf(format!(
            "wrong type for value; expected {}; got {}",
            typ.type_name(),
            inner.type_name()
        ))
    }

    fn eval_arg(&mut self, dot: &Value, typ: Option<Param>, n: &'a Arg) -> R<Value> {
        self.at = At::Arg(n);
        match n {
            Arg::Dot { .. } => return self.validate_type(dot.clone(), typ),
            Arg::Nil { .. } => {
                return match typ.and_then(Param::zero) {
                    Some(z) => Ok(z),
                    None => self.errorf(format!(
                        "cannot assign nil to {}",
                        typ.map_or("<nil>", Param::type_name)
                    )),
                };
            }
            Arg::Field { ident, .. } => {
                let v = self.eval_field_chain(
                    dot,
                    dot.clone(),
                    ident,
                    Some(std::slice::from_ref(n)),
                    None,
                )?;
                return self.validate_type(v, typ);
            }
            Arg::Variable(v) => {
                let v = self.eval_variable(dot, n, v, None, None)?;
                return self.validate_type(v, typ);
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, Some(p))?;
                return self.validate_type(v, typ);
            }
            Arg::Identifier { name, .. } => {
                let v = self.eval_function(dot, n, name, At::Arg(n), None, None)?;
                return self.validate_type(v, typ);
            }
            Arg::Chain { .. } => {
                let v = self.eval_chain(dot, n, None, None)?;
                return self.validate_type(v, typ);
            }
            _ => {}
        }
        let Some(typ) = typ else {
            return self.errorf(format!("can't handle {n} for arg of type <nil>"));
        };
        match (typ, n) {
            (Param::Str, Arg::String { text, .. }) => Ok(Value::str(text)),
            (Param::Str, _) => self.errorf(format!("expected string; found {n}")),
            (Param::Any | Param::RValue, Arg::Bool { value, .. }) => Ok(Value::Bool(*value)),
            (Param::Any | Param::RValue, Arg::Number(num)) => self.ideal_constant(num),
            (Param::Any | Param::RValue, Arg::String { text, .. }) => Ok(Value::str(text)),
            _ => self.errorf(format!(
                "can't handle {n} for arg of type {}",
                typ.type_name()
            )),
        }
    }
}

/// A map element of interface type, as Go's `MapIndex` returns it.
fn iface(v: &Value) -> Value {
    match v {
        Value::Invalid | Value::NilIface => Value::NilIface,
        Value::Iface(_) => v.clone(),
        v => Value::Iface(Rc::new(v.clone())),
    }
}

/// `args`'s result: `arg0`, `arg1`, … keyed in a `map[string]interface {}`.
pub(crate) fn args_map(values: Vec<Value>) -> Value {
    let m: BTreeMap<String, Value> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("arg{i}"), v))
        .collect();
    Value::AnyMap(Rc::new(m))
}
