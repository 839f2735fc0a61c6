//! Durations as policies write them: a number and a unit, optionally repeated (`90s`, `10m`, `1h`, `1h30m`).
//!
//! Deliberately strict: a bare number has no unit and is rejected, as are spaces, signs and fractions, so a policy in
//! git reads the same to every reviewer.

use std::time::Duration;

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses `90s`, `10m`, `1h30m`, `250ms`, `2d`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let hint = "expected a whole number and a unit (ms, s, m, h, d), e.g. 90s, 10m or 1h30m";
    if text.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    let mut rest = text;
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {text:?}: {hint}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if let Some(c) = rest.chars().next().filter(|_| unit.is_empty()) {
                format!("invalid duration {text:?}: unexpected {c:?}; {hint}")
            } else if unit.is_empty() {
                format!("invalid duration {text:?}: a number needs a unit; {hint}")
            } else {
                format!("invalid duration {text:?}: unknown unit {unit:?}; {hint}")
            });
        };
        rest = &rest[unit_len..];
        millis = number
            .checked_mul(scale)
            .and_then(|m| millis.checked_add(m))
            .ok_or_else(|| format!("invalid duration {text:?}: too long"))?;
    }
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way [`parse`] reads it, with the largest units first (`5400s` → `1h30m`).
pub fn format(d: Duration) -> String {
    let mut millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, scale) in UNITS {
        if millis >= scale {
            out.push_str(&format!("{}{unit}", millis / scale));
            millis %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_forms_parse() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn ambiguous_or_loose_forms_are_rejected_with_the_reason() {
        assert!(parse("90").unwrap_err().contains("needs a unit"));
        assert!(parse("10 m").unwrap_err().contains("unexpected ' '"));
        assert!(parse("10min").unwrap_err().contains("unknown unit \"min\""));
        assert!(parse("-5s").is_err());
        assert!(parse("1.5h").is_err());
        assert!(parse("99999999999999999999d").unwrap_err().contains("too large"));
        assert!(parse("999999999999999d").unwrap_err().contains("too long"));
    }

    proptest! {
        #[test]
        fn format_then_parse_is_the_identity(millis in 0u64..10_000_000_000) {
            let d = Duration::from_millis(millis);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
