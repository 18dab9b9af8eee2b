//! `stackwave`: deploy multi-stage sets of CloudFormation stacks with the stackwave state
//! machine, on real AWS or on the local emulator.
//!
//! Exit codes: 0 success, 1 a failed deployment or an operational error, 2 invalid input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};
use stackwave_cli::aws::TargetArgs;
use stackwave_cli::deploy::{self, DeployOptions, WatchOptions};
use stackwave_cli::local::{self, LocalOptions};
use stackwave_cli::progress::Sink;
use stackwave_cli::{fault, gateway, status};
use stackwave_core::io::PollSeconds;

#[derive(Debug, Parser)]
#[command(
    name = "stackwave",
    version,
    about = "Deploy ordered stages of CloudFormation stacks with a Step Functions state machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a manifest, upload it with its templates, run the deployment and follow it.
    Deploy {
        /// A manifest file, or a directory holding manifest.yaml.
        manifest: PathBuf,
        /// The environment (substituted for ${environment}).
        #[arg(short, long)]
        environment: String,
        #[command(flatten)]
        target: TargetArgs,
        /// `json`: print one JSON object on stdout (progress goes to stderr).
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Shortest wait between two looks at the stacks (while a change set is being created,
        /// and in the rollback), in seconds [state machine default: 5].
        #[arg(long, value_name = "SECONDS")]
        poll_min: Option<u32>,
        /// Longest wait between two looks at the stacks in the rollback, in seconds [state
        /// machine default: 60].
        #[arg(long, value_name = "SECONDS")]
        poll_max: Option<u32>,
        /// How long the run waits for a CloudFormation event before it looks at its stacks
        /// anyway, in seconds, 1 to 3600 [state machine default: 900].
        #[arg(long, value_name = "SECONDS")]
        fallback_poll: Option<u32>,
        /// Start the execution and return; follow it later with `stackwave watch`.
        #[arg(long)]
        no_wait: bool,
    },
    /// Follow an existing execution: live progress, then the summary.
    Watch {
        execution_arn: String,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Recent executions, and an environment's last successful deployment.
    Status {
        #[arg(short, long)]
        environment: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Validate a manifest locally and print its plan (stages, stacks, dependencies). Exit 2 when invalid.
    Validate {
        manifest: PathBuf,
        #[arg(short, long)]
        environment: String,
    },
    /// Print the manifest's JSON Schema.
    Schema,
    /// The local AWS: emulator and gateway.
    #[command(long_about = LOCAL_ABOUT)]
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

const LOCAL_ABOUT: &str = "The local AWS: stackwave's emulator (moto) behind the gateway, at \
http://127.0.0.1:4566 (or $STACKWAVE_LOCAL_ENDPOINT / --endpoint); region us-east-1, account \
123456789012. The emulator listens on the endpoint's port + 1 ($STACKWAVE_EMULATOR_PORT).

The repository is $STACKWAVE_HOME, else the one this binary was built from; the emulator runs \
with $STACKWAVE_PYTHON, else <repository>/.venv/bin/python (`make setup` creates it). Pid files \
and logs are in <repository>/.stackwave/local/ (.stackwave/local/<port>/ for a port other than \
4566).";

#[derive(Debug, clap::Args)]
struct LocalArgs {
    /// The local endpoint [default: $STACKWAVE_LOCAL_ENDPOINT or http://127.0.0.1:4566].
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Start the emulator and gateway (or reuse running ones) and set up bucket, topic, alert
    /// queue and state machine.
    Start {
        #[command(flatten)]
        args: LocalArgs,
        /// Seconds every stack operation takes in the emulator [default: 3].
        #[arg(long, value_name = "SECONDS")]
        stack_seconds: Option<f64>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Stop the emulator and gateway started from this repository.
    Stop {
        #[command(flatten)]
        args: LocalArgs,
    },
    /// What runs, and where.
    Status {
        #[command(flatten)]
        args: LocalArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Script faults in the local emulator: failed resources and rollbacks, hangs, throttling.
    #[command(long_about = FAULT_ABOUT)]
    Fault {
        #[command(subcommand)]
        command: FaultCommand,
    },
    /// Run the gateway in the foreground (started by `local start`).
    #[command(hide = true)]
    Serve {
        #[command(flatten)]
        args: LocalArgs,
        /// moto's port [default: $STACKWAVE_EMULATOR_PORT or the endpoint's port + 1].
        #[arg(long)]
        emulator_port: Option<u16>,
    },
}

const FAULT_ABOUT: &str = "Script faults in the local emulator, per stack and operation, each \
through CloudFormation's real status sequence with stack events carrying the reason. `fail` and \
`hang` apply to the next matching operation once; `throttle` and `events` last until `clear`. Faults are \
shared by everything using the local AWS.";

#[derive(Debug, Subcommand)]
enum FaultCommand {
    /// Fail the next create, update or delete of a stack on a resource (CREATE_FAILED →
    /// ROLLBACK_COMPLETE, UPDATE_FAILED → UPDATE_ROLLBACK_COMPLETE, DELETE_FAILED), or fail its
    /// rollback (ROLLBACK_FAILED / UPDATE_ROLLBACK_FAILED).
    Fail {
        #[command(flatten)]
        args: LocalArgs,
        /// The stack's name.
        #[arg(long)]
        stack: String,
        /// The operation that fails.
        #[arg(long, value_enum)]
        on: fault::FailOn,
        /// The logical id of the resource that fails [default: one the operation touches].
        #[arg(long, value_name = "LOGICAL_ID")]
        resource: Option<String>,
        /// The reason in the resource's failed event [default: a fault-injection message].
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Keep the next create, update or delete of a stack in progress for N seconds
    /// (CancelUpdateStack ends an update hang).
    Hang {
        #[command(flatten)]
        args: LocalArgs,
        /// The stack's name.
        #[arg(long)]
        stack: String,
        /// The operation that hangs.
        #[arg(long, value_enum)]
        on: fault::HangOn,
        /// How long it stays *_IN_PROGRESS.
        #[arg(long, value_name = "N")]
        seconds: f64,
    },
    /// Answer `Throttling: Rate exceeded` to a share of the calls to a CloudFormation action.
    Throttle {
        #[command(flatten)]
        args: LocalArgs,
        /// The CloudFormation action, e.g. DescribeStacks.
        #[arg(long, value_name = "ACTION")]
        api: String,
        /// The share of calls throttled, above 0 and at most 1 (0.3 = 30%).
        #[arg(long)]
        rate: f64,
    },
    /// Lose, duplicate or delay CloudFormation's stack status change events (EventBridge's
    /// at-least-once, unordered delivery), until `clear`.
    Events {
        #[command(flatten)]
        args: LocalArgs,
        /// The share of events never delivered, 0 to 1.
        #[arg(long, default_value_t = 0.0, value_name = "R")]
        drop_rate: f64,
        /// The share of (delivered) events delivered twice, 0 to 1.
        #[arg(long, default_value_t = 0.0, value_name = "R")]
        duplicate_rate: f64,
        /// Each delivery waits a random 0..S seconds, so events arrive late and out of order.
        #[arg(long, default_value_t = 0.0, value_name = "S")]
        delay_seconds: f64,
        /// Only this stack's events (repeatable) [default: every stack's].
        #[arg(long = "stack", value_name = "STACK")]
        stacks: Vec<String>,
    },
    /// Fail the next invocations of a function through the gateway at Lambda level, as Lambda
    /// reports it: Sandbox.Timedout (the handler runs, its answer is lost), Lambda.Unknown,
    /// or a Lambda service error (Lambda.ServiceException, ...).
    Lambda {
        #[command(flatten)]
        args: LocalArgs,
        /// The function: plan, deploy-stack, check, wake, notify, finalize or rollback.
        #[arg(long, value_name = "NAME")]
        function: String,
        /// The error: Sandbox.Timedout, Lambda.Unknown, Lambda.ServiceException,
        /// Lambda.AWSLambdaException, Lambda.SdkClientException,
        /// Lambda.TooManyRequestsException or Lambda.ClientExecutionTimeoutException.
        #[arg(long, value_name = "ERROR")]
        error: String,
        /// How many invocations fail.
        #[arg(long, default_value_t = 1, value_name = "N")]
        times: u32,
        /// Only the invocations of this environment's runs [default: every run's].
        #[arg(long, value_name = "ENV")]
        environment: Option<String>,
        /// Only the invocations about this stack (deploy-stack's) [default: every one].
        #[arg(long, value_name = "STACK")]
        stack: Option<String>,
    },
    /// The faults set, with how often each applied.
    List {
        #[command(flatten)]
        args: LocalArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Remove every fault.
    Clear {
        #[command(flatten)]
        args: LocalArgs,
    },
}

/// A line on stdout; a closed pipe (`stackwave status | head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn sink(output: Output) -> Sink {
    match output {
        Output::Text => Sink::Stdout,
        Output::Json => Sink::Stderr,
    }
}

fn poll(min: Option<u32>, max: Option<u32>) -> anyhow::Result<Option<PollSeconds>> {
    let d = PollSeconds::default();
    let p = match (min, max) {
        (None, None) => return Ok(None),
        (Some(min), None) => PollSeconds {
            min,
            max: d.max.max(min),
        },
        (None, Some(max)) => PollSeconds {
            min: d.min.min(max),
            max,
        },
        (Some(min), Some(max)) => PollSeconds { min, max },
    };
    if p.min == 0 || p.min > p.max {
        bail!(
            "--poll-min must be at least 1 and at most --poll-max (got {} and {})",
            p.min,
            p.max
        );
    }
    Ok(Some(p))
}

/// The end of `deploy` / `watch`: with `--output json`, stdout gets exactly one JSON object,
/// also when the command itself failed (then `status` is FAILED and `error` says why).
fn finish(
    result: anyhow::Result<deploy::DeployOutcome>,
    output: Output,
    environment: &str,
    execution_arn: Option<&str>,
) -> anyhow::Result<u8> {
    match (result, output) {
        (Ok(outcome), Output::Json) => {
            print_json(&outcome.json_report())?;
            Ok(outcome.exit_code())
        }
        (Ok(outcome), Output::Text) => Ok(outcome.exit_code()),
        (Err(e), Output::Json) => {
            eprintln!("error: {e:#}");
            print_json(&deploy::JsonReport {
                status: "FAILED",
                environment: environment.to_string(),
                execution_arn: execution_arn.map(str::to_string),
                stacks: Vec::new(),
                error: Some(format!("{e:#}")),
            })?;
            Ok(1)
        }
        (Err(e), Output::Text) => Err(e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Deploy {
            manifest,
            environment,
            target,
            output,
            poll_min,
            poll_max,
            fallback_poll,
            no_wait,
        } => {
            if let Some(seconds) = fallback_poll {
                if !(1..=3600).contains(&seconds) {
                    bail!("--fallback-poll must be 1 to 3600 seconds (got {seconds})");
                }
            }
            let opts = DeployOptions {
                manifest,
                environment,
                target: target.config(),
                poll: poll(poll_min, poll_max)?,
                fallback_poll,
                wait: !no_wait,
                sink: sink(output),
                tick: Duration::from_secs(1),
            };
            let result = deploy::run(&opts).await;
            finish(result, output, &opts.environment, None)
        }
        Command::Watch {
            execution_arn,
            target,
            output,
        } => {
            let opts = WatchOptions {
                execution_arn,
                target: target.config(),
                sink: sink(output),
                tick: Duration::from_secs(1),
            };
            let result = deploy::watch(&opts).await;
            finish(result, output, "", Some(&opts.execution_arn))
        }
        Command::Status {
            environment,
            target,
            output,
        } => {
            let target = target.config().resolve().await?;
            let report = status::report(&target, environment.as_deref()).await?;
            match output {
                Output::Json => print_json(&report)?,
                Output::Text => out!("{}", status::render(&report).trim_end()),
            }
            Ok(0)
        }
        Command::Validate {
            manifest,
            environment,
        } => {
            let v = deploy::validate(&manifest, &environment)?;
            match v.plan {
                Ok(plan) => {
                    out!("{}", deploy::render_plan(&plan).trim_end());
                    Ok(0)
                }
                Err(issues) => {
                    eprintln!("{}", deploy::render_issues(&v.manifest_file, &issues));
                    Ok(2)
                }
            }
        }
        Command::Schema => {
            print_json(&stackwave_core::manifest::manifest_schema())?;
            Ok(0)
        }
        Command::Local { command } => run_local(command).await,
    }
}

async fn run_local(command: LocalCommand) -> anyhow::Result<u8> {
    match command {
        LocalCommand::Start {
            args,
            stack_seconds,
            output,
        } => {
            let opts = LocalOptions {
                endpoint: args.endpoint,
                stack_seconds,
                ..Default::default()
            };
            let env = local::start(&opts).await?;
            match output {
                Output::Json => print_json(&env)?,
                Output::Text => {
                    out!("local AWS ready at {}", env.endpoint);
                    out!("  state machine {}", env.state_machine_arn);
                    out!("  bucket        {}", env.bucket);
                    out!("  alert topic   {}", env.topic_arn);
                    out!("  alert queue   {}", env.queue_url);
                }
            }
            Ok(0)
        }
        LocalCommand::Stop { args } => {
            let opts = LocalOptions {
                endpoint: args.endpoint,
                ..Default::default()
            };
            for s in local::stop(&opts).await? {
                match s.pid {
                    Some(pid) => out!("{}: {} (pid {pid})", s.process.name(), s.outcome),
                    None => out!("{}: {}", s.process.name(), s.outcome),
                }
            }
            Ok(0)
        }
        LocalCommand::Status { args, output } => {
            let opts = LocalOptions {
                endpoint: args.endpoint,
                ..Default::default()
            };
            let s = local::status(&opts).await?;
            match output {
                Output::Json => print_json(&s)?,
                Output::Text => out!("{}", local::render_status(&s).trim_end()),
            }
            Ok(if s.healthy { 0 } else { 1 })
        }
        LocalCommand::Fault { command } => run_fault(command).await,
        LocalCommand::Serve {
            args,
            emulator_port,
        } => {
            let opts = LocalOptions {
                endpoint: args.endpoint,
                ..Default::default()
            };
            let mut cfg = gateway::GatewayConfig::from_local(&opts)?;
            if let Some(port) = emulator_port {
                cfg.emulator_url = format!("http://127.0.0.1:{port}");
            }
            gateway::serve(cfg).await?;
            Ok(0)
        }
    }
}

async fn run_fault(command: FaultCommand) -> anyhow::Result<u8> {
    let (args, request) = match command {
        FaultCommand::List { args, output } => {
            let faults = fault::list(&local::resolve_endpoint(args.endpoint.as_deref())).await?;
            match output {
                Output::Json => print_json(&faults)?,
                Output::Text => out!("{}", fault::render_table(&faults).trim_end()),
            }
            return Ok(0);
        }
        FaultCommand::Clear { args } => {
            let n = fault::clear(&local::resolve_endpoint(args.endpoint.as_deref())).await?;
            out!("cleared {n} fault(s)");
            return Ok(0);
        }
        FaultCommand::Fail {
            args,
            stack,
            on,
            resource,
            reason,
        } => (
            args,
            fault::FaultRequest::Fail {
                stack,
                on,
                resource,
                reason,
            },
        ),
        FaultCommand::Hang {
            args,
            stack,
            on,
            seconds,
        } => (args, fault::FaultRequest::Hang { stack, on, seconds }),
        FaultCommand::Throttle { args, api, rate } => {
            (args, fault::FaultRequest::Throttle { api, rate })
        }
        FaultCommand::Lambda {
            args,
            function,
            error,
            times,
            environment,
            stack,
        } => (
            args,
            fault::FaultRequest::Lambda {
                function,
                error,
                times,
                environment,
                stack,
            },
        ),
        FaultCommand::Events {
            args,
            drop_rate,
            duplicate_rate,
            delay_seconds,
            stacks,
        } => (
            args,
            fault::FaultRequest::Events {
                drop_rate,
                duplicate_rate,
                delay_seconds,
                stacks,
            },
        ),
    };
    let endpoint = local::resolve_endpoint(args.endpoint.as_deref());
    let set = fault::add(&endpoint, &request).await?;
    out!("{} set: {}", set.id, fault::describe(&set));
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(
        cli.command,
        Command::Local {
            command: LocalCommand::Serve { .. }
        }
    );
    // The SDK's config loader warns about every source it tries (IMDS off AWS): keep the
    // CLI's output for what matters unless RUST_LOG asks for more.
    stackwave_cli::init_tracing(if serving {
        "info"
    } else {
        "warn,aws_config=error"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
