//! The CMDB filter language, shared by searches, exports and job targeting.
//!
//! ```text
//! business = "集中交易" and env = "prod" and os ~ "CentOS"
//! module = "行情网关" or (cpus >= 16 and not tags in ("legacy", "retired"))
//! ```
//!
//! Grammar (keywords `and`, `or`, `not`, `in`, `true`, `false` in any case):
//!
//! ```text
//! expr       := term ("or" term)*
//! term       := factor ("and" factor)*
//! factor     := "not" factor | "(" expr ")" | comparison
//! comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
//! field      := ident ["." ident]          ident = [A-Za-z_][A-Za-z0-9_]*
//! op         := "=" | "!=" | "~" | "!~" | "<" | ">" | "<=" | ">="
//! value      := "string" | number | true | false | bare-word
//! ```
//!
//! Fields: `name`, `env` (or `environment`) and `model` are the instance's own; any other
//! identifier is the instance's attribute of that key if it has one, otherwise the names of its
//! topology ancestors of that model (`module = "行情网关"` matches hosts that belong, directly or
//! through other `belongs_to` links, to a module named 行情网关). `module.owner` is the attribute
//! `owner` of those ancestors.
//!
//! Semantics. A field may have several values (a list attribute, a host in two modules); a
//! comparison is true when **any** value satisfies it; `!=`, `!~` and `not in` are the negation
//! of `=`, `~` and `in` (true when no value matches, including when the field is not set).
//! `=` compares numbers numerically when the literal is a number, text exactly otherwise
//! (case-sensitive). `~` is a **regular-expression search** (unanchored, so a plain word is a
//! substring match: `os ~ "CentOS"`; `os ~ "^CentOS 7"` anchors). `<`, `>`, `<=`, `>=` compare
//! numerically when both sides are numbers and as text when both are text (so ISO dates order
//! correctly); otherwise they are false.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::error::Msg;
use crate::validate::Attributes;

/// A parse error, at a 1-based character column of the query text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("column {column}: {message_en}")]
pub struct QueryError {
    pub code: &'static str,
    pub column: usize,
    pub message_zh: String,
    pub message_en: String,
}

impl Msg for QueryError {
    fn code(&self) -> &'static str {
        self.code
    }
    fn message_zh(&self) -> String {
        format!("查询语句第 {} 列：{}", self.column, self.message_zh)
    }
    fn message_en(&self) -> String {
        format!("query column {}: {}", self.column, self.message_en)
    }
}

