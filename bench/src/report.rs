//! BENCHMARKS.md from the measurements.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use stackwave_core::budget::{self, HISTORY_LIMIT, POLL_CYCLE};
use stackwave_core::io::PollSeconds;
use stackwave_core::plan::Plan;
use stackwave_core::synth::Shape;

use crate::cost::{self, WallTimes};
use crate::profiles::{self, POLL_CONFIGS, REAL_POLLS};
use crate::stats::{dollars, fixed, median, quantile, thousands};
use crate::{MakespanRun, Profile, Results, ScaleRun};

/// The state size limit of Step Functions (input, output, task result).
pub const STATE_LIMIT: usize = 262_144;
/// The Bellyfed target: at most this makespan / ideal.
pub const MAKESPAN_TARGET: f64 = 1.10;
/// The Bellyfed target at 30-minute stacks: fewer history events than this.
pub const EVENTS_TARGET: u64 = 2_000;
/// Seconds of a real stack for the extrapolations.
pub const REAL_STACK_SECONDS: f64 = 1800.0;
/// Emulated seconds stand for real minutes.
pub const SCALE: f64 = 60.0;

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

fn ok_runs(results: &Results, profile: Profile, label: &str) -> Vec<MakespanRun> {
    results
        .makespan
        .iter()
        .filter(|r| r.ok() && r.profile == profile && r.config.label == label)
        .cloned()
        .collect()
}

/// Per makespan configuration, the medians the tables show.
struct Row {
    runs: usize,
    makespan: Option<f64>,
    ideal: Option<f64>,
    wave_floor: Option<f64>,
    span: Option<f64>,
    handoff: Option<f64>,
    handoff_within: Option<f64>,
    handoff_across: Option<f64>,
    dep_wait: Option<f64>,
    lead_in: Option<f64>,
    tail: Option<f64>,
    model: Option<f64>,
    events: Option<f64>,
    transitions: Option<f64>,
    cycles: Option<f64>,
    model_estimate: Option<budget::Estimate>,
    /// Measured makespan − the model's detection-only makespan, per wave.
    latency_per_wave: Option<f64>,
}

fn row(runs: &[MakespanRun]) -> Row {
    let first = runs.first();
    let secs = |r: &MakespanRun| {
        let p = r.profile;
        move |s: &str| p.seconds(s)
    };
    let model_estimate = first.map(|r| budget::estimate(&r.plan, r.config.poll, &secs(r)));
    let all_handoffs: Vec<_> = runs.iter().flat_map(|r| r.handoffs.iter()).collect();
    let within: Vec<f64> = all_handoffs
        .iter()
        .filter(|h| !h.across_stages)
        .map(|h| h.seconds)
        .collect();
    let across: Vec<f64> = all_handoffs
        .iter()
        .filter(|h| h.across_stages)
        .map(|h| h.seconds)
        .collect();
    let every: Vec<f64> = all_handoffs.iter().map(|h| h.seconds).collect();
    let waits: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.dependency_waits.iter().copied())
        .collect();
    let per = |f: &dyn Fn(&MakespanRun) -> Option<f64>| -> Option<f64> {
        median(&runs.iter().filter_map(f).collect::<Vec<_>>())
    };
    let latency_per_wave = per(&|r| {
        let e = budget::estimate(&r.plan, r.config.poll, &secs(r));
        Some((r.stats.makespan() - e.makespan_seconds) / e.waves.max(1) as f64)
    });
    Row {
        runs: runs.len(),
        makespan: per(&|r| Some(r.stats.makespan())),
        ideal: first.map(MakespanRun::ideal),
        wave_floor: first.map(schedule_wave_floor),
        span: per(&MakespanRun::deploy_span),
        handoff: median(&every),
        handoff_within: median(&within),
        handoff_across: median(&across),
        dep_wait: median(&waits),
        lead_in: per(&MakespanRun::lead_in),
        tail: per(&MakespanRun::tail),
        model: model_estimate.as_ref().map(|e| e.makespan_seconds),
        events: per(&|r| Some(r.stats.events as f64)),
        transitions: per(&|r| Some(r.stats.transitions as f64)),
        cycles: per(&|r| Some(r.stats.poll_cycles as f64)),
        model_estimate,
        latency_per_wave,
    }
}

