//! Switches for the chaos soak (`scripts/chaos/`), built only with the `chaos` feature (off by default): a release
//! binary has neither the flags nor the code behind them.
//!
//! - `--time-scale N` divides every wait of the run loop (the next cycle, an error's back-off) by `N`, so a soak
//!   reaches thousands of cycles in hours rather than days. What the controller judges by the wall clock (cooldowns,
//!   the lease, action deadlines) is left alone.
//! - `--unfenced` is a deliberately broken replica: it acts whether or not it holds the lease, proves nothing before
//!   it claims or mutates, and claims without the lease's fence. The soak's invariant checker must catch it
//!   (`tests/chaos.rs`).

use std::time::Duration;

/// The soak's switches; the default changes nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    /// Every wait of the run loop is divided by this (≥ 1).
    pub time_scale: f64,
    /// Act without the lease: fencing off.
    pub unfenced: bool,
}

impl Default for Chaos {
    fn default() -> Self {
        Chaos {
            time_scale: 1.0,
            unfenced: false,
        }
    }
}

impl Chaos {
    /// `wait`, shortened by the time scale.
    pub fn scaled(&self, wait: Duration) -> Duration {
        wait.div_f64(self.time_scale)
    }
}

/// Parses `--time-scale`: a number from 1 to 1,000.
pub fn time_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=1000.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number from 1 to 1000")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_scale_shortens_waits_and_refuses_what_would_lengthen_or_stop_them() {
        let chaos = Chaos {
            time_scale: time_scale("10").unwrap(),
            unfenced: false,
        };
        assert_eq!(chaos.scaled(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(
            Chaos::default().scaled(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        for bad in ["0", "0.5", "-3", "1001", "inf", "NaN", "ten"] {
            assert!(time_scale(bad).is_err(), "{bad} accepted");
        }
    }
}
