//! The CloudFormation stack status model.
//!
//! Every `StackStatus` AWS documents falls in one [`StatusClass`]. The class says whether the
//! stack is busy, stable, or stuck, and (together with the operation stackwave started) whether
//! an operation succeeded or failed.

use serde::{Deserialize, Serialize};

/// Every stack status CloudFormation documents (API `StackStatus`).
pub const ALL_STACK_STATUSES: &[&str] = &[
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
    "DELETE_IN_PROGRESS",
    "DELETE_FAILED",
    "DELETE_COMPLETE",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
];

/// What a stack status means for stackwave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusClass {
    /// An operation is running (`*_IN_PROGRESS`, including the cleanup phases). Nothing else
    /// can start on the stack until it ends.
    InProgress,
    /// The last operation succeeded: `CREATE_COMPLETE`, `UPDATE_COMPLETE`, `IMPORT_COMPLETE`.
    Succeeded,
    /// The last update or import failed and was rolled back: `UPDATE_ROLLBACK_COMPLETE`,
    /// `IMPORT_ROLLBACK_COMPLETE`. The stack is stable and can be updated again.
    RolledBack,
    /// A create failed and was rolled back: the stack holds no resources and can only be
    /// deleted (`ROLLBACK_COMPLETE`).
    RollbackComplete,
    /// `UPDATE_ROLLBACK_FAILED`: stuck until ContinueUpdateRollback.
    UpdateRollbackFailed,
    /// Any other failed terminal status: `CREATE_FAILED`, `UPDATE_FAILED` (rollback disabled),
    /// `ROLLBACK_FAILED`, `DELETE_FAILED`, `IMPORT_ROLLBACK_FAILED`.
    Failed,
    /// `DELETE_COMPLETE`: the stack is gone.
    Deleted,
    /// `REVIEW_IN_PROGRESS`: created by a CREATE change set that was never executed. It holds no
    /// resources; a new CREATE change set may be made for it.
    ReviewInProgress,
    /// A status this model does not know (a future addition by AWS).
    Unknown,
}

/// Classify a CloudFormation stack status.
pub fn classify(status: &str) -> StatusClass {
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" => StatusClass::Succeeded,
        "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_ROLLBACK_COMPLETE" => StatusClass::RolledBack,
        "ROLLBACK_COMPLETE" => StatusClass::RollbackComplete,
        "UPDATE_ROLLBACK_FAILED" => StatusClass::UpdateRollbackFailed,
        "CREATE_FAILED"
        | "UPDATE_FAILED"
        | "ROLLBACK_FAILED"
        | "DELETE_FAILED"
        | "IMPORT_ROLLBACK_FAILED" => StatusClass::Failed,
        "DELETE_COMPLETE" => StatusClass::Deleted,
        "REVIEW_IN_PROGRESS" => StatusClass::ReviewInProgress,
        s if s.ends_with("_IN_PROGRESS") => StatusClass::InProgress,
        _ => StatusClass::Unknown,
    }
}

impl StatusClass {
    /// No operation is running: the status will not change on its own.
    pub fn is_terminal(self) -> bool {
        !matches!(self, StatusClass::InProgress | StatusClass::Unknown)
    }
}

/// Is the status terminal (no operation running)? Unknown statuses are treated as not terminal.
pub fn is_terminal(status: &str) -> bool {
    classify(status).is_terminal()
}

/// The outcome of an operation stackwave started, seen through the stack's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still running (or not yet visible).
    Pending,
    Succeeded,
    Failed,
}

