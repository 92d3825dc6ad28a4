//! The template parser: Go 1.19 `text/template/parse` (three-token lookahead, the same
//! checks in the same order), so that a parse error names the same token, context and line.

use std::collections::BTreeMap;

use super::lex::{Item, ItemKind, lex};
use super::node::{Arg, Branch, BranchKind, Command, List, Node, Pipe, Variable};
use super::number::{NumberToken, new_number};
use super::quote::{go_quote, unquote};

/// How deeply parentheses and control structures may nest (Go 1.19 sets no limit; deeper
/// templates are refused here rather than risk the stack).
const MAX_NESTING: usize = 1000;

/// A parse failure: Go's message, `template: NAME:LINE: …`.
#[derive(Debug)]
pub(crate) struct ParseError(pub(crate) String);

/// The parsed templates of one text: the main one under its name and every `define`/`block`.
#[derive(Debug, Default)]
pub(crate) struct TreeSet {
    pub(crate) trees: BTreeMap<String, List>,
}

/// Which identifiers are functions (the parser refuses others, as Go's does).
pub(crate) trait FuncNames {
    fn has_function(&self, name: &str) -> bool;
}

/// Parses `text` as template `name`.
pub(crate) fn parse(name: &str, text: &str, funcs: &dyn FuncNames) -> Result<TreeSet, ParseError> {
    let items = lex(text);
    let mut p = Parser {
        items,
        cursor: 0,
        funcs,
        set: TreeSet::default(),
        st: TreeState::new(name),
        parse_name: name.to_string(),
        depth: 0,
    };
    let root = p.parse_top()?;
    let name = p.st.name.clone();
    p.add(name, root)?;
    Ok(p.set)
}

/// One tree's parsing state (Go keeps it per `Tree`; `define` and `block` get their own).
struct TreeState {
    name: String,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    action_line: usize,
    range_depth: usize,
}

impl TreeState {
    fn new(name: &str) -> Self {
        let zero = Item {
            kind: ItemKind::Error,
            pos: 0,
            val: String::new(),
            line: 0,
        };
        TreeState {
            name: name.to_string(),
            token: [zero.clone(), zero.clone(), zero],
            peek_count: 0,
            vars: vec!["$".to_string()],
            action_line: 0,
            range_depth: 0,
        }
    }
}

struct Parser<'a> {
    items: Vec<Item>,
    cursor: usize,
    funcs: &'a dyn FuncNames,
    set: TreeSet,
    st: TreeState,
    parse_name: String,
    depth: usize,
}

type PResult<T> = Result<T, ParseError>;

/// What `itemList` stops at.
enum ListEnd {
    End,
    Else { pos: usize },
}

impl ListEnd {
    fn describe(&self) -> &'static str {
        match self {
            ListEnd::End => "{{end}}",
            ListEnd::Else { .. } => "{{else}}",
        }
    }
}

/// A node of a list, or the `{{end}}`/`{{else}}` closing it.
enum Parsed {
    Node(Node),
    End(ListEnd),
}

