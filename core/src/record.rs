//! A stack's record for one run, kept in S3 at `RunContext::record_key`.
//!
//! deploy-stack writes it when it starts work; check advances it until it settles; finalize
//! reads them all to build the summary. One writer at a time: the Map branch for the stack,
//! then the wave's check loop.

use serde::{Deserialize, Serialize};

/// What the run did to a stack, as shown in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Failed,
    NotStarted,
    Skipped,
    RolledBack,
    RollbackFailed,
    InProgress,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Failed => "failed",
            Action::NotStarted => "not_started",
            Action::Skipped => "skipped",
            Action::RolledBack => "rolled_back",
            Action::RollbackFailed => "rollback_failed",
            Action::InProgress => "in_progress",
        }
    }
}

/// The operation deploy-stack chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Update,
    /// A ROLLBACK_COMPLETE leftover of an earlier failed create: delete, then create.
    Recreate,
}

/// Where a stack's operation stands. check advances it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Deleting a ROLLBACK_COMPLETE leftover; the change set comes after.
    DeletingLeftover,
    /// Another operation (not started by this run) runs on the stack: wait for it to settle,
    /// within the stack's timeout, then start this run's operation as the settled status says.
    WaitingForOther,
    /// ContinueUpdateRollback on an UPDATE_ROLLBACK_FAILED stack; once UPDATE_ROLLBACK_COMPLETE,
    /// the update change set comes after.
    ContinuingRollback,
    /// The change set is being created.
    ChangeSetPending,
    /// The change set is executing: the stack is `*_IN_PROGRESS`.
    Executing,
    /// Past `timeoutMinutes` while UPDATE_IN_PROGRESS: CancelUpdateStack was called; the stack
    /// settles (failed, `StackTimeout`) once CloudFormation has rolled it back.
    CancellingTimeout,
    /// Settled: see `action`.
    Done,
}

/// The first failed resource event of this operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootCause {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// The stack's template and parameters before this run changed it (for run-level rollback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// S3 key of the template body as it was.
    pub template_key: String,
    /// As DescribeStacks shows them: a NoEcho parameter's value is [`crate::secret::MASKED`].
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// The SSM source (name and version) of each masked parameter whose pre-run value came from
    /// a SecureString of an earlier run: the restore reads it again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::secret::SecretRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackRecord {
    pub stack: String,
    pub stage: String,
    pub operation: Operation,
    pub phase: Phase,
    /// While not `Done`: `InProgress`.
    pub action: Action,
    pub change_set_name: String,
    /// ClientRequestToken for ExecuteChangeSet / DeleteStack: derived from execution + stack,
    /// so a retried invoke never starts a second operation.
    pub client_token: String,
    /// Parameters resolved at deploy time (`{output}` and `{ssm}` replaced by values), except
    /// SecureStrings: those are in `secrets`, by SSM name and version, never by value.
    pub parameters: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::secret::SecretRef>,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The last CloudFormation status seen.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub root_cause: Option<RootCause>,
    #[serde(default)]
    pub outputs: Vec<(String, String)>,
    #[serde(default)]
    pub snapshot: Option<Snapshot>,
    pub timeout_minutes: u32,
    /// The run-level rollback of this stack (issue 3), once the rollback function started it.
    #[serde(default)]
    pub rollback: Option<RollbackState>,
}

/// How the rollback restores a stack this run changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackOperation {
    /// The stack was created by this run (or its failed create left a ROLLBACK_COMPLETE stack):
    /// DeleteStack.
    Delete,
    /// The stack was updated by this run: UpdateStack with its snapshot (template, parameters,
    /// tags).
    Restore,
}

impl RollbackOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackOperation::Delete => "delete",
            RollbackOperation::Restore => "restore",
        }
    }
}

/// Where a stack's rollback stands. check (mode `rollback`) advances it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackPhase {
    /// The delete or restore runs: the stack is `*_IN_PROGRESS`.
    Executing,
    /// Settled: see `outcome`.
    Done,
}

/// A stack's run-level rollback: written by the rollback function when it starts the delete or
/// restore, advanced by check in rollback mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackState {
    pub operation: RollbackOperation,
    pub phase: RollbackPhase,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The last CloudFormation status seen.
    #[serde(default)]
    pub status: Option<String>,
    /// What was done, or why it failed and how to fix it.
    #[serde(default)]
    pub reason: String,
    /// ClientRequestToken of the DeleteStack / UpdateStack: derived from execution, stack and
    /// `rollback`, so a retried invoke starts nothing twice.
    pub client_token: String,
    /// `RolledBack` or `RollbackFailed` once done.
    #[serde(default)]
    pub outcome: Option<Action>,
    /// The first failed resource event of the delete or restore, when it failed.
    #[serde(default)]
    pub root_cause: Option<RootCause>,
}
