//! What stackwave reads from a stack's CloudFormation template before any change: its size and
//! its `Parameters` section. The plan function (templates in S3) and the CLI (templates on disk)
//! both check each stack against its template with [`check`], so a run never starts with a
//! parameter CloudFormation would refuse at CreateChangeSet.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::manifest::ValidationIssue;
use crate::plan::PlannedStack;

/// Largest template CloudFormation reads from S3 (TemplateURL, "max size: 1 MB").
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

/// A parameter the template declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// It has a `Default`: the manifest may leave it out.
    pub has_default: bool,
    /// `NoEcho: true` (or `"true"`, any case): DescribeStacks masks its value.
    pub no_echo: bool,
}

/// The template's declared parameters, by name. A template that does not parse is an error text.
pub fn parameters(template: &str) -> Result<BTreeMap<String, Declared>, String> {
    let value: Value =
        serde_yaml::from_str(template).map_err(|e| format!("the template does not parse: {e}"))?;
    let Some(Value::Mapping(parameters)) = value.get("Parameters") else {
        return Ok(BTreeMap::new());
    };
    Ok(parameters
        .iter()
        .filter_map(|(k, v)| {
            let no_echo = match v.get("NoEcho") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            };
            let declared = Declared {
                has_default: v.get("Default").is_some(),
                no_echo,
            };
            Some((k.as_str()?.to_string(), declared))
        })
        .collect())
}

/// One stack against its template, given as its bytes or why they could not be read: the size
/// limit, every manifest parameter the template does not declare, every template parameter
/// without a `Default` that the manifest does not give. Each issue names the stack, the
/// parameter and the fix.
pub fn check(stack: &PlannedStack, template: &Result<Vec<u8>, String>) -> Vec<ValidationIssue> {
    let me = Some(stack.name.as_str());
    let bytes = match template {
        Ok(b) => b,
        Err(why) => {
            return vec![ValidationIssue::new(
                me,
                "template",
                format!("{} could not be read: {why}", stack.template),
                "upload the template with the manifest (`stackwave deploy` does), or correct `template`",
            )]
        }
    };
    if bytes.len() > MAX_TEMPLATE_BYTES {
        return vec![ValidationIssue::new(
            me,
            "template",
            format!(
                "{} is {} bytes; CloudFormation reads templates of at most {MAX_TEMPLATE_BYTES} \
                 bytes (1 MB)",
                stack.template,
                bytes.len()
            ),
            "split the stack into nested stacks or smaller stacks, or move large inline code \
             (Lambda code, policies) into S3 assets",
        )];
    }
    let declared = match std::str::from_utf8(bytes)
        .map_err(|_| "the template is not UTF-8 text".to_string())
        .and_then(parameters)
    {
        Ok(d) => d,
        Err(why) => {
            return vec![ValidationIssue::new(
                me,
                "template",
                format!("{}: {why}", stack.template),
                "correct the template (YAML or JSON)",
            )]
        }
    };
    let mut issues = Vec::new();
    for name in stack.parameters.keys() {
        if !declared.contains_key(name) {
            issues.push(ValidationIssue::new(
                me,
                format!("parameters.{name}"),
                format!(
                    "the template {} declares no parameter {name} (it declares: {})",
                    stack.template,
                    list(declared.keys())
                ),
                format!("remove {name} from the stack's parameters, or declare it in the template"),
            ));
        }
    }
    for (name, d) in &declared {
        if !d.has_default && !stack.parameters.contains_key(name) {
            issues.push(ValidationIssue::new(
                me,
                format!("parameters.{name}"),
                format!(
                    "the template {} requires parameter {name} (it has no `Default`), and the \
                     manifest does not give it",
                    stack.template
                ),
                format!("add `{name}: <value>` to the stack's parameters, or give it a `Default` in the template"),
            ));
        }
    }
    issues
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ParamValue;

    fn stack(params: &[&str]) -> PlannedStack {
        PlannedStack {
            name: "Api-dev".into(),
            stage: "app".into(),
            stage_index: 0,
            wave: 0,
            template: "templates/api.yaml".into(),
            parameters: params
                .iter()
                .map(|p| (p.to_string(), ParamValue::Literal("v".into())))
                .collect(),
            depends_on: vec![],
            tags: BTreeMap::new(),
            capabilities: vec![],
            timeout_minutes: 60,
            secret_parameters: vec![],
        }
    }

    const TEMPLATE: &str = "Parameters:\n  Required:\n    Type: String\n  Optional:\n    Type: String\n    Default: x\n  Secret:\n    Type: String\n    NoEcho: 'True'\n    Default: ''\nResources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Ref Required\n";

    #[test]
    fn declared_parameters_from_yaml_and_json() {
        let p = parameters(TEMPLATE).expect("parses");
        assert_eq!(p.len(), 3);
        assert!(!p["Required"].has_default && !p["Required"].no_echo);
        assert!(p["Optional"].has_default);
        assert!(p["Secret"].no_echo && p["Secret"].has_default);
        let json = r#"{"Parameters": {"K": {"Type": "String", "NoEcho": true}}}"#;
        assert!(parameters(json).expect("json")["K"].no_echo);
        assert!(parameters("Resources: {}\n").expect("none").is_empty());
        assert!(parameters("Parameters: [\n").is_err());
    }

    #[test]
    fn undeclared_and_missing_required_parameters_are_each_named_with_the_fix() {
        let t = Ok(TEMPLATE.as_bytes().to_vec());
        assert!(check(&stack(&["Required", "Optional"]), &t).is_empty());
        let issues = check(&stack(&["Optional", "Typo"]), &t);
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert_eq!(issues[0].field, "parameters.Typo");
        assert!(issues[0].message.contains("declares no parameter Typo"));
        assert!(issues[0]
            .message
            .contains("(it declares: Optional, Required, Secret)"));
        assert_eq!(issues[1].field, "parameters.Required");
        assert!(issues[1].message.contains("requires parameter Required"));
        assert!(issues[1].fix.contains("`Required: <value>`"));
        assert!(issues.iter().all(|i| i.stack.as_deref() == Some("Api-dev")));
    }

    #[test]
    fn a_template_over_one_megabyte_or_unreadable_is_refused() {
        let big = Ok(vec![b' '; MAX_TEMPLATE_BYTES + 1]);
        let issues = check(&stack(&[]), &big);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].message.contains("1048577 bytes"), "{issues:?}");
        let at_limit = Ok(format!(
            "{TEMPLATE}{}",
            " ".repeat(MAX_TEMPLATE_BYTES - TEMPLATE.len())
        )
        .into_bytes());
        assert!(check(&stack(&["Required"]), &at_limit).is_empty());
        let gone = Err("NoSuchKey".to_string());
        assert!(check(&stack(&[]), &gone)[0]
            .message
            .contains("could not be read: NoSuchKey"));
        let bad = Ok(b"Parameters: [\n".to_vec());
        assert!(check(&stack(&[]), &bad)[0]
            .message
            .contains("does not parse"));
    }
}
