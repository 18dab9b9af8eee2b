//! The notify function: one SNS alert at the start and at the end of a run (or when plan rejects
//! it). The message uses `MessageStructure = "json"`: a human subject and body for email and
//! the default protocol, and a JSON document for machines (SQS, Lambda, HTTPS subscribers).
//! Message attributes `environment` and `status` let subscribers filter. When a run's rollback
//! failed, a second, separate alert (status `ROLLBACK_FAILED`) says a human is needed.

pub mod ended;

use aws_sdk_sns::types::MessageAttributeValue;
use serde_json::{json, Map, Value};
use stackwave_aws::{aws_error, Ctx};
use stackwave_core::io::{
    CaughtError, NotifyInput, NotifyOutput, RunContext, RunStatus, RunSummary, StageRef,
};
use stackwave_core::summary::{self, Message};
use stackwave_core::Error;
use tracing::info;

/// The input shape, shown in `InvalidInput` errors.
pub const ACCEPTED: &str = "{\"event\": \"started\" | \"finished\" | \"summaryFailed\" | \"rejected\", ...} or an EventBridge `Step Functions Execution Status Change` event";

/// SNS subjects: ASCII, no line breaks, fewer than 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// SNS's limit on a message with its attributes is 256 KiB; keep a margin for the attributes,
/// the subject and the request's own encoding.
pub const MAX_MESSAGE_BYTES: usize = 250_000;

/// Longest message attribute value sent (environment names are at most 32 characters; a rejected
/// run's input may carry anything).
const MAX_ATTRIBUTE_CHARS: usize = 256;

pub async fn handle(ctx: &Ctx, input: NotifyInput) -> Result<NotifyOutput, Error> {
    if ctx.config.topic_arn.is_empty() {
        return Err(Error::Internal(
            "no alert topic configured. Fix: set the function's STACKWAVE_TOPIC_ARN environment variable to the alert topic's ARN".to_string(),
        ));
    }
    let input = match input {
        NotifyInput::Finished { run, summary } if summary.stacks_omitted > 0 => {
            // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
            let summary = Box::pin(full_summary(ctx, &run, summary)).await;
            NotifyInput::Finished { run, summary }
        }
        other => other,
    };
    let alert = Alert::from_input(&input);
    let out = publish(ctx, &alert).await?;
    // A rollback that failed needs a human: a second, separate alert says so.
    if let NotifyInput::Finished { run, summary } = &input {
        if summary
            .stacks
            .iter()
            .any(|s| s.action == stackwave_core::record::Action::RollbackFailed)
        {
            publish(ctx, &Alert::rollback_failed(run, summary)).await?;
        }
    }
    Ok(out)
}

/// The run's whole summary (`summary.json`) when finalize's output left rows out to fit the
/// execution's state; the bounded one (its table says how many rows are left out) when it cannot
/// be read, so the alert still goes out.
async fn full_summary(ctx: &Ctx, run: &RunContext, bounded: RunSummary) -> RunSummary {
    let store = stackwave_aws::RunStore::for_run(&ctx.clients.s3, run);
    match store.get_json::<RunSummary>(&run.summary_key()).await {
        Ok(Some(full)) if full.stacks.len() >= bounded.stacks.len() => full,
        Ok(_) => {
            tracing::warn!(environment = %run.environment, execution = %run.execution_name, "summary.json is missing: the alert lists the rows finalize returned");
            bounded
        }
        Err(e) => {
            tracing::warn!(environment = %run.environment, execution = %run.execution_name, error = %e, "could not read summary.json: the alert lists the rows finalize returned");
            bounded
        }
    }
}

/// Publish one alert to the topic.
async fn publish(ctx: &Ctx, alert: &Alert) -> Result<NotifyOutput, Error> {
    let subject = sanitize_subject(&alert.message.subject);
    let message = alert.sns_message()?;
    let out = ctx
        .clients
        .sns
        .publish()
        .topic_arn(&ctx.config.topic_arn)
        .message_structure("json")
        .message(message)
        .subject(&subject)
        .message_attributes("environment", string_attribute(&alert.environment)?)
        .message_attributes("status", string_attribute(alert.status)?)
        .send()
        .await
        .map_err(|e| aws_error("sns:Publish", e))?;
    let message_id = out.message_id.unwrap_or_default();
    info!(
        event = alert.event,
        environment = %alert.environment,
        status = alert.status,
        execution = %alert.execution_arn,
        message_id = %message_id,
        subject = %subject,
        "alert published"
    );
    Ok(NotifyOutput {
        message_id,
        subject,
    })
}

