//! The manifest, format v1: what the user writes. See docs/design.md and the README.
//!
//! [`parse`] reads YAML or JSON into a generic value first and then walks it, so every
//! structural problem (malformed or unknown field, wrong type, unknown `${var}`) is reported at
//! once, each naming the stack and the field. Graph rules (names, dependencies, cycles, templates)
//! are checked by [`crate::plan::build`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

/// The manifest format version this stackwave reads.
pub const SUPPORTED_VERSION: u32 = 1;

/// The one variable the manifest may use: `${environment}`.
pub const ENVIRONMENT_VARIABLE: &str = "environment";

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

impl ValidationIssue {
    pub fn new(
        stack: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ValidationIssue {
            stack: stack.map(str::to_string),
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
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
#[serde(untagged, deny_unknown_fields)]
pub enum ParamValue {
    /// A literal value. Numbers and booleans are accepted and passed as their text.
    Literal(#[schemars(with = "ScalarSchema")] String),
    /// `{output: "StackName.OutputKey"}`: implies a dependency on StackName.
    Output { output: String },
    /// `{ssm: "/parameter/name"}`: resolved at deploy time.
    Ssm { ssm: String },
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Restore every stack this run changed (default).
    #[default]
    Rollback,
    /// Keep what was deployed.
    Retain,
}

/// How stacks wait for each other (the manifest's `schedule`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Schedule {
    /// Stages are barriers: a stage starts once every stack of the stage before it has
    /// succeeded; inside a stage, a stack starts once its dependencies have (default).
    #[default]
    Stages,
    /// Only dependencies (`dependsOn`, `{output}`) order stacks, across stages too: a stack of a
    /// later stage starts as soon as its own dependencies are done. Stages become labels. An
    /// undeclared dependency (an SSM parameter an earlier stage writes, say) is no longer
    /// honoured: declare it with `dependsOn`.
    Dependencies,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Schedule::Stages => "stages",
            Schedule::Dependencies => "dependencies",
        }
    }
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Retain => "retain",
        }
    }
}

/// Values applied to every stack unless the stack sets its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    /// Tags on every stack; a stack's own tags win.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub tags: BTreeMap<String, String>,
    /// Capabilities of every stack that does not set its own.
    #[serde(default)]
    #[schemars(with = "Vec<CapabilitySchema>")]
    pub capabilities: Vec<String>,
    /// How long a stack may take before it is cancelled (1 to 10080; 60 when unset).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10080))]
    pub timeout_minutes: Option<u32>,
}

/// One CloudFormation stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackSpec {
    /// The CloudFormation stack name (may use `${environment}`).
    pub name: String,
    /// Path of the template, relative to the manifest.
    pub template: String,
    /// Template parameters: a literal, `{output: "Stack.Key"}` or `{ssm: "/name"}`.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamValue>,
    /// Explicit extra dependencies (stack names).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Stack tags, merged over the defaults' tags.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub tags: BTreeMap<String, String>,
    /// Capabilities; the defaults' when unset.
    #[serde(default)]
    #[schemars(with = "Option<Vec<CapabilitySchema>>")]
    pub capabilities: Option<Vec<String>>,
    /// How long this stack may take before it is cancelled (1 to 10080).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10080))]
    pub timeout_minutes: Option<u32>,
}

/// A stage: its stacks run after every stack of the stages before it has settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    pub stacks: Vec<StackSpec>,
}

/// A stackwave manifest, format v1: stages of CloudFormation stacks, deployed in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Format version; 1 when absent.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1))]
    pub version: Option<u32>,
    pub name: String,
    #[serde(default)]
    pub defaults: Defaults,
    /// What happens to the stacks this run changed when a stack fails.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// `stages` (the default: stages are barriers) or `dependencies` (only dependencies order
    /// stacks, across stages).
    #[serde(default)]
    pub schedule: Schedule,
    pub stages: Vec<Stage>,
}

/// JSON Schema helper: a scalar written in the manifest (string, number or boolean).
struct ScalarSchema;

impl schemars::JsonSchema for ScalarSchema {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// JSON Schema helper: one of [`CAPABILITIES`].
struct CapabilitySchema;

impl schemars::JsonSchema for CapabilitySchema {
    fn schema_name() -> Cow<'static, str> {
        "Capability".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "enum": CAPABILITIES })
    }
}

/// The CloudFormation capabilities a stack may acknowledge.
pub const CAPABILITIES: &[&str] = &[
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
];

/// The manifest's JSON Schema (draft 2020-12), generated from the types above. Published as
/// `schema/manifest.v1.schema.json`.
pub fn manifest_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Manifest);
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "title".into(),
            serde_json::Value::String("stackwave manifest v1".into()),
        );
    }
    value
}

/// Longest environment name: it becomes part of SSM parameter names, S3 keys and stack names.
pub const MAX_ENVIRONMENT_LEN: usize = 32;

/// Not an environment: `/stackwave/config/...` holds the installation's settings.
pub const RESERVED_ENVIRONMENT: &str = "config";

/// The SSM parameter where an installation (template.yaml, `StateMachineArnParameter`) records
/// its deploy state machine, under `/stackwave/<RESERVED_ENVIRONMENT>/`: the CLI finds an
/// installed stackwave there when no `--state-machine-arn` is given.
pub const INSTALLED_STATE_MACHINE_PARAMETER: &str = "/stackwave/config/state-machine-arn";

/// The SSM parameter where an installation (`ArtifactBucketParameter`) records its artifact
/// bucket: the CLI's default for `--bucket`.
pub const INSTALLED_BUCKET_PARAMETER: &str = "/stackwave/config/artifact-bucket";

/// What is wrong with `environment` as an environment name, and the fix; `None` for a valid
/// one: 1 to [`MAX_ENVIRONMENT_LEN`] letters, digits or hyphens, starting with a letter or
/// digit, and not [`RESERVED_ENVIRONMENT`]. The one rule, for `stackwave validate` and plan.
pub fn environment_issue(environment: &str) -> Option<(String, String)> {
    if environment == RESERVED_ENVIRONMENT {
        return Some((
            format!(
                "environment `{environment}` is reserved: /stackwave/{RESERVED_ENVIRONMENT}/ \
                 holds stackwave's own settings"
            ),
            "choose another environment name".to_string(),
        ));
    }
    let mut chars = environment.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if first_ok && rest_ok && environment.len() <= MAX_ENVIRONMENT_LEN {
        return None;
    }
    Some((
        format!(
            "`{environment}` is not a valid environment name: use 1 to {MAX_ENVIRONMENT_LEN} \
             letters, digits or hyphens, starting with a letter or digit"
        ),
        "use a name like `dev` or `prod-eu1`".to_string(),
    ))
}

