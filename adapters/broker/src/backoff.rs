//! Reconnect backoff for the long-running loops (relay, projector): the wait
//! doubles after each failed term up to a cap, and starts over after a term
//! that ran long enough to count as healthy, so a process that had one bad
//! spell an hour ago does not wait the full cap on every later blip.

use std::time::Duration;

/// The wait before the next term.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`, resets after a term of at least `healthy`.
    pub fn new(initial: Duration, max: Duration, healthy: Duration) -> Self {
        Self {
            initial,
            max,
            healthy,
            next: initial,
        }
    }

    /// The reconnect loops' policy: 100 ms doubling to 5 s, reset after 30 s up.
    pub fn reconnect() -> Self {
        Self::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
    }

    /// How long to wait after a term that ran for `ran` and failed.
    pub fn after_term(&mut self, ran: Duration) -> Duration {
        if ran >= self.healthy {
            self.next = self.initial;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_after_a_healthy_term() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000), ms(30_000));
        let short = ms(10);
        let waits: Vec<_> = (0..6).map(|_| b.after_term(short)).collect();
        assert_eq!(
            waits,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        // A long healthy term, then a failure: back to the first wait.
        assert_eq!(b.after_term(ms(60_000)), ms(100));
        assert_eq!(b.after_term(short), ms(200));
    }
}
