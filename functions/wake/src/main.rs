//! Lambda entry point: build config and clients once, then serve events.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stackwave_aws::telemetry::init(true);
    let ctx = stackwave_aws::Ctx::from_env().await;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        stackwave_wake::handle_json(ctx, event.payload)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
