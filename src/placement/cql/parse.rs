//! The parser of the cluster query language: text to [`Expr`], with values typed for their subject (numbers,
//! versions, times, regular expressions) so that evaluation never fails.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::java_regex::compile_regex;
use super::{Arg, Expr, Op, ParseError, Subject};

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