fn error(
    code: &'static str,
    column: usize,
    zh: impl Into<String>,
    en: impl Into<String>,
) -> QueryError {
    QueryError {
        code,
        column,
        message_zh: zh.into(),
        message_en: en.into(),
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    Eq,
    Ne,
    Match,
    NotMatch,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Match => "~",
            Op::NotMatch => "!~",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Lit {
    fn text(&self) -> String {
        match self {
            Lit::Str(s) => s.clone(),
            Lit::Num(n) => fmt_num(*n),
            Lit::Bool(b) => b.to_string(),
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            other => f.write_str(&other.text()),
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: Vec<String>,
        op: Op,
        value: Lit,
        /// Compiled for `~` and `!~`.
        regex: Option<regex::Regex>,
    },
    In {
        field: Vec<String>,
        values: Vec<Lit>,
        negated: bool,
    },
}

impl fmt::Display for Expr {
    /// The canonical form: every binary operation parenthesised, strings quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => write!(f, "({a} and {b})"),
            Expr::Or(a, b) => write!(f, "({a} or {b})"),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::Cmp {
                field, op, value, ..
            } => write!(f, "{} {} {value}", field.join("."), op.symbol()),
            Expr::In {
                field,
                values,
                negated,
            } => {
                let vs: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                write!(
                    f,
                    "{}{} in ({})",
                    field.join("."),
                    if *negated { " not" } else { "" },
                    vs.join(", ")
                )
            }
        }
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Op),
    LParen,
    RParen,
    Comma,
    Dot,
    End,
}

fn describe(t: &Tok) -> (String, String) {
    match t {
        Tok::Ident(s) => (format!("“{s}”"), format!("`{s}`")),
        Tok::Str(s) => (format!("字符串 {s:?}"), format!("the string {s:?}")),
        Tok::Num(n) => (
            format!("数字 {}", fmt_num(*n)),
            format!("the number {}", fmt_num(*n)),
        ),
        Tok::Op(o) => (format!("“{}”", o.symbol()), format!("`{}`", o.symbol())),
        Tok::LParen => ("“(”".into(), "`(`".into()),
        Tok::RParen => ("“)”".into(), "`)`".into()),
        Tok::Comma => ("“,”".into(), "`,`".into()),
        Tok::Dot => ("“.”".into(), "`.`".into()),
        Tok::End => ("语句结尾".into(), "the end of the query".into()),
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = chars.get(i + 1).copied();
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' | '，' => (Tok::Comma, 1),
            '.' if !two.is_some_and(|d| d.is_ascii_digit()) => (Tok::Dot, 1),
            '=' if two == Some('=') => (Tok::Op(Op::Eq), 2),
            '=' => (Tok::Op(Op::Eq), 1),
            '!' if two == Some('=') => (Tok::Op(Op::Ne), 2),
            '!' if two == Some('~') => (Tok::Op(Op::NotMatch), 2),
            '~' => (Tok::Op(Op::Match), 1),
            '<' if two == Some('=') => (Tok::Op(Op::Le), 2),
            '<' => (Tok::Op(Op::Lt), 1),
            '>' if two == Some('=') => (Tok::Op(Op::Ge), 2),
            '>' => (Tok::Op(Op::Gt), 1),
            '"' | '“' | '”' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(error(
                                "cmdb.query_unterminated_string",
                                col,
                                "字符串缺少结尾的双引号",
                                "the string has no closing double quote",
                            ));
                        }
                        Some('"' | '“' | '”') => break,
                        Some('\\') => {
                            let e = chars.get(j + 1).copied();
                            match e {
                                Some('"') => s.push('"'),
                                Some('\\') => s.push('\\'),
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                _ => {
                                    return Err(error(
                                        "cmdb.query_bad_escape",
                                        j + 1,
                                        "无效的转义（可用 \\\" \\\\ \\n \\t）",
                                        "invalid escape (use \\\" \\\\ \\n \\t)",
                                    ));
                                }
                            }
                            j += 2;
                            continue;
                        }
                        Some(ch) => s.push(*ch),
                    }
                    j += 1;
                }
                out.push((Tok::Str(s), col));
                i = j + 1;
                continue;
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.')
                {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                // A bare word that starts with a digit (`10.0.0.1`, `2024-01-01`) is text.
                let mut k = j;
                while chars
                    .get(k)
                    .is_some_and(|d| is_word(*d) || *d == '-' || *d == '.' || *d == ':')
                {
                    k += 1;
                }
                if k > j || text.matches('.').count() > 1 {
                    let word: String = chars[i..k].iter().collect();
                    out.push((Tok::Ident(word), col));
                    i = k;
                    continue;
                }
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => (Tok::Num(n), j - i),
                    _ => {
                        return Err(error(
                            "cmdb.query_bad_number",
                            col,
                            format!("“{text}” 不是有效的数字"),
                            format!("`{text}` is not a valid number"),
                        ));
                    }
                }
            }
            c if is_word(c) => {
                let mut j = i + 1;
                while chars.get(j).is_some_and(|d| {
                    is_word(*d) || *d == '-' && !chars.get(j + 1).is_some_and(|x| x.is_whitespace())
                }) {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                out.push((Tok::Ident(word), col));
                i = j;
                continue;
            }
            other => {
                return Err(error(
                    "cmdb.query_bad_character",
                    col,
                    format!("无法识别的字符 “{other}”（字符串请用双引号）"),
                    format!("unexpected character `{other}` (quote strings with double quotes)"),
                ));
            }
        };
        out.push((tok, col));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------- parser

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

fn keyword(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
}

