//! Verify-after-act: where a settled move's replacements landed against where the planner said they could, and
//! whether a service's stops pay off as often as their odds said. A service whose model keeps missing is backed off.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Controller, CycleError, LOG};
use crate::ecs::EcsApi;
use crate::ledger::{ActionRecord, CooldownTarget, Ledger};

/// Moves of one service that land outside their prediction before the service is backed off.
pub const MISPREDICTIONS_BEFORE_BACKOFF: u32 = 3;
/// How long a backed-off service is left alone.
pub const BACKOFF: Duration = Duration::from_secs(60 * 60);
/// Stops of one service settled before their hit rate is compared with their odds.
pub const MIN_DRAWS: u32 = 4;

/// How often a service's stops paid off against how often their odds said they would.
#[derive(Debug, Clone, Copy, Default)]
pub struct Odds {
    draws: u32,
    hits: u32,
    /// The sum of the odds: the expected number of hits.
    expected: f64,
    /// The sum of `p · (1 − p)`: the variance of the number of hits.
    variance: f64,
}

impl Odds {
    pub fn record(&mut self, p: f64, hit: bool) {
        self.draws += 1;
        self.hits += u32::from(hit);
        self.expected += p;
        self.variance += p * (1.0 - p);
    }

    /// Whether the hits fall more than two standard deviations short of the odds, over enough draws.
    pub fn below_expectation(&self) -> bool {
        self.draws >= MIN_DRAWS && f64::from(self.hits) + 2.0 * self.variance.sqrt() < self.expected
    }
}

impl<E: EcsApi + Sync, L: Ledger + Sync> Controller<'_, E, L> {
    /// Verify-after-act: where a settled move's replacements landed, against the distribution the planner
    /// predicted. Outside every predicted instance is a misprediction (the model was wrong); inside but not on an
    /// instance where the move pays off is an unlucky draw, which the odds allow for. A service is backed off after
    /// [`MISPREDICTIONS_BEFORE_BACKOFF`] mispredictions, or when its stops pay off much less often than their odds
    /// said (two standard deviations below the expected count, over at least [`MIN_DRAWS`] stops): the model of its
    /// placement is wrong, and re-rolling it only restarts tasks. Returns a note for the outcome.
    pub(super) async fn verify(
        &mut self,
        r: &ActionRecord,
        landed: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<String>, CycleError> {
        let Some(service) = r.mv.service_name().map(str::to_owned) else {
            return Ok(None);
        };
        let Judgement { outside, odds } = judge(r, landed);
        let mut note = None;
        let mut back_off = false;
        if outside {
            note = Some(" (outside the predicted instances)".to_owned());
            self.stats.mispredictions += 1;
            let n = self.mispredicted.entry(service.clone()).or_default();
            *n += 1;
            back_off = *n >= MISPREDICTIONS_BEFORE_BACKOFF;
        }
        if let Some((p, hit)) = odds {
            if !hit && !outside {
                note = Some(" (an unlucky draw: not where the move pays off)".to_owned());
                self.stats.unlucky += 1;
            }
            let odds = self.odds.entry(service.clone()).or_default();
            odds.record(p, hit);
            back_off |= odds.below_expectation();
        }
        if back_off && !self.stats.backed_off.contains(&service) {
            let until = now + chrono::Duration::from_std(BACKOFF).unwrap_or_default();
            self.ledger
                .set_cooldown(&self.cluster, CooldownTarget::Service(service.clone()), until)
                .await?;
            tracing::warn!(target: LOG, service = %service, "moves of this service keep missing their prediction; leaving it alone for an hour");
            self.stats.backed_off.push(service);
        }
        Ok(note)
    }
}

/// Where a settled move's replacements landed against its record.
#[derive(Debug, PartialEq)]
struct Judgement {
    /// On no instance of the predicted landing: the model was wrong.
    outside: bool,
    /// For a stop: its odds, and whether a replacement landed where the move pays off.
    odds: Option<(f64, bool)>,
}

fn judge(r: &ActionRecord, landed: &[String]) -> Judgement {
    let (predicted, improving) = (&r.predicted_landing, &r.improving_landing);
    let outside = !landed.iter().any(|l| predicted.contains(l));
    // Only a stop has odds: the instances of its predicted landing where it pays off.
    let odds = (!improving.is_empty() && !predicted.is_empty()).then(|| {
        let p = f64::from(improving.len()) / f64::from(predicted.len());
        (p, landed.iter().any(|l| predicted.contains(l) && improving.contains(l)))
    });
    Judgement { outside, odds }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moves::InstanceSet;

    #[test]
    fn a_landing_is_judged_alike_whichever_way_its_record_names_it() {
        let cluster: Vec<String> = (0..10).map(|i| format!("ci-{i}")).collect();
        let (predicted, improving) = (&cluster[..8], &cluster[..5]);
        let record = ActionRecord::stop_for_tests;
        let named = record(
            InstanceSet::new(predicted, cluster.iter().map(String::as_str)),
            InstanceSet::new(improving, predicted.iter().map(String::as_str)),
        );
        assert!(named.predicted_landing.is_all_but() && named.improving_landing.is_all_but());
        let listed = record(
            InstanceSet::listed(predicted.to_vec()),
            InstanceSet::listed(improving.to_vec()),
        );
        for (i, arn) in cluster.iter().enumerate() {
            let landed = [arn.clone()];
            let expected = Judgement {
                outside: i >= 8,
                odds: Some((5.0 / 8.0, i < 5)),
            };
            assert_eq!(judge(&named, &landed), expected, "{arn}");
            assert_eq!(judge(&listed, &landed), expected, "{arn}");
        }
    }

    #[test]
    fn unlucky_draws_within_the_odds_keep_a_service_in_play() {
        let mut odds = Odds::default();
        for hit in [false, false, true, false, false, true] {
            odds.record(1.0 / 3.0, hit);
        }
        assert!(
            !odds.below_expectation(),
            "2 hits in 6 draws at 1/3 is what the odds said"
        );
    }

    #[test]
    fn stops_that_keep_missing_sure_bets_back_the_service_off() {
        let mut odds = Odds::default();
        for _ in 0..3 {
            odds.record(0.9, false);
        }
        assert!(!odds.below_expectation(), "too few draws to judge");
        odds.record(0.9, false);
        assert!(
            odds.below_expectation(),
            "4 misses of 90 % bets: the model of this service is wrong"
        );
    }
}