/// The JSON entry point used by main.rs and by the local gateway.
pub async fn handle_json(ctx: &Ctx, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    if ended::is_status_event(&input) {
        return Box::pin(ended::handle(ctx, &input)).await;
    }
    let input: NotifyInput = stackwave_aws::parse_input(input, ACCEPTED)?;
    // Boxed: the nested SDK futures would otherwise overflow the compiler's layout depth.
    stackwave_aws::to_output(&Box::pin(handle(ctx, input)).await?)
}

/// One alert, before it is fitted into an SNS message.
#[derive(Debug, Clone)]
pub struct Alert {
    pub event: &'static str,
    pub environment: String,
    /// `STARTED`, `SUCCEEDED`, `FAILED`, `REJECTED` or `ROLLBACK_FAILED`.
    pub status: &'static str,
    pub execution_arn: String,
    pub message: Message,
    /// Finished: the run summary.
    pub summary: Option<RunSummary>,
    /// Finished: where the full summary is kept.
    pub summary_uri: Option<String>,
    /// Rejected: the error plan raised.
    pub error: Option<CaughtError>,
    /// Started: how many stacks in how many stages.
    pub stack_count: Option<u32>,
    pub stage_count: Option<usize>,
}

impl Alert {
    pub fn from_input(input: &NotifyInput) -> Alert {
        match input {
            NotifyInput::Started {
                run,
                stack_count,
                stages,
            } => Alert::started(run, *stack_count, stages),
            NotifyInput::Finished { run, summary } => Alert::finished(run, summary),
            NotifyInput::SummaryFailed { run, error } => Alert::summary_failed(run, error),
            NotifyInput::Rejected {
                execution_arn,
                input,
                error,
            } => Alert::rejected(execution_arn, input, error),
        }
    }

    fn started(run: &RunContext, stack_count: u32, stages: &[StageRef]) -> Alert {
        Alert {
            event: "started",
            environment: run.environment.clone(),
            status: "STARTED",
            execution_arn: run.execution_arn.clone(),
            message: summary::started(run, stack_count, stages),
            summary: None,
            summary_uri: None,
            error: None,
            stack_count: Some(stack_count),
            stage_count: Some(stages.len()),
        }
    }

    /// An execution that ended without finalizing (`ABORTED`, `TIMED_OUT`, `FAILED`).
    pub fn ended(
        run: &RunContext,
        status: &str,
        summary: &RunSummary,
        in_flight: &[(String, String)],
    ) -> Alert {
        Alert {
            event: "finished",
            environment: run.environment.clone(),
            status: match status {
                "ABORTED" => "ABORTED",
                "TIMED_OUT" => "TIMED_OUT",
                _ => "FAILED",
            },
            execution_arn: run.execution_arn.clone(),
            message: summary::ended_message(run, status, summary, in_flight),
            summary: Some(summary.clone()),
            summary_uri: Some(format!("s3://{}/{}", run.bucket, run.summary_key())),
            error: None,
            stack_count: None,
            stage_count: None,
        }
    }

    fn summary_failed(run: &RunContext, error: &CaughtError) -> Alert {
        Alert {
            event: "finished",
            environment: run.environment.clone(),
            status: "FAILED",
            execution_arn: run.execution_arn.clone(),
            message: summary::summary_failed(run, error),
            summary: None,
            summary_uri: None,
            error: Some(error.clone()),
            stack_count: None,
            stage_count: None,
        }
    }

    fn finished(run: &RunContext, summary: &RunSummary) -> Alert {
        Alert {
            event: "finished",
            environment: run.environment.clone(),
            status: match summary.status {
                RunStatus::Succeeded => "SUCCEEDED",
                RunStatus::Failed => "FAILED",
            },
            execution_arn: run.execution_arn.clone(),
            message: summary::finished(run, summary),
            summary: Some(summary.clone()),
            summary_uri: Some(format!("s3://{}/{}", run.bucket, run.summary_key())),
            error: None,
            stack_count: None,
            stage_count: None,
        }
    }

    /// The separate alert for a rollback that failed: a human must fix the stacks it names.
    pub fn rollback_failed(run: &RunContext, summary: &RunSummary) -> Alert {
        Alert {
            event: "rollback_failed",
            environment: run.environment.clone(),
            status: "ROLLBACK_FAILED",
            execution_arn: run.execution_arn.clone(),
            message: summary::rollback_failed(run, summary),
            summary: Some(summary.clone()),
            summary_uri: Some(format!("s3://{}/{}", run.bucket, run.summary_key())),
            error: None,
            stack_count: None,
            stage_count: None,
        }
    }

