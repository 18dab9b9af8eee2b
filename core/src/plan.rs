//! The plan: stages in order, each split into waves by intra-stage dependencies.
//!
//! [`build`] validates a parsed manifest (names, templates, dependencies, cycles, limits) and
//! lists every problem at once; a valid manifest becomes a [`Plan`]. Inside a stage a stack's
//! wave is the length of the longest chain of same-stage dependencies below it, so a wave's
//! stacks only need the waves before it (and the stages before it).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::io::{StageRef, WaveRef};
use crate::manifest::{
    closest, environment_issue, Manifest, OnFailure, ParamValue, StackSpec, ValidationIssue,
    CAPABILITIES, SUPPORTED_VERSION,
};

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
    /// The parameters whose `{ssm}` is a SecureString, each checked by the plan function to go
    /// into a `NoEcho` template parameter (`crate::secret`). deploy-stack refuses any other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_parameters: Vec<String>,
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
    /// The manifest's `schedule`: with `dependencies`, the first stage's scheduling step
    /// schedules every stack of the plan, across stages.
    #[serde(default)]
    pub schedule: crate::manifest::Schedule,
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
                    .map(|(i, w)| WaveRef {
                        index: i as u32,
                        stacks: w.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// The longest CloudFormation stack name.
pub const MAX_STACK_NAME_LEN: usize = 128;
/// The longest `timeoutMinutes`: 7 days.
pub const MAX_TIMEOUT_MINUTES: u32 = 10080;
/// CloudFormation's limit on tags per stack.
pub const MAX_TAGS: usize = 50;
/// CloudFormation's limit of parameters per stack.
pub const MAX_PARAMETERS: usize = 200;

/// Why a string is not a valid CloudFormation stack name (`^[A-Za-z][A-Za-z0-9-]*$`, at most
/// 128 characters), or `None` when it is one.
pub fn stack_name_problem(name: &str) -> Option<String> {
    let Some(first) = name.chars().next() else {
        return Some("the stack name is empty".into());
    };
    if name.chars().count() > MAX_STACK_NAME_LEN {
        return Some(format!(
            "`{name}` is not a valid CloudFormation stack name: it is {} characters long, the \
             limit is {MAX_STACK_NAME_LEN}",
            name.chars().count()
        ));
    }
    if !first.is_ascii_alphabetic() {
        return Some(format!(
            "`{name}` is not a valid CloudFormation stack name: it must start with a letter, not \
             `{first}`"
        ));
    }
    let mut bad: Vec<char> = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        .collect();
    bad.dedup();
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|c| format!("`{c}`")).collect();
        return Some(format!(
            "`{name}` is not a valid CloudFormation stack name: it contains {}; only letters, \
             digits and hyphens are allowed",
            list.join(", ")
        ));
    }
    None
}

const STACK_NAME_FIX: &str = "use letters, digits and hyphens only, starting with a letter, at \
                              most 128 characters, e.g. `NetworkStack-${environment}`";

const CYCLE_FIX: &str = "remove one of these dependencies (an `{output}` reference or a \
                         `dependsOn` entry) so the stacks can be ordered; if two stacks need each \
                         other, move the shared resources into a third stack both depend on";

/// A stack of the manifest while it is being validated.
struct Node<'m> {
    stage: usize,
    spec: &'m StackSpec,
    /// `stages[i].stacks[j]`.
    path: String,
    /// Another stack with the same name came first: this one is left out of the graph.
    duplicate: bool,
    /// Valid dependencies (known, not itself, not in a later stage): the node and the field that
    /// declares it first, in declaration order (parameters, then `dependsOn`).
    deps: Vec<(usize, String)>,
    /// Every dependency name, for the plan.
    dep_names: std::collections::BTreeSet<String>,
}

