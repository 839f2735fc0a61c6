//! The cluster query language of `memberOf` constraints (ECS-SEMANTICS §2; AWS's page "Create expressions to define
//! container instances for Amazon ECS tasks").
//!
//! ```text
//! expr       := or
//! or         := and ( ("or" | "||") and )*
//! and        := unary ( ("and" | "&&") unary )*
//! unary      := ("not" | "!") unary | "(" expr ")" | comparison
//! comparison := subject operator [argument]
//! argument   := value | list            (list after in / !in)
//! list       := "[" value ( "," value )* "]"  |  "(" value ( "," value )* ")"
//! value      := a run of non-blank characters, or a 'single' or "double" quoted string
//! ```
//!
//! Subjects: `agentConnected`, `agentVersion`, `attribute:<name>`, `ec2InstanceId`, `registeredAt`,
//! `runningTasksCount`, `task:group`; operators `==` `!=` `>` `>=` `<` `<=` `exists` `!exists` `in` `!in` `=~` `!~`,
//! also spelt `equals`, `not_equals`, `greater_than`, `greater_than_equal`, `less_than`, `less_than_equal`,
//! `not_in`, `matches`, `not_matches`, `not_exists`. Each subject accepts the operators AWS lists for it; any other
//! combination is a parse error, as it is for ECS.
//!
//! Semantics, from AWS's examples where they speak and *inferred* where they are silent:
//! - A negative comparison needs the subject to be there: AWS's example `attribute:stack != prod` "lists the
//!   instances with the custom attribute stack unless the attribute value is prod", so an instance without the
//!   attribute satisfies neither `==` nor `!=`. `!in` and `!~` follow `!=` *(inference)*. `!exists` and the boolean
//!   `not` are plain negations (AWS's anti-affinity example is `not(task:group == database)`).
//! - `task:group` has one value per task on the instance: a comparison holds when it holds for **any** of them, so
//!   `task:group == service:web` means "runs a task of service:web" *(inference, matching AWS's affinity example)*.
//!   Tasks count while their desired status is not STOPPED, as for `distinctInstance`.
//! - `agentVersion` orders by numeric components (`1.100.0 > 1.89.0`); `registeredAt` by time, with the date forms
//!   AWS lists (`2018-06-18T22:28:28+00:00`, `…Z`, `2018-06-18T22:28:28` in UTC, `2018-06-18` at midnight UTC);
//!   `runningTasksCount` numerically. Ordering operators on attributes compare numbers when both sides are
//!   numbers, and text otherwise.
//!
//! Regular expressions: ECS evaluates Java regular expressions; this uses the `regex` crate, matched against the
//! **whole** value, as Java's `String.matches` does. Differences handled (see `translate`):
//! - `\d`, `\w`, `\s` and `\b` are ASCII-only in Java unless flagged otherwise; they are rewritten to ASCII classes
//!   here, while `.` and `\p{Lu}` keep their Unicode meaning, as in Java.
//! - Java constructs the `regex` crate lacks (look-around `(?=` `(?!` `(?<=` `(?<!`, back-references `\1`,
//!   possessive quantifiers `*+` `++` `?+`, atomic groups `(?>`, `\Q…\E` quoting, `\p{javaLowerCase}` classes) are
//!   parse errors naming the construct. The service's placement is then unpredictable and nothing is moved, rather
//!   than guessing.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::Facts;

/// A parse error, with the 1-based column where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

/// What a comparison reads from an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    AgentConnected,
    AgentVersion,
    Attribute(String),
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
}

impl Subject {
    fn parse(word: &str) -> Option<Subject> {
        Some(match word {
            "agentConnected" => Subject::AgentConnected,
            "agentVersion" => Subject::AgentVersion,
            "ec2InstanceId" => Subject::Ec2InstanceId,
            "registeredAt" => Subject::RegisteredAt,
            "runningTasksCount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            w => Subject::Attribute(w.strip_prefix("attribute:").filter(|n| !n.is_empty())?.to_owned()),
        })
    }