/// Whether `environment` is a valid environment name ([`environment_issue`]).
pub fn is_valid_environment(environment: &str) -> bool {
    environment_issue(environment).is_none()
}

/// Replace every `${environment}` in `text`. Any other `${...}` (or an unterminated `${`) is an
/// error, returned as a message naming the variable.
pub fn substitute(text: &str, environment: &str) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len() + environment.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated `${{` in `{text}`"));
        };
        let var = &after[..end];
        if var == ENVIRONMENT_VARIABLE {
            out.push_str(environment);
        } else {
            return Err(format!(
                "unknown variable `${{{var}}}` in `{text}`; the only variable is `${{environment}}`"
            ));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse YAML or JSON text, substituting `${environment}` in every string. Every structural
/// problem (malformed YAML, unknown or mistyped field) is returned at once, each naming the
/// stack and field.
///
/// A valid environment name (letters, digits, hyphens) is substituted into the text before it
/// is parsed, as Sceptre renders its templating before YAML: so `dependsOn: [Net-${environment}]`
/// works unquoted. Any other `${var}` is left for the walker to report where it stands.
pub fn parse(text: &str, environment: &str) -> Result<Manifest, Vec<ValidationIssue>> {
    let substituted;
    let text = if is_valid_environment(environment) {
        substituted = text.replace("${environment}", environment);
        substituted.as_str()
    } else {
        text
    };
    let mut w = Walker {
        env: environment,
        issues: Vec::new(),
    };
    if let Some((message, fix)) = environment_issue(environment) {
        w.issues
            .push(ValidationIssue::new(None, "environment", message, fix));
    }
    let value = match load(text) {
        Ok(v) => v,
        Err(issue) => {
            w.issues.push(issue);
            return Err(w.issues);
        }
    };
    let manifest = w.manifest(&value);
    match manifest {
        Some(m) if w.issues.is_empty() => Ok(m),
        _ => Err(w.issues),
    }
}

/// Text to a generic value: YAML (which covers JSON); if YAML refuses a text that looks like
/// JSON, JSON's own parser is tried before reporting.
fn load(text: &str) -> Result<Value, ValidationIssue> {
    let yaml_err = match serde_yaml::from_str::<Value>(&quote_changed_numbers(text)) {
        Ok(mut v) => {
            return match v.apply_merge() {
                Ok(()) => Ok(v),
                Err(e) => Err(syntax_issue(&e.to_string(), None)),
            };
        }
        Err(e) => e,
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(&quote_changed_json_numbers(text)) {
            Ok(json) => {
                return serde_yaml::to_value(json).map_err(|e| syntax_issue(&e.to_string(), None))
            }
            Err(e) => {
                return Err(syntax_issue(
                    &format!("not valid JSON: {e}"),
                    Some((e.line(), e.column())),
                ))
            }
        }
    }
    let at = yaml_err.location().map(|l| (l.line(), l.column()));
    let mut issue = syntax_issue(&format!("not valid YAML: {yaml_err}"), at);
    // The error's line, or the one before it: a `${...}` in a flow collection.
    let suspect = |n: usize| {
        text.lines()
            .nth(n)
            .is_some_and(|l| l.contains("${") && (l.contains('[') || l.matches('{').count() > 1))
    };
    if at.is_some_and(|(l, _)| suspect(l.saturating_sub(1)) || suspect(l.saturating_sub(2))) {
        issue.fix = format!(
            "inside `[...]` or `{{...}}` quote values that use `${{environment}}`, e.g. \
             `dependsOn: [\"Network-${{environment}}\"]`; {}",
            issue.fix
        );
    }
    Err(issue)
}

/// Does this number, written as `text`, come back as written? YAML and JSON parsers read
/// `13.10` as 13.1, `1_000` or `0x1F` as their value, and an integer too long for 64 bits as a
/// float: a parameter would reach CloudFormation changed.
/// An integer too long even for 128 bits is refused by the YAML parser outright: it too is
/// kept as text.
fn number_changes(text: &str) -> bool {
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Number(n)) => n.to_string() != text,
        Ok(_) => false,
        Err(_) => text.parse::<f64>().is_ok(),
    }
}

/// The manifest's text with every plain YAML scalar that would be read as a number, but would
/// not come back exactly as written, put in single quotes: it stays the text the user wrote
/// (`EngineVersion: 13.10` reaches CloudFormation as `13.10`). Numbers that do come back as
/// written (`3`, `1.5`) stay numbers. A text the scanner refuses is returned as it is, for the
/// YAML parser to report.
fn quote_changed_numbers(text: &str) -> Cow<'_, str> {
    use yaml_rust2::scanner::{Scanner, TScalarStyle, TokenType};
    // Char ranges of the plain scalars to quote.
    let mut spans = Vec::new();
    let mut scanner = Scanner::new(text.chars());
    for token in scanner.by_ref() {
        let TokenType::Scalar(TScalarStyle::Plain, value) = &token.1 else {
            continue;
        };
        if value.contains('\n') {
            continue;
        }
        if number_changes(value) {
            spans.push((token.0.index(), value.chars().count(), value.clone()));
        }
    }
    if spans.is_empty() || scanner.get_error().is_some() {
        return Cow::Borrowed(text);
    }
    let bytes: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut out = String::with_capacity(text.len() + 2 * spans.len());
    let mut at = 0;
    for (start, len, value) in spans {
        let (Some(&from), Some(&to)) = (bytes.get(start), bytes.get(start + len)) else {
            return Cow::Borrowed(text);
        };
        // The scanner's position must hold the scalar exactly; anything else is left alone.
        if from < at || text.get(from..to) != Some(value.as_str()) {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[at..from]);
        out.push('\'');
        out.push_str(&value);
        out.push('\'');
        at = to;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// The JSON form of [`quote_changed_numbers`]: a number token outside strings that would not
/// come back as written becomes a JSON string of its text.
fn quote_changed_json_numbers(text: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    while let Some((i, c)) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        out.push(e);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '-' || c.is_ascii_digit() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+' | '-') {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let token = &text[i..end];
            if number_changes(token) {
                out.push('"');
                out.push_str(token);
                out.push('"');
                changed = true;
            } else {
                out.push_str(token);
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

fn syntax_issue(message: &str, at: Option<(usize, usize)>) -> ValidationIssue {
    let field = match at {
        Some((line, column)) => format!("line {line}, column {column}"),
        None => "manifest".to_string(),
    };
    ValidationIssue::new(
        None,
        field,
        message.to_string(),
        "correct the syntax there (YAML: indentation, `key: value` pairs, quotes; JSON: commas, \
         braces); other problems are reported once it parses",
    )
}

/// A short description of a value's type, for messages.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string (`{}`)", truncate(s, 60)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a tagged value ({})", t.tag),
    }
}

fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().count() <= max {
        Cow::Borrowed(s)
    } else {
        let cut: String = s.chars().take(max).collect();
        Cow::Owned(format!("{cut}..."))
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if close enough to be a likely typo; a candidate that
/// extends the word (or that the word extends, e.g. a missing `-${environment}` suffix) also
/// qualifies, and is preferred.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let cl = c.to_ascii_lowercase();
            let related = lower.len().min(cl.len()) >= 3
                && (cl.starts_with(&lower) || lower.starts_with(&cl));
            let d = if c.len().abs_diff(word.len()) <= limit {
                edit_distance(&lower, &cl)
            } else {
                usize::MAX
            };
            if d <= limit {
                Some((d, !related, c))
            } else if related {
                Some((limit + 1, false, c))
            } else {
                None
            }
        })
        .min_by_key(|(d, unrelated, c)| (*unrelated, *d, *c))
        .map(|(_, _, c)| c)
}

