//! The project's own checks of the state machine definition and its CloudFormation placeholders.
//!
//! MiniStack accepts any definition, and statelint only knows the language, not this
//! pipeline's rules: every Task retries the transient errors, catches everything, has a
//! timeout; every transition lands on a state; every `${Placeholder}` is substituted by the
//! template. The checks are pure functions over the parsed files and return one
//! human-readable sentence per problem (empty = fine).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

/// Where the definition lives, relative to the workspace root.
pub const DEFINITION_PATH: &str = "state-machine/pipeline.asl.json";
/// Where the CloudFormation template lives, relative to the workspace root.
pub const TEMPLATE_PATH: &str = "infra/template.yaml";

/// Errors every Task must retry: the Lambda service's own transient failures, the
/// `Transient` error type the pipeline's functions raise, and a function that crashed
/// (`Runtime.ExitError`), timed out (`Sandbox.Timedout`, `States.Timeout`) or failed
/// without an error payload (`Lambda.Unknown`: out of memory on AWS; MiniStack also
/// reports a throttled task this way).
pub const TRANSIENT_ERRORS: [&str; 9] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Transient",
    "Lambda.Unknown",
    "Runtime.ExitError",
    "Sandbox.Timedout",
    "States.Timeout",
];

/// Prefix of the stand-in ARNs put in place of the placeholders for statelint.
const DUMMY_FUNCTION_ARN_PREFIX: &str = "arn:aws:lambda:us-east-1:123456789012:function:";

/// The CloudFormation resource type whose DefinitionSubstitutions fill the placeholders.
const STATE_MACHINE_TYPE: &str = "AWS::StepFunctions::StateMachine";

/// Retry's MaxAttempts when a retrier does not say (ASL default).
const DEFAULT_MAX_ATTEMPTS: u64 = 3;

/// The definition and the template's substitution keys, as read from a workspace.
pub struct Sources {
    /// The definition file as written, placeholders included.
    pub definition_text: String,
    /// The same, parsed.
    pub definition: Value,
    /// The keys of the state machine's DefinitionSubstitutions in the template.
    pub substitution_keys: BTreeSet<String>,
}

/// Reads and parses the definition and the template of the workspace at `root`.
pub fn load(root: &Path) -> Result<Sources> {
    let definition_path = root.join(DEFINITION_PATH);
    let definition_text = std::fs::read_to_string(&definition_path)
        .with_context(|| format!("reading {}", definition_path.display()))?;
    let definition: Value = serde_json::from_str(&definition_text)
        .with_context(|| format!("parsing {} as JSON", definition_path.display()))?;
    let template_path = root.join(TEMPLATE_PATH);
    let template_text = std::fs::read_to_string(&template_path)
        .with_context(|| format!("reading {}", template_path.display()))?;
    let substitution_keys = substitution_keys(&template_text).with_context(|| {
        format!(
            "reading DefinitionSubstitutions from {}",
            template_path.display()
        )
    })?;
    Ok(Sources {
        definition_text,
        definition,
        substitution_keys,
    })
}

/// The DefinitionSubstitutions keys of the template's state machine(s).
///
/// The template is CloudFormation YAML with short-form tags (`!Sub`, `!GetAtt`, ...),
/// which the parser keeps as tagged values; only the keys are read here.
pub fn substitution_keys(template_text: &str) -> Result<BTreeSet<String>> {
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(template_text).context("parsing the template as YAML")?;
    let Some(resources) = template.get("Resources").and_then(|r| r.as_mapping()) else {
        bail!("the template has no Resources mapping");
    };
    let mut machines = 0;
    let mut keys = BTreeSet::new();
    for resource in resources.values() {
        if resource.get("Type").and_then(|t| t.as_str()) != Some(STATE_MACHINE_TYPE) {
            continue;
        }
        machines += 1;
        let substitutions = resource
            .get("Properties")
            .and_then(|p| p.get("DefinitionSubstitutions"))
            .and_then(|s| s.as_mapping());
        for key in substitutions.into_iter().flat_map(|s| s.keys()) {
            match key.as_str() {
                Some(key) => {
                    keys.insert(key.to_owned());
                }
                None => bail!("a DefinitionSubstitutions key is not a string: {key:?}"),
            }
        }
    }
    if machines == 0 {
        bail!("the template declares no {STATE_MACHINE_TYPE}");
    }
    Ok(keys)
}

