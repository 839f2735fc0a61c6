//! The policy's numbers and durations at the bounds of their fields and of their types: a value inside is taken
//! exactly, a value outside (below a field's minimum, past `u32`, `i64` or `u64`, not finite, longer than a
//! duration may be) is refused with an error placed where it is written and naming the field. Never a panic, and
//! never a value wrapped, saturated or rounded into range.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use ecs_rebalancer::policy::{self, duration, CountOrPercent, Policy};

/// Everything but the section under test, which is appended (so its lines are the last ones).
const BASE: &str = "\
apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata:
  name: bounds
spec:
  clusters: [prod]
  metric: cpu-available
  actions: [stop-tasks]
";

const THRESHOLD: &str = "  threshold: {trigger: 0.5, target: 0.1}\n";

/// `BASE` with `section:` holding `key: value` (and `sibling`, a line that must be there): the text, and the line
/// and column where `value` starts.
fn document(section: &str, key: &str, value: &str, sibling: Option<&str>) -> (String, usize, usize) {
    let mut text = BASE.to_owned();
    if section != "threshold" {
        text.push_str(THRESHOLD);
    }
    text.push_str(&format!("  {section}:\n"));
    if let Some(sibling) = sibling {
        text.push_str(&format!("    {sibling}\n"));
    }
    let line = text.lines().count() + 1;
    text.push_str(&format!("    {key}: {value}\n"));
    (text, line, key.len() + 7)
}

/// Loads `text`; on success the one policy, on failure the one error's line, column and message, with every
/// promise of the loader checked on the way (placed errors, the same answer twice, agreement with serde).
fn load(text: &str) -> Result<Result<Policy, (usize, usize, String)>, TestCaseError> {
    crate::loader_properties::load_agrees_with_serde(text)?;
    Ok(match policy::load_str(Path::new("p.yaml"), text) {
        Ok(mut policies) => Ok(policies.remove(0)),
        Err(e) => {
            prop_assert_eq!(e.0.len(), 1, "one value, one error: {}", e);
            let pos = e.0[0].pos.expect("placed");
            Err((pos.line, pos.col, e.0[0].message.clone()))
        }
    })
}

/// Whole numbers near every bound a count can cross: 0 and 1, 100 (percentages), `u32`, `i64` and `u64`.
fn whole_number() -> impl Strategy<Value = i128> {
    let near = |n: i128| (n - 2)..=(n + 2);
    prop_oneof![
        near(0),
        near(100),
        near(i128::from(u32::MAX)),
        near(i128::from(i64::MAX)),
        near(i128::from(i64::MIN)),
        near(i128::from(u64::MAX)),
        any::<i64>().prop_map(i128::from),
        any::<u64>().prop_map(i128::from),
    ]
}

/// A count field: its section, key, smallest accepted value, and where the loaded policy keeps it.
struct Count {
    section: &'static str,
    key: &'static str,
    min: i128,
    read: fn(&Policy) -> u32,
}

const COUNTS: [Count; 5] = [
    Count {
        section: "budgets",
        key: "maxUnavailable",
        min: 1,
        read: |p| p.budgets.max_unavailable,
    },
    Count {
        section: "budgets",
        key: "perCycle",
        min: 1,
        read: |p| p.budgets.max_unavailable,
    },
    Count {
        section: "budgets",
        key: "perHour",
        min: 1,
        read: |p| p.budgets.per_hour,
    },
    Count {
        section: "budgets",
        key: "concurrentDrains",
        min: 0,
        read: |p| p.budgets.concurrent_drains,
    },
    Count {
        section: "budgets",
        key: "perService",
        min: 1,
        read: |p| match p.budgets.per_service {
            CountOrPercent::Count(n) => n,
            CountOrPercent::Percent(_) => panic!("a count read as a percentage"),
        },
    },
];

/// A number field: its section, key, the sibling line its section needs, and the range it accepts.
struct Number {
    section: &'static str,
    key: &'static str,
    sibling: Option<&'static str>,
    accepts: fn(f64) -> bool,
    read: fn(&Policy) -> f64,
}

