//! The cluster query language of `memberOf` constraints (docs/ecs.md: Placement; AWS's page "Create expressions to define
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

use chrono::{DateTime, Utc};

use super::Facts;

mod java_regex;
mod parse;

pub use parse::parse;

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
