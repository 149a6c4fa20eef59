//! Exponential backoff with jitter for polling loops (never fixed sleeps).

use std::time::Duration;

use tokio::time::Instant;

/// Delays that double from `first` up to `max`, each scaled by a random
/// factor in [0.8, 1.2] so that parallel pollers spread out.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first, max }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(0.8 + 0.4 * rand::random::<f64>())
    }

    /// Sleeps for the next delay, but not past `deadline`.
    pub(crate) async fn sleep_until(&mut self, deadline: Instant) {
        let delay = self.next_delay();
        let wake = (Instant::now() + delay).min(deadline);
        tokio::time::sleep_until(wake).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let bases = [100u64, 200, 400, 400, 400];
        for base in bases {
            let d = b.next_delay().as_secs_f64() * 1000.0;
            let base = base as f64;
            assert!(d >= base * 0.8 - 1e-6 && d <= base * 1.2 + 1e-6, "{d} vs {base}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_sleeps_past_the_deadline() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let start = Instant::now();
        b.sleep_until(start + Duration::from_secs(1)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }
}