    fn rejected(execution_arn: &str, input: &Value, error: &CaughtError) -> Alert {
        // The raw execution input of any shape (console input or EventBridge envelope): the
        // environment is there when the input named one at all, even if it is invalid otherwise.
        let environment = stackwave_core::trigger::environment_hint(input);
        Alert {
            event: "rejected",
            environment: environment.as_deref().unwrap_or("unknown").to_string(),
            status: "REJECTED",
            execution_arn: execution_arn.to_string(),
            message: summary::rejected(environment.as_deref(), execution_arn, error),
            summary: None,
            summary_uri: None,
            error: Some(error.clone()),
            stack_count: None,
            stage_count: None,
        }
    }

    /// The machine form: `{event, environment, status, executionArn, summary?, error?}`.
    /// `detail` picks how much of the summary fits (see [`Detail`]).
    pub fn machine(&self, detail: Detail) -> Value {
        let mut m = Map::new();
        m.insert("event".into(), json!(self.event));
        m.insert("environment".into(), json!(self.environment));
        m.insert("status".into(), json!(self.status));
        m.insert("executionArn".into(), json!(self.execution_arn));
        if let Some(n) = self.stack_count {
            m.insert("stackCount".into(), json!(n));
        }
        if let Some(n) = self.stage_count {
            m.insert("stageCount".into(), json!(n));
        }
        if let Some(summary) = &self.summary {
            let (value, omitted) = summary_detail(summary, detail);
            m.insert("summary".into(), value);
            if omitted > 0 {
                m.insert("stacksOmitted".into(), json!(omitted));
            }
        }
        if let Some(uri) = &self.summary_uri {
            m.insert("summaryUri".into(), json!(uri));
        }
        if let Some(error) = &self.error {
            let cause = match detail {
                Detail::Full | Detail::Unsettled => error.cause.clone(),
                Detail::Headline => truncate_chars(&error.cause, 4_000),
            };
            m.insert(
                "error".into(),
                json!({"Error": error.error, "Cause": cause}),
            );
        }
        Value::Object(m)
    }

    /// The SNS `Message` for `MessageStructure = "json"`, fitted under [`MAX_MESSAGE_BYTES`]:
    /// first whole, then with a shorter human body and only the unsettled stacks in the
    /// machine form, at last with the headline only (the full summary stays in S3).
    pub fn sns_message(&self) -> Result<String, Error> {
        let attempts = [
            (Detail::Full, usize::MAX),
            (Detail::Full, 60_000),
            (Detail::Unsettled, 30_000),
            (Detail::Headline, 8_000),
        ];
        let mut last = String::new();
        for (detail, body_chars) in attempts {
            let body = self.body(body_chars);
            last = sns_structure(&body, &self.machine(detail))?;
            if last.len() <= MAX_MESSAGE_BYTES {
                return Ok(last);
            }
        }
        Err(Error::Internal(format!(
            "the alert for {} does not fit in an SNS message even reduced to its headline ({} bytes)",
            self.execution_arn,
            last.len()
        )))
    }

    fn body(&self, max_chars: usize) -> String {
        if self.message.body.chars().count() <= max_chars {
            return self.message.body.clone();
        }
        let note = match &self.summary_uri {
            Some(uri) => format!("\n... (shortened to fit an alert; the full summary is at {uri})"),
            None => "\n... (shortened to fit an alert)".to_string(),
        };
        format!("{}{note}", truncate_chars(&self.message.body, max_chars))
    }
}

/// How much of the run summary the machine form carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The whole summary.
    Full,
    /// Every stack that did not end created, updated or unchanged.
    Unsettled,
    /// No stacks: status, failed stack, root cause, error.
    Headline,
}

/// The summary as JSON at a detail level, and how many stacks were left out.
fn summary_detail(summary: &RunSummary, detail: Detail) -> (Value, usize) {
    use stackwave_core::record::Action;
    let mut reduced = summary.clone();
    match detail {
        Detail::Full => {}
        Detail::Unsettled => reduced.stacks.retain(|s| {
            !matches!(
                s.action,
                Action::Created | Action::Updated | Action::Unchanged
            )
        }),
        Detail::Headline => {
            reduced.stacks.clear();
            reduced.error = reduced.error.map(|e| truncate_chars(&e, 4_000));
        }
    }
    let omitted = summary.stacks.len() - reduced.stacks.len();
    (
        serde_json::to_value(&reduced).unwrap_or(Value::Null),
        omitted,
    )
}