const NUMBERS: [Number; 3] = [
    Number {
        section: "threshold",
        key: "trigger",
        sibling: Some("target: 0.1"),
        accepts: |v| v > 0.1,
        read: |p| p.threshold.trigger,
    },
    Number {
        section: "threshold",
        key: "target",
        sibling: Some("trigger: 0.5"),
        accepts: |v| (0.0..0.5).contains(&v),
        read: |p| p.threshold.target,
    },
    Number {
        section: "utilization",
        key: "maxUnknownShare",
        sibling: None,
        accepts: |v| (0.0..=1.0).contains(&v),
        read: |p| p.utilization.max_unknown_share,
    },
];

/// Numbers as a policy writes them, near every bound: 0 and its neighbours, the fields' limits and the next float
/// past them, the largest and smallest floats, past the largest (an infinity to a parser), not numbers at all.
fn number_text() -> impl Strategy<Value = String> {
    let next_up = |v: f64| f64::from_bits(v.to_bits() + 1);
    let bounds = [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        0.1,
        next_up(0.1),
        0.5,
        next_up(0.5),
        1.0,
        next_up(1.0),
        -1.0,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
    ];
    prop_oneof![
        prop::sample::select(bounds.to_vec()).prop_map(|v| format!("{v:?}")),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        (0.0..=1.5f64).prop_map(|v| format!("{v:?}")),
        prop::sample::select(vec![
            "1e308", "1e309", "-1e309", ".inf", "-.inf", ".nan", "1e-400", "5", "0", "-0"
        ])
        .prop_map(str::to_owned),
    ]
}

/// A duration field: its section, key, the shortest duration it accepts, and where the loaded policy keeps it.
struct Span {
    section: &'static str,
    key: &'static str,
    min: Duration,
    read: fn(&Policy) -> Duration,
}

const SPANS: [Span; 6] = [
    Span {
        section: "cooldown",
        key: "instance",
        min: Duration::ZERO,
        read: |p| p.cooldown.instance,
    },
    Span {
        section: "cooldown",
        key: "service",
        min: Duration::ZERO,
        read: |p| p.cooldown.service,
    },
    Span {
        section: "cooldown",
        key: "newInstance",
        min: Duration::ZERO,
        read: |p| p.cooldown.new_instance,
    },
    Span {
        section: "utilization",
        key: "window",
        min: Duration::from_millis(1),
        read: |p| p.utilization.window,
    },
    Span {
        section: "utilization",
        key: "staleAfter",
        min: Duration::from_millis(1),
        read: |p| p.utilization.stale_after,
    },
    // `spec.interval` is not in a section: written below as a key of `spec` itself.
    Span {
        section: "",
        key: "interval",
        min: Duration::from_secs(10),
        read: |p| p.interval,
    },
];

