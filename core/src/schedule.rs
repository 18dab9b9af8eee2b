//! The dependency schedule (docs/design.md, "Schedule"): which stacks may start now.
//!
//! A stack is ready once every stack it depends on (`dependsOn` and `{output}` references,
//! [`crate::plan::PlannedStack::depends_on`]) has succeeded (created, updated or unchanged).
//! There are no waves: a stack never waits for an unrelated one. At most `max_in_flight`
//! stacks of the run are in flight at once. Once a stack has failed, nothing new starts; the
//! stage settles when the stacks already in flight have.
//!
//! The schedule works on one *stage* at a time: by default the manifest's stages are
//! barriers, so a stage's stacks depend only on each other and on earlier stages (which have
//! all succeeded before it starts). With `schedule: dependencies` the plan has one stage
//! holding every stack, and the same rules honour cross-stage dependencies.
//!
//! The state ([`ScheduleState`]) is what the run has started and how each stack settled; it is
//! stored in S3 between scheduling steps ([`crate::io::RunContext::schedule_key`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::plan::PlannedStack;
use crate::record::{Action, Phase, StackRecord};

/// How a stack the schedule started has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Created, updated or unchanged: its dependants may start.
    Succeeded,
    /// Failed: nothing new starts.
    Failed,
}

impl Outcome {
    /// A settled record's outcome; `None` while the record is not done.
    pub fn of(record: &StackRecord) -> Option<Outcome> {
        if record.phase != Phase::Done {
            return None;
        }
        Some(match record.action {
            Action::Created | Action::Updated | Action::Unchanged => Outcome::Succeeded,
            _ => Outcome::Failed,
        })
    }
}

/// What the run has started, and how the stacks it started have settled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleState {
    /// Every stack deploy-stack was asked to start (settled or not).
    #[serde(default)]
    pub started: BTreeSet<String>,
    /// The started stacks that have settled.
    #[serde(default)]
    pub settled: BTreeMap<String, Outcome>,
    /// Scheduling steps so far (for logs and the fallback poll).
    #[serde(default)]
    pub rounds: u32,
    /// The last step that completed (its `$$.State.EnteredTime`) and its answer: a retry of
    /// that step (its answer was lost, e.g. to a timeout) gets the same answer, so the stacks
    /// it started are started, not taken for stacks whose deploy-stack failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_output: Option<crate::io::ScheduleOutput>,
    /// The segment running the loop and the history it has used
    /// ([`crate::budget::Segment::enter`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<crate::budget::Segment>,
}

impl ScheduleState {
    /// The answer of `step` if it already completed: a retry replays it.
    pub fn replay(&self, step: Option<&str>) -> Option<&crate::io::ScheduleOutput> {
        let step = step?;
        (self.last_step.as_deref() == Some(step))
            .then_some(self.last_output.as_ref())
            .flatten()
    }

    /// Remember `step`'s answer.
    pub fn answered(&mut self, step: Option<&str>, output: &crate::io::ScheduleOutput) {
        self.last_step = step.map(str::to_string);
        self.last_output = step.map(|_| output.clone());
    }
}

impl ScheduleState {
    /// Started and not settled.
    pub fn in_flight(&self) -> impl Iterator<Item = &String> {
        self.started
            .iter()
            .filter(|s| !self.settled.contains_key(s.as_str()))
    }

    pub fn in_flight_count(&self) -> usize {
        self.in_flight().count()
    }
}

/// The schedule's answer for a stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Stacks to start now, in manifest order (at most `max_in_flight` minus those in flight).
    pub ready: Vec<String>,
    /// Every stack of the stage has settled, or one failed and none is in flight any more.
    pub settled: bool,
    /// A stack of the stage failed.
    pub any_failed: bool,
    pub in_flight: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Stacks that can never start: not started, nothing in flight, and a dependency that is
    /// neither settled nor able to start (a dependency outside the plan, or a cycle; the plan
    /// refuses both, so this is a bug if it is ever non-empty).
    pub stuck: Vec<String>,
}

/// A stack to schedule and the stacks it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node<'a> {
    pub name: &'a str,
    pub waits_for: &'a [String],
}

impl<'a> Node<'a> {
    /// A deployment: a stack waits for its dependencies.
    pub fn of(stack: &'a PlannedStack) -> Self {
        Node {
            name: &stack.name,
            waits_for: &stack.depends_on,
        }
    }
}

/// How a settled stack counts for the stacks that wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Deploying: only a success satisfies a waiter, and a failure starts nothing new.
    Deploy,
    /// Rolling back: any settled rollback (restored or failed) lets the next one start, and a
    /// failed one stops nothing (everything that can be restored is).
    Rollback,
}

