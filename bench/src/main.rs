//! `make bench`: run stackwave end to end on the local emulator and write BENCHMARKS.md.
//!
//! ```text
//! stackwave-bench [--out BENCHMARKS.md] [--budget-seconds 780] [--quick]
//! ```
//!
//! Phases, in order (each figure is measured in this one run):
//! 1. the plan step in-process (500-stack manifests, many runs);
//! 2. makespan rounds: Bellyfed and uniform profiles × three poll settings, the six executions
//!    of a round side by side;
//! 3. scale runs: synthetic manifests of 50, 200 and 500 stacks in several shapes, one at a time
//!    on an emptied emulator, with moto's request recorder counting CloudFormation calls;
//! 4. optional runs (more shapes at 200 and 500 stacks) while the time budget allows.
//!
//! The emulator runs on its own endpoint (`STACKWAVE_BENCH_ENDPOINT`, default
//! `http://127.0.0.1:4966`) and is stopped at the end.

mod cost;
mod harness;
mod history;
mod preserve;
mod profiles;
mod recorder;
mod report;
mod schedule;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use stackwave_core::manifest::ParamValue;
use stackwave_core::plan::Plan;
use stackwave_core::synth::Shape;

use crate::harness::Local;
use crate::profiles::{PollConfig, POLL_CONFIGS};
use crate::schedule::{Handoff, Window};

/// The two makespan profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    Bellyfed,
    Uniform,
}

impl Profile {
    pub fn label(self) -> &'static str {
        match self {
            Profile::Bellyfed => "Bellyfed (scaled)",
            Profile::Uniform => "uniform",
        }
    }

    pub fn seconds(self, stack: &str) -> f64 {
        match self {
            Profile::Bellyfed => profiles::bellyfed_seconds(stack),
            Profile::Uniform => profiles::UNIFORM_SECONDS,
        }
    }
}

/// One makespan execution.
#[derive(Debug, Clone)]
pub struct MakespanRun {
    pub profile: Profile,
    pub config: PollConfig,
    pub round: usize,
    pub environment: String,
    pub status: String,
    pub error: Option<String>,
    pub plan: Plan,
    pub stats: history::Stats,
    pub windows: HashMap<String, Window>,
    pub handoffs: Vec<Handoff>,
    pub dependency_waits: Vec<f64>,
}

