//! stackwave's domain library. No AWS I/O lives here: everything is a pure function of its
//! inputs, so it is tested without an emulator and shared by the Lambda functions and the CLI.

pub mod budget;
pub mod error;
pub mod io;
pub mod lock;
pub mod manifest;
pub mod plan;
pub mod poll;
pub mod reconcile;
pub mod record;
pub mod rollback;
pub mod schedule;
pub mod secret;
pub mod status;
pub mod summary;
pub mod synth;
pub mod template;
pub mod trigger;

pub use error::{Error, Result, ERROR_NAMES};
