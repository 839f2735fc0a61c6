//! The cluster query language of `memberOf` constraints (`placement::cql`), checked against AWS's documentation
//! (the nine example expressions of "Create expressions to define container instances for Amazon ECS tasks", the
//! `list-container-instances --filter` examples and the Windows constraint) and against the semantics the module
//! docs state: negative comparisons need the subject (a present attribute without a value is the empty string),
//! `task:group` is existential, `agentVersion ==`/`!=` are string (in)equality while its orderings compare numeric
//! components, attribute orderings are numeric only between plain decimals, regular expressions match the whole
//! value with ASCII-only classes, Java-only regex constructs are parse errors (found by a scanner that skips escapes
//! and character classes), and subjects and operators need no blanks between them (`attribute:a==1`).
//!
//! Every test is a table: one expression evaluated on several instances, or several expressions on one.

use std::fmt;

use ecs_rebalancer::model::ContainerInstance;
use ecs_rebalancer::placement::cql::{self, Arg, Expr, Op, ParseError, Subject};
use ecs_rebalancer::placement::Facts;
use ecs_rebalancer::scenarios::builder::{instance, ClusterBuilder, InstanceBuilder};

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/// One instance as an expression sees it: the instance, `runningTasksCount` and the groups of its tasks.
struct On {
    instance: ContainerInstance,
    running: u32,
    groups: Vec<&'static str>,
}

/// The instance the builder makes (built through a cluster, as the engine sees it), running nothing.
fn on(b: InstanceBuilder) -> On {
    let cluster = ClusterBuilder::new("t").instance(b).build();
    On {
        instance: cluster.instances()[0].clone(),
        running: 0,
        groups: Vec::new(),
    }
}

/// The default test instance (`i-a`, m5.large in eu-west-1a, agent 1.89.0, connected).
fn plain() -> On {
    on(instance("a"))
}

/// An instance with the custom attribute `name=value`.
fn with_attr(name: &str, value: &str) -> On {
    on(instance("a").attr(name, value))
}

/// An instance with `ecs.instance-type` and `ecs.availability-zone` set.
fn typed(instance_type: &str, az: &str) -> On {
    on(instance("a").instance_type(instance_type).az(az))
}

