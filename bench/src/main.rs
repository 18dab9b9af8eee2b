//! `make bench`: run stackwave end to end on the local emulator and write BENCHMARKS.md,
//! `bench/results.json` and `bench/timeline.svg`.
//!
//! ```text
//! stackwave-bench [--out BENCHMARKS.md] [--budget-seconds 1500] [--quick]
//! ```
//!
//! Phases, in order (each figure is measured in this one run):
//! 1. makespan rounds: the scaled Bellyfed profile with `schedule: stages` and with
//!    `schedule: dependencies`, the two executions of a round side by side, default polls;
//! 2. every event lost: one Bellyfed run with the emulator dropping every CloudFormation event;
//! 3. scale: 2,000 stacks in one run on an emptied emulator;
//! 4. the model (`stackwave_core::budget`) at real durations and at 30-minute stacks, fed with
//!    the step times measured above.
//!
//! The emulator runs on its own endpoint (`STACKWAVE_BENCH_ENDPOINT`, default
//! `http://127.0.0.1:4966`) and is stopped at the end.

mod cost;
mod harness;
mod history;
mod preserve;
mod profiles;
mod report;
mod schedule;
mod stats;
mod timeline;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use stackwave_core::plan::Plan;
use stackwave_core::synth::Shape;

use crate::harness::Local;
use crate::schedule::Window;

/// The manifest's `schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Stages,
    Dependencies,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Stages => "schedule: stages (default)",
            Mode::Dependencies => "schedule: dependencies (full DAG)",
        }
    }
}

/// One measured Bellyfed execution.
#[derive(Debug, Clone)]
pub struct MakespanRun {
    pub mode: Mode,
    pub round: usize,
    pub environment: String,
    pub status: String,
    pub error: Option<String>,
    pub plan: Plan,
    pub stats: history::Stats,
    pub windows: HashMap<String, Window>,
}

