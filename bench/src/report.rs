//! BENCHMARKS.md, `bench/results.json` and the timeline from the measurements.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};
use stackwave_core::budget::{self, Estimate, Settings, HISTORY_LIMIT, STATE_LIMIT_BYTES};
use stackwave_core::plan::Plan;
use stackwave_core::synth::{self, Shape};

use crate::cost::{self, Costed, WallTimes};
use crate::profiles;
use crate::stats::{dollars, fixed, median, thousands};
use crate::{ideal_of, MakespanRun, Mode, Results};

/// The issue's targets.
pub const MAKESPAN_TARGET: f64 = 1.15;
pub const PROJECTED_TARGET: f64 = 1.03;
pub const EVENTS_TARGET: u64 = 800;
pub const COST_TARGET: f64 = 0.01;
/// A dependant starts within this many seconds of its dependency completing.
pub const DEPENDANT_TARGET: f64 = 2.0;
/// Seconds of every stack in the 30-minute figures.
pub const REAL_STACK_SECONDS: f64 = 1800.0;
/// One emulated second stands for one real minute.
pub const SCALE: f64 = 60.0;
/// Assumed at real scale: CreateChangeSet to an executable change set (CloudFormation takes
/// a few seconds to tens of seconds; change sets send no events).
pub const CHANGE_SET_SECONDS: f64 = 10.0;
/// Assumed at real scale: a stack settling to its event completing the parked task
/// (EventBridge delivery, the wake function, SendTaskSuccess).
pub const EVENT_DELAY_SECONDS: f64 = 1.0;

pub struct Rendered {
    pub markdown: String,
    pub json: Value,
    pub timeline: Option<String>,
}

fn cmd(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(stackwave_cli::local::repo_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn memory_gib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: f64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0 / 1024.0)
}

fn ok_runs(results: &Results, mode: Mode) -> Vec<&MakespanRun> {
    results
        .makespan
        .iter()
        .filter(|r| r.mode == mode && r.ok())
        .collect()
}

fn med_of(runs: &[&MakespanRun], f: impl Fn(&MakespanRun) -> f64) -> Option<f64> {
    median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
}

/// Median seconds of every entry of `state` over `runs`.
fn state_median(runs: &[&MakespanRun], state: &str) -> Option<f64> {
    let all: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.stats.state_durations.get(state))
        .flatten()
        .copied()
        .collect();
    median(&all)
}

/// Median milliseconds and count per function from `(function, ms)` pairs.
fn gateway_medians(inv: &[(String, f64)]) -> BTreeMap<String, (usize, f64)> {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (f, ms) in inv {
        by.entry(f.clone()).or_default().push(*ms);
    }
    by.into_iter()
        .filter_map(|(f, v)| Some((f, (v.len(), median(&v)?))))
        .collect()
}

fn wall_times(medians: &BTreeMap<String, (usize, f64)>) -> Option<WallTimes> {
    let get = |f: &str| medians.get(f).map(|(_, ms)| ms / 1000.0);
    Some(WallTimes {
        plan: get("plan")?,
        deploy: get("deploy-stack")?,
        check: get("check")?,
        wake: get("wake")?,
        notify: get("notify")?,
        finalize: get("finalize")?,
    })
}

/// Real seconds of a Bellyfed stack.
fn real_seconds(stack: &str) -> f64 {
    profiles::bellyfed_seconds(stack) * SCALE
}

/// The model settings at real scale: the defaults, the assumed change-set and event delays,
/// and the step times measured on the emulator.
fn real_settings(runs: &[&MakespanRun], change_set_seconds: f64) -> Settings {
    Settings {
        change_set_seconds,
        event_delay_seconds: EVENT_DELAY_SECONDS,
        schedule_seconds: state_median(runs, "Schedule").unwrap_or(0.0),
        deploy_seconds: state_median(runs, "DeployReady").unwrap_or(0.0),
        ..Settings::default()
    }
}

/// The makespan of a mode projected to real durations.
struct Projected {
    settings: Settings,
    estimate: Estimate,
    outside: f64,
    ideal: f64,
}