/// Every problem found in `definition`, given the template's substitution keys.
pub fn check(definition: &Value, substitution_keys: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(root) = definition.as_object() else {
        problems.push("the definition is not a JSON object".to_owned());
        return problems;
    };
    match root.get("TimeoutSeconds") {
        None => problems.push(
            "the state machine has no top-level TimeoutSeconds: a stuck execution would run for a year"
                .to_owned(),
        ),
        Some(t) if t.as_u64().is_none_or(|t| t == 0) => problems.push(format!(
            "the top-level TimeoutSeconds is {t}, not a positive integer"
        )),
        Some(_) => {}
    }
    check_scope("", root, &mut problems);
    check_placeholders(definition, substitution_keys, &mut problems);
    problems
}

/// The `${Name}` placeholders used anywhere in the definition (keys and string values).
pub fn placeholders(definition: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    collect_placeholders(definition, &mut found);
    found
}

/// `definition_text` with every `${key}` of `substitutions` replaced by its value, as
/// CloudFormation's DefinitionSubstitutions does.
pub fn substitute(definition_text: &str, substitutions: &BTreeMap<String, String>) -> String {
    substitutions
        .iter()
        .fold(definition_text.to_owned(), |text, (key, value)| {
            text.replace(&format!("${{{key}}}"), value)
        })
}

/// Stand-in Lambda ARNs for the given placeholder names, e.g. `InspectFunctionArn` ->
/// `arn:aws:lambda:us-east-1:123456789012:function:inspect`, for linting the definition
/// as it will look once deployed.
pub fn dummy_substitutions(keys: &BTreeSet<String>) -> BTreeMap<String, String> {
    keys.iter()
        .map(|key| {
            let stem = key
                .strip_suffix("FunctionArn")
                .or_else(|| key.strip_suffix("Arn"))
                .filter(|stem| !stem.is_empty())
                .unwrap_or(key);
            (
                key.clone(),
                format!("{DUMMY_FUNCTION_ARN_PREFIX}{}", stem.to_lowercase()),
            )
        })
        .collect()
}

/// Checks one set of States with its StartAt: the top level, a Parallel branch or a
/// Map's item processor. `scope` prefixes state names in messages ("" at top level).
fn check_scope(scope: &str, machine: &Map<String, Value>, problems: &mut Vec<String>) {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        problems.push(format!("{}has no States object", scope_label(scope)));
        return;
    };
    if states.is_empty() {
        problems.push(format!("{}has no states", scope_label(scope)));
        return;
    }
    let start = machine.get("StartAt").and_then(Value::as_str);
    match start {
        None => problems.push(format!("{}has no StartAt", scope_label(scope))),
        Some(start) if !states.contains_key(start) => problems.push(format!(
            "{}StartAt names `{start}`, which is not a state",
            scope_label(scope)
        )),
        Some(_) => {}
    }

    for (name, state) in states {
        let label = format!("state `{scope}{name}`");
        let Some(state) = state.as_object() else {
            problems.push(format!("{label} is not a JSON object"));
            continue;
        };
        let kind = state.get("Type").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() {
            problems.push(format!("{label} has no Type"));
        }
        for (field, target) in transitions(state) {
            match target {
                Some(target) if states.contains_key(target) => {}
                Some(target) => problems.push(format!(
                    "{label}: {field} names `{target}`, which is not a state"
                )),
                None => problems.push(format!("{label}: {field} is missing or not a state name")),
            }
        }
        let ends = state.get("End").and_then(Value::as_bool) == Some(true);
        let has_next = state.contains_key("Next");
        if !matches!(kind, "Choice" | "Succeed" | "Fail") && !ends && !has_next {
            problems.push(format!("{label} has neither Next nor \"End\": true"));
        }
        match kind {
            "Task" => check_task(&label, state, problems),
            "Parallel" => {
                let branches = state.get("Branches").and_then(Value::as_array);
                for (i, branch) in branches.into_iter().flatten().enumerate() {
                    if let Some(branch) = branch.as_object() {
                        check_scope(&format!("{scope}{name}.Branches[{i}]."), branch, problems);
                    }
                }
            }
            "Map" => {
                let processor = state
                    .get("ItemProcessor")
                    .or_else(|| state.get("Iterator"))
                    .and_then(Value::as_object);
                if let Some(processor) = processor {
                    check_scope(
                        &format!("{scope}{name}.ItemProcessor."),
                        processor,
                        problems,
                    );
                }
            }
            _ => {}
        }
    }

    if let Some(start) = start.filter(|s| states.contains_key(*s)) {
        check_reachability(scope, start, states, problems);
    }
}

