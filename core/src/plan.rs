//! The plan: stages in order, each split into waves by intra-stage dependencies.
//! (skeleton: types and signatures are the contract; bodies are being written)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::io::{StageRef, WaveRef};
use crate::manifest::{Manifest, OnFailure, ParamValue, ValidationIssue};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStack {
    pub name: String,
    pub stage: String,
    pub stage_index: u32,
    pub wave: u32,
    /// The template: relative to the manifest as written; the plan function rewrites it to
    /// the template's S3 key before storing the plan.
    pub template: String,
    pub parameters: BTreeMap<String, ParamValue>,
    /// Every dependency: `{output}` references plus `dependsOn`, sorted, deduplicated.
    pub depends_on: Vec<String>,
    /// Defaults' tags merged with the stack's (the stack wins), `${environment}` substituted.
    pub tags: BTreeMap<String, String>,
    pub capabilities: Vec<String>,
    pub timeout_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStage {
    pub index: u32,
    pub name: String,
    /// Stack names per wave, in wave order; inside a wave in manifest order.
    pub waves: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub name: String,
    pub environment: String,
    pub on_failure: OnFailure,
    pub stages: Vec<PlannedStage>,
    /// Every stack, in stage then wave then manifest order.
    pub stacks: Vec<PlannedStack>,
}

/// Default `timeoutMinutes` when neither the stack nor the defaults set it.
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 60;

impl Plan {
    pub fn stack(&self, name: &str) -> Option<&PlannedStack> {
        self.stacks.iter().find(|s| s.name == name)
    }

    /// The small form the state machine carries.
    pub fn stage_refs(&self) -> Vec<StageRef> {
        self.stages
            .iter()
            .map(|s| StageRef {
                index: s.index,
                name: s.name.clone(),
                waves: s
                    .waves
                    .iter()
                    .enumerate()
                    .map(|(i, w)| WaveRef { index: i as u32, stacks: w.clone() })
                    .collect(),
            })
            .collect()
    }
}

/// Validate a parsed manifest and build its plan. `template_exists` answers for a template path
/// as written in the manifest. Every problem is returned at once.
pub fn build(
    manifest: &Manifest,
    environment: &str,
    template_exists: &dyn Fn(&str) -> bool,
) -> Result<Plan, Vec<ValidationIssue>> {
    let _ = (manifest, environment, template_exists);
    Err(vec![])
}

/// Parse, substitute `${environment}`, validate and plan: the whole check, as one call.
/// Errors are `Error::InvalidManifest` listing every problem.
pub fn from_text(
    text: &str,
    environment: &str,
    template_exists: &dyn Fn(&str) -> bool,
) -> crate::Result<Plan> {
    let manifest = crate::manifest::parse(text, environment)
        .map_err(|issues| crate::Error::InvalidManifest { issues })?;
    build(&manifest, environment, template_exists)
        .map_err(|issues| crate::Error::InvalidManifest { issues })
}
