//! A YAML document as a tree of nodes that remember where they start, for error messages with line and column.
//!
//! Built from `saphyr-parser`'s event stream. Deliberately small: scalars keep their text and whether they were
//! quoted (the YAML 1.2 core schema types plain scalars only), mappings keep their keys as nodes (so an unknown key
//! is reported at the key), and nesting is capped so no input can exhaust the stack.

use std::borrow::Cow;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

/// How deep mappings and sequences may nest. Policies need five levels; anything near this is not a policy.
pub const MAX_DEPTH: usize = 32;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar's text; `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Key/value pairs in document order (duplicates kept, so the validator can report them).
    Map(Vec<(Node, Node)>),
    /// `*name`: aliases are not supported in policies; the validator says so.
    Alias,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
    /// The node's explicit tag as written (`!!str`, `!Ref`), if it has one. The kind and the scalar reading
    /// ignore it; policies refuse tags (the validator says so), other YAML files read through [`Node::to_json`]
    /// (CloudFormation's `!Sub`) keep their values.
    pub tag: Option<String>,
}

/// What a plain or quoted scalar means under YAML 1.2's core schema, as yaml_serde resolves it: where yaml_serde
/// departs from the schema (`010` is a string, `0b101` an integer), so does this reading, or the validator would pass
/// a document serde reads otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    /// The node as JSON values, every scalar a string (its text): for reading plain YAML files that are not
    /// policies, such as the CloudFormation template the tests check against the program. An alias is `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Scalar { text, .. } => Value::String(text.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let key = match &k.kind {
                            Kind::Scalar { text, .. } => text.clone(),
                            _ => String::new(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
            Kind::Alias => Value::Null,
        }
    }

    /// The scalar's typed reading; `None` for collections and aliases.
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        let Kind::Scalar { text, plain } = &self.kind else {
            return None;
        };
        if !plain {
            return Some(Scalar::Str(text));
        }
        Some(match text.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
            "true" | "True" | "TRUE" => Scalar::Bool(true),
            "false" | "False" | "FALSE" => Scalar::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
            "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
            // yaml_serde reads decimal digits after a leading zero (`010`, `-00`) as a string, neither an integer
            // nor a float, lest YAML 1.1's octal `010` be read as ten: so does the validator.
            t if digits_after_a_leading_zero(t) => Scalar::Str(t),
            t => parse_int(t)
                .map(Scalar::Int)
                .or_else(|| parse_float(t).map(Scalar::Float))
                .unwrap_or(Scalar::Str(t)),
        })
    }

    /// A short description of the node's type for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Alias => "an alias (aliases are not supported in policies; write the value out)",
            Kind::Scalar { .. } => match self.scalar() {
                Some(Scalar::Null) => "nothing (null)",
                Some(Scalar::Bool(_)) => "a boolean",
                Some(Scalar::Int(_)) => "an integer",
                Some(Scalar::Float(_)) => "a number",
                _ => "a string",
            },
        }
    }
}

/// `0` followed by more decimal digits, after an optional sign: yaml_serde's `digits_but_not_number`.
fn digits_after_a_leading_zero(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An integer as yaml_serde reads one: an optional sign, then decimal digits, or `0x`, `0o` or `0b` and digits of
/// that base, with no second sign after the prefix (Rust's `from_str_radix` would take `0x+5` as 5, yaml_serde
/// reads it as a string).
fn parse_int(t: &str) -> Option<i64> {
    let (negative, unsigned) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, digits) = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find_map(|(prefix, radix)| unsigned.strip_prefix(prefix).map(|d| (radix, d)))
        .unwrap_or((10, unsigned));
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from(u64::from_str_radix(digits, radix).ok()?);
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

fn parse_float(t: &str) -> Option<f64> {
    // The core schema's float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let mantissa_end = body.find(['e', 'E']).unwrap_or(body.len());
    let (mantissa, exponent) = body.split_at(mantissa_end);
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => (!int.is_empty() || !frac.is_empty()) && digits_ok(int) && digits_ok(frac),
        None => !mantissa.is_empty() && digits_ok(mantissa),
    };
    let exponent_ok = exponent.is_empty() || {
        let e = exponent[1..].strip_prefix(['-', '+']).unwrap_or(&exponent[1..]);
        !e.is_empty() && digits_ok(e)
    };
    if mantissa_ok && exponent_ok {
        t.parse().ok()
    } else {
        None
    }
}

/// A YAML syntax error, or a document nested deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses every document of a YAML stream.
pub fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut documents = Vec::new();
    // Open collections: the node under construction and, for mappings, a key waiting for its value.
    let mut stack: Vec<(Node, Option<Node>)> = Vec::new();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos::from(*e.marker()),
            message: e.info().to_owned(),
        })?;
        let pos = Pos::from(span.start);
        let node = match event {
            Event::Scalar(text, style, _, tag) => Node {
                pos,
                kind: Kind::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                },
                tag: written(tag),
            },
            Event::Alias(_) => Node {
                pos,
                kind: Kind::Alias,
                tag: None,
            },
            Event::SequenceStart(_, ref tag) | Event::MappingStart(_, ref tag) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    Kind::Seq(Vec::new())
                } else {
                    Kind::Map(Vec::new())
                };
                let tag = written(tag.clone());
                stack.push((Node { pos, kind, tag }, None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some((node, _)) => node,
                None => continue,
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::DocumentEnd => {
                continue
            }
        };
        attach(&mut stack, &mut documents, node);
    }
    Ok(documents)
}