    /// The operators AWS lists for the subject.
    fn allows(&self, op: Op) -> bool {
        use Op::*;
        match self {
            Subject::AgentConnected | Subject::Ec2InstanceId => {
                matches!(op, Eq | Ne | In | NotIn | Matches | NotMatches)
            }
            Subject::AgentVersion | Subject::RegisteredAt | Subject::RunningTasksCount => {
                matches!(op, Eq | Ne | Gt | Ge | Lt | Le)
            }
            Subject::Attribute(_) => true,
            Subject::TaskGroup => matches!(op, Eq | Ne | In | NotIn | Matches | NotMatches | Exists | NotExists),
        }
    }

    /// Whether the subject depends only on the instance, not on which tasks run where.
    fn is_static(&self) -> bool {
        !matches!(self, Subject::RunningTasksCount | Subject::TaskGroup)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::AgentConnected => f.write_str("agentConnected"),
            Subject::AgentVersion => f.write_str("agentVersion"),
            Subject::Attribute(n) => write!(f, "attribute:{n}"),
            Subject::Ec2InstanceId => f.write_str("ec2InstanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::TaskGroup => f.write_str("task:group"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word {
            "==" | "equals" => Op::Eq,
            "!=" | "not_equals" => Op::Ne,
            ">" | "greater_than" => Op::Gt,
            ">=" | "greater_than_equal" => Op::Ge,
            "<" | "less_than" => Op::Lt,
            "<=" | "less_than_equal" => Op::Le,
            "exists" => Op::Exists,
            "!exists" | "not_exists" => Op::NotExists,
            "in" => Op::In,
            "!in" | "not_in" => Op::NotIn,
            "=~" | "matches" => Op::Matches,
            "!~" | "not_matches" => Op::NotMatches,
            _ => return None,
        })
    }
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare { subject: Subject, op: Op, arg: Arg },
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone)]
pub enum Arg {
    None,
    One(String),
    List(Vec<String>),
    Regex(regex::Regex),
    Time(DateTime<Utc>),
    Number(i64),
}

impl Expr {
    /// True when no part of the expression depends on which tasks run where (so it can be evaluated once per
    /// instance and cached).
    pub fn is_static(&self) -> bool {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => a.is_static() && b.is_static(),
            Expr::Not(e) => e.is_static(),
            Expr::Compare { subject, .. } => subject.is_static(),
        }
    }

    /// Evaluates the expression for one instance.
    pub fn eval(&self, facts: &Facts<'_>) -> bool {
        match self {
            Expr::And(a, b) => a.eval(facts) && b.eval(facts),
            Expr::Or(a, b) => a.eval(facts) || b.eval(facts),
            Expr::Not(e) => !e.eval(facts),
            Expr::Compare { subject, op, arg } => compare(subject, *op, arg, facts),
        }
    }
}

fn compare(subject: &Subject, op: Op, arg: &Arg, facts: &Facts<'_>) -> bool {
    let i = facts.instance;
    match subject {
        Subject::TaskGroup => match op {
            Op::Exists => !facts.groups.is_empty(),
            Op::NotExists => facts.groups.is_empty(),
            _ => facts.groups.iter().any(|g| text_test(op, arg, Some(g))),
        },
        Subject::Attribute(name) => {
            let attr = i.attributes.iter().find(|a| &a.name == name);
            match op {
                Op::Exists => attr.is_some(),
                Op::NotExists => attr.is_none(),
                // A present attribute without a value compares as the empty string *(inference)*.
                _ => text_test(op, arg, attr.map(|a| a.value.as_deref().unwrap_or(""))),
            }
        }
        Subject::AgentConnected => text_test(op, arg, Some(if i.agent_connected { "true" } else { "false" })),
        Subject::Ec2InstanceId => text_test(op, arg, i.ec2_instance_id.as_deref()),
        Subject::AgentVersion => {
            let version = i.version_info.as_ref().and_then(|v| v.agent_version.as_deref());
            match (version, arg, op) {
                // AWS's table: == and != are string (in)equality; the orderings compare versions.
                (Some(v), Arg::One(want), Op::Eq) => v == want,
                (Some(v), Arg::One(want), Op::Ne) => v != want,
                (Some(v), Arg::One(want), _) => order_test(op, compare_versions(v, want)),
                _ => false,
            }
        }
        Subject::RegisteredAt => match (i.registered_at, arg) {
            (Some(t), Arg::Time(want)) => order_test(op, t.cmp(want)),
            _ => false,
        },
        Subject::RunningTasksCount => match arg {
            Arg::Number(n) => order_test(op, i64::from(facts.running).cmp(n)),
            _ => false,
        },
    }
}