const MANIFEST_FIELDS: &[&str] = &[
    "version",
    "name",
    "defaults",
    "onFailure",
    "schedule",
    "stages",
];
const DEFAULTS_FIELDS: &[&str] = &["tags", "capabilities", "timeoutMinutes"];
const STAGE_FIELDS: &[&str] = &["name", "stacks"];
const STACK_FIELDS: &[&str] = &[
    "name",
    "template",
    "parameters",
    "dependsOn",
    "tags",
    "capabilities",
    "timeoutMinutes",
];

const PARAM_FIX: &str = "write a string (e.g. `\"1\"`), `{output: \"Stack.OutputKey\"}` or \
                         `{ssm: \"/parameter/name\"}`";

/// Walks the generic value, building the manifest and collecting every issue.
struct Walker<'e> {
    env: &'e str,
    issues: Vec<ValidationIssue>,
}

impl Walker<'_> {
    fn issue(&mut self, stack: Option<&str>, field: &str, message: String, fix: impl Into<String>) {
        self.issues
            .push(ValidationIssue::new(stack, field, message, fix));
    }

    /// The known fields of a mapping, in `allowed` order. Unknown and non-string keys are
    /// reported.
    fn fields<'v>(
        &mut self,
        map: &'v Mapping,
        allowed: &[&'static str],
        stack: Option<&str>,
        path: &str,
        what: &str,
    ) -> BTreeMap<&'static str, &'v Value> {
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                self.issue(
                    stack,
                    path_or(path, what),
                    format!("a key of {what} is {}, not a field name", kind(k)),
                    format!("use one of the fields: {}", allowed.join(", ")),
                );
                continue;
            };
            match allowed.iter().find(|a| **a == key) {
                Some(a) => {
                    out.insert(*a, v);
                }
                None => {
                    let hint = match closest(key, allowed.iter().copied()) {
                        Some(c) => format!("did you mean `{c}`? "),
                        None => String::new(),
                    };
                    self.issue(
                        stack,
                        &join(path, key),
                        format!("unknown field `{key}` in {what}"),
                        format!(
                            "{hint}remove it or correct its spelling; the fields of {what} are: {}",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        out
    }

    fn string(&mut self, v: &Value, stack: Option<&str>, path: &str, fix: &str) -> Option<String> {
        match v {
            Value::String(s) => self.subst(s, stack, path),
            other => {
                self.issue(
                    stack,
                    path,
                    format!("expected a string, found {}", kind(other)),
                    fix,
                );
                None
            }
        }
    }

    /// A string, number or boolean, as text.
    fn scalar(&mut self, v: &Value, stack: Option<&str>, path: &str, fix: &str) -> Option<String> {
        match v {
            Value::String(s) => self.subst(s, stack, path),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.issue(
                    stack,
                    path,
                    format!(
                        "expected a string, number or boolean, found {}",
                        kind(other)
                    ),
                    fix,
                );
                None
            }
        }
    }

    fn subst(&mut self, s: &str, stack: Option<&str>, path: &str) -> Option<String> {
        match substitute(s, self.env) {
            Ok(v) => Some(v),
            Err(message) => {
                self.issue(
                    stack,
                    path,
                    message,
                    "use `${environment}` (the execution's environment) or plain text",
                );
                None
            }
        }
    }

    fn mapping<'v>(
        &mut self,
        v: &'v Value,
        stack: Option<&str>,
        path: &str,
        fix: &str,
    ) -> Option<&'v Mapping> {
        match v {
            Value::Mapping(m) => Some(m),
            other => {
                self.issue(
                    stack,
                    path,
                    format!("expected a mapping, found {}", kind(other)),
                    fix,
                );
                None
            }
        }
    }

    fn sequence<'v>(
        &mut self,
        v: &'v Value,
        stack: Option<&str>,
        path: &str,
        fix: &str,
    ) -> Option<&'v [Value]> {
        match v {
            Value::Sequence(s) => Some(s),
            other => {
                self.issue(
                    stack,
                    path,
                    format!("expected a list, found {}", kind(other)),
                    fix,
                );
                None
            }
        }
    }

    fn string_list(
        &mut self,
        v: &Value,
        stack: Option<&str>,
        path: &str,
        fix: &str,
    ) -> Option<Vec<String>> {
        let items = self.sequence(v, stack, path, fix)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, stack, &format!("{path}[{i}]"), fix) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn minutes(&mut self, v: &Value, stack: Option<&str>, path: &str) -> Option<u32> {
        let fix = "write a whole number of minutes between 1 and 10080 (7 days), e.g. `timeoutMinutes: 60`";
        match v.as_u64() {
            Some(n) => match u32::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.issue(stack, path, format!("{n} minutes is too large"), fix);
                    None
                }
            },
            None => {
                self.issue(
                    stack,
                    path,
                    format!("expected a whole number of minutes, found {}", kind(v)),
                    fix,
                );
                None
            }
        }
    }

    fn tags(&mut self, v: &Value, stack: Option<&str>, path: &str) -> BTreeMap<String, String> {
        let fix = "write tags as a mapping of names to text, e.g. `tags: {Team: payments}`";
        let mut out = BTreeMap::new();
        let Some(map) = self.mapping(v, stack, path, fix) else {
            return out;
        };
        for (k, val) in map {
            let Some(key) = k.as_str() else {
                self.issue(
                    stack,
                    path,
                    format!("a tag name is {}, not text", kind(k)),
                    fix,
                );
                continue;
            };
            let key = match self.subst(key, stack, &join(path, key)) {
                Some(k) => k,
                None => continue,
            };
            if let Some(value) = self.scalar(val, stack, &join(path, &key), fix) {
                out.insert(key, value);
            }
        }
        out
    }

    fn capabilities(&mut self, v: &Value, stack: Option<&str>, path: &str) -> Option<Vec<String>> {
        let fix = format!(
            "write a list of capabilities, e.g. `[CAPABILITY_NAMED_IAM]`; accepted: {}",
            CAPABILITIES.join(", ")
        );
        self.string_list(v, stack, path, &fix)
    }

    fn manifest(&mut self, root: &Value) -> Option<Manifest> {
        let map = match root {
            Value::Mapping(m) => m,
            Value::Null => {
                self.issue(
                    None,
                    "manifest",
                    "the manifest is empty".into(),
                    "write at least `name:` and `stages:` (see the README)",
                );
                return None;
            }
            other => {
                self.issue(
                    None,
                    "manifest",
                    format!("the manifest must be a mapping, found {}", kind(other)),
                    "write at least `name:` and `stages:` (see the README)",
                );
                return None;
            }
        };
        let f = self.fields(map, MANIFEST_FIELDS, None, "", "the manifest");

        let version = match f.get("version") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(1) => Some(SUPPORTED_VERSION),
                _ => {
                    self.issue(
                        None,
                        "version",
                        format!(
                            "unsupported manifest version {}; this stackwave supports version \
                             {SUPPORTED_VERSION}",
                            match v {
                                Value::Number(n) => n.to_string(),
                                other => kind(other),
                            }
                        ),
                        format!("write `version: {SUPPORTED_VERSION}` or remove the field"),
                    );
                    None
                }
            },
        };

        let name = match f.get("name") {
            None | Some(Value::Null) => {
                self.issue(
                    None,
                    "name",
                    "missing required field `name`".into(),
                    "add `name: <project>` at the top of the manifest",
                );
                None
            }
            Some(v) => self.string(
                v,
                None,
                "name",
                "write the project's name, e.g. `name: bellyfed`",
            ),
        };

        let defaults = match f.get("defaults") {
            None | Some(Value::Null) => Some(Defaults::default()),
            Some(v) => self.defaults(v),
        };

        let on_failure = match f.get("onFailure") {
            None | Some(Value::Null) => Some(OnFailure::default()),
            Some(Value::String(s)) if s == "rollback" => Some(OnFailure::Rollback),
            Some(Value::String(s)) if s == "retain" => Some(OnFailure::Retain),
            Some(v) => {
                self.issue(
                    None,
                    "onFailure",
                    format!("expected `rollback` or `retain`, found {}", kind(v)),
                    "write `onFailure: rollback` (the default) or `onFailure: retain`",
                );
                None
            }
        };

        let schedule = match f.get("schedule") {
            None | Some(Value::Null) => Some(Schedule::default()),
            Some(Value::String(s)) if s == "stages" => Some(Schedule::Stages),
            Some(Value::String(s)) if s == "dependencies" => Some(Schedule::Dependencies),
            Some(v) => {
                self.issue(
                    None,
                    "schedule",
                    format!("expected `stages` or `dependencies`, found {}", kind(v)),
                    "write `schedule: stages` (the default: each stage waits for the one before) or \
                     `schedule: dependencies` (a stack waits only for its own dependencies)",
                );
                None
            }
        };

        let stages = match f.get("stages") {
            None | Some(Value::Null) => {
                self.issue(
                    None,
                    "stages",
                    "missing required field `stages`".into(),
                    "add `stages:` with a list of stages, each with a `name` and `stacks`",
                );
                None
            }
            Some(v) => self.stages(v),
        };

        Some(Manifest {
            version,
            name: name?,
            defaults: defaults?,
            on_failure: on_failure?,
            schedule: schedule?,
            stages: stages?,
        })
    }

    fn defaults(&mut self, v: &Value) -> Option<Defaults> {
        let map = self.mapping(
            v,
            None,
            "defaults",
            "write `defaults:` as a mapping with `tags`, `capabilities`, `timeoutMinutes`",
        )?;
        let f = self.fields(map, DEFAULTS_FIELDS, None, "defaults", "defaults");
        let mut d = Defaults::default();
        let mut ok = true;
        if let Some(v) = f.get("tags").filter(|v| !v.is_null()) {
            let before = self.issues.len();
            d.tags = self.tags(v, None, "defaults.tags");
            ok &= self.issues.len() == before;
        }
        if let Some(v) = f.get("capabilities").filter(|v| !v.is_null()) {
            match self.capabilities(v, None, "defaults.capabilities") {
                Some(c) => d.capabilities = c,
                None => ok = false,
            }
        }
        if let Some(v) = f.get("timeoutMinutes").filter(|v| !v.is_null()) {
            match self.minutes(v, None, "defaults.timeoutMinutes") {
                Some(m) => d.timeout_minutes = Some(m),
                None => ok = false,
            }
        }
        ok.then_some(d)
    }

    fn stages(&mut self, v: &Value) -> Option<Vec<Stage>> {
        let items = self.sequence(
            v,
            None,
            "stages",
            "write `stages:` as a list, each item with a `name` and `stacks`",
        )?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.stage(item, &format!("stages[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn stage(&mut self, v: &Value, path: &str) -> Option<Stage> {
        let map = self.mapping(
            v,
            None,
            path,
            "write each stage as a mapping with `name` and `stacks`",
        )?;
        let f = self.fields(map, STAGE_FIELDS, None, path, "a stage");
        let name = match f.get("name") {
            None | Some(Value::Null) => {
                self.issue(
                    None,
                    &join(path, "name"),
                    "missing required field `name` of the stage".into(),
                    "add `name: <stage>` to the stage, e.g. `name: infrastructure`",
                );
                None
            }
            Some(v) => self.string(
                v,
                None,
                &join(path, "name"),
                "write the stage's name as text",
            ),
        };
        let stacks_path = join(path, "stacks");
        let stacks = match f.get("stacks") {
            None | Some(Value::Null) => {
                self.issue(
                    None,
                    &stacks_path,
                    "missing required field `stacks` of the stage".into(),
                    "add `stacks:` with a list of stacks, each with a `name` and `template`",
                );
                None
            }
            Some(v) => {
                let fix = "write `stacks:` as a list, each item with a `name` and `template`";
                match self.sequence(v, None, &stacks_path, fix) {
                    None => None,
                    Some(items) => {
                        let mut out = Vec::with_capacity(items.len());
                        let mut ok = true;
                        for (j, item) in items.iter().enumerate() {
                            match self.stack(item, &format!("{stacks_path}[{j}]")) {
                                Some(s) => out.push(s),
                                None => ok = false,
                            }
                        }
                        ok.then_some(out)
                    }
                }
            }
        };
        Some(Stage {
            name: name?,
            stacks: stacks?,
        })
    }

    fn stack(&mut self, v: &Value, path: &str) -> Option<StackSpec> {
        let map = self.mapping(
            v,
            None,
            path,
            "write each stack as a mapping with `name` and `template`",
        )?;
        // Name the stack in every issue, when it has a readable name.
        let label: Option<String> = map
            .get("name")
            .and_then(Value::as_str)
            .map(|n| substitute(n, self.env).unwrap_or_else(|_| n.to_string()));
        let stack = label.as_deref();
        let f = self.fields(map, STACK_FIELDS, stack, path, "a stack");

        let name = match f.get("name") {
            None | Some(Value::Null) => {
                self.issue(
                    None,
                    &join(path, "name"),
                    "missing required field `name` of the stack".into(),
                    "add `name: <CloudFormation stack name>`, e.g. `name: NetworkStack-${environment}`",
                );
                None
            }
            Some(v) => self.string(
                v,
                stack,
                &join(path, "name"),
                "write the stack's name as text",
            ),
        };
        let template = match f.get("template") {
            None | Some(Value::Null) => {
                self.issue(
                    stack,
                    &join(path, "template"),
                    "missing required field `template`".into(),
                    "add `template: <path relative to the manifest>`, e.g. `template: templates/network.yaml`",
                );
                None
            }
            Some(v) => self.string(
                v,
                stack,
                &join(path, "template"),
                "write the template's path relative to the manifest, e.g. `templates/network.yaml`",
            ),
        };
        let mut ok = true;
        let mut parameters = BTreeMap::new();
        if let Some(v) = f.get("parameters").filter(|v| !v.is_null()) {
            let ppath = join(path, "parameters");
            match self.mapping(
                v,
                stack,
                &ppath,
                "write parameters as a mapping of names to values",
            ) {
                None => ok = false,
                Some(map) => {
                    for (k, val) in map {
                        let Some(key) = k.as_str() else {
                            self.issue(
                                stack,
                                &ppath,
                                format!("a parameter name is {}, not text", kind(k)),
                                "use the template's parameter names (letters and digits)",
                            );
                            ok = false;
                            continue;
                        };
                        let field = join(&ppath, key);
                        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                            self.issue(
                                stack,
                                &field,
                                format!("`{key}` is not a valid CloudFormation parameter name: only letters and digits are allowed"),
                                "use the parameter's name as declared in the template",
                            );
                            ok = false;
                        }
                        match self.param(val, stack, &field) {
                            Some(p) => {
                                parameters.insert(key.to_string(), p);
                            }
                            None => ok = false,
                        }
                    }
                }
            }
        }
        let mut depends_on = Vec::new();
        if let Some(v) = f.get("dependsOn").filter(|v| !v.is_null()) {
            match self.string_list(
                v,
                stack,
                &join(path, "dependsOn"),
                "write `dependsOn` as a list of stack names, e.g. `dependsOn: [\"NetworkStack-${environment}\"]`",
            ) {
                Some(d) => depends_on = d,
                None => ok = false,
            }
        }
        let mut tags = BTreeMap::new();
        if let Some(v) = f.get("tags").filter(|v| !v.is_null()) {
            let before = self.issues.len();
            tags = self.tags(v, stack, &join(path, "tags"));
            ok &= self.issues.len() == before;
        }
        let mut capabilities = None;
        if let Some(v) = f.get("capabilities").filter(|v| !v.is_null()) {
            match self.capabilities(v, stack, &join(path, "capabilities")) {
                Some(c) => capabilities = Some(c),
                None => ok = false,
            }
        }
        let mut timeout_minutes = None;
        if let Some(v) = f.get("timeoutMinutes").filter(|v| !v.is_null()) {
            match self.minutes(v, stack, &join(path, "timeoutMinutes")) {
                Some(m) => timeout_minutes = Some(m),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(StackSpec {
            name: name?,
            template: template?,
            parameters,
            depends_on,
            tags,
            capabilities,
            timeout_minutes,
        })
    }

    fn param(&mut self, v: &Value, stack: Option<&str>, path: &str) -> Option<ParamValue> {
        match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => self
                .scalar(v, stack, path, PARAM_FIX)
                .map(ParamValue::Literal),
            Value::Null => {
                self.issue(
                    stack,
                    path,
                    "the parameter has no value".into(),
                    format!("{PARAM_FIX}; for an empty string write `\"\"`"),
                );
                None
            }
            Value::Sequence(_) => {
                self.issue(
                    stack,
                    path,
                    "a list is not a parameter value".into(),
                    "for a CommaDelimitedList parameter write one string, e.g. `\"a,b,c\"`",
                );
                None
            }
            Value::Tagged(t) => {
                self.issue(
                    stack,
                    path,
                    format!("a tagged value ({}) is not a parameter value", t.tag),
                    PARAM_FIX,
                );
                None
            }
            Value::Mapping(m) => {
                let keys: Vec<Option<&str>> = m.keys().map(Value::as_str).collect();
                match (keys.as_slice(), m.values().next()) {
                    ([Some(k @ ("output" | "ssm"))], Some(inner)) => {
                        let field = join(path, k);
                        let text = self.string(inner, stack, &field, PARAM_FIX)?;
                        Some(if *k == "output" {
                            ParamValue::Output { output: text }
                        } else {
                            ParamValue::Ssm { ssm: text }
                        })
                    }
                    ([], _) => {
                        self.issue(
                            stack,
                            path,
                            "an empty mapping is not a parameter value".into(),
                            PARAM_FIX,
                        );
                        None
                    }
                    _ => {
                        let names: Vec<String> = m
                            .keys()
                            .map(|k| {
                                k.as_str()
                                    .map(|s| format!("`{s}`"))
                                    .unwrap_or_else(|| kind(k))
                            })
                            .collect();
                        self.issue(
                            stack,
                            path,
                            format!(
                                "a parameter mapping must have exactly one key, `output` or `ssm`; found {}",
                                names.join(", ")
                            ),
                            PARAM_FIX,
                        );
                        None
                    }
                }
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn path_or<'a>(path: &'a str, what: &'a str) -> &'a str {
    if path.is_empty() {
        what
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: bellyfed
defaults:
  tags: {Project: bellyfed, Environment: "${environment}", ManagedBy: stackwave}
  capabilities: [CAPABILITY_NAMED_IAM]
  timeoutMinutes: 60
stages:
  - name: infrastructure
    stacks:
      - name: BellyfedNetworkStack-${environment}
        template: templates/network.yaml
      - name: BellyfedEcsInfraStack-${environment}
        template: templates/ecs-infra.yaml
        parameters:
          VpcId: {output: "BellyfedNetworkStack-${environment}.VpcId"}   # implies a dependency
        dependsOn: []            # explicit extra dependencies (stack names)
  - name: application
    stacks:
      - name: BellyfedTypesenseServiceStack-${environment}
        template: templates/typesense-service.yaml
        parameters:
          TypesenseImage: {ssm: "/bellyfed/${environment}/typesense/image-uri"}
          DesiredCount: "1"
"#;

    fn issues(text: &str) -> Vec<ValidationIssue> {
        match parse(text, "dev") {
            Ok(m) => panic!("expected issues, parsed {m:?}"),
            Err(i) => i,
        }
    }

    fn find<'a>(issues: &'a [ValidationIssue], field: &str) -> &'a ValidationIssue {
        issues
            .iter()
            .find(|i| i.field == field)
            .unwrap_or_else(|| panic!("no issue at {field}: {issues:#?}"))
    }

    #[test]
    fn parses_the_example_and_substitutes_the_environment() {
        let m = parse(EXAMPLE, "dev").expect("valid");
        assert_eq!(m.name, "bellyfed");
        assert_eq!(m.version, None);
        assert_eq!(m.on_failure, OnFailure::Rollback);
        assert_eq!(
            m.defaults.tags.get("Environment").map(String::as_str),
            Some("dev")
        );
        assert_eq!(
            m.defaults.capabilities,
            vec!["CAPABILITY_NAMED_IAM".to_string()]
        );
        assert_eq!(m.defaults.timeout_minutes, Some(60));
        assert_eq!(m.stages.len(), 2);
        let ecs = &m.stages[0].stacks[1];
        assert_eq!(ecs.name, "BellyfedEcsInfraStack-dev");
        assert_eq!(
            ecs.parameters.get("VpcId"),
            Some(&ParamValue::Output {
                output: "BellyfedNetworkStack-dev.VpcId".into()
            })
        );
        assert!(ecs.depends_on.is_empty());
        let ts = &m.stages[1].stacks[0];
        assert_eq!(
            ts.parameters.get("TypesenseImage"),
            Some(&ParamValue::Ssm {
                ssm: "/bellyfed/dev/typesense/image-uri".into()
            })
        );
        assert_eq!(
            ts.parameters.get("DesiredCount"),
            Some(&ParamValue::Literal("1".into()))
        );
    }

    #[test]
    fn json_gives_the_same_manifest_as_yaml() {
        let yaml = parse(EXAMPLE, "prod").expect("yaml");
        let json_text = serde_json::to_string_pretty(
            &serde_yaml::from_str::<serde_json::Value>(EXAMPLE).expect("as json"),
        )
        .expect("json text");
        let json = parse(&json_text, "prod").expect("json");
        assert_eq!(yaml, json);
        // JSON indented with tabs, which YAML refuses in block context
        let tabbed = "{\n\t\"name\": \"x\",\n\t\"stages\": [{\"name\": \"a\", \"stacks\": [{\"name\": \"S-${environment}\", \"template\": \"t.yaml\"}]}]\n}";
        let m = parse(tabbed, "dev").expect("tabbed json");
        assert_eq!(m.stages[0].stacks[0].name, "S-dev");
    }

    #[test]
    fn non_string_scalars_become_text() {
        let m = parse(
            "name: x\nstages:\n- name: a\n  stacks:\n  - name: S\n    template: t.yaml\n    parameters: {Count: 3, Ratio: 1.5, On: true}\n    tags: {Version: 2}\n",
            "dev",
        )
        .expect("valid");
        let p = &m.stages[0].stacks[0].parameters;
        assert_eq!(p.get("Count"), Some(&ParamValue::Literal("3".into())));
        assert_eq!(p.get("Ratio"), Some(&ParamValue::Literal("1.5".into())));
        assert_eq!(p.get("On"), Some(&ParamValue::Literal("true".into())));
        assert_eq!(
            m.stages[0].stacks[0]
                .tags
                .get("Version")
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn numbers_reach_cloudformation_exactly_as_written() {
        let yaml = "name: x\nstages:\n- name: a\n  stacks:\n  - name: S\n    template: t.yaml\n    timeoutMinutes: 30\n    parameters:\n      EngineVersion: 13.10\n      Long: 123456789012345678901234567890\n      Hex: 0x1F\n      Sep: 1_000\n      Exp: 1e3\n      Neg: -0.50\n      Count: 3\n      Ratio: 1.5\n      Quoted: \"13.10\"\n      Text: v13.10\n    tags: {Release: 2.10, Build: 007}\n";
        // The JSON written by hand, with the numbers as the user typed them.
        let json_text = "{\"name\": \"x\", \"stages\": [{\"name\": \"a\", \"stacks\": [{\"name\": \"S\",\n\t\"template\": \"t.yaml\", \"parameters\": {\"EngineVersion\": 13.10, \"Long\": 123456789012345678901234567890, \"Neg\": -0.50, \"Count\": 3, \"Ratio\": 1.5, \"Text\": \"a 13.10 \\\" 2.0\"}}]}]}";
        let m = parse(yaml, "dev").expect("valid yaml");
        let s = &m.stages[0].stacks[0];
        let lit = |k: &str| match s.parameters.get(k) {
            Some(ParamValue::Literal(v)) => v.clone(),
            other => panic!("{k}: {other:?}"),
        };
        for (k, v) in [
            ("EngineVersion", "13.10"),
            ("Long", "123456789012345678901234567890"),
            ("Hex", "0x1F"),
            ("Sep", "1_000"),
            ("Exp", "1e3"),
            ("Neg", "-0.50"),
            ("Count", "3"),
            ("Ratio", "1.5"),
            ("Quoted", "13.10"),
            ("Text", "v13.10"),
        ] {
            assert_eq!(lit(k), v, "parameter {k}");
        }
        assert_eq!(s.tags.get("Release").map(String::as_str), Some("2.10"));
        assert_eq!(s.tags.get("Build").map(String::as_str), Some("007"));
        assert_eq!(s.timeout_minutes, Some(30));

        // Tab-indented JSON goes through JSON's own parser: the same rule holds there.
        let m = parse(json_text, "dev").expect("valid json");
        let s = &m.stages[0].stacks[0];
        for (k, v) in [
            ("EngineVersion", "13.10"),
            ("Long", "123456789012345678901234567890"),
            ("Neg", "-0.50"),
            ("Count", "3"),
            ("Ratio", "1.5"),
            ("Text", "a 13.10 \" 2.0"),
        ] {
            assert_eq!(
                s.parameters.get(k),
                Some(&ParamValue::Literal(v.into())),
                "json parameter {k}"
            );
        }
    }

    #[test]
    fn every_structural_problem_is_listed_at_once() {
        let text = r#"
name: x
colour: blue
stages:
  - name: a
    stacks:
      - name: Net-${environment}
        template: net.yaml
        dependson: [Other]
      - name: Other
        template: other.yaml
  - name: b
    stacks:
      - name: App-${environment}
        template: app.yaml
        parameters:
          VpcId: [a, b]
          Subnets: {output: "Net.Subnets", ssm: "/x"}
          Secret: {vault: "/x"}
          Empty:
        timeoutMinutes: soon
"#;
        let all = issues(text);
        assert_eq!(all.len(), 7, "{all:#?}");
        let colour = find(&all, "colour");
        assert_eq!(colour.stack, None);
        assert!(colour.message.contains("unknown field `colour`"));
        assert!(colour
            .fix
            .contains("version, name, defaults, onFailure, schedule, stages"));

        let dep = find(&all, "stages[0].stacks[0].dependson");
        assert_eq!(dep.stack.as_deref(), Some("Net-dev"));
        assert!(dep.message.contains("unknown field `dependson`"));
        assert!(dep.fix.contains("did you mean `dependsOn`?"), "{}", dep.fix);

        let vpc = find(&all, "stages[1].stacks[0].parameters.VpcId");
        assert_eq!(vpc.stack.as_deref(), Some("App-dev"));
        assert!(vpc.message.contains("a list is not a parameter value"));
        assert!(vpc.fix.contains("\"a,b,c\""));

        let subnets = find(&all, "stages[1].stacks[0].parameters.Subnets");
        assert!(
            subnets.message.contains("exactly one key"),
            "{}",
            subnets.message
        );
        assert!(subnets.message.contains("`output`, `ssm`"));

        let secret = find(&all, "stages[1].stacks[0].parameters.Secret");
        assert!(secret.message.contains("`vault`"));
        assert!(secret.fix.contains("{output: \"Stack.OutputKey\"}"));

        let empty = find(&all, "stages[1].stacks[0].parameters.Empty");
        assert!(empty.message.contains("no value"));

        let t = find(&all, "stages[1].stacks[0].timeoutMinutes");
        assert_eq!(t.stack.as_deref(), Some("App-dev"));
        assert!(t.message.contains("whole number of minutes"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let all = issues(
            "name: [x]\nonFailure: explode\ndefaults: {tags: [a], capabilities: CAPABILITY_IAM, timeoutMinutes: -5}\nstages:\n- name: a\n  stacks:\n  - name: S\n    template: 7\n    dependsOn: Other\n    timeoutMinutes: soon\n    capabilities: [1]\n",
        );
        assert!(find(&all, "name")
            .message
            .contains("expected a string, found a list"));
        assert!(find(&all, "onFailure")
            .message
            .contains("`rollback` or `retain`"));
        assert!(find(&all, "defaults.tags")
            .message
            .contains("expected a mapping"));
        assert!(find(&all, "defaults.capabilities")
            .message
            .contains("expected a list"));
        assert!(find(&all, "defaults.timeoutMinutes")
            .message
            .contains("whole number"));
        let t = find(&all, "stages[0].stacks[0].template");
        assert_eq!(t.stack.as_deref(), Some("S"));
        assert!(t.message.contains("found a number (7)"));
        let d = find(&all, "stages[0].stacks[0].dependsOn");
        assert!(d.message.contains("expected a list"));
        assert!(d.fix.contains("dependsOn: ["));
        assert!(find(&all, "stages[0].stacks[0].timeoutMinutes")
            .message
            .contains("`soon`"));
        assert!(find(&all, "stages[0].stacks[0].capabilities[0]")
            .message
            .contains("expected a string"));
        assert_eq!(all.len(), 9, "{all:#?}");
    }

    #[test]
    fn missing_required_fields() {
        let all = issues("stages:\n- stacks:\n  - template: t.yaml\n  - name: B\n");
        assert!(find(&all, "name")
            .message
            .contains("missing required field `name`"));
        assert!(find(&all, "stages[0].name").message.contains("missing"));
        let n = find(&all, "stages[0].stacks[0].name");
        assert_eq!(n.stack, None);
        let t = find(&all, "stages[0].stacks[1].template");
        assert_eq!(t.stack.as_deref(), Some("B"));
        assert!(t.fix.contains("templates/network.yaml"));
        let all = issues("name: x\n");
        assert!(find(&all, "stages")
            .message
            .contains("missing required field `stages`"));
        assert!(issues("").iter().any(|i| i.message.contains("empty")));
        assert!(issues("- a\n- b\n")[0]
            .message
            .contains("must be a mapping"));
    }

    #[test]
    fn malformed_yaml_is_one_issue_with_line_and_column() {
        let all = issues("name: x\nstages:\n  - name: a\n   stacks: [\n");
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(all[0].field.starts_with("line "), "{}", all[0].field);
        assert!(all[0].field.contains(", column "));
        assert!(all[0].message.contains("not valid YAML"));
        let all = issues("{\"name\": \"x\",, }");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].field, "line 1, column 14");
        assert!(all[0].message.contains("not valid JSON"));
    }

    #[test]
    fn unquoted_unknown_variable_in_a_flow_list_gets_a_hint() {
        // `${environment}` is substituted before parsing; any other `${...}` inside `[...]`
        // breaks the YAML, and the fix says to quote it.
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - name: A\n    template: t.yaml\n    dependsOn: [Net-${region}]\n",
        );
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(
            all[0]
                .fix
                .contains("quote values that use `${environment}`"),
            "{all:#?}"
        );
    }

    #[test]
    fn variables_other_than_environment_are_issues() {
        let all = issues(
            "name: x-${region}\nstages:\n- name: a\n  stacks:\n  - name: S-${environment\n    template: t.yaml\n    parameters: {A: \"${account}\"}\n",
        );
        let n = find(&all, "name");
        assert!(
            n.message.contains("unknown variable `${region}`"),
            "{}",
            n.message
        );
        assert!(n.fix.contains("${environment}"));
        assert!(find(&all, "stages[0].stacks[0].name")
            .message
            .contains("unterminated"));
        assert!(find(&all, "stages[0].stacks[0].parameters.A")
            .message
            .contains("`${account}`"));
        assert_eq!(
            substitute("a-${environment}-${environment}", "dev"),
            Ok("a-dev-dev".into())
        );
        assert_eq!(substitute("plain $ {x}", "dev"), Ok("plain $ {x}".into()));
    }

    #[test]
    fn environment_names_are_checked() {
        let long = "a".repeat(MAX_ENVIRONMENT_LEN + 1);
        for bad in ["", "-dev", "dev_1", "dév", "a b", long.as_str()] {
            let all = parse(EXAMPLE, bad).expect_err(bad);
            let e = find(&all, "environment");
            assert!(e.message.contains("not a valid environment name"), "{bad}");
        }
        // The same rule as plan's: `stackwave validate` refuses what plan refuses.
        let all = parse(EXAMPLE, "config").expect_err("reserved");
        assert!(find(&all, "environment").message.contains("is reserved"));
        assert!(parse(EXAMPLE, &"a".repeat(MAX_ENVIRONMENT_LEN)).is_ok());
        for good in ["dev", "prod-eu1", "1a", "Dev-2"] {
            assert!(parse(EXAMPLE, good).is_ok(), "{good}");
        }
    }

    #[test]
    fn version_must_be_one() {
        let base = "name: x\nstages:\n- name: a\n  stacks:\n  - {name: S, template: t.yaml}\n";
        assert_eq!(
            parse(&format!("version: 1\n{base}"), "dev")
                .expect("v1")
                .version,
            Some(1)
        );
        assert_eq!(parse(base, "dev").expect("absent").version, None);
        for v in ["2", "\"1\"", "1.5"] {
            let all = issues(&format!("version: {v}\n{base}"));
            let i = find(&all, "version");
            assert!(i.message.contains("supports version 1"), "{}", i.message);
            assert!(i.fix.contains("version: 1"));
        }
    }

    #[test]
    fn invalid_parameter_names_are_issues() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - name: S\n    template: t.yaml\n    parameters: {Vpc-Id: a}\n",
        );
        assert!(find(&all, "stages[0].stacks[0].parameters.Vpc-Id")
            .message
            .contains("only letters and digits"));
    }

    #[test]
    fn on_failure_and_yaml_merge_keys() {
        let m = parse(
            "name: x\nonFailure: retain\nstages:\n- name: a\n  stacks:\n  - &base {name: A, template: t.yaml, timeoutMinutes: 5}\n  - <<: *base\n    name: B\n",
            "dev",
        )
        .expect("valid");
        assert_eq!(m.on_failure, OnFailure::Retain);
        assert_eq!(m.schedule, Schedule::Stages, "stages by default");
        assert_eq!(m.stages[0].stacks[1].name, "B");
        assert_eq!(m.stages[0].stacks[1].timeout_minutes, Some(5));
    }

    #[test]
    fn schedule_is_stages_or_dependencies() {
        let m = parse(
            "name: x\nschedule: dependencies\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml}\n",
            "dev",
        )
        .expect("valid");
        assert_eq!(m.schedule, Schedule::Dependencies);
        let all = issues("name: x\nschedule: waves\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml}\n");
        let text = render_issues(&all);
        assert!(
            text.contains("schedule") && text.contains("`dependencies`"),
            "{text}"
        );
    }

    #[test]
    fn render_names_stack_field_and_fix() {
        let all = issues("name: x\nstages:\n- name: a\n  stacks:\n  - name: S\n    template: t.yaml\n    colour: red\n");
        let text = render_issues(&all);
        assert!(
            text.starts_with(
                "- stack S, stages[0].stacks[0].colour: unknown field `colour` in a stack. Fix: "
            ),
            "{text}"
        );
    }

    #[test]
    fn closest_suggests_only_near_words() {
        assert_eq!(
            closest("dependson", STACK_FIELDS.iter().copied()),
            Some("dependsOn")
        );
        assert_eq!(
            closest("tempalte", STACK_FIELDS.iter().copied()),
            Some("template")
        );
        assert_eq!(closest("colour", STACK_FIELDS.iter().copied()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    /// The committed schema is what the types generate. `UPDATE_SCHEMA=1` rewrites it.
    #[test]
    fn committed_schema_matches_the_types() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schema/manifest.v1.schema.json"
        );
        let generated = manifest_schema();
        if std::env::var("UPDATE_SCHEMA").as_deref() == Ok("1") {
            let text =
                serde_json::to_string_pretty(&sorted(&generated)).expect("schema json") + "\n";
            std::fs::write(path, text).expect("write schema");
        }
        let committed: serde_json::Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        assert!(
            committed == generated,
            "schema/manifest.v1.schema.json is out of date: run `UPDATE_SCHEMA=1 cargo test -p stackwave-core committed_schema`"
        );
        assert_eq!(generated["title"], "stackwave manifest v1");
        assert_eq!(generated["additionalProperties"], false);
        assert!(generated["required"]
            .as_array()
            .is_some_and(|r| r.contains(&"stages".into())));
    }

    /// Keys sorted at every level, so the committed file is stable whatever map order serde_json
    /// was built with.
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod substitution_before_parsing {
    use super::*;

    #[test]
    fn an_unquoted_environment_in_a_flow_sequence_parses() {
        let text = "name: x\nstages:\n  - name: s\n    stacks:\n      - name: A-${environment}\n        template: t.yaml\n      - name: B-${environment}\n        template: t.yaml\n        dependsOn: [A-${environment}]\n";
        let m = parse(text, "dev").expect("parses");
        assert_eq!(m.stages[0].stacks[1].depends_on, vec!["A-dev".to_string()]);
    }

    #[test]
    fn an_unknown_variable_is_still_reported() {
        let text = "name: x\nstages:\n  - name: s\n    stacks:\n      - name: A-${region}\n        template: t.yaml\n";
        let issues = parse(text, "dev").expect_err("unknown variable");
        assert!(
            issues.iter().any(|i| i.message.contains("${region}")),
            "{issues:?}"
        );
    }
}