fn schedule_wave_floor(r: &MakespanRun) -> f64 {
    let p = r.profile;
    crate::schedule::wave_floor(&r.plan, &|s| p.seconds(s))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn secs(v: Option<f64>) -> String {
    match v {
        // No "-0.0 s".
        Some(x) if x.abs() < 0.05 => "0.0 s".to_string(),
        Some(x) => format!("{} s", fixed(Some(x), 1)),
        None => "–".to_string(),
    }
}

/// Median milliseconds per function from `(function, ms)` pairs.
fn gateway_medians(inv: &[(String, f64)]) -> BTreeMap<String, (usize, f64, f64)> {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (f, ms) in inv {
        by.entry(f.clone()).or_default().push(*ms);
    }
    by.into_iter()
        .filter_map(|(f, v)| Some((f, (v.len(), median(&v)?, quantile(&v, 0.9)?))))
        .collect()
}

fn wall_times(
    primary: &BTreeMap<String, (usize, f64, f64)>,
    fallback: &BTreeMap<String, (usize, f64, f64)>,
) -> Option<WallTimes> {
    let get = |f: &str| -> Option<f64> {
        primary
            .get(f)
            .or_else(|| fallback.get(f))
            .map(|(_, ms, _)| ms / 1000.0)
    };
    Some(WallTimes {
        plan: get("plan")?,
        deploy: get("deploy-stack")?,
        check: get("check")?,
        notify: get("notify")?,
        finalize: get("finalize")?,
    })
}

/// How the largest state grows between the smallest and the largest completed scale run.
struct StateGrowth {
    small_stacks: usize,
    small_bytes: usize,
    small_at: String,
    large_stacks: usize,
    large_bytes: usize,
    large_at: String,
    per_stack: f64,
    /// Stacks at which the largest state would reach the limit.
    at_limit: f64,
}

fn state_growth(results: &Results) -> Option<StateGrowth> {
    let ok: Vec<&ScaleRun> = results.scale.iter().filter(|r| r.ok()).collect();
    let a = ok.iter().min_by_key(|r| r.stacks)?;
    let b = ok.iter().max_by_key(|r| r.stacks)?;
    if b.stacks <= a.stacks || b.stats.max_state_bytes <= a.stats.max_state_bytes {
        return None;
    }
    let per_stack =
        (b.stats.max_state_bytes - a.stats.max_state_bytes) as f64 / (b.stacks - a.stacks) as f64;
    Some(StateGrowth {
        small_stacks: a.stacks,
        small_bytes: a.stats.max_state_bytes,
        small_at: a.stats.max_state_at.clone(),
        large_stacks: b.stacks,
        large_bytes: b.stats.max_state_bytes,
        large_at: b.stats.max_state_at.clone(),
        per_stack,
        at_limit: b.stacks as f64
            + STATE_LIMIT.saturating_sub(b.stats.max_state_bytes) as f64 / per_stack,
    })
}

/// Events per measured poll cycle beyond the model's fixed structure, per measured run
/// (Bellyfed adaptive median, and each Independent scale run).
fn events_per_cycle(results: &Results, bf: &Row) -> Option<f64> {
    let mut v = Vec::new();
    if let (Some(ev), Some(cy), Some(e)) = (bf.events, bf.cycles, bf.model_estimate.as_ref()) {
        if cy > 0.0 {
            v.push((ev - (e.events - e.poll_cycles * POLL_CYCLE) as f64) / cy);
        }
    }
    for r in results
        .scale
        .iter()
        .filter(|r| r.ok() && r.shape == Shape::Independent && r.stats.poll_cycles > 0)
    {
        let e = budget::estimate(&r.plan, PollSeconds { min: 1, max: 2 }, &|_| 1.0);
        let structure = (e.events - e.poll_cycles * POLL_CYCLE) as f64;
        v.push((r.stats.events as f64 - structure) / r.stats.poll_cycles as f64);
    }
    median(&v)
}

/// Whether the measured runs bear out the model's 9 events per cycle.
fn cycle_verdict(per_cycle: Option<f64>) -> String {
    match per_cycle {
        Some(x) if (x - POLL_CYCLE as f64).abs() < 0.25 => format!(
            "the measured runs confirm the model: {x:.2} events per poll cycle beyond its fixed structure"
        ),
        Some(x) => format!(
            "the measured runs give {x:.2} events per poll cycle beyond the model's fixed structure (model: {POLL_CYCLE})"
        ),
        None => "no measured run to check the model against".to_string(),
    }
}

/// The smallest `max` (with min 5) that keeps Bellyfed at 30-minute stacks under the target.
fn smallest_max_meeting(plan: &Plan) -> Option<(u32, u64)> {
    (60..=900).step_by(5).find_map(|max| {
        let e = budget::estimate(plan, PollSeconds { min: 5, max }, &|_| REAL_STACK_SECONDS);
        (e.events < EVENTS_TARGET).then_some((max, e.events))
    })
}

pub fn render(results: &Results, preserved: Option<&str>) -> String {
    let mut out = String::new();
    let o = &mut out;
    let commit = cmd("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = cmd("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let arch = cmd("uname", &["-m"]).unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let kernel = cmd("uname", &["-sr"]).unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);

    let _ = writeln!(o, "# stackwave benchmarks\n");
    let _ = writeln!(
        o,
        "`make bench` writes this file (the `stackwave-bench` crate in `bench/`). Every figure \
         comes from the local emulator — moto's server with stackwave's extension, the real \
         `statemachine/deploy.asl.json` in moto's Step Functions executor, the Rust handlers \
         behind the gateway — measured side by side in one run, and is quoted as a median (with \
         the number of runs) or a count, and as a ratio. The machine is shared and noisy: these \
         are measurements, never timed assertions. Extrapolations to real durations are marked \
         as such and use `stackwave_core::budget`'s model.\n"
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
            " (the working tree also held uncommitted work in progress)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "| machine | `uname -m` {arch}, {cpus} CPUs (nproc), {} GiB memory, {kernel}; shared with other jobs (load average {} at the end of the run) |",
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
    if !results.skipped.is_empty() {
        let _ = writeln!(o, "| skipped for time | {} |", results.skipped.join("; "));
    }
    if !results.problems.is_empty() {
        let _ = writeln!(o, "| problems | {} |", results.problems.join("; "));
    }
    let _ = writeln!(o);

    // Shared figures.
    let bf_adaptive = row(&ok_runs(results, Profile::Bellyfed, POLL_CONFIGS[0].label));
    let bellyfed_plan = results.bellyfed_plan.clone();
    let makespan_gw = gateway_medians(&results.makespan_gateway);
    let scale_500 = results
        .scale
        .iter()
        .find(|r| r.stacks == 500 && r.shape == Shape::Independent);
    let bf_30 = bellyfed_plan
        .as_ref()
        .map(|p| budget::estimate(p, PollSeconds::default(), &|_| REAL_STACK_SECONDS));
    let bf_ratio = ratio(bf_adaptive.makespan, bf_adaptive.ideal);

    summary(
        o,
        results,
        &bf_adaptive,
        bf_30.as_ref(),
        scale_500,
        bf_ratio,
    );
    makespan_section(o, results);
    events_section(o, results, &bf_adaptive, &makespan_gw);
    scale_section(o, results);
    handlers_section(o, results, &makespan_gw);
    misses_section(o, results, &bf_adaptive, bf_30.as_ref(), bf_ratio);
    if let Some(section) = preserved {
        let _ = writeln!(o, "{section}");
    }
    closing(o, results, &bf_adaptive, bf_30.as_ref(), bf_ratio);
    out
}

fn summary(
    o: &mut String,
    results: &Results,
    bf: &Row,
    bf_30: Option<&budget::Estimate>,
    s500: Option<&ScaleRun>,
    bf_ratio: Option<f64>,
) {
    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(
        o,
        "| figure | target | measured | verdict |\n|---|---|---|---|"
    );
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let _ = writeln!(
        o,
        "| Bellyfed makespan / ideal, default adaptive poll (scaled: 1 s per real minute, polls 1→2 s) | ≤ {MAKESPAN_TARGET:.2} | {} (median of {} run{}; makespan {}, ideal {}) | {} |",
        fixed(bf_ratio, 2),
        bf.runs,
        if bf.runs == 1 { "" } else { "s" },
        secs(bf.makespan),
        secs(bf.ideal),
        verdict(bf_ratio.map(|r| r <= MAKESPAN_TARGET))
    );
    if let Some(p) = projection(results) {
        if let Some(d) = p.rows.first() {
            let _ = writeln!(
                o,
                "| Bellyfed makespan / ideal projected to real durations (minutes), default polls 5→60 s | ≤ {MAKESPAN_TARGET:.2} | {:.2} (model detection + the measured per-wave latency, section 1) | {} |",
                d.makespan / p.ideal,
                verdict(Some(d.makespan / p.ideal <= MAKESPAN_TARGET))
            );
        }
    }
    if let Some(e) = bf_30 {
        let _ = writeln!(
            o,
            "| Bellyfed history events, every stack 30 min, default polls 5→60 s | < {} | {} (model: {} poll cycles × 9 = {}; {}, section 2) | {} |",
            thousands(EVENTS_TARGET),
            thousands(e.events),
            e.poll_cycles,
            thousands(e.poll_cycles * POLL_CYCLE),
            cycle_verdict(events_per_cycle(results, bf)),
            verdict(Some(e.events < EVENTS_TARGET))
        );
    }
    match s500 {
        Some(r) => {
            let _ = writeln!(
                o,
                "| 500 stacks (5 stages × 100 independent) end to end | completes; < 25,000 events; every state ≤ 262,144 B | {}, {} events, largest state {} B ({:.0}% of the limit), makespan {} | {} |",
                r.status,
                thousands(r.stats.events),
                thousands(r.stats.max_state_bytes as u64),
                100.0 * r.stats.max_state_bytes as f64 / STATE_LIMIT as f64,
                secs(Some(r.stats.makespan())),
                verdict(Some(
                    r.ok()
                        && r.stats.events < HISTORY_LIMIT
                        && r.stats.max_state_bytes <= STATE_LIMIT
                        && r.stats.max_lambda_bytes <= STATE_LIMIT
                ))
            );
        }
        None => {
            let _ = writeln!(
                o,
                "| 500 stacks end to end | completes within the limits | not run | not measured |"
            );
        }
    }
    if let (Some(plan), Some(wall)) = (
        results.bellyfed_plan.as_ref(),
        wall_times(
            &gateway_medians(&results.makespan_gateway),
            &gateway_medians(&results.makespan_gateway),
        ),
    ) {
        let sw = cost::stackwave(plan, PollSeconds::default(), REAL_STACK_SECONDS, wall);
        let cfct = cost::per_stack_loop(plan, 10, REAL_STACK_SECONDS, wall);
        let _ = writeln!(
            o,
            "| cost of one Bellyfed deployment, every stack 30 min | almost nothing | {} (Step Functions + Lambda) vs {} for a per-stack loop polled every 10 s and {} for a CodeBuild box running `cdk deploy` for the {:.1} h | {} |",
            dollars(sw.usd()),
            dollars(cfct.usd()),
            dollars(cost::codebuild_usd(sw.makespan_seconds)),
            sw.makespan_seconds / 3600.0,
            verdict(Some(
                sw.usd() < cfct.usd() && sw.usd() < cost::codebuild_usd(sw.makespan_seconds)
            ))
        );
    }
    let plan_ms = results
        .plan_bench
        .iter()
        .filter_map(|p| median(&p.millis))
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    let _ = writeln!(
        o,
        "| plan step (parse, validate, cycle check) for 500 stacks, in-process | milliseconds (< 100 ms) | {} ms (slowest shape's median, debug build) | {} |",
        fixed(plan_ms, 1),
        verdict(plan_ms.map(|ms| ms < 100.0))
    );
    let _ = writeln!(o);
}

fn makespan_section(o: &mut String, results: &Results) {
    let _ = writeln!(o, "## 1. Makespan vs ideal\n");
    let _ = writeln!(o, "### How it was measured\n");
    let _ = writeln!(
        o,
        "- **Profiles.** *Bellyfed (scaled)*: `examples/bellyfed` (14 stacks, 5 stages, 9 waves) \
         with per-stack durations set through the emulator's control API \
         (`POST /_stackwave/config {{\"stackSeconds\": {{…}}}}`, names are unique per \
         environment): Aurora 15 s, ECS service 6 s, network 3 s, ECS infra, Typesense infra, \
         DB migration, Typesense service, Lambda and frontend 2 s, the rest 1 s. *Uniform*: a \
         synthetic manifest (`synth::Shape::FanIn`, 3 stages × 4 stacks, 6 waves, a dependency \
         chain through every stage), every stack {} s.",
        profiles::UNIFORM_SECONDS
    );
    let _ = writeln!(
        o,
        "- **Runs.** {} round(s); in each round the six executions (2 profiles × 3 polls) ran \
         side by side, each in a fresh environment, so every configuration saw the same machine \
         load. Makespan = `ExecutionStarted` → `ExecutionSucceeded` in `GetExecutionHistory` \
         (what a user waits, including plan, notify and finalize).",
        results.rounds
    );
    let _ = writeln!(
        o,
        "- **Ideal** = Σ over stages of the longest dependency chain inside the stage, from \
         `stackwave_core::plan` and the durations (detection instant, no overhead). *Wave floor* \
         = Σ over waves of the wave's longest stack: what stackwave's wave barriers allow with \
         instant detection."
    );
    let _ = writeln!(
        o,
        "- **Delays**, from CloudFormation stack events (each stack's own `CREATE_IN_PROGRESS` \
         and `CREATE_COMPLETE`): *handoff* = next wave's first stack start − the wave's last \
         stack settled, split into the next wave of the same stage and the first wave of the \
         next stage; *dependency wait* = a stack's start − the moment its last dependency \
         settled (the run's first stack start when it has none), every stack outside the first \
         wave.\n"
    );
    let _ = writeln!(o, "### Scaling\n");
    let _ = writeln!(
        o,
        "One emulated second stands for one real minute of stack time, so a run takes about a \
         minute instead of half an hour. Poll intervals cannot shrink by the same factor: a Wait \
         state waits whole seconds (the real default of 5→60 s would be 0.08→1 s). So the \
         default adaptive schedule keeps its shape (×1.5 growth from min to max, ±10% jitter) at \
         the smallest whole-second bounds, **min 1 s, max 2 s**. The fixed polls are scaled by \
         the same factor as the default's first wait (5 s → 1 s, i.e. ÷5): **fixed 10 s → fixed \
         2 s**, and **fixed 1 s → fixed 1 s**, the 1-s floor (0.2 s is not expressible). All \
         three are therefore coarser, relative to stack durations, than their real \
         counterparts (the real default's 60 s cap is 1/15 of a 15-minute Aurora stack; the \
         scaled 2 s cap is 2/15 of 15 s): the measured ratios overstate detection delay, and \
         the projection below puts the measured per-wave latency back on real durations.\n"
    );
    let _ = writeln!(o, "### Results (measured)\n");
    let _ = writeln!(
        o,
        "| profile | poll (stands for) | runs | makespan | ideal | **makespan / ideal** | wave floor / ideal | deploy span / ideal | handoff: next wave / next stage | dependency wait | model (detection only) |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for profile in [Profile::Bellyfed, Profile::Uniform] {
        for c in POLL_CONFIGS {
            let r = row(&ok_runs(results, profile, c.label));
            let _ = writeln!(
                o,
                "| {} | {} ({}) | {} | {} | {} | **{}** | {} | {} | {} / {} | {} | {} |",
                profile.label(),
                c.label,
                c.stands_for,
                r.runs,
                secs(r.makespan),
                secs(r.ideal),
                fixed(ratio(r.makespan, r.ideal), 2),
                fixed(ratio(r.wave_floor, r.ideal), 2),
                fixed(ratio(r.span, r.ideal), 2),
                secs(r.handoff_within),
                secs(r.handoff_across),
                secs(r.dep_wait),
                secs(r.model)
            );
        }
    }
    let _ = writeln!(
        o,
        "\n*Model (detection only)* is `budget::estimate`'s makespan for the same plan, durations \
         and poll: Σ over waves of the time until the check that sees the wave settled, without \
         Lambda or state-transition latency. The difference to the measured makespan is the \
         orchestration latency per wave that the projection below uses.\n"
    );

    // Full DAG.
    let _ = writeln!(o, "### Full-DAG schedule (offline, same durations)\n");
    let _ = writeln!(
        o,
        "Each stack starts when its own dependencies finish — no stage or wave barriers — \
         computed from the plan's dependencies and the same durations. *Instant* assumes \
         completion is seen at once; *with the measured latency* adds the configuration's \
         measured median handoff to every dependency hop and the measured lead-in (execution \
         start → first stack start) and tail (last stack settled → execution end). Its \
         handoff and dependency wait are that median handoff by construction (0 when instant).\n"
    );
    let _ = writeln!(
        o,
        "| profile | poll | ideal | DAG instant | DAG instant / ideal | DAG with the measured latency | / ideal | stackwave measured / ideal | what barriers cost (stackwave − DAG with latency) |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for profile in [Profile::Bellyfed, Profile::Uniform] {
        for c in POLL_CONFIGS {
            let runs = ok_runs(results, profile, c.label);
            let Some(first) = runs.first() else {
                continue;
            };
            let r = row(&runs);
            let p = profile;
            let instant = crate::schedule::dag(&first.plan, &|s| p.seconds(s), 0.0).makespan;
            let with_latency = r.handoff.map(|h| {
                crate::schedule::dag(&first.plan, &|s| p.seconds(s), h).makespan
                    + r.lead_in.unwrap_or(0.0)
                    + r.tail.unwrap_or(0.0)
            });
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                profile.label(),
                c.label,
                secs(r.ideal),
                secs(Some(instant)),
                fixed(ratio(Some(instant), r.ideal), 2),
                secs(with_latency),
                fixed(ratio(with_latency, r.ideal), 2),
                fixed(ratio(r.makespan, r.ideal), 2),
                secs(match (r.makespan, with_latency) {
                    (Some(a), Some(b)) => Some(a - b),
                    _ => None,
                })
            );
        }
    }
    let _ = writeln!(
        o,
        "\nCaveat for Bellyfed: the DAG knows only declared dependencies. The Typesense service \
         reads an SSM parameter (`{{ssm: …}}`) that the bootstrap stage creates; only the stage \
         order guarantees it exists, so a real full-DAG scheduler would need that edge declared. \
         The uniform profile's stacks form one chain through all stages, so there barriers cost \
         nothing beyond noise: its gap to ideal is all per-wave latency.\n"
    );

    // Projection to real durations.
    if let Some(proj) = projection(results) {
        let _ = writeln!(o, "### Projection to real durations (Bellyfed, model)\n");
        let _ = writeln!(
            o,
            "Real durations are the profile's seconds read as minutes (Aurora 15 min, …; ideal \
             {:.0} min). Projected makespan = `budget::estimate`'s detection makespan for the real \
             poll + waves × the measured orchestration latency per wave ({:.1} s: measured \
             makespan − model, per wave, median of the adaptive runs). History events are the \
             model's.\n",
            proj.ideal / 60.0,
            proj.latency
        );
        let _ = writeln!(
            o,
            "| poll | projected makespan | / ideal | poll cycles | history events | within 25,000 |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for p in &proj.rows {
            let _ = writeln!(
                o,
                "| {} | {:.1} min | {:.3} | {} | {} | {} |",
                p.label,
                p.makespan / 60.0,
                p.makespan / proj.ideal,
                thousands(p.cycles),
                thousands(p.events),
                if p.events <= HISTORY_LIMIT {
                    "yes"
                } else {
                    "**no**"
                }
            );
        }
        let fastest_needed = (1..=120u32).rev().find(|every| {
            let poll = PollSeconds {
                min: *every,
                max: *every,
            };
            let e = budget::estimate(&proj.plan, poll, &|s| profiles::bellyfed_seconds(s) * SCALE);
            (e.makespan_seconds + e.waves as f64 * proj.latency) / proj.ideal <= MAKESPAN_TARGET
        });
        let cap = smallest_max_meeting(&proj.plan);
        let _ =
            writeln!(
            o,
            "\nAt real durations the measured orchestration latency is small (seconds per wave); \
             detection is what separates the polls. The two Bellyfed targets pull against each \
             other: by this projection a makespan within {:.0}% of ideal needs a fixed poll of at \
             most {}, while fewer than {} events at 30-minute stacks needs a `pollSeconds.max` of \
             at least {} (section 2).\n",
            (MAKESPAN_TARGET - 1.0) * 100.0,
            fastest_needed.map_or("– (none up to 120 s)".to_string(), |s| format!("{s} s")),
            thousands(EVENTS_TARGET),
            cap.map_or("– (none up to 900 s)".to_string(), |(m, _)| format!("{m} s"))
        );
    }
}

/// One real-scale poll setting of the projection.
struct Projected {
    label: &'static str,
    makespan: f64,
    cycles: u64,
    events: u64,
}

struct Projection {
    plan: Plan,
    ideal: f64,
    latency: f64,
    rows: Vec<Projected>,
}

/// Bellyfed at real durations (the profile's seconds as minutes): the model's detection
/// makespan plus the measured per-wave latency of the adaptive runs.
fn projection(results: &Results) -> Option<Projection> {
    let runs = ok_runs(results, Profile::Bellyfed, POLL_CONFIGS[0].label);
    let r = row(&runs);
    let first = runs.first()?;
    let latency = r.latency_per_wave?;
    let ideal = r.ideal? * SCALE;
    let rows = REAL_POLLS
        .iter()
        .map(|(label, poll)| {
            let e = budget::estimate(&first.plan, *poll, &|s| {
                profiles::bellyfed_seconds(s) * SCALE
            });
            Projected {
                label,
                makespan: e.makespan_seconds + e.waves as f64 * latency,
                cycles: e.poll_cycles,
                events: e.events,
            }
        })
        .collect();
    Some(Projection {
        plan: first.plan.clone(),
        ideal,
        latency,
        rows,
    })
}

fn events_section(
    o: &mut String,
    results: &Results,
    bf: &Row,
    makespan_gw: &BTreeMap<String, (usize, f64, f64)>,
) {
    let _ = writeln!(o, "## 2. History events, state transitions and cost\n");
    let _ = writeln!(
        o,
        "Counted from `GetExecutionHistory`: every event; *transitions* = states entered (what \
         Standard workflows bill); *poll cycles* = `WaitForWave` entries. The model is \
         `stackwave_core::budget::estimate` for the same plan, durations and poll (without \
         jitter). Bellyfed is the median of the adaptive makespan runs; 50, 200 and 500 are the \
         scale runs of 5 stages of independent stacks, every stack 1 s, polls 1→2 s.\n"
    );
    let _ = writeln!(
        o,
        "| run | stacks | measured events | model events | measured transitions | model transitions | measured poll cycles | model poll cycles | events per measured cycle beyond the model's structure |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    let mut per_cycle: Vec<f64> = Vec::new();
    let mut line =
        |o: &mut String, label: &str, n: usize, ev: f64, tr: f64, cy: f64, e: &budget::Estimate| {
            let structure = e.events as f64 - (e.poll_cycles * POLL_CYCLE) as f64;
            let pc = if cy > 0.0 {
                Some((ev - structure) / cy)
            } else {
                None
            };
            if let Some(x) = pc {
                per_cycle.push(x);
            }
            let _ = writeln!(
                o,
                "| {label} | {n} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(ev.round() as u64),
                thousands(e.events),
                thousands(tr.round() as u64),
                thousands(e.transitions),
                fixed(Some(cy), 0),
                e.poll_cycles,
                fixed(pc, 2)
            );
        };
    if let (Some(ev), Some(tr), Some(cy), Some(e)) = (
        bf.events,
        bf.transitions,
        bf.cycles,
        bf.model_estimate.as_ref(),
    ) {
        line(
            o,
            "Bellyfed (scaled profile, adaptive 1→2 s)",
            14,
            ev,
            tr,
            cy,
            e,
        );
    }
    let independent: Vec<&ScaleRun> = results
        .scale
        .iter()
        .filter(|r| r.ok() && r.shape == Shape::Independent)
        .collect();
    for r in &independent {
        let e = budget::estimate(&r.plan, PollSeconds { min: 1, max: 2 }, &|_| 1.0);
        line(
            o,
            &format!("synthetic 5 × {} independent", r.per_stage),
            r.stacks,
            r.stats.events as f64,
            r.stats.transitions as f64,
            r.stats.poll_cycles as f64,
            &e,
        );
    }
    let measured_cycle = median(&per_cycle);
    let _ = writeln!(
        o,
        "\nEvery event the runs recorded beyond the model's fixed structure came in poll cycles \
         of {} events (median; the model's is {POLL_CYCLE}), so the extrapolation below uses the \
         measured structure plus {POLL_CYCLE} events per cycle.\n",
        fixed(measured_cycle, 2)
    );

    // 30-minute stacks.
    let _ = writeln!(
        o,
        "### At real durations: every stack 30 minutes, default polls 5→60 s\n"
    );
    let _ = writeln!(
        o,
        "*Model* = `budget::estimate` at 1,800 s per stack. *Measured structure + cycles* = the \
         run's measured events − {POLL_CYCLE} × its measured cycles, + {POLL_CYCLE} × the \
         model's cycles at 30 minutes (the poll schedule: 7 growing waits, then 60-s steps).\n"
    );
    let _ = writeln!(
        o,
        "| stacks | waves | poll cycles | events (model) | events (measured structure + cycles) | transitions (model) | within 25,000 |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    let mut rows30: Vec<(usize, Plan, Option<f64>)> = Vec::new();
    if let (Some(plan), Some(ev), Some(cy)) = (results.bellyfed_plan.clone(), bf.events, bf.cycles)
    {
        rows30.push((14, plan, Some(ev - cy * POLL_CYCLE as f64)));
    }
    for r in &independent {
        rows30.push((
            r.stacks,
            r.plan.clone(),
            Some(r.stats.events as f64 - (r.stats.poll_cycles * POLL_CYCLE) as f64),
        ));
    }
    for (n, plan, structure) in &rows30 {
        let e = budget::estimate(plan, PollSeconds::default(), &|_| REAL_STACK_SECONDS);
        let extrapolated = structure.map(|s| s + (e.poll_cycles * POLL_CYCLE) as f64);
        let _ = writeln!(
            o,
            "| {n} | {} | {} | {} | {} | {} | {} |",
            e.waves,
            thousands(e.poll_cycles),
            thousands(e.events),
            extrapolated.map_or("–".into(), |x| thousands(x.round() as u64)),
            thousands(e.transitions),
            if e.events <= HISTORY_LIMIT {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    if let Some(plan) = &results.bellyfed_plan {
        let _ = writeln!(o);
        match smallest_max_meeting(plan) {
            Some((max, events)) => {
                let _ = writeln!(
                    o,
                    "**Bellyfed under {} events?** Not with the default polls (above). The smallest \
                     `pollSeconds.max` that gets there (min 5 s) is **{max} s**: {} events, at the \
                     price of seeing each wave's end up to {max} s late.\n",
                    thousands(EVENTS_TARGET),
                    thousands(events)
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "**Bellyfed under {} events?** No `pollSeconds.max` up to 900 s gets there.\n",
                    thousands(EVENTS_TARGET)
                );
            }
        }
    }

    // Cost.
    let _ = writeln!(o, "### Cost per deployment, every stack 30 minutes\n");
    let _ = writeln!(
        o,
        "Prices: Step Functions Standard $0.025 per 1,000 state transitions; Lambda at 128 MB \
         arm64, $0.0000133334 per GB-second and $0.20 per million requests, with the **measured \
         median wall time per invocation** of each handler (gateway-timed, section 4: the \
         Bellyfed runs for 14 stacks, the same-size scale run for 50/200/500); CodeBuild \
         $0.005 a minute. *Per-stack loop* = the CfCT style: the same run skeleton, but one \
         Wait → check → Choice loop per stack on a fixed interval (9 events, 3 transitions and a \
         one-stack check per poll; the check's wall time is the Bellyfed runs' median). \
         *CodeBuild* = a build box running `cdk deploy` for the whole makespan (stackwave's \
         modelled makespan at 30 minutes per stack, sequential waves).\n"
    );
    let _ = writeln!(
        o,
        "| stacks | approach | history events | within 25,000 | transitions | Lambda invocations | Lambda GB-s | Step Functions | Lambda | **total per deployment** |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
    for (n, plan, _) in &rows30 {
        let scale_gw = results
            .scale
            .iter()
            .find(|r| r.stacks == *n && r.shape == Shape::Independent)
            .map(|r| gateway_medians(&r.gateway))
            .unwrap_or_default();
        let primary = if *n == 14 { makespan_gw } else { &scale_gw };
        let Some(wall) = wall_times(primary, makespan_gw) else {
            let _ = writeln!(
                o,
                "| {n} | (no handler wall times measured) | | | | | | | | |"
            );
            continue;
        };
        let small_check = wall_times(makespan_gw, makespan_gw).map_or(wall.check, |w| w.check);
        let sw = cost::stackwave(plan, PollSeconds::default(), REAL_STACK_SECONDS, wall);
        let mut rows = vec![("stackwave, adaptive 5→60 s".to_string(), sw.clone())];
        for every in [10, 30] {
            rows.push((
                format!("per-stack loop, every {every} s"),
                cost::per_stack_loop(
                    plan,
                    every,
                    REAL_STACK_SECONDS,
                    WallTimes {
                        check: small_check,
                        ..wall
                    },
                ),
            ));
        }
        for (label, c) in rows {
            let _ = writeln!(
                o,
                "| {n} | {label} | {} | {} | {} | {} | {:.2} | {} | {} | **{}** |",
                thousands(c.events),
                if c.within_history_limit() {
                    "yes"
                } else {
                    "**no**"
                },
                thousands(c.transitions),
                thousands(c.invocations),
                c.gb_seconds,
                dollars(c.step_functions_usd()),
                dollars(c.lambda_usd()),
                dollars(c.usd())
            );
        }
        let _ = writeln!(
            o,
            "| {n} | CodeBuild `cdk deploy`, {:.0} min | – | – | – | – | – | – | – | **{}** |",
            sw.makespan_seconds / 60.0,
            dollars(cost::codebuild_usd(sw.makespan_seconds))
        );
    }
    let _ = writeln!(
        o,
        "\nA per-stack loop that exceeds 25,000 events cannot run as one Standard execution at \
         all: it would need child executions or a Distributed Map, with more transitions still. \
         Handler wall times come from debug builds on a shared 2-CPU machine with every handler \
         in one gateway process; real Lambda times differ, but Lambda is a small share of every \
         stackwave row.\n"
    );
}

fn scale_section(o: &mut String, results: &Results) {
    let _ = writeln!(o, "## 3. Scale\n");
    let _ = writeln!(
        o,
        "Synthetic manifests (`stackwave_core::synth`, 5 stages) end to end, one at a time, each \
         on an emptied emulator (`POST /moto-api/reset`, then the local setup again), every \
         stack 1 s, polls 1→2 s. *Overhead per stack* = (makespan − ideal) / stacks. *Largest \
         state* = the largest `*StateEnteredEventDetails.input` / `*StateExitedEventDetails.output` \
         in the history; *largest Lambda payload* = the largest `LambdaFunctionScheduled` input or \
         `LambdaFunctionSucceeded` output (both limited to 262,144 bytes).\n"
    );
    let _ = writeln!(
        o,
        "| stacks | shape | waves | result | makespan | ideal | overhead / stack | history events | transitions | largest state (bytes, where) | of 262,144 | largest Lambda payload | check: CloudFormation calls per poll cycle |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results.scale {
        let overhead = (r.stats.makespan() - r.ideal()) / r.stacks.max(1) as f64;
        let per_cycle = if r.stats.poll_cycles > 0 {
            Some(r.check_calls() as f64 / r.stats.poll_cycles as f64)
        } else {
            None
        };
        let _ = writeln!(
            o,
            "| {} | {} ({} × {}) | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {:.1}% | {} ({}) | {} |",
            r.stacks,
            profiles::shape_label(r.shape),
            r.stages,
            r.per_stage,
            r.waves(),
            if r.ok() { "completed".to_string() } else { format!("**{}**", r.status) },
            secs(Some(r.stats.makespan())),
            secs(Some(r.ideal())),
            secs(Some(overhead)),
            thousands(r.stats.events),
            thousands(r.stats.transitions),
            thousands(r.stats.max_state_bytes as u64),
            r.stats.max_state_at,
            100.0 * r.stats.max_state_bytes as f64 / STATE_LIMIT as f64,
            thousands(r.stats.max_lambda_bytes as u64),
            r.stats.max_lambda_at,
            fixed(per_cycle, 1)
        );
    }
    if let Some(g) = state_growth(results) {
        let _ = writeln!(
            o,
            "\nThe largest state grows with the stack count: {} bytes ({}) at {} stacks, {} \
             at {} — ≈{:.0} bytes per stack, so it reaches 262,144 bytes near **{} stacks**.\n",
            thousands(g.small_bytes as u64),
            g.small_at,
            g.small_stacks,
            thousands(g.large_bytes as u64),
            g.large_stacks,
            g.per_stack,
            thousands(g.at_limit as u64)
        );
    }

    let _ = writeln!(o, "### CloudFormation calls of the check function\n");
    let _ = writeln!(
        o,
        "**Measured** with moto's request recorder (`/moto-api/recorder/*`) during each scale \
         run: every CloudFormation query-protocol request the emulator served, by `Action`. \
         Attributed to check by action: `DescribeChangeSet`, `ExecuteChangeSet`, \
         `DeleteChangeSet`, `DescribeStackEvents` and `DescribeStacks` without a `StackName` (a \
         listing page) only come from check; `DescribeStacks` by name comes from deploy-stack \
         (its own stack plus each distinct stack whose outputs it reads, counted from the plan) \
         and, on waves of at most 10 stacks, from check — the remainder is check's. From the \
         code (`functions/check`): the first check of a wave makes `DescribeChangeSet` + \
         `ExecuteChangeSet` per stack; later checks make one `DescribeStacks` per unsettled \
         stack on waves of ≤ 10 stacks, else one listing `DescribeStacks` per page of *every* \
         stack in the region (moto pages by 50), so that cost grows with the account, not the \
         wave.\n"
    );
    let _ = writeln!(
        o,
        "| stacks | shape | poll cycles | DescribeChangeSet | ExecuteChangeSet | DescribeStacks listing pages | DescribeStacks by name (check's) | check calls | per cycle | CreateChangeSet (deploy-stack) | all CloudFormation calls |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results.scale {
        let c = &r.calls;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.stacks,
            profiles::shape_label(r.shape),
            r.stats.poll_cycles,
            thousands(c.get("DescribeChangeSet")),
            thousands(c.get("ExecuteChangeSet")),
            thousands(c.describe_stacks_listing),
            thousands(c.describe_stacks_named.saturating_sub(r.deploy_describes)),
            thousands(r.check_calls()),
            fixed(
                (r.stats.poll_cycles > 0)
                    .then(|| r.check_calls() as f64 / r.stats.poll_cycles as f64),
                1
            ),
            thousands(c.get("CreateChangeSet")),
            thousands(c.total())
        );
    }
    let _ = writeln!(o);

    // Where the time of the largest run goes.
    if let Some(r) = results
        .scale
        .iter()
        .filter(|r| r.ok())
        .max_by_key(|r| (r.stacks, r.shape == Shape::Independent))
    {
        let st = &r.stats.state_seconds;
        let get = |k: &str| st.get(k).copied().unwrap_or(0.0);
        let deploy_maps = get("DeployWave");
        let waits = get("WaitForWave");
        let checks = get("CheckWave");
        let other = r.stats.makespan() - deploy_maps - waits - checks;
        let _ = writeln!(
            o,
            "Where the {}-stack {} run's {} go (from the history): DeployWave maps {} \
             (deploy-stack for every stack, {} at a time), WaitForWave {}, CheckWave {}, the rest \
             (plan, notify, finalize, transitions) {}.\n",
            r.stacks,
            profiles::shape_label(r.shape),
            secs(Some(r.stats.makespan())),
            secs(Some(deploy_maps)),
            stackwave_core::io::DEFAULT_MAX_CONCURRENCY,
            secs(Some(waits)),
            secs(Some(checks)),
            secs(Some(other))
        );
    }
}

fn handlers_section(
    o: &mut String,
    results: &Results,
    makespan_gw: &BTreeMap<String, (usize, f64, f64)>,
) {
    let _ = writeln!(o, "## 4. Handlers\n");
    let _ = writeln!(
        o,
        "Wall time per invocation, two ways: *gateway* = the handler's own time as the local \
         gateway logs it (`invoke ok … duration_ms`), *history* = `LambdaFunctionScheduled` → \
         `LambdaFunctionSucceeded` in the execution history (adds the executor's HTTP call). \
         Medians over every invocation of the phase. Debug builds; all handlers share one \
         gateway process and one emulator, so a wave's parallel deploy-stack invocations queue \
         behind each other.\n"
    );
    let mut hist: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in results.makespan.iter().filter(|r| r.ok()) {
        for (f, v) in &r.stats.lambda_seconds {
            hist.entry(f.clone())
                .or_default()
                .extend(v.iter().map(|s| s * 1000.0));
        }
    }
    let _ = writeln!(
        o,
        "| phase | function | invocations | gateway median | gateway p90 | history median |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    for (f, (n, med, p90)) in makespan_gw {
        let _ = writeln!(
            o,
            "| makespan runs (Bellyfed and uniform, waves of 1–4 stacks, six executions side by side) | {f} | {n} | {} ms | {} ms | {} ms |",
            fixed(Some(*med), 0),
            fixed(Some(*p90), 0),
            fixed(hist.get(f).and_then(|v| median(v)), 0)
        );
    }
    if let Some(r) = results
        .scale
        .iter()
        .find(|r| r.stacks == 500 && r.shape == Shape::Independent)
    {
        for (f, (n, med, p90)) in gateway_medians(&r.gateway) {
            let _ = writeln!(
                o,
                "| 500 stacks (waves of 100) | {f} | {n} | {} ms | {} ms | {} ms |",
                fixed(Some(med), 0),
                fixed(Some(p90), 0),
                fixed(
                    r.stats
                        .lambda_seconds
                        .get(&f)
                        .and_then(|v| median(&v.iter().map(|s| s * 1000.0).collect::<Vec<_>>())),
                    0
                )
            );
        }
    }
    let _ = writeln!(
        o,
        "\n### The plan step in-process\n\n`stackwave_core::plan::from_text` (parse, \
         `${{environment}}` substitution, validation, cycle check, waves) on synthetic 500-stack \
         manifests, repeated; debug build (the Lambda is built in release, opt-level s).\n"
    );
    let _ = writeln!(
        o,
        "| manifest | stacks | runs | median | p90 |\n|---|---|---|---|---|"
    );
    for p in &results.plan_bench {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} ms | {} ms |",
            p.label,
            p.stacks,
            p.runs,
            fixed(median(&p.millis), 2),
            fixed(quantile(&p.millis, 0.9), 2)
        );
    }
    let _ = writeln!(o);
}

fn misses_section(
    o: &mut String,
    results: &Results,
    bf: &Row,
    bf_30: Option<&budget::Estimate>,
    bf_ratio: Option<f64>,
) {
    let _ = writeln!(o, "## Where stackwave misses its targets\n");
    let mut any = false;
    if let Some(r) = bf_ratio {
        if r > MAKESPAN_TARGET {
            any = true;
            let waves = bf.model_estimate.as_ref().map_or(0, |e| e.waves);
            let _ = writeln!(
                o,
                "- **Makespan / ideal on the Bellyfed profile: {:.2}, target ≤ {MAKESPAN_TARGET:.2}.** \
                 The {} waves run one after another; each wave boundary costs a handoff of {} \
                 (median: detection by the next poll, the Waves/Stages map transitions, \
                 deploy-stack, the first Wait of pollSeconds.min before the check that executes \
                 the change sets), and wave barriers alone put the floor at {} × ideal. \
                 Scaling makes the poll part of this coarser than real (see Scaling); projected \
                 to real durations the default polls still give **{}** (section 1): each wave's \
                 end is seen up to a 60-s poll late, nine times over.",
                r,
                waves,
                secs(bf.handoff),
                fixed(ratio(bf.wave_floor, bf.ideal), 2),
                fixed(
                    projection(results)
                        .and_then(|p| p.rows.first().map(|d| d.makespan / p.ideal)),
                    2
                )
            );
        }
    }
    if let Some(e) = bf_30 {
        if e.events >= EVENTS_TARGET {
            any = true;
            let _ = writeln!(
                o,
                "- **History events for Bellyfed at 30-minute stacks: {}, target < {}.** The \
                 README's Budgets section says ~3,083 by the model; {} (section 2), so the \
                 figure stands: {} poll cycles × {POLL_CYCLE} = {} of the events. Meeting the \
                 target takes a larger `pollSeconds.max` (section 2), i.e. later detection.",
                thousands(e.events),
                thousands(EVENTS_TARGET),
                cycle_verdict(events_per_cycle(results, bf)),
                thousands(e.poll_cycles),
                thousands(e.poll_cycles * POLL_CYCLE)
            );
        }
    }
    for r in results.scale.iter().filter(|r| !r.ok()) {
        any = true;
        let _ = writeln!(
            o,
            "- **{} stacks, {}: {}** — {}",
            r.stacks,
            profiles::shape_label(r.shape),
            r.status,
            r.error.clone().unwrap_or_default()
        );
    }
    if !any {
        let _ = writeln!(o, "- None of the measured targets is missed in this run.");
    }
    let _ = writeln!(o);
}

fn closing(
    o: &mut String,
    results: &Results,
    bf: &Row,
    bf_30: Option<&budget::Estimate>,
    bf_ratio: Option<f64>,
) {
    let _ = writeln!(o, "## The three figures that most limit stackwave today\n");
    let waves = bf.model_estimate.as_ref().map_or(0, |e| e.waves);
    let _ = writeln!(
        o,
        "1. **{} per wave handoff** (Bellyfed, adaptive poll; {} waves in sequence) → makespan \
         / ideal **{}** on the emulator and {} projected to real durations, against ≤ \
         {MAKESPAN_TARGET:.2}. Every wave pays detection, map transitions, deploy-stack and a \
         first Wait before its stacks start; the wave floor alone is {} × ideal, and a \
         full-DAG schedule of the same durations would finish in {} × ideal.",
        secs(bf.handoff),
        waves,
        fixed(bf_ratio, 2),
        fixed(
            projection(results).and_then(|p| p.rows.first().map(|d| d.makespan / p.ideal)),
            2
        ),
        fixed(ratio(bf.wave_floor, bf.ideal), 2),
        fixed(
            results
                .makespan
                .iter()
                .find(|r| r.ok() && r.profile == Profile::Bellyfed)
                .map(|r| {
                    crate::schedule::dag(&r.plan, &profiles::bellyfed_seconds, 0.0).makespan
                        / r.ideal()
                }),
            2
        )
    );
    if let Some(e) = bf_30 {
        let _ = writeln!(
            o,
            "2. **{} history events** for Bellyfed at 30-minute stacks with the default polls \
             (target < {}): {} poll cycles × {POLL_CYCLE} events, because the 60-s cap polls each \
             30-minute wave {} times and the {} waves cannot overlap.",
            thousands(e.events),
            thousands(EVENTS_TARGET),
            thousands(e.poll_cycles),
            e.poll_cycles / e.waves.max(1),
            e.waves
        );
    }
    match state_growth(results) {
        Some(g) => {
            let _ = writeln!(
                o,
                "3. **≈{:.0} bytes of state per stack**: the largest state, the {}, is {} bytes \
                 at {} stacks ({:.0}% of 262,144) and grows linearly with the stack count, so a \
                 run of about **{} stacks** would exceed Step Functions' state limit; every \
                 other figure of the {}-stack run was well within its limit ({} history events \
                 of 25,000). The run summary travels through the states; the plan and the \
                 records already live in S3.",
                g.per_stack,
                g.large_at,
                thousands(g.large_bytes as u64),
                g.large_stacks,
                100.0 * g.large_bytes as f64 / STATE_LIMIT as f64,
                thousands(g.at_limit as u64),
                g.large_stacks,
                results
                    .scale
                    .iter()
                    .filter(|r| r.ok() && r.stacks == g.large_stacks)
                    .map(|r| r.stats.events)
                    .max()
                    .map_or("–".to_string(), thousands)
            );
        }
        None => {
            let _ = writeln!(
                o,
                "3. **The scale ceiling was not measured** in this run (fewer than two completed \
                 scale runs of different sizes)."
            );
        }
    }
}
