//! The poll schedule of the Wait/check loop.
//!
//! The wait grows ×1.5 per attempt from `min` to `max` (see [`crate::budget::base_wait`]) with
//! ±10% jitter, and is never below `min` nor above `max`. Growth keeps the execution history
//! short for long stacks (fewer cycles of 9 events each); jitter keeps parallel executions from
//! polling in lock step. The jitter is centred on the schedule, so on average the run polls as
//! often as the budget model in `crate::budget` counts (equal jitter would poll a third more
//! often at the cap).

use crate::io::PollSeconds;

pub use crate::budget::GROWTH;

/// Half-width of the jitter band, as a share of the scheduled wait.
pub const JITTER: f64 = 0.1;

/// Seconds to wait before the next check.
///
/// `attempt` counts the checks already made (0 before the first); `random01` is a uniform
/// random number in `[0, 1]` (clamped). base = min(min × 1.5^attempt, max); the wait is
/// base × (0.9 + 0.2 × random), rounded, then clamped to `[min, max]`.
/// A `min` of 0 counts as 1 and a `max` below `min` as `min`.
pub fn next_wait(poll: PollSeconds, attempt: u32, random01: f64) -> u32 {
    let min = poll.min.max(1);
    let max = poll.max.max(min);
    let base = crate::budget::base_wait(PollSeconds { min, max }, attempt);
    let random = if random01.is_nan() {
        0.5
    } else {
        random01.clamp(0.0, 1.0)
    };
    let wait = base * (1.0 - JITTER + 2.0 * JITTER * random);
    let wait = wait.round().clamp(f64::from(min), f64::from(max));
    // In range [min, max] of u32 by the clamp above.
    wait as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(min: u32, max: u32) -> PollSeconds {
        PollSeconds { min, max }
    }

    #[test]
    fn never_outside_bounds() {
        for (min, max) in [(5, 60), (1, 2), (1, 1), (10, 600), (30, 30)] {
            for attempt in [0, 1, 2, 3, 5, 8, 13, 40, 1000, u32::MAX] {
                for r in [0.0, 0.1, 0.5, 0.9, 1.0, -3.0, 7.0, f64::NAN] {
                    let w = next_wait(p(min, max), attempt, r);
                    assert!(
                        w >= min && w <= max,
                        "min {min} max {max} attempt {attempt} r {r}: {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn attempt_zero_stays_at_min_up_to_jitter() {
        // attempt 0: base = min; jitter takes it to [0.9, 1.1] × min, clamped up to min.
        assert_eq!(next_wait(p(5, 60), 0, 0.0), 5);
        assert_eq!(next_wait(p(5, 60), 0, 0.5), 5);
        assert_eq!(next_wait(p(5, 60), 0, 1.0), 6);
        assert_eq!(next_wait(p(10, 60), 0, 0.0), 10);
    }

    #[test]
    fn grows_by_half_per_attempt_without_jitter() {
        // With random = 0.5 the wait is the base itself: 5, 7.5, 11.25, 16.9, 25.3, 38, 57, 60.
        let waits: Vec<u32> = (0..9).map(|a| next_wait(p(5, 60), a, 0.5)).collect();
        assert_eq!(waits, vec![5, 8, 11, 17, 25, 38, 57, 60, 60]);
        for pair in waits.windows(2) {
            assert!(pair[1] >= pair[0], "not monotonic: {waits:?}");
        }
    }

    #[test]
    fn jitter_is_ten_percent_around_the_schedule() {
        // attempt 3 with min 5, max 60: base 16.875.
        assert_eq!(next_wait(p(5, 60), 3, 0.0), 15);
        assert_eq!(next_wait(p(5, 60), 3, 0.5), 17);
        assert_eq!(next_wait(p(5, 60), 3, 1.0), 19);
        // At the cap, jitter can only go down: 54..60.
        assert_eq!(next_wait(p(5, 60), 10, 0.0), 54);
        assert_eq!(next_wait(p(5, 60), 10, 1.0), 60);
    }

    #[test]
    fn test_settings_stay_within_one_and_two() {
        let waits: Vec<u32> = (0..10).map(|a| next_wait(p(1, 2), a, 0.5)).collect();
        assert_eq!(waits, vec![1, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
    }

    #[test]
    fn degenerate_bounds() {
        assert_eq!(next_wait(p(0, 0), 3, 0.5), 1);
        assert_eq!(next_wait(p(10, 3), 3, 0.5), 10);
    }
}