/// Durations near every bound: 0, the interval's 10s, the longest a policy may hold, `u64` and `i64`
/// milliseconds, in several units.
fn duration_text() -> impl Strategy<Value = String> {
    let max_ms = u64::try_from(duration::MAX.as_millis()).unwrap();
    let near = |ms: u64| (ms.saturating_sub(2)..=ms.saturating_add(2)).prop_map(|ms| format!("{ms}ms"));
    prop_oneof![
        near(0),
        near(10_000),
        near(max_ms),
        near(u64::try_from(i64::MAX).unwrap()),
        near(u64::MAX),
        prop::sample::select(vec![
            "3650d",
            "3649d23h59m59s999ms",
            "3650d1ms",
            "87600h",
            "87601h",
            "1000000000d",
            "213503982334601d",
            "213503982334602d",
            "18446744073709551616ms",
            "9s",
            "9s999ms",
            "10s",
        ])
        .prop_map(str::to_owned),
        any::<u64>().prop_map(|n| format!("{}d", n % 10_000)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A count taken exactly from its minimum to `u32::MAX`, refused below or past it (`u32`, `i64` and `u64`
    /// alike) at the value, naming the field.
    #[test]
    fn counts_at_their_bounds_are_taken_exactly_or_refused_where_they_are_written(
        field in 0..COUNTS.len(),
        n in whole_number(),
        plus in any::<bool>(),
    ) {
        let field = &COUNTS[field];
        let value = if plus && n >= 0 { format!("+{n}") } else { n.to_string() };
        let (text, line, col) = document(field.section, field.key, &value, None);
        match load(&text)? {
            Ok(p) => {
                prop_assert!(n >= field.min && n <= i128::from(u32::MAX), "{} accepted as {}", value, (field.read)(&p));
                prop_assert_eq!(i128::from((field.read)(&p)), n);
            }
            Err((l, c, message)) => {
                prop_assert!(n < field.min || n > i128::from(u32::MAX), "{} refused: {}", value, message);
                prop_assert_eq!((l, c), (line, col), "{}", message);
                let named = format!("spec.{}.{}: ", field.section, field.key);
                prop_assert!(message.starts_with(&named), "{}", message);
            }
        }
    }

    /// `perService` as a percentage: 1% to 100% taken exactly, anything else refused at the value.
    #[test]
    fn percentages_at_their_bounds_are_taken_exactly_or_refused_where_they_are_written(n in whole_number()) {
        let (text, line, col) = document("budgets", "perService", &format!("\"{n}%\""), None);
        match load(&text)? {
            Ok(p) => {
                prop_assert!((1..=100).contains(&n));
                prop_assert_eq!(p.budgets.per_service, CountOrPercent::Percent(u32::try_from(n).unwrap()));
            }
            Err((l, c, message)) => {
                prop_assert!(!(1..=100).contains(&n), "{}% refused: {}", n, message);
                prop_assert_eq!((l, c), (line, col), "{}", message);
                prop_assert!(message.starts_with("spec.budgets.perService: "), "{}", message);
            }
        }
    }

    /// Thresholds and shares: a finite number in the field's range taken exactly (not rounded); anything else
    /// refused on its section's lines, naming the section.
    #[test]
    fn numbers_at_their_bounds_are_taken_exactly_or_refused_where_they_are_written(
        field in 0..NUMBERS.len(),
        value in number_text(),
    ) {
        let field = &NUMBERS[field];
        let (text, line, _) = document(field.section, field.key, &value, field.sibling);
        // What the text means as a number, when it means one; YAML's own spellings of the infinities and NaN mean
        // no finite number either.
        let number = value.parse::<f64>().ok().filter(|v| v.is_finite());
        match load(&text)? {
            Ok(p) => {
                let number = number.expect("a finite number");
                prop_assert!((field.accepts)(number), "{} accepted", value);
                prop_assert_eq!((field.read)(&p).to_bits(), number.to_bits(), "{} is read exactly", value);
            }
            Err((l, _, message)) => {
                prop_assert!(!number.is_some_and(field.accepts), "{} refused: {}", value, message);
                // A target not below its trigger is reported at the target, the sibling line just above.
                prop_assert!(l == line || (field.sibling.is_some() && l == line - 1), "line {}: {}", l, message);
                let named = format!("spec.{}.", field.section);
                prop_assert!(message.starts_with(&named), "{}", message);
            }
        }
    }

    /// Durations: from the field's minimum to the longest a policy may hold taken exactly; shorter, longer, past
    /// `i64` or `u64` milliseconds refused at the value, naming the field.
    #[test]
    fn durations_at_their_bounds_are_taken_exactly_or_refused_where_they_are_written(
        field in 0..SPANS.len(),
        value in duration_text(),
    ) {
        let field = &SPANS[field];
        let (text, line, col) = if field.section.is_empty() {
            let mut text = format!("{BASE}{THRESHOLD}");
            let line = text.lines().count() + 1;
            text.push_str(&format!("  {}: {value}\n", field.key));
            (text, line, field.key.len() + 5)
        } else {
            document(field.section, field.key, &value, None)
        };
        let expected = duration::parse(&value).ok().filter(|d| *d >= field.min);
        match load(&text)? {
            Ok(p) => {
                prop_assert!(expected.is_some(), "{} accepted", value);
                prop_assert_eq!(Some((field.read)(&p)), expected);
                // What the controller does with it (a cooldown's end, a utilisation window's start) works on any
                // date up to the year 9999.
                let span = chrono::Duration::from_std((field.read)(&p));
                prop_assert!(span.is_ok(), "{} is past chrono's range", value);
                let last = chrono::DateTime::from_timestamp(253_402_300_799, 0).unwrap();
                prop_assert!(last.checked_add_signed(span.unwrap()).is_some(), "{} overflows a date", value);
            }
            Err((l, c, message)) => {
                prop_assert!(expected.is_none(), "{} refused: {}", value, message);
                prop_assert_eq!((l, c), (line, col), "{}", message);
                let named = if field.section.is_empty() {
                    format!("spec.{}: ", field.key)
                } else {
                    format!("spec.{}.{}: ", field.section, field.key)
                };
                prop_assert!(message.starts_with(&named), "{}", message);
            }
        }
    }
}

/// Before durations had a bound this cooldown was accepted, and the controller panicked ("`DateTime + TimeDelta`
/// overflowed", src/reconcile/settle.rs) in the cycle after its first moves, when they finished and started a
/// cooldown 2.7 million years ahead: every cycle from then on, with the moves never settled.
#[test]
fn a_cooldown_longer_than_the_clock_can_count_is_refused_where_it_is_written() {
    let (text, line, col) = document("cooldown", "service", "1000000000d", None);
    let e = policy::load_str(Path::new("p.yaml"), &text).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "p.yaml:{line}:{col}: spec.cooldown.service: invalid duration \"1000000000d\": too long; the longest a \
             policy may hold is 3650d"
        )
    );
}

/// The other side of the bound: a policy with its durations at the longest they may be runs the controller through
/// moves, their settling and their cooldowns (which end ten years ahead) without a panic. All but `newInstance`: at
/// ten years every instance of the twin would be too new to take part, and nothing would move.
#[tokio::test]
async fn a_policy_with_its_durations_at_their_longest_runs_cycles_that_settle_and_cool_down() {
    use ecs_rebalancer::ledger::memory::MemoryLedger;
    use ecs_rebalancer::ledger::Ledger as _;
    use ecs_rebalancer::reconcile::Controller;
    use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
    use ecs_rebalancer::twin::{Twin, TwinConfig};

    let text = "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: p}\nspec:\n  clusters: [c]\n  \
                metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  mode: enforce\n  actions: [stop-tasks]\n  \
                interval: 3650d\n  budgets: {maxUnavailable: 4, perService: 100%}\n  \
                cooldown: {instance: 3650d, service: 3650d, newInstance: 0s}\n  \
                utilization: {window: 3650d, staleAfter: 3650d}\n";
    let policy = policy::load_str(Path::new("p.yaml"), text).unwrap().remove(0);
    assert_eq!(policy.cooldown.service, duration::MAX);
    let twin = Twin::new(
        ClusterBuilder::new("c")
            .instance(instance("hot"))
            .instance(instance("cold"))
            .service(service("web").spread("instanceId").deployment(50, 200))
            .tasks("web", "hot", 6)
            .snapshot(),
        TwinConfig::default(),
    );
    let ledger = MemoryLedger::new();
    let mut controller = Controller::new(&twin, &ledger, policy, "c");
    let mut settled = 0;
    for _ in 0..4 {
        let report = controller.cycle(twin.now()).await.unwrap();
        settled += report.settled.len();
        twin.advance(Duration::from_secs(120));
    }
    assert!(settled > 0, "no move was settled, so no cooldown was started");
    let cooldowns = ledger.cooldowns("c", twin.now()).await.unwrap();
    assert!(
        cooldowns
            .iter()
            .any(|(_, until)| *until > twin.now() + chrono::Duration::days(3649)),
        "{cooldowns:?}"
    );
}