const KEYWORDS: [&str; 4] = ["and", "or", "not", "in"];

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |t| &t.0)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(0, |t| t.1)
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }
    fn unexpected(&self, zh_expected: &str, en_expected: &str) -> QueryError {
        let (zh, en) = describe(self.peek());
        let code = if matches!(self.peek(), Tok::End) {
            "cmdb.query_incomplete"
        } else {
            "cmdb.query_unexpected"
        };
        error(
            code,
            self.col(),
            format!("此处应为{zh_expected}，实际为{zh}"),
            format!("expected {en_expected}, found {en}"),
        )
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.term()?;
        while keyword(self.peek(), "or") {
            self.bump();
            let right = self.term()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.factor()?;
        while keyword(self.peek(), "and") {
            self.bump();
            let right = self.factor()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, QueryError> {
        if keyword(self.peek(), "not") {
            self.bump();
            return Ok(Expr::Not(Box::new(self.factor()?)));
        }
        if matches!(self.peek(), Tok::LParen) {
            self.bump();
            let e = self.expr()?;
            if !matches!(self.peek(), Tok::RParen) {
                return Err(self.unexpected("“)”", "`)`"));
            }
            self.bump();
            return Ok(e);
        }
        self.comparison()
    }

    fn field(&mut self) -> Result<Vec<String>, QueryError> {
        let mut path = Vec::new();
        loop {
            match self.peek() {
                Tok::Ident(s)
                    if is_ident(s) && !KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k)) =>
                {
                    path.push(s.clone());
                    self.bump();
                }
                _ => {
                    return Err(self.unexpected(
                        "字段名（如 os、module）",
                        "a field name (such as os or module)",
                    ));
                }
            }
            if matches!(self.peek(), Tok::Dot) && path.len() < 2 {
                self.bump();
            } else {
                return Ok(path);
            }
        }
    }

    fn value(&mut self) -> Result<(Lit, usize), QueryError> {
        let col = self.col();
        let lit = match self.peek().clone() {
            Tok::Str(s) => Lit::Str(s),
            Tok::Num(n) => Lit::Num(n),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Tok::Ident(s) if !KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k)) => Lit::Str(s),
            _ => {
                return Err(self.unexpected(
                    "值（字符串、数字、true 或 false）",
                    "a value (a string, a number, true or false)",
                ));
            }
        };
        self.bump();
        Ok((lit, col))
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let field = self.field()?;
        let negated = keyword(self.peek(), "not");
        if negated {
            self.bump();
            if !keyword(self.peek(), "in") {
                return Err(self.unexpected("“in”", "`in`"));
            }
        }
        if keyword(self.peek(), "in") {
            self.bump();
            if !matches!(self.peek(), Tok::LParen) {
                return Err(self.unexpected("“(”", "`(`"));
            }
            self.bump();
            let mut values = vec![self.value()?.0];
            while matches!(self.peek(), Tok::Comma) {
                self.bump();
                values.push(self.value()?.0);
            }
            if !matches!(self.peek(), Tok::RParen) {
                return Err(self.unexpected("“,” 或 “)”", "`,` or `)`"));
            }
            self.bump();
            return Ok(Expr::In {
                field,
                values,
                negated,
            });
        }
        let op = match self.peek() {
            Tok::Op(op) => *op,
            _ => {
                return Err(self.unexpected(
                    "比较运算符（= != ~ !~ < > <= >= in）",
                    "an operator (= != ~ !~ < > <= >= in)",
                ));
            }
        };
        self.bump();
        let (value, col) = self.value()?;
        let regex = match op {
            Op::Match | Op::NotMatch => Some(regex::Regex::new(&value.text()).map_err(|e| {
                error(
                    "cmdb.query_bad_regex",
                    col,
                    format!("正则表达式无效：{e}"),
                    format!("invalid regular expression: {e}"),
                )
            })?),
            _ => None,
        };
        Ok(Expr::Cmp {
            field,
            op,
            value,
            regex,
        })
    }
}

/// A parsed query with its source text.
#[derive(Debug, Clone)]
pub struct Query {
    pub source: String,
    pub expr: Expr,
}

/// Longest accepted query text, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;

impl Query {
    pub fn parse(src: &str) -> Result<Query, QueryError> {
        if src.chars().count() > MAX_QUERY_CHARS {
            return Err(error(
                "cmdb.query_too_long",
                MAX_QUERY_CHARS,
                format!("查询语句超过 {MAX_QUERY_CHARS} 个字符"),
                format!("the query is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        let toks = lex(src)?;
        if toks.len() == 1 {
            return Err(error(
                "cmdb.query_empty",
                1,
                "查询语句为空",
                "the query is empty",
            ));
        }
        let mut p = Parser { toks, pos: 0 };
        let expr = p.expr()?;
        if !matches!(p.peek(), Tok::End) {
            return Err(p.unexpected(
                "“and”、“or” 或语句结尾",
                "`and`, `or` or the end of the query",
            ));
        }
        Ok(Query {
            source: src.to_string(),
            expr,
        })
    }

    /// Whether the instance matches.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        eval(&self.expr, s)
    }

    /// The conditions every match must meet (top-level `and` of `=` or `in` on text or boolean
    /// literals): a store can narrow the candidates with them before [`Query::matches`] decides.
    pub fn prefilter(&self) -> Prefilter {
        let mut out = Prefilter::default();
        collect(&self.expr, &mut out);
        out
    }

    /// Every field the query names (for telling people about unknown ones).
    pub fn fields(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        fields(&self.expr, &mut out);
        out
    }
}

fn fields(e: &Expr, out: &mut Vec<Vec<String>>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            fields(a, out);
            fields(b, out);
        }
        Expr::Not(a) => fields(a, out),
        Expr::Cmp { field, .. } | Expr::In { field, .. } => {
            if !out.contains(field) {
                out.push(field.clone());
            }
        }
    }
}

/// Conditions a match must meet: `field` has one of `values` (as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefilter {
    pub conditions: Vec<(Vec<String>, Vec<String>)>,
}

