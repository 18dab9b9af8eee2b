//! The notify function. (skeleton: the signatures are the contract; the body is being written)

use stackwave_aws::Ctx;
use stackwave_core::io::{NotifyInput, NotifyOutput};
use stackwave_core::Error;

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"event\": \"started\" | \"finished\" | \"rejected\", ...}";

pub async fn handle(ctx: &Ctx, input: NotifyInput) -> Result<NotifyOutput, Error> {
    let _ = (ctx, input);
    Err(Error::Internal("not written yet".into()))
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let input: NotifyInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    stackwave_aws::to_output(&handle(ctx, input).await?)
}
