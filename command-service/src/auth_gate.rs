//! What stands in front of every password hash (DESIGN.md §7, issue 15): a
//! throttle per username and per client address, shared by every instance
//! through Redis, then the dedicated hashing pool with its bounded queue. Both
//! refusals tell the client when to come back (`Retry-After`).

use crate::CommandError;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use auth::{Busy, HashPool};
use live_state::Throttle;
use redis_store::RateLimiter;
use service_kit::ApiError;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The password hashing pool and the login/registration throttle, shared by
/// every worker of a process (register it once as `web::Data<AuthGate>`).
#[derive(Debug)]
pub struct AuthGate {
    hashes: Arc<HashPool>,
    throttle: Option<Arc<dyn Throttle>>,
    last_warning: AtomicU64,
}

/// Which bucket an attempt is taken from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempt {
    Login,
    Register,
}

impl Attempt {
    fn name(self) -> &'static str {
        match self {
            Attempt::Login => "login",
            Attempt::Register => "register",
        }
    }
}

impl AuthGate {
    /// Hashes on `hashes`, with no throttle (add one with [`AuthGate::with_throttle`]).
    pub fn new(hashes: HashPool) -> Self {
        Self {
            hashes: Arc::new(hashes),
            throttle: None,
            last_warning: AtomicU64::new(0),
        }
    }

    /// What a server runs with: the default pool (two threads, OWASP
    /// parameters) and `attempts_per_min` per username and per address.
    pub fn for_server(
        redis: redis_store::RedisStore,
        attempts_per_min: u32,
    ) -> Result<Self, auth::PasswordError> {
        Ok(Self::unthrottled()?.with_throttle(RateLimiter::per_minute(redis, attempts_per_min)))
    }

    /// The default pool with no throttle (tests, tools that are their only client).
    pub fn unthrottled() -> Result<Self, auth::PasswordError> {
        Ok(Self::new(HashPool::new(auth::HashPoolConfig::default())?))
    }

    /// Throttles attempts per username and per client address with `limiter`
    /// (`RateLimiter::per_minute(store, CHAT_AUTH_ATTEMPTS_PER_MIN)`).
    pub fn with_throttle(mut self, limiter: impl Throttle + 'static) -> Self {
        self.throttle = Some(Arc::new(limiter));
        self
    }

    /// The hashing pool (its counter says how many hashes were computed).
    pub fn hashes(&self) -> &HashPool {
        &self.hashes
    }

    /// Takes one attempt from the client address's bucket, then from the
    /// username's (`username` already checked as a possible username, so the
    /// key is short). Fails open when Redis is unreachable: the hashing pool's
    /// bounded queue still bounds the damage, and logins keep working.
    pub(crate) async fn admit(
        &self,
        attempt: Attempt,
        username: &str,
        peer: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        let Some(throttle) = &self.throttle else {
            return Ok(());
        };
        let action = attempt.name();
        let mut buckets = Vec::with_capacity(2);
        if let Some(ip) = peer {
            buckets.push(("address", format!("auth:{action}:addr:{}", address_key(ip))));
        }
        buckets.push((
            "username",
            format!("auth:{action}:user:{}", username.to_lowercase()),
        ));
        for (by, key) in buckets {
            match throttle.admit_key(&key).await {
                Ok(Ok(())) => {}
                Ok(Err(limited)) => {
                    metrics::counter!("auth_throttled_total", "action" => action, "by" => by)
                        .increment(1);
                    return Err(Refusal::retry_after(
                        ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "rate_limited",
                            format!("too many {action} attempts for this {by}; retry later"),
                        ),
                        Duration::from_millis(limited.retry_after_ms),
                    ));
                }
                Err(e) => {
                    self.warn_unthrottled(&e);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The answer to a hash the pool could not take: 503 with `Retry-After`.
    pub(crate) fn busy(&self, busy: Busy) -> Refusal {
        metrics::counter!("auth_hash_refused_total").increment(1);
        tracing::warn!(reason = %busy, "password hash refused");
        Refusal::retry_after(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                busy.to_string(),
            ),
            self.hashes.retry_after(),
        )
    }

    /// One warning per minute at most while Redis is down, not one per attempt.
    fn warn_unthrottled(&self, error: &live_state::LiveStateError) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "auth throttle unavailable; admitting logins and registrations unthrottled");
        }
    }
}

/// IPv4 addresses count alone; IPv6 ones by their /64, which one host holds whole.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// An error answer of the registration and login routes, with `Retry-After`
/// when it asks the client to come back.
#[derive(Debug)]
pub(crate) struct Refusal {
    error: ApiError,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn retry_after(error: ApiError, after: Duration) -> Self {
        Self {
            error,
            retry_after: Some(after),
        }
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl From<CommandError> for Refusal {
    fn from(error: CommandError) -> Self {
        ApiError::from(error).into()
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.error.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.error_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: never "0", which would invite a retry storm.
            let secs = after.as_millis().div_ceil(1000).max(1);
            let secs = u64::try_from(secs).unwrap_or(u64::MAX);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_keyed_per_host() {
        let key = |s: &str| address_key(s.parse().expect("an address"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1"), key("2001:db8:1:2::9"));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let answer = |ms| {
            Refusal::retry_after(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "x"),
                Duration::from_millis(ms),
            )
            .error_response()
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
        };
        assert_eq!(answer(1).as_deref(), Some("1"));
        assert_eq!(answer(1999).as_deref(), Some("2"));
        assert_eq!(answer(2000).as_deref(), Some("2"));
    }
}
