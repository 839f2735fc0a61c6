//! Identical warnings, rate-limited: a replica that cannot reach the ledger for an hour says so a few times with a
//! count, not once per retry.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// How often one warning text is logged at most while it keeps repeating.
pub const REPEAT_EVERY: Duration = Duration::from_secs(10 * 60);

/// Texts remembered at most; past this, texts not logged for a whole period are forgotten first (they would be
/// logged anew anyway), then the longest-logged, so a stream of ever-different texts cannot grow the map.
const REMEMBERED: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Seen {
    logged_at: Instant,
    held_back: u64,
}

/// Decides which occurrences of a warning are logged: the first of a text, then at most one per `every`, carrying
/// how many were held back in between.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    seen: HashMap<String, Seen>,
}

impl Repeats {
    pub fn new(every: Duration) -> Repeats {
        Repeats {
            every,
            seen: HashMap::new(),
        }
    }

    /// `Some(n)`: log `text` now, saying that `n` identical warnings were held back since it was last logged.
    /// `None`: hold it back.
    pub fn admit(&mut self, text: &str, now: Instant) -> Option<u64> {
        if let Some(seen) = self.seen.get_mut(text) {
            if now.saturating_duration_since(seen.logged_at) < self.every {
                seen.held_back += 1;
                return None;
            }
            let held_back = seen.held_back;
            *seen = Seen {
                logged_at: now,
                held_back: 0,
            };
            return Some(held_back);
        }
        if self.seen.len() >= REMEMBERED {
            let every = self.every;
            self.seen
                .retain(|_, s| now.saturating_duration_since(s.logged_at) < every);
        }
        if self.seen.len() >= REMEMBERED {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.logged_at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(
            text.to_owned(),
            Seen {
                logged_at: now,
                held_back: 0,
            },
        );
        Some(0)
    }

    /// Forgets every text that starts with `prefix`: the condition they reported is over, so the next occurrence
    /// is news again.
    pub fn clear(&mut self, prefix: &str) {
        self.seen.retain(|text, _| !text.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_occurrence_is_logged_and_repeats_within_the_period_are_held_back() {
        let t0 = Instant::now();
        let mut r = Repeats::new(10 * MINUTE);
        assert_eq!(r.admit("ledger unavailable", t0), Some(0));
        assert_eq!(r.admit("ledger unavailable", t0 + MINUTE), None);
        assert_eq!(r.admit("ledger unavailable", t0 + 9 * MINUTE), None);
    }

    #[test]
    fn after_the_period_the_next_occurrence_is_logged_with_the_count_held_back() {
        let t0 = Instant::now();
        let mut r = Repeats::new(10 * MINUTE);
        r.admit("x", t0);
        for k in 1..=4 {
            assert_eq!(r.admit("x", t0 + k * MINUTE), None);
        }
        assert_eq!(r.admit("x", t0 + 10 * MINUTE), Some(4));
        assert_eq!(
            r.admit("x", t0 + 11 * MINUTE),
            None,
            "a new period starts at the logged one"
        );
        assert_eq!(r.admit("x", t0 + 20 * MINUTE), Some(1));
    }

    #[test]
    fn different_texts_are_limited_separately() {
        let t0 = Instant::now();
        let mut r = Repeats::new(10 * MINUTE);
        assert_eq!(r.admit("a", t0), Some(0));
        assert_eq!(r.admit("b", t0), Some(0));
        assert_eq!(r.admit("a", t0 + MINUTE), None);
        assert_eq!(r.admit("b", t0 + MINUTE), None);
    }

    #[test]
    fn a_cleared_text_is_news_again_and_other_texts_are_kept() {
        let t0 = Instant::now();
        let mut r = Repeats::new(10 * MINUTE);
        r.admit("lease: a", t0);
        r.admit("lease: b", t0);
        r.admit("cycle: a", t0);
        r.clear("lease: ");
        assert_eq!(r.admit("lease: a", t0 + MINUTE), Some(0));
        assert_eq!(r.admit("lease: b", t0 + MINUTE), Some(0));
        assert_eq!(r.admit("cycle: a", t0 + MINUTE), None);
    }

    #[test]
    fn ever_different_texts_do_not_grow_the_memory_without_bound() {
        let t0 = Instant::now();
        let mut r = Repeats::new(MINUTE);
        for k in 0..10_000u32 {
            r.admit(&format!("request {k} failed"), t0 + Duration::from_secs(u64::from(k)));
        }
        assert!(r.seen.len() <= REMEMBERED, "{}", r.seen.len());
        for k in 0..1_000u32 {
            r.admit(&format!("burst {k}"), t0);
        }
        assert!(r.seen.len() <= REMEMBERED, "{}", r.seen.len());
        // The newest text is still remembered and held back.
        assert_eq!(r.admit("burst 999", t0), None);
    }
}
