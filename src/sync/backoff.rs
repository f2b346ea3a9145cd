//! How long the sync waits after a failure it will retry: full-jitter exponential back-off
//! (a uniform wait between zero and `base · 2^(n-1)`, capped), never shorter than the server's
//! `Retry-After`. The randomness comes in as an argument, so the rule is tested exactly.

use std::time::Duration;

/// The first ceiling.
pub const BASE: Duration = Duration::from_secs(1);
/// The highest ceiling.
pub const CAP: Duration = Duration::from_secs(300);

/// The wait after the `failures`-th failure in a row (1 for the first), given `random` (any
/// value; its remainder picks the point below the ceiling) and the server's `Retry-After`.
pub fn backoff(failures: u32, random: u64, retry_after: Option<Duration>) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let ceiling = BASE.saturating_mul(1 << doublings).min(CAP);
    let ceiling_ms = ceiling.as_millis() as u64;
    let jittered = Duration::from_millis(random % (ceiling_ms + 1));
    match retry_after {
        Some(after) => jittered.max(after),
        None => jittered,
    }
}

/// A random value for [`backoff`], from the operating system's generator (through a UUIDv4).
pub fn random() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let most = |failures| backoff(failures, u64::MAX - 1, None);
        // `u64::MAX - 1` modulo (ceiling + 1) is not the ceiling itself; check bounds instead.
        for failures in 1..40 {
            let ceiling = BASE.saturating_mul(1 << (failures - 1).min(20)).min(CAP);
            assert!(most(failures) <= ceiling, "{failures}");
        }
        assert_eq!(backoff(1, 1000, None), Duration::from_millis(1000));
        assert_eq!(backoff(1, 1001, None), Duration::ZERO);
        assert_eq!(backoff(3, 4000, None), Duration::from_millis(4000));
        assert_eq!(backoff(30, 300_000, None), CAP);
        assert_eq!(backoff(30, 300_001, None), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let after = Some(Duration::from_secs(7));
        assert_eq!(backoff(1, 0, after), Duration::from_secs(7));
        assert_eq!(backoff(20, 200_000, after), Duration::from_secs(200));
    }
}
