//! The poll schedule of the Wait/check loop.
//!
//! The wait grows ×1.5 per attempt from `min` to `max` with equal jitter, and is never below
//! `min` nor above `max`. Growth keeps the execution history short for long stacks (fewer
//! cycles of 9 events each); jitter keeps parallel executions from polling in lock step.

use crate::io::PollSeconds;

/// Growth factor per attempt.
pub const GROWTH: f64 = 1.5;

/// Seconds to wait before the next check.
///
/// `attempt` counts the checks already made (0 before the first); `random01` is a uniform
/// random number in `[0, 1]` (clamped). base = min(min × 1.5^attempt, max); the wait is
/// base/2 + random × base/2 (equal jitter), rounded, then clamped to `[min, max]`.
/// A `min` of 0 counts as 1 and a `max` below `min` as `min`.
pub fn next_wait(poll: PollSeconds, attempt: u32, random01: f64) -> u32 {
    let min = poll.min.max(1);
    let max = poll.max.max(min);
    // Past ~60 attempts the base is at max for any u32 bounds; keep powi's exponent small.
    let exponent = attempt.min(64) as i32;
    let base = (f64::from(min) * GROWTH.powi(exponent)).min(f64::from(max));
    let random = if random01.is_nan() {
        0.5
    } else {
        random01.clamp(0.0, 1.0)
    };
    let wait = base / 2.0 + random * base / 2.0;
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
    fn first_wait_is_min() {
        // attempt 0: base = min, jitter takes it to [min/2, min], clamped up to min.
        for r in [0.0, 0.5, 1.0] {
            assert_eq!(next_wait(p(5, 60), 0, r), 5);
        }
    }

    #[test]
    fn grows_by_half_per_attempt_without_jitter() {
        // With random = 1 the wait is the base itself: 5, 7.5, 11.25, 16.9, 25.3, 38, 57, 60.
        let waits: Vec<u32> = (0..9).map(|a| next_wait(p(5, 60), a, 1.0)).collect();
        assert_eq!(waits, vec![5, 8, 11, 17, 25, 38, 57, 60, 60]);
        for pair in waits.windows(2) {
            assert!(pair[1] >= pair[0], "not monotonic: {waits:?}");
        }
    }

    #[test]
    fn jitter_spans_half_to_full_base() {
        // attempt 10 with min 5, max 60: base is capped at 60.
        assert_eq!(next_wait(p(5, 60), 10, 0.0), 30);
        assert_eq!(next_wait(p(5, 60), 10, 0.5), 45);
        assert_eq!(next_wait(p(5, 60), 10, 1.0), 60);
    }

    #[test]
    fn test_settings_stay_within_one_and_two() {
        let waits: Vec<u32> = (0..10).map(|a| next_wait(p(1, 2), a, 1.0)).collect();
        assert_eq!(waits, vec![1, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
    }

    #[test]
    fn degenerate_bounds() {
        assert_eq!(next_wait(p(0, 0), 3, 0.5), 1);
        assert_eq!(next_wait(p(10, 3), 3, 0.5), 10);
    }
}
