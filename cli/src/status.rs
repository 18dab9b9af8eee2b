//! `stackwave status`: recent executions of the state machine, and the last successful
//! deployment of an environment (SSM `/stackwave/<env>/last-deployment`).

use serde::Serialize;

use crate::aws::{sdk_error, Target};

/// One execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRow {
    pub name: String,
    pub status: String,
    pub start: String,
    pub stop: Option<String>,
    pub execution_arn: String,
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub state_machine_arn: String,
    pub environment: Option<String>,
    /// Newest first.
    pub executions: Vec<ExecutionRow>,
    /// The SSM value, when an environment was given and it has one.
    pub last_deployment: Option<String>,
}

/// How many executions `status` shows.
pub const RECENT: usize = 10;
/// How many executions are scanned when filtering by environment.
const SCAN: usize = 200;

/// UTC to the second: `2026-11-27T10:15:00Z`.
fn time(t: &aws_smithy_types::DateTime) -> String {
    chrono::DateTime::from_timestamp(t.secs(), 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.secs().to_string())
}

/// The newest executions (all, or those named `<environment>-…` as `deploy` names them).
pub async fn recent(
    target: &Target,
    environment: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<ExecutionRow>> {
    let arn = target.state_machine_arn()?;
    let prefix = environment.map(|e| format!("{e}-"));
    let mut rows: Vec<(i128, ExecutionRow)> = Vec::new();
    let mut token: Option<String> = None;
    let mut scanned = 0usize;
    loop {
        let page = target
            .aws
            .sfn
            .list_executions()
            .state_machine_arn(arn)
            .max_results(100)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk_error("states:ListExecutions", e))?;
        for e in page.executions {
            scanned += 1;
            if prefix.as_deref().is_some_and(|p| !e.name.starts_with(p)) {
                continue;
            }
            rows.push((
                e.start_date.as_nanos(),
                ExecutionRow {
                    name: e.name,
                    status: e.status.as_str().to_string(),
                    start: time(&e.start_date),
                    stop: e.stop_date.as_ref().map(time),
                    execution_arn: e.execution_arn,
                },
            ));
        }
        match page.next_token {
            Some(t)
                if !t.is_empty() && scanned < SCAN && (prefix.is_some() || rows.len() < limit) =>
            {
                token = Some(t)
            }
            _ => break,
        }
    }
    // Newest first, whatever order the service returned.
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(rows.into_iter().take(limit).map(|(_, r)| r).collect())
}

/// `/stackwave/<environment>/last-deployment`, or `None` when it does not exist yet.
pub async fn last_deployment(target: &Target, environment: &str) -> anyhow::Result<Option<String>> {
    let name = format!("/stackwave/{environment}/last-deployment");
    match target.aws.ssm.get_parameter().name(&name).send().await {
        Ok(o) => Ok(o.parameter.and_then(|p| p.value)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk_error("ssm:GetParameter", e)),
    }
}

pub async fn report(target: &Target, environment: Option<&str>) -> anyhow::Result<StatusReport> {
    let executions = recent(target, environment, RECENT).await?;
    let last_deployment = match environment {
        Some(env) => last_deployment(target, env).await?,
        None => None,
    };
    Ok(StatusReport {
        state_machine_arn: target.state_machine_arn()?.to_string(),
        environment: environment.map(str::to_string),
        executions,
        last_deployment,
    })
}

pub fn render(r: &StatusReport) -> String {
    let mut out = format!("state machine {}\n", r.state_machine_arn);
    if let Some(env) = &r.environment {
        match &r.last_deployment {
            Some(v) => out.push_str(&format!("last deployment of {env}: {v}\n")),
            None => out.push_str(&format!("last deployment of {env}: none recorded yet\n")),
        }
    }
    if r.executions.is_empty() {
        out.push_str("no executions yet\n");
        return out;
    }
    let width = r
        .executions
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "{:<width$}  {:<9}  {:<20}  {}\n",
        "NAME", "STATUS", "STARTED", "STOPPED"
    ));
    for e in &r.executions {
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:<20}  {}\n",
            e.name,
            e.status,
            e.start,
            e.stop.as_deref().unwrap_or("-")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_and_last_deployment() {
        let r = StatusReport {
            state_machine_arn: "arn:sm".into(),
            environment: Some("dev".into()),
            executions: vec![ExecutionRow {
                name: "dev-20261127T101500Z-abcdef".into(),
                status: "SUCCEEDED".into(),
                start: "2026-11-27T10:15:00Z".into(),
                stop: Some("2026-11-27T10:16:00Z".into()),
                execution_arn: "arn:x".into(),
            }],
            last_deployment: None,
        };
        let text = render(&r);
        assert!(
            text.contains("last deployment of dev: none recorded yet"),
            "{text}"
        );
        assert!(
            text.contains("dev-20261127T101500Z-abcdef  SUCCEEDED  2026-11-27T10:15:00Z"),
            "{text}"
        );
    }
}
