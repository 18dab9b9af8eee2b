//! The stackwave operator CLI as a library: the `stackwave` binary is a thin clap layer over
//! these modules, and the end-to-end tests call them directly.
//!
//! - [`local`]: the local AWS (emulator + gateway) lifecycle and its setup.
//! - [`gateway`]: the local endpoint: Lambda invokes run the real handlers, the rest goes to moto.
//! - [`deploy`]: validate, upload, start an execution, follow it to its summary.
//! - [`fault`]: the local emulator's scripted faults (`stackwave local fault …`).
//! - [`progress`]: following an execution (live per-stack lines grouped by stage).
//! - [`status`]: recent executions and the last deployment per environment.
//! - [`aws`]: SDK clients and where a command points (local endpoint or real AWS).

pub mod aws;
pub mod deploy;
pub mod fault;
pub mod gateway;
pub mod local;
pub mod progress;
pub mod status;

/// Initialise logging to stderr. `RUST_LOG` wins over `default_level`.
pub fn init_tracing(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