fn scope_label(scope: &str) -> String {
    if scope.is_empty() {
        "the state machine ".to_owned()
    } else {
        format!("`{}` ", scope.trim_end_matches('.'))
    }
}

/// Every outgoing transition of a state, as (field, target) pairs; a target is `None`
/// when the field is present but not a string (or a Catch has no Next).
fn transitions(state: &Map<String, Value>) -> Vec<(String, Option<&str>)> {
    let mut found = Vec::new();
    for field in ["Next", "Default"] {
        if let Some(target) = state.get(field) {
            found.push((field.to_owned(), target.as_str()));
        }
    }
    let choices = state.get("Choices").and_then(Value::as_array);
    for (i, choice) in choices.into_iter().flatten().enumerate() {
        found.push((
            format!("Choices[{i}].Next"),
            choice.get("Next").and_then(Value::as_str),
        ));
    }
    let catchers = state.get("Catch").and_then(Value::as_array);
    for (i, catcher) in catchers.into_iter().flatten().enumerate() {
        found.push((
            format!("Catch[{i}].Next"),
            catcher.get("Next").and_then(Value::as_str),
        ));
    }
    found
}

/// The pipeline's rules for a Task: a timeout, a Retry covering every transient error,
/// and a Catch so that no error ends the execution without quarantine.
fn check_task(label: &str, state: &Map<String, Value>, problems: &mut Vec<String>) {
    if !state.contains_key("TimeoutSeconds") && !state.contains_key("TimeoutSecondsPath") {
        problems.push(format!(
            "{label} has no TimeoutSeconds: a hung function would hold the execution"
        ));
    }

    match state.get("Retry").and_then(Value::as_array) {
        Some(retriers) if !retriers.is_empty() => {
            let retried: BTreeSet<&str> = retriers
                .iter()
                .filter(|r| {
                    r.get("MaxAttempts")
                        .and_then(Value::as_u64)
                        .unwrap_or(DEFAULT_MAX_ATTEMPTS)
                        > 0
                })
                .filter_map(|r| r.get("ErrorEquals").and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !retried.contains("States.ALL") {
                for error in TRANSIENT_ERRORS {
                    if !retried.contains(error) {
                        problems.push(format!("{label}: Retry does not cover `{error}`"));
                    }
                }
            }
        }
        _ => problems.push(format!(
            "{label} has no Retry: transient errors ({}) would not be retried",
            TRANSIENT_ERRORS.join(", ")
        )),
    }

    match state.get("Catch").and_then(Value::as_array) {
        Some(catchers) if !catchers.is_empty() => {
            for (i, catcher) in catchers.iter().enumerate() {
                let errors = catcher.get("ErrorEquals").and_then(Value::as_array);
                if errors.is_none_or(|e| e.is_empty()) {
                    problems.push(format!("{label}: Catch[{i}] has no ErrorEquals"));
                }
            }
        }
        _ => problems.push(format!(
            "{label} has no Catch: its errors would fail the execution instead of quarantining"
        )),
    }
}

/// Every state must be reachable from StartAt, and from every state an end (a Succeed
/// or Fail state, or `"End": true`) must be reachable.
fn check_reachability(
    scope: &str,
    start: &str,
    states: &Map<String, Value>,
    problems: &mut Vec<String>,
) {
    let edges: BTreeMap<&str, Vec<&str>> = states
        .iter()
        .map(|(name, state)| {
            let targets = state
                .as_object()
                .map(|s| {
                    transitions(s)
                        .into_iter()
                        .filter_map(|(_, t)| t)
                        .filter(|t| states.contains_key(*t))
                        .collect()
                })
                .unwrap_or_default();
            (name.as_str(), targets)
        })
        .collect();

    let reached = reachable_from([start], |name| edges.get(name).cloned().unwrap_or_default());
    for name in states.keys() {
        if !reached.contains(name.as_str()) {
            problems.push(format!(
                "state `{scope}{name}` is unreachable from StartAt `{start}`"
            ));
        }
    }

    let terminals = states.iter().filter_map(|(name, state)| {
        let kind = state.get("Type").and_then(Value::as_str);
        let ends = state.get("End").and_then(Value::as_bool) == Some(true);
        (ends || matches!(kind, Some("Succeed" | "Fail"))).then_some(name.as_str())
    });
    let mut incoming: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, targets) in &edges {
        for to in targets {
            incoming.entry(to).or_default().push(from);
        }
    }
    let can_end = reachable_from(terminals, |name| {
        incoming.get(name).cloned().unwrap_or_default()
    });
    for name in states.keys() {
        if reached.contains(name.as_str()) && !can_end.contains(name.as_str()) {
            problems.push(format!(
                "state `{scope}{name}` can never reach an end (a loop with no way out)"
            ));
        }
    }
}

