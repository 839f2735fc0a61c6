//! Policies from git (docs/operations.md, "Policies from git"): a git source followed through `git http-backend`
//! on 127.0.0.1 (smart HTTP), and `file://` as an extra case. First at library level (what a look at the source
//! finds), then through the controller's processes (`run`, `once`, `status`).

use crate::common;

use common::git::{GitServer, Repo};
use ecs_rebalancer::source::credential::{Credential, Token};
use ecs_rebalancer::source::{Location, PolicySource, Update};

use crate::production::POLICY;

/// A repository whose `policies/prod.yaml` is [`POLICY`], served over smart HTTP (requiring `token`, if any).
struct Served {
    repo: Repo,
    server: GitServer,
    /// The first commit.
    first: String,
    /// Last, so that it is removed after the server stopped.
    _dir: tempfile::TempDir,
}

fn served(token: Option<&str>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    let first = repo.commit(&[("policies/prod.yaml", POLICY)], "first");
    let server = GitServer::start(&repo.root, token);
    Served {
        repo,
        server,
        first,
        _dir: dir,
    }
}

impl Served {
    /// Commits `policies/prod.yaml` as [`POLICY`] with `from` replaced by `to`; the commit id.
    fn edit(&self, from: &str, to: &str) -> String {
        self.repo.commit(
            &[("policies/prod.yaml", &POLICY.replace(from, to))],
            &format!("{from} -> {to}"),
        )
    }

    /// The source `ref=main&path=policies`, fetched with `credential`.
    fn source(&self, credential: Credential) -> PolicySource {
        source(&self.server.source("ref=main&path=policies/"), credential)
    }
}

/// A git source at `url`, fetched with `credential`.
fn source(url: &str, credential: Credential) -> PolicySource {
    let Location::Git(git) = url.parse::<Location>().unwrap() else {
        panic!("{url} is not a git source")
    };
    PolicySource::git(git, "prod", credential, std::time::Duration::from_secs(3600)).unwrap()
}

fn revision(s: &PolicySource) -> &str {
    &s.current().expect("a policy in force").revision
}

fn trigger(s: &PolicySource) -> f64 {
    s.current().expect("a policy in force").threshold.trigger
}

#[tokio::test]
async fn a_commit_is_applied_and_one_that_changes_no_policy_file_reloads_nothing() {
    let g = served(None);
    let mut s = g.source(Credential::None);
    assert!(s.current().is_none(), "nothing before the first fetch");

    assert_eq!(s.fetch_now().await, Some(Update::Applied));
    assert_eq!(revision(&s), g.first);
    assert_eq!(s.current().unwrap().name, "prod");
    assert_eq!(s.record().unwrap().source, g.server.source("ref=main&path=policies"));

    g.repo.commit(&[("README.md", "how we balance\n")], "docs only");
    assert_eq!(s.fetch_now().await, None, "the policy files did not change");
    assert_eq!(
        revision(&s),
        g.first,
        "the revision in force is the one that changed the policy"
    );

    let third = g.edit("trigger: 0.2", "trigger: 0.3");
    assert_eq!(s.fetch_now().await, Some(Update::Applied));
    assert_eq!((revision(&s), trigger(&s)), (third.as_str(), 0.3));
}

#[tokio::test]
async fn an_invalid_commit_is_refused_once_with_every_error_and_the_last_good_stays() {
    let g = served(None);
    let mut s = g.source(Credential::None);
    s.fetch_now().await;

    let broken = POLICY
        .replace("metric:", "metrik:")
        .replace("interval: 10s", "interval: soon");
    let bad = g.repo.commit(&[("policies/prod.yaml", &broken)], "typo");
    let Some(Update::Invalid {
        revision: refused,
        errors,
    }) = s.fetch_now().await
    else {
        panic!("the typo is refused")
    };
    assert_eq!(refused, bad);
    let all = errors.join("\n");
    assert!(
        all.contains("policies/prod.yaml:6:3") && all.contains("metrik"),
        "{all}"
    );
    assert!(
        all.contains("policies/prod.yaml:9:"),
        "every error, not the first: {all}"
    );
    assert_eq!(revision(&s), g.first, "the last good revision stays in force");
    let rejected = s.record().unwrap().rejected.expect("recorded");
    assert_eq!(
        (rejected.revision.as_str(), rejected.errors.len()),
        (bad.as_str(), errors.len())
    );
    assert_eq!(s.fetch_now().await, None, "refused once, not at every poll");

    // Reverting the bad commit brings back the files in force: nothing to reload, and nothing refused any more.
    g.repo.commit(&[("policies/prod.yaml", POLICY)], "revert typo");
    assert_eq!(s.fetch_now().await, None);
    assert_eq!(revision(&s), g.first);
    assert!(s.record().unwrap().rejected.is_none(), "the revert clears the refusal");

    let fixed = g.edit("mode: enforce", "mode: dry-run");
    assert_eq!(s.fetch_now().await, Some(Update::Applied));
    assert_eq!(revision(&s), fixed);
    assert!(
        s.record().unwrap().rejected.is_none(),
        "a good revision clears the refusal"
    );
}