/// Validate a parsed manifest and build its plan. `template_exists` answers for a template path
/// as written in the manifest. Every problem is returned at once.
pub fn build(
    manifest: &Manifest,
    environment: &str,
    template_exists: &dyn Fn(&str) -> bool,
) -> Result<Plan, Vec<ValidationIssue>> {
    let mut issues: Vec<ValidationIssue> = Vec::new();

    if let Some(v) = manifest.version {
        if v != SUPPORTED_VERSION {
            issues.push(ValidationIssue::new(
                None,
                "version",
                format!(
                    "unsupported manifest version {v}; this stackwave supports version \
                     {SUPPORTED_VERSION}"
                ),
                format!("write `version: {SUPPORTED_VERSION}` or remove the field"),
            ));
        }
    }
    if let Some((message, fix)) = environment_issue(environment) {
        issues.push(ValidationIssue::new(None, "environment", message, fix));
    }
    if manifest.name.trim().is_empty() {
        issues.push(ValidationIssue::new(
            None,
            "name",
            "the manifest's name is empty",
            "write the project's name, e.g. `name: bellyfed`",
        ));
    }
    let d = &manifest.defaults;
    check_timeout(
        d.timeout_minutes,
        None,
        "defaults.timeoutMinutes",
        &mut issues,
    );
    check_capabilities(&d.capabilities, None, "defaults.capabilities", &mut issues);
    check_tags(&d.tags, None, "defaults.tags", &mut issues);

    // Stages.
    if manifest.stages.is_empty() {
        issues.push(ValidationIssue::new(
            None,
            "stages",
            "the manifest has no stages",
            "add at least one stage with a `name` and `stacks`",
        ));
    }
    let mut stage_names: HashMap<&str, usize> = HashMap::new();
    for (i, stage) in manifest.stages.iter().enumerate() {
        if stage.name.trim().is_empty() {
            issues.push(ValidationIssue::new(
                None,
                format!("stages[{i}].name"),
                "the stage's name is empty",
                "give the stage a name, e.g. `name: infrastructure`",
            ));
        } else if let Some(first) = stage_names.get(stage.name.as_str()) {
            issues.push(ValidationIssue::new(
                None,
                format!("stages[{i}].name"),
                format!(
                    "duplicate stage name `{}`: stages[{first}] has it too",
                    stage.name
                ),
                "give each stage a unique name, or merge the two stages",
            ));
        } else {
            stage_names.insert(stage.name.as_str(), i);
        }
        if stage.stacks.is_empty() {
            issues.push(ValidationIssue::new(
                None,
                format!("stages[{i}].stacks"),
                format!("stage `{}` has no stacks", stage.name),
                "add at least one stack to the stage, or remove the stage",
            ));
        }
    }

    // Stacks: names first, so references can be resolved in any order.
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, stage) in manifest.stages.iter().enumerate() {
        for (j, spec) in stage.stacks.iter().enumerate() {
            let path = format!("stages[{i}].stacks[{j}]");
            let mut duplicate = false;
            if let Some(&first) = by_name.get(spec.name.as_str()) {
                duplicate = true;
                issues.push(ValidationIssue::new(
                    Some(&spec.name),
                    format!("{path}.name"),
                    format!(
                        "duplicate stack name `{}`: {} (stage `{}`) has it too",
                        spec.name, nodes[first].path, manifest.stages[nodes[first].stage].name
                    ),
                    "give each stack a unique name (a CloudFormation stack name is unique per \
                     account and region)",
                ));
            } else {
                by_name.insert(spec.name.as_str(), nodes.len());
            }
            nodes.push(Node {
                stage: i,
                spec,
                path,
                duplicate,
                deps: Vec::new(),
                dep_names: Default::default(),
            });
        }
    }

    let mut template_seen: HashMap<&str, bool> = HashMap::new();
    let mut hints_left = 50usize;
    for idx in 0..nodes.len() {
        let (stage, spec, path) = (nodes[idx].stage, nodes[idx].spec, nodes[idx].path.clone());
        let me = Some(spec.name.as_str());

        if let Some(problem) = stack_name_problem(&spec.name) {
            issues.push(ValidationIssue::new(
                me,
                format!("{path}.name"),
                problem,
                STACK_NAME_FIX,
            ));
        }

        let template = spec.template.trim();
        if template.is_empty() {
            issues.push(ValidationIssue::new(
                me,
                format!("{path}.template"),
                "the template path is empty",
                "write the template's path relative to the manifest, e.g. `templates/network.yaml`",
            ));
        } else {
            let exists = *template_seen
                .entry(spec.template.as_str())
                .or_insert_with(|| template_exists(&spec.template));
            if !exists {
                issues.push(ValidationIssue::new(
                    me,
                    format!("{path}.template"),
                    format!("template `{}` not found", spec.template),
                    "create the template at that path (relative to the manifest) or correct \
                     `template`",
                ));
            }
        }

        check_timeout(
            spec.timeout_minutes,
            me,
            &format!("{path}.timeoutMinutes"),
            &mut issues,
        );
        if let Some(caps) = &spec.capabilities {
            check_capabilities(caps, me, &format!("{path}.capabilities"), &mut issues);
        }
        check_tags(&spec.tags, me, &format!("{path}.tags"), &mut issues);
        let merged = d
            .tags
            .keys()
            .chain(spec.tags.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if merged > MAX_TAGS {
            issues.push(ValidationIssue::new(
                me,
                format!("{path}.tags"),
                format!("the stack would carry {merged} tags (defaults merged with its own); CloudFormation allows {MAX_TAGS}"),
                "remove some tags from `defaults.tags` or from the stack",
            ));
        }

        if spec.parameters.len() > MAX_PARAMETERS {
            issues.push(ValidationIssue::new(
                me,
                format!("{path}.parameters"),
                format!(
                    "the stack has {} parameters; CloudFormation allows {MAX_PARAMETERS} per stack",
                    spec.parameters.len()
                ),
                "combine parameters (e.g. one comma-separated list), read values in the template \
                 with `{{resolve:ssm:...}}`, or split the stack",
            ));
        }

        // Dependencies, in declaration order: output references, then dependsOn.
        let mut wanted: Vec<(String, String, &'static str)> = Vec::new();
        for (key, value) in &spec.parameters {
            let field = format!("{path}.parameters.{key}");
            match value {
                ParamValue::Literal(_) => {}
                ParamValue::Ssm { ssm } => {
                    if let Some(problem) = ssm_name_problem(ssm) {
                        issues.push(ValidationIssue::new(
                            me,
                            format!("{field}.ssm"),
                            problem,
                            "write an SSM parameter name such as `/bellyfed/${environment}/image-uri`",
                        ));
                    }
                }
                ParamValue::Output { output } => match parse_output_ref(output) {
                    Ok((stack, _)) => wanted.push((stack.to_string(), field, "output")),
                    Err(problem) => issues.push(ValidationIssue::new(
                        me,
                        format!("{field}.output"),
                        problem,
                        "write `{output: \"StackName.OutputKey\"}`: the name of a stack in this \
                         manifest, a dot, and the name of one of its outputs",
                    )),
                },
            }
        }
        for (k, dep) in spec.depends_on.iter().enumerate() {
            wanted.push((dep.clone(), format!("{path}.dependsOn[{k}]"), "dependsOn"));
        }

        for (dep, field, via) in wanted {
            let what = if via == "output" {
                format!("its `{{output}}` reference names stack `{dep}`")
            } else {
                format!("it depends on stack `{dep}`")
            };
            if dep == spec.name {
                issues.push(ValidationIssue::new(
                    me,
                    field,
                    format!("the stack depends on itself: {what}"),
                    "remove the reference to the stack itself; a template's own values come from \
                     its resources, not from its outputs",
                ));
                continue;
            }
            nodes[idx].dep_names.insert(dep.clone());
            match by_name.get(dep.as_str()) {
                None => {
                    let hint = if hints_left > 0 {
                        hints_left -= 1;
                        closest(&dep, by_name.keys().copied())
                            .map(|c| format!("did you mean `{c}`? "))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    issues.push(ValidationIssue::new(
                        me,
                        field,
                        format!("{what}, which is not in the manifest"),
                        format!(
                            "{hint}use the exact name of a stack in this manifest (after \
                             `${{environment}}` is substituted), or add that stack"
                        ),
                    ));
                }
                Some(&d) => {
                    let dstage = nodes[d].stage;
                    if dstage > stage {
                        let (mine, theirs) =
                            (&manifest.stages[stage].name, &manifest.stages[dstage].name);
                        issues.push(ValidationIssue::new(
                            me,
                            field,
                            format!(
                                "{what}, which is in a later stage (`{theirs}`, stage {}) than this \
                                 stack (`{mine}`, stage {}); stages deploy in order",
                                dstage + 1,
                                stage + 1
                            ),
                            format!(
                                "move `{dep}` to stage `{mine}` or an earlier one, or move this \
                                 stack to stage `{theirs}` or a later one"
                            ),
                        ));
                    } else if !nodes[idx].deps.iter().any(|(n, _)| *n == d) {
                        nodes[idx].deps.push((d, field));
                    }
                }
            }
        }
    }

    // Per stage: waves by longest path over intra-stage dependencies; cycles reported.
    let mut level: Vec<u32> = vec![0; nodes.len()];
    for (si, _) in manifest.stages.iter().enumerate() {
        let members: Vec<usize> = (0..nodes.len())
            .filter(|&n| nodes[n].stage == si && !nodes[n].duplicate)
            .collect();
        let intra = |n: usize| intra_deps(&nodes, n);
        let mut indegree: HashMap<usize, usize> = HashMap::with_capacity(members.len());
        let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
        for &v in &members {
            indegree.insert(v, intra(v).count());
            for u in intra(v) {
                dependents.entry(u).or_default().push(v);
            }
        }
        let mut queue: std::collections::VecDeque<usize> = members
            .iter()
            .copied()
            .filter(|v| indegree.get(v) == Some(&0))
            .collect();
        let mut done = 0usize;
        while let Some(u) = queue.pop_front() {
            done += 1;
            for &v in dependents.get(&u).map(Vec::as_slice).unwrap_or(&[]) {
                level[v] = level[v].max(level[u] + 1);
                if let Some(deg) = indegree.get_mut(&v) {
                    *deg -= 1;
                    if *deg == 0 {
                        queue.push_back(v);
                    }
                }
            }
        }
        if done < members.len() {
            let remaining: Vec<usize> = members
                .iter()
                .copied()
                .filter(|v| indegree.get(v).is_some_and(|d| *d > 0))
                .collect();
            report_cycles(&nodes, &remaining, &dependents, &mut issues);
        }
    }

    if !issues.is_empty() {
        // Manifest-level problems first, then stage by stage, stack by stack (stable).
        issues.sort_by_key(|i| field_order(&i.field));
        return Err(issues);
    }

    // The plan.
    let mut stages = Vec::with_capacity(manifest.stages.len());
    let mut stacks = Vec::with_capacity(nodes.len());
    for (si, stage) in manifest.stages.iter().enumerate() {
        let members: Vec<usize> = (0..nodes.len()).filter(|&n| nodes[n].stage == si).collect();
        let wave_count = members.iter().map(|&n| level[n] + 1).max().unwrap_or(0);
        let mut waves: Vec<Vec<String>> = vec![Vec::new(); wave_count as usize];
        let mut by_wave: Vec<Vec<usize>> = vec![Vec::new(); wave_count as usize];
        for &n in &members {
            waves[level[n] as usize].push(nodes[n].spec.name.clone());
            by_wave[level[n] as usize].push(n);
        }
        for n in by_wave.into_iter().flatten() {
            let spec = nodes[n].spec;
            let mut tags = d.tags.clone();
            tags.extend(spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            stacks.push(PlannedStack {
                name: spec.name.clone(),
                stage: stage.name.clone(),
                stage_index: si as u32,
                wave: level[n],
                template: spec.template.clone(),
                parameters: spec.parameters.clone(),
                depends_on: nodes[n].dep_names.iter().cloned().collect(),
                tags,
                capabilities: spec
                    .capabilities
                    .clone()
                    .unwrap_or_else(|| d.capabilities.clone()),
                timeout_minutes: spec
                    .timeout_minutes
                    .or(d.timeout_minutes)
                    .unwrap_or(DEFAULT_TIMEOUT_MINUTES),
                secret_parameters: vec![],
            });
        }
        stages.push(PlannedStage {
            index: si as u32,
            name: stage.name.clone(),
            waves,
        });
    }
    Ok(Plan {
        name: manifest.name.clone(),
        environment: environment.to_string(),
        on_failure: manifest.on_failure,
        schedule: manifest.schedule,
        stages,
        stacks,
    })
}

/// One issue per strongly connected knot of stacks left over after the topological sort: the
/// shortest cycle through its first stack (manifest order), printed `A -> B -> A`, where each
/// arrow reads "depends on".
fn report_cycles(
    nodes: &[Node],
    remaining: &[usize],
    dependents: &HashMap<usize, Vec<usize>>,
    issues: &mut Vec<ValidationIssue>,
) {
    let in_remaining: std::collections::HashSet<usize> = remaining.iter().copied().collect();
    let mut assigned: std::collections::HashSet<usize> = std::collections::HashSet::new();
    for &start in remaining {
        if assigned.contains(&start) {
            continue;
        }
        // Forward (depends-on) BFS from start, remembering parents for the shortest way back.
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut forward: std::collections::HashSet<usize> = std::collections::HashSet::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut back_from: Option<usize> = None;
        while let Some(u) = queue.pop_front() {
            for v in intra_deps(nodes, u) {
                if !in_remaining.contains(&v) {
                    continue;
                }
                if v == start && back_from.is_none() {
                    back_from = Some(u);
                }
                if forward.insert(v) && v != start {
                    parent.insert(v, u);
                    queue.push_back(v);
                }
            }
        }
        let Some(last) = back_from else {
            continue; // downstream of a cycle, not on one
        };
        // Backward BFS: who reaches start. The knot is forward ∩ backward.
        let mut backward: std::collections::HashSet<usize> =
            std::collections::HashSet::from([start]);
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(u) = queue.pop_front() {
            for &v in dependents.get(&u).map(Vec::as_slice).unwrap_or(&[]) {
                if in_remaining.contains(&v) && backward.insert(v) {
                    queue.push_back(v);
                }
            }
        }
        let mut knot: Vec<usize> = forward.intersection(&backward).copied().collect();
        knot.sort_unstable();
        assigned.extend(knot.iter().copied());

        // start -> ... -> last -> start
        let mut path = vec![last];
        let mut cur = last;
        while cur != start {
            match parent.get(&cur) {
                Some(&p) => {
                    path.push(p);
                    cur = p;
                }
                None => break,
            }
        }
        path.reverse();
        let mut names: Vec<&str> = path.iter().map(|&n| nodes[n].spec.name.as_str()).collect();
        names.push(nodes[start].spec.name.as_str());
        let next = path.get(1).copied().unwrap_or(start);
        let field = nodes[start]
            .deps
            .iter()
            .find(|(d, _)| *d == next)
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| format!("{}.dependsOn", nodes[start].path));
        let others: Vec<&str> = knot
            .iter()
            .filter(|n| !path.contains(n))
            .map(|&n| nodes[n].spec.name.as_str())
            .collect();
        let mut message = format!(
            "dependency cycle: {} (each arrow reads \"depends on\")",
            names.join(" -> ")
        );
        if !others.is_empty() {
            message.push_str(&format!(
                "; also caught in the same knot: {}",
                others.join(", ")
            ));
        }
        issues.push(ValidationIssue::new(
            Some(&nodes[start].spec.name),
            field,
            message,
            CYCLE_FIX,
        ));
    }
}

/// Sort key of an issue's field: `(0, 0, 0)` for manifest-level fields, `(1, i, 0)` for stage
/// `i`, `(1, i, j + 1)` for stack `j` of stage `i`.
fn field_order(field: &str) -> (u8, usize, usize) {
    fn index_after<'a>(s: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
        let rest = s.strip_prefix(prefix)?;
        let (n, rest) = rest.split_once(']')?;
        Some((n.parse().ok()?, rest))
    }
    match index_after(field, "stages[") {
        None => (0, 0, 0),
        Some((i, rest)) => match index_after(rest, ".stacks[") {
            Some((j, _)) => (1, i, j + 1),
            None => (1, i, 0),
        },
    }
}

/// A node's dependencies inside its own stage.
fn intra_deps<'a>(nodes: &'a [Node], n: usize) -> impl Iterator<Item = usize> + 'a {
    let stage = nodes[n].stage;
    nodes[n]
        .deps
        .iter()
        .filter(move |(d, _)| nodes[*d].stage == stage)
        .map(|(d, _)| *d)
}

