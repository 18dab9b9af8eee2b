//! What one execution's `GetExecutionHistory` says: events, state transitions, the scheduling
//! loop's steps (Schedule, DeployReady, DeployStack, Park and how each park ended: TaskSucceeded =
//! woken by a stack's event, TaskTimedOut = the fallback poll), the largest state input/output,
//! and how long each Lambda invocation and state took.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sfn::types::HistoryEvent;

/// A history event reduced to what the benchmarks read.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub id: i64,
    pub prev: i64,
    pub kind: String,
    /// Seconds since the epoch.
    pub t: f64,
    /// The state's name (state entered/exited events).
    pub name: Option<String>,
    /// The Lambda function ARN (LambdaFunctionScheduled).
    pub resource: Option<String>,
    /// Bytes of the event's input or output payload, if it carries one.
    pub payload: usize,
}

impl Ev {
    pub fn from_sdk(e: &HistoryEvent) -> Ev {
        let mut name = None;
        let mut resource = None;
        let mut payload = 0usize;
        if let Some(d) = e.state_entered_event_details() {
            name = Some(d.name().to_string());
            payload = d.input().map_or(0, str::len);
        }
        if let Some(d) = e.state_exited_event_details() {
            name = Some(d.name().to_string());
            payload = d.output().map_or(0, str::len);
        }
        if let Some(d) = e.lambda_function_scheduled_event_details() {
            resource = Some(d.resource().to_string());
            payload = d.input().map_or(0, str::len);
        }
        if let Some(d) = e.lambda_function_succeeded_event_details() {
            payload = d.output().map_or(0, str::len);
        }
        if let Some(d) = e.execution_started_event_details() {
            payload = d.input().map_or(0, str::len);
        }
        if let Some(d) = e.execution_succeeded_event_details() {
            payload = d.output().map_or(0, str::len);
        }
        Ev {
            id: e.id(),
            prev: e.previous_event_id(),
            kind: e.r#type().as_str().to_string(),
            t: e.timestamp().as_secs_f64(),
            name,
            resource,
            payload,
        }
    }
}

/// The figures of one execution's history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub events: u64,
    /// States entered: what Standard workflows bill as state transitions.
    pub transitions: u64,
    /// Schedule steps (the check task, mode schedule).
    pub schedule_steps: u64,
    /// DeployReady maps entered, and DeployStack tasks.
    pub deploy_rounds: u64,
    pub deploy_stacks: u64,
    /// Park tasks entered; ended by TaskSucceeded (woken) or TaskTimedOut (fallback poll).
    pub parks: u64,
    pub parks_woken: u64,
    pub parks_timed_out: u64,
    /// Stages map iterations (each ends in StageDone or StageFailed).
    pub stages: u64,
    /// Each park: entered, exited, woken.
    pub park_spans: Vec<(f64, f64, bool)>,
    /// Seconds of each entry of each state (entered → exited).
    pub state_durations: BTreeMap<String, Vec<f64>>,
    /// The largest state input/output (state entered/exited events) in bytes, and where.
    pub max_state_bytes: usize,
    pub max_state_at: String,
    /// The largest Lambda payload (scheduled input / succeeded output) in bytes, and of which function.
    pub max_lambda_bytes: usize,
    pub max_lambda_at: String,
    /// The first Schedule step entered and the last one exited (the scheduling loop's span).
    pub loop_start: f64,
    pub loop_end: f64,
    /// ExecutionStarted → last event, seconds.
    pub start: f64,
    pub end: f64,
    /// Seconds from LambdaFunctionScheduled to LambdaFunctionSucceeded, per function name
    /// (`plan`, `deploy-stack`, ...).
    pub lambda_seconds: BTreeMap<String, Vec<f64>>,
    /// Seconds spent in each state, summed over its entries (parallel entries add up).
    pub state_seconds: BTreeMap<String, f64>,
    /// The events of each execution of the run: the run's own first, then each loop segment's.
    /// Step Functions' 25,000-event limit holds for each of them.
    pub execution_events: Vec<u64>,
}

impl Stats {
    pub fn makespan(&self) -> f64 {
        self.end - self.start
    }

    /// Execution start → first Schedule step, plus last Schedule step → execution end: the
    /// plan, notify and finalize around the scheduling loop.
    pub fn outside_loop(&self) -> f64 {
        if self.schedule_steps == 0 {
            return self.makespan();
        }
        (self.loop_start - self.start) + (self.end - self.loop_end)
    }

