//! Schedules computed from a plan and per-stack durations, and delays read from measured
//! stack windows.
//!
//! - ideal: Σ over stages of the longest dependency chain inside each stage (stage barriers,
//!   instant detection, no overhead);
//! - full DAG: the whole graph's critical path, the ideal of `schedule: dependencies`.

use std::collections::HashMap;

use stackwave_core::plan::Plan;

/// The measured operation of one stack: CloudFormation's stack-level IN_PROGRESS and COMPLETE
/// event times (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: f64,
    pub end: f64,
}

/// Σ over stages of the longest chain of same-stage dependencies (`budget::critical_path`).
pub fn ideal(plan: &Plan, seconds: &dyn Fn(&str) -> f64) -> f64 {
    stackwave_core::budget::critical_path(plan, false, &|s| seconds(&s.name))
}

/// The whole graph's longest chain: the ideal of `schedule: dependencies`.
pub fn dag(plan: &Plan, seconds: &dyn Fn(&str) -> f64) -> f64 {
    stackwave_core::budget::critical_path(plan, true, &|s| seconds(&s.name))
}

/// Per stack with a dependency that holds it (a same-stage one; any one when `whole_graph`):
/// its start − the moment its last such dependency settled. What the wake-up costs a dependant.
pub fn dependency_waits(
    plan: &Plan,
    windows: &HashMap<String, Window>,
    whole_graph: bool,
) -> Vec<f64> {
    plan.stacks
        .iter()
        .filter_map(|s| {
            let own = windows.get(&s.name)?;
            let ready = stackwave_core::budget::holding(plan, s, whole_graph)
                .filter_map(|d| windows.get(d).map(|w| w.end))
                .reduce(f64::max)?;
            Some(own.start - ready)
        })
        .collect()
}

/// Per stage after the first: its first stack's start − the previous stage's last stack
/// settled (the barrier's cost).
pub fn stage_handoffs(plan: &Plan, windows: &HashMap<String, Window>) -> Vec<f64> {
    let spans: Vec<(f64, f64)> = plan
        .stages
        .iter()
        .filter_map(|st| {
            let w: Vec<&Window> = plan
                .stacks
                .iter()
                .filter(|s| s.stage_index == st.index)
                .filter_map(|s| windows.get(&s.name))
                .collect();
            let start = w.iter().map(|w| w.start).reduce(f64::min)?;
            let end = w.iter().map(|w| w.end).reduce(f64::max)?;
            Some((start, end))
        })
        .collect();
    spans.windows(2).map(|p| p[1].0 - p[0].1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackwave_core::synth::{self, Shape};

    fn plan(stages: usize, per: usize, shape: Shape) -> Plan {
        let text = synth::manifest_yaml("t", stages, per, shape, "templates/stack.yaml");
        stackwave_core::plan::from_text(&text, "e", &|_| true).expect("plan")
    }

    #[test]
    fn ideal_sums_the_longest_chain_of_each_stage() {
        // Chains of 2 inside each of 3 stages, 2 s each: 4 s per stage.
        let p = plan(3, 4, Shape::ChainInStage(2));
        assert_eq!(ideal(&p, &|_| 2.0), 12.0);
        // No cross-stage dependency: the DAG runs every chain at once.
        assert_eq!(dag(&p, &|_| 2.0), 4.0);
    }

    #[test]
    fn fan_in_links_stages_in_the_dag() {
        let p = plan(3, 4, Shape::FanIn);
        assert_eq!(ideal(&p, &|_| 2.0), 12.0);
        assert_eq!(dag(&p, &|_| 2.0), 12.0);
        // A slow stack that nothing waits for within its stage still bounds the stage.
        let slow = |s: &str| if s == "t-s1-n1-e" { 10.0 } else { 2.0 };
        assert_eq!(ideal(&p, &slow), 4.0 + 12.0 + 4.0);
    }

    #[test]
    fn waits_and_handoffs_from_windows() {
        let p = plan(2, 2, Shape::FanIn);
        // s0: n0 then n1 (depends on n0); s1: n0 (depends on s0-n1), then n1 (on s1-n0).
        let w = |a: f64, b: f64| Window { start: a, end: b };
        let windows: HashMap<String, Window> = [
            ("t-s0-n0-e", w(10.0, 11.0)),
            ("t-s0-n1-e", w(13.0, 14.0)),
            ("t-s1-n0-e", w(17.0, 18.0)),
            ("t-s1-n1-e", w(20.5, 21.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut waits = dependency_waits(&p, &windows, false);
        waits.sort_by(f64::total_cmp);
        assert_eq!(waits, vec![2.0, 2.5]);
        let mut waits = dependency_waits(&p, &windows, true);
        waits.sort_by(f64::total_cmp);
        assert_eq!(waits, vec![2.0, 2.5, 3.0]);
        assert_eq!(stage_handoffs(&p, &windows), vec![3.0]);
    }
}