impl Parser<'_> {
    fn lex_next(&mut self) -> Item {
        match self.items.get(self.cursor) {
            Some(item) => {
                self.cursor += 1;
                item.clone()
            }
            None => Item {
                kind: ItemKind::Error,
                pos: 0,
                val: String::new(),
                line: 0,
            },
        }
    }

    fn next(&mut self) -> Item {
        if self.st.peek_count > 0 {
            self.st.peek_count -= 1;
        } else {
            self.st.token[0] = self.lex_next();
        }
        self.st.token[self.st.peek_count].clone()
    }

    fn backup(&mut self) {
        self.st.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.st.token[1] = t1;
        self.st.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.st.token[1] = t1;
        self.st.token[2] = t2;
        self.st.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.st.peek_count > 0 {
            return self.st.token[self.st.peek_count - 1].clone();
        }
        self.st.peek_count = 1;
        self.st.token[0] = self.lex_next();
        self.st.token[0].clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.kind != ItemKind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<T>(&self, msg: impl std::fmt::Display) -> PResult<T> {
        Err(ParseError(format!(
            "template: {}:{}: {msg}",
            self.parse_name, self.st.token[0].line
        )))
    }

    fn unexpected<T>(&self, token: &Item, context: &str) -> PResult<T> {
        if token.kind == ItemKind::Error {
            let mut extra = String::new();
            if self.st.action_line != 0 && self.st.action_line != token.line {
                extra = format!(
                    " in action started at {}:{}",
                    self.parse_name, self.st.action_line
                );
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{token}{extra}"));
        }
        self.errorf(format!("unexpected {token} in {context}"))
    }

    fn expect(&mut self, kind: ItemKind, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.kind != kind {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn expect_one_of(&mut self, k1: ItemKind, k2: ItemKind, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.kind != k1 && t.kind != k2 {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    /// Go's `Tree.add` (with `Template.associate`): a tree replaces an empty one; two
    /// non-empty trees of one name are an error.
    fn add(&mut self, name: String, root: List) -> PResult<()> {
        let empty = root.nodes.iter().all(Node::is_empty);
        match self.set.trees.get(&name) {
            Some(old) if !old.nodes.iter().all(Node::is_empty) => {
                if !empty {
                    return self.errorf(format!(
                        "template: multiple definition of template {}",
                        go_quote(&name)
                    ));
                }
            }
            _ => {
                self.set.trees.insert(name, root);
            }
        }
        Ok(())
    }

    fn nest<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_NESTING {
            return self.errorf(format!(
                "template nests more than {MAX_NESTING} levels deep"
            ));
        }
        self.depth += 1;
        let r = stacker::maybe_grow(64 * 1024, 1024 * 1024, || f(self));
        self.depth -= 1;
        r
    }

    fn parse_top(&mut self) -> PResult<List> {
        let mut root = List {
            pos: self.peek().pos,
            nodes: Vec::new(),
        };
        while self.peek().kind != ItemKind::Eof {
            if self.peek().kind == ItemKind::LeftDelim {
                let delim = self.next();
                if self.next_non_space().kind == ItemKind::Define {
                    let outer = std::mem::replace(&mut self.st, TreeState::new("definition"));
                    let r = self.parse_definition();
                    self.st = outer;
                    r?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action()? {
                Parsed::End(end) => return self.errorf(format!("unexpected {}", end.describe())),
                Parsed::Node(n) => root.nodes.push(n),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        const CONTEXT: &str = "define clause";
        let name = self.expect_one_of(ItemKind::String, ItemKind::RawString, CONTEXT)?;
        let name = match unquote(&name.val) {
            Ok(n) => n,
            Err(e) => return self.errorf(e),
        };
        self.st.name.clone_from(&name);
        self.expect(ItemKind::RightDelim, CONTEXT)?;
        let (list, end) = self.item_list()?;
        if let ListEnd::Else { .. } = end {
            return self.errorf(format!("unexpected {} in {CONTEXT}", end.describe()));
        }
        self.add(name, list)
    }

    fn item_list(&mut self) -> PResult<(List, ListEnd)> {
        let mut list = List {
            pos: self.peek_non_space().pos,
            nodes: Vec::new(),
        };
        while self.peek_non_space().kind != ItemKind::Eof {
            match self.text_or_action()? {
                Parsed::End(end) => return Ok((list, end)),
                Parsed::Node(n) => list.nodes.push(n),
            }
        }
        self.errorf("unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let token = self.next_non_space();
        match token.kind {
            ItemKind::Text => Ok(Parsed::Node(Node::Text {
                pos: token.pos,
                text: token.val,
            })),
            ItemKind::LeftDelim => {
                self.st.action_line = token.line;
                let r = self.action();
                self.st.action_line = 0;
                r
            }
            _ => self.unexpected(&token, "input"),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let token = self.next_non_space();
        match token.kind {
            ItemKind::Block => return self.block_control().map(Parsed::Node),
            ItemKind::Break => return self.break_control(token.pos, "{{break}}", true),
            ItemKind::Continue => return self.break_control(token.pos, "{{continue}}", false),
            ItemKind::Else => return self.else_control(),
            ItemKind::End => {
                self.expect(ItemKind::RightDelim, "end")?;
                return Ok(Parsed::End(ListEnd::End));
            }
            ItemKind::If => return self.control(BranchKind::If),
            ItemKind::Range => return self.control(BranchKind::Range),
            ItemKind::Template => return self.template_control().map(Parsed::Node),
            ItemKind::With => return self.control(BranchKind::With),
            _ => {}
        }
        self.backup();
        let token = self.peek();
        let pipe = self.pipeline("command", ItemKind::RightDelim)?;
        Ok(Parsed::Node(Node::Action {
            pos: token.pos,
            pipe,
        }))
    }

    fn break_control(&mut self, pos: usize, context: &str, is_break: bool) -> PResult<Parsed> {
        let token = self.next_non_space();
        if token.kind != ItemKind::RightDelim {
            return self.unexpected(&token, context);
        }
        if self.st.range_depth == 0 {
            return self.errorf(format!("{context} outside {{{{range}}}}"));
        }
        Ok(Parsed::Node(if is_break {
            Node::Break { pos }
        } else {
            Node::Continue { pos }
        }))
    }

    fn else_control(&mut self) -> PResult<Parsed> {
        let peek = self.peek_non_space();
        if peek.kind == ItemKind::If {
            return Ok(Parsed::End(ListEnd::Else { pos: peek.pos }));
        }
        let token = self.expect(ItemKind::RightDelim, "else")?;
        Ok(Parsed::End(ListEnd::Else { pos: token.pos }))
    }

    fn control(&mut self, kind: BranchKind) -> PResult<Parsed> {
        self.nest(|p| p.parse_control(kind))
            .map(|b| Parsed::Node(Node::Branch(Box::new(b))))
    }

    fn parse_control(&mut self, kind: BranchKind) -> PResult<Branch> {
        let context = match kind {
            BranchKind::If => "if",
            BranchKind::Range => "range",
            BranchKind::With => "with",
        };
        let vars = self.st.vars.len();
        let r = self.parse_control_body(kind, context);
        self.st.vars.truncate(vars);
        r
    }

    fn parse_control_body(&mut self, kind: BranchKind, context: &str) -> PResult<Branch> {
        let pipe = self.pipeline(context, ItemKind::RightDelim)?;
        if kind == BranchKind::Range {
            self.st.range_depth += 1;
        }
        let r = self.item_list();
        if kind == BranchKind::Range {
            self.st.range_depth -= 1;
        }
        let (list, end) = r?;
        let mut else_list = None;
        if let ListEnd::Else { pos } = end {
            if kind == BranchKind::If && self.peek().kind == ItemKind::If {
                self.next();
                let inner = self.nest(|p| p.parse_control(BranchKind::If))?;
                else_list = Some(List {
                    pos,
                    nodes: vec![Node::Branch(Box::new(inner))],
                });
            } else {
                let (list, end) = self.item_list()?;
                if let ListEnd::Else { .. } = end {
                    return self.errorf(format!("expected end; found {}", end.describe()));
                }
                else_list = Some(list);
            }
        }
        Ok(Branch {
            kind,
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn block_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "block clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, ItemKind::RightDelim)?;
        let outer = std::mem::replace(&mut self.st, TreeState::new(&name));
        let r = self.item_list();
        let r = match r {
            Ok((_, ListEnd::Else { .. })) => {
                // Go reports this with the enclosing tree's last token.
                let block = std::mem::replace(&mut self.st, outer);
                let e = self.errorf(format!("unexpected {{{{else}}}} in {CONTEXT}"));
                drop(block);
                return e;
            }
            Ok((list, ListEnd::End)) => self.add(name.clone(), list),
            Err(e) => Err(e),
        };
        self.st = outer;
        r?;
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "template clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space().kind != ItemKind::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, ItemKind::RightDelim)?);
        }
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe,
        })
    }

    fn parse_template_name(&self, token: &Item, context: &str) -> PResult<String> {
        match token.kind {
            ItemKind::String | ItemKind::RawString => match unquote(&token.val) {
                Ok(s) => Ok(s),
                Err(e) => self.errorf(e),
            },
            _ => self.unexpected(token, context),
        }
    }

    fn pipeline(&mut self, context: &str, end: ItemKind) -> PResult<Pipe> {
        self.nest(|p| p.pipeline_inner(context, end))
    }

    fn pipeline_inner(&mut self, context: &str, end: ItemKind) -> PResult<Pipe> {
        let token = self.peek_non_space();
        let mut pipe = Pipe {
            pos: token.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.kind != ItemKind::Variable {
                break 'decls;
            }
            self.next();
            let token_after_variable = self.peek();
            let next = self.peek_non_space();
            match next.kind {
                ItemKind::Assign | ItemKind::Declare => {
                    pipe.is_assign = next.kind == ItemKind::Assign;
                    self.next_non_space();
                    pipe.decl.push(new_variable(v.pos, &v.val));
                    self.st.vars.push(v.val);
                }
                ItemKind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(new_variable(v.pos, &v.val));
                    self.st.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            ItemKind::Variable | ItemKind::RightDelim | ItemKind::RightParen => {
                                continue 'decls;
                            }
                            _ => return self.errorf("range can only initialize variables"),
                        }
                    }
                    return self.errorf(format!("too many declarations in {context}"));
                }
                _ if token_after_variable.kind == ItemKind::Space => {
                    self.backup3(v, token_after_variable);
                }
                _ => self.backup2(v),
            }
            break 'decls;
        }
        loop {
            let token = self.next_non_space();
            match token.kind {
                k if k == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                ItemKind::Bool
                | ItemKind::CharConstant
                | ItemKind::Complex
                | ItemKind::Dot
                | ItemKind::Field
                | ItemKind::Identifier
                | ItemKind::Number
                | ItemKind::Nil
                | ItemKind::RawString
                | ItemKind::String
                | ItemKind::Variable
                | ItemKind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&token, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Number(_)
                        | Arg::String { .. }
                )
            ) {
                return self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let mut cmd = Command {
            pos: self.peek_non_space().pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let token = self.next();
            match token.kind {
                ItemKind::Space => continue,
                ItemKind::RightDelim | ItemKind::RightParen => self.backup(),
                ItemKind::Pipe => {}
                _ => return self.unexpected(&token, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != ItemKind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == ItemKind::Field {
            let f = self.next().val;
            fields.push(f[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut ident, .. } => {
                ident.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    ident,
                }
            }
            Arg::Variable(mut v) => {
                v.ident.extend(fields);
                v.pos = chain_pos;
                Arg::Variable(v)
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number(_)
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return self.errorf(format!(
                    "unexpected . after term {}",
                    go_quote(&node.to_string())
                ));
            }
            other => Arg::Chain {
                pos: chain_pos,
                node: Box::new(other),
                field: fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        let arg = match token.kind {
            ItemKind::Identifier => {
                if !self.funcs.has_function(&token.val) {
                    return self.errorf(format!("function {} not defined", go_quote(&token.val)));
                }
                Arg::Identifier {
                    pos: token.pos,
                    name: token.val,
                }
            }
            ItemKind::Dot => Arg::Dot { pos: token.pos },
            ItemKind::Nil => Arg::Nil { pos: token.pos },
            ItemKind::Variable => {
                let v = new_variable(token.pos, &token.val);
                if !self.st.vars.iter().any(|n| *n == v.ident[0]) {
                    return self.errorf(format!("undefined variable {}", go_quote(&v.ident[0])));
                }
                Arg::Variable(v)
            }
            ItemKind::Field => Arg::Field {
                pos: token.pos,
                ident: token.val[1..].split('.').map(str::to_string).collect(),
            },
            ItemKind::Bool => Arg::Bool {
                pos: token.pos,
                value: token.val == "true",
            },
            ItemKind::CharConstant | ItemKind::Complex | ItemKind::Number => {
                let kind = match token.kind {
                    ItemKind::CharConstant => NumberToken::Char,
                    ItemKind::Complex => NumberToken::Complex,
                    _ => NumberToken::Number,
                };
                match new_number(token.pos, &token.val, kind) {
                    Ok(n) => Arg::Number(Box::new(n)),
                    Err(e) => return self.errorf(e),
                }
            }
            ItemKind::LeftParen => Arg::Pipe(Box::new(
                self.pipeline("parenthesized pipeline", ItemKind::RightParen)?,
            )),
            ItemKind::String | ItemKind::RawString => match unquote(&token.val) {
                Ok(text) => Arg::String {
                    pos: token.pos,
                    quoted: token.val,
                    text,
                },
                Err(e) => return self.errorf(e),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(arg))
    }
}

fn new_variable(pos: usize, ident: &str) -> Variable {
    Variable {
        pos,
        ident: ident.split('.').map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Funcs;
    impl FuncNames for Funcs {
        fn has_function(&self, name: &str) -> bool {
            matches!(name, "printf" | "len" | "index")
        }
    }

    fn err(text: &str) -> String {
        match parse("t", text, &Funcs) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.0,
        }
    }

    #[test]
    fn parse_errors_read_as_gos() {
        assert_eq!(err("{{.X}"), "template: t:1: bad character U+007D '}'");
        assert_eq!(err("{{.X }"), "template: t:1: unexpected \"}\" in operand");
        assert_eq!(err("{{if .X}}"), "template: t:1: unexpected EOF");
        assert_eq!(
            err("{{foo}}"),
            "template: t:1: function \"foo\" not defined"
        );
        assert_eq!(err("{{$x}}"), "template: t:1: undefined variable \"$x\"");
        assert_eq!(err("{{end}}"), "template: t:1: unexpected {{end}}");
        assert_eq!(err("a\n{{.X"), "template: t:2: unclosed action");
        assert_eq!(err("{{}}"), "template: t:1: missing value for command");
        assert_eq!(
            err("{{break}}"),
            "template: t:1: {{break}} outside {{range}}"
        );
        assert_eq!(
            err("{{.X | 3}}"),
            "template: t:1: non executable command in pipeline stage 2"
        );
        assert_eq!(
            err("{{\"x\".Y}}"),
            "template: t:1: unexpected . after term \"\\\"x\\\"\""
        );
        assert_eq!(
            err("{{range $i, $e, $f := .}}{{end}}"),
            "template: t:1: too many declarations in range"
        );
    }

    #[test]
    fn trees_and_positions() {
        let set = parse("t", "{{define \"a\"}}A{{end}}x{{.A.B}}", &Funcs).expect("parses");
        assert_eq!(set.trees.len(), 2);
        let main = &set.trees["t"];
        let Node::Action { pipe, .. } = &main.nodes[1] else {
            panic!("action expected");
        };
        // A field chain takes the position of its second element, as Go's does.
        assert_eq!(pipe.cmds[0].args[0].pos(), 27);
        assert_eq!(pipe.to_string(), ".A.B");
        assert_eq!(err("{{(1)}}"), "ok");
        let too_deep = format!(
            "{{{{{}1{}}}}}",
            "(".repeat(MAX_NESTING + 5),
            ")".repeat(MAX_NESTING + 5)
        );
        assert!(err(&too_deep).contains("nests more than"));
    }
}