    /// The history identity of `stackwave_core::budget`: the events its per-state counts
    /// predict from this run's counted states.
    pub fn model_events(&self) -> u64 {
        use stackwave_core::budget::{PER_SEGMENT, SEGMENT_FIXED};
        // Each stage has one segment in `PER_STAGE`; a segment that hands over adds another.
        let hand_overs = self.segments().saturating_sub(self.stages);
        stackwave_core::budget::history_events(
            self.stages,
            self.schedule_steps,
            self.deploy_rounds,
            self.deploy_stacks,
            self.parks,
        ) + hand_overs * (PER_SEGMENT + SEGMENT_FIXED)
    }

    /// The run's own execution's events.
    pub fn parent_events(&self) -> u64 {
        self.execution_events.first().copied().unwrap_or(0)
    }

    /// The loop segments (child executions) of the run.
    pub fn segments(&self) -> u64 {
        self.execution_events.len().saturating_sub(1) as u64
    }

    /// The largest segment's events.
    pub fn max_segment_events(&self) -> u64 {
        self.execution_events
            .iter()
            .skip(1)
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// The largest execution's events: what the 25,000-event limit bounds.
    pub fn max_execution_events(&self) -> u64 {
        self.parent_events().max(self.max_segment_events())
    }

    pub fn invocations(&self) -> u64 {
        self.lambda_seconds.values().map(|v| v.len() as u64).sum()
    }
}

/// `stackwave-check` → `check`, from a function ARN or name.
pub fn function_of(resource: &str) -> String {
    let name = resource.rsplit(':').next().unwrap_or(resource);
    name.strip_prefix("stackwave-").unwrap_or(name).to_string()
}

/// The figures of a run's history: its execution's events, then each segment's, each
/// execution beginning with its `ExecutionStarted` (event ids restart in each).
pub fn analyze(events: &[Ev]) -> Stats {
    // (execution, event id) → event.
    let mut by_id: HashMap<(usize, i64), &Ev> = HashMap::new();
    let mut execution = 0usize;
    let mut executions: Vec<usize> = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if e.kind == "ExecutionStarted" && i > 0 {
            execution += 1;
        }
        executions.push(execution);
        by_id.insert((execution, e.id), e);
    }
    let mut s = Stats {
        events: events.len() as u64,
        start: events.iter().map(|e| e.t).fold(f64::MAX, f64::min),
        end: events.iter().map(|e| e.t).fold(f64::MIN, f64::max),
        ..Default::default()
    };
    let mut entered: HashMap<&str, std::collections::VecDeque<f64>> = HashMap::new();
    s.execution_events = vec![0; execution + 1];
    for x in &executions {
        s.execution_events[*x] += 1;
    }
    // Parks run one at a time per execution: how the current one ended.
    let mut park_woken = false;
    // The Task state last entered: a Task* event belongs to a park only while in one (the run's
    // own execution has the segment tasks, RunStage and RunRollback).
    let mut in_park = false;
    for (e, x) in events.iter().zip(executions.iter().copied()) {
        if let Some(name) = e.name.as_deref() {
            if e.kind.ends_with("StateEntered") {
                entered.entry(name).or_default().push_back(e.t);
            } else if e.kind.ends_with("StateExited") {
                if let Some(t) = entered.get_mut(name).and_then(|q| q.pop_front()) {
                    *s.state_seconds.entry(name.to_string()).or_insert(0.0) += e.t - t;
                    s.state_durations
                        .entry(name.to_string())
                        .or_default()
                        .push(e.t - t);
                    if name == "Park" {
                        s.park_spans.push((t, e.t, park_woken));
                    }
                    if name == "Schedule" {
                        s.loop_end = e.t;
                    }
                }
            }
        }
        if e.kind.ends_with("StateEntered") {
            s.transitions += 1;
            match (e.kind.as_str(), e.name.as_deref()) {
                ("TaskStateEntered", Some("Schedule")) => {
                    s.schedule_steps += 1;
                    if s.schedule_steps == 1 {
                        s.loop_start = e.t;
                    }
                }
                ("TaskStateEntered", Some("DeployStack")) => s.deploy_stacks += 1,
                ("TaskStateEntered", Some("Park")) => {
                    s.parks += 1;
                    park_woken = false;
                    in_park = true;
                }
                ("TaskStateEntered", _) => in_park = false,
                ("MapStateEntered", Some("DeployReady")) => s.deploy_rounds += 1,
                // Each stage iteration of the run's own execution ends in StageDone or
                // StageFailed (a segment's states of those names are its own ends).
                (_, Some("StageDone" | "StageFailed")) if x == 0 => s.stages += 1,
                _ => {}
            }
        }
        match e.kind.as_str() {
            "TaskSucceeded" if in_park => {
                s.parks_woken += 1;
                park_woken = true;
            }
            "TaskTimedOut" if in_park => s.parks_timed_out += 1,
            _ => {}
        }
        let is_state = e.kind.ends_with("StateEntered") || e.kind.ends_with("StateExited");
        if is_state && e.payload > s.max_state_bytes {
            s.max_state_bytes = e.payload;
            let side = if e.kind.ends_with("Entered") {
                "input"
            } else {
                "output"
            };
            s.max_state_at = format!("{} {side}", e.name.as_deref().unwrap_or("?"));
        }
        match e.kind.as_str() {
            "LambdaFunctionScheduled" if e.payload > s.max_lambda_bytes => {
                s.max_lambda_bytes = e.payload;
                s.max_lambda_at = format!(
                    "{} input",
                    function_of(e.resource.as_deref().unwrap_or("?"))
                );
            }
            "LambdaFunctionSucceeded" => {
                // Succeeded → Started → Scheduled.
                let scheduled = by_id
                    .get(&(x, e.prev))
                    .and_then(|started| by_id.get(&(x, started.prev)))
                    .filter(|x| x.kind == "LambdaFunctionScheduled");
                if let Some(sch) = scheduled {
                    let f = function_of(sch.resource.as_deref().unwrap_or("?"));
                    if e.payload > s.max_lambda_bytes {
                        s.max_lambda_bytes = e.payload;
                        s.max_lambda_at = format!("{f} output");
                    }
                    s.lambda_seconds.entry(f).or_default().push(e.t - sch.t);
                }
            }
            _ => {}
        }
    }
    if events.is_empty() {
        s.start = 0.0;
        s.end = 0.0;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, prev: i64, kind: &str, t: f64) -> Ev {
        Ev {
            id,
            prev,
            kind: kind.to_string(),
            t,
            name: None,
            resource: None,
            payload: 0,
        }
    }