fn exact_text(l: &Lit) -> Option<String> {
    match l {
        Lit::Str(s) => Some(s.clone()),
        Lit::Bool(b) => Some(b.to_string()),
        Lit::Num(_) => None,
    }
}

fn collect(e: &Expr, out: &mut Prefilter) {
    match e {
        Expr::And(a, b) => {
            collect(a, out);
            collect(b, out);
        }
        Expr::Cmp {
            field,
            op: Op::Eq,
            value,
            ..
        } => {
            if let Some(v) = exact_text(value) {
                out.conditions.push((field.clone(), vec![v]));
            }
        }
        Expr::In {
            field,
            values,
            negated: false,
        } => {
            let vs: Option<Vec<String>> = values.iter().map(exact_text).collect();
            if let Some(vs) = vs {
                out.conditions.push((field.clone(), vs));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------- evaluation

/// A topology ancestor of the instance (reached through `belongs_to`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ancestor {
    pub model: String,
    pub name: String,
    pub attributes: Attributes,
}

/// What a query is evaluated on: an instance and its topology ancestors.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub model: &'a str,
    pub name: &'a str,
    pub environment: &'a str,
    pub attributes: &'a Attributes,
    pub ancestors: &'a [Ancestor],
}

fn push_values(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| push_values(i, out)),
        Value::Null => {}
        other => out.push(other.clone()),
    }
}

/// The values of a field on a subject (empty when it has none).
pub fn resolve(s: &Subject<'_>, field: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    match field {
        [one] => match one.as_str() {
            "name" => out.push(Value::String(s.name.to_string())),
            "env" | "environment" => out.push(Value::String(s.environment.to_string())),
            "model" => out.push(Value::String(s.model.to_string())),
            key => {
                if let Some(v) = s.attributes.get(key) {
                    push_values(v, &mut out);
                } else {
                    for a in s.ancestors.iter().filter(|a| a.model == key) {
                        out.push(Value::String(a.name.clone()));
                    }
                }
            }
        },
        [model, key] => {
            if model == s.model {
                return resolve(s, std::slice::from_ref(key));
            }
            for a in s.ancestors.iter().filter(|a| &a.model == model) {
                if key == "name" {
                    out.push(Value::String(a.name.clone()));
                } else if let Some(v) = a.attributes.get(key) {
                    push_values(v, &mut out);
                }
            }
        }
        _ => {}
    }
    out
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn equal(v: &Value, l: &Lit) -> bool {
    match l {
        Lit::Num(n) => as_number(v).is_some_and(|x| x == *n),
        Lit::Bool(b) => match v {
            Value::Bool(x) => x == b,
            other => as_text(other) == b.to_string(),
        },
        Lit::Str(s) => as_text(v) == *s,
    }
}

fn ordered(v: &Value, op: Op, l: &Lit) -> bool {
    let ord = match (l, as_number(v)) {
        (Lit::Num(n), Some(x)) => x.partial_cmp(n),
        (Lit::Str(s), _) if matches!(v, Value::String(_)) => {
            Some(as_text(v).as_str().cmp(s.as_str()))
        }
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Lt => ord.is_lt(),
        Op::Gt => ord.is_gt(),
        Op::Le => ord.is_le(),
        Op::Ge => ord.is_ge(),
        _ => false,
    }
}