impl MakespanRun {
    pub fn ok(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// The mode's ideal: Σ of each stage's critical path, or the whole graph's.
    pub fn ideal(&self) -> f64 {
        ideal_of(self.mode, &self.plan, &|s| profiles::bellyfed_seconds(s))
    }

    pub fn ratio(&self) -> f64 {
        self.stats.makespan() / self.ideal()
    }

    pub fn dependency_waits(&self) -> Vec<f64> {
        schedule::dependency_waits(&self.plan, &self.windows, self.mode == Mode::Dependencies)
    }
}

/// The ideal of a mode for `plan` and these durations.
pub fn ideal_of(mode: Mode, plan: &Plan, seconds: &dyn Fn(&str) -> f64) -> f64 {
    match mode {
        Mode::Stages => schedule::ideal(plan, seconds),
        Mode::Dependencies => schedule::dag(plan, seconds),
    }
}

/// The 2,000-stack execution.
#[derive(Debug, Clone)]
pub struct ScaleRun {
    pub stacks: usize,
    pub stages: usize,
    pub max_concurrency: u32,
    pub status: String,
    pub error: Option<String>,
    pub stats: history::Stats,
    /// Wall seconds of the whole run in the bench (reset, upload, execution, history).
    pub wall: f64,
}

impl ScaleRun {
    pub fn ok(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

/// Everything the report needs.
#[derive(Debug, Clone)]
pub struct Results {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub runner_seconds: f64,
    pub rounds: usize,
    pub makespan: Vec<MakespanRun>,
    pub lost: Option<MakespanRun>,
    /// The fallback poll of the lost-events run.
    pub lost_fallback: u32,
    /// The 2,000-stack run.
    pub scale: Option<ScaleRun>,
    /// The largest run of the same shape the worst-case history check admits.
    pub scale_fit: Option<ScaleRun>,
    /// `(function, milliseconds)` of every invocation of the makespan rounds.
    pub gateway: Vec<(String, f64)>,
    pub problems: Vec<String>,
    pub bellyfed_plan: Plan,
    pub bellyfed_dag_plan: Plan,
}

/// Stacks of the scale run: 5 stages of 400 independent stacks.
pub const SCALE_STAGES: usize = 5;
pub const SCALE_PER_STAGE: usize = 400;
/// Stacks per stage of the scale run with `--quick`.
pub const QUICK_PER_STAGE: usize = 40;
/// Stacks per stage of the largest 5-stage run of independent stacks that the plan step's
/// worst-case history check admits with the default fallback poll.
pub fn admitted_per_stage() -> usize {
    let text = stackwave_core::synth::manifest_yaml(
        profiles::SYNTH_NAME,
        SCALE_STAGES,
        1,
        Shape::Independent,
        profiles::SYNTH_TEMPLATE,
    );
    stackwave_core::plan::from_text(&text, "bench", &|_| true)
        .map(|p| {
            let w = stackwave_core::budget::worst_case(
                &p,
                stackwave_core::budget::Limits {
                    max_concurrency: SCALE_MAX_CONCURRENCY,
                    ..stackwave_core::budget::Limits::default()
                },
            );
            (w.max_stacks as usize / SCALE_STAGES).clamp(1, SCALE_PER_STAGE)
        })
        .unwrap_or(1)
}

/// The largest `maxConcurrency` the plan step accepts.
pub const SCALE_MAX_CONCURRENCY: u32 = 40;
/// The lost-events run's fallback: the default 900 s at one emulated second per real minute.
pub const LOST_FALLBACK_SECONDS: u32 = 15;

struct Args {
    out: PathBuf,
    budget: Duration,
    quick: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut out = stackwave_cli::local::repo_root().join("BENCHMARKS.md");
    let mut budget = Duration::from_secs(1500);
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
                    "stackwave-bench [--out BENCHMARKS.md] [--budget-seconds 1500] [--quick]\n\
                     Runs the benchmarks on the local emulator and writes the report, \
                     bench/results.json and bench/timeline.svg beside it.\n\
                     --budget-seconds bounds the scale run's wait; --quick runs one round and \
                     a 200-stack scale run."
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
    let result = runtime.block_on(run(&args, &work));
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

/// `examples/bellyfed` copied under `work` for the lost-events run: its default
/// `timeoutMinutes: 60` scaled like its durations (one emulated second per real minute) to 1,
/// so that its short fallback poll passes the plan step's worst-case history check.
fn bellyfed_lost_dir(bellyfed: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    copy_edited(bellyfed, &work.join("bellyfed-lost"), |text| {
        let scaled = text.replace("  timeoutMinutes: 60\n", "  timeoutMinutes: 1\n");
        anyhow::ensure!(
            scaled != text,
            "the manifest has no `timeoutMinutes: 60` default to scale"
        );
        Ok(scaled)
    })
}

/// `examples/bellyfed` copied under `work` with `schedule: dependencies` added.
fn bellyfed_dag_dir(bellyfed: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    copy_edited(bellyfed, &work.join("bellyfed-dag"), |mut text| {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("schedule: dependencies\n");
        Ok(text)
    })
}

/// `from` copied to `to`, its `manifest.yaml` rewritten by `edit`.
fn copy_edited(
    from: &Path,
    to: &Path,
    edit: impl FnOnce(String) -> anyhow::Result<String>,
) -> anyhow::Result<PathBuf> {
    copy_dir(from, to)?;
    let manifest = to.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("read {}", manifest.display()))?;
    let edited = edit(text).with_context(|| format!("edit {}", manifest.display()))?;
    std::fs::write(&manifest, edited)?;
    Ok(to.to_path_buf())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copy to {}", target.display()))?;
        }
    }
    Ok(())
}

async fn run(args: &Args, work: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let started_at = chrono::Utc::now();
    let bellyfed_dir = stackwave_cli::local::repo_root().join("examples/bellyfed");
    let dag_dir = bellyfed_dag_dir(&bellyfed_dir, work)?;
    let plan_of = |dir: &Path| -> anyhow::Result<Plan> {
        stackwave_cli::deploy::validate(dir, "bench")?
            .plan
            .map_err(|issues| anyhow::anyhow!("{} is invalid: {issues:?}", dir.display()))
    };
    let mut results = Results {
        started_at,
        runner_seconds: 0.0,
        rounds: 0,
        makespan: Vec::new(),
        lost: None,
        lost_fallback: LOST_FALLBACK_SECONDS,
        scale: None,
        scale_fit: None,
        gateway: Vec::new(),
        problems: Vec::new(),
        bellyfed_plan: plan_of(&bellyfed_dir)?,
        bellyfed_dag_plan: plan_of(&dag_dir)?,
    };

    let endpoint = harness::endpoint();
    say(t0, &format!("starting the local emulator at {endpoint}"));
    let mut local = Local::start(&endpoint).await?;
    let outcome = phases(
        args,
        work,
        t0,
        &mut local,
        &mut results,
        &bellyfed_dir,
        &dag_dir,
    )
    .await;
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

    let dir = args
        .out
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let previous = std::fs::read_to_string(&args.out).unwrap_or_default();
    let rendered = report::render(&results, preserve::extract(&previous).as_deref());
    std::fs::write(&args.out, rendered.markdown)
        .with_context(|| format!("write {}", args.out.display()))?;
    let json_path = dir.join("results.json");
    std::fs::write(&json_path, format!("{:#}\n", rendered.json))
        .with_context(|| format!("write {}", json_path.display()))?;
    if let Some(svg) = rendered.timeline {
        std::fs::write(dir.join("timeline.svg"), svg).context("write the timeline")?;
    }
    say(t0, &format!("wrote {}", args.out.display()));
    outcome
}

async fn phases(
    args: &Args,
    work: &Path,
    t0: Instant,
    local: &mut Local,
    results: &mut Results,
    bellyfed_dir: &Path,
    dag_dir: &Path,
) -> anyhow::Result<()> {
    // ── Makespan rounds ────────────────────────────────────────────────────────────────
    let rounds = if args.quick { 1 } else { 3 };
    let offset = local.gateway_log_offset();
    for round in 0..rounds {
        say(
            t0,
            &format!(
                "makespan round {}: Bellyfed, stages and full DAG, side by side",
                round + 1
            ),
        );
        let r0 = Instant::now();
        let local_ref = &*local;
        let jobs = [(Mode::Stages, bellyfed_dir), (Mode::Dependencies, dag_dir)]
            .into_iter()
            .map(
                |(mode, dir)| async move { makespan_run(local_ref, mode, round, dir, None).await },
            );
        for r in futures::future::join_all(jobs).await {
            match r {
                Ok(run) => {
                    if !run.ok() {
                        results.problems.push(format!(
                            "makespan run {} ({}) ended {}: {}",
                            run.mode.label(),
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
    results.gateway = local.gateway_invocations(offset);

    // ── Every event lost ───────────────────────────────────────────────────────────────
    say(
        t0,
        &format!(
            "every event lost: Bellyfed with the events fault dropping all, fallback {LOST_FALLBACK_SECONDS} s"
        ),
    );
    let fault = local
        .fault(
            &json!({"kind": "events", "dropRate": 1.0, "duplicateRate": 0.0, "delaySeconds": 0.0}),
        )
        .await?;
    let lost = match bellyfed_lost_dir(bellyfed_dir, work) {
        Ok(dir) => makespan_run(local, Mode::Stages, 0, &dir, Some(LOST_FALLBACK_SECONDS)).await,
        Err(e) => Err(e),
    };
    local.remove_fault(&fault).await?;
    match lost {
        Ok(run) => {
            if !run.ok() {
                results.problems.push(format!(
                    "the lost-events run ({}) ended {}: {}",
                    run.environment,
                    run.status,
                    run.error.clone().unwrap_or_default()
                ));
            }
            results.lost = Some(run);
        }
        Err(e) => results
            .problems
            .push(format!("the lost-events run failed: {e:#}")),
    }

    // ── Scale ──────────────────────────────────────────────────────────────────────────
    // 2,000 stacks (200 with --quick); if the plan step's worst-case history check refused
    // that, the largest run of the same shape it admits as well.
    let fit = admitted_per_stage();
    let first = if args.quick {
        QUICK_PER_STAGE
    } else {
        SCALE_PER_STAGE
    };
    let mut sizes = vec![first];
    if fit < first {
        sizes.push(fit);
    }
    for (i, per_stage) in sizes.into_iter().enumerate() {
        match scale_run(local, work, t0, per_stage, args.budget).await {
            Ok(run) => {
                if (i == 1 || fit >= first) && !run.ok() {
                    results.problems.push(format!(
                        "the scale run ({} stacks) ended {}: {}",
                        run.stacks,
                        run.status,
                        run.error.clone().unwrap_or_default()
                    ));
                }
                if i == 0 {
                    results.scale = Some(run);
                } else {
                    results.scale_fit = Some(run);
                }
            }
            Err(e) => results
                .problems
                .push(format!("the scale run failed: {e:#}")),
        }
    }
    Ok(())
}

async fn makespan_run(
    local: &Local,
    mode: Mode,
    round: usize,
    dir: &Path,
    fallback_poll: Option<u32>,
) -> anyhow::Result<MakespanRun> {
    let prefix = match mode {
        Mode::Stages => "bf",
        Mode::Dependencies => "bd",
    };
    let environment = profiles::fresh_env(prefix);
    let plan = stackwave_cli::deploy::validate(dir, &environment)?
        .plan
        .map_err(|issues| anyhow::anyhow!("{} is invalid: {issues:?}", dir.display()))?;
    let per_stack: serde_json::Map<String, serde_json::Value> = plan
        .stacks
        .iter()
        .map(|s| (s.name.clone(), json!(profiles::bellyfed_seconds(&s.name))))
        .collect();
    local.config(&json!({"stackSeconds": per_stack})).await?;
    let started = local.launch(dir, &environment, fallback_poll, None).await?;
    let ended = local
        .wait(&started.arn, Duration::from_secs(900))
        .await
        .with_context(|| format!("waiting for {}", started.arn))?;
    let events = local.history(&started.arn).await?;
    let stats = history::analyze(&events);
    let names: Vec<String> = started.plan.stacks.iter().map(|s| s.name.clone()).collect();
    let windows = local.windows(&names).await?;
    Ok(MakespanRun {
        mode,
        round,
        environment,
        status: ended.status,
        error: ended.error,
        plan: started.plan,
        stats,
        windows,
    })
}

async fn scale_run(
    local: &mut Local,
    work: &Path,
    t0: Instant,
    per_stage: usize,
    budget: Duration,
) -> anyhow::Result<ScaleRun> {
    let stages = SCALE_STAGES;
    let n = stages * per_stage;
    say(
        t0,
        &format!(
            "scale: {n} stacks ({stages} stages × {per_stage} independent), maxConcurrency {SCALE_MAX_CONCURRENCY}, 1-s stacks"
        ),
    );
    let w0 = Instant::now();
    // An emptied emulator: earlier runs' stacks and executions would weigh on this one.
    local.reset().await?;
    local.config(&json!({"defaultStackSeconds": 1.0})).await?;
    let dir = profiles::write_synth(
        &work.join(format!("scale-{n}")),
        stages,
        per_stage,
        Shape::Independent,
    )?;
    let environment = profiles::fresh_env("sc");
    let started = local
        .launch(&dir, &environment, None, Some(SCALE_MAX_CONCURRENCY))
        .await?;
    let ended = local
        .wait(&started.arn, budget)
        .await
        .with_context(|| format!("waiting for {}", started.arn))?;
    let events = local.history(&started.arn).await?;
    let stats = history::analyze(&events);
    say(
        t0,
        &format!(
            "  {}: {} events, largest state {} B, makespan {:.1} s",
            ended.status,
            stats.events,
            stats.max_state_bytes,
            stats.makespan()
        ),
    );
    Ok(ScaleRun {
        stacks: started.plan.stacks.len(),
        stages,
        max_concurrency: SCALE_MAX_CONCURRENCY,
        status: ended.status,
        error: ended.error,
        stats,
        wall: w0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dag_copy_of_bellyfed_plans_in_dependency_mode() {
        let work = std::env::temp_dir().join(format!("sw-bench-dag-{:08x}", fastrand::u32(..)));
        let bellyfed = stackwave_cli::local::repo_root().join("examples/bellyfed");
        let dir = bellyfed_dag_dir(&bellyfed, &work).expect("copy");
        let plan = stackwave_cli::deploy::validate(&dir, "e")
            .expect("validate")
            .plan
            .expect("plan");
        let _ = std::fs::remove_dir_all(&work);
        assert_eq!(
            plan.schedule,
            stackwave_core::manifest::Schedule::Dependencies
        );
        assert_eq!(plan.stacks.len(), 14);
        // The whole graph's critical path is shorter than the stages' sum.
        let secs = |s: &str| profiles::bellyfed_seconds(s);
        assert_eq!(ideal_of(Mode::Stages, &plan, &secs), 32.0);
        assert_eq!(ideal_of(Mode::Dependencies, &plan, &secs), 23.0);
    }

    #[test]
    fn the_lost_events_copy_fits_the_worst_case_with_its_short_fallback() {
        let work = std::env::temp_dir().join(format!("sw-bench-lost-{:08x}", fastrand::u32(..)));
        let bellyfed = stackwave_cli::local::repo_root().join("examples/bellyfed");
        let dir = bellyfed_lost_dir(&bellyfed, &work).expect("copy");
        let plan = stackwave_cli::deploy::validate(&dir, "e")
            .expect("validate")
            .plan
            .expect("plan");
        let original = stackwave_cli::deploy::validate(&bellyfed, "e")
            .expect("validate")
            .plan
            .expect("plan");
        let _ = std::fs::remove_dir_all(&work);
        assert!(plan.stacks.iter().all(|s| s.timeout_minutes == 1));
        let limits = |fallback_poll_seconds| stackwave_core::budget::Limits {
            fallback_poll_seconds,
            ..stackwave_core::budget::Limits::default()
        };
        assert!(
            stackwave_core::budget::check_history(&plan, limits(LOST_FALLBACK_SECONDS)).is_ok()
        );
        // Segments absorb the original's polls too.
        assert!(
            stackwave_core::budget::check_history(&original, limits(LOST_FALLBACK_SECONDS)).is_ok()
        );
    }

    #[test]
    fn two_thousand_stacks_are_admitted() {
        assert_eq!(admitted_per_stage(), SCALE_PER_STAGE);
        let text = stackwave_core::synth::manifest_yaml(
            "sy",
            SCALE_STAGES,
            SCALE_PER_STAGE,
            Shape::Independent,
            "t",
        );
        let plan = stackwave_core::plan::from_text(&text, "e", &|_| true).expect("plan");
        let limits = stackwave_core::budget::Limits {
            max_concurrency: SCALE_MAX_CONCURRENCY,
            ..stackwave_core::budget::Limits::default()
        };
        assert!(stackwave_core::budget::check_history(&plan, limits).is_ok());
    }
}