    #[test]
    fn counts_and_lambda_times() {
        let mut evs = vec![
            ev(1, 0, "ExecutionStarted", 100.0),
            ev(2, 1, "TaskStateEntered", 100.0),
            ev(3, 2, "LambdaFunctionScheduled", 100.1),
            ev(4, 3, "LambdaFunctionStarted", 100.1),
            ev(5, 4, "LambdaFunctionSucceeded", 100.6),
            ev(6, 5, "TaskStateExited", 100.6),
            ev(7, 6, "WaitStateEntered", 100.6),
            ev(8, 7, "WaitStateExited", 101.6),
            ev(9, 8, "ExecutionSucceeded", 102.0),
        ];
        evs[1].name = Some("Plan".into());
        evs[1].payload = 40;
        evs[2].resource = Some("arn:aws:lambda:us-east-1:1:function:stackwave-plan".into());
        evs[4].payload = 900;
        evs[5].name = Some("Plan".into());
        evs[5].payload = 700;
        let s = analyze(&evs);
        assert_eq!(s.events, 9);
        assert_eq!(s.transitions, 2);
        assert_eq!(s.schedule_steps, 0);
        assert_eq!(s.state_durations["Plan"].len(), 1);
        assert_eq!(s.max_state_bytes, 700);
        assert_eq!(s.max_state_at, "Plan output");
        assert_eq!(s.max_lambda_bytes, 900);
        assert_eq!(s.max_lambda_at, "plan output");
        assert_eq!(s.makespan(), 2.0);
        let plan = &s.lambda_seconds["plan"];
        assert_eq!(plan.len(), 1);
        assert!((plan[0] - 0.5).abs() < 1e-9);
        assert_eq!(s.invocations(), 1);
        assert!((s.state_seconds["Plan"] - 0.6).abs() < 1e-9);
    }

    #[test]
    fn function_names() {
        assert_eq!(
            function_of("arn:aws:lambda:us-east-1:1:function:stackwave-deploy-stack"),
            "deploy-stack"
        );
        assert_eq!(function_of("stackwave-check"), "check");
    }
}
