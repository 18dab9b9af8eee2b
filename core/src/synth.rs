//! Synthetic manifests for tests and benchmarks (e.g. the 500-stack budget test).
//!
//! Every stack uses the one template path given. Stack names are
//! `<name>-s<i>-n<j>-${environment}` (so `name` must start with a letter), stages `s<i>`.
//! A dependent stack takes its first dependency's output `Id` as the parameter `Upstream`
//! (`{output: "<stack>.Id"}`); further dependencies are listed in `dependsOn`. So the template
//! declares one optional String parameter `Upstream` and outputs `Id`: [`TEMPLATE_YAML`] is such
//! a template.

/// How the synthetic stacks depend on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No dependencies: every stage is one wave.
    Independent,
    /// Inside each stage, chains of the given depth: `n<j>` depends on `n<j-1>` unless `j` is a
    /// multiple of the depth. A stage has `min(depth, per_stage)` waves; depth 0 or 1 is
    /// `Independent`.
    ChainInStage(usize),
    /// Inside each stage, the last stack depends on every other stack of the stage (two waves);
    /// the first stack of every later stage depends on the last stack of the stage before.
    FanIn,
}

/// A template every synthetic stack can use: an optional `Upstream` parameter and an `Id` output,
/// with one resource that needs no properties.
pub const TEMPLATE_YAML: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Description: stackwave synthetic stack
Parameters:
  Upstream:
    Type: String
    Default: ""
Resources:
  Handle:
    Type: AWS::CloudFormation::WaitConditionHandle
Outputs:
  Id:
    Value: !Ref AWS::StackName
"#;

/// The name of stack `j` of stage `i`, before `${environment}` is substituted.
pub fn stack_name(name: &str, stage: usize, index: usize) -> String {
    format!("{name}-s{stage}-n{index}-${{environment}}")
}

/// A manifest of `stages` stages of `per_stage` stacks each, shaped by `shape`.
pub fn manifest_yaml(
    name: &str,
    stages: usize,
    per_stage: usize,
    shape: Shape,
    template: &str,
) -> String {
    let mut out = String::with_capacity(stages * per_stage * 160 + 256);
    out.push_str(&format!("version: 1\nname: {}\n", quote(name)));
    out.push_str("defaults:\n  tags:\n");
    out.push_str(&format!("    Project: {}\n", quote(name)));
    out.push_str("    Environment: \"${environment}\"\n");
    out.push_str("    ManagedBy: stackwave\n");
    out.push_str("stages:\n");
    for i in 0..stages {
        out.push_str(&format!("  - name: s{i}\n    stacks:\n"));
        for j in 0..per_stage {
            let deps = dependencies(name, i, j, per_stage, shape);
            out.push_str(&format!(
                "      - name: {}\n",
                quote(&stack_name(name, i, j))
            ));
            out.push_str(&format!("        template: {}\n", quote(template)));
            if let Some((first, rest)) = deps.split_first() {
                out.push_str("        parameters:\n");
                out.push_str(&format!(
                    "          Upstream: {{output: {}}}\n",
                    quote(&format!("{first}.Id"))
                ));
                if !rest.is_empty() {
                    let list: Vec<String> = rest.iter().map(|d| quote(d)).collect();
                    out.push_str(&format!("        dependsOn: [{}]\n", list.join(", ")));
                }
            }
        }
    }
    out
}

/// The stacks `n<j>` of stage `i` depends on, in order.
fn dependencies(name: &str, i: usize, j: usize, per_stage: usize, shape: Shape) -> Vec<String> {
    match shape {
        Shape::Independent => vec![],
        Shape::ChainInStage(depth) => {
            if depth > 1 && j % depth != 0 {
                vec![stack_name(name, i, j - 1)]
            } else {
                vec![]
            }
        }
        Shape::FanIn => {
            let mut deps = Vec::new();
            if per_stage > 1 && j == per_stage - 1 {
                deps.extend((0..j).map(|k| stack_name(name, i, k)));
            }
            if i > 0 && j == 0 {
                deps.push(stack_name(name, i - 1, per_stage - 1));
            }
            deps
        }
    }
}

/// A YAML double-quoted string (JSON's quoting is valid YAML).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ParamValue;
    use crate::plan;

    fn plan_of(stages: usize, per_stage: usize, shape: Shape) -> plan::Plan {
        let text = manifest_yaml("synth", stages, per_stage, shape, "templates/stack.yaml");
        plan::from_text(&text, "ci", &|p| p == "templates/stack.yaml")
            .expect("valid synthetic manifest")
    }

    #[test]
    fn independent_stages_are_one_wave_each() {
        let p = plan_of(3, 4, Shape::Independent);
        assert_eq!(p.stacks.len(), 12);
        assert_eq!(p.stages.len(), 3);
        for s in &p.stages {
            assert_eq!(s.waves.len(), 1);
            assert_eq!(s.waves[0].len(), 4);
        }
        assert_eq!(p.stacks[0].name, "synth-s0-n0-ci");
        assert_eq!(
            p.stacks[0].tags.get("Environment").map(String::as_str),
            Some("ci")
        );
        assert!(p
            .stacks
            .iter()
            .all(|s| s.depends_on.is_empty() && s.template == "templates/stack.yaml"));
    }

    #[test]
    fn chains_make_waves_of_the_chain_depth() {
        let p = plan_of(2, 10, Shape::ChainInStage(3));
        for s in &p.stages {
            let sizes: Vec<usize> = s.waves.iter().map(Vec::len).collect();
            // chains n0-n1-n2, n3-n4-n5, n6-n7-n8, n9
            assert_eq!(sizes, vec![4, 3, 3]);
        }
        let n1 = p.stack("synth-s1-n1-ci").expect("stack");
        assert_eq!(n1.depends_on, vec!["synth-s1-n0-ci".to_string()]);
        assert_eq!(
            n1.parameters.get("Upstream"),
            Some(&ParamValue::Output {
                output: "synth-s1-n0-ci.Id".into()
            })
        );
        assert_eq!(
            plan_of(1, 5, Shape::ChainInStage(1)).stages[0].waves.len(),
            1
        );
    }

    #[test]
    fn fan_in_makes_two_waves_and_links_stages() {
        let p = plan_of(3, 5, Shape::FanIn);
        for s in &p.stages {
            assert_eq!(s.waves.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 1]);
        }
        let last = p.stack("synth-s0-n4-ci").expect("stack");
        assert_eq!(last.depends_on.len(), 4);
        let first_of_next = p.stack("synth-s1-n0-ci").expect("stack");
        assert_eq!(first_of_next.depends_on, vec!["synth-s0-n4-ci".to_string()]);
        // a cross-stage dependency does not push the stack into a later wave
        assert_eq!(first_of_next.wave, 0);
    }

    #[test]
    fn five_hundred_stacks_plan() {
        let p = plan_of(5, 100, Shape::ChainInStage(4));
        assert_eq!(p.stacks.len(), 500);
        assert_eq!(p.stage_refs().len(), 5);
        assert!(p.stages.iter().all(|s| s.waves.len() == 4));
        let p = plan_of(5, 100, Shape::FanIn);
        assert_eq!(p.stacks.len(), 500);
    }

    #[test]
    fn template_declares_upstream_and_outputs_id() {
        let v: serde_yaml::Value = serde_yaml::from_str(TEMPLATE_YAML).expect("yaml");
        assert!(v["Parameters"]["Upstream"]["Default"].is_string());
        assert!(v["Outputs"]["Id"].is_mapping());
    }
}
