//! The environment lock: one deployment per environment at a time (issue 3).
//!
//! The plan function acquires a lease once the input and the manifest are valid: the SSM
//! parameter `/stackwave/<environment>/lock`, created only if absent, holding [`Lease`] as JSON
//! (`{"executionArn", "expires"}`). The lease lasts as long as the run may: the sum over the
//! plan's waves of each wave's longest `timeoutMinutes`, plus [`GRACE_MINUTES`].
//!
//! A held lease may be taken over when it has expired or when the execution holding it is no
//! longer RUNNING; a plan retried by the holding execution finds its own ARN and goes on. The
//! finalize function releases the lease (deletes the parameter if it holds this execution's ARN)
//! on every path: success, failure and run-level rollback all end in finalize.
//!
//! Pure: the decisions are here, the SSM and Step Functions calls in `stackwave_aws::lock`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::reconcile::{parse_timestamp, timestamp};

/// Minutes added to the run's longest possible duration.
pub const GRACE_MINUTES: i64 = 15;

/// The lock's SSM parameter.
pub fn parameter(environment: &str) -> String {
    format!("/stackwave/{environment}/lock")
}

/// The lock's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// The execution holding the environment.
    pub execution_arn: String,
    /// RFC 3339, UTC: after this the lease may be taken over.
    pub expires: String,
}

impl Lease {
    /// A lease for `execution_arn` from `now`, lasting [`lease_minutes`] of the plan.
    pub fn new(execution_arn: &str, plan: &Plan, now: DateTime<Utc>) -> Lease {
        Lease {
            execution_arn: execution_arn.to_string(),
            expires: timestamp(now + Duration::minutes(lease_minutes(plan))),
        }
    }

    /// The parameter's value.
    pub fn to_value(&self) -> String {
        // A struct of two strings always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                "{{\"executionArn\":{:?},\"expires\":{:?}}}",
                self.execution_arn, self.expires
            )
        })
    }

    /// Read a parameter's value; `None` when it is not a lease.
    pub fn parse(value: &str) -> Option<Lease> {
        serde_json::from_str(value).ok()
    }

    /// Has the lease expired at `now`? A lease whose expiry cannot be read has.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        parse_timestamp(&self.expires).is_none_or(|t| t <= now)
    }
}

/// How long a run of this plan may hold the environment: Σ over the waves of the wave's longest
/// `timeoutMinutes` (a wave's stacks run in parallel, the waves one after another), plus
/// [`GRACE_MINUTES`] for planning, polling and finalizing.
pub fn lease_minutes(plan: &Plan) -> i64 {
    let waves: i64 = plan
        .stages
        .iter()
        .flat_map(|stage| stage.waves.iter())
        .map(|wave| {
            wave.iter()
                .filter_map(|name| plan.stack(name))
                .map(|s| i64::from(s.timeout_minutes))
                .max()
                .unwrap_or(0)
        })
        .sum();
    waves + GRACE_MINUTES
}

/// What an existing lock means for an execution that wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It holds this execution's ARN: a retried plan; go on.
    Ours,
    /// Expired, or unreadable: take it over.
    Stale { why: String },
    /// Held by another execution until `lease.expires`: take it over only if that execution no
    /// longer runs.
    Held { lease: Lease },
}

/// Judge the lock's current `value` for `execution_arn` at `now`.
pub fn judge(value: &str, execution_arn: &str, now: DateTime<Utc>) -> Verdict {
    let Some(lease) = Lease::parse(value) else {
        return Verdict::Stale {
            why: format!("its value {value:?} is not a lease"),
        };
    };
    if lease.execution_arn == execution_arn {
        return Verdict::Ours;
    }
    if lease.expired(now) {
        return Verdict::Stale {
            why: format!(
                "the lease of {} expired at {}",
                lease.execution_arn, lease.expires
            ),
        };
    }
    Verdict::Held { lease }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::OnFailure;
    use crate::plan::{PlannedStack, PlannedStage};
    use chrono::TimeZone;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0)
            .single()
            .expect("valid time")
            + Duration::minutes(minutes)
    }

    fn stack(name: &str, timeout_minutes: u32) -> PlannedStack {
        PlannedStack {
            secret_parameters: vec![],
            name: name.into(),
            stage: "s".into(),
            stage_index: 0,
            wave: 0,
            template: "t.yaml".into(),
            parameters: Default::default(),
            depends_on: vec![],
            tags: Default::default(),
            capabilities: vec![],
            timeout_minutes,
        }
    }

    fn plan() -> Plan {
        Plan {
            name: "p".into(),
            environment: "dev".into(),
            on_failure: OnFailure::Rollback,
            schedule: Default::default(),
            stages: vec![
                PlannedStage {
                    index: 0,
                    name: "one".into(),
                    waves: vec![vec!["A".into(), "B".into()], vec!["C".into()]],
                },
                PlannedStage {
                    index: 1,
                    name: "two".into(),
                    waves: vec![vec!["D".into(), "E".into(), "F".into()]],
                },
            ],
            stacks: vec![
                stack("A", 10),
                stack("B", 45),
                stack("C", 5),
                stack("D", 30),
                stack("E", 60),
                stack("F", 20),
            ],
        }
    }

    #[test]
    fn lease_lasts_the_longest_stack_of_every_wave_plus_grace() {
        assert_eq!(lease_minutes(&plan()), 45 + 5 + 60 + 15);
        let lease = Lease::new("arn:x", &plan(), at(0));
        assert_eq!(lease.expires, timestamp(at(125)));
        assert!(!lease.expired(at(124)));
        assert!(lease.expired(at(125)));
        let empty = Plan {
            stages: vec![],
            stacks: vec![],
            ..plan()
        };
        assert_eq!(lease_minutes(&empty), GRACE_MINUTES);
    }

    #[test]
    fn value_is_camel_case_json_and_round_trips() {
        let lease = Lease::new("arn:aws:states:us-east-1:1:execution:sm:e1", &plan(), at(0));
        let v: serde_json::Value = serde_json::from_str(&lease.to_value()).expect("json");
        assert_eq!(
            v["executionArn"],
            "arn:aws:states:us-east-1:1:execution:sm:e1"
        );
        assert_eq!(v["expires"], lease.expires);
        assert_eq!(Lease::parse(&lease.to_value()), Some(lease));
        assert_eq!(parameter("dev"), "/stackwave/dev/lock");
    }

    #[test]
    fn verdicts() {
        let mine = Lease::new("arn:mine", &plan(), at(0)).to_value();
        assert_eq!(judge(&mine, "arn:mine", at(500)), Verdict::Ours);
        let theirs = Lease::new("arn:theirs", &plan(), at(0));
        assert_eq!(
            judge(&theirs.to_value(), "arn:mine", at(10)),
            Verdict::Held {
                lease: theirs.clone()
            }
        );
        match judge(&theirs.to_value(), "arn:mine", at(125)) {
            Verdict::Stale { why } => assert!(why.contains("expired"), "{why}"),
            other => panic!("{other:?}"),
        }
        match judge("garbage", "arn:mine", at(0)) {
            Verdict::Stale { why } => assert!(why.contains("not a lease"), "{why}"),
            other => panic!("{other:?}"),
        }
        let bad_time = r#"{"executionArn":"arn:theirs","expires":"soon"}"#;
        assert!(matches!(
            judge(bad_time, "arn:mine", at(0)),
            Verdict::Stale { .. }
        ));
    }
}
