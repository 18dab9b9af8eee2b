//! Logging: `tracing` with structured fields, JSON in Lambda.

/// Initialise tracing: JSON lines (for CloudWatch Logs) when `json`, plain text otherwise.
/// Level from `RUST_LOG` (default `info`). Safe to call twice.
pub fn init(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
}
