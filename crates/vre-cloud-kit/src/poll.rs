//! The one polling policy every waiter of every cloud uses.

use std::time::Duration;

/// How a poller backs off: `initial`, then times `factor` per round, at
/// most `max`; a delay the server names (`Retry-After`) wins. What is still
/// unsettled after `timeout` is reported as a timeout.
#[derive(Clone, Debug, PartialEq)]
pub struct PollPolicy {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How much each delay grows over the previous one (2.0 doubles).
    pub factor: f64,
    /// How long a wait may take in all.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    /// 2 s doubling up to 20 s, for up to 30 minutes.
    fn default() -> Self {
        PollPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(20),
            factor: 2.0,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl PollPolicy {
    /// For tests: polls every few milliseconds, gives up after 10 s.
    pub fn fast() -> Self {
        PollPolicy {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            factor: 2.0,
            timeout: Duration::from_secs(10),
        }
    }

    /// The delay after `d`: `d` times `factor`, at most `max`.
    pub fn next(&self, d: Duration) -> Duration {
        Duration::try_from_secs_f64(d.as_secs_f64() * self.factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait before poll `attempt` (from 0): the server's `retry_after`
    /// when it sent one, the backoff otherwise.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or_else(|| (0..attempt.min(64)).fold(self.initial.min(self.max), |d, _| self.next(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_maximum_and_retry_after_wins() {
        let p = PollPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(20),
            factor: 2.0,
            timeout: Duration::from_secs(60),
        };
        assert_eq!(p.delay(0, Some(Duration::from_secs(15))), Duration::from_secs(15));
        assert_eq!(p.delay(0, None), Duration::from_secs(2));
        assert_eq!(p.delay(3, None), Duration::from_secs(16));
        assert_eq!(p.delay(9, None), Duration::from_secs(20));
        assert_eq!(p.delay(u32::MAX, None), Duration::from_secs(20));
    }

    #[test]
    fn fractional_factors_step_up() {
        let p = PollPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(15),
            factor: 1.5,
            timeout: Duration::from_secs(600),
        };
        assert_eq!(p.next(Duration::from_secs(2)), Duration::from_secs(3));
        assert_eq!(p.next(Duration::from_secs(12)), Duration::from_secs(15));
        let mut huge = PollPolicy::fast();
        huge.factor = f64::MAX;
        assert_eq!(huge.next(Duration::from_secs(1)), huge.max);
    }
}
