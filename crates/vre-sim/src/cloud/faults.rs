//! What every call goes through before its handler: counting, the
//! per-service token-bucket rate limit (429 with `Retry-After`), injected
//! faults (500/503 with the service's error body, or a held connection that
//! is dropped), latency and jitter; and after it: rendering errors in the
//! service's own format.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use http::header::{ACCEPT, HeaderValue, RETRY_AFTER};
use tokio::sync::Notify;

use super::api::{ApiError, Service, render_error};
use super::app::Cloud;
use crate::RateLimit;

/// Lets a handler drop its connection without answering (an injected
/// timeout); the accept loop puts one in every request.
#[derive(Clone)]
pub(crate) struct ConnectionKill(pub Arc<Notify>);

/// A token bucket: `burst` calls at once, refilled at `per_second`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: &RateLimit) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(limit.burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub(crate) fn take(&mut self, limit: &RateLimit, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second.max(0.0)).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if limit.per_second <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / limit.per_second))
    }
}

/// One bucket per service.
pub(crate) struct RateLimiter {
    buckets: Vec<Mutex<TokenBucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: Option<&RateLimit>) -> RateLimiter {
        let limit = limit.copied().unwrap_or(RateLimit {
            per_second: 1.0,
            burst: 1,
        });
        RateLimiter {
            buckets: Service::ALL
                .iter()
                .map(|_| Mutex::new(TokenBucket::new(&limit)))
                .collect(),
        }
    }

    fn take(&self, service: Service, limit: &RateLimit) -> Result<(), Duration> {
        let mut bucket = self.buckets[service.index()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        bucket.take(limit, Instant::now())
    }
}

/// What the dice decided for one call.
enum Fate {
    Serve(Duration),
    Fail(StatusCode),
    Hang,
}

fn internal_error_message(service: Service) -> &'static str {
    match service {
        Service::Keystone => "An unexpected error prevented the server from fulfilling your request.",
        Service::Nova => {
            "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.\n<class 'oslo_messaging.exceptions.MessagingTimeout'>"
        }
        Service::Neutron => "Request Failed: internal server error while processing your request.",
        Service::Cinder | Service::Glance => {
            "The server has either erred or is incapable of performing the requested operation."
        }
    }
}

const UNAVAILABLE: &str = "The server is currently unavailable. Please try again at a later time.";

fn counter(cloud: &Cloud, service: Service) -> &std::sync::atomic::AtomicU64 {
    let stats = &cloud.stats;
    match service {
        Service::Keystone => &stats.keystone,
        Service::Nova => &stats.nova,
        Service::Neutron => &stats.neutron,
        Service::Cinder => &stats.cinder,
        Service::Glance => &stats.glance,
    }
}

/// The layer in front of every route (see the module documentation).
pub(crate) async fn service_layer(State(cloud): State<Arc<Cloud>>, req: Request, next: Next) -> Response {
    let Some(service) = Service::for_path(req.uri().path()) else {
        return next.run(req).await;
    };
    let mut response = serve(&cloud, service, req, next).await;
    // Every OpenStack service names each request (Nova twice).
    let n = cloud.request_counter.fetch_add(1, Ordering::Relaxed);
    let id = format!(
        "req-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n >> 32,
        (n >> 16) & 0xffff,
        service.index(),
        n & 0xfff,
        n
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        if service == Service::Nova {
            response.headers_mut().insert("x-compute-request-id", v.clone());
        }
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    response
}

async fn serve(cloud: &Cloud, service: Service, req: Request, next: Next) -> Response {
    let accept = req.headers().get(ACCEPT).cloned();
    counter(cloud, service).fetch_add(1, Ordering::Relaxed);
    let config = &cloud.config;

    if let Some(limit) = &config.rate_limit
        && let Err(wait) = cloud.limiter.take(service, limit)
    {
        cloud.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        cloud.stats.injected_faults.fetch_add(1, Ordering::Relaxed);
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "This request was rate-limited.")
            .header(RETRY_AFTER, HeaderValue::from(seconds));
        return render_error(service, &error, accept.as_ref());
    }

    let fate = cloud.write_quiet(|s| {
        s.faults_rng(|r| {
            let roll = r.f64();
            let five_hundred = r.bool();
            let jitter = r.f64();
            if roll < config.timeout_rate {
                Fate::Hang
            } else if roll < config.timeout_rate + config.error_rate {
                Fate::Fail(if five_hundred {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                })
            } else {
                Fate::Serve(config.scaled(config.latency + config.jitter.mul_f64(jitter)))
            }
        })
    });
    match fate {
        Fate::Hang => {
            cloud.stats.injected_faults.fetch_add(1, Ordering::Relaxed);
            let kill = req.extensions().get::<ConnectionKill>().cloned();
            tokio::time::sleep(config.scaled(cloud.timings.fault_hold)).await;
            match kill {
                Some(ConnectionKill(notify)) => {
                    notify.notify_one();
                    // The connection goes away with this future.
                    std::future::pending::<Response>().await
                }
                None => render_error(
                    service,
                    &ApiError::new(StatusCode::GATEWAY_TIMEOUT, UNAVAILABLE),
                    accept.as_ref(),
                ),
            }
        }
        Fate::Fail(status) => {
            cloud.stats.injected_faults.fetch_add(1, Ordering::Relaxed);
            let message = if status == StatusCode::SERVICE_UNAVAILABLE {
                UNAVAILABLE
            } else {
                internal_error_message(service)
            };
            render_error(service, &ApiError::new(status, message), accept.as_ref())
        }
        Fate::Serve(delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut response = next.run(req).await;
            if response.status() == StatusCode::METHOD_NOT_ALLOWED && response.extensions().get::<ApiError>().is_none()
            {
                let error = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "The method specified is not allowed for this resource.",
                );
                response.extensions_mut().insert(error);
            }
            match response.extensions().get::<ApiError>() {
                Some(error) => {
                    let mut rendered = render_error(service, error, accept.as_ref());
                    // Keep headers the inner layers set (microversions, Vary).
                    for (name, value) in response.headers() {
                        if !rendered.headers().contains_key(name) {
                            rendered.headers_mut().insert(name.clone(), value.clone());
                        }
                    }
                    rendered
                }
                None => response,
            }
        }
    }
}

/// 404 for paths no route matches, in the service's words.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("The resource could not be found.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_bursts_then_refill() {
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3,
        };
        let mut b = TokenBucket::new(&limit);
        let t0 = Instant::now();
        assert!(b.take(&limit, t0).is_ok());
        assert!(b.take(&limit, t0).is_ok());
        assert!(b.take(&limit, t0).is_ok());
        let wait = b.take(&limit, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(b.take(&limit, t0 + Duration::from_millis(500)).is_ok());
        assert!(b.take(&limit, t0 + Duration::from_millis(500)).is_err());
    }
}