#[tokio::test]
async fn a_force_push_that_rewrites_history_is_followed() {
    let g = served(None);
    let mut s = g.source(Credential::None);
    g.edit("trigger: 0.2", "trigger: 0.4");
    assert_eq!(s.fetch_now().await, Some(Update::Applied));

    g.repo.reset_to(&g.first);
    let rewritten = g.edit("trigger: 0.2", "trigger: 0.25");
    assert_eq!(s.fetch_now().await, Some(Update::Applied));
    assert_eq!((revision(&s), trigger(&s)), (rewritten.as_str(), 0.25));
}

#[tokio::test]
async fn an_unreachable_server_or_a_missing_ref_keeps_the_last_good_revision() {
    let mut g = served(None);
    let url = g.server.source("ref=main&path=policies");
    let mut s = source(&url, Credential::None);
    s.fetch_now().await;

    g.server.stop();
    g.edit("trigger: 0.2", "trigger: 0.3");
    let Some(Update::FetchFailed(why)) = s.fetch_now().await else {
        panic!("a stopped server is a failed fetch")
    };
    assert!(why.contains(&url), "names the source: {why}");
    assert_eq!(revision(&s), g.first);

    let server = GitServer::start(&g.repo.root, None);
    let mut missing = source(&server.source("ref=no-such-branch"), Credential::None);
    let Some(Update::FetchFailed(why)) = missing.fetch_now().await else {
        panic!("a missing ref is a failed fetch")
    };
    assert!(why.contains("no-such-branch"), "{why}");
    assert!(missing.current().is_none());
}

#[tokio::test]
async fn a_path_the_commit_does_not_hold_is_an_invalid_revision() {
    let g = served(None);
    let mut s = source(&g.server.source("path=elsewhere"), Credential::None);
    let Some(Update::Invalid { revision, errors }) = s.fetch_now().await else {
        panic!("no policy folder")
    };
    assert_eq!(revision, g.first, "the remote's HEAD is followed when no ref is named");
    assert!(errors[0].starts_with("elsewhere: no such folder or file"), "{errors:?}");
}

#[tokio::test]
async fn the_token_is_sent_as_basic_authentication_and_never_appears_in_an_error() {
    const TOKEN: &str = "glpat-s3cr3t-T0KEN";
    let g = served(Some(TOKEN));
    let mut s = g.source(Credential::Env(Token::new(TOKEN)));
    assert_eq!(s.fetch_now().await, Some(Update::Applied));
    assert_eq!(revision(&s), g.first);

    for credential in [Credential::None, Credential::Env(Token::new("wrong-token"))] {
        let mut s = g.source(credential);
        let Some(Update::FetchFailed(why)) = s.fetch_now().await else {
            panic!("refused without the token")
        };
        assert!(!why.contains(TOKEN) && !why.contains("wrong-token"), "{why}");
        assert!(s.current().is_none());
    }
    assert!(
        g.server.refused() >= 2,
        "the server refused the requests without the token"
    );
}

#[tokio::test]
async fn a_file_url_is_a_source_too() {
    let g = served(None);
    let url = format!("git+file://{}?ref=main&path=policies", g.repo.bare().display());
    let mut s = source(&url, Credential::None);
    assert_eq!(s.fetch_now().await, Some(Update::Applied));
    assert_eq!(revision(&s), g.first);
}

#[tokio::test]
async fn a_token_is_never_sent_in_clear_text_across_a_network() {
    let Location::Git(git) = "git+http://git.example.com/ops/policies.git"
        .parse::<Location>()
        .unwrap()
    else {
        unreachable!()
    };
    let refused = PolicySource::git(
        git,
        "prod",
        Credential::Env(Token::new("t")),
        std::time::Duration::from_secs(60),
    );
    let e = refused.err().expect("refused").to_string();
    assert!(e.contains("https only"), "{e}");
}

// ---------------------------------------------------------------------------------------------------------------
// The controller processes: `run`, `once` and `status` with a git source, ECS on `twin serve`, the ledger on moto.
// ---------------------------------------------------------------------------------------------------------------

