//! Schedules computed from a plan and per-stack durations, and delays read from measured
//! stack windows.
//!
//! - ideal: Σ over stages of the longest dependency chain inside each stage (stage barriers,
//!   instant detection, no wave barriers);
//! - wave floor: Σ over waves of the wave's longest stack (what stackwave's wave barriers allow
//!   with instant detection);
//! - full DAG: every stack starts `hop` seconds after its own last dependency finished (no stage
//!   or wave barriers); roots start at 0.

use std::collections::HashMap;

use stackwave_core::plan::Plan;

/// The measured operation of one stack: CloudFormation's stack-level IN_PROGRESS and COMPLETE
/// event times (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: f64,
    pub end: f64,
}

/// Σ over stages of the longest chain of same-stage dependencies.
pub fn ideal(plan: &Plan, seconds: &dyn Fn(&str) -> f64) -> f64 {
    let mut finish: HashMap<&str, f64> = HashMap::new();
    let mut per_stage: HashMap<u32, f64> = HashMap::new();
    // Plan order is stage, then wave: every same-stage dependency comes first.
    for s in &plan.stacks {
        let before = s
            .depends_on
            .iter()
            .filter(|d| {
                plan.stack(d)
                    .is_some_and(|dep| dep.stage_index == s.stage_index)
            })
            .filter_map(|d| finish.get(d.as_str()).copied())
            .fold(0.0, f64::max);
        let end = before + seconds(&s.name);
        finish.insert(s.name.as_str(), end);
        let stage = per_stage.entry(s.stage_index).or_insert(0.0);
        *stage = stage.max(end);
    }
    per_stage.values().sum()
}

/// Σ over waves of the wave's longest stack.
pub fn wave_floor(plan: &Plan, seconds: &dyn Fn(&str) -> f64) -> f64 {
    plan.stages
        .iter()
        .flat_map(|st| st.waves.iter())
        .map(|w| w.iter().map(|s| seconds(s)).fold(0.0, f64::max))
        .sum()
}

/// The full-DAG schedule: start and end of every stack, and the makespan.
#[derive(Debug, Clone, PartialEq)]
pub struct Dag {
    pub makespan: f64,
    pub windows: HashMap<String, Window>,
}

pub fn dag(plan: &Plan, seconds: &dyn Fn(&str) -> f64, hop: f64) -> Dag {
    let mut windows: HashMap<String, Window> = HashMap::new();
    // Plan order is topological: dependencies are in the same stage's earlier waves or in
    // earlier stages.
    for s in &plan.stacks {
        let start = s
            .depends_on
            .iter()
            .filter_map(|d| windows.get(d).map(|w| w.end + hop))
            .fold(0.0, f64::max);
        windows.insert(
            s.name.clone(),
            Window {
                start,
                end: start + seconds(&s.name),
            },
        );
    }
    let makespan = windows.values().map(|w| w.end).fold(0.0, f64::max);
    Dag { makespan, windows }
}

/// The gap between one wave's last stack settling and the next wave's first stack starting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Handoff {
    pub seconds: f64,
    /// The next wave is the first of the next stage.
    pub across_stages: bool,
}

/// Every wave boundary of the run, in order (waves whose stacks have no window are skipped).
pub fn handoffs(plan: &Plan, windows: &HashMap<String, Window>) -> Vec<Handoff> {
    let mut waves: Vec<(u32, Vec<&Window>)> = Vec::new();
    for stage in &plan.stages {
        for wave in &stage.waves {
            let w: Vec<&Window> = wave.iter().filter_map(|s| windows.get(s)).collect();
            if !w.is_empty() {
                waves.push((stage.index, w));
            }
        }
    }
    waves
        .windows(2)
        .map(|pair| {
            let settled = pair[0].1.iter().map(|w| w.end).fold(f64::MIN, f64::max);
            let next = pair[1].1.iter().map(|w| w.start).fold(f64::MAX, f64::min);
            Handoff {
                seconds: next - settled,
                across_stages: pair[0].0 != pair[1].0,
            }
        })
        .collect()
}

/// Per stack outside the run's first wave: its start minus the moment it could have started
/// in a full-DAG schedule (its last dependency settled; the run's first stack start when it
/// has no dependency).
pub fn dependency_waits(plan: &Plan, windows: &HashMap<String, Window>) -> Vec<f64> {
    let first_start = windows.values().map(|w| w.start).fold(f64::MAX, f64::min);
    let first_wave: Vec<&String> = plan
        .stages
        .first()
        .and_then(|s| s.waves.first())
        .map(|w| w.iter().collect())
        .unwrap_or_default();
    plan.stacks
        .iter()
        .filter(|s| !first_wave.contains(&&s.name))
        .filter_map(|s| {
            let own = windows.get(&s.name)?;
            let ready = if s.depends_on.is_empty() {
                first_start
            } else {
                s.depends_on
                    .iter()
                    .filter_map(|d| windows.get(d).map(|w| w.end))
                    .fold(f64::MIN, f64::max)
            };
            Some(own.start - ready)
        })
        .collect()
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
        assert_eq!(wave_floor(&p, &|_| 2.0), 12.0);
        // No cross-stage dependency: the DAG runs every chain at once.
        assert_eq!(dag(&p, &|_| 2.0, 0.0).makespan, 4.0);
        assert_eq!(dag(&p, &|_| 2.0, 1.0).makespan, 5.0);
    }

    #[test]
    fn fan_in_links_stages_in_the_dag() {
        let p = plan(3, 4, Shape::FanIn);
        assert_eq!(ideal(&p, &|_| 2.0), 12.0);
        assert_eq!(dag(&p, &|_| 2.0, 0.0).makespan, 12.0);
        // A slow stack that nothing waits for within its stage still bounds the stage.
        let slow = |s: &str| if s == "t-s1-n1-e" { 10.0 } else { 2.0 };
        assert_eq!(ideal(&p, &slow), 4.0 + 12.0 + 4.0);
        assert_eq!(wave_floor(&p, &slow), 4.0 + 12.0 + 4.0);
    }

    #[test]
    fn handoffs_and_waits_from_windows() {
        let p = plan(2, 2, Shape::FanIn);
        // s0: n0 (wave 0) then n1 (wave 1); s1: n0 (wave 0, after s0-n1) then n1 (wave 1).
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
        let h = handoffs(&p, &windows);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].seconds, 2.0);
        assert!(!h[0].across_stages);
        assert_eq!(h[1].seconds, 3.0);
        assert!(h[1].across_stages);
        assert_eq!(h[2].seconds, 2.5);
        let mut waits = dependency_waits(&p, &windows);
        waits.sort_by(f64::total_cmp);
        assert_eq!(waits, vec![2.0, 2.5, 3.0]);
    }
}