impl MakespanRun {
    pub fn ok(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    pub fn ideal(&self) -> f64 {
        schedule::ideal(&self.plan, &|s| self.profile.seconds(s))
    }

    /// First stack start − execution start.
    pub fn lead_in(&self) -> Option<f64> {
        let first = self
            .windows
            .values()
            .map(|w| w.start)
            .fold(f64::INFINITY, f64::min);
        first.is_finite().then_some(first - self.stats.start)
    }

    /// Execution end − last stack settled.
    pub fn tail(&self) -> Option<f64> {
        let last = self
            .windows
            .values()
            .map(|w| w.end)
            .fold(f64::NEG_INFINITY, f64::max);
        last.is_finite().then_some(self.stats.end - last)
    }

    /// First stack start → last stack settled.
    pub fn deploy_span(&self) -> Option<f64> {
        let first = self
            .windows
            .values()
            .map(|w| w.start)
            .fold(f64::INFINITY, f64::min);
        let last = self
            .windows
            .values()
            .map(|w| w.end)
            .fold(f64::NEG_INFINITY, f64::max);
        (first.is_finite() && last.is_finite()).then_some(last - first)
    }
}

/// A scale run to make: stacks and shape.
type ScaleCase = (usize, Shape);

/// One scale execution.
#[derive(Debug, Clone)]
pub struct ScaleRun {
    pub stacks: usize,
    pub stages: usize,
    pub per_stage: usize,
    pub shape: Shape,
    pub status: String,
    pub error: Option<String>,
    pub plan: Plan,
    pub stats: history::Stats,
    pub calls: recorder::CfnCalls,
    /// DescribeStacks by name that deploy-stack makes: its own stack plus each distinct stack
    /// whose outputs it reads.
    pub deploy_describes: u64,
    pub gateway: Vec<(String, f64)>,
    /// Wall seconds of the whole run in the bench (reset, upload, execution, history).
    pub wall: f64,
}

impl ScaleRun {
    pub fn ok(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    pub fn ideal(&self) -> f64 {
        schedule::ideal(&self.plan, &|_| 1.0)
    }

    pub fn waves(&self) -> usize {
        self.plan.stages.iter().map(|s| s.waves.len()).sum()
    }

    /// CloudFormation calls the check function made: the actions only check makes, the
    /// listing DescribeStacks, and the by-name DescribeStacks beyond deploy-stack's.
    pub fn check_calls(&self) -> u64 {
        let c = &self.calls;
        c.get("DescribeChangeSet")
            + c.get("ExecuteChangeSet")
            + c.get("DeleteChangeSet")
            + c.get("DescribeStackEvents")
            + c.describe_stacks_listing
            + c.describe_stacks_named
                .saturating_sub(self.deploy_describes)
    }
}

/// The plan step in-process.
#[derive(Debug, Clone)]
pub struct PlanBench {
    pub label: String,
    pub stacks: usize,
    pub runs: usize,
    pub millis: Vec<f64>,
}

/// Everything the report needs.
#[derive(Debug, Clone)]
pub struct Results {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub runner_seconds: f64,
    pub rounds: usize,
    pub makespan: Vec<MakespanRun>,
    pub makespan_gateway: Vec<(String, f64)>,
    pub scale: Vec<ScaleRun>,
    pub plan_bench: Vec<PlanBench>,
    pub skipped: Vec<String>,
    pub problems: Vec<String>,
    pub bellyfed_plan: Option<Plan>,
}

struct Args {
    out: PathBuf,
    budget: Duration,
    quick: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut out = stackwave_cli::local::repo_root().join("BENCHMARKS.md");
    let mut budget = Duration::from_secs(780);
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => {
                out = PathBuf::from(args.next().context("--out needs a path")?);
            }
            "--budget-seconds" => {
                let v: u64 = args
                    .next()
                    .context("--budget-seconds needs a number")?
                    .parse()
                    .context("--budget-seconds needs a number")?;
                budget = Duration::from_secs(v);
            }
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!(
                    "stackwave-bench [--out BENCHMARKS.md] [--budget-seconds 780] [--quick]\n\
                     Runs the benchmarks on the local emulator and writes the report."
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    Ok(Args { out, budget, quick })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stackwave-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let work = std::env::temp_dir().join(format!("stackwave-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("stackwave-bench: create {}: {e}", work.display());
        return ExitCode::FAILURE;
    }
    let recording = work.join("moto-recording.jsonl");
    // Read by the emulator and the gateway this process starts (before any thread exists).
    std::env::set_var("MOTO_RECORDER_FILEPATH", &recording);
    if std::env::var_os("RUST_LOG").is_none() {
        // The gateway logs each invocation's duration at info.
        std::env::set_var("RUST_LOG", "info");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stackwave-bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(&args, &work, &recording));
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stackwave-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn say(t0: Instant, msg: &str) {
    eprintln!("[{:>6.1}s] {msg}", t0.elapsed().as_secs_f64());
}

async fn run(args: &Args, work: &Path, recording: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let started_at = chrono::Utc::now();
    let mut results = Results {
        started_at,
        runner_seconds: 0.0,
        rounds: 0,
        makespan: Vec::new(),
        makespan_gateway: Vec::new(),
        scale: Vec::new(),
        plan_bench: Vec::new(),
        skipped: Vec::new(),
        problems: Vec::new(),
        bellyfed_plan: None,
    };

    say(t0, "plan step in-process (500-stack manifests)");
    results.plan_bench = plan_bench(if args.quick { 5 } else { 40 });

    let endpoint = harness::endpoint();
    say(t0, &format!("starting the local emulator at {endpoint}"));
    let mut local = Local::start(&endpoint, recording).await?;
    let outcome = phases(args, work, t0, &mut local, &mut results).await;
    say(t0, "stopping the local emulator");
    if let Err(e) = local.stop().await {
        results
            .problems
            .push(format!("stopping the emulator: {e:#}"));
    }
    if let Err(e) = &outcome {
        results
            .problems
            .push(format!("the bench stopped early: {e:#}"));
    }
    results.runner_seconds = t0.elapsed().as_secs_f64();

    let previous = std::fs::read_to_string(&args.out).unwrap_or_default();
    let text = report::render(&results, preserve::extract(&previous).as_deref());
    std::fs::write(&args.out, text).with_context(|| format!("write {}", args.out.display()))?;
    say(t0, &format!("wrote {}", args.out.display()));
    outcome
}

async fn phases(
    args: &Args,
    work: &Path,
    t0: Instant,
    local: &mut Local,
    results: &mut Results,
) -> anyhow::Result<()> {
    let bellyfed_dir = stackwave_cli::local::repo_root().join("examples/bellyfed");
    let (us, up, ushape) = profiles::UNIFORM_LAYOUT;
    let uniform_dir = profiles::write_synth(&work.join("uniform"), us, up, ushape)?;
    results.bellyfed_plan = stackwave_cli::deploy::validate(&bellyfed_dir, "bench")?
        .plan
        .ok();

    // ── Makespan rounds ────────────────────────────────────────────────────────────────
    let rounds = if args.quick { 1 } else { 3 };
    let offset = local.gateway_log_offset();
    for round in 0..rounds {
        say(
            t0,
            &format!(
                "makespan round {}: 2 profiles × 3 polls side by side",
                round + 1
            ),
        );
        let r0 = Instant::now();
        let jobs = [Profile::Bellyfed, Profile::Uniform]
            .into_iter()
            .flat_map(|p| POLL_CONFIGS.iter().map(move |c| (p, *c)))
            .map(|(profile, config)| {
                let dir = match profile {
                    Profile::Bellyfed => bellyfed_dir.clone(),
                    Profile::Uniform => uniform_dir.clone(),
                };
                let local = &*local;
                async move { makespan_run(local, profile, config, round, &dir).await }
            });
        for r in futures::future::join_all(jobs).await {
            match r {
                Ok(run) => {
                    if !run.ok() {
                        results.problems.push(format!(
                            "makespan run {} / {} ({}) ended {}: {}",
                            run.profile.label(),
                            run.config.label,
                            run.environment,
                            run.status,
                            run.error.clone().unwrap_or_default()
                        ));
                    }
                    results.makespan.push(run);
                }
                Err(e) => results
                    .problems
                    .push(format!("a makespan run failed: {e:#}")),
            }
        }
        results.rounds += 1;
        say(
            t0,
            &format!("  round took {:.0} s", r0.elapsed().as_secs_f64()),
        );
    }
    results.makespan_gateway = local.gateway_invocations(offset);

    // ── Scale runs ─────────────────────────────────────────────────────────────────────
    // Mandatory: every shape at 50, two at 200, the 500-stack run; then, by priority, what
    // the time budget still allows.
    // The 500-stack run always runs (second, after the smallest); every other run only when
    // it is projected to end within the time budget, in this order of priority.
    let (mandatory, optional): (Vec<ScaleCase>, Vec<ScaleCase>) = if args.quick {
        (vec![(50, Shape::Independent), (50, Shape::FanIn)], vec![])
    } else {
        (
            vec![(50, Shape::Independent), (500, Shape::Independent)],
            vec![
                (50, Shape::ChainInStage(4)),
                (50, Shape::FanIn),
                (200, Shape::Independent),
                (200, Shape::FanIn),
                (200, Shape::ChainInStage(4)),
                (500, Shape::ChainInStage(4)),
                (500, Shape::FanIn),
            ],
        )
    };
    let mut walls: Vec<(f64, f64, f64)> = Vec::new();
    for (n, shape) in mandatory {
        let run = scale_run(local, work, t0, n, shape).await;
        record_scale(results, run, &mut walls);
    }
    for (n, shape) in optional {
        let waves = scale_waves(n, shape);
        let projected = t0.elapsed().as_secs_f64() + projected_wall(&walls, n as f64, waves);
        if projected > args.budget.as_secs_f64() {
            results.skipped.push(format!(
                "{n} stacks, {} (projected to end at {:.0} s, past the time budget of {} s)",
                profiles::shape_label(shape),
                projected,
                args.budget.as_secs()
            ));
            continue;
        }
        let run = scale_run(local, work, t0, n, shape).await;
        record_scale(results, run, &mut walls);
    }
    // Report by size, then shape.
    let order = |s: Shape| match s {
        Shape::Independent => 0,
        Shape::ChainInStage(_) => 1,
        Shape::FanIn => 2,
    };
    results.scale.sort_by_key(|r| (r.stacks, order(r.shape)));
    Ok(())
}

/// Waves of a 5-stage synthetic manifest of `n` stacks.
fn scale_waves(n: usize, shape: Shape) -> f64 {
    let text = stackwave_core::synth::manifest_yaml(
        profiles::SYNTH_NAME,
        5,
        n / 5,
        shape,
        profiles::SYNTH_TEMPLATE,
    );
    stackwave_core::plan::from_text(&text, "bench", &|_| true)
        .map(|p| p.stages.iter().map(|s| s.waves.len()).sum::<usize>() as f64)
        .unwrap_or(5.0)
}

/// How long a scale run should take: `a × stacks + b × waves`, fitted by least squares to the
/// runs so far (`(stacks, waves, wall seconds)`); 0.3 s per stack and 3.5 s per wave before
/// there are two distinct runs to fit.
fn projected_wall(walls: &[(f64, f64, f64)], stacks: f64, waves: f64) -> f64 {
    let (mut sxx, mut sxy, mut syy, mut sxz, mut syz) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y, z) in walls {
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
        sxz += x * z;
        syz += y * z;
    }
    let det = sxx * syy - sxy * sxy;
    let (a, b) = if det.abs() > 1e-9 {
        (
            ((sxz * syy - syz * sxy) / det).max(0.05),
            ((syz * sxx - sxz * sxy) / det).max(0.5),
        )
    } else {
        (0.3, 3.5)
    };
    a * stacks + b * waves
}

fn record_scale(
    results: &mut Results,
    run: anyhow::Result<ScaleRun>,
    walls: &mut Vec<(f64, f64, f64)>,
) {
    match run {
        Ok(run) => {
            if !run.ok() {
                results.problems.push(format!(
                    "scale run {} stacks {} ended {}: {}",
                    run.stacks,
                    profiles::shape_label(run.shape),
                    run.status,
                    run.error.clone().unwrap_or_default()
                ));
            }
            walls.push((run.stacks as f64, run.waves() as f64, run.wall));
            results.scale.push(run);
        }
        Err(e) => results.problems.push(format!("a scale run failed: {e:#}")),
    }
}

async fn makespan_run(
    local: &Local,
    profile: Profile,
    config: PollConfig,
    round: usize,
    dir: &Path,
) -> anyhow::Result<MakespanRun> {
    let prefix = match profile {
        Profile::Bellyfed => "bf",
        Profile::Uniform => "un",
    };
    let environment = profiles::fresh_env(prefix);
    let plan = stackwave_cli::deploy::validate(dir, &environment)?
        .plan
        .map_err(|issues| anyhow::anyhow!("{} is invalid: {issues:?}", dir.display()))?;
    let per_stack: serde_json::Map<String, serde_json::Value> = plan
        .stacks
        .iter()
        .map(|s| (s.name.clone(), json!(profile.seconds(&s.name))))
        .collect();
    local.config(&json!({"stackSeconds": per_stack})).await?;
    let started = local.deploy(dir, &environment, config.poll).await?;
    let ended = local
        .wait(&started.arn, Duration::from_secs(600))
        .await
        .with_context(|| format!("waiting for {}", started.arn))?;
    let events = local.history(&started.arn).await?;
    let stats = history::analyze(&events);
    let names: Vec<String> = started.plan.stacks.iter().map(|s| s.name.clone()).collect();
    let windows = local.windows(&names).await?;
    Ok(MakespanRun {
        profile,
        config,
        round,
        environment,
        status: ended.status,
        error: ended.error,
        handoffs: schedule::handoffs(&started.plan, &windows),
        dependency_waits: schedule::dependency_waits(&started.plan, &windows),
        plan: started.plan,
        stats,
        windows,
    })
}

/// DescribeStacks by name deploy-stack makes for `plan`: its own stack and each distinct
/// stack whose outputs it reads.
pub fn deploy_describes(plan: &Plan) -> u64 {
    plan.stacks
        .iter()
        .map(|s| {
            let mut sources: Vec<&str> = s
                .parameters
                .values()
                .filter_map(|v| match v {
                    ParamValue::Output { output } => output.split_once('.').map(|(st, _)| st),
                    _ => None,
                })
                .collect();
            sources.sort_unstable();
            sources.dedup();
            1 + sources.len() as u64
        })
        .sum()
}

async fn scale_run(
    local: &mut Local,
    work: &Path,
    t0: Instant,
    n: usize,
    shape: Shape,
) -> anyhow::Result<ScaleRun> {
    let stages = 5;
    let per_stage = n / stages;
    say(
        t0,
        &format!(
            "scale: {n} stacks, {} ({stages} stages × {per_stage})",
            profiles::shape_label(shape)
        ),
    );
    let w0 = Instant::now();
    // An emptied emulator per run: check's listing DescribeStacks pages through every stack
    // of the region, so earlier runs' stacks would weigh on later runs.
    local.reset().await?;
    local.config(&json!({"defaultStackSeconds": 1.0})).await?;
    let dir = profiles::write_synth(
        &work.join(format!("scale-{n}-{}", profiles::shape_label(shape))),
        stages,
        per_stage,
        shape,
    )?;
    let environment = profiles::fresh_env("sc");
    local.recorder("reset-recording").await?;
    local.recorder("start-recording").await?;
    let offset = local.gateway_log_offset();
    let started = local
        .deploy(
            &dir,
            &environment,
            stackwave_core::io::PollSeconds { min: 1, max: 2 },
        )
        .await;
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = local.recorder("stop-recording").await;
            return Err(e);
        }
    };
    let ended = local
        .wait(&started.arn, Duration::from_secs(900))
        .await
        .with_context(|| format!("waiting for {}", started.arn));
    let _ = local.recorder("stop-recording").await;
    let ended = ended?;
    let calls = recorder::count(&local.read_recording());
    let gateway = local.gateway_invocations(offset);
    let events = local.history(&started.arn).await?;
    let stats = history::analyze(&events);
    say(
        t0,
        &format!(
            "  {}: {} events, makespan {:.1} s",
            ended.status,
            stats.events,
            stats.makespan()
        ),
    );
    Ok(ScaleRun {
        stacks: started.plan.stacks.len(),
        stages,
        per_stage,
        shape,
        status: ended.status,
        error: ended.error,
        deploy_describes: deploy_describes(&started.plan),
        plan: started.plan,
        stats,
        calls,
        gateway,
        wall: w0.elapsed().as_secs_f64(),
    })
}

/// `stackwave_core::plan::from_text` (parse, validate, cycle check) on 500-stack manifests.
fn plan_bench(runs: usize) -> Vec<PlanBench> {
    [Shape::Independent, Shape::ChainInStage(4), Shape::FanIn]
        .into_iter()
        .map(|shape| {
            let text = stackwave_core::synth::manifest_yaml(
                profiles::SYNTH_NAME,
                5,
                100,
                shape,
                profiles::SYNTH_TEMPLATE,
            );
            let exists = |p: &str| p == profiles::SYNTH_TEMPLATE;
            let mut millis = Vec::with_capacity(runs);
            let mut stacks = 0;
            for _ in 0..runs {
                let t = Instant::now();
                let plan = stackwave_core::plan::from_text(&text, "bench", &exists);
                millis.push(t.elapsed().as_secs_f64() * 1000.0);
                if let Ok(p) = plan {
                    stacks = p.stacks.len();
                }
            }
            PlanBench {
                label: format!("5 × 100, {}", profiles::shape_label(shape)),
                stacks,
                runs,
                millis,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_describes_count_output_sources_once() {
        let text = stackwave_core::synth::manifest_yaml("t", 2, 3, Shape::FanIn, "t.yaml");
        let plan = stackwave_core::plan::from_text(&text, "e", &|_| true).expect("plan");
        // 6 stacks; s0-n2, s1-n0 and s1-n2 read one upstream output each.
        assert_eq!(deploy_describes(&plan), 9);
    }

    #[test]
    fn wall_projection_fits_stacks_and_waves() {
        // Runs that took 0.25 s per stack and 3 s per wave.
        let walls = [(50.0, 5.0, 27.5), (500.0, 5.0, 140.0), (50.0, 20.0, 72.5)];
        let p = projected_wall(&walls, 500.0, 20.0);
        assert!((p - 185.0).abs() < 1e-6, "{p}");
        assert_eq!(projected_wall(&[], 100.0, 10.0), 65.0);
        assert_eq!(scale_waves(500, Shape::ChainInStage(4)), 20.0);
        assert_eq!(scale_waves(50, Shape::FanIn), 10.0);
    }

    #[test]
    fn plan_bench_plans_500_stacks() {
        let b = plan_bench(1);
        assert_eq!(b.len(), 3);
        assert!(b.iter().all(|p| p.stacks == 500 && p.millis.len() == 1));
    }
}