fn check_timeout(
    t: Option<u32>,
    stack: Option<&str>,
    field: &str,
    issues: &mut Vec<ValidationIssue>,
) {
    if let Some(t) = t {
        if t == 0 || t > MAX_TIMEOUT_MINUTES {
            issues.push(ValidationIssue::new(
                stack,
                field,
                format!("timeoutMinutes {t} is out of range: it must be between 1 and {MAX_TIMEOUT_MINUTES} (7 days)"),
                format!("set a value between 1 and {MAX_TIMEOUT_MINUTES}, or remove it for the default of {DEFAULT_TIMEOUT_MINUTES}"),
            ));
        }
    }
}

fn check_capabilities(
    caps: &[String],
    stack: Option<&str>,
    field: &str,
    issues: &mut Vec<ValidationIssue>,
) {
    for (i, c) in caps.iter().enumerate() {
        if !CAPABILITIES.contains(&c.as_str()) {
            let hint = closest(c, CAPABILITIES.iter().copied())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            issues.push(ValidationIssue::new(
                stack,
                format!("{field}[{i}]"),
                format!("`{c}` is not a CloudFormation capability"),
                format!("{hint}use one of {}", CAPABILITIES.join(", ")),
            ));
        }
    }
}

fn check_tags(
    tags: &BTreeMap<String, String>,
    stack: Option<&str>,
    field: &str,
    issues: &mut Vec<ValidationIssue>,
) {
    for (k, v) in tags {
        let f = format!("{field}.{k}");
        if k.is_empty() || k.chars().count() > 128 {
            issues.push(ValidationIssue::new(
                stack,
                f.clone(),
                format!("tag name `{k}` must be 1 to 128 characters long"),
                "shorten the tag name",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            issues.push(ValidationIssue::new(
                stack,
                f.clone(),
                format!("tag name `{k}` uses the reserved prefix `aws:`"),
                "choose a tag name that does not start with `aws:`",
            ));
        }
        if v.is_empty() {
            issues.push(ValidationIssue::new(
                stack,
                f.clone(),
                format!(
                    "tag `{k}` has an empty value; CloudFormation requires 1 to 256 characters"
                ),
                "give the tag a value, or remove it",
            ));
        }
        if v.chars().count() > 256 {
            issues.push(ValidationIssue::new(
                stack,
                f,
                format!(
                    "the value of tag `{k}` is {} characters long; the limit is 256",
                    v.chars().count()
                ),
                "shorten the tag value",
            ));
        }
    }
}

/// `Stack.Key` → (`Stack`, `Key`), or why it is malformed.
pub fn parse_output_ref(output: &str) -> Result<(&str, &str), String> {
    match output.split_once('.') {
        Some((stack, key)) if !stack.is_empty() && !key.is_empty() => {
            if key.chars().all(|c| c.is_ascii_alphanumeric()) {
                Ok((stack, key))
            } else {
                Err(format!(
                    "malformed output reference `{output}`: the output key `{key}` must be letters \
                     and digits only"
                ))
            }
        }
        _ => Err(format!(
            "malformed output reference `{output}`: expected `StackName.OutputKey`"
        )),
    }
}

/// Why a string is not an SSM parameter name, or `None`.
fn ssm_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the SSM parameter name is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Some(format!(
            "`{name}` is not a valid SSM parameter name: `{c}` is not allowed (letters, digits, \
             `_`, `.`, `-` and `/` are)"
        ));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Some(format!(
            "`{name}` is not a valid SSM parameter name: a name with a hierarchy must start with `/`"
        ));
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;

    fn plan(text: &str) -> Result<Plan, Vec<ValidationIssue>> {
        let m = parse(text, "dev").unwrap_or_else(|i| panic!("parse failed: {i:#?}"));
        build(&m, "dev", &|p| !p.starts_with("missing/"))
    }

    fn issues(text: &str) -> Vec<ValidationIssue> {
        match plan(text) {
            Ok(p) => panic!("expected issues, planned {p:?}"),
            Err(i) => i,
        }
    }

    fn find<'a>(issues: &'a [ValidationIssue], field: &str) -> &'a ValidationIssue {
        issues
            .iter()
            .find(|i| i.field == field)
            .unwrap_or_else(|| panic!("no issue at {field}: {issues:#?}"))
    }

    const BELLYFED: &str = r#"