/// `{"default", "email", "sqs", "lambda", "https"}`: the human body for the first two, the
/// machine JSON (as a string, as SNS requires) for the others.
fn sns_structure(body: &str, machine: &Value) -> Result<String, Error> {
    let machine = serde_json::to_string(machine)
        .map_err(|e| Error::Internal(format!("serialize alert: {e}")))?;
    let message = json!({
        "default": body,
        "email": body,
        "sqs": machine,
        "lambda": machine,
        "https": machine,
    });
    serde_json::to_string(&message).map_err(|e| Error::Internal(format!("serialize alert: {e}")))
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, Error> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(truncate_chars(value, MAX_ATTRIBUTE_CHARS))
        .build()
        .map_err(|e| Error::Internal(format!("build message attribute: {e}")))
}

/// An SNS subject: printable ASCII only (anything else becomes `?`, line breaks and control
/// characters a space), spaces collapsed, at most [`MAX_SUBJECT_CHARS`], never empty.
pub fn sanitize_subject(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if c.is_ascii_graphic() {
            c
        } else if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            '?'
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_end().to_string();
    if out.len() > MAX_SUBJECT_CHARS {
        out.truncate(MAX_SUBJECT_CHARS - 3);
        out = format!("{}...", out.trim_end());
    }
    if out.is_empty() {
        "stackwave".to_string()
    } else {
        out
    }
}