/// An instance running tasks of these groups.
fn in_groups(groups: &[&'static str]) -> On {
    plain().groups(groups)
}

impl On {
    fn running(mut self, n: u32) -> Self {
        self.running = n;
        self
    }

    fn groups(mut self, groups: &[&'static str]) -> Self {
        self.groups = groups.to_vec();
        self
    }

    /// Removes an attribute entirely.
    fn without(mut self, name: &str) -> Self {
        self.instance.attributes.retain(|a| a.name != name);
        self
    }

    fn eval(&self, e: &Expr) -> bool {
        e.eval(&Facts {
            instance: &self.instance,
            running: self.running,
            groups: &self.groups,
        })
    }
}

impl fmt::Debug for On {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.instance;
        let attrs: Vec<String> = i
            .attributes
            .iter()
            .map(|a| match &a.value {
                Some(v) => format!("{}={v}", a.name),
                None => a.name.clone(),
            })
            .collect();
        write!(
            f,
            "instance {:?} connected={} agent={:?} registeredAt={:?} attributes={attrs:?} running={} groups={:?}",
            i.ec2_instance_id,
            i.agent_connected,
            i.version_info.as_ref().and_then(|v| v.agent_version.as_deref()),
            i.registered_at,
            self.running,
            self.groups,
        )
    }
}

fn parse_ok(text: &str) -> Expr {
    cql::parse(text).unwrap_or_else(|e| panic!("`{text}` should parse, got {e}"))
}

fn parse_err(text: &str) -> ParseError {
    match cql::parse(text) {
        Ok(e) => panic!("`{text}` should not parse, got {e:?}"),
        Err(e) => e,
    }
}

/// One expression on several instances: each row is an instance and whether the expression holds for it.
fn check(text: &str, rows: &[(On, bool)]) {
    let e = parse_ok(text);
    for (k, (on, want)) in rows.iter().enumerate() {
        assert_eq!(on.eval(&e), *want, "`{text}`, row {k}: {on:?}");
    }
}

/// Several expressions on one instance.
fn check_on(on: &On, rows: &[(&str, bool)]) {
    for (text, want) in rows {
        assert_eq!(on.eval(&parse_ok(text)), *want, "`{text}` on {on:?}");
    }
}

/// Parse errors: each row is an expression, the 1-based column expected, and a piece of the message.
fn check_errors(rows: &[(&str, usize, &str)]) {
    for (text, column, fragment) in rows {
        let e = parse_err(text);
        assert_eq!(e.column, *column, "`{text}`: column of {e}");
        assert!(
            e.message.contains(fragment),
            "`{text}`: message {:?} should contain {fragment:?}",
            e.message
        );
        assert_eq!(e.to_string(), format!("column {}: {}", e.column, e.message));
    }
}

/// An instance with custom attributes `a`, `b`, `c` set to "1" (true) or "0" (false), for truth tables.
fn abc(a: bool, b: bool, c: bool) -> On {
    let bit = |x: bool| if x { "1" } else { "0" };
    on(instance("a").attr("a", bit(a)).attr("b", bit(b)).attr("c", bit(c)))
}

/// Each boolean expression over `a`, `b`, `c` (written `attribute:x == 1`) against its truth table.
/// The truth table of a boolean expression over `a`, `b`, `c`.
type Truth = fn(bool, bool, bool) -> bool;

fn check_truth_tables(rows: &[(&str, Truth)]) {
    for (text, truth) in rows {
        let e = parse_ok(text);
        for bits in 0..8u8 {
            let (a, b, c) = (bits & 4 != 0, bits & 2 != 0, bits & 1 != 0);
            assert_eq!(abc(a, b, c).eval(&e), truth(a, b, c), "`{text}` with a={a} b={b} c={c}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. AWS's example expressions (research §1.6), each as the sentence describing it says
// ---------------------------------------------------------------------------------------------------------------

/// "The following expression selects instances with the specified instance type."
#[test]
fn aws_example_string_equality_selects_the_instance_type() {
    check(
        "attribute:ecs.instance-type == t2.small",
        &[
            (typed("t2.small", "us-east-1a"), true),
            (typed("t2.medium", "us-east-1a"), false),
            (typed("t2.small.x", "us-east-1a"), false),
            (typed("t2", "us-east-1a"), false),
            (plain().without("ecs.instance-type"), false),
        ],
    );
}

/// "The following expression selects instances in the us-east-1a or us-east-1b Availability Zone."
#[test]
fn aws_example_argument_list_selects_either_availability_zone() {
    check(
        "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]",
        &[
            (typed("m5.large", "us-east-1a"), true),
            (typed("m5.large", "us-east-1b"), true),
            (typed("m5.large", "us-east-1c"), false),
            (plain().without("ecs.availability-zone"), false),
        ],
    );
}

/// "The following expression selects G2 instances that aren't in the us-east-1d Availability Zone."
#[test]
fn aws_example_compound_expression_selects_g2_instances_outside_us_east_1d() {
    check(
        "attribute:ecs.instance-type =~ g2.* and attribute:ecs.availability-zone != us-east-1d",
        &[
            (typed("g2.2xlarge", "us-east-1a"), true),
            (typed("g2.8xlarge", "us-east-1c"), true),
            (typed("g2.2xlarge", "us-east-1d"), false),
            (typed("m5.large", "us-east-1a"), false),
            (typed("xg2.2xlarge", "us-east-1a"), false),
        ],
    );
}

/// "The following expression selects instances that are hosting tasks in the `service:production` group."
#[test]
fn aws_example_task_affinity_selects_instances_hosting_the_group() {
    check(
        "task:group == service:production",
        &[
            (in_groups(&["service:production"]), true),
            (in_groups(&["service:web", "service:production"]), true),
            (in_groups(&["service:production", "service:production"]), true),
            (in_groups(&["service:web"]), false),
            (in_groups(&["service:production-canary"]), false),
            (in_groups(&[]), false),
        ],
    );
}

/// "The following expression selects instances that aren't hosting tasks in the database group."
#[test]
fn aws_example_task_anti_affinity_selects_instances_not_hosting_the_group() {
    check(
        "not(task:group == database)",
        &[
            (in_groups(&["service:web"]), true),
            (in_groups(&[]), true),
            (in_groups(&["database"]), false),
            (in_groups(&["service:web", "database"]), false),
        ],
    );
}

/// "The following expression selects instances that are only running one task." The count is `Facts.running`
/// (with any overlay applied), not the snapshot's `runningTasksCount` field.
#[test]
fn aws_example_running_task_count_uses_the_facts_count() {
    let mut stale = plain().running(1);
    stale.instance.running_tasks_count = 5;
    let mut stale_zero = plain().running(0);
    stale_zero.instance.running_tasks_count = 1;
    check(
        "runningTasksCount == 1",
        &[
            (plain().running(1), true),
            (plain().running(0), false),
            (plain().running(2), false),
            (stale, true),
            (stale_zero, false),
        ],
    );
}

/// "The following expression selects instances that are running a container agent version below 1.14.5."
/// Versions compare by numeric components, so 1.9.0 is below and 1.20.0 is not.
#[test]
fn aws_example_agent_version_compares_numeric_components() {
    let agent = |v: &str| on(instance("a").agent_version(v));
    check(
        "agentVersion < 1.14.5",
        &[
            (agent("1.9.0"), true),
            (agent("1.14.4"), true),
            (agent("1.2.99"), true),
            (agent("1.14.5"), false),
            (agent("1.14.10"), false),
            (agent("1.20.0"), false),
            (agent("1.100.0"), false),
        ],
    );
}

/// "The following expression selects instances that were registered before February 13, 2018." A bare date is
/// midnight UTC.
#[test]
fn aws_example_registration_time_selects_instances_registered_before_the_date() {
    let registered = |t: &str| on(instance("a").registered_at(t));
    check(
        "registeredAt < 2018-02-13",
        &[
            (registered("2017-06-01T00:00:00Z"), true),
            (registered("2018-02-12T23:59:59Z"), true),
            (registered("2018-02-13T01:00:00+02:00"), true),
            (registered("2018-02-13T00:00:00Z"), false),
            (registered("2018-02-13T00:00:01Z"), false),
            (registered("2026-11-20T10:00:00Z"), false),
        ],
    );
}

/// "The following expression selects instances with the following Amazon EC2 instance IDs." The quotes are not
/// part of the values.
#[test]
fn aws_example_ec2_instance_id_list_strips_the_quotes() {
    let text = "ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']";
    match parse_ok(text) {
        Expr::Compare {
            subject: Subject::Ec2InstanceId,
            op: Op::In,
            arg: Arg::List(items),
        } => assert_eq!(items, ["i-abcd1234", "i-wxyx7890"]),
        other => panic!("`{text}` parsed as {other:?}"),
    }
    check(
        text,
        &[
            (on(instance("abcd1234")), true),
            (on(instance("wxyx7890")), true),
            (on(instance("abcd12345")), false),
            (on(instance("other")), false),
        ],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Related AWS expressions (research §1.7): list-container-instances filters and the Windows constraint
// ---------------------------------------------------------------------------------------------------------------

/// "The following example uses built-in attributes to list the g2.2xlarge instances."
#[test]
fn aws_filter_built_in_attribute_lists_the_instance_type() {
    check(
        "attribute:ecs.instance-type == g2.2xlarge",
        &[
            (typed("g2.2xlarge", "us-east-1a"), true),
            (typed("g2.8xlarge", "us-east-1a"), false),
        ],
    );
}

/// "The following example lists the instances with the custom attribute "stack=prod"."
#[test]
fn aws_filter_custom_attribute_lists_instances_with_the_value() {
    check(
        "attribute:stack == prod",
        &[
            (with_attr("stack", "prod"), true),
            (with_attr("stack", "dev"), false),
            (with_attr("stack", "production"), false),
            (plain(), false),
        ],
    );
}

/// "The following example lists the instances with the custom attribute "stack" unless the attribute value is
/// "prod"." Instances without the attribute are not listed.
#[test]
fn aws_filter_exclude_an_attribute_value_needs_the_attribute() {
    check(
        "attribute:stack != prod",
        &[
            (with_attr("stack", "dev"), true),
            (with_attr("stack", "production"), true),
            (with_attr("stack", "prod"), false),
            (plain(), false),
        ],
    );
}

/// "… list the instances of type t2.small or t2.medium."
#[test]
fn aws_filter_multiple_attribute_values_lists_either_type() {
    check(
        "attribute:ecs.instance-type in [t2.small, t2.medium]",
        &[
            (typed("t2.small", "us-east-1a"), true),
            (typed("t2.medium", "us-east-1a"), true),
            (typed("t2.large", "us-east-1a"), false),
        ],
    );
}

/// "… list the T2 instances in the us-east-1a Availability Zone."
#[test]
fn aws_filter_multiple_attributes_lists_t2_instances_in_the_zone() {
    check(
        "attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone == us-east-1a",
        &[
            (typed("t2.small", "us-east-1a"), true),
            (typed("t2.micro", "us-east-1a"), true),
            (typed("t2.small", "us-east-1b"), false),
            (typed("t3.small", "us-east-1a"), false),
        ],
    );
}

/// `memberOf(attribute:ecs.os-family == WINDOWS_SERVER_<OS_Release>_<FULL or CORE>)` keeps a task on the same
/// Windows version.
#[test]
fn aws_windows_constraint_selects_the_os_family() {
    let family = |f: &str| with_attr("ecs.os-family", f);
    check(
        "attribute:ecs.os-family == WINDOWS_SERVER_2019_FULL",
        &[
            (family("WINDOWS_SERVER_2019_FULL"), true),
            (family("WINDOWS_SERVER_2019_CORE"), false),
            (family("WINDOWS_SERVER_2022_FULL"), false),
            (plain(), false),
        ],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Subjects and operators
// ---------------------------------------------------------------------------------------------------------------

/// The subjects, each with a scalar argument valid for it.
const SUBJECTS: &[(&str, &str)] = &[
    ("agentConnected", "true"),
    ("agentVersion", "1.14.5"),
    ("attribute:stack", "prod"),
    ("ec2InstanceId", "i-a"),
    ("registeredAt", "2018-02-13"),
    ("runningTasksCount", "1"),
    ("task:group", "service:web"),
];

/// Every spelling of every operator, with the kind of argument it takes.
const OPERATORS: &[(&str, OpKind)] = &[
    ("==", OpKind::Scalar),
    ("equals", OpKind::Scalar),
    ("!=", OpKind::Scalar),
    ("not_equals", OpKind::Scalar),
    (">", OpKind::Order),
    ("greater_than", OpKind::Order),
    (">=", OpKind::Order),
    ("greater_than_equal", OpKind::Order),
    ("<", OpKind::Order),
    ("less_than", OpKind::Order),
    ("<=", OpKind::Order),
    ("less_than_equal", OpKind::Order),
    ("exists", OpKind::Exists),
    ("!exists", OpKind::Exists),
    ("not_exists", OpKind::Exists),
    ("in", OpKind::List),
    ("!in", OpKind::List),
    ("not_in", OpKind::List),
    ("=~", OpKind::Regex),
    ("matches", OpKind::Regex),
    ("!~", OpKind::Regex),
    ("not_matches", OpKind::Regex),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Scalar,
    Order,
    Exists,
    List,
    Regex,
}

/// The operator kinds each subject takes: AWS's list for agentConnected, agentVersion, ec2InstanceId,
/// registeredAt and runningTasksCount; everything for attributes; for task:group (no list in AWS's docs) the
/// text operators and exists.
fn allowed(subject: &str, kind: OpKind) -> bool {
    use OpKind::*;
    match subject {
        "agentConnected" | "ec2InstanceId" => matches!(kind, Scalar | List | Regex),
        "agentVersion" | "registeredAt" | "runningTasksCount" => matches!(kind, Scalar | Order),
        "task:group" => matches!(kind, Scalar | List | Regex | Exists),
        _ => true,
    }
}

#[test]
fn each_subject_accepts_exactly_the_operators_aws_lists_for_it() {
    for (subject, scalar) in SUBJECTS {
        for (op, kind) in OPERATORS {
            let text = match kind {
                OpKind::Scalar | OpKind::Order => format!("{subject} {op} {scalar}"),
                OpKind::Exists => format!("{subject} {op}"),
                OpKind::List => format!("{subject} {op} [{scalar}, {scalar}]"),
                OpKind::Regex => format!("{subject} {op} .*"),
            };
            if allowed(subject, *kind) {
                parse_ok(&text);
            } else {
                let e = parse_err(&text);
                assert_eq!(e.column, subject.len() + 2, "`{text}`: {e}");
                assert!(
                    e.message.contains("is not valid for") && e.message.contains(subject) && e.message.contains(op),
                    "`{text}`: {e}"
                );
            }
        }
    }
}

#[test]
fn every_word_operator_means_the_same_as_its_symbol() {
    let pairs = [
        ("==", "equals", "5"),
        ("!=", "not_equals", "5"),
        (">", "greater_than", "5"),
        (">=", "greater_than_equal", "5"),
        ("<", "less_than", "5"),
        ("<=", "less_than_equal", "5"),
        ("exists", "exists", ""),
        ("!exists", "not_exists", ""),
        ("in", "in", "[4, 5]"),
        ("!in", "not_in", "[4, 5]"),
        ("=~", "matches", "[45]"),
        ("!~", "not_matches", "[45]"),
    ];
    let instances = [
        with_attr("n", "3"),
        with_attr("n", "4"),
        with_attr("n", "5"),
        with_attr("n", "6"),
        with_attr("n", "10"),
        with_attr("n", "55"),
        on(instance("a").flag("n")),
        plain(),
    ];
    for (symbol, word, arg) in pairs {
        let (s, w) = (
            parse_ok(&format!("attribute:n {symbol} {arg}")),
            parse_ok(&format!("attribute:n {word} {arg}")),
        );
        for i in &instances {
            assert_eq!(i.eval(&s), i.eval(&w), "`{symbol}` and `{word}` on {i:?}");
        }
    }
}

/// Rows: the value of attribute `n` (`Some(v)`, a flag without a value, or missing) and the expected result.
#[derive(Clone, Copy)]
enum N {
    Value(&'static str),
    Flag,
    Missing,
}

fn n(value: N) -> On {
    match value {
        N::Value(v) => with_attr("n", v),
        N::Flag => on(instance("a").flag("n")),
        N::Missing => plain(),
    }
}

fn check_n(text: &str, rows: &[(N, bool)]) {
    let rows: Vec<(On, bool)> = rows.iter().map(|(v, want)| (n(*v), *want)).collect();
    check(text, &rows);
}

#[test]
fn attribute_equals_and_not_equals_are_string_comparisons() {
    use N::*;
    check_n(
        "attribute:n == 5",
        &[
            (Value("5"), true),
            (Value("5.0"), false),
            (Value("6"), false),
            (Flag, false),
            (Missing, false),
        ],
    );
    // A flag is the empty string, which is not "5"; a missing attribute satisfies neither `==` nor `!=`.
    check_n(
        "attribute:n != 5",
        &[
            (Value("5"), false),
            (Value("5.0"), true),
            (Value("6"), true),
            (Flag, true),
            (Missing, false),
        ],
    );
    check_n("attribute:n equals 'a b'", &[(Value("a b"), true), (Value("a"), false)]);
    check_n(
        "attribute:n == \"prod\"",
        &[(Value("prod"), true), (Value("\"prod\""), false)],
    );
}

#[test]
fn attribute_ordering_compares_numbers_when_both_sides_are_numbers() {
    use N::*;
    check_n(
        "attribute:n > 5",
        &[
            (Value("10"), true),
            (Value("5.5"), true),
            (Value("5"), false),
            (Value("4"), false),
            (Missing, false),
        ],
    );
    check_n(
        "attribute:n >= 5",
        &[
            (Value("10"), true),
            (Value("5"), true),
            (Value("5.0"), true),
            (Value("4"), false),
            (Missing, false),
        ],
    );
    check_n(
        "attribute:n < 5",
        &[
            (Value("10"), false),
            (Value("5"), false),
            (Value("4"), true),
            (Value("-7"), true),
            (Missing, false),
        ],
    );
    check_n(
        "attribute:n <= 5",
        &[
            (Value("10"), false),
            (Value("5"), true),
            (Value("4.99"), true),
            (Value("6"), false),
            // A flag is "", not a number, so it compares as text: "" < "5".
            (Flag, true),
        ],
    );
}

#[test]
fn attribute_ordering_compares_text_when_either_side_is_not_a_number() {
    use N::*;
    check_n(
        "attribute:n > b",
        &[
            (Value("c"), true),
            (Value("ba"), true),
            (Value("b"), false),
            (Value("abc"), false),
            (Value("10"), false),
        ],
    );
    check_n(
        "attribute:n < 10x",
        &[(Value("9"), false), (Value("1"), true), (Value("10"), true)],
    );
    check_n(
        "attribute:n greater_than_equal m5",
        &[(Value("m5"), true), (Value("m6"), true), (Value("c5"), false)],
    );
    check_n(
        "attribute:n less_than_equal m5",
        &[(Value("m5"), true), (Value("c5"), true), (Value("t3"), false)],
    );
}

/// Only plain decimals (an optional leading `-`, digits, at most one `.`) compare as numbers; `NaN`, `inf`, `1e3`,
/// `+5`, `0x10` and `1.2.3` compare as text even though Rust's `f64` parser reads some of them.
#[test]
fn attribute_ordering_is_numeric_only_between_plain_decimals() {
    use N::*;
    check_n(
        "attribute:n > 5",
        &[
            // Plain decimals, numerically.
            (Value("10"), true),
            (Value("5.01"), true),
            (Value("5."), false),
            (Value(".5"), false),
            (Value("-10"), false),
            (Value("-.5"), false),
            // Not plain decimals, as text against "5".
            (Value("1e3"), false),
            (Value("NaN"), true),
            (Value("inf"), true),
            (Value("-inf"), false),
            (Value("+6"), false),
            (Value("0x10"), false),
            (Value("6.0.0"), true),
            (Value("-"), false),
            (Value("."), false),
        ],
    );
    check_n(
        "attribute:n < 5",
        &[
            (Value("1e3"), true),
            (Value("NaN"), false),
            (Value("inf"), false),
            (Value("+6"), true),
            (Value("10.0.0"), true),
            (Value("10"), false),
        ],
    );
    // Either side not a plain decimal makes it text.
    check_n(
        "attribute:n < 1e3",
        &[(Value("5"), false), (Value("10"), true), (Value("1e2"), true)],
    );
    check_n(
        "attribute:n >= NaN",
        &[(Value("NaN"), true), (Value("Na"), false), (Value("5"), false)],
    );
    check_n(
        "attribute:n <= inf",
        &[(Value("inf"), true), (Value("5"), true), (Value("infinity"), false)],
    );
    check_n(
        "attribute:n > -1",
        // "-inf" is text: "-i" > "-1".
        &[
            (Value("0"), true),
            (Value("-0.5"), true),
            (Value("-2"), false),
            (Value("-inf"), true),
        ],
    );
}

#[test]
fn attribute_exists_and_not_exists_look_only_at_presence() {
    use N::*;
    let rows = [(Value("x"), true), (Value(""), true), (Flag, true), (Missing, false)];
    check_n("attribute:n exists", &rows);
    let negated: Vec<(N, bool)> = rows.iter().map(|(v, b)| (*v, !b)).collect();
    check_n("attribute:n !exists", &negated);
    check_n("attribute:n not_exists", &negated);
}

#[test]
fn attribute_in_and_not_in_test_list_membership() {
    use N::*;
    check_n(
        "attribute:n in [a, 'b c', \"d\"]",
        &[
            (Value("a"), true),
            (Value("b c"), true),
            (Value("d"), true),
            (Value("b"), false),
            (Missing, false),
        ],
    );
    check_n(
        "attribute:n in (a, b)",
        &[(Value("a"), true), (Value("b"), true), (Value("c"), false)],
    );
    check_n("attribute:n in [a]", &[(Value("a"), true), (Value("b"), false)]);
    // A flag is "", which is not in the list; a missing attribute satisfies neither `in` nor `!in`.
    check_n(
        "attribute:n !in [a, b]",
        &[
            (Value("a"), false),
            (Value("b"), false),
            (Value("c"), true),
            (Flag, true),
            (Missing, false),
        ],
    );
    check_n("attribute:n not_in (a,b)", &[(Value("a"), false), (Value("c"), true)]);
}

#[test]
fn attribute_matches_and_not_matches_test_a_pattern() {
    use N::*;
    check_n(
        "attribute:n =~ [45]",
        &[
            (Value("4"), true),
            (Value("5"), true),
            (Value("6"), false),
            (Value("55"), false),
            (Missing, false),
        ],
    );
    // A flag is "", which [45] does not match; a missing attribute satisfies neither `=~` nor `!~`.
    check_n(
        "attribute:n !~ [45]",
        &[
            (Value("4"), false),
            (Value("6"), true),
            (Value("55"), true),
            (Flag, true),
            (Missing, false),
        ],
    );
    check_n(
        "attribute:n matches 'a b.*'",
        &[(Value("a bc"), true), (Value("a"), false)],
    );
    check_n(
        "attribute:n =~ (?i)PROD",
        &[(Value("prod"), true), (Value("Prod"), true), (Value("dev"), false)],
    );
}

#[test]
fn agent_connected_compares_the_words_true_and_false() {
    let rows = [
        ("agentConnected == true", true, false),
        ("agentConnected == false", false, true),
        ("agentConnected != true", false, true),
        ("agentConnected not_equals false", true, false),
        ("agentConnected in [true]", true, false),
        ("agentConnected in [true, false]", true, true),
        ("agentConnected !in [true]", false, true),
        ("agentConnected =~ t.*", true, false),
        ("agentConnected !~ t.*", false, true),
        ("agentConnected matches (true|false)", true, true),
    ];
    for (text, when_connected, when_disconnected) in rows {
        check(
            text,
            &[
                (plain(), when_connected),
                (on(instance("a").disconnected()), when_disconnected),
            ],
        );
    }
}

/// `==` and `!=` are string (in)equality (AWS's operator table: "String equality"), so `1.9` is not `1.9.0`; the
/// orderings compare numeric components, so `1.9` is `<=` (and `>=`) `1.9.0`.
#[test]
fn agent_version_supports_every_ordering_operator() {
    let agent = |v: &str| on(instance("a").agent_version(v));
    // (expression, on 1.9.0, on 1.14.5, on 1.100.0)
    let rows = [
        ("agentVersion == 1.14.5", false, true, false),
        ("agentVersion != 1.14.5", true, false, true),
        ("agentVersion > 1.14.5", false, false, true),
        ("agentVersion >= 1.14.5", false, true, true),
        ("agentVersion < 1.14.5", true, false, false),
        ("agentVersion <= 1.14.5", true, true, false),
        ("agentVersion greater_than 1.89.0", false, false, true),
        ("agentVersion less_than_equal '1.9'", true, false, false),
        ("agentVersion equals 1.9", false, false, false),
        ("agentVersion equals 1.9.0", true, false, false),
        ("agentVersion not_equals 1.9", true, true, true),
    ];
    for (text, a, b, c) in rows {
        check(
            text,
            &[(agent("1.9.0"), a), (agent("1.14.5"), b), (agent("1.100.0"), c)],
        );
    }
}

/// AWS's operator table calls `==` "String equality": the text must be the same, so versions that order as equal
/// (`1.9` and `1.9.0`, `1.09.0` and `1.9.0`) are not `==`, while `<=` and `>=` both hold between them.
#[test]
fn agent_version_equality_is_string_equality_and_ordering_is_numeric() {
    let agent = |v: &str| on(instance("a").agent_version(v));
    check_on(
        &agent("1.9.0"),
        &[
            ("agentVersion == 1.9.0", true),
            ("agentVersion == '1.9.0'", true),
            ("agentVersion == 1.9", false),
            ("agentVersion == 1.09.0", false),
            ("agentVersion == 1.9.0.0", false),
            ("agentVersion != 1.9.0", false),
            ("agentVersion != 1.9", true),
            ("agentVersion not_equals 1.09.0", true),
            ("agentVersion <= 1.9", true),
            ("agentVersion >= 1.9", true),
            ("agentVersion < 1.9", false),
            ("agentVersion > 1.9", false),
            ("agentVersion >= 1.09.0", true),
            ("agentVersion <= 1.09.0", true),
            ("agentVersion <= 1.9.0.0", true),
            ("agentVersion >= 1.9.0.0", true),
        ],
    );
    // Orderings compare numeric components, not text: 1.100.0 > 1.89.0 although "1.100.0" < "1.89.0".
    check(
        "agentVersion > 1.89.0",
        &[
            (agent("1.100.0"), true),
            (agent("1.89.1"), true),
            (agent("1.89.0"), false),
            (agent("1.9.0"), false),
        ],
    );
    // Without a known agent version no comparison holds, negative ones included.
    let mut unknown = plain();
    unknown.instance.version_info = None;
    check_on(
        &unknown,
        &[
            ("agentVersion == 1.89.0", false),
            ("agentVersion != 1.89.0", false),
            ("agentVersion < 1.89.0", false),
            ("agentVersion >= 1.89.0", false),
            ("not(agentVersion == 1.89.0)", true),
        ],
    );
}

#[test]
fn ec2_instance_id_supports_equality_lists_and_patterns() {
    // (expression, on i-a, on i-b, on an instance without an EC2 id)
    let rows = [
        ("ec2InstanceId == i-a", true, false, false),
        ("ec2InstanceId != i-a", false, true, false),
        ("ec2InstanceId in [i-a, i-c]", true, false, false),
        ("ec2InstanceId !in [i-a, i-c]", false, true, false),
        ("ec2InstanceId not_in ['i-a']", false, true, false),
        ("ec2InstanceId =~ i-[ab]", true, true, false),
        ("ec2InstanceId !~ i-a", false, true, false),
    ];
    for (text, a, b, none) in rows {
        let mut no_id = plain();
        no_id.instance.ec2_instance_id = None;
        check(text, &[(on(instance("a")), a), (on(instance("b")), b), (no_id, none)]);
    }
}

#[test]
fn registered_at_accepts_every_date_form_aws_lists() {
    // 2018-06-18T22:28:28Z in each form AWS lists, and one with another offset.
    let forms = [
        "2018-06-18T22:28:28+00:00",
        "2018-06-18T22:28:28Z",
        "2018-06-18T22:28:28",
        "2018-06-19T00:28:28+02:00",
    ];
    let registered = |t: &str| on(instance("a").registered_at(t));
    for form in forms {
        check(
            &format!("registeredAt == {form}"),
            &[
                (registered("2018-06-18T22:28:28Z"), true),
                (registered("2018-06-18T22:28:29Z"), false),
            ],
        );
    }
    check(
        "registeredAt == 2018-06-18",
        &[
            (registered("2018-06-18T00:00:00Z"), true),
            (registered("2018-06-18T22:28:28Z"), false),
        ],
    );
}

#[test]
fn registered_at_supports_every_ordering_operator() {
    let registered = |t: &str| on(instance("a").registered_at(t));
    // (expression, registered before, at, after 2018-02-13T00:00:00Z)
    let rows = [
        ("registeredAt == 2018-02-13", false, true, false),
        ("registeredAt != 2018-02-13", true, false, true),
        ("registeredAt > 2018-02-13", false, false, true),
        ("registeredAt >= 2018-02-13", false, true, true),
        ("registeredAt < 2018-02-13", true, false, false),
        ("registeredAt <= 2018-02-13", true, true, false),
        ("registeredAt greater_than 2018-02-13T00:00:00Z", false, false, true),
        ("registeredAt less_than '2018-02-13T00:00:00+00:00'", true, false, false),
    ];
    for (text, before, at, after) in rows {
        check(
            text,
            &[
                (registered("2018-02-12T12:00:00Z"), before),
                (registered("2018-02-13T00:00:00Z"), at),
                (registered("2018-02-13T00:00:01Z"), after),
            ],
        );
    }
}

#[test]
fn registered_at_is_false_for_every_comparison_when_unknown() {
    let mut unknown = plain();
    unknown.instance.registered_at = None;
    check_on(
        &unknown,
        &[
            ("registeredAt == 2018-02-13", false),
            ("registeredAt != 2018-02-13", false),
            ("registeredAt < 2018-02-13", false),
            ("registeredAt >= 2018-02-13", false),
            ("not(registeredAt < 2018-02-13)", true),
        ],
    );
}

#[test]
fn running_tasks_count_supports_every_ordering_operator() {
    // (expression, running 0, 1, 2)
    let rows = [
        ("runningTasksCount == 1", false, true, false),
        ("runningTasksCount != 1", true, false, true),
        ("runningTasksCount > 1", false, false, true),
        ("runningTasksCount >= 1", false, true, true),
        ("runningTasksCount < 1", true, false, false),
        ("runningTasksCount <= 1", true, true, false),
        ("runningTasksCount equals 0", true, false, false),
        ("runningTasksCount less_than 10", true, true, true),
        ("runningTasksCount greater_than_equal '2'", false, false, true),
    ];
    for (text, zero, one, two) in rows {
        check(
            text,
            &[
                (plain().running(0), zero),
                (plain().running(1), one),
                (plain().running(2), two),
            ],
        );
    }
}

#[test]
fn task_group_supports_text_operators_and_exists() {
    // (expression, on [], on [web], on [db], on [web, db])
    let rows = [
        ("task:group == service:web", false, true, false, true),
        ("task:group in [service:web, service:api]", false, true, false, true),
        ("task:group =~ service:.*", false, true, false, true),
        ("task:group matches database", false, false, true, true),
        ("task:group exists", false, true, true, true),
        ("task:group !exists", true, false, false, false),
        ("task:group not_exists", true, false, false, false),
    ];
    for (text, none, web, db, both) in rows {
        check(
            text,
            &[
                (in_groups(&[]), none),
                (in_groups(&["service:web"]), web),
                (in_groups(&["database"]), db),
                (in_groups(&["service:web", "database"]), both),
            ],
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Compound expressions
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn and_and_double_ampersand_are_conjunction() {
    check_truth_tables(&[
        ("attribute:a == 1 and attribute:b == 1", |a, b, _| a && b),
        ("attribute:a == 1 && attribute:b == 1", |a, b, _| a && b),
        (
            "attribute:a == 1 and attribute:b == 1 && attribute:c == 1",
            |a, b, c| a && b && c,
        ),
    ]);
}

#[test]
fn or_and_double_bar_are_disjunction() {
    check_truth_tables(&[
        ("attribute:a == 1 or attribute:b == 1", |a, b, _| a || b),
        ("attribute:a == 1 || attribute:b == 1", |a, b, _| a || b),
        ("attribute:a == 1 or attribute:b == 1 || attribute:c == 1", |a, b, c| {
            a || b || c
        }),
    ]);
}

#[test]
fn not_and_bang_are_negation() {
    check_truth_tables(&[
        ("not attribute:a == 1", |a, _, _| !a),
        ("not(attribute:a == 1)", |a, _, _| !a),
        ("not (attribute:a == 1)", |a, _, _| !a),
        ("!attribute:a == 1", |a, _, _| !a),
        ("! attribute:a == 1", |a, _, _| !a),
        ("!(attribute:a == 1)", |a, _, _| !a),
        ("not not attribute:a == 1", |a, _, _| a),
        ("!!attribute:a == 1", |a, _, _| a),
        ("not(not(attribute:a == 1))", |a, _, _| a),
    ]);
}

#[test]
fn parentheses_group_and_can_nest() {
    check_truth_tables(&[
        ("(attribute:a == 1)", |a, _, _| a),
        ("((attribute:a == 1))", |a, _, _| a),
        // AWS's example of precedence: (expression1 or expression2) and expression3
        (
            "(attribute:a == 1 or attribute:b == 1) and attribute:c == 1",
            |a, b, c| (a || b) && c,
        ),
        (
            "attribute:a == 1 and (attribute:b == 1 or attribute:c == 1)",
            |a, b, c| a && (b || c),
        ),
        ("not(attribute:a == 1 and attribute:b == 1)", |a, b, _| !(a && b)),
        ("( attribute:a == 1 )", |a, _, _| a),
    ]);
}

#[test]
fn and_binds_tighter_than_or_and_not_tighter_than_and() {
    check_truth_tables(&[
        (
            "attribute:a == 1 or attribute:b == 1 and attribute:c == 1",
            |a, b, c| a || (b && c),
        ),
        (
            "attribute:a == 1 and attribute:b == 1 or attribute:c == 1",
            |a, b, c| (a && b) || c,
        ),
        ("attribute:a == 1 || attribute:b == 1 && attribute:c == 1", |a, b, c| {
            a || (b && c)
        }),
        ("not attribute:a == 1 and attribute:b == 1", |a, b, _| !a && b),
        ("!attribute:a == 1 or attribute:b == 1", |a, b, _| !a || b),
        (
            "not attribute:a == 1 or attribute:b == 1 and attribute:c == 1",
            |a, b, c| !a || (b && c),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Semantics stated in the module docs
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn negative_comparisons_on_a_missing_attribute_are_false() {
    let no_stack = plain();
    check_on(
        &no_stack,
        &[
            ("attribute:stack != prod", false),
            ("attribute:stack not_equals prod", false),
            ("attribute:stack !in [prod, staging]", false),
            ("attribute:stack not_in [prod]", false),
            ("attribute:stack !~ prod", false),
            ("attribute:stack not_matches prod", false),
            ("attribute:stack == prod", false),
            ("attribute:stack in [prod]", false),
            ("attribute:stack =~ .*", false),
            ("attribute:stack > 1", false),
            ("attribute:stack <= zzz", false),
        ],
    );
}

#[test]
fn not_exists_and_boolean_not_are_plain_negations_on_a_missing_attribute() {
    check_on(
        &plain(),
        &[
            ("attribute:stack !exists", true),
            ("attribute:stack not_exists", true),
            ("attribute:stack exists", false),
            ("not(attribute:stack == prod)", true),
            ("!(attribute:stack != prod)", true),
            ("not attribute:stack exists", true),
        ],
    );
}

/// A present attribute without a value (ECS's capability flags) compares as the empty string, so every comparison
/// has an answer, negative ones included; only a missing attribute satisfies none of them.
#[test]
fn attribute_without_a_value_compares_as_the_empty_string() {
    // (expression, on a flag without a value, on an instance without the attribute)
    let rows = [
        ("attribute:n exists", true, false),
        ("attribute:n !exists", false, true),
        ("attribute:n not_exists", false, true),
        ("attribute:n == x", false, false),
        ("attribute:n == true", false, false),
        ("attribute:n == ''", true, false),
        ("attribute:n == \"\"", true, false),
        ("attribute:n != x", true, false),
        ("attribute:n not_equals ''", false, false),
        ("attribute:n in [a, b]", false, false),
        ("attribute:n in [true, '']", true, false),
        ("attribute:n !in [a, b]", true, false),
        ("attribute:n not_in [a, '']", false, false),
        ("attribute:n =~ .*", true, false),
        ("attribute:n =~ a.*", false, false),
        ("attribute:n =~ a*", true, false),
        ("attribute:n !~ a.*", true, false),
        ("attribute:n !~ .*", false, false),
        // Ordering: "" is not a number, so it compares as text, below every non-empty value.
        ("attribute:n < 5", true, false),
        ("attribute:n <= 5", true, false),
        ("attribute:n > 5", false, false),
        ("attribute:n >= 5", false, false),
        ("attribute:n < a", true, false),
        ("attribute:n >= ''", true, false),
        ("attribute:n <= ''", true, false),
        ("attribute:n > ''", false, false),
        ("not(attribute:n == x)", true, true),
    ];
    for (text, flag, missing) in rows {
        check(text, &[(on(instance("a").flag("n")), flag), (plain(), missing)]);
    }
    // A flag compares like an attribute set to the empty string.
    let empty = with_attr("n", "");
    let flag = on(instance("a").flag("n"));
    for (text, _, _) in rows {
        let e = parse_ok(text);
        assert_eq!(flag.eval(&e), empty.eval(&e), "`{text}`: flag and empty value differ");
    }
    // AWS's capability flags, as ECS registers them.
    check_on(
        &on(instance("a").flag("ecs.capability.efs")),
        &[
            ("attribute:ecs.capability.efs exists", true),
            ("attribute:ecs.capability.efs !exists", false),
            ("attribute:ecs.capability.efs == true", false),
            ("attribute:ecs.capability.efs != true", true),
            ("attribute:ecs.capability.efs =~ .*", true),
        ],
    );
}

/// `task:group` has one value per task: a comparison holds when it holds for any of them.
#[test]
fn task_group_comparisons_hold_when_any_group_satisfies_them() {
    let mixed = in_groups(&["service:web", "database"]);
    check_on(
        &mixed,
        &[
            ("task:group == database", true),
            ("task:group == service:web", true),
            ("task:group == service:api", false),
            ("task:group != database", true),
            ("task:group !in [database]", true),
            ("task:group !in [database, service:web]", false),
            ("task:group =~ data.*", true),
            ("task:group !~ service:.*", true),
            ("not(task:group == database)", false),
        ],
    );
    // With no tasks every comparison but !exists (and boolean not) is false, negative ones included.
    check_on(
        &in_groups(&[]),
        &[
            ("task:group != database", false),
            ("task:group !in [database]", false),
            ("task:group !~ database", false),
            ("task:group !exists", true),
            ("not(task:group == database)", true),
        ],
    );
}

#[test]
fn regex_must_match_the_whole_value() {
    check_on(
        &typed("m5.large", "us-east-1a"),
        &[
            ("attribute:ecs.instance-type =~ m5", false),
            ("attribute:ecs.instance-type =~ large", false),
            ("attribute:ecs.instance-type =~ 5\\.l", false),
            ("attribute:ecs.instance-type =~ m5.*", true),
            ("attribute:ecs.instance-type =~ .*large", true),
            ("attribute:ecs.instance-type =~ m5\\.large", true),
            ("attribute:ecs.instance-type !~ m5", true),
            ("attribute:ecs.instance-type !~ m5.*", false),
            // Alternation inside the anchors: each alternative must match the whole value.
            ("attribute:ecs.instance-type =~ m5|m5.large", true),
            ("attribute:ecs.instance-type =~ large|m5", false),
            ("attribute:ecs.instance-type =~ m5|c5", false),
        ],
    );
}

#[test]
fn regex_digit_word_and_space_classes_are_ascii_only() {
    check(
        "attribute:n =~ \\d+",
        &[
            (with_attr("n", "0123456789"), true),
            (with_attr("n", "\u{0663}"), false), // ARABIC-INDIC DIGIT THREE
            (with_attr("n", "\u{FF15}"), false), // FULLWIDTH DIGIT FIVE
            (with_attr("n", "5x"), false),
        ],
    );
    check(
        "attribute:n =~ \\w+",
        &[
            (with_attr("n", "abc_XYZ_09"), true),
            (with_attr("n", "caf\u{e9}"), false),
        ],
    );
    check(
        "attribute:n =~ a\\sb",
        &[(with_attr("n", "a b"), true), (with_attr("n", "a\u{a0}b"), false)],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Parse errors, with exact 1-based columns
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn unknown_subject_is_reported_at_the_subject() {
    check_errors(&[
        ("foo == bar", 1, "unknown subject \"foo\""),
        ("  foo == bar", 3, "unknown subject"),
        ("attribute: == x", 1, "unknown subject \"attribute:\""),
        ("instanceType == m5.large", 1, "unknown subject"),
        ("attribute:a == b and bogus exists", 22, "unknown subject \"bogus\""),
        ("not(bogus == x)", 5, "unknown subject"),
        ("()", 2, "unknown subject"),
    ]);
}

#[test]
fn unknown_or_missing_operator_is_reported_at_the_operator() {
    check_errors(&[
        ("attribute:a ~= b", 13, "unknown operator \"~=\""),
        ("attribute:a equal b", 13, "unknown operator \"equal\""),
        ("attribute:a === b", 13, "unknown operator"),
        ("attribute:a", 12, "expected an operator after attribute:a"),
        ("task:group", 11, "expected an operator after task:group"),
    ]);
}

#[test]
fn operator_not_valid_for_the_subject_is_reported_at_the_operator() {
    check_errors(&[
        (
            "runningTasksCount =~ 1",
            19,
            "operator \"=~\" is not valid for runningTasksCount",
        ),
        (
            "agentConnected > true",
            16,
            "operator \">\" is not valid for agentConnected",
        ),
        ("task:group > 1", 12, "is not valid for task:group"),
        ("agentVersion in [1.0]", 14, "is not valid for agentVersion"),
        ("registeredAt exists", 14, "is not valid for registeredAt"),
        (
            "ec2InstanceId less_than i-a",
            15,
            "\"less_than\" is not valid for ec2InstanceId",
        ),
    ]);
}

#[test]
fn missing_value_is_reported_where_the_value_should_be() {
    check_errors(&[
        (
            "attribute:a ==",
            15,
            "expected a value, found the end of the expression",
        ),
        ("attribute:a ==   ", 18, "expected a value"),
        ("(attribute:a == )", 17, "expected a value, found \")\""),
        ("attribute:a in []", 17, "expected a value"),
        ("attribute:a in [x, ]", 20, "expected a value"),
        ("attribute:a =~", 15, "expected a value"),
    ]);
}

#[test]
fn unterminated_quote_is_reported_at_the_opening_quote() {
    check_errors(&[
        ("attribute:a == 'prod", 16, "unterminated ' quote"),
        ("attribute:a == \"prod", 16, "unterminated \" quote"),
        ("attribute:a in [\"x, y]", 17, "unterminated \" quote"),
        ("attribute:a == 'prod\"", 16, "unterminated ' quote"),
    ]);
}

#[test]
fn unclosed_parenthesis_is_reported_at_the_end() {
    check_errors(&[
        ("(attribute:a == b", 18, "expected ')', found the end of the expression"),
        ("not(attribute:a == b", 21, "expected ')'"),
        ("((attribute:a == b)", 20, "expected ')'"),
        ("(attribute:a == b x", 19, "expected ')', found \"x\""),
    ]);
}

#[test]
fn unclosed_or_missing_list_is_reported() {
    check_errors(&[
        ("attribute:a in [x, y", 21, "expected ']' to close the list"),
        ("attribute:a in (x, y", 21, "expected ')' to close the list"),
        ("attribute:a in x", 16, "expected a list"),
        ("attribute:a in", 15, "expected a list"),
        ("attribute:a in [x y]", 19, "expected ',' or ']' in the list"),
        ("attribute:a in [x, y)", 21, "expected ',' or ']'"),
    ]);
}

#[test]
fn bad_date_for_registered_at_is_reported_at_the_value() {
    check_errors(&[
        ("registeredAt < 2018-13-45", 16, "\"2018-13-45\" is not a date"),
        ("registeredAt < yesterday", 16, "is not a date"),
        ("registeredAt < 2018/02/13", 16, "is not a date"),
        ("registeredAt < 13-02-2018", 16, "is not a date"),
        ("registeredAt == 2018-02-13T25:00:00Z", 17, "is not a date"),
        ("registeredAt == 1518480000", 17, "is not a date"),
    ]);
}

#[test]
fn non_number_for_running_tasks_count_is_reported_at_the_value() {
    check_errors(&[
        ("runningTasksCount == one", 22, "\"one\" is not a whole number"),
        ("runningTasksCount > 1.5", 21, "\"1.5\" is not a whole number"),
        ("runningTasksCount < ''", 21, "is not a whole number"),
    ]);
}

#[test]
fn empty_expression_is_an_error() {
    check_errors(&[("", 1, "empty expression"), ("   ", 4, "empty expression")]);
}

#[test]
fn trailing_or_dangling_text_is_reported_where_it_starts() {
    check_errors(&[
        ("attribute:a == b c", 18, "unexpected \"c\""),
        ("attribute:a == b)", 17, "unexpected \")\""),
        ("attribute:a exists x", 20, "unexpected \"x\""),
        (
            "attribute:a == b and",
            21,
            "expected a comparison, found the end of the expression",
        ),
        ("attribute:a == b or ", 21, "expected a comparison"),
        ("not", 4, "expected a comparison"),
        ("!", 2, "expected a comparison"),
    ]);
}

#[test]
fn columns_count_characters_not_bytes() {
    check_errors(&[
        ("attribute:zon\u{e9} == a b", 21, "unexpected \"b\""),
        ("attribute:\u{e9}\u{e9} == 'x", 17, "unterminated"),
    ]);
}

#[test]
fn invalid_regex_is_reported_at_the_pattern() {
    check_errors(&[
        ("attribute:a =~ [a-", 16, "invalid regular expression"),
        ("attribute:a =~ *", 16, "invalid regular expression"),
        ("task:group not_matches 'a{2'", 24, "invalid regular expression"),
    ]);
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Java-only regular expression constructs are rejected, naming the construct
// ---------------------------------------------------------------------------------------------------------------

/// The construct names the scanner reports. Look-ahead and look-behind, positive or negative, are all
/// "look-around".
const LOOK_AROUND: &str = "look-around";
const ATOMIC: &str = "atomic groups";
const POSSESSIVE: &str = "possessive quantifiers";
const BACK_REFERENCES: &str = "back-references";
const QUOTING: &str = "\\Q…\\E quoting";
const JAVA_CLASSES: &str = "Java character classes (\\p{java…})";

#[test]
fn java_only_regex_features_are_rejected_naming_the_feature() {
    let rows = [
        ("(?=m5).*", LOOK_AROUND),
        ("(?!m5).*", LOOK_AROUND),
        ("m(?<=m)5.*", LOOK_AROUND),
        ("m(?<!c)5.*", LOOK_AROUND),
        ("a*+", POSSESSIVE),
        ("m5.*+", POSSESSIVE),
        ("m5.++", POSSESSIVE),
        ("m5.?+", POSSESSIVE),
        ("m{1}+5.*", POSSESSIVE),
        ("m{1,2}+5.*", POSSESSIVE),
        // A quantifier after an escape or a class is still a quantifier.
        ("m\\d++", POSSESSIVE),
        ("[mc]*+5.*", POSSESSIVE),
        ("(?>m5).*", ATOMIC),
        ("(a)\\1", BACK_REFERENCES),
        ("(m)(5)\\2.*", BACK_REFERENCES),
        ("(m)[5]\\1", BACK_REFERENCES),
        ("\\Qm5.large\\E", QUOTING),
        ("\\p{javaLowerCase}", JAVA_CLASSES),
        ("\\P{javaLowerCase}.*", JAVA_CLASSES),
        ("[\\p{javaUpperCase}\\d]*", JAVA_CLASSES),
        // An escaped backslash does not escape what follows it.
        ("C:\\\\(?=x).*", LOOK_AROUND),
        ("C:\\\\\\Qx", QUOTING),
        // The first construct in the pattern is the one named.
        ("(?>a)\\1", ATOMIC),
        ("(a)\\1(?>a)", BACK_REFERENCES),
    ];
    for (pattern, feature) in rows {
        for text in [
            format!("attribute:ecs.instance-type =~ {pattern}"),
            format!("attribute:ecs.instance-type not_matches '{pattern}'"),
        ] {
            let e = parse_err(&text);
            let at = text.find(['\'']).unwrap_or(31) + 1;
            assert_eq!(e.column, at, "`{text}`: {e}");
            assert_eq!(
                e.message,
                format!("regular expression {pattern:?} uses {feature}, a Java feature this engine cannot evaluate"),
                "`{text}`"
            );
        }
    }
    check_errors(&[("task:group =~ (?=service:).*", 15, "uses look-around, a Java feature")]);
}

/// The scanner reads the pattern as a regex engine does: escaped metacharacters, metacharacters inside a character
/// class (nested, negated, or with a leading literal `]`), lazy quantifiers and named groups are standard regex
/// syntax that Java and the `regex` crate both accept with the same meaning.
#[test]
fn standard_regex_syntax_that_resembles_java_only_features_is_accepted() {
    // (pattern, values it matches, values it does not)
    let rows: &[(&str, &[&str], &[&str])] = &[
        ("\\(?=x\\)", &["(=x)", "=x)"], &["x", "(=x"]),
        ("a\\*+", &["a*", "a**"], &["a", "a*+"]),
        ("[]*+]x", &["]x", "*x", "+x"], &["-x", "x"]),
        ("[^]*+]x", &["ax", "-x"], &["]x", "*x", "+x"]),
        ("[a[*+]]x", &["ax", "*x", "+x"], &["bx"]),
        ("[(?=]+", &["(?=", "?"], &["a"]),
        ("a+?b", &["ab", "aab"], &["b"]),
        ("a??b", &["ab", "b"], &["aab"]),
        ("a{1,2}?b", &["ab", "aab"], &["aaab"]),
        ("(?:ab)+", &["ab", "abab"], &["aba"]),
        ("(?<g>m5).*", &["m5.large"], &["c5.large"]),
        ("(?i)m5.*", &["M5.LARGE"], &["c5"]),
        ("\\x{41}{2}", &["AA"], &["A", "AAA"]),
        ("[\\x{41}b]+", &["AbA"], &["c"]),
    ];
    for (pattern, matching, other) in rows {
        let text = format!("attribute:n =~ '{pattern}'");
        let mut want: Vec<(On, bool)> = matching.iter().map(|v| (with_attr("n", v), true)).collect();
        want.extend(other.iter().map(|v| (with_attr("n", v), false)));
        check(&text, &want);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Regex arguments containing parentheses parse as one value
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn regex_with_parentheses_is_one_value() {
    let rows = [
        // (expression, on m5.large, on c5.xlarge, on t3.micro)
        ("attribute:ecs.instance-type =~ (m5|c5).*", true, true, false),
        ("attribute:ecs.instance-type !~ (m5|c5).*", false, false, true),
        ("not(attribute:ecs.instance-type =~ (m5|c5).*)", false, false, true),
        ("not (attribute:ecs.instance-type =~ (m5|c5).* )", false, false, true),
        (
            "!(attribute:ecs.instance-type matches (m5|c5)\\.(large|xlarge))",
            false,
            false,
            true,
        ),
        (
            "(attribute:ecs.instance-type =~ ((m|c)5)\\..*) or attribute:b exists",
            true,
            true,
            false,
        ),
        (
            "attribute:ecs.instance-type =~ [mc]5\\.(x?large) and attribute:ecs.os-type == linux",
            true,
            true,
            false,
        ),
        (
            "(attribute:ecs.os-type == linux and attribute:ecs.instance-type =~ (t3).*)",
            false,
            false,
            true,
        ),
    ];
    for (text, m5, c5, t3) in rows {
        check(
            text,
            &[
                (typed("m5.large", "us-east-1a"), m5),
                (typed("c5.xlarge", "us-east-1a"), c5),
                (typed("t3.micro", "us-east-1a"), t3),
            ],
        );
    }
    check(
        "not(task:group =~ service:(web|api))",
        &[(in_groups(&["service:web"]), false), (in_groups(&["service:db"]), true)],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Lexing: subjects end at an operator character, operators are runs of =!<>~ or words, values
// ---------------------------------------------------------------------------------------------------------------

/// The subject ends at any of `=!<>~`, so no blank is needed around a symbolic operator: each compact form means
/// what the spaced one does.
#[test]
fn subject_and_symbolic_operator_need_no_blank_between_them() {
    let pairs = [
        ("attribute:a==1", "attribute:a == 1"),
        ("attribute:a!=1", "attribute:a != 1"),
        ("attribute:a>1", "attribute:a > 1"),
        ("attribute:a>=1", "attribute:a >= 1"),
        ("attribute:a<1", "attribute:a < 1"),
        ("attribute:a<=1", "attribute:a <= 1"),
        ("attribute:a=~1|2", "attribute:a =~ 1|2"),
        ("attribute:a!~1", "attribute:a !~ 1"),
        ("attribute:a!exists", "attribute:a !exists"),
        ("attribute:a!in[1,2]", "attribute:a !in [1, 2]"),
        ("attribute:a !in[1,2]", "attribute:a !in [1, 2]"),
        ("attribute:a in(0,1)", "attribute:a in (0, 1)"),
        ("attribute:a== 1", "attribute:a == 1"),
        ("attribute:a ==1", "attribute:a == 1"),
        ("(attribute:a==1)", "(attribute:a == 1)"),
        ("not(attribute:a==1)", "not(attribute:a == 1)"),
        ("!(attribute:a!=1)", "!(attribute:a != 1)"),
        (
            "attribute:a==1 and attribute:b!=1",
            "attribute:a == 1 and attribute:b != 1",
        ),
        (
            "(attribute:a==1)or(attribute:b==1)",
            "(attribute:a == 1) or (attribute:b == 1)",
        ),
    ];
    let instances = [
        abc(false, false, false),
        abc(true, false, false),
        abc(false, true, false),
        abc(true, true, true),
        on(instance("a").attr("a", "2").attr("b", "1")),
        on(instance("a").flag("a")),
        plain(),
    ];
    for (compact, spaced) in pairs {
        let (c, s) = (parse_ok(compact), parse_ok(spaced));
        for i in &instances {
            assert_eq!(i.eval(&c), i.eval(&s), "`{compact}` and `{spaced}` on {i:?}");
        }
    }
    check_on(
        &abc(true, false, false),
        &[
            ("(attribute:a==1)", true),
            ("attribute:a!=1", false),
            ("attribute:b!=1", true),
            ("attribute:a>=1", true),
            ("attribute:b<1", true),
            ("attribute:a!exists", false),
            ("attribute:z!exists", true),
            ("attribute:a!in[0,2]", true),
            ("attribute:a=~[01]", true),
            ("attribute:a!~1", false),
        ],
    );
    check(
        "task:group==service:web",
        &[
            (in_groups(&["service:web"]), true),
            (in_groups(&["service:api"]), false),
        ],
    );
    check(
        "runningTasksCount>=1",
        &[(plain().running(0), false), (plain().running(1), true)],
    );
    check(
        "agentVersion<1.14.5",
        &[(on(instance("a").agent_version("1.9.0")), true), (plain(), false)],
    );
    match parse_ok("attribute:a!in[1,2]") {
        Expr::Compare {
            subject: Subject::Attribute(name),
            op: Op::NotIn,
            arg: Arg::List(items),
        } => {
            assert_eq!(name, "a");
            assert_eq!(items, ["1", "2"]);
        }
        other => panic!("`attribute:a!in[1,2]` parsed as {other:?}"),
    }
}

/// An operator is a whole run of `=!<>~` (or `!` and the letters after it, or a word), so a run that is not an
/// operator is reported whole, at its start; and an attribute name cannot contain `=!<>~`.
#[test]
fn operator_runs_that_are_not_operators_are_reported_whole() {
    check_errors(&[
        ("attribute:a=1", 12, "unknown operator \"=\" after attribute:a"),
        ("attribute:a===1", 12, "unknown operator \"===\""),
        ("attribute:a<>1", 12, "unknown operator \"<>\""),
        ("attribute:a=!1", 12, "unknown operator \"=!\""),
        ("attribute:a!==1", 12, "unknown operator \"!==\""),
        ("attribute:a~1", 12, "unknown operator \"~\""),
        ("attribute:a !inside [1]", 13, "unknown operator \"!inside\""),
        ("attribute:a!b == 1", 12, "unknown operator \"!b\" after attribute:a"),
        // `attribute:a<b` is `attribute:a < b`; what follows is left over.
        ("attribute:a<b == 1", 15, "unexpected \"==\""),
        ("attribute:a 5", 13, "expected an operator after attribute:a"),
        ("foo==bar", 1, "unknown subject \"foo\""),
        ("attribute:==1", 1, "unknown subject \"attribute:\""),
        ("==1", 1, "unknown subject \"\""),
    ]);
}

/// A comma ends a bare value only inside an `in [...]` list; `{`/`}` nest like brackets inside a bare value, and a
/// closing one the value did not open ends it.
#[test]
fn commas_and_braces_in_bare_values() {
    check(
        "attribute:n == a,b",
        &[(with_attr("n", "a,b"), true), (with_attr("n", "a"), false)],
    );
    check(
        "attribute:n != a,b",
        &[(with_attr("n", "a,b"), false), (with_attr("n", "a"), true)],
    );
    check(
        "attribute:n in [a,b]",
        &[
            (with_attr("n", "a"), true),
            (with_attr("n", "b"), true),
            (with_attr("n", "a,b"), false),
        ],
    );
    check(
        "attribute:n in [x{1,2}, y]",
        &[
            (with_attr("n", "x{1,2}"), true),
            (with_attr("n", "y"), true),
            (with_attr("n", "x{1"), false),
        ],
    );
    check(
        "attribute:n in ((a,b), c)",
        &[
            (with_attr("n", "(a,b)"), true),
            (with_attr("n", "c"), true),
            (with_attr("n", "a"), false),
        ],
    );
    match parse_ok("attribute:n in [a{1,2}b, {c,d}, e]") {
        Expr::Compare {
            arg: Arg::List(items), ..
        } => assert_eq!(items, ["a{1,2}b", "{c,d}", "e"]),
        other => panic!("parsed as {other:?}"),
    }
    check(
        "(attribute:n =~ a{1,2})",
        &[(with_attr("n", "aa"), true), (with_attr("n", "aaa"), false)],
    );
    check(
        "attribute:n == {a}",
        &[(with_attr("n", "{a}"), true), (with_attr("n", "a"), false)],
    );
    check_errors(&[
        ("attribute:n == a}", 17, "unexpected \"}\""),
        ("attribute:n == }", 16, "expected a value, found \"}\""),
        ("attribute:n in [a}, b]", 18, "expected ',' or ']' in the list"),
        ("attribute:n == a, b", 19, "unexpected \"b\""),
    ]);
}

// ---------------------------------------------------------------------------------------------------------------
// 8. is_static
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn is_static_is_false_exactly_when_task_group_or_running_tasks_count_appear() {
    let rows = [
        ("attribute:a == b", true),
        ("agentConnected == true", true),
        ("agentVersion < 1.14.5", true),
        ("ec2InstanceId in [i-a]", true),
        ("registeredAt < 2018-02-13", true),
        ("attribute:task:group == x", true),
        ("attribute:runningTasksCount == 1", true),
        (
            "attribute:a exists or not(attribute:b exists and agentConnected == true)",
            true,
        ),
        ("task:group == x", false),
        ("task:group exists", false),
        ("runningTasksCount == 1", false),
        ("not(task:group == database)", false),
        ("attribute:a == b and task:group exists", false),
        ("(attribute:a exists or runningTasksCount > 2)", false),
        (
            "attribute:a exists and (attribute:b exists or !(runningTasksCount == 0))",
            false,
        ),
    ];
    for (text, want) in rows {
        assert_eq!(parse_ok(text).is_static(), want, "`{text}`");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Bugs found by these tests, fixed in cql.rs (regression tests)
// ---------------------------------------------------------------------------------------------------------------

/// Outside a list a comma is part of a bare value (the `value` docs: a comma ends it only "inside a list"), so a
/// Java counted repetition `{1,2}` must parse.
#[test]
fn regex_with_a_counted_range_parses_outside_a_list() {
    check(
        "attribute:ecs.instance-type =~ m\\d{1,2}\\..*",
        &[
            (typed("m5.large", "us-east-1a"), true),
            (typed("m16.large", "us-east-1a"), true),
            (typed("m100.large", "us-east-1a"), false),
        ],
    );
}

/// Java rejects `a)|(b` (unmatched parenthesis). Here a quoted pattern is pasted into `^(?:…)$`, so it closes
/// the wrapper group early and becomes `^(?:a)|(b)$`: "starts with a, or ends with b", not a whole-value match.
#[test]
fn quoted_regex_with_unbalanced_parentheses_is_rejected() {
    let e = parse_err("attribute:n =~ 'a)|(b'");
    assert_eq!(e.column, 16, "{e}");
    assert!(e.message.contains("regular expression"), "{e}");
}

/// The Java-only checks used to look for substrings, so standard constructs that contain them were rejected too:
/// `\++` (one or more literal `+`), `[*+]` (a class), `\\1` (a literal backslash then `1`), `\\Q` (a literal
/// backslash then `Q`). Java and the `regex` crate both accept all four with the same meaning.
#[test]
fn escaped_or_bracketed_metacharacters_are_not_java_only_features() {
    check(
        "attribute:n =~ a\\++",
        &[(with_attr("n", "a++"), true), (with_attr("n", "a"), false)],
    );
    check(
        "attribute:n =~ [*+]x",
        &[(with_attr("n", "+x"), true), (with_attr("n", "-x"), false)],
    );
    check("attribute:n =~ C:\\\\1", &[(with_attr("n", "C:\\1"), true)]);
    check("attribute:n =~ C:\\\\Q", &[(with_attr("n", "C:\\Q"), true)]);
}

/// `\p{javaLowerCase}+` is a Java character class with a greedy `+`, not a possessive quantifier; the old `}+`
/// substring check (meant for `a{2}+`) ran first and named the wrong construct.
#[test]
fn java_character_class_with_a_quantifier_is_named_as_a_character_class() {
    check_errors(&[
        (
            "attribute:n =~ \\p{javaLowerCase}+",
            16,
            "uses Java character classes (\\p{java…}),",
        ),
        (
            "attribute:n =~ \\p{javaLowerCase}{2}+",
            16,
            "uses Java character classes (\\p{java…}),",
        ),
        (
            "attribute:n =~ a{2}+\\p{javaLowerCase}",
            16,
            "uses possessive quantifiers,",
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------------------------
// Bugs found by these tests, fixed in cql.rs
// ---------------------------------------------------------------------------------------------------------------

/// `}+` is a possessive quantifier only when the `}` closes a counted repetition (`a{2}+`). The scanner skips just
/// the two characters of an escape, so the `}` closing a braced escape (`\x{41}`, `\p{Lu}`) or an escaped `\{`
/// followed by a literal `}` is taken for the end of a repetition. Java reads `\x{41}+` as one or more `A` and
/// `a\{2}+` as `a{2` then one or more `}`; the `regex` crate accepts both with the same meaning.
#[test]
fn braced_escape_with_a_greedy_quantifier_is_not_possessive() {
    check(
        "attribute:n =~ \\x{41}+",
        &[(with_attr("n", "AAA"), true), (with_attr("n", "B"), false)],
    );
    check(
        "attribute:n =~ a\\{2}+",
        &[(with_attr("n", "a{2}}"), true), (with_attr("n", "a{2"), false)],
    );
    // `\p{Lu}` is standard in both engines: one or more upper-case letters, Unicode ones included, as in Java.
    check(
        "attribute:n =~ \\p{Lu}+",
        &[(with_attr("n", "ABÉ"), true), (with_attr("n", "Ab"), false)],
    );
}

/// `-0` and `0` are plain decimals and equal numerically (the comparison must not use `f64::total_cmp`, which puts
/// `-0.0` below `0.0`).
#[test]
fn negative_zero_equals_zero_in_attribute_ordering() {
    use N::*;
    check_n(
        "attribute:n >= 0",
        &[
            (Value("-0"), true),
            (Value("-0.0"), true),
            (Value("0"), true),
            (Value("-1"), false),
        ],
    );
    check_n(
        "attribute:n <= -0",
        &[
            (Value("0"), true),
            (Value("0.0"), true),
            (Value("-0"), true),
            (Value("1"), false),
        ],
    );
    check_n("attribute:n > -0", &[(Value("0"), false), (Value("0.1"), true)]);
}