fn eval(e: &Expr, s: &Subject<'_>) -> bool {
    match e {
        Expr::And(a, b) => eval(a, s) && eval(b, s),
        Expr::Or(a, b) => eval(a, s) || eval(b, s),
        Expr::Not(a) => !eval(a, s),
        Expr::In {
            field,
            values,
            negated,
        } => {
            let vs = resolve(s, field);
            let any = vs.iter().any(|v| values.iter().any(|l| equal(v, l)));
            any != *negated
        }
        Expr::Cmp {
            field,
            op,
            value,
            regex,
        } => {
            let vs = resolve(s, field);
            match op {
                Op::Eq => vs.iter().any(|v| equal(v, value)),
                Op::Ne => !vs.iter().any(|v| equal(v, value)),
                Op::Match | Op::NotMatch => {
                    let hit = regex
                        .as_ref()
                        .is_some_and(|re| vs.iter().any(|v| re.is_match(&as_text(v))));
                    hit == (*op == Op::Match)
                }
                _ => vs.iter().any(|v| ordered(v, *op, value)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Attributes {
        match v {
            Value::Object(m) => m,
            _ => Attributes::new(),
        }
    }

    fn parse(q: &str) -> Query {
        Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn check(q: &str, s: &Subject<'_>) -> bool {
        parse(q).matches(s)
    }

    #[test]
    fn host_under_module_matches_topology_paths() {
        let a = attrs(
            json!({"ip": "10.0.0.5", "os": "CentOS Linux 7.9", "cpus": 16,
            "memory_gb": "63.5", "addresses": ["10.0.0.5", "192.168.0.5"], "purchase_date": "2023-06-01"}),
        );
        let ancestors = vec![
            Ancestor {
                model: "module".into(),
                name: "行情网关".into(),
                attributes: attrs(json!({"owner": "张三"})),
            },
            Ancestor {
                model: "subsystem".into(),
                name: "行情".into(),
                attributes: Attributes::new(),
            },
            Ancestor {
                model: "business".into(),
                name: "集中交易".into(),
                attributes: attrs(json!({"level": "core"})),
            },
        ];
        let s = Subject {
            model: "host",
            name: "md-gw-01",
            environment: "prod",
            attributes: &a,
            ancestors: &ancestors,
        };
        let table = [
            (
                r#"business = "集中交易" and env = "prod" and os ~ "CentOS""#,
                true,
            ),
            (r#"module = "行情网关""#, true),
            (r#"module = "行情""#, false),
            (r#"subsystem = 行情"#, true),
            (r#"module.owner = "张三""#, true),
            (r#"business.level in (core, important)"#, true),
            (r#"host.cpus >= 16"#, true),
            (r#"cpus > 16"#, false),
            (r#"memory_gb < 64 and memory_gb > 63"#, true),
            (r#"memory_gb = 63.5"#, true),
            (r#"memory_gb = "63.50""#, false),
            (r#"cpus = "16""#, true),
            (r#"addresses = "192.168.0.5""#, true),
            (r#"addresses != "192.168.0.5""#, false),
            (r#"os !~ "^Ubuntu""#, true),
            (r#"os ~ "^centos""#, false),
            (r#"os ~ "(?i)^centos""#, true),
            (
                r#"purchase_date >= "2023-01-01" and purchase_date < "2024-01-01""#,
                true,
            ),
            (r#"serial = "x""#, false),
            (r#"serial != "x""#, true),
            (r#"not (env = prod or env = uat)"#, false),
            (r#"env not in ("uat", "dev")"#, true),
            (r#"name = md-gw-01 AND model = host"#, true),
            (r#"ip = 10.0.0.5"#, true),
            (r#"cpus >= "9""#, false),
        ];
        for (q, want) in table {
            assert_eq!(check(q, &s), want, "{q}");
        }
    }

    #[test]
    fn errors_name_the_column() {
        let table = [
            ("", 1, "cmdb.query_empty"),
            ("os ~ \"CentOS", 6, "cmdb.query_unterminated_string"),
            ("os = ", 6, "cmdb.query_incomplete"),
            ("os == 1 and", 12, "cmdb.query_incomplete"),
            ("os CentOS", 4, "cmdb.query_unexpected"),
            ("(os = 1", 8, "cmdb.query_incomplete"),
            ("os = 1 env = 2", 8, "cmdb.query_unexpected"),
            ("os ~ \"(\"", 6, "cmdb.query_bad_regex"),
            ("业务 = 1", 1, "cmdb.query_unexpected"),
            ("os = 'x'", 6, "cmdb.query_bad_character"),
            ("env in (prod uat)", 14, "cmdb.query_unexpected"),
            ("and = 1", 1, "cmdb.query_unexpected"),
        ];
        for (q, col, code) in table {
            match Query::parse(q) {
                Ok(_) => panic!("{q:?} parsed"),
                Err(e) => {
                    assert_eq!((e.column, e.code), (col, code), "{q:?}: {e}");
                    assert!(e.message_zh().contains(&format!("第 {col} 列")));
                }
            }
        }
    }

    #[test]
    fn prefilter_takes_top_level_equalities() {
        let q = parse(
            r#"module = "行情网关" and env in (prod, uat) and (os = a or os = b) and cpus = 4 and not name = x"#,
        );
        assert_eq!(
            q.prefilter().conditions,
            vec![
                (vec!["module".to_string()], vec!["行情网关".to_string()]),
                (
                    vec!["env".to_string()],
                    vec!["prod".to_string(), "uat".to_string()]
                ),
            ]
        );
        assert!(parse("a = 1 or b = 2").prefilter().conditions.is_empty());
    }

    #[test]
    fn precedence_and_canonical_form() {
        assert_eq!(
            parse("a = 1 or b = 2 and not c = 3").expr.to_string(),
            "(a = 1 or (b = 2 and not c = 3))"
        );
        assert_eq!(
            parse(r#"x.y not in ("a\"b", 2, true)"#).expr.to_string(),
            r#"x.y not in ("a\"b", 2, true)"#
        );
    }

    use proptest::prelude::*;

    fn arb_lit() -> impl Strategy<Value = Lit> {
        prop_oneof![
            "[a-z0-9 \"\\\\中文]{0,8}".prop_map(Lit::Str),
            (-1000i64..1000).prop_map(|n| Lit::Num(n as f64)),
            any::<bool>().prop_map(Lit::Bool),
        ]
    }

    fn arb_field() -> impl Strategy<Value = Vec<String>> {
        prop_oneof![
            "[a-z][a-z0-9_]{0,5}".prop_map(|s| vec![s]),
            ("[a-z]{1,4}", "[a-z]{1,4}").prop_map(|(a, b)| vec![a, b]),
        ]
        .prop_filter("keywords", |f| {
            f.iter()
                .all(|p| !KEYWORDS.contains(&p.as_str()) && p != "true" && p != "false")
        })
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            (
                arb_field(),
                prop_oneof![Just(Op::Eq), Just(Op::Ne), Just(Op::Lt), Just(Op::Ge)],
                arb_lit()
            )
                .prop_map(|(field, op, value)| Expr::Cmp {
                    field,
                    op,
                    value,
                    regex: None
                }),
            (
                arb_field(),
                proptest::collection::vec(arb_lit(), 1..4),
                any::<bool>()
            )
                .prop_map(|(field, values, negated)| Expr::In {
                    field,
                    values,
                    negated
                }),
        ];
        leaf.prop_recursive(4, 32, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| Expr::Not(Box::new(a))),
            ]
        })
    }

    proptest! {
        /// The canonical form parses back to itself.
        #[test]
        fn canonical_form_round_trips(e in arb_expr()) {
            let text = e.to_string();
            let back = Query::parse(&text).map(|q| q.expr.to_string());
            prop_assert_eq!(back, Ok(text));
        }

        /// No input makes the parser panic; errors point inside the text (or just past it).
        #[test]
        fn parser_never_panics(src in "[a-z0-9 =!~<>()\",.中\\\\-]{0,40}") {
            if let Err(e) = Query::parse(&src) {
                prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1, "{:?} {}", src, e);
            }
        }

        /// `!=` is exactly the negation of `=`, and `not in` of `in`.
        #[test]
        fn negations_agree(v in "[a-c]{0,2}", lit in "[a-c]{0,2}", list in proptest::collection::vec("[a-c]{1,2}", 0..3)) {
            let a = attrs(json!({"f": list, "g": v}));
            let s = Subject { model: "m", name: "n", environment: "e", attributes: &a, ancestors: &[] };
            for f in ["f", "g", "missing"] {
                let eq = Query::parse(&format!("{f} = \"{lit}\"")).map(|q| q.matches(&s));
                let ne = Query::parse(&format!("{f} != \"{lit}\"")).map(|q| !q.matches(&s));
                prop_assert_eq!(eq.clone(), ne);
                let inn = Query::parse(&format!("{f} not in (\"{lit}\")")).map(|q| !q.matches(&s));
                prop_assert_eq!(eq, inn);
            }
        }
    }
}