/// Breadth-first closure of `starts` under `next`.
fn reachable_from<'a>(
    starts: impl IntoIterator<Item = &'a str>,
    next: impl Fn(&str) -> Vec<&'a str>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<&str> = starts.into_iter().collect();
    while let Some(name) = queue.pop_front() {
        if seen.insert(name) {
            queue.extend(next(name));
        }
    }
    seen
}

fn check_placeholders(definition: &Value, keys: &BTreeSet<String>, problems: &mut Vec<String>) {
    let used = placeholders(definition);
    for name in used.difference(keys) {
        problems.push(format!(
            "placeholder `${{{name}}}` has no DefinitionSubstitutions key in {TEMPLATE_PATH}: it would reach AWS unsubstituted"
        ));
    }
    for name in keys.difference(&used) {
        problems.push(format!(
            "DefinitionSubstitutions key `{name}` in {TEMPLATE_PATH} is not used by {DEFINITION_PATH}"
        ));
    }
}

fn collect_placeholders(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => placeholders_in(text, found),
        Value::Array(items) => items.iter().for_each(|v| collect_placeholders(v, found)),
        Value::Object(fields) => {
            for (key, value) in fields {
                placeholders_in(key, found);
                collect_placeholders(value, found);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Adds each `${Name}` in `text` (Name: letters, digits, `_`, `-`, `.`, `:`) to `found`.
fn placeholders_in(text: &str, found: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(open) = rest.find("${") {
        let after = &rest[open + 2..];
        let Some(close) = after.find('}') else {
            return;
        };
        let name = &after[..close];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            found.insert(name.to_owned());
        }
        rest = &after[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn retry() -> Value {
        json!([
            {"ErrorEquals": TRANSIENT_ERRORS, "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}
        ])
    }

    /// A small definition that passes every check.
    fn valid() -> Value {
        json!({
            "StartAt": "Work",
            "TimeoutSeconds": 60,
            "States": {
                "Work": {
                    "Type": "Task",
                    "Resource": "${WorkFunctionArn}",
                    "TimeoutSeconds": 10,
                    "Retry": retry(),
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Rescue"}],
                    "Next": "Decide"
                },
                "Decide": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Done"}],
                    "Default": "Rescue"
                },
                "Rescue": {
                    "Type": "Task",
                    "Resource": "${RescueFunctionArn}",
                    "TimeoutSeconds": 10,
                    "Retry": retry(),
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Broken"}],
                    "End": true
                },
                "Broken": {"Type": "Fail", "Error": "Broken"},
                "Done": {"Type": "Succeed"}
            }
        })
    }

    fn valid_keys() -> BTreeSet<String> {
        keys(&["WorkFunctionArn", "RescueFunctionArn"])
    }

    fn state<'a>(definition: &'a mut Value, name: &str) -> &'a mut Map<String, Value> {
        definition["States"][name]
            .as_object_mut()
            .expect("test definition has this state")
    }

    #[test]
    fn check_valid_definition_has_no_problems() {
        assert_eq!(check(&valid(), &valid_keys()), Vec::<String>::new());
    }

    #[test]
    fn check_not_an_object_is_reported() {
        assert_eq!(
            check(&json!([1, 2]), &valid_keys()),
            vec!["the definition is not a JSON object".to_owned()]
        );
    }

    #[test]
    fn check_broken_definitions_report_each_rule() {
        // (case, breakage, fragment of the expected problem)
        type Breakage = fn(&mut Value);
        let cases: &[(&str, Breakage, &str)] = &[
            (
                "start_at_missing",
                |d| {
                    if let Some(o) = d.as_object_mut() {
                        o.remove("StartAt");
                    }
                },
                "has no StartAt",
            ),
            (
                "start_at_unknown",
                |d| d["StartAt"] = json!("Nowhere"),
                "StartAt names `Nowhere`",
            ),
            (
                "next_unknown",
                |d| {
                    state(d, "Work").insert("Next".into(), json!("Nowhere"));
                },
                "state `Work`: Next names `Nowhere`",
            ),
            (
                "default_unknown",
                |d| {
                    state(d, "Decide").insert("Default".into(), json!("Nowhere"));
                },
                "state `Decide`: Default names `Nowhere`",
            ),
            (
                "choice_next_unknown",
                |d| {
                    d["States"]["Decide"]["Choices"][0]["Next"] = json!("Nowhere");
                },
                "state `Decide`: Choices[0].Next names `Nowhere`",
            ),
            (
                "catch_next_unknown",
                |d| {
                    d["States"]["Work"]["Catch"][0]["Next"] = json!("Nowhere");
                },
                "state `Work`: Catch[0].Next names `Nowhere`",
            ),
            (
                "catch_next_missing",
                |d| {
                    if let Some(c) = d["States"]["Work"]["Catch"][0].as_object_mut() {
                        c.remove("Next");
                    }
                },
                "state `Work`: Catch[0].Next is missing",
            ),
            (
                "state_unreachable",
                |d| {
                    state(d, "Work").insert("Next".into(), json!("Done"));
                    d["States"]["Decide"]["Choices"][0]["Next"] = json!("Done");
                    d["States"]["Island"] = json!({"Type": "Succeed"});
                },
                "state `Island` is unreachable",
            ),
            (
                "loop_without_exit",
                |d| {
                    d["States"]["Spin"] = json!({"Type": "Pass", "Next": "Spin"});
                    state(d, "Decide").insert("Default".into(), json!("Spin"));
                    state(d, "Work").insert("Next".into(), json!("Decide"));
                },
                "state `Spin` can never reach an end",
            ),
            (
                "neither_next_nor_end",
                |d| {
                    state(d, "Rescue").remove("End");
                },
                "state `Rescue` has neither Next nor",
            ),
            (
                "task_retry_missing",
                |d| {
                    state(d, "Work").remove("Retry");
                },
                "state `Work` has no Retry",
            ),
            (
                "task_retry_lacks_transient",
                |d| {
                    d["States"]["Work"]["Retry"][0]["ErrorEquals"] =
                        json!(["Lambda.ServiceException"]);
                },
                "state `Work`: Retry does not cover `Transient`",
            ),
            (
                "task_retry_zero_attempts",
                |d| {
                    d["States"]["Rescue"]["Retry"][0]["MaxAttempts"] = json!(0);
                },
                "state `Rescue`: Retry does not cover `Lambda.TooManyRequestsException`",
            ),
            (
                "task_catch_missing",
                |d| {
                    state(d, "Rescue").remove("Catch");
                },
                "state `Rescue` has no Catch",
            ),
            (
                "task_catch_empty_errors",
                |d| {
                    d["States"]["Work"]["Catch"][0]["ErrorEquals"] = json!([]);
                },
                "state `Work`: Catch[0] has no ErrorEquals",
            ),
            (
                "task_timeout_missing",
                |d| {
                    state(d, "Work").remove("TimeoutSeconds");
                },
                "state `Work` has no TimeoutSeconds",
            ),
            (
                "machine_timeout_missing",
                |d| {
                    if let Some(o) = d.as_object_mut() {
                        o.remove("TimeoutSeconds");
                    }
                },
                "no top-level TimeoutSeconds",
            ),
            (
                "machine_timeout_zero",
                |d| d["TimeoutSeconds"] = json!(0),
                "not a positive integer",
            ),
            (
                "placeholder_unsubstituted",
                |d| {
                    d["States"]["Work"]["Resource"] = json!("${OtherFunctionArn}");
                },
                "placeholder `${OtherFunctionArn}` has no DefinitionSubstitutions key",
            ),
            (
                "substitution_unused",
                |d| {
                    d["States"]["Rescue"]["Resource"] =
                        json!("arn:aws:lambda:us-east-1:1:function:x");
                },
                "key `RescueFunctionArn` in infra/template.yaml is not used",
            ),
            (
                "parallel_branch_next_unknown",
                |d| {
                    state(d, "Work").insert("Next".into(), json!("Fan"));
                    d["States"]["Fan"] = json!({
                        "Type": "Parallel", "Next": "Decide",
                        "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}]
                    });
                },
                "state `Fan.Branches[0].A`: Next names `B`",
            ),
        ];
        let mut unmet = Vec::new();
        for (case, breakage, expected) in cases {
            let mut definition = valid();
            breakage(&mut definition);
            let problems = check(&definition, &valid_keys());
            if !problems.iter().any(|p| p.contains(expected)) {
                unmet.push(format!("{case}: expected {expected:?}, got {problems:#?}"));
            }
        }
        assert!(unmet.is_empty(), "{}", unmet.join("\n"));
    }

    #[test]
    fn check_retry_with_states_all_covers_transient_errors() {
        let mut definition = valid();
        definition["States"]["Work"]["Retry"] = json!([{"ErrorEquals": ["States.ALL"]}]);
        assert_eq!(check(&definition, &valid_keys()), Vec::<String>::new());
    }

    #[test]
    fn check_timeout_seconds_path_counts_as_task_timeout() {
        let mut definition = valid();
        let work = state(&mut definition, "Work");
        work.remove("TimeoutSeconds");
        work.insert("TimeoutSecondsPath".into(), json!("$.timeout"));
        assert_eq!(check(&definition, &valid_keys()), Vec::<String>::new());
    }

    #[test]
    fn placeholders_in_keys_and_values_are_found() {
        let definition = json!({
            "A": "${One}",
            "B": ["x ${Two} y ${Three}", "$.not.a.placeholder", "${}", "${unclosed"],
            "${Four}": {"C": "States.Format('{}', $.x)"}
        });
        assert_eq!(
            placeholders(&definition),
            keys(&["Four", "One", "Three", "Two"])
        );
    }

    #[test]
    fn substitute_placeholders_become_dummy_arns() {
        let text = r#"{"R": "${InspectFunctionArn}", "S": "${LoadFunctionArn}", "T": "${Other}"}"#;
        let map = dummy_substitutions(&keys(&["InspectFunctionArn", "LoadFunctionArn"]));
        let substituted: Value = serde_json::from_str(&substitute(text, &map)).expect("still JSON");
        assert_eq!(
            substituted,
            json!({
                "R": "arn:aws:lambda:us-east-1:123456789012:function:inspect",
                "S": "arn:aws:lambda:us-east-1:123456789012:function:load",
                "T": "${Other}"
            })
        );
    }

    #[test]
    fn dummy_substitutions_key_without_arn_suffix_keeps_its_name() {
        let map = dummy_substitutions(&keys(&["Arn", "Thing"]));
        assert_eq!(
            map.get("Arn").map(String::as_str),
            Some("arn:aws:lambda:us-east-1:123456789012:function:arn")
        );
        assert_eq!(
            map.get("Thing").map(String::as_str),
            Some("arn:aws:lambda:us-east-1:123456789012:function:thing")
        );
    }

    #[test]
    fn substitution_keys_template_with_short_tags_yields_keys() {
        let template = r#"
Conditions:
  HasPrefix: !Not [!Equals [!Ref Prefix, ""]]
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-fn"
  Machine:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      DefinitionS3Location:
        Bucket: !Ref Artifacts
        Key: !Ref DefinitionKey
      DefinitionSubstitutions:
        FnArn: !GetAtt Fn.Arn
        Literal: plain
"#;
        assert_eq!(
            substitution_keys(template).expect("parses"),
            keys(&["FnArn", "Literal"])
        );
    }

    #[test]
    fn substitution_keys_template_without_state_machine_fails() {
        let template = "Resources:\n  B:\n    Type: AWS::S3::Bucket\n";
        assert!(substitution_keys(template).is_err());
    }

    #[test]
    fn substitution_keys_invalid_yaml_fails() {
        assert!(substitution_keys("Resources: [unclosed").is_err());
    }

    #[test]
    fn repository_definition_and_template_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask sits in the workspace");
        let sources = load(root).expect("definition and template load");
        assert_eq!(
            sources.substitution_keys,
            keys(&[
                "InspectFunctionArn",
                "LoadFunctionArn",
                "QuarantineFunctionArn",
                "TransformFunctionArn"
            ])
        );
        assert_eq!(
            check(&sources.definition, &sources.substitution_keys),
            Vec::<String>::new()
        );
        let substituted = substitute(
            &sources.definition_text,
            &dummy_substitutions(&sources.substitution_keys),
        );
        assert!(!substituted.contains("${"), "{substituted}");
        let parsed: Value = serde_json::from_str(&substituted).expect("still JSON");
        assert_eq!(
            parsed["States"]["Inspect"]["Resource"],
            json!("arn:aws:lambda:us-east-1:123456789012:function:inspect")
        );
    }
}
