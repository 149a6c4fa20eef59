//! Retries with exponential backoff and full jitter, for retriable errors
//! only (timeouts, 429, 5xx); everything else fails at once with the
//! cloud's own message.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::events::{Event, EventSink};

/// How cloud calls are retried.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base: Duration,
    /// Backoff never exceeds this (a server's Retry-After may).
    pub cap: Duration,
    /// Full jitter: sleep a random time in `[backoff/2, backoff]`.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No waiting: for tests.
    pub fn immediate(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            base: Duration::ZERO,
            cap: Duration::ZERO,
            jitter: false,
        }
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1), given
    /// what the server asked for.
    pub fn delay(&self, attempt: u32, server_asked: Option<Duration>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let mut d = exp.min(self.cap);
        if self.jitter && !d.is_zero() {
            let half = d / 2;
            d = half + half.mul_f64(fastrand::f64());
        }
        match server_asked {
            Some(s) if s > d => s,
            _ => d,
        }
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or runs
    /// out of attempts. Each retry is reported as [`Event::StepRetrying`].
    pub async fn run<T, F, Fut>(&self, events: &EventSink, step: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let Some(asked) = e.retry() else { return Err(e) };
                    if attempt >= self.max_attempts {
                        return Err(e);
                    }
                    let delay = self.delay(attempt, asked);
                    tracing::warn!(step, attempt, ?delay, error = %e, "retrying");
                    events.emit(Event::StepRetrying {
                        step: step.to_string(),
                        attempt,
                        delay_ms: delay.as_millis() as u64,
                        error: e.to_string(),
                    });
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// Is this error worth another attempt? (For callers that retry by hand.)
pub fn is_retriable(e: &Error) -> bool {
    e.retry().is_some()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::CloudError;

    fn err(status: u16) -> Error {
        CloudError::http("nova", "op", status, "m", None).into()
    }

    /// Runs a call that always fails with HTTP `status` under
    /// `immediate(attempts)`; returns the outcome and how often it was called.
    async fn always_failing(attempts: u32, status: u16) -> (Result<()>, u32) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let r = RetryPolicy::immediate(attempts)
            .run(&EventSink::none(), "s", move || {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Err(err(status))
                }
            })
            .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn retries_retriable_errors_until_success() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let v = RetryPolicy::immediate(5)
            .run(&EventSink::none(), "s", move || {
                let c = c.clone();
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) < 3 {
                        Err(err(503))
                    } else {
                        Ok(7)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let (r, calls) = always_failing(3, 500).await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn fails_fast_on_client_errors() {
        let (r, calls) = always_failing(5, 403).await;
        assert_eq!(r.unwrap_err().to_string(), "nova op: HTTP 403: m");
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn reports_each_retry_as_an_event() {
        let (sink, mut rx) = EventSink::channel();
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let _ = RetryPolicy::immediate(3)
            .run(&sink, "network", move || {
                let c = c.clone();
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(err(429))
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        match rx.try_recv().unwrap() {
            Event::StepRetrying { step, attempt, .. } => {
                assert_eq!(step, "network");
                assert_eq!(attempt, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn backoff_doubles_and_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            jitter: false,
        };
        assert_eq!(p.delay(1, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, None), Duration::from_millis(200));
        assert_eq!(p.delay(3, None), Duration::from_millis(400));
        assert_eq!(p.delay(9, None), Duration::from_secs(1));
        assert_eq!(p.delay(1, Some(Duration::from_secs(5))), Duration::from_secs(5));
        let j = RetryPolicy { jitter: true, ..p };
        for _ in 0..100 {
            let d = j.delay(3, None);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
    }
}