/// Which of the stage's stacks start now. `stage` is the stage's stacks in manifest order;
/// `max_in_flight` caps the stacks in flight in the whole run (0 counts as 1).
pub fn decide(stage: &[&PlannedStack], state: &ScheduleState, max_in_flight: usize) -> Decision {
    let nodes: Vec<Node> = stage.iter().map(|s| Node::of(s)).collect();
    decide_nodes(&nodes, state, max_in_flight, Rules::Deploy)
}

/// [`decide`] for any graph (the rollback's reversed one) under `rules`.
pub fn decide_nodes(
    stage: &[Node],
    state: &ScheduleState,
    max_in_flight: usize,
    rules: Rules,
) -> Decision {
    let mut d = Decision {
        in_flight: state.in_flight_count(),
        ..Decision::default()
    };
    for s in stage {
        match state.settled.get(s.name) {
            Some(Outcome::Succeeded) => d.succeeded += 1,
            Some(Outcome::Failed) => d.failed += 1,
            None => {}
        }
    }
    d.any_failed = d.failed > 0;
    let pending: Vec<&Node> = stage
        .iter()
        .filter(|s| !state.started.contains(s.name))
        .collect();
    let stage_in_flight = stage
        .iter()
        .filter(|s| state.started.contains(s.name) && !state.settled.contains_key(s.name))
        .count();
    if d.any_failed && rules == Rules::Deploy {
        d.settled = stage_in_flight == 0;
        return d;
    }
    let satisfied = |name: &str| match rules {
        Rules::Deploy => state.settled.get(name) == Some(&Outcome::Succeeded),
        Rules::Rollback => state.settled.contains_key(name),
    };
    let room = max_in_flight.max(1).saturating_sub(d.in_flight);
    d.ready = pending
        .iter()
        .filter(|s| s.waits_for.iter().all(|dep| satisfied(dep)))
        .take(room)
        .map(|s| s.name.to_string())
        .collect();
    d.settled = pending.is_empty() && stage_in_flight == 0;
    if !d.settled && d.ready.is_empty() && d.in_flight == 0 {
        d.stuck = pending.iter().map(|s| s.name.to_string()).collect();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(name: &str, deps: &[&str]) -> PlannedStack {
        PlannedStack {
            name: name.into(),
            stage: "s".into(),
            stage_index: 0,
            wave: 0,
            template: "t.yaml".into(),
            parameters: Default::default(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            tags: Default::default(),
            capabilities: vec![],
            timeout_minutes: 60,
            secret_parameters: vec![],
        }
    }

    fn state(started: &[&str], settled: &[(&str, Outcome)]) -> ScheduleState {
        ScheduleState {
            started: started.iter().map(|s| s.to_string()).collect(),
            settled: settled.iter().map(|(s, o)| (s.to_string(), *o)).collect(),
            ..ScheduleState::default()
        }
    }

    #[test]
    fn a_retried_step_replays_the_answer_of_the_step_that_completed() {
        let output = crate::io::ScheduleOutput {
            ready: vec!["Net".into()],
            settled: false,
            any_failed: false,
            wait_seconds: 5,
            in_flight: 0,
            succeeded: 0,
            failed: 0,
            failed_stacks: vec![],
            hand_over: false,
        };
        let mut s = state(&[], &[]);
        assert_eq!(s.replay(Some("2026-12-03T10:00:00.000Z")), None);
        s.answered(Some("2026-12-03T10:00:00.000Z"), &output);
        assert_eq!(s.replay(Some("2026-12-03T10:00:00.000Z")), Some(&output));
        // The next step (entered later) decides afresh; so does a step without a time.
        assert_eq!(s.replay(Some("2026-12-03T10:00:05.000Z")), None);
        assert_eq!(s.replay(None), None);
        s.answered(None, &output);
        assert_eq!(s.replay(Some("2026-12-03T10:00:00.000Z")), None);
    }

    use Outcome::{Failed, Succeeded};

    #[test]
    fn independent_stacks_all_start_and_a_dependant_waits_only_for_its_dependency() {
        // Db depends on Net; Slow is unrelated. Net done while Slow still runs: Db starts.
        let stacks = [stack("Net", &[]), stack("Slow", &[]), stack("Db", &["Net"])];
        let stage: Vec<&PlannedStack> = stacks.iter().collect();
        let d = decide(&stage, &ScheduleState::default(), 10);
        assert_eq!(d.ready, vec!["Net", "Slow"]);
        assert!(!d.settled);

        let d = decide(&stage, &state(&["Net", "Slow"], &[("Net", Succeeded)]), 10);
        assert_eq!(
            d.ready,
            vec!["Db"],
            "Db must not wait for the unrelated Slow"
        );
        assert_eq!((d.in_flight, d.succeeded), (1, 1));

        let d = decide(
            &stage,
            &state(
                &["Net", "Slow", "Db"],
                &[("Net", Succeeded), ("Slow", Succeeded), ("Db", Succeeded)],
            ),
            10,
        );
        assert!(d.settled && !d.any_failed && d.ready.is_empty());
        assert_eq!(d.succeeded, 3);
    }

    #[test]
    fn max_in_flight_caps_the_run_not_the_stage() {
        let stacks = [
            stack("A", &[]),
            stack("B", &[]),
            stack("C", &[]),
            stack("D", &[]),
        ];
        let stage: Vec<&PlannedStack> = stacks.iter().collect();
        assert_eq!(
            decide(&stage, &ScheduleState::default(), 2).ready,
            vec!["A", "B"]
        );
        // One slot free; a stack of another stage in flight counts too.
        let d = decide(
            &stage,
            &state(
                &["A", "B", "Other"],
                &[("A", Succeeded), ("Other", Succeeded)],
            ),
            2,
        );
        assert_eq!(d.ready, vec!["C"]);
        let d = decide(&stage, &state(&["A", "B", "X"], &[("A", Succeeded)]), 2);
        assert!(d.ready.is_empty() && !d.settled && d.stuck.is_empty());
        // 0 counts as 1.
        assert_eq!(
            decide(&stage, &ScheduleState::default(), 0).ready,
            vec!["A"]
        );
    }

    #[test]
    fn a_failure_starts_nothing_new_and_settles_once_nothing_is_in_flight() {
        let stacks = [
            stack("A", &[]),
            stack("B", &[]),
            stack("C", &["A"]),
            stack("D", &[]),
        ];
        let stage: Vec<&PlannedStack> = stacks.iter().collect();
        let d = decide(&stage, &state(&["A", "B"], &[("A", Failed)]), 2);
        assert!(d.any_failed && !d.settled, "B is still in flight");
        assert!(
            d.ready.is_empty(),
            "D is independent but nothing new starts after a failure"
        );
        let d = decide(
            &stage,
            &state(&["A", "B"], &[("A", Failed), ("B", Succeeded)]),
            2,
        );
        assert!(d.any_failed && d.settled && d.ready.is_empty());
        assert_eq!((d.failed, d.succeeded), (1, 1));
    }

    #[test]
    fn cross_stage_dependencies_in_one_stage_and_earlier_stages_satisfy_later_ones() {
        // Stage mode: Api (stage 2) depends on Db (stage 1), settled by an earlier stage.
        let stacks = [stack("Api", &["Db"])];
        let stage: Vec<&PlannedStack> = stacks.iter().collect();
        assert_eq!(
            decide(&stage, &state(&["Db"], &[("Db", Succeeded)]), 10).ready,
            vec!["Api"]
        );
        // A dependency never started and not in the stage: nothing can start it.
        let d = decide(&stage, &ScheduleState::default(), 10);
        assert!(d.ready.is_empty() && !d.settled);
        assert_eq!(d.stuck, vec!["Api"]);
    }

    #[test]
    fn a_rollback_goes_on_past_a_failed_restore_and_waits_for_settled_waiters() {
        // Reversed graph: Net is restored after Db (which depended on it) and Api.
        let db_waits: Vec<String> = vec![];
        let net_waits: Vec<String> = vec!["Db".into(), "Api".into()];
        let nodes = [
            Node {
                name: "Db",
                waits_for: &db_waits,
            },
            Node {
                name: "Api",
                waits_for: &db_waits,
            },
            Node {
                name: "Net",
                waits_for: &net_waits,
            },
        ];
        let d = decide_nodes(&nodes, &ScheduleState::default(), 10, Rules::Rollback);
        assert_eq!(d.ready, vec!["Db", "Api"]);
        let d = decide_nodes(
            &nodes,
            &state(&["Db", "Api"], &[("Db", Failed)]),
            10,
            Rules::Rollback,
        );
        assert!(d.ready.is_empty() && !d.settled, "Net waits for Api too");
        let d = decide_nodes(
            &nodes,
            &state(&["Db", "Api"], &[("Db", Failed), ("Api", Succeeded)]),
            10,
            Rules::Rollback,
        );
        assert_eq!(
            d.ready,
            vec!["Net"],
            "a failed restore does not stop the rollback"
        );
        assert!(d.any_failed && !d.settled);
    }

    #[test]
    fn an_empty_stage_is_settled() {
        let d = decide(&[], &ScheduleState::default(), 10);
        assert!(d.settled && d.ready.is_empty() && d.stuck.is_empty());
    }

    #[test]
    fn state_round_trips_and_counts_in_flight() {
        let s = state(&["A", "B", "C"], &[("B", Failed)]);
        assert_eq!(s.in_flight().collect::<Vec<_>>(), vec!["A", "C"]);
        let json = serde_json::to_value(&s).expect("serialize");
        assert_eq!(json["settled"]["B"], "failed");
        let back: ScheduleState = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, s);
        let empty: ScheduleState = serde_json::from_str("{}").expect("defaults");
        assert_eq!(empty, ScheduleState::default());
    }
}
