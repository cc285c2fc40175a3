//! Inbound limits of one socket (DESIGN.md §7): a token bucket over every
//! client frame, with a second bucket of refusals that closes a client which
//! keeps flooding (4008), and the typing throttle per channel.

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// What to do with one client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Refused; `notify` says whether to tell the client (once a second at most).
    Refuse {
        notify: bool,
    },
    /// Refused too often: close with 4008.
    Close,
}

/// Frames per second with a burst; refusals decay at the same rate.
#[derive(Debug)]
pub struct FrameBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    strikes: f64,
    at: Instant,
    last_notice: Option<Instant>,
}

impl FrameBudget {
    pub fn new(rate: u32, burst: u32) -> Self {
        let rate = f64::from(rate.max(1));
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            strikes: 0.0,
            at: Instant::now(),
            last_notice: None,
        }
    }

    /// Takes one frame from the budget.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.strikes = (self.strikes - elapsed * self.rate).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Admit;
        }
        self.strikes += 1.0;
        if self.strikes > self.burst {
            return Verdict::Close;
        }
        let notify = self
            .last_notice
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if notify {
            self.last_notice = Some(now);
        }
        Verdict::Refuse { notify }
    }
}

/// At most one `typing` per channel per interval.
#[derive(Debug)]
pub struct TypingThrottle {
    interval: Duration,
    last: HashMap<Uuid, Instant>,
}

impl TypingThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: HashMap::new(),
        }
    }

    /// Whether a `typing` for `channel` goes out now.
    pub fn admit(&mut self, channel: Uuid, now: Instant) -> bool {
        match self.last.get(&channel) {
            Some(at) if now.saturating_duration_since(*at) < self.interval => false,
            _ => {
                self.last.insert(channel, now);
                true
            }
        }
    }

    /// Forgets a channel (unsubscribed): the map stays as small as the subscriptions.
    pub fn forget(&mut self, channel: Uuid) {
        self.last.remove(&channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_frames_are_refused_then_a_flood_is_closed() {
        let start = Instant::now();
        let mut budget = FrameBudget::new(50, 200);
        for _ in 0..200 {
            assert_eq!(budget.check(start), Verdict::Admit);
        }
        assert_eq!(budget.check(start), Verdict::Refuse { notify: true });
        assert_eq!(budget.check(start), Verdict::Refuse { notify: false });
        let mut verdict = Verdict::Admit;
        for _ in 0..300 {
            verdict = budget.check(start);
            if verdict == Verdict::Close {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Close);
    }

    #[test]
    fn the_budget_refills_at_the_rate() {
        let start = Instant::now();
        let mut budget = FrameBudget::new(50, 200);
        for _ in 0..200 {
            budget.check(start);
        }
        let later = start + Duration::from_millis(100);
        let admitted = (0..10)
            .filter(|_| budget.check(later) == Verdict::Admit)
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn typing_goes_out_once_per_interval_per_channel() {
        let start = Instant::now();
        let mut throttle = TypingThrottle::new(Duration::from_secs(2));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(throttle.admit(a, start));
        assert!(!throttle.admit(a, start + Duration::from_secs(1)));
        assert!(throttle.admit(b, start + Duration::from_secs(1)));
        assert!(throttle.admit(a, start + Duration::from_secs(2)));
    }
}