/// The outcome of an executed change set, from the stack's status.
///
/// Failed outcomes: `ROLLBACK_COMPLETE` (a create rolled back), `UPDATE_ROLLBACK_COMPLETE` (an
/// update rolled back), every `*_FAILED`, and `DELETE_COMPLETE` (the stack vanished under us).
/// `REVIEW_IN_PROGRESS` is pending: the CREATE change set's execution is not visible yet.
pub fn execution_outcome(status: &str) -> Outcome {
    match classify(status) {
        StatusClass::Succeeded => Outcome::Succeeded,
        StatusClass::InProgress | StatusClass::ReviewInProgress | StatusClass::Unknown => {
            Outcome::Pending
        }
        StatusClass::RolledBack
        | StatusClass::RollbackComplete
        | StatusClass::UpdateRollbackFailed
        | StatusClass::Failed
        | StatusClass::Deleted => Outcome::Failed,
    }
}

/// Is this status the failed outcome of an operation (as opposed to a success or a run)?
pub fn is_failed_outcome(status: &str) -> bool {
    execution_outcome(status) == Outcome::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_is_known() {
        for s in ALL_STACK_STATUSES {
            assert_ne!(classify(s), StatusClass::Unknown, "{s} is not classified");
        }
        assert_eq!(ALL_STACK_STATUSES.len(), 23);
    }

    #[test]
    fn in_progress_statuses() {
        for s in [
            "CREATE_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
            "DELETE_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
            "IMPORT_IN_PROGRESS",
            "IMPORT_ROLLBACK_IN_PROGRESS",
        ] {
            assert_eq!(classify(s), StatusClass::InProgress, "{s}");
            assert!(!is_terminal(s), "{s}");
            assert_eq!(execution_outcome(s), Outcome::Pending, "{s}");
        }
    }

    #[test]
    fn terminal_statuses_and_outcomes() {
        let expect = [
            (
                "CREATE_COMPLETE",
                StatusClass::Succeeded,
                Outcome::Succeeded,
            ),
            (
                "UPDATE_COMPLETE",
                StatusClass::Succeeded,
                Outcome::Succeeded,
            ),
            (
                "IMPORT_COMPLETE",
                StatusClass::Succeeded,
                Outcome::Succeeded,
            ),
            (
                "ROLLBACK_COMPLETE",
                StatusClass::RollbackComplete,
                Outcome::Failed,
            ),
            (
                "UPDATE_ROLLBACK_COMPLETE",
                StatusClass::RolledBack,
                Outcome::Failed,
            ),
            (
                "IMPORT_ROLLBACK_COMPLETE",
                StatusClass::RolledBack,
                Outcome::Failed,
            ),
            (
                "UPDATE_ROLLBACK_FAILED",
                StatusClass::UpdateRollbackFailed,
                Outcome::Failed,
            ),
            ("CREATE_FAILED", StatusClass::Failed, Outcome::Failed),
            ("UPDATE_FAILED", StatusClass::Failed, Outcome::Failed),
            ("ROLLBACK_FAILED", StatusClass::Failed, Outcome::Failed),
            ("DELETE_FAILED", StatusClass::Failed, Outcome::Failed),
            (
                "IMPORT_ROLLBACK_FAILED",
                StatusClass::Failed,
                Outcome::Failed,
            ),
            ("DELETE_COMPLETE", StatusClass::Deleted, Outcome::Failed),
        ];
        for (s, class, outcome) in expect {
            assert_eq!(classify(s), class, "{s}");
            assert!(is_terminal(s), "{s}");
            assert_eq!(execution_outcome(s), outcome, "{s}");
        }
    }

    #[test]
    fn review_and_unknown() {
        assert_eq!(
            classify("REVIEW_IN_PROGRESS"),
            StatusClass::ReviewInProgress
        );
        assert!(is_terminal("REVIEW_IN_PROGRESS"));
        assert_eq!(execution_outcome("REVIEW_IN_PROGRESS"), Outcome::Pending);
        assert_eq!(classify("SOMETHING_NEW"), StatusClass::Unknown);
        assert!(!is_terminal("SOMETHING_NEW"));
        assert!(!is_failed_outcome("SOMETHING_NEW"));
        assert!(is_failed_outcome("UPDATE_ROLLBACK_COMPLETE"));
    }
}