name: bellyfed
defaults:
  tags: {Project: bellyfed, Environment: "${environment}", ManagedBy: stackwave}
  capabilities: [CAPABILITY_NAMED_IAM]
  timeoutMinutes: 45
stages:
  - name: infrastructure
    stacks:
      - name: Network-${environment}
        template: templates/network.yaml
      - name: EcsInfra-${environment}
        template: templates/ecs-infra.yaml
        parameters:
          VpcId: {output: "Network-${environment}.VpcId"}
          ClusterName: ecs
        tags: {Project: ecs, Team: platform}
      - name: TypesenseInfra-${environment}
        template: templates/typesense-infra.yaml
        parameters:
          VpcId: {output: "Network-${environment}.VpcId"}
        dependsOn: ["EcsInfra-${environment}", "Network-${environment}"]
        capabilities: [CAPABILITY_IAM, CAPABILITY_AUTO_EXPAND]
        timeoutMinutes: 90
      - name: Logs-${environment}
        template: templates/logs.yaml
  - name: data
    stacks:
      - name: Aurora-${environment}
        template: templates/aurora.yaml
        parameters:
          VpcId: {output: "Network-${environment}.VpcId"}
      - name: Migration-${environment}
        template: templates/migration.yaml
        dependsOn: ["Aurora-${environment}"]