mod live {
    use std::path::Path;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::common::git::{GitServer, Repo};
    use super::common::{self, moto, TwinServer};
    use crate::production::{
        command, controller_args_with, ledger_command, records, table, text, until, write_fixture, Lines, POLICY,
    };
    use ecs_rebalancer::ledger::Ledger as _;

    const TOKEN: &str = "ghp_n3ver-Pr1nted-T0ken";

    /// `status -o json`, parsed.
    fn status(dir: &Path, table: &str) -> Value {
        let out = ledger_command(
            dir,
            &moto::endpoint(),
            &["status", "--cluster", "prod", "--table", table, "-o", "json"],
        )
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `status` as a person reads it.
    fn status_table(dir: &Path, table: &str) -> String {
        let out = ledger_command(
            dir,
            &moto::endpoint(),
            &["status", "--cluster", "prod", "--table", table],
        )
        .output()
        .unwrap();
        text(&out.stdout)
    }

    /// Waits until `status -o json` satisfies `holds`.
    async fn status_until(dir: &Path, table: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = status(dir, table);
            if holds(&s) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "{what}: {s:#}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn spawn_run(dir: &Path, twin: &TwinServer, source: &str, table: &str, extra: &[&str]) -> Child {
        command(
            dir,
            twin,
            &moto::endpoint(),
            &controller_args_with("run", source, table, extra),
        )
        .env("ECS_REBALANCER_POLICY_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    }

    /// `run` on `source`, polling every `poll`, once it serves: the process, its log lines, and its `--listen` address.
    async fn serving(dir: &Path, twin: &TwinServer, source: &str, table: &str, poll: &str) -> (Child, Lines, String) {
        let mut child = spawn_run(dir, twin, source, table, &["--policy-poll", poll]);
        let lines = Lines::follow(&mut child);
        let serving = lines
            .wait_for("serving /metrics, /healthz, /readyz", Duration::from_secs(10))
            .await;
        let addr = serving["addr"].as_str().unwrap().to_owned();
        (child, lines, addr)
    }

    /// Everything the table holds, as text.
    async fn table_dump(table: &str) -> String {
        let client = aws_sdk_dynamodb::Client::new(&ecs_rebalancer::aws::local(&moto::endpoint()));
        let items = client.scan().table_name(table).send().await.unwrap();
        format!("{:?}", items.items())
    }

    /// `run` follows the branch: a commit is applied within one poll and every action names its revision; an
    /// invalid commit is refused with its errors in `status` while the controller goes on under the last good one;
    /// a force-push is followed; an unreachable server keeps the last good revision; the token, given through the
    /// environment, is used and never printed, exported or recorded.
    #[tokio::test]
    async fn run_follows_the_branch_and_every_action_names_its_revision() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let repo = Repo::new(dir.path());
        let first = repo.commit(&[("policies/prod.yaml", POLICY)], "first");
        let mut server = GitServer::start(&repo.root, Some(TOKEN));
        let source = server.source("ref=main&path=policies/");
        let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "60"]);
        let (table, ledger) = table().await;
        let (mut child, lines, addr) = serving(dir.path(), &twin, &source, &table, "1s").await;

        let applied = lines.wait_for("policy reloaded", Duration::from_secs(10)).await;
        assert_eq!(applied["revision"], first.as_str());
        until(&ledger, Duration::from_secs(20), "two actions", |r| r.len() >= 2).await;
        for r in records(&ledger).await {
            assert_eq!(
                (r.policy_revision.as_str(), r.policy_name.as_str()),
                (first.as_str(), "prod"),
                "{}",
                r.id
            );
        }
        let lease = ledger.read_lease("prod").await.unwrap().unwrap();
        assert_eq!(lease.policy.as_ref().map(|p| p.revision.as_str()), Some(first.as_str()));
        let (_, metrics) = common::get(&addr, "/metrics").await;
        let info = format!("ecs_rebalancer_policy_info{{revision=\"{first}\",name=\"prod\"}} 1");
        assert!(metrics.contains(&info), "{info} in\n{metrics}");

        // An invalid commit: refused with its errors, the last good revision stays, cycles go on.
        let bad = repo.commit(&[("policies/prod.yaml", &POLICY.replace("metric:", "metrik:"))], "typo");
        let invalid = lines
            .wait_for(
                "policy edit is invalid; keeping the last good policy",
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(invalid["revision"], bad.as_str());
        assert!(
            invalid["error"].as_str().unwrap().contains("policies/prod.yaml:6:3"),
            "{invalid}"
        );
        let s = status_until(dir.path(), &table, "the refusal in status", |s| {
            s["policy"]["rejected"]["revision"] == bad.as_str()
        })
        .await;
        assert_eq!(s["policy"]["revision"], first.as_str());
        assert!(s["policy"]["rejected"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("policies/prod.yaml:6:3"));
        assert!(s["recent"]
            .as_array()
            .into_iter()
            .chain(s["inFlight"].as_array())
            .flatten()
            .all(|a| a["policyRevision"] == first.as_str()));
        let table_text = status_table(dir.path(), &table);
        assert!(
            table_text.contains(&format!("policy: prod at revision {first}"))
                && table_text.contains(&format!("revision {bad} is invalid"))
                && table_text.contains("policies/prod.yaml:6:3"),
            "{table_text}"
        );
        let cycles = |m: &str| {
            m.lines()
                .find(|l| l.starts_with("ecs_rebalancer_cycles_total{cluster=\"prod\",result=\"ok\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let before = cycles(&common::get(&addr, "/metrics").await.1);
        let start = Instant::now();
        while cycles(&common::get(&addr, "/metrics").await.1) <= before {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "cycles go on under the last good revision"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (_, metrics) = common::get(&addr, "/metrics").await;
        assert!(
            metrics.contains("ecs_rebalancer_policy_reloads_total{result=\"invalid\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains(&info), "still the first revision: {metrics}");

        // A force-push that rewrites history (the typo is gone from the branch) is followed.
        repo.reset_to(&first);
        let rewritten = repo.commit(
            &[("policies/prod.yaml", &POLICY.replace("trigger: 0.2", "trigger: 0.15"))],
            "redo",
        );
        lines
            .wait_for_where("policy reloaded", Duration::from_secs(10), |l| {
                l["revision"] == rewritten.as_str()
            })
            .await;
        status_until(dir.path(), &table, "the rewritten revision on the lease", |s| {
            s["policy"]["revision"] == rewritten.as_str() && s["policy"]["rejected"].is_null()
        })
        .await;

        // The server goes away: the last good revision stays, counted apart from invalid revisions.
        server.stop();
        let failed = lines
            .wait_for(
                "fetching the policy failed; keeping the last good policy",
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(failed["in_force"], rewritten.as_str());
        let (_, metrics) = common::get(&addr, "/metrics").await;
        assert!(
            metrics.contains("ecs_rebalancer_policy_reloads_total{result=\"fetch-failed\"}"),
            "{metrics}"
        );
        assert_eq!(
            common::get(&addr, "/readyz").await.0,
            200,
            "a good revision is in force"
        );

        common::sigterm(&child);
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let everything = [
            lines.all(),
            metrics,
            status(dir.path(), &table).to_string(),
            status_table(dir.path(), &table),
            table_dump(&table).await,
        ];
        for (what, text) in ["logs", "metrics", "status -o json", "status", "the table"]
            .iter()
            .zip(&everything)
        {
            assert!(!text.contains(TOKEN), "the token appears in {what}");
        }
    }

    /// `once` with cron semantics: fetch, validate, one cycle, exit; the token read from a Secrets Manager secret.
    /// A source that gives no good revision (an invalid tip, an unreachable server) acts on nothing and exits 2.
    #[tokio::test]
    async fn once_fetches_validates_runs_one_cycle_and_exits_and_without_a_good_revision_exits_2() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let repo = Repo::new(dir.path());
        let first = repo.commit(&[("policies/prod.yaml", POLICY)], "first");
        let mut server = GitServer::start(&repo.root, Some(TOKEN));
        let source = server.source("ref=main&path=policies");
        let twin = TwinServer::start(&dir.path().join("start.json"), &[]);
        let (table, ledger) = table().await;
        let secrets = aws_sdk_secretsmanager::Client::new(&ecs_rebalancer::aws::local(&moto::endpoint()));
        let secret = moto::unique("policy-token");
        secrets
            .create_secret()
            .name(&secret)
            .secret_string(TOKEN)
            .send()
            .await
            .unwrap();
        let once = |extra: &[&str]| {
            let mut args = controller_args_with("once", &source, &table, &["--policy-token-secret", &secret]);
            args.extend(extra);
            command(dir.path(), &twin, &moto::endpoint(), &args)
                .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto::endpoint())
                .output()
                .unwrap()
        };

        let out = once(&[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let acted = records(&ledger).await;
        assert!(!acted.is_empty(), "{}", text(&out.stdout));
        assert!(acted.iter().all(|r| r.policy_revision == first), "{acted:#?}");
        let lease = ledger.read_lease("prod").await.unwrap().unwrap();
        assert_eq!(lease.policy.map(|p| p.revision), Some(first.clone()));

        repo.commit(&[("policies/prod.yaml", &POLICY.replace("metric:", "metrik:"))], "typo");
        let invalid = once(&[]);
        let stderr = text(&invalid.stderr);
        assert_eq!(invalid.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("policies/prod.yaml:6:3") && stderr.contains("nothing done"),
            "{stderr}"
        );

        server.stop();
        let unreachable = once(&[]);
        let stderr = text(&unreachable.stderr);
        assert_eq!(unreachable.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&source) && stderr.contains("failed"), "{stderr}");
        assert_eq!(
            records(&ledger).await.len(),
            acted.len(),
            "nothing acted without a good revision"
        );
        for out in [&out, &invalid, &unreachable] {
            assert!(!text(&out.stdout).contains(TOKEN) && !text(&out.stderr).contains(TOKEN));
        }
    }

    /// A replica that has not fetched the revision the previous leader acted under does not act on its older one:
    /// on taking the lease it looks at the source first, and acts under the revision it finds.
    #[tokio::test]
    async fn a_new_leader_behind_the_lease_fetches_before_it_acts() {
        use ecs_rebalancer::ledger::PolicyRecord;
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let repo = Repo::new(dir.path());
        let older = repo.commit(&[("policies/prod.yaml", POLICY)], "older");
        let server = GitServer::start(&repo.root, None);
        let source = server.source("ref=main&path=policies");
        let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "60"]);
        let (table, ledger) = table().await;
        let mut lease = common::lease_held_for_an_hour_by_another();
        assert!(ledger.write_lease("prod", &lease, None).await.unwrap());

        // It fetches the older revision, then follows; it would not fetch again for an hour on its own.
        let mut child = spawn_run(dir.path(), &twin, &source, &table, &["--policy-poll", "1h"]);
        let lines = Lines::follow(&mut child);
        lines
            .wait_for_where("policy reloaded", Duration::from_secs(10), |l| {
                l["revision"] == older.as_str()
            })
            .await;
        let newer = repo.commit(
            &[("policies/prod.yaml", &POLICY.replace("trigger: 0.2", "trigger: 0.15"))],
            "newer",
        );

        // The other replica acted under the newer revision, and shuts down cleanly.
        lease.released = true;
        lease.version = "v2".into();
        lease.policy = Some(PolicyRecord {
            revision: newer.clone(),
            name: "prod".into(),
            source: source.clone(),
            ..PolicyRecord::default()
        });
        assert!(ledger.write_lease("prod", &lease, Some("v1")).await.unwrap());

        let behind = lines
            .wait_for(
                "the lease names another policy revision than ours; looking at the source before acting",
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(
            (behind["previous"].as_str(), behind["ours"].as_str()),
            (Some(newer.as_str()), Some(older.as_str()))
        );
        lines
            .wait_for_where("policy reloaded", Duration::from_secs(10), |l| {
                l["revision"] == newer.as_str()
            })
            .await;
        until(&ledger, Duration::from_secs(20), "an action", |r| !r.is_empty()).await;
        common::sigterm(&child);
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let acted = records(&ledger).await;
        assert!(
            acted.iter().all(|r| r.policy_revision == newer),
            "only under the newer revision: {acted:#?}"
        );
    }

    /// While no revision has ever been good, `run` does not act, does not take the lease (it would keep a replica
    /// that has a good policy from acting), and `/readyz` says not ready; the first good commit changes all three.
    #[tokio::test]
    async fn run_without_a_good_revision_neither_leads_nor_acts_and_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let repo = Repo::new(dir.path());
        let bad = repo.commit(&[("policies/prod.yaml", &POLICY.replace("metric:", "metrik:"))], "typo");
        let server = GitServer::start(&repo.root, None);
        let source = server.source("ref=main&path=policies");
        let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "60"]);
        let (table, ledger) = table().await;
        let (mut child, lines, addr) = serving(dir.path(), &twin, &source, &table, "1s").await;
        let refused = lines
            .wait_for(
                "no revision of the policy source has been good yet; not acting",
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(refused["revision"], bad.as_str());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(common::get(&addr, "/readyz").await.0, 503);
        assert_eq!(
            ledger.read_lease("prod").await.unwrap(),
            None,
            "the lease is left to others"
        );
        assert!(records(&ledger).await.is_empty());

        let good = repo.commit(&[("policies/prod.yaml", POLICY)], "fix");
        lines
            .wait_for_where("policy reloaded", Duration::from_secs(10), |l| {
                l["revision"] == good.as_str()
            })
            .await;
        until(&ledger, Duration::from_secs(20), "an action", |r| !r.is_empty()).await;
        assert_eq!(common::get(&addr, "/readyz").await.0, 200);
        common::sigterm(&child);
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
}
