//! ECS's throttle buckets (docs/ecs.md: API limits), used on both sides of the wire: the twin refuses a call when its
//! bucket is empty (`ThrottlingException`), and the SDK adapter paces its reads so that it spends no more than a
//! configured share of each bucket. The buckets are per account and Region and shared with every other caller
//! (consoles, deploy pipelines, autoscalers), so a controller that drains them starves its neighbours.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Burst and refill per second of ECS's throttle buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub cluster_read: (f64, f64),
    pub cluster_modify: (f64, f64),
    pub service_read: (f64, f64),
    pub service_modify: (f64, f64),
}

impl Rates {
    /// ECS's documented buckets (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html).
    pub const ECS: Rates = Rates {
        cluster_read: (100.0, 20.0),
        cluster_modify: (100.0, 40.0),
        service_read: (100.0, 20.0),
        service_modify: (50.0, 5.0),
    };

    /// Every bucket scaled by `share` (burst at least one call, so a tiny share slows reads but never stops them).
    pub fn share(self, share: f64) -> Rates {
        let scale = |(burst, refill): (f64, f64)| ((burst * share).max(1.0), refill * share);
        Rates {
            cluster_read: scale(self.cluster_read),
            cluster_modify: scale(self.cluster_modify),
            service_read: scale(self.service_read),
            service_modify: scale(self.service_modify),
        }
    }
}

/// Which of ECS's buckets an operation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKind {
    ClusterRead,
    ClusterModify,
    ServiceRead,
    ServiceModify,
}

impl BucketKind {
    /// The bucket of an ECS operation; operations ECS does not list share the service-read bucket.
    pub fn of(operation: &str) -> BucketKind {
        match operation {
            "DescribeContainerInstances" | "DescribeTasks" | "ListContainerInstances" | "ListTasks" => {
                BucketKind::ClusterRead
            }
            "StopTask" | "UpdateContainerInstancesState" => BucketKind::ClusterModify,
            "UpdateService" => BucketKind::ServiceModify,
            _ => BucketKind::ServiceRead,
        }
    }
}

/// One token bucket: `burst` tokens, refilled continuously at `refill` per second.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    refill: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new((burst, refill): (f64, f64)) -> TokenBucket {
        TokenBucket {
            burst,
            refill,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.tokens =
            (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * self.refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.refill > 0.0 {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.refill))
        } else {
            Err(Duration::MAX)
        }
    }
}

/// The four buckets of one account and Region.
#[derive(Debug)]
pub struct Buckets([Mutex<TokenBucket>; 4]);

impl Buckets {
    pub fn new(rates: Rates) -> Buckets {
        Buckets([
            Mutex::new(TokenBucket::new(rates.cluster_read)),
            Mutex::new(TokenBucket::new(rates.cluster_modify)),
            Mutex::new(TokenBucket::new(rates.service_read)),
            Mutex::new(TokenBucket::new(rates.service_modify)),
        ])
    }

    fn bucket(&self, kind: BucketKind) -> &Mutex<TokenBucket> {
        &self.0[kind as usize]
    }

    /// Takes a token now or says how long to wait (the twin answers `ThrottlingException` instead of waiting).
    pub fn try_take(&self, kind: BucketKind) -> Result<(), Duration> {
        match self.bucket(kind).lock() {
            Ok(mut b) => b.take(Instant::now()),
            Err(_) => Ok(()),
        }
    }

    /// Waits until a token is there and takes it (the client side: pace rather than be throttled).
    pub async fn take(&self, kind: BucketKind) {
        while let Err(wait) = self.try_take(kind) {
            tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_one_token_per_refill_interval() {
        let start = Instant::now();
        let mut b = TokenBucket {
            burst: 3.0,
            refill: 2.0,
            tokens: 3.0,
            at: start,
        };
        assert!((0..3).all(|_| b.take(start).is_ok()));
        let wait = b.take(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(start + Duration::from_millis(499)).is_err());
        assert!(b.take(start + Duration::from_millis(1000)).is_ok());
        // Refill never exceeds the burst.
        let later = start + Duration::from_secs(3600);
        assert!((0..3).all(|_| b.take(later).is_ok()));
        assert!(b.take(later).is_err());
    }

    #[test]
    fn a_share_scales_every_bucket_and_keeps_one_call_of_burst() {
        let half = Rates::ECS.share(0.5);
        assert_eq!(half.cluster_read, (50.0, 10.0));
        assert_eq!(half.service_modify, (25.0, 2.5));
        assert_eq!(Rates::ECS.share(0.001).cluster_read.0, 1.0);
        assert_eq!(BucketKind::of("ListTasks"), BucketKind::ClusterRead);
        assert_eq!(BucketKind::of("DescribeServices"), BucketKind::ServiceRead);
        assert_eq!(BucketKind::of("UpdateService"), BucketKind::ServiceModify);
        assert_eq!(BucketKind::of("StopTask"), BucketKind::ClusterModify);
    }
}