/// A tag as a policy's author wrote it: `!!str` rather than the `tag:yaml.org,2002:str` it stands for.
fn written(tag: Option<Cow<'_, Tag>>) -> Option<String> {
    tag.map(|t| {
        if t.is_yaml_core_schema() {
            format!("!!{}", t.suffix)
        } else {
            t.to_string()
        }
    })
}

/// Puts a finished node into its parent, or closes a document when there is no parent.
fn attach(stack: &mut [(Node, Option<Node>)], documents: &mut Vec<Node>, node: Node) {
    let Some((parent, pending_key)) = stack.last_mut() else {
        // A document with nothing in it (a trailing `---`, as generated manifests often end) is no document.
        let empty = node.tag.is_none() && matches!(&node.kind, Kind::Scalar { text, plain: true } if text.is_empty());
        if !empty {
            documents.push(node);
        }
        return;
    };
    match &mut parent.kind {
        Kind::Seq(items) => items.push(node),
        Kind::Map(pairs) => match pending_key.take() {
            Some(key) => pairs.push((key, node)),
            None => *pending_key = Some(node),
        },
        Kind::Scalar { .. } | Kind::Alias => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_of(text: &str) -> Scalar<'static> {
        let doc = parse(text).unwrap().remove(0);
        match doc.scalar().unwrap() {
            Scalar::Str(s) => Scalar::Str(Box::leak(s.to_owned().into_boxed_str())),
            Scalar::Null => Scalar::Null,
            Scalar::Bool(b) => Scalar::Bool(b),
            Scalar::Int(i) => Scalar::Int(i),
            Scalar::Float(f) => Scalar::Float(f),
        }
    }

    #[test]
    fn positions_are_one_based_and_keys_keep_their_own() {
        let doc = parse("a: 1\nspec:\n  metrik: count\n").unwrap().remove(0);
        let Kind::Map(pairs) = &doc.kind else { panic!() };
        let Kind::Map(spec) = &pairs[1].1.kind else { panic!() };
        assert_eq!(spec[0].0.pos, Pos { line: 3, col: 3 });
        assert_eq!(spec[0].1.pos, Pos { line: 3, col: 11 });
    }

    #[test]
    fn plain_scalars_follow_the_core_schema_and_quoted_ones_stay_strings() {
        assert_eq!(scalar_of("0.25"), Scalar::Float(0.25));
        assert_eq!(scalar_of("5"), Scalar::Int(5));
        assert_eq!(scalar_of("\"5\""), Scalar::Str("5"));
        assert_eq!(scalar_of("~"), Scalar::Null);
        assert_eq!(scalar_of("yes"), Scalar::Str("yes"));
        assert_eq!(scalar_of("1e3"), Scalar::Float(1000.0));
        assert_eq!(scalar_of("10m"), Scalar::Str("10m"));
    }

    /// Where yaml_serde departs from the core schema (a leading zero makes a string, `0b` a binary integer, no sign
    /// after a radix prefix), the validator's reading follows it: the shrunk input of the loader's property test was
    /// `perCycle: 010`, passed as ten by the validator and refused by serde as a string.
    #[test]
    fn plain_scalars_read_as_yaml_serde_reads_them_where_it_departs_from_the_schema() {
        for text in ["010", "-010", "+010", "00", "-00"] {
            assert_eq!(
                scalar_of(text),
                Scalar::Str(Box::leak(text.to_owned().into_boxed_str())),
                "{text}"
            );
        }
        assert_eq!(scalar_of("0"), Scalar::Int(0));
        assert_eq!(scalar_of("-0"), Scalar::Int(0));
        assert_eq!(scalar_of("+5"), Scalar::Int(5));
        assert_eq!(scalar_of("010.5"), Scalar::Float(10.5));
        assert_eq!(scalar_of("0b101"), Scalar::Int(5));
        assert_eq!(scalar_of("-0x10"), Scalar::Int(-16));
        assert_eq!(scalar_of("0o17"), Scalar::Int(15));
        assert_eq!(scalar_of("0x+5"), Scalar::Str("0x+5"));
        assert_eq!(scalar_of("0x-5"), Scalar::Str("0x-5"));
        assert_eq!(scalar_of("0x"), Scalar::Str("0x"));
        assert_eq!(scalar_of("-9223372036854775808"), Scalar::Int(i64::MIN));
        assert_eq!(
            scalar_of("9223372036854775808"),
            Scalar::Float(9_223_372_036_854_775_808.0)
        );
    }

    #[test]
    fn tags_are_kept_as_written_beside_the_value() {
        let doc = parse("a: !!str 5\nb: !Ref x\nc: !!map {}\n").unwrap().remove(0);
        let Kind::Map(pairs) = &doc.kind else { panic!() };
        let tags: Vec<Option<&str>> = pairs.iter().map(|(_, v)| v.tag.as_deref()).collect();
        assert_eq!(tags, [Some("!!str"), Some("!Ref"), Some("!!map")]);
        assert_eq!(
            pairs[0].1.scalar(),
            Some(Scalar::Int(5)),
            "read untagged; the validator refuses the tag"
        );
        assert_eq!(doc.to_json()["b"], "x", "CloudFormation's values stay readable");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // saphyr-parser refuses very deep flow nesting itself; ours caps what it would still accept.
        assert!(parse(&"[".repeat(100_000)).is_err());
        let nested = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = parse(&nested).unwrap_err();
        assert!(e.message.contains("nesting deeper than 32 levels"), "{e:?}");
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn several_documents_come_back_in_order() {
        let docs = parse("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].pos.line, 3);
    }
}
