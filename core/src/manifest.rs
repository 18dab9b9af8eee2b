//! The manifest, format v1: what the user writes. See docs/design.md and the README.
//! (skeleton: the types are the contract; parsing and validation are being written)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One validation problem: names the stack (when there is one), the field, the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationIssue {
    /// The stack the problem is in, if any.
    pub stack: Option<String>,
    /// Where: e.g. `stages[1].stacks[0].parameters.VpcId`.
    pub field: String,
    pub message: String,
    pub fix: String,
}

/// One line per issue: `- stack X, field F: message. Fix: fix`.
pub fn render_issues(issues: &[ValidationIssue]) -> String {
    issues
        .iter()
        .map(|i| match &i.stack {
            Some(s) => format!("- stack {s}, {}: {}. Fix: {}", i.field, i.message, i.fix),
            None => format!("- {}: {}. Fix: {}", i.field, i.message, i.fix),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A parameter value: a literal, another stack's output, or an SSM parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Literal(String),
    /// `{output: "StackName.OutputKey"}`: implies a dependency on StackName.
    Output { output: String },
    /// `{ssm: "/parameter/name"}`: resolved at deploy time.
    Ssm { ssm: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Restore every stack this run changed (default).
    #[default]
    Rollback,
    /// Keep what was deployed.
    Retain,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub timeout_minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackSpec {
    pub name: String,
    /// Path of the template, relative to the manifest.
    pub template: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamValue>,
    /// Explicit extra dependencies (stack names).
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub timeout_minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    pub stacks: Vec<StackSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Format version; 1 when absent.
    #[serde(default)]
    pub version: Option<u32>,
    pub name: String,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub on_failure: OnFailure,
    pub stages: Vec<Stage>,
}

/// Parse YAML or JSON text, substituting `${environment}` in every string. Every structural
/// problem (malformed YAML, unknown or mistyped field) is returned at once, each naming the
/// stack and field.
pub fn parse(text: &str, environment: &str) -> Result<Manifest, Vec<ValidationIssue>> {
    let _ = (text, environment);
    Err(vec![])
}
