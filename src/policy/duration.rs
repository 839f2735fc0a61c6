//! Durations as policies write them: a number and a unit, optionally repeated (`90s`, `10m`, `1h`, `1h30m`).
//!
//! Deliberately strict: a bare number has no unit and is rejected, as are spaces, signs and fractions, so a policy in
//! git reads the same to every reviewer.

use std::time::Duration;

/// The longest duration a policy may hold: ten years, far past any cooldown, interval or window that means
/// something, and far inside what the controller's clock can add. Without a bound, `cooldown.service: 1000000000d`
/// was accepted and then panicked the controller when a finished move started its cooldown (a time 2.7 million years
/// ahead is past chrono's last date), and one past `i64::MAX` milliseconds became no cooldown at all.
pub const MAX: Duration = Duration::from_secs(3650 * 86_400);

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses `90s`, `10m`, `1h30m`, `250ms`, `2d`, up to [`MAX`].
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
            .filter(|&m| u128::from(m) <= MAX.as_millis())
            .ok_or_else(|| {
                format!(
                    "invalid duration {text:?}: too long; the longest a policy may hold is {}",
                    format(MAX)
                )
            })?;
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

    #[test]
    fn the_longest_duration_parses_and_a_millisecond_more_is_refused_as_too_long() {
        assert_eq!(parse("3650d"), Ok(MAX));
        assert_eq!(parse(&format(MAX)), Ok(MAX));
        let over = parse("3650d1ms").unwrap_err();
        assert_eq!(
            over,
            "invalid duration \"3650d1ms\": too long; the longest a policy may hold is 3650d"
        );
        // Past u64 milliseconds, and past chrono's range: refused the same way, not wrapped or saturated.
        assert!(parse("213503982334601d").unwrap_err().contains("too long"));
        assert!(parse("1000000000d").unwrap_err().contains("too long"));
        assert!(parse("18446744073709551615ms").unwrap_err().contains("too long"));
    }

    /// A number of each unit near where the total crosses [`MAX`] or a `u64`, or anywhere.
    fn part() -> impl Strategy<Value = (u128, &'static str, u64)> {
        prop::sample::select(&UNITS[..]).prop_flat_map(|(unit, scale)| {
            let at_max = MAX.as_millis() / u128::from(scale);
            let at_u64 = u128::from(u64::MAX) / u128::from(scale);
            let number = prop_oneof![
                0u128..1_000,
                at_max.saturating_sub(2)..=at_max + 2,
                at_u64.saturating_sub(2)..=at_u64 + 2,
                u128::from(u64::MAX) - 2..=u128::from(u64::MAX) + 2,
                0..=u128::from(u64::MAX) * 100,
            ];
            (number, Just(unit), Just(scale))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Any text: a duration, or an error naming the text (with the reason), never a panic; what is accepted
        /// is at most [`MAX`] and reads the same once formatted.
        #[test]
        fn any_text_is_a_duration_up_to_the_longest_or_an_error_naming_it(
            text in prop_oneof![any::<String>(), "[0-9]{0,22}(ms|s|m|h|d|min|µs|)([0-9]{0,22}(ms|s|m|h|d|))?[ .+-]?"],
        ) {
            match parse(&text) {
                Ok(d) => {
                    prop_assert!(d <= MAX, "{:?} is {:?}", text, d);
                    prop_assert_eq!(parse(&format(d)), Ok(d));
                }
                Err(e) if text.is_empty() => prop_assert!(e.starts_with("empty duration"), "{}", e),
                Err(e) => prop_assert!(e.starts_with(&format!("invalid duration {text:?}: ")), "{}", e),
            }
        }

        /// Numbers near the bounds, in every unit, one to three parts: exactly the sum when it is at most
        /// [`MAX`]; "too long" past it, even past `u64` milliseconds; "number too large" for a number past `u64`.
        #[test]
        fn durations_near_the_bounds_are_their_exact_sum_or_refused_as_too_long(
            parts in prop::collection::vec(part(), 1..4),
        ) {
            let text: String = parts.iter().map(|(n, unit, _)| format!("{n}{unit}")).collect();
            let mut expected = Ok(0u128);
            for (n, _, scale) in &parts {
                if *n > u128::from(u64::MAX) {
                    expected = Err("number too large");
                    break;
                }
                let total = expected.unwrap() + n * u128::from(*scale);
                if total > MAX.as_millis() {
                    expected = Err("too long");
                    break;
                }
                expected = Ok(total);
            }
            match (expected, parse(&text)) {
                (Ok(millis), Ok(d)) => prop_assert_eq!(d.as_millis(), millis),
                (Err(why), Err(e)) => prop_assert!(e.contains(why), "{:?}: {} (expected {:?})", text, e, why),
                (expected, got) => prop_assert!(false, "{:?}: {:?}, expected {:?}", text, got, expected),
            }
        }

        /// Why [`MAX`] is where it is: every duration a policy may hold can be added to and taken from any time up
        /// to the year 9999, as the controller does with cooldowns and utilisation windows, without overflowing.
        #[test]
        fn every_duration_a_policy_may_hold_fits_the_controllers_clock(
            millis in 0..=u64::try_from(MAX.as_millis()).unwrap(),
            seconds in 0i64..=253_402_300_799,
        ) {
            let d = chrono::Duration::from_std(Duration::from_millis(millis));
            prop_assert!(d.is_ok());
            let now = chrono::DateTime::from_timestamp(seconds, 0).unwrap();
            prop_assert!(now.checked_add_signed(d.unwrap()).is_some());
            prop_assert!(now.checked_sub_signed(d.unwrap()).is_some());
        }
    }
}