"#;

    #[test]
    fn plans_stages_waves_and_stack_settings() {
        let p = plan(BELLYFED).expect("valid");
        assert_eq!(p.name, "bellyfed");
        assert_eq!(p.environment, "dev");
        let waves: Vec<&Vec<Vec<String>>> = p.stages.iter().map(|s| &s.waves).collect();
        assert_eq!(
            waves[0],
            &vec![
                vec!["Network-dev".to_string(), "Logs-dev".to_string()],
                vec!["EcsInfra-dev".to_string()],
                vec!["TypesenseInfra-dev".to_string()],
            ]
        );
        // a dependency on an earlier stage does not count for waves
        assert_eq!(
            waves[1],
            &vec![
                vec!["Aurora-dev".to_string()],
                vec!["Migration-dev".to_string()]
            ]
        );
        let order: Vec<&str> = p.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "Network-dev",
                "Logs-dev",
                "EcsInfra-dev",
                "TypesenseInfra-dev",
                "Aurora-dev",
                "Migration-dev"
            ]
        );
        let ts = p.stack("TypesenseInfra-dev").expect("stack");
        assert_eq!(
            (ts.stage.as_str(), ts.stage_index, ts.wave),
            ("infrastructure", 0, 2)
        );
        assert_eq!(
            ts.depends_on,
            vec!["EcsInfra-dev".to_string(), "Network-dev".to_string()]
        );
        assert_eq!(
            ts.capabilities,
            vec![
                "CAPABILITY_IAM".to_string(),
                "CAPABILITY_AUTO_EXPAND".to_string()
            ]
        );
        assert_eq!(ts.timeout_minutes, 90);
        let ecs = p.stack("EcsInfra-dev").expect("stack");
        assert_eq!(ecs.capabilities, vec!["CAPABILITY_NAMED_IAM".to_string()]);
        assert_eq!(ecs.timeout_minutes, 45);
        assert_eq!(ecs.template, "templates/ecs-infra.yaml");
        assert_eq!(
            ecs.parameters.get("ClusterName"),
            Some(&ParamValue::Literal("ecs".into()))
        );
        let aurora = p.stack("Aurora-dev").expect("stack");
        assert_eq!((aurora.stage_index, aurora.wave), (1, 0));
        assert_eq!(aurora.depends_on, vec!["Network-dev".to_string()]);
        let refs = p.stage_refs();
        assert_eq!(refs[0].waves[2].index, 2);
        assert_eq!(refs[1].name, "data");
    }

    #[test]
    fn tags_merge_with_the_stack_winning() {
        let p = plan(BELLYFED).expect("valid");
        let ecs = p.stack("EcsInfra-dev").expect("stack");
        let tags: Vec<(&str, &str)> = ecs
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            tags,
            [
                ("Environment", "dev"),
                ("ManagedBy", "stackwave"),
                ("Project", "ecs"),
                ("Team", "platform")
            ]
        );
        let net = p.stack("Network-dev").expect("stack");
        assert_eq!(
            net.tags.get("Project").map(String::as_str),
            Some("bellyfed")
        );
    }

    #[test]
    fn timeout_defaults_to_sixty_minutes() {
        let p = plan("name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml}\n")
            .expect("valid");
        assert_eq!(p.stacks[0].timeout_minutes, DEFAULT_TIMEOUT_MINUTES);
        assert!(p.stacks[0].capabilities.is_empty());
    }

    #[test]
    fn duplicate_stack_and_stage_names() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml}\n- name: a\n  stacks:\n  - {name: A, template: t.yaml}\n",
        );
        let s = find(&all, "stages[1].stacks[0].name");
        assert_eq!(s.stack.as_deref(), Some("A"));
        assert!(
            s.message
                .contains("duplicate stack name `A`: stages[0].stacks[0] (stage `a`) has it too"),
            "{}",
            s.message
        );
        assert!(s.fix.contains("unique"));
        let st = find(&all, "stages[1].name");
        assert_eq!(st.stack, None);
        assert!(st.message.contains("duplicate stage name `a`"));
        assert_eq!(all.len(), 2, "{all:#?}");
    }

    #[test]
    fn empty_stages() {
        let all = issues("name: x\nstages: []\n");
        assert!(find(&all, "stages").message.contains("no stages"));
        let all = issues("name: x\nstages:\n- name: a\n  stacks: []\n- name: b\n  stacks:\n  - {name: B, template: t.yaml}\n");
        let e = find(&all, "stages[0].stacks");
        assert!(e.message.contains("stage `a` has no stacks"));
        assert!(e.fix.contains("remove the stage"));
    }

    #[test]
    fn invalid_stack_names() {
        let long = format!("A{}", "b".repeat(128));
        let all = issues(&format!(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {{name: 1abc, template: t.yaml}}\n  - {{name: my_stack.v2, template: t.yaml}}\n  - {{name: {long}, template: t.yaml}}\n  - {{name: \"\", template: t.yaml}}\n"
        ));
        let a = find(&all, "stages[0].stacks[0].name");
        assert_eq!(a.stack.as_deref(), Some("1abc"));
        assert!(a.message.contains("must start with a letter"));
        assert!(a.fix.contains("letters, digits and hyphens"));
        let b = find(&all, "stages[0].stacks[1].name");
        assert!(b.message.contains("contains `_`, `.`"), "{}", b.message);
        let c = find(&all, "stages[0].stacks[2].name");
        assert!(c.message.contains("129 characters long, the limit is 128"));
        assert!(find(&all, "stages[0].stacks[3].name")
            .message
            .contains("empty"));
        assert_eq!(stack_name_problem("Ok-Name-1"), None);
        assert_eq!(stack_name_problem(&"a".repeat(128)), None);
    }

    #[test]
    fn unknown_dependencies_and_output_references() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: Network-dev, template: t.yaml}\n  - name: App\n    template: t.yaml\n    parameters:\n      VpcId: {output: \"Network.VpcId\"}\n      Sub: {output: \"NoDot\"}\n      Key: {output: \"Network-dev.Vpc-Id\"}\n    dependsOn: [Netwrok-dev, Ghost]\n",
        );
        let o = find(&all, "stages[0].stacks[1].parameters.VpcId");
        assert_eq!(o.stack.as_deref(), Some("App"));
        assert!(
            o.message.contains(
                "`{output}` reference names stack `Network`, which is not in the manifest"
            ),
            "{}",
            o.message
        );
        assert!(o.fix.contains("did you mean `Network-dev`?"), "{}", o.fix);
        let m = find(&all, "stages[0].stacks[1].parameters.Sub.output");
        assert!(m
            .message
            .contains("malformed output reference `NoDot`: expected `StackName.OutputKey`"));
        let k = find(&all, "stages[0].stacks[1].parameters.Key.output");
        assert!(k.message.contains("letters and digits"));
        let d = find(&all, "stages[0].stacks[1].dependsOn[0]");
        assert!(d
            .message
            .contains("depends on stack `Netwrok-dev`, which is not in the manifest"));
        assert!(d.fix.contains("did you mean `Network-dev`?"));
        let g = find(&all, "stages[0].stacks[1].dependsOn[1]");
        assert!(!g.fix.contains("did you mean"));
        assert_eq!(all.len(), 5, "{all:#?}");
    }

    #[test]
    fn dependency_on_a_later_stage() {
        let all = issues(
            "name: x\nstages:\n- name: infra\n  stacks:\n  - name: A\n    template: t.yaml\n    parameters: {Db: {output: B.Endpoint}}\n- name: data\n  stacks:\n  - {name: B, template: t.yaml}\n",
        );
        assert_eq!(all.len(), 1, "{all:#?}");
        let i = &all[0];
        assert_eq!(i.stack.as_deref(), Some("A"));
        assert_eq!(i.field, "stages[0].stacks[0].parameters.Db");
        assert!(
            i.message
                .contains("later stage (`data`, stage 2) than this stack (`infra`, stage 1)"),
            "{}",
            i.message
        );
        assert!(i
            .fix
            .contains("move `B` to stage `infra` or an earlier one"));
    }

    #[test]
    fn self_dependency() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - name: A\n    template: t.yaml\n    dependsOn: [A]\n",
        );
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!(all[0].field, "stages[0].stacks[0].dependsOn[0]");
        assert!(all[0].message.contains("depends on itself"));
    }

    #[test]
    fn cycles_print_their_path() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml, dependsOn: [B]}\n  - name: B\n    template: t.yaml\n    parameters: {X: {output: A.Out}}\n  - {name: C, template: t.yaml, dependsOn: [D]}\n  - {name: D, template: t.yaml, dependsOn: [E]}\n  - {name: E, template: t.yaml, dependsOn: [C]}\n  - {name: F, template: t.yaml, dependsOn: [A]}\n",
        );
        assert_eq!(all.len(), 2, "{all:#?}");
        assert_eq!(all[0].stack.as_deref(), Some("A"));
        assert_eq!(all[0].field, "stages[0].stacks[0].dependsOn[0]");
        assert!(
            all[0].message.contains("dependency cycle: A -> B -> A"),
            "{}",
            all[0].message
        );
        assert!(all[0].fix.contains("remove one of these dependencies"));
        assert_eq!(all[1].stack.as_deref(), Some("C"));
        assert!(
            all[1]
                .message
                .contains("dependency cycle: C -> D -> E -> C"),
            "{}",
            all[1].message
        );
        // the same text every time
        assert_eq!(all, issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml, dependsOn: [B]}\n  - name: B\n    template: t.yaml\n    parameters: {X: {output: A.Out}}\n  - {name: C, template: t.yaml, dependsOn: [D]}\n  - {name: D, template: t.yaml, dependsOn: [E]}\n  - {name: E, template: t.yaml, dependsOn: [C]}\n  - {name: F, template: t.yaml, dependsOn: [A]}\n",
        ));
    }

    #[test]
    fn a_knot_reports_the_shortest_cycle_and_the_rest() {
        // A -> B -> C -> A and B -> A: one knot; shortest cycle through A is A -> B -> A
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml, dependsOn: [B]}\n  - {name: B, template: t.yaml, dependsOn: [C, A]}\n  - {name: C, template: t.yaml, dependsOn: [A]}\n",
        );
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(all[0].message.contains("A -> B -> A"), "{}", all[0].message);
        assert!(all[0].message.contains("also caught in the same knot: C"));
    }

    #[test]
    fn missing_template() {
        let all = issues("name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: missing/a.yaml}\n  - {name: B, template: \" \"}\n");
        let a = find(&all, "stages[0].stacks[0].template");
        assert_eq!(a.stack.as_deref(), Some("A"));
        assert!(a.message.contains("template `missing/a.yaml` not found"));
        assert!(a.fix.contains("relative to the manifest"));
        assert!(find(&all, "stages[0].stacks[1].template")
            .message
            .contains("empty"));
    }

    #[test]
    fn timeouts_and_capabilities() {
        let all = issues(
            "name: x\ndefaults: {timeoutMinutes: 0, capabilities: [CAPABILITY_IAM, CAPABILITY_NAMED]}\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml, timeoutMinutes: 10081, capabilities: [CAPABILITY_ADMIN]}\n  - {name: B, template: t.yaml, timeoutMinutes: 10080}\n",
        );
        let d = find(&all, "defaults.timeoutMinutes");
        assert!(d.message.contains("timeoutMinutes 0 is out of range"));
        let a = find(&all, "stages[0].stacks[0].timeoutMinutes");
        assert_eq!(a.stack.as_deref(), Some("A"));
        assert!(a.message.contains("10081"));
        assert!(a.fix.contains("between 1 and 10080"));
        let c = find(&all, "defaults.capabilities[1]");
        assert!(c
            .message
            .contains("`CAPABILITY_NAMED` is not a CloudFormation capability"));
        assert!(
            c.fix.contains("did you mean `CAPABILITY_NAMED_IAM`?"),
            "{}",
            c.fix
        );
        let ca = find(&all, "stages[0].stacks[0].capabilities[0]");
        assert!(ca
            .fix
            .contains("CAPABILITY_IAM, CAPABILITY_NAMED_IAM, CAPABILITY_AUTO_EXPAND"));
        assert_eq!(all.len(), 4, "{all:#?}");
    }

    #[test]
    fn empty_tag_values_and_too_many_parameters_are_refused() {
        let params: Vec<String> = (0..=MAX_PARAMETERS).map(|i| format!("P{i}: v")).collect();
        let text = format!(
            "name: x\ndefaults:\n  tags: {{Team: \"\"}}\nstages:\n- name: a\n  stacks:\n  - name: A\n    template: t.yaml\n    tags: {{Owner: \"\"}}\n    parameters: {{{}}}\n",
            params.join(", ")
        );
        let all = issues(&text);
        let t = find(&all, "defaults.tags.Team");
        assert!(t.message.contains("empty value"), "{t:?}");
        let o = find(&all, "stages[0].stacks[0].tags.Owner");
        assert_eq!(o.stack.as_deref(), Some("A"));
        assert!(o.fix.contains("give the tag a value"));
        let p = find(&all, "stages[0].stacks[0].parameters");
        assert!(p.message.contains("201 parameters"), "{p:?}");
        assert!(p.message.contains("allows 200"));
    }

    #[test]
    fn ssm_names_and_tags_are_checked() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - name: A\n    template: t.yaml\n    parameters: {I: {ssm: \"a/b\"}, J: {ssm: \"/a b\"}}\n    tags: {\"aws:owner\": me}\n",
        );
        assert!(find(&all, "stages[0].stacks[0].parameters.I.ssm")
            .message
            .contains("must start with `/`"));
        assert!(find(&all, "stages[0].stacks[0].parameters.J.ssm")
            .message
            .contains("` ` is not allowed"));
        assert!(find(&all, "stages[0].stacks[0].tags.aws:owner")
            .message
            .contains("reserved prefix"));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: missing/a.yaml, dependsOn: [B]}\n  - {name: B, template: t.yaml, dependsOn: [A, Nope]}\n  - {name: B, template: t.yaml}\n  - {name: bad_name, template: t.yaml, timeoutMinutes: 0}\n",
        );
        let fields: Vec<&str> = all.iter().map(|i| i.field.as_str()).collect();
        for f in [
            "stages[0].stacks[0].template",
            "stages[0].stacks[0].dependsOn[0]",
            "stages[0].stacks[1].dependsOn[1]",
            "stages[0].stacks[2].name",
            "stages[0].stacks[3].name",
            "stages[0].stacks[3].timeoutMinutes",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let err = from_text(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: t.yaml, dependsOn: [B]}\n  - {name: B, template: t.yaml, dependsOn: [A]}\n",
            "dev",
            &|_| true,
        )
        .expect_err("cycle");
        assert_eq!(err.name(), "InvalidManifest");
        assert!(
            err.to_string().contains(
                "- stack A, stages[0].stacks[0].dependsOn[0]: dependency cycle: A -> B -> A"
            ),
            "{err}"
        );
    }

    #[test]
    fn five_hundred_stacks_validate_and_plan() {
        let text = crate::synth::manifest_yaml(
            "big",
            5,
            100,
            crate::synth::Shape::ChainInStage(5),
            "t.yaml",
        );
        let p = from_text(&text, "dev", &|p| p == "t.yaml").expect("valid");
        assert_eq!(p.stacks.len(), 500);
        assert_eq!(p.stages.len(), 5);
        for s in &p.stages {
            assert_eq!(s.waves.len(), 5);
            assert_eq!(s.waves.iter().map(Vec::len).sum::<usize>(), 100);
        }
        // a 500-stack chain (the deepest graph) also plans, one wave per stack
        let chain = crate::synth::manifest_yaml(
            "deep",
            1,
            500,
            crate::synth::Shape::ChainInStage(500),
            "t.yaml",
        );
        let p = from_text(&chain, "dev", &|_| true).expect("valid");
        assert_eq!(p.stages[0].waves.len(), 500);
        assert_eq!(p.stacks[499].name, "deep-s0-n499-dev");
    }

    #[test]
    fn issues_are_ordered_stack_by_stack() {
        let all = issues(
            "name: x\nstages:\n- name: a\n  stacks:\n  - {name: A, template: missing/a.yaml, dependsOn: [B]}\n  - {name: B, template: t.yaml, dependsOn: [A]}\n  - {name: c_1, template: t.yaml}\n- name: b\n  stacks: []\n",
        );
        let fields: Vec<&str> = all.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "stages[0].stacks[0].template",
                "stages[0].stacks[0].dependsOn[0]",
                "stages[0].stacks[2].name",
                "stages[1].stacks",
            ]
        );
        assert_eq!(field_order("defaults.tags"), (0, 0, 0));
        assert_eq!(field_order("stages[12].stacks[3].name"), (1, 12, 4));
    }

    #[test]
    fn plan_round_trips_as_json() {
        let p = plan(BELLYFED).expect("valid");
        let json = serde_json::to_string(&p).expect("json");
        assert!(json.contains("\"stageIndex\":0"));
        assert!(json.contains("\"dependsOn\":[\"Network-dev\"]"));
        let back: Plan = serde_json::from_str(&json).expect("back");
        assert_eq!(back, p);
    }
}
