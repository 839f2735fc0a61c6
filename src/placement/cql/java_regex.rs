//! Java regular expressions (what ECS evaluates) read for the `regex` crate.

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

pub(super) fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
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
