//! How long to wait before reconnecting after a transient failure: exponential backoff with full
//! jitter (a random delay between zero and a ceiling that doubles per failure, up to a cap), so a
//! fleet of daemons does not hammer a server that just came back. Pure: the caller passes the
//! randomness in and does the sleeping.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// The delay before the next attempt, after one more failure. `random` is uniform in
    /// [0, 1) (values outside are clamped).
    pub fn next_delay(&mut self, random: f64) -> Duration {
        // 2^31 seconds is beyond any cap; stopping the exponent there avoids overflow.
        let factor = 2u32.saturating_pow(self.failures.min(31));
        let ceiling = self.base.saturating_mul(factor).min(self.cap);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }

    /// After a success the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 s doubling to 5 min, the watcher's default.
    fn default() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(5 * 60))
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let mut backoff = default();
        let ceilings: Vec<u64> = (0..12).map(|_| backoff.next_delay(1.0).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    #[test]
    fn the_delay_is_the_random_share_of_the_ceiling() {
        let mut backoff = default();
        backoff.next_delay(0.5);
        backoff.next_delay(0.5);
        assert_eq!(backoff.next_delay(0.25), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(0.0), Duration::ZERO);
        assert_eq!(backoff.next_delay(7.0), Duration::from_secs(16));
    }

    #[test]
    fn reset_starts_over_and_many_failures_do_not_overflow() {
        let mut backoff = default();
        for _ in 0..10_000 {
            backoff.next_delay(1.0);
        }
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(300));
        backoff.reset();
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(1));
    }
}
