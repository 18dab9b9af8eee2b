//! Secrets: an `{ssm: ...}` parameter that is a SecureString.
//!
//! stackwave never stores a secret's value: records keep where it is read from (the SSM name and
//! version, [`SecretRef`]), and deploy-stack reads the value again each time it passes it to
//! CloudFormation. A secret goes only into a template parameter declared `NoEcho: true`, so that
//! DescribeStacks masks it; anything else is refused before any change ([`not_no_echo`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::manifest::{ParamValue, ValidationIssue};
use crate::plan::PlannedStack;

/// What DescribeStacks shows for a NoEcho parameter's value.
pub const MASKED: &str = "****";

/// The snapshot's masked parameters whose pre-run value the restore cannot know (no SSM source
/// from an earlier run): the restore keeps this run's value for them (UsePreviousValue).
pub fn unknown_masked(snapshot: &crate::record::Snapshot) -> Vec<&str> {
    snapshot
        .parameters
        .iter()
        .filter(|(k, v)| v == MASKED && !snapshot.secrets.iter().any(|s| &s.parameter == k))
        .map(|(k, _)| k.as_str())
        .collect()
}

/// The sources of `previous` (the stack's last deployed secrets) that the snapshot needs: those
/// of its masked parameters.
pub fn masked_sources(parameters: &[(String, String)], previous: Vec<SecretRef>) -> Vec<SecretRef> {
    previous
        .into_iter()
        .filter(|s| {
            parameters
                .iter()
                .any(|(k, v)| k == &s.parameter && v == MASKED)
        })
        .collect()
}

/// Where a stack parameter's secret is read: never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The template parameter.
    pub parameter: String,
    /// The SSM parameter's name.
    pub ssm: String,
    /// The SSM parameter's version read at deploy time: a retry or a restore passes the same
    /// value even if the parameter changes meanwhile.
    pub version: i64,
}

impl SecretRef {
    /// The `name:version` selector for GetParameter.
    pub fn selector(&self) -> String {
        format!("{}:{}", self.ssm, self.version)
    }
}

/// Every SSM parameter name the plan reads, sorted, once each.
pub fn ssm_names(stacks: &[PlannedStack]) -> BTreeSet<String> {
    stacks
        .iter()
        .flat_map(|s| s.parameters.values())
        .filter_map(|v| match v {
            ParamValue::Ssm { ssm } => Some(ssm.clone()),
            _ => None,
        })
        .collect()
}

/// A stack's `(parameter, ssm name)` pairs whose SSM parameter is a SecureString.
pub fn secure_parameters(
    stack: &PlannedStack,
    is_secure: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    stack
        .parameters
        .iter()
        .filter_map(|(name, v)| match v {
            ParamValue::Ssm { ssm } if is_secure(ssm) => Some((name.clone(), ssm.clone())),
            _ => None,
        })
        .collect()
}

/// The plan's check, shared by the plan function and the CLI: `secure` holds the SSM names that
/// are SecureStrings, `templates` each template's bytes by the stacks' `template` (an
/// unreadable or invalid one is reported by [`crate::template::check`], not here). Marks each
/// stack's checked `secret_parameters` and returns every refusal.
pub fn check(
    stacks: &mut [PlannedStack],
    secure: &BTreeSet<String>,
    templates: &BTreeMap<String, Result<Vec<u8>, String>>,
) -> Vec<ValidationIssue> {
    let mut issues = Vec::new();
    for stack in stacks {
        let pairs = secure_parameters(stack, &|n| secure.contains(n));
        if pairs.is_empty() {
            continue;
        }
        let declared = match templates.get(&stack.template) {
            Some(Ok(bytes)) => std::str::from_utf8(bytes)
                .map_err(|e| e.to_string())
                .and_then(crate::template::parameters),
            _ => continue,
        };
        let Ok(declared) = declared else { continue };
        let no_echo: BTreeSet<String> = declared
            .into_iter()
            .filter(|(_, d)| d.no_echo)
            .map(|(name, _)| name)
            .collect();
        issues.extend(not_no_echo(&stack.name, &pairs, &no_echo));
        stack.secret_parameters = pairs.into_iter().map(|(p, _)| p).collect();
    }
    issues
}

/// The refusals for one stack: each SecureString in `secure` going into a parameter that is not
/// in `no_echo`. The message names the stack, the parameter and the fix.
pub fn not_no_echo(
    stack: &str,
    secure: &[(String, String)],
    no_echo: &BTreeSet<String>,
) -> Vec<ValidationIssue> {
    secure
        .iter()
        .filter(|(parameter, _)| !no_echo.contains(parameter))
        .map(|(parameter, ssm)| {
            ValidationIssue::new(
                Some(stack),
                format!("parameters.{parameter}.ssm"),
                format!(
                    "SSM parameter {ssm} is a SecureString, but the template does not declare \
                     {parameter} with `NoEcho: true`: CloudFormation would show the secret to \
                     anyone who can call DescribeStacks"
                ),
                format!(
                    "declare `NoEcho: true` on {parameter} in the template, or drop the \
                     parameter and read the secret in the template with \
                     `{{{{resolve:ssm-secure:{ssm}}}}}`"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_into_a_visible_parameter_names_stack_parameter_and_fix() {
        let secure = vec![
            ("DbPassword".to_string(), "/app/db/password".to_string()),
            ("ApiKey".to_string(), "/app/api-key".to_string()),
        ];
        let issues = not_no_echo("Api-dev", &secure, &BTreeSet::from(["ApiKey".to_string()]));
        assert_eq!(issues.len(), 1);
        let i = &issues[0];
        assert_eq!(i.stack.as_deref(), Some("Api-dev"));
        assert_eq!(i.field, "parameters.DbPassword.ssm");
        assert!(i.message.contains("/app/db/password is a SecureString"));
        assert!(i.fix.contains("`NoEcho: true` on DbPassword"));
        assert!(i.fix.contains("{{resolve:ssm-secure:/app/db/password}}"));
    }

    #[test]
    fn masked_parameters_are_restored_from_their_sources_or_named_as_unknown() {
        let r = |p: &str| SecretRef {
            parameter: p.into(),
            ssm: format!("/s/{p}"),
            version: 2,
        };
        let parameters = vec![
            ("Known".to_string(), MASKED.to_string()),
            ("Unknown".to_string(), MASKED.to_string()),
            ("Plain".to_string(), "v".to_string()),
        ];
        // A source for a parameter that is no longer masked (or gone) is dropped.
        let sources = masked_sources(&parameters, vec![r("Known"), r("Plain"), r("Gone")]);
        assert_eq!(sources, vec![r("Known")]);
        let snapshot = crate::record::Snapshot {
            template_key: "k".into(),
            parameters,
            tags: vec![],
            secrets: sources,
        };
        assert_eq!(unknown_masked(&snapshot), vec!["Unknown"]);
    }

    #[test]
    fn selector_pins_the_version() {
        let r = SecretRef {
            parameter: "P".into(),
            ssm: "/a/b".into(),
            version: 3,
        };
        assert_eq!(r.selector(), "/a/b:3");
    }
}