/// At most `max` characters of `s`, cut on a character boundary.
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackwave_core::io::{PollSeconds, StackSummary};
    use stackwave_core::record::Action;

    fn run() -> RunContext {
        RunContext {
            execution_arn: "arn:aws:states:us-east-1:123456789012:execution:stackwave-deploy:run-1"
                .into(),
            execution_name: "run-1".into(),
            environment: "dev".into(),
            bucket: "artifacts".into(),
            run_prefix: "runs/dev/run-1/".into(),
            poll: PollSeconds { min: 1, max: 2 },
            max_concurrency: 10,
            manifest_uri: "s3://artifacts/deployments/dev/t1/manifest.yaml".into(),
            started_at: "2026-11-27T10:15:00.000Z".into(),
            on_failure: stackwave_core::manifest::OnFailure::Rollback,
            fallback_poll_seconds: stackwave_core::io::DEFAULT_FALLBACK_POLL_SECONDS,
            segment_events: stackwave_core::budget::SEGMENT_EVENTS,
        }
    }

    fn summary(stacks: usize, reason_len: usize) -> RunSummary {
        RunSummary {
            status: RunStatus::Failed,
            environment: "dev".into(),
            execution_arn: run().execution_arn,
            stacks: (0..stacks)
                .map(|i| StackSummary {
                    name: format!("Stack{i:03}-dev"),
                    stage: format!("stage{}", i / 100),
                    action: if i == 7 {
                        Action::Failed
                    } else {
                        Action::Created
                    },
                    duration_seconds: 12.5,
                    reason: "r".repeat(reason_len),
                })
                .collect(),
            failed_stack: Some("Stack007-dev".into()),
            root_cause: None,
            error: None,
            stacks_omitted: 0,
            summary_uri: None,
        }
    }

    #[test]
    fn subject_is_ascii_single_line_and_short() {
        assert_eq!(
            sanitize_subject("stackwave dev: FAILED\nStack"),
            "stackwave dev: FAILED Stack"
        );
        assert_eq!(sanitize_subject("  déploiement \t ok  "), "d?ploiement ok");
        assert_eq!(sanitize_subject("\n\r"), "stackwave");
        let long = sanitize_subject(&format!("stackwave dev: failed {}", "X".repeat(300)));
        assert!(long.len() <= MAX_SUBJECT_CHARS, "{}", long.len());
        assert!(long.ends_with("..."));
        assert!(long.is_ascii());
    }

    #[test]
    fn a_summary_that_could_not_be_built_is_alerted_as_a_failed_run_not_a_rejection() {
        let error = CaughtError {
            error: "AwsServiceError".into(),
            cause: "{\"errorMessage\":\"AWS s3:GetObject failed (AccessDenied): denied\"}".into(),
        };
        let alert = Alert::from_input(&NotifyInput::SummaryFailed { run: run(), error });
        assert_eq!(alert.status, "FAILED");
        assert_eq!(alert.event, "finished");
        let m = alert.machine(Detail::Full);
        assert_eq!(m["error"]["Error"], "AwsServiceError");
        let text = &alert.message.body;
        assert!(!text.contains("nothing was deployed"), "{text}");
        assert!(
            text.contains("may have been created, updated or rolled back"),
            "{text}"
        );
        assert!(
            text.contains(&format!("Environment: {}", run().environment)),
            "{text}"
        );
        assert!(
            text.contains(&format!("{}stacks/", run().run_prefix)),
            "{text}"
        );
        assert!(text.contains("AccessDenied"), "{text}");
        assert!(alert
            .message
            .subject
            .contains("FAILED (summary not built: AwsServiceError)"));
    }

    #[test]
    fn machine_form_of_a_rejection_carries_the_error() {
        let error = CaughtError {
            error: "InvalidManifest".into(),
            cause: "cycle A -> B -> A".into(),
        };
        let input = json!({"environment": "qa", "manifest": "s3://b/k"});
        let alert = Alert::from_input(&NotifyInput::Rejected {
            execution_arn: "arn:x".into(),
            input,
            error: error.clone(),
        });
        assert_eq!(alert.environment, "qa");
        assert_eq!(alert.status, "REJECTED");
        let m = alert.machine(Detail::Full);
        assert_eq!(m["event"], "rejected");
        assert_eq!(m["error"]["Error"], "InvalidManifest");
        assert_eq!(m["error"]["Cause"], "cycle A -> B -> A");
        assert!(m.get("summary").is_none());

        let no_env = Alert::from_input(&NotifyInput::Rejected {
            execution_arn: "arn:x".into(),
            input: json!("not an object"),
            error,
        });
        assert_eq!(no_env.environment, "unknown");
    }

    #[test]
    fn rejected_event_alerts_name_the_environment_of_the_envelope() {
        let error = CaughtError {
            error: "InvalidManifest".into(),
            cause: "cycle".into(),
        };
        let upload = json!({
            "source": "aws.s3", "detail-type": "Object Created", "id": "e1",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "manifests/prod/app/manifest.yaml"}}
        });
        let custom = json!({
            "source": "stackwave", "detail-type": "Deployment Requested", "id": "e2",
            "detail": {"environment": "qa", "manifest": "s3://b/k/manifest.yaml", "bogus": 1}
        });
        for (input, want) in [(upload, "prod"), (custom, "qa")] {
            let alert = Alert::from_input(&NotifyInput::Rejected {
                execution_arn: "arn:x".into(),
                input,
                error: error.clone(),
            });
            assert_eq!(alert.environment, want);
            assert!(
                alert.message.subject.contains(want),
                "{}",
                alert.message.subject
            );
        }
    }

    #[test]
    fn small_message_is_sent_whole() {
        let alert = Alert::from_input(&NotifyInput::Finished {
            run: run(),
            summary: summary(3, 10),
        });
        let message: Value = serde_json::from_str(&alert.sns_message().unwrap()).unwrap();
        let machine: Value = serde_json::from_str(message["sqs"].as_str().unwrap()).unwrap();
        assert_eq!(machine["summary"]["stacks"].as_array().unwrap().len(), 3);
        assert!(machine.get("stacksOmitted").is_none());
        assert_eq!(
            machine["summaryUri"],
            "s3://artifacts/runs/dev/run-1/summary.json"
        );
        assert_eq!(message["lambda"], message["sqs"]);
        assert_eq!(message["https"], message["sqs"]);
        assert_eq!(message["default"], message["email"]);
    }

    #[test]
    fn large_summary_is_reduced_to_fit_sns() {
        // 500 stacks with long reasons: the whole form is far above 256 KiB.
        let alert = Alert::from_input(&NotifyInput::Finished {
            run: run(),
            summary: summary(500, 400),
        });
        assert!(
            sns_structure("", &alert.machine(Detail::Full))
                .unwrap()
                .len()
                > MAX_MESSAGE_BYTES
        );
        let text = alert.sns_message().unwrap();
        assert!(text.len() <= MAX_MESSAGE_BYTES, "{}", text.len());
        let message: Value = serde_json::from_str(&text).unwrap();
        let machine: Value = serde_json::from_str(message["sqs"].as_str().unwrap()).unwrap();
        let kept = machine["summary"]["stacks"].as_array().unwrap();
        assert_eq!(kept.len(), 1, "only the failed stack is kept");
        assert_eq!(kept[0]["name"], "Stack007-dev");
        assert_eq!(machine["stacksOmitted"], 499);
        assert_eq!(machine["summary"]["failedStack"], "Stack007-dev");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("abc", 10), "abc");
    }
}