impl Projected {
    fn makespan(&self) -> f64 {
        self.estimate.makespan_seconds + self.outside
    }

    fn ratio(&self) -> f64 {
        self.makespan() / self.ideal
    }
}

fn project(results: &Results, mode: Mode, change_set_seconds: f64) -> Option<Projected> {
    let runs = ok_runs(results, mode);
    let outside = med_of(&runs, |r| r.stats.outside_loop())?;
    let plan = match mode {
        Mode::Stages => &results.bellyfed_plan,
        Mode::Dependencies => &results.bellyfed_dag_plan,
    };
    let settings = real_settings(&runs, change_set_seconds);
    Some(Projected {
        estimate: budget::estimate(plan, &settings, &real_seconds),
        settings,
        outside,
        ideal: ideal_of(mode, plan, &real_seconds),
    })
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn round3(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!((x * 1000.0).round() / 1000.0))
}

fn two_thousand_plan() -> Option<Plan> {
    let text = synth::manifest_yaml("sy", 5, 400, Shape::Independent, "t.yaml");
    stackwave_core::plan::from_text(&text, "e", &|_| true).ok()
}

pub fn render(results: &Results, preserved: Option<&str>) -> Rendered {
    let mut out = String::new();
    let o = &mut out;
    let commit = cmd("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = cmd("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let arch = cmd("uname", &["-m"]).unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let kernel = cmd("uname", &["-sr"]).unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);

    let stages = ok_runs(results, Mode::Stages);
    let dags = ok_runs(results, Mode::Dependencies);
    let stage_ratio = med_of(&stages, MakespanRun::ratio);
    let dag_ratio = med_of(&dags, MakespanRun::ratio);
    let proj_stage = project(results, Mode::Stages, CHANGE_SET_SECONDS);
    let gw = gateway_medians(&results.gateway);
    let wall = wall_times(&gw);
    let thirty = Settings {
        change_set_seconds: CHANGE_SET_SECONDS,
        event_delay_seconds: EVENT_DELAY_SECONDS,
        ..Settings::default()
    };
    let bf30 = budget::estimate(&results.bellyfed_plan, &thirty, &|_| REAL_STACK_SECONDS);
    let cost30: Option<Costed> = wall.map(|w| cost::stackwave(&bf30, w));
    let waits: Vec<f64> = stages.iter().flat_map(|r| r.dependency_waits()).collect();
    let dag_waits: Vec<f64> = dags.iter().flat_map(|r| r.dependency_waits()).collect();
    let max_wait = waits.iter().chain(&dag_waits).copied().reduce(f64::max);
    let lost = results.lost.as_ref();
    let lost_ratio = lost.filter(|r| r.ok()).map(MakespanRun::ratio);
    let scale = results.scale.as_ref();
    let scale_ok = scale.map(within_limits);

    // ── Header ─────────────────────────────────────────────────────────────────────────
    let _ = writeln!(o, "# stackwave benchmarks\n");
    let _ = writeln!(
        o,
        "`make bench` writes this file, `bench/results.json` and `bench/timeline.svg` (the \
         `stackwave-bench` crate in `bench/`). Every measured figure comes from the local \
         emulator — moto's server with stackwave's extension, the real \
         `statemachine/deploy.asl.json` in moto's Step Functions executor, the Rust handlers \
         behind the gateway, CloudFormation's status change events delivered to the wake \
         function through the stack status rule — measured in this one run, and is quoted as a \
         median (with the number of runs) or a count, and as a ratio. The machine is shared and \
         noisy: these are measurements, never timed assertions. Figures at real durations come \
         from `stackwave_core::budget`'s model of the state machine and are marked *model*.\n"
    );
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| date | {} |",
        results.started_at.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        o,
        "| commit | `{commit}`{} |",
        if dirty {
            " (the working tree also held uncommitted changes)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "| machine | `uname -m` {arch}, {cpus} CPUs, {} GiB memory, {kernel}; load average {} at the end of the run |",
        fixed(memory_gib(), 1),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "?".into())
    );
    let _ = writeln!(
        o,
        "| builds | debug (`cargo build`), the gateway runs every handler in one process |"
    );
    let _ = writeln!(
        o,
        "| bench run time | {:.1} min for the runs (`make bench` adds the build) |",
        results.runner_seconds / 60.0
    );
    if !results.problems.is_empty() {
        let _ = writeln!(o, "| problems | {} |", results.problems.join("; "));
    }
    let _ = writeln!(o);

    // ── Summary ────────────────────────────────────────────────────────────────────────
    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(
        o,
        "| figure | target | measured | verdict |\n|---|---|---|---|"
    );
    let _ = writeln!(
        o,
        "| Bellyfed (scaled profile), default polls, makespan / ideal on the emulator | ≤ {MAKESPAN_TARGET:.2} | {} (median of {} runs; makespan {}, ideal {}) | {} |",
        fixed(stage_ratio, 2),
        stages.len(),
        secs(med_of(&stages, |r| r.stats.makespan())),
        secs(stages.first().map(|r| r.ideal())),
        verdict(stage_ratio.map(|r| r <= MAKESPAN_TARGET))
    );
    let _ = writeln!(
        o,
        "| Bellyfed projected to real minutes (*model*, change sets {CHANGE_SET_SECONDS:.0} s, events {EVENT_DELAY_SECONDS:.0} s late, step times measured) | ≤ {PROJECTED_TARGET:.2} | {} | {} |",
        proj_stage.as_ref().map_or("—".into(), |p| format!(
            "{:.3} ({:.1} min against {:.0} min)",
            p.ratio(),
            p.makespan() / 60.0,
            p.ideal / 60.0
        )),
        verdict(proj_stage.as_ref().map(|p| p.ratio() <= PROJECTED_TARGET))
    );
    let _ = writeln!(
        o,
        "| Bellyfed history events, every stack 30 min (*model*, checked against the measured histories, section 4) | ≤ {EVENTS_TARGET} | {} | {} |",
        thousands(bf30.events),
        verdict(Some(bf30.events <= EVENTS_TARGET))
    );
    let _ = writeln!(
        o,
        "| Bellyfed cost per deploy, every stack 30 min (*model* + measured handler times) | ≤ {} | {} | {} |",
        dollars(COST_TARGET),
        cost30.as_ref().map_or("—".into(), |c| dollars(c.usd())),
        verdict(cost30.as_ref().map(|c| c.usd() <= COST_TARGET))
    );
    let _ = writeln!(
        o,
        "| {} stacks in one run | completes; ≤ {} events; every state ≤ {} B | {} | {} |",
        scale.map_or(2000, |s| s.stacks),
        thousands(HISTORY_LIMIT),
        thousands(STATE_LIMIT_BYTES),
        scale.map_or("not run".into(), scale_outcome),
        verdict(scale_ok)
    );
    if let Some(f) = results.scale_fit.as_ref() {
        let _ = writeln!(
            o,
            "| the largest run of that shape the worst-case check admits ({} stacks) | completes within both limits | {} | {} |",
            f.stacks,
            scale_outcome(f),
            verdict(Some(within_limits(f)))
        );
    }
    let _ = writeln!(
        o,
        "| every CloudFormation event dropped | completes on fallback polls; makespan / ideal reported | {} | {} |",
        lost.map_or("not run".into(), |r| format!(
            "{}, makespan / ideal {} (fallback {} s)",
            r.status,
            fixed(lost_ratio, 2),
            results.lost_fallback
        )),
        verdict(lost.map(MakespanRun::ok))
    );
    let _ = writeln!(
        o,
        "| Bellyfed with `schedule: dependencies`, makespan / its own ideal (the whole graph's critical path) | reported | {} (median of {} runs; makespan {}, ideal {}) | reported |",
        fixed(dag_ratio, 2),
        dags.len(),
        secs(med_of(&dags, |r| r.stats.makespan())),
        secs(dags.first().map(|r| r.ideal()))
    );
    let _ = writeln!(
        o,
        "| a dependant's start after its last dependency completed, default polls (every run, both modes) | ≤ {DEPENDANT_TARGET:.0} s | median {}, max {} ({} dependants) | {} |\n",
        secs(median(&waits.iter().chain(&dag_waits).copied().collect::<Vec<_>>())),
        secs(max_wait),
        waits.len() + dag_waits.len(),
        verdict(max_wait.map(|m| m <= DEPENDANT_TARGET))
    );

    // ── 1. Makespan ────────────────────────────────────────────────────────────────────
    let _ = writeln!(o, "## 1. Makespan against the ideal (measured)\n");
    let _ = writeln!(
        o,
        "- **Profile.** `examples/bellyfed` (14 stacks, 5 stages) with per-stack durations set \
         through the emulator's control API: one emulated second stands for one real minute \
         (Aurora 15 s, ECS service 6 s, network 3 s; ECS infra, Typesense infra, DB migration, \
         Typesense service, Lambda and frontend 2 s; the rest 1 s). Change sets are ready at \
         once in the emulator.\n\
         - **Runs.** {} round(s); in each, the Bellyfed manifest as written (`schedule: stages`) \
         and a copy with `schedule: dependencies` ran side by side in fresh environments, with \
         the execution defaults (polls 5→60 s, `fallbackPollSeconds` {}, `maxConcurrency` {}). \
         With events delivered the polls only matter while a change set is pending.\n\
         - **Makespan** = `ExecutionStarted` → the execution's last event (what a user waits, \
         plan, notify and finalize included). **Ideal** = Σ over stages of the longest \
         dependency chain inside the stage; for `schedule: dependencies`, the longest chain of \
         the whole graph. Both assume instant detection and no overhead.\n\
         - **Dependency wait** = a stack's CloudFormation start − the end of its last \
         dependency that holds it (same-stage dependencies with stage barriers). **Stage \
         handoff** = a stage's first start − the previous stage's last end.\n",
        results.rounds,
        stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
        stackwave_core::io::DEFAULT_MAX_CONCURRENCY
    );
    let _ = writeln!(
        o,
        "| schedule | runs | makespan | ideal | **makespan / ideal** | outside the loop (plan, notify, finalize) | dependency wait (median / max) | stage handoff | parks woken / timed out | history events |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (mode, runs, w) in [
        (Mode::Stages, &stages, &waits),
        (Mode::Dependencies, &dags, &dag_waits),
    ] {
        let handoffs: Vec<f64> = runs
            .iter()
            .flat_map(|r| crate::schedule::stage_handoffs(&r.plan, &r.windows))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | **{}** | {} | {} / {} | {} | {} / {} | {} |",
            mode.label(),
            runs.len(),
            secs(med_of(runs, |r| r.stats.makespan())),
            secs(runs.first().map(|r| r.ideal())),
            fixed(med_of(runs, MakespanRun::ratio), 2),
            secs(med_of(runs, |r| r.stats.outside_loop())),
            secs(median(w)),
            secs(w.iter().copied().reduce(f64::max)),
            if mode == Mode::Stages {
                secs(median(&handoffs))
            } else {
                "— (no barrier)".into()
            },
            fixed(med_of(runs, |r| r.stats.parks_woken as f64), 0),
            fixed(med_of(runs, |r| r.stats.parks_timed_out as f64), 0),
            fixed(med_of(runs, |r| r.stats.events as f64), 0),
        );
    }
    let _ = writeln!(o);
    let timeline = stages.first().map(|r| {
        crate::timeline::svg(
            &r.plan,
            &r.windows,
            r.stats.start,
            r.stats.end,
            &format!(
                "Bellyfed (scaled), schedule: stages, {}: {:.1} s against an ideal of {:.0} s",
                r.environment,
                r.stats.makespan(),
                r.ideal()
            ),
        )
    });
    if timeline.is_some() {
        let _ = writeln!(
            o,
            "The first run with stage barriers, one bar per stack from its CloudFormation start \
             to its end (seconds from the execution's start; a dashed line ends each stage):\n\n\
             ![timeline of one Bellyfed run](bench/timeline.svg)\n"
        );
    }

    // ── 2. Lost events ─────────────────────────────────────────────────────────────────
    let _ = writeln!(o, "## 2. Every event lost (measured)\n");
    match lost {
        Some(r) => {
            let _ = writeln!(
                o,
                "The emulator's events fault dropped every CloudFormation status change event \
                 (`stackwave local fault events --drop-rate 1`), so no park was woken and every \
                 park ended on its timeout. `fallbackPollSeconds` was {} s: the default {} s at \
                 one emulated second per real minute; `timeoutMinutes` was scaled likewise \
                 (60 → 1), since with the unscaled 60 minutes the plan step's worst-case \
                 history check refuses so short a fallback.\n\n\
                 | status | makespan | ideal | makespan / ideal | parks woken / timed out | history events |\n|---|---|---|---|---|---|\n\
                 | {} | {} | {} | {} | {} / {} | {} |\n",
                results.lost_fallback,
                stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
                r.status,
                secs(Some(r.stats.makespan())),
                secs(Some(r.ideal())),
                fixed(lost_ratio, 2),
                r.stats.parks_woken,
                r.stats.parks_timed_out,
                thousands(r.stats.events)
            );
        }
        None => {
            let _ = writeln!(o, "Not run (see problems above).\n");
        }
    }

    // ── 3. Projection ──────────────────────────────────────────────────────────────────
    let _ = writeln!(o, "## 3. Projected to real durations (*model*)\n");
    let _ = writeln!(
        o,
        "`budget::simulate` runs the state machine's loop as a discrete-event model with the \
         Bellyfed durations in real minutes. Assumed: a change set is executable \
         {CHANGE_SET_SECONDS:.0} s after CreateChangeSet; deploy-stack waits for it (up to \
         {:.0} s) and executes it, so its DeployReady round lasts as long (a slower change set \
         is left to the scheduling step, which parks `pollSeconds.min`, 5 s, at a time: change \
         sets send no events); a stack's event completes the parked task \
         {EVENT_DELAY_SECONDS:.0} s after it settles. Measured on the emulator and carried over: \
         the median Schedule step and DeployReady round, and the time outside the loop (plan, \
         notify, finalize).\n",
        Settings::default().change_set_wait_seconds
    );
    let _ = writeln!(
        o,
        "| schedule | change set | Schedule step | DeployReady | outside the loop | model makespan | ideal | **makespan / ideal** | history events | parks |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let rows = [
        (Mode::Stages, CHANGE_SET_SECONDS),
        (Mode::Dependencies, CHANGE_SET_SECONDS),
        (Mode::Stages, 5.0),
        (Mode::Stages, 30.0),
    ];
    for (mode, cs) in rows {
        if let Some(p) = project(results, mode, cs) {
            let _ = writeln!(
                o,
                "| {} | {cs:.0} s{} | {:.2} s | {:.2} s | {:.1} s | {:.1} min | {:.0} min | **{:.3}** | {} | {} |",
                mode.label(),
                if cs == CHANGE_SET_SECONDS { " (assumed)" } else { "" },
                p.settings.schedule_seconds,
                p.settings.deploy_seconds,
                p.outside,
                p.makespan() / 60.0,
                p.ideal / 60.0,
                p.ratio(),
                thousands(p.estimate.events),
                p.estimate.parks
            );
        }
    }
    let _ = writeln!(
        o,
        "\nThe gap to the ideal is the change sets: each stack of the critical path waits for \
         its change set before CloudFormation starts it, which the ideal does not count.\n"
    );

    // ── 4. History and cost ────────────────────────────────────────────────────────────
    let _ = writeln!(
        o,
        "## 4. History events and cost at 30-minute stacks (*model*)\n"
    );
    let checked: Vec<(&str, u64, u64)> = results
        .makespan
        .iter()
        .chain(lost)
        .filter(|r| r.ok())
        .map(|r| {
            (
                r.environment.as_str(),
                r.stats.events,
                r.stats.model_events(),
            )
        })
        .chain(
            scale
                .filter(|s| s.ok())
                .map(|s| ("scale", s.stats.events, s.stats.model_events())),
        )
        .collect();
    let matching = checked.iter().filter(|(_, a, b)| a == b).count();
    let _ = writeln!(
        o,
        "**The model's per-state counts, checked.** For every successful run of this bench \
         the event count of its histories (its own execution's and its segments') was compared \
         with what the model's per-state counts (`budget::history_events`: Task 5, Park 6, \
         Choice 2, Map 4 + 2 per item, per run {}, per stage {} with its first segment, {} per \
         further segment) give for the states that run entered: **{matching} of {}** match \
         exactly{}.\n",
        budget::PER_RUN,
        budget::PER_STAGE,
        budget::PER_SEGMENT + budget::SEGMENT_FIXED,
        checked.len(),
        if matching == checked.len() {
            String::new()
        } else {
            format!(
                " (differing: {})",
                checked
                    .iter()
                    .filter(|(_, a, b)| a != b)
                    .map(|(n, a, b)| format!("{n} measured {a}, model {b}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    );
    let _ = writeln!(
        o,
        "Every Bellyfed stack taking 30 minutes, the execution defaults, change sets \
         {CHANGE_SET_SECONDS:.0} s. A park ends on the first event of a stack in flight, or \
         after the fallback poll, so each fallback that expires while 30-minute stacks run \
         costs a Park and a scheduling step (13 events):\n"
    );
    let _ = writeln!(
        o,
        "| fallbackPollSeconds | history events | state transitions | parks (woken / timed out) | makespan |\n|---|---|---|---|---|"
    );
    for fb in [300u32, 600, 900, 1800] {
        let e = budget::estimate(
            &results.bellyfed_plan,
            &Settings {
                fallback_poll_seconds: fb,
                ..thirty
            },
            &|_| REAL_STACK_SECONDS,
        );
        let _ = writeln!(
            o,
            "| {fb} s{} | {} | {} | {} ({} / {}) | {:.1} h |",
            if fb == stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS {
                " (default)"
            } else {
                ""
            },
            thousands(e.events),
            thousands(e.transitions),
            e.parks,
            e.parks_woken,
            e.parks_timed_out,
            e.makespan_seconds / 3600.0
        );
    }
    let _ = writeln!(o);
    match (&cost30, wall) {
        (Some(c), Some(w)) => {
            let _ = writeln!(
                o,
                "**Cost of that deployment** (us-east-1 list prices; Lambda arm64 at 128 MB with \
                 the median handler times measured here — plan {:.0} ms, deploy-stack {:.0} ms, \
                 check {:.0} ms, wake {:.0} ms, notify {:.0} ms, finalize {:.0} ms, a debug build \
                 on a shared machine, so an overstatement; S3 requests bounded at \
                 {} per step, {} per stack and {} per park, all priced as PUTs; the \
                 CloudFormation events on the default bus are free):\n\n\
                 | part | count | cost |\n|---|---|---|\n\
                 | Step Functions state transitions | {} | {} |\n\
                 | Lambda requests and GB-seconds | {} requests, {:.2} GB-s | {} |\n\
                 | S3 requests (bound) | {} | {} |\n\
                 | **total** | | **{}** |\n\n\
                 For comparison, a CodeBuild box (general1.small) running `cdk deploy --all` \
                 one stack at a time for the {:.1} h the 14 stacks take in sequence: {}.\n",
                w.plan * 1000.0,
                w.deploy * 1000.0,
                w.check * 1000.0,
                w.wake * 1000.0,
                w.notify * 1000.0,
                w.finalize * 1000.0,
                cost::S3_PER_STEP,
                cost::S3_PER_STACK,
                cost::S3_PER_PARK,
                thousands(c.transitions),
                dollars(c.step_functions_usd()),
                thousands(c.invocations),
                c.gb_seconds,
                dollars(c.lambda_usd()),
                thousands(c.s3_requests),
                dollars(c.s3_usd()),
                dollars(c.usd()),
                14.0 * REAL_STACK_SECONDS / 3600.0,
                dollars(cost::codebuild_usd(14.0 * REAL_STACK_SECONDS))
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "No cost: the makespan rounds logged no invocation of some function.\n"
            );
        }
    }

    // ── 5. Scale ───────────────────────────────────────────────────────────────────────
    let _ = writeln!(o, "## 5. Scale (measured)\n");
    let _ = writeln!(
        o,
        "Synthetic manifests of 5 stages of independent stacks (`synth::manifest_yaml`), \
         `maxConcurrency` {}, every stack 1 s, each run on an emptied emulator. Each stage's \
         loop runs in segments, child executions of `statemachine/loop.asl.json`: a segment \
         hands over to the next before one more cycle could take it past `segmentEvents` \
         (default {}), so Step Functions' {}-event limit holds for each execution, the run's \
         own and each segment's. The plan step refuses a run only when the run's own execution \
         could pass the limit: one segment task and its Choice, {} events, for each segment of \
         the worst case (`budget::worst_case`: every stack started and settled alone, {} events, \
         and restored alone, {} more, plus the fallback polls its timeouts allow).\n",
        crate::SCALE_MAX_CONCURRENCY,
        thousands(u64::from(budget::SEGMENT_EVENTS)),
        thousands(HISTORY_LIMIT),
        budget::PER_SEGMENT,
        budget::WORST_PER_STACK,
        budget::WORST_PER_RESTORE,
    );
    let _ = writeln!(
        o,
        "| stacks | status | history events: the run's execution | segments | largest segment | all executions | largest state (input or output) | largest Lambda payload | schedule steps | DeployReady rounds | parks (woken / timed out) | makespan | bench wall time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in [scale, results.scale_fit.as_ref()].into_iter().flatten() {
        let _ = writeln!(
            o,
            "| {} | {} | {} ({:.1}% of {}) | {} | {} ({:.0}% of {}) | {} | {} B, {} ({:.1}% of {}) | {} B, {} | {} | {} | {} ({} / {}) | {} | {} |",
            s.stacks,
            s.status,
            thousands(s.stats.parent_events()),
            s.stats.parent_events() as f64 * 100.0 / HISTORY_LIMIT as f64,
            thousands(HISTORY_LIMIT),
            s.stats.segments(),
            thousands(s.stats.max_segment_events()),
            s.stats.max_segment_events() as f64 * 100.0 / HISTORY_LIMIT as f64,
            thousands(HISTORY_LIMIT),
            thousands(s.stats.events),
            thousands(s.stats.max_state_bytes as u64),
            s.stats.max_state_at,
            s.stats.max_state_bytes as f64 * 100.0 / STATE_LIMIT_BYTES as f64,
            thousands(STATE_LIMIT_BYTES),
            thousands(s.stats.max_lambda_bytes as u64),
            s.stats.max_lambda_at,
            s.stats.schedule_steps,
            s.stats.deploy_rounds,
            s.stats.parks,
            s.stats.parks_woken,
            s.stats.parks_timed_out,
            secs(Some(s.stats.makespan())),
            secs(Some(s.wall))
        );
    }
    let _ = writeln!(o);
    for s in [scale, results.scale_fit.as_ref()].into_iter().flatten() {
        if let Some(e) = s.error.as_deref() {
            let _ = writeln!(o, "The {}-stack run ended with: `{e}`\n", s.stacks);
        }
    }
    if let Some(plan) = two_thousand_plan() {
        let e = budget::estimate(
            &plan,
            &Settings {
                max_concurrency: crate::SCALE_MAX_CONCURRENCY,
                ..thirty
            },
            &|_| REAL_STACK_SECONDS,
        );
        let _ = writeln!(
            o,
            "*Model* at real durations: the same 2,000 stacks at 30 minutes each, \
             `maxConcurrency` {}: {} events ({} scheduling steps, {} parks), {:.1} h. Stacks of \
             one batch start together and settle together, so each batch costs one round. \
             Stacks that settle one by one cost a round each (a scheduling step, a DeployReady \
             round or a park: 11 to 13 events on top of the 7 per stack), which is what sets the \
             number of segments.\n",
            crate::SCALE_MAX_CONCURRENCY,
            thousands(e.events),
            e.schedule_steps,
            e.parks,
            e.makespan_seconds / 3600.0
        );
    }

    if let Some(section) = preserved {
        let _ = writeln!(o, "{section}");
    }

    let json = json!({
        "commit": commit,
        "date": results.started_at.to_rfc3339(),
        "bellyfed": {
            "makespanOverIdealEmulator": round3(stage_ratio),
            "makespanOverIdealProjected": round3(proj_stage.as_ref().map(Projected::ratio)),
            "historyEvents30min": bf30.events,
            "costPerDeploy30minUsd": cost30.as_ref().map_or(Value::Null, |c| json!((c.usd() * 10_000.0).round() / 10_000.0)),
        },
        "scale": {
            "stacks": scale.map_or(0, |s| s.stacks),
            "completed": scale.is_some_and(|s| s.ok()),
            "historyEvents": scale.map_or(0, |s| s.stats.events),
            "largestStateBytes": scale.map_or(0, |s| s.stats.max_state_bytes),
        },
        "lostEvents": {
            "completed": lost.is_some_and(MakespanRun::ok),
            "makespanOverIdealEmulator": round3(lost_ratio),
        },
    });
    Rendered {
        markdown: out,
        json,
        timeline,
    }
}

/// Succeeded with every execution of the run (its own and each segment) within the history
/// limit and every state within the state limit.
fn within_limits(s: &crate::ScaleRun) -> bool {
    s.ok()
        && s.stats.max_execution_events() <= HISTORY_LIMIT
        && (s.stats.max_state_bytes as u64) <= STATE_LIMIT_BYTES
}

/// `SUCCEEDED, 1,234 events, largest state 5,678 B`, or the refusal.
fn scale_outcome(s: &crate::ScaleRun) -> String {
    if s.error
        .as_deref()
        .is_some_and(|e| e.starts_with("InvalidManifest"))
    {
        return format!(
            "refused by the plan step: its worst case exceeds {} events (section 5)",
            thousands(HISTORY_LIMIT)
        );
    }
    format!(
        "{}; the run's execution {} events, its largest of {} segments {} ({} in all); largest state {} B",
        s.status,
        thousands(s.stats.parent_events()),
        s.stats.segments(),
        thousands(s.stats.max_segment_events()),
        thousands(s.stats.events),
        thousands(s.stats.max_state_bytes as u64)
    )
}

fn secs(v: Option<f64>) -> String {
    match v {
        Some(x) => format!("{x:.1} s"),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_json_has_exactly_the_issue_keys() {
        let plan = |dag: bool| {
            let dir = stackwave_cli::local::repo_root().join("examples/bellyfed");
            let mut text = std::fs::read_to_string(dir.join("manifest.yaml")).expect("manifest");
            if dag {
                text.push_str("schedule: dependencies\n");
            }
            stackwave_core::plan::from_text(&text, "e", &|_| true).expect("plan")
        };
        let results = Results {
            started_at: chrono::Utc::now(),
            runner_seconds: 1.0,
            rounds: 0,
            makespan: vec![],
            lost: None,
            lost_fallback: 15,
            scale: None,
            scale_fit: None,
            gateway: vec![],
            problems: vec![],
            bellyfed_plan: plan(false),
            bellyfed_dag_plan: plan(true),
        };
        let r = render(&results, None);
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&r.json),
            ["bellyfed", "commit", "date", "lostEvents", "scale"]
        );
        assert_eq!(
            keys(&r.json["bellyfed"]),
            [
                "costPerDeploy30minUsd",
                "historyEvents30min",
                "makespanOverIdealEmulator",
                "makespanOverIdealProjected"
            ]
        );
        assert_eq!(
            keys(&r.json["scale"]),
            ["completed", "historyEvents", "largestStateBytes", "stacks"]
        );
        assert_eq!(
            keys(&r.json["lostEvents"]),
            ["completed", "makespanOverIdealEmulator"]
        );
        // Nothing measured: the model's figure is there, the measured ones are not claimed.
        assert!(r.json["bellyfed"]["historyEvents30min"].as_u64().is_some());
        assert!(r.json["bellyfed"]["makespanOverIdealEmulator"].is_null());
        assert_eq!(r.json["scale"]["completed"], json!(false));
        assert!(r.markdown.contains("not measured"));
        assert!(r.timeline.is_none());
    }
}