/// A comparison against a text value. A missing value satisfies no comparison, negative ones included (see the
/// module docs).
fn text_test(op: Op, arg: &Arg, value: Option<&str>) -> bool {
    let Some(v) = value else { return false };
    match (op, arg) {
        (Op::Eq, Arg::One(want)) => v == want,
        (Op::Ne, Arg::One(want)) => v != want,
        (Op::In, Arg::List(set)) => set.iter().any(|w| w == v),
        (Op::NotIn, Arg::List(set)) => !set.iter().any(|w| w == v),
        (Op::Matches, Arg::Regex(re)) => re.is_match(v),
        (Op::NotMatches, Arg::Regex(re)) => !re.is_match(v),
        (Op::Gt | Op::Ge | Op::Lt | Op::Le, Arg::One(want)) => {
            let ord = match (plain_number(v), plain_number(want)) {
                (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
                _ => v.cmp(want.as_str()),
            };
            order_test(op, ord)
        }
        _ => false,
    }
}

/// A plain decimal (`12`, `-3.5`), not `NaN`, `inf` or `1e3`, which compare as text.
fn plain_number(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().any(|b| b.is_ascii_digit());
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

fn order_test(op: Op, ord: Ordering) -> bool {
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        _ => false,
    }
}

/// Compares dotted versions by numeric components (`1.100.0` > `1.89.0`); non-numeric parts compare as text.
fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| {
        s.trim_start_matches('v')
            .split(['.', '-'])
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (parts(a), parts(b));
    for k in 0..pa.len().max(pb.len()) {
        let (x, y) = (
            pa.get(k).map_or("0", String::as_str),
            pb.get(k).map_or("0", String::as_str),
        );
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { text, pos: 0 };
    p.skip_blank();
    if p.at_end() {
        return Err(p.error_here("empty expression"));
    }
    let e = p.or()?;
    p.skip_blank();
    if !p.at_end() {
        return Err(p.error_here(&format!("unexpected {:?}", p.peek_word())));
    }
    Ok(e)
}

struct Parser<'t> {
    text: &'t str,
    /// Byte offset.
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn column_at(&self, pos: usize) -> usize {
        self.text[..pos].chars().count() + 1
    }

    fn error_at(&self, pos: usize, message: &str) -> ParseError {
        ParseError {
            column: self.column_at(pos),
            message: message.to_owned(),
        }
    }

    fn error_here(&self, message: &str) -> ParseError {
        self.error_at(self.pos, message)
    }

    fn skip_blank(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The next run of characters up to a blank or a bracket, without consuming it.
    fn peek_word(&self) -> &str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || "()[],".contains(c))
            .unwrap_or(rest.len());
        if end == 0 {
            &rest[..rest.chars().next().map_or(0, char::len_utf8)]
        } else {
            &rest[..end]
        }
    }

    /// Consumes a keyword (case-insensitive) when it stands as a whole word next.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_blank();
        let w = self.peek_word();
        if w.eq_ignore_ascii_case(word) {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    fn expect_char(&mut self, c: char) -> Result<(), ParseError> {
        self.skip_blank();
        if self.peek_char() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else if self.at_end() {
            Err(self.error_here(&format!("expected {c:?}, found the end of the expression")))
        } else {
            Err(self.error_here(&format!("expected {c:?}, found {:?}", self.peek_word())))
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.keyword("or") || self.keyword("||") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.keyword("and") || self.keyword("&&") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.skip_blank();
        if self.at_end() {
            return Err(self.error_here("expected a comparison, found the end of the expression"));
        }
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        // A leading `!` is `not`; `!=`, `!in`, `!~` and `!exists` only come after a subject.
        if self.rest().starts_with('!') {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek_char() == Some('(') {
            self.pos += 1;
            let e = self.or()?;
            self.expect_char(')')?;
            return Ok(e);
        }
        self.comparison()
    }

    /// The subject: a word that ends at a blank, a bracket or an operator character (attribute names contain
    /// none of `=!<>~`), so `attribute:a==1` reads like `attribute:a == 1`.
    fn peek_subject(&self) -> &str {
        let w = self.peek_word();
        &w[..w.find(['=', '!', '<', '>', '~']).unwrap_or(w.len())]
    }

    /// The operator: a run of `=!<>~`, with the letters after a lone `!` (`!in`, `!exists`), or a word.
    fn peek_operator(&self) -> &str {
        let rest = self.rest();
        let symbols = rest.find(|c: char| !"=!<>~".contains(c)).unwrap_or(rest.len());
        let end = if symbols == 0 {
            rest.find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
                .unwrap_or(rest.len())
        } else if &rest[..symbols] == "!" {
            symbols
                + rest[symbols..]
                    .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
                    .unwrap_or(rest.len() - symbols)
        } else {
            symbols
        };
        &rest[..end]
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        self.skip_blank();
        let start = self.pos;
        let word = self.peek_subject().to_owned();
        let subject = Subject::parse(&word).ok_or_else(|| {
            self.error_at(
                start,
                &format!(
                    "unknown subject {word:?}; expected agentConnected, agentVersion, attribute:<name>, ec2InstanceId, \
                     registeredAt, runningTasksCount or task:group"
                ),
            )
        })?;
        self.pos += word.len();
        self.skip_blank();
        let op_pos = self.pos;
        let op_word = self.peek_operator().to_owned();
        let op = Op::parse(&op_word).ok_or_else(|| {
            if op_word.is_empty() {
                self.error_at(op_pos, &format!("expected an operator after {subject}"))
            } else {
                self.error_at(op_pos, &format!("unknown operator {op_word:?} after {subject}"))
            }
        })?;
        if !subject.allows(op) {
            return Err(self.error_at(op_pos, &format!("operator {op_word:?} is not valid for {subject}")));
        }
        self.pos += op_word.len();
        let arg = match op {
            Op::Exists | Op::NotExists => Arg::None,
            Op::In | Op::NotIn => Arg::List(self.list()?),
            Op::Matches | Op::NotMatches => {
                let (at, pattern) = self.value(false)?;
                Arg::Regex(compile_regex(&pattern).map_err(|m| self.error_at(at, &m))?)
            }
            _ => {
                let (at, v) = self.value(false)?;
                match subject {
                    Subject::RegisteredAt => Arg::Time(parse_time(&v).ok_or_else(|| {
                        self.error_at(
                            at,
                            &format!(
                                "{v:?} is not a date; use 2018-06-18T22:28:28+00:00, 2018-06-18T22:28:28Z, \
                                 2018-06-18T22:28:28 or 2018-06-18"
                            ),
                        )
                    })?),
                    Subject::RunningTasksCount => Arg::Number(
                        v.parse()
                            .map_err(|_| self.error_at(at, &format!("{v:?} is not a whole number")))?,
                    ),
                    _ => Arg::One(v),
                }
            }
        };
        Ok(Expr::Compare { subject, op, arg })
    }

    /// `[a, b]` or `(a, b)`.
    fn list(&mut self) -> Result<Vec<String>, ParseError> {
        self.skip_blank();
        let close = match self.peek_char() {
            Some('[') => ']',
            Some('(') => ')',
            _ => return Err(self.error_here("expected a list like [a, b] after in")),
        };
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            let (_, v) = self.value(true)?;
            items.push(v);
            self.skip_blank();
            match self.peek_char() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ if self.at_end() => return Err(self.error_here(&format!("expected {close:?} to close the list"))),
                _ => return Err(self.error_here(&format!("expected ',' or {close:?} in the list"))),
            }
        }
    }

    /// A quoted string, or a run of non-blank characters. In a bare value, brackets that the value itself opens
    /// belong to it (`(m5|c5).*`); a closing bracket it did not open ends it (`not(task:group == db)`). Inside a
    /// list (`in [a, b]`) a comma or `]` at depth 0 also ends it; elsewhere a comma is part of the value
    /// (`m\d{1,2}.*`).
    fn value(&mut self, in_list: bool) -> Result<(usize, String), ParseError> {
        self.skip_blank();
        let start = self.pos;
        match self.peek_char() {
            None => Err(self.error_here("expected a value, found the end of the expression")),
            Some(q @ ('\'' | '"')) => {
                let body = &self.rest()[1..];
                let end = body
                    .find(q)
                    .ok_or_else(|| self.error_at(start, &format!("unterminated {q} quote")))?;
                let v = body[..end].to_owned();
                self.pos += end + 2;
                Ok((start, v))
            }
            Some(_) => {
                let mut depth = 0i32;
                let mut end = self.rest().len();
                for (k, c) in self.rest().char_indices() {
                    let stop = match c {
                        c if c.is_whitespace() => true,
                        '(' | '[' | '{' => {
                            depth += 1;
                            false
                        }
                        ')' | ']' | '}' if depth == 0 => true,
                        ')' | ']' | '}' => {
                            depth -= 1;
                            false
                        }
                        ',' => in_list && depth == 0,
                        _ => false,
                    };
                    if stop {
                        end = k;
                        break;
                    }
                }
                if end == 0 {
                    return Err(self.error_here(&format!("expected a value, found {:?}", self.peek_word())));
                }
                let v = self.rest()[..end].to_owned();
                self.pos += end;
                Ok((start, v))
            }
        }
    }
}

/// Rewrites a Java regular expression for the `regex` crate, reading it as a regex engine does (escapes and
/// character classes are respected, so `a\++` and `[*+]` are not mistaken for possessive quantifiers):
/// - `\d`, `\w`, `\s` and their negations become ASCII classes, and `\b`/`\B` ASCII boundaries, as in Java
///   without flags (the `regex` crate's are Unicode-aware). Inside a character class only the positive forms are
///   rewritten; a negated shorthand there keeps the crate's Unicode meaning, which differs from Java's only on
///   non-ASCII digits, letters and spaces.
/// - Java-only constructs are refused with their name: look-around, atomic groups, possessive quantifiers,
///   back-references, `\Q…\E` quoting, `\p{java…}` classes.
fn translate(pattern: &str) -> Result<String, &'static str> {
    const DIGIT: &str = "0-9";
    const WORD: &str = "0-9A-Za-z_";
    const SPACE: &str = "\\t\\n\\x0B\\x0C\\r ";
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut class_depth = 0usize;
    // The position of the `}` closing the counted repetition (`{2}`, `{1,3}`) being read, if any.
    let mut repetition_close = None;
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k];
        let next = chars.get(k + 1).copied();
        if c == '\\' {
            let Some(e) = next else {
                out.push(c);
                break;
            };
            match e {
                'Q' => return Err("\\Q…\\E quoting"),
                'p' | 'P' if chars[k + 2..].iter().collect::<String>().starts_with("{java") => {
                    return Err("Java character classes (\\p{java…})")
                }
                '1'..='9' if class_depth == 0 => return Err("back-references"),
                'd' | 'w' | 's' | 'D' | 'W' | 'S' if class_depth == 0 => {
                    let (negate, body) = match e {
                        'd' => ("", DIGIT),
                        'w' => ("", WORD),
                        's' => ("", SPACE),
                        'D' => ("^", DIGIT),
                        'W' => ("^", WORD),
                        _ => ("^", SPACE),
                    };
                    out.push_str(&format!("[{negate}{body}]"));
                }
                'd' => out.push_str(DIGIT),
                'w' => out.push_str(WORD),
                's' => out.push_str(SPACE),
                'b' | 'B' if class_depth == 0 => out.push_str(&format!("(?-u:\\{e})")),
                _ => {
                    out.push(c);
                    out.push(e);
                    // `\x{41}`, `\p{Lu}`, `\u{…}`: the braces belong to the escape.
                    if e.is_ascii_alphabetic() && chars.get(k + 2) == Some(&'{') {
                        let close = chars[k + 2..]
                            .iter()
                            .position(|&x| x == '}')
                            .map_or(chars.len(), |p| k + 2 + p);
                        out.extend(&chars[k + 2..=close.min(chars.len() - 1)]);
                        k = close + 1;
                        continue;
                    }
                }
            }
            k += 2;
            continue;
        }
        if class_depth > 0 {
            match c {
                '[' => class_depth += 1,
                ']' => class_depth -= 1,
                _ => {}
            }
            out.push(c);
            k += 1;
            continue;
        }
        match c {
            '[' => {
                class_depth = 1;
                out.push(c);
                // A `]` first in a class (or right after `^`) is a literal.
                if next == Some('^') {
                    out.push('^');
                    k += 1;
                }
                if chars.get(k + 1) == Some(&']') {
                    out.push(']');
                    k += 1;
                }
                k += 1;
                continue;
            }
            '(' if next == Some('?') => {
                let rest: String = chars[k + 2..].iter().take(2).collect();
                if rest.starts_with('=') || rest.starts_with('!') || rest == "<=" || rest == "<!" {
                    return Err("look-around");
                }
                if rest.starts_with('>') {
                    return Err("atomic groups");
                }
            }
            '{' => {
                let close = chars[k + 1..].iter().position(|&x| x == '}').map(|p| k + 1 + p);
                repetition_close = close.filter(|&end| {
                    let inside = &chars[k + 1..end];
                    !inside.is_empty() && inside.iter().all(|x| x.is_ascii_digit() || *x == ',')
                });
            }
            // `x*+`, `x++`, `x?+`, `x{2}+` are possessive; a `?` right after `(` opens a group flag instead, and a
            // `}` that closes no counted repetition is a literal.
            '*' | '+' | '?' | '}'
                if next == Some('+')
                    && !(c == '?' && k > 0 && chars[k - 1] == '(')
                    && (c != '}' || repetition_close == Some(k)) =>
            {
                return Err("possessive quantifiers");
            }
            _ => {}
        }
        out.push(c);
        k += 1;
    }
    Ok(out)
}

fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    let rust = translate(pattern).map_err(|what| {
        format!("regular expression {pattern:?} uses {what}, a Java feature this engine cannot evaluate")
    })?;
    let invalid = |e: regex::Error| format!("invalid regular expression {pattern:?}: {}", first_line(&e.to_string()));
    // The pattern must stand on its own (`a)|(b` must not slip out of the anchors below).
    regex::Regex::new(&rust).map_err(invalid)?;
    // Whole-value match, as Java's String.matches.
    regex::Regex::new(&format!("^(?:{rust})$")).map_err(invalid)
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_owned()
}

/// The date forms AWS lists for `registeredAt`.
fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
