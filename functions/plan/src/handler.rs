//! The plan function. (skeleton: the signatures are the contract; the body is being written)

use stackwave_aws::Ctx;
use stackwave_core::io::{PlanInput, PlanOutput};
use stackwave_core::Error;

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"input\": {\"manifest\": \"s3://bucket/key/manifest.yaml\", \"environment\": \"dev\", \"pollSeconds\": {\"min\": 5, \"max\": 60}}, \"execution\": {\"arn\": \"...\", \"name\": \"...\"}}";

pub async fn handle(ctx: &Ctx, input: PlanInput) -> Result<PlanOutput, Error> {
    let _ = (ctx, input);
    Err(Error::Internal("not written yet".into()))
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let input: PlanInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    stackwave_aws::to_output(&handle(ctx, input).await?)
}
