//! Security rules over `infra/template.yaml`: least-privilege roles, Block Public Access,
//! encryption and TLS-only policies on every bucket, a scoped invoke permission.
//!
//! MiniStack enforces neither IAM nor bucket policies, so none of this can be observed in
//! the end-to-end tests; it is checked statically instead, by `cargo xtask lint` and by the
//! tests below, each of which mutates a copy of the real template and expects the rule to
//! report it. The checks are pure functions over the parsed template and return one
//! sentence per problem (empty = fine).
//!
//! Names and ARNs are compared after rendering: `!Sub`, `!Ref` and `!GetAtt` are resolved
//! against the template's own resources, with `{stack}`, `{account}` and `{region}` for the
//! pseudo parameters, so `!Sub "${OutputBucket.Arn}/manifests/*"` and a literal
//! `arn:aws:s3:::{stack}-output-{account}/manifests/*` are the same grant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::asl::TEMPLATE_PATH;

/// The reviewed policy: every function's role and exactly the grants it holds, as
/// (action, rendered resource). A grant added to or removed from the template fails the
/// check until this table (and the IAM table in `infra/README.md`) says so too.
const INPUT_BUCKET: &str = "arn:aws:s3:::{stack}-input-{account}";
const INPUT_OBJECTS: &str = "arn:aws:s3:::{stack}-input-{account}/*";
const LOGS: &str = "arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{stack}-";

/// (function, role, grants). A grant's resource may end in `<fn>` for "this function's
/// own log group".
type Expected = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const OWN_LOGS: [(&str, &str); 2] = [
    ("logs:CreateLogStream", "<own log group>"),
    ("logs:PutLogEvents", "<own log group>"),
];

const EXPECTED_ROLES: [Expected; 7] = [
    (
        "IngestFunction",
        "IngestRole",
        &[
            (
                "states:StartExecution",
                "arn:aws:states:{region}:{account}:stateMachine:{stack}-pipeline",
            ),
            ("sqs:SendMessage", "<arn of IngestFailureQueue>"),
        ],
    ),
    (
        "ReconcileFunction",
        "ReconcileRole",
        &[
            ("s3:ListBucketVersions", INPUT_BUCKET),
            ("s3:ListBucket", "arn:aws:s3:::{stack}-output-{account}"),
            (
                "s3:GetObject",
                "arn:aws:s3:::{stack}-output-{account}/manifests/*",
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::{stack}-output-{account}/quarantine/reports/*",
            ),
            (
                "states:StartExecution",
                "arn:aws:states:{region}:{account}:stateMachine:{stack}-pipeline",
            ),
            (
                "states:DescribeExecution",
                "arn:aws:states:{region}:{account}:execution:{stack}-pipeline:*",
            ),
        ],
    ),
    (
        "InspectFunction",
        "InspectRole",
        &[
            ("s3:GetObject", INPUT_OBJECTS),
            ("s3:GetObjectVersion", INPUT_OBJECTS),
            ("s3:ListBucket", INPUT_BUCKET),
        ],
    ),
    (
        "TransformFunction",
        "TransformRole",
        &[
            ("s3:GetObject", INPUT_OBJECTS),
            ("s3:GetObjectVersion", INPUT_OBJECTS),
            ("s3:ListBucket", INPUT_BUCKET),
            (
                "s3:PutObject",
                "arn:aws:s3:::{stack}-output-{account}/thumbnails/*",
            ),
        ],
    ),
    (
        "LoadFunction",
        "LoadRole",
        &[
            ("s3:GetObject", INPUT_OBJECTS),
            ("s3:ListBucket", INPUT_BUCKET),
            (
                "s3:GetObject",
                "arn:aws:s3:::{stack}-output-{account}/manifests/*",
            ),
            (
                "s3:PutObject",
                "arn:aws:s3:::{stack}-output-{account}/manifests/*",
            ),
            (
                "s3:DeleteObject",
                "arn:aws:s3:::{stack}-output-{account}/thumbnails/*",
            ),
            ("dynamodb:GetItem", "<arn of CatalogTable>"),
            ("dynamodb:PutItem", "<arn of CatalogTable>"),
        ],
    ),
    (
        "QuarantineFunction",
        "QuarantineRole",
        &[
            ("s3:GetObject", INPUT_OBJECTS),
            ("s3:GetObjectVersion", INPUT_OBJECTS),
            ("s3:ListBucket", INPUT_BUCKET),
            (
                "s3:PutObject",
                "arn:aws:s3:::{stack}-output-{account}/quarantine/objects/*",
            ),
            (
                "s3:PutObject",
                "arn:aws:s3:::{stack}-output-{account}/quarantine/reports/*",
            ),
            (
                "s3:DeleteObject",
                "arn:aws:s3:::{stack}-output-{account}/quarantine/objects/*",
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::{stack}-output-{account}/quarantine/reports/*",
            ),
            ("dynamodb:GetItem", "<arn of CatalogTable>"),
            ("dynamodb:PutItem", "<arn of CatalogTable>"),
        ],
    ),
    (
        "CountersFunction",
        "CountersRole",
        &[
            ("dynamodb:DescribeStream", "<CatalogTable.StreamArn>"),
            ("dynamodb:GetRecords", "<CatalogTable.StreamArn>"),
            ("dynamodb:GetShardIterator", "<CatalogTable.StreamArn>"),
            ("dynamodb:ListStreams", "<CatalogTable.StreamArn>"),
            ("dynamodb:PutItem", "<arn of CountersTable>"),
            ("dynamodb:UpdateItem", "<arn of CountersTable>"),
        ],
    ),
];

/// The state machine's role may invoke exactly the `live` aliases of the four ETL
/// functions (not their unqualified ARNs, so not `$LATEST`).
const STATE_MACHINE_ROLE: &str = "StateMachineRole";
const STATE_MACHINE_INVOKES: [&str; 4] = [
    "InspectLiveAlias",
    "TransformLiveAlias",
    "LoadLiveAlias",
    "QuarantineLiveAlias",
];

/// Which environment variables name the prefixes each writing function may write under.
/// Load also removes the thumbnails of a version that lost to a newer write.
const WRITE_PREFIX_VARIABLES: [(&str, &[&str]); 3] = [
    ("TransformFunction", &["THUMBNAILS_PREFIX"]),
    ("LoadFunction", &["MANIFESTS_PREFIX", "THUMBNAILS_PREFIX"]),
    ("QuarantineFunction", &["QUARANTINE_PREFIX"]),
];

/// S3 actions that create, replace or remove objects.
const S3_WRITE_ACTIONS: [&str; 4] = [
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:RestoreObject",
];

/// Reads the template of the workspace at `root` and checks it.
pub fn check_workspace(root: &Path) -> Result<Vec<String>> {
    let path = root.join(TEMPLATE_PATH);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    check(&text)
}

/// Every security problem in the template text.
pub fn check(template_text: &str) -> Result<Vec<String>> {
    let template = Template::parse(template_text)?;
    let mut problems = Vec::new();
    check_roles(&template, &mut problems);
    check_buckets(&template, &mut problems);
    check_invoke_permissions(&template, &mut problems);
    Ok(problems)
}

/// The template in CloudFormation's long JSON form (short tags expanded).
pub struct Template {
    resources: Map<String, Value>,
    parameters: Map<String, Value>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).context("parsing the template as YAML")?;
        let json = long_form(yaml)?;
        let Some(resources) = json.get("Resources").and_then(Value::as_object).cloned() else {
            bail!("the template has no Resources mapping");
        };
        let parameters = json
            .get("Parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Template {
            resources,
            parameters,
        })
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .map(|(id, r)| (id.as_str(), r))
    }

    fn property<'a>(&'a self, id: &str, path: &[&str]) -> Option<&'a Value> {
        let mut v = self.resources.get(id)?.get("Properties")?;
        for p in path {
            v = v.get(*p)?;
        }
        Some(v)
    }

    fn kind(&self, id: &str) -> Option<&str> {
        self.resources.get(id)?.get("Type")?.as_str()
    }

    /// The physical name a resource gets, from its name property.
    fn name(&self, id: &str) -> String {
        let property = match self.kind(id) {
            Some("AWS::S3::Bucket") => "BucketName",
            Some("AWS::Lambda::Function") => "FunctionName",
            Some("AWS::Logs::LogGroup") => "LogGroupName",
            Some("AWS::StepFunctions::StateMachine") => "StateMachineName",
            Some("AWS::DynamoDB::Table") => "TableName",
            _ => "",
        };
        match self.property(id, &[property]) {
            Some(v) => self.render(v),
            None => format!("<name of {id}>"),
        }
    }

    fn arn(&self, id: &str) -> String {
        let name = self.name(id);
        match self.kind(id) {
            Some("AWS::S3::Bucket") => format!("arn:aws:s3:::{name}"),
            Some("AWS::Lambda::Function") => {
                format!("arn:aws:lambda:{{region}}:{{account}}:function:{name}")
            }
            Some("AWS::Logs::LogGroup") => {
                format!("arn:aws:logs:{{region}}:{{account}}:log-group:{name}:*")
            }
            Some("AWS::StepFunctions::StateMachine") => {
                format!("arn:aws:states:{{region}}:{{account}}:stateMachine:{name}")
            }
            // An alias ARN is its function's ARN qualified by the alias name.
            Some("AWS::Lambda::Alias") => {
                let function = self
                    .property(id, &["FunctionName"])
                    .and_then(|f| f.get("Ref"))
                    .and_then(Value::as_str)
                    .map(|f| self.arn(f))
                    .unwrap_or_else(|| format!("<function of {id}>"));
                let alias = self
                    .property(id, &["Name"])
                    .map(|n| self.render(n))
                    .unwrap_or_else(|| format!("<name of {id}>"));
                format!("{function}:{alias}")
            }
            _ => format!("<arn of {id}>"),
        }
    }

    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::StackName" => "{stack}".into(),
            "AWS::AccountId" => "{account}".into(),
            "AWS::Region" => "{region}".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            _ => match self.kind(name) {
                // Ref of a state machine or an alias is its ARN; of these others, the name.
                Some("AWS::StepFunctions::StateMachine" | "AWS::Lambda::Alias") => self.arn(name),
                Some(_) => self.name(name),
                None => format!("{{param:{name}}}"),
            },
        }
    }

    fn attribute(&self, id: &str, attribute: &str) -> String {
        match attribute {
            "Arn" => self.arn(id),
            other => format!("<{id}.{other}>"),
        }
    }

    /// A string value with `Fn::Sub`, `Ref` and `Fn::GetAtt` resolved.
    fn render(&self, value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Object(o) if o.len() == 1 => {
                if let Some(Value::String(name)) = o.get("Ref") {
                    return self.reference(name);
                }
                if let Some(Value::Array(parts)) = o.get("Fn::GetAtt") {
                    if let [Value::String(id), Value::String(attr)] = parts.as_slice() {
                        return self.attribute(id, attr);
                    }
                }
                if let Some(Value::String(text)) = o.get("Fn::Sub") {
                    return self.substitute(text);
                }
                format!("<unresolved {value}>")
            }
            other => other.to_string(),
        }
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let inner = &after[..end];
            match inner.split_once('.') {
                Some((id, attr)) if !inner.starts_with("AWS::") => {
                    out.push_str(&self.attribute(id, attr))
                }
                _ => out.push_str(&self.reference(inner)),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The logical id a `Ref`/`GetAtt` value points at, if any.
    fn target_id<'a>(&self, value: &'a Value) -> Option<&'a str> {
        if let Some(r) = value.get("Ref").and_then(Value::as_str) {
            return Some(r);
        }
        value
            .get("Fn::GetAtt")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
    }
}

// ------------------------------------------------------------------ the policy model
// What `integration-tests/tests/permissions.rs` evaluates with `pipeline_aws::iam`: each
// role's Allow statements and each function's role and environment, rendered for one
// concrete deployment, so the test exercises the template as CloudFormation would deploy it.

/// The stack a rendering is for: what CloudFormation substitutes for `AWS::StackName`,
/// `AWS::AccountId` and `AWS::Region`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment<'a> {
    pub stack: &'a str,
    pub account: &'a str,
    pub region: &'a str,
}

/// One `Allow` statement of a role's inline policies, its resources as concrete ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// All must hold for the statement to apply.
    pub conditions: Vec<Condition>,
}

/// One condition of a statement: `operator` (e.g. `StringLike`) over the request's
/// context value for `key` (e.g. `s3:prefix`), matching any of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

/// A Lambda function of the template as deployed: its physical name, the logical id of the
/// role it runs as, and its environment variables (parameters at their defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSetup {
    pub id: String,
    pub name: String,
    pub role: String,
    pub environment: BTreeMap<String, String>,
}

/// The Allow statements of `role` (a logical id) in the template text, for `at`.
pub fn role_statements(
    template_text: &str,
    role: &str,
    at: Deployment<'_>,
) -> Result<Vec<Statement>> {
    Template::parse(template_text)?.role_statements(role, at)
}

/// Every Lambda function of the template text, for `at`.
pub fn functions(template_text: &str, at: Deployment<'_>) -> Result<Vec<FunctionSetup>> {
    Template::parse(template_text)?.functions(at)
}

impl Template {
    /// The Allow statements of `role`. Whatever the model cannot evaluate faithfully
    /// (a Deny, `NotAction`/`NotResource`, a managed policy, a name it cannot resolve) is
    /// an error rather than a statement that allows more or less than AWS would.
    pub fn role_statements(&self, role: &str, at: Deployment<'_>) -> Result<Vec<Statement>> {
        if self.kind(role) != Some("AWS::IAM::Role") {
            bail!("{role} is not an AWS::IAM::Role of the template");
        }
        if self.property(role, &["ManagedPolicyArns"]).is_some() {
            bail!("role {role} attaches managed policies, whose grants this model cannot see");
        }
        let mut out = Vec::new();
        let policies = self.property(role, &["Policies"]).and_then(Value::as_array);
        for policy in policies.into_iter().flatten() {
            for statement in statements(policy.get("PolicyDocument")) {
                let label = format!("role {role}{}", sid(statement));
                for field in ["NotAction", "NotResource", "NotPrincipal"] {
                    if statement.get(field).is_some() {
                        bail!("{label} uses {field}, which this model does not evaluate");
                    }
                }
                if !is_allow(statement) {
                    bail!("{label} is not an Allow statement; this model evaluates Allow statements only");
                }
                let actions = strings(self, statement.get("Action"));
                let resources = strings(self, statement.get("Resource"))
                    .iter()
                    .map(|r| self.concrete(r, at))
                    .collect::<Result<Vec<_>>>()
                    .with_context(|| label.clone())?;
                if actions.is_empty() || resources.is_empty() {
                    bail!("{label} names no action or no resource");
                }
                let conditions = self
                    .conditions(statement.get("Condition"), at)
                    .with_context(|| label.clone())?;
                out.push(Statement {
                    sid: statement
                        .get("Sid")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    actions,
                    resources,
                    conditions,
                });
            }
        }
        if out.is_empty() {
            bail!("role {role} has no inline policy statements");
        }
        Ok(out)
    }

    fn conditions(&self, value: Option<&Value>, at: Deployment<'_>) -> Result<Vec<Condition>> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let Some(operators) = value.as_object() else {
            bail!("its Condition is not a mapping");
        };
        let mut out = Vec::new();
        for (operator, keys) in operators {
            let Some(keys) = keys.as_object() else {
                bail!("its Condition {operator} is not a mapping");
            };
            for (key, values) in keys {
                let values = strings(self, Some(values))
                    .iter()
                    .map(|v| self.concrete(v, at))
                    .collect::<Result<Vec<_>>>()?;
                out.push(Condition {
                    operator: operator.clone(),
                    key: key.clone(),
                    values,
                });
            }
        }
        Ok(out)
    }

    /// Every `AWS::Lambda::Function`, with its role and environment.
    pub fn functions(&self, at: Deployment<'_>) -> Result<Vec<FunctionSetup>> {
        let mut out = Vec::new();
        for (id, _) in self.of_type("AWS::Lambda::Function") {
            let role = self
                .property(id, &["Role"])
                .and_then(|r| self.target_id(r))
                .with_context(|| format!("{id} names no role of the template"))?;
            let mut environment = BTreeMap::new();
            if let Some(variables) = self
                .property(id, &["Environment", "Variables"])
                .and_then(Value::as_object)
            {
                for (name, value) in variables {
                    let value = self
                        .concrete(&self.render(value), at)
                        .with_context(|| format!("{id}: environment variable {name}"))?;
                    environment.insert(name.clone(), value);
                }
            }
            out.push(FunctionSetup {
                id: id.to_owned(),
                name: self.concrete(&self.name(id), at)?,
                role: role.to_owned(),
                environment,
            });
        }
        Ok(out)
    }

    /// A rendered string for one deployment: the pseudo parameters and parameter defaults
    /// filled in, the ARNs of tables, streams and queues spelled out. Anything left
    /// unresolved is an error, never a string that might match by accident.
    fn concrete(&self, rendered: &str, at: Deployment<'_>) -> Result<String> {
        let mut out = String::new();
        let mut rest = rendered;
        while let Some(start) = rest.find(['<', '{']) {
            out.push_str(&rest[..start]);
            let close = if rest[start..].starts_with('<') {
                '>'
            } else {
                '}'
            };
            let after = &rest[start + 1..];
            let Some(len) = after.find(close) else {
                bail!("cannot resolve {rendered:?}");
            };
            let resolved = self
                .resolve(&after[..len], close, at)
                .with_context(|| format!("resolving {rendered:?}"))?;
            out.push_str(&resolved);
            rest = &after[len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// One `{...}` or `<...>` marker left by [`Template::render`].
    fn resolve(&self, marker: &str, close: char, at: Deployment<'_>) -> Result<String> {
        if close == '}' {
            return match marker {
                "stack" => Ok(at.stack.to_owned()),
                "account" => Ok(at.account.to_owned()),
                "region" => Ok(at.region.to_owned()),
                _ => {
                    let Some(name) = marker.strip_prefix("param:") else {
                        bail!("unknown placeholder {{{marker}}}");
                    };
                    match self.parameters.get(name).and_then(|p| p.get("Default")) {
                        Some(Value::String(s)) => self.concrete(s, at),
                        Some(Value::Number(n)) => Ok(n.to_string()),
                        _ => bail!("parameter {name} has no default to deploy with"),
                    }
                }
            };
        }
        let (id, attribute) = match marker.strip_prefix("arn of ") {
            Some(id) => (id, "Arn"),
            None => marker
                .split_once('.')
                .with_context(|| format!("cannot resolve <{marker}>"))?,
        };
        let arn = match (self.kind(id), attribute) {
            (Some("AWS::DynamoDB::Table"), "Arn") => {
                format!(
                    "arn:aws:dynamodb:{{region}}:{{account}}:table/{}",
                    self.name(id)
                )
            }
            // A stream's ARN ends in a label chosen at deploy time: any stream of the table.
            (Some("AWS::DynamoDB::Table"), "StreamArn") => format!(
                "arn:aws:dynamodb:{{region}}:{{account}}:table/{}/stream/*",
                self.name(id)
            ),
            (Some("AWS::SQS::Queue"), "Arn") => {
                let name = self
                    .property(id, &["QueueName"])
                    .map(|n| self.render(n))
                    .with_context(|| format!("queue {id} has no QueueName"))?;
                format!("arn:aws:sqs:{{region}}:{{account}}:{name}")
            }
            _ => bail!("cannot resolve <{marker}>: no ARN rule for {id}'s type"),
        };
        self.concrete(&arn, at)
    }
}

/// CloudFormation YAML to its long JSON form: `!Ref X` -> `{"Ref": X}`,
/// `!GetAtt A.B` -> `{"Fn::GetAtt": [A, B]}`, `!Sub s` -> `{"Fn::Sub": s}`, ...
pub fn long_form(value: serde_yaml_ng::Value) -> Result<Value> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n)?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(long_form)
                .collect::<Result<Vec<_>>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let Y::String(k) = k else {
                    bail!("a mapping key is not a string: {k:?}");
                };
                out.insert(k, long_form(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = long_form(tagged.value)?;
            let (key, inner) = match tag {
                "Ref" => ("Ref".to_owned(), inner),
                "Condition" => ("Condition".to_owned(), inner),
                "GetAtt" => {
                    let inner = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((id, attr)) => Value::Array(vec![id.into(), attr.into()]),
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(key, inner);
            Value::Object(out)
        }
    })
}

/// A string or a list of strings (`Action`, `Resource`), rendered.
fn strings(template: &Template, value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(|v| template.render(v)).collect(),
        Some(v) => vec![template.render(v)],
    }
}

fn statements(document: Option<&Value>) -> Vec<&Value> {
    match document.and_then(|d| d.get("Statement")) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    }
}

fn is_allow(statement: &Value) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
}

fn sid(statement: &Value) -> String {
    statement
        .get("Sid")
        .and_then(Value::as_str)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default()
}

/// (action, resource) pairs a role's inline policies allow.
fn grants(
    template: &Template,
    role: &str,
    problems: &mut Vec<String>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let policies = template
        .property(role, &["Policies"])
        .and_then(Value::as_array);
    for policy in policies.into_iter().flatten() {
        for statement in statements(policy.get("PolicyDocument")) {
            let label = format!("role {role}{}", sid(statement));
            for field in ["NotAction", "NotResource", "NotPrincipal"] {
                if statement.get(field).is_some() {
                    problems.push(format!(
                        "{label} uses {field}: an exclusion list allows everything else"
                    ));
                }
            }
            if !is_allow(statement) {
                continue;
            }
            let actions = strings(template, statement.get("Action"));
            let resources = strings(template, statement.get("Resource"));
            for action in &actions {
                if action.contains('*') {
                    problems.push(format!(
                        "{label} allows the wildcard action `{action}`: name each action"
                    ));
                }
            }
            for resource in &resources {
                if resource == "*" {
                    problems.push(format!(
                        "{label} allows its actions on every resource (`*`)"
                    ));
                }
            }
            for action in &actions {
                for resource in &resources {
                    out.insert((action.clone(), resource.clone()));
                }
            }
        }
    }
    out
}

fn check_roles(template: &Template, problems: &mut Vec<String>) {
    for (id, _) in template
        .of_type("AWS::IAM::Policy")
        .chain(template.of_type("AWS::IAM::ManagedPolicy"))
    {
        problems.push(format!(
            "{id} is a separate IAM policy: keep each role's grants inline in the role, where these checks and the reviewed table see them"
        ));
    }
    let roles: Vec<&str> = template
        .of_type("AWS::IAM::Role")
        .map(|(id, _)| id)
        .collect();
    let mut all_grants = BTreeMap::new();
    for role in &roles {
        if let Some(managed) = template
            .property(role, &["ManagedPolicyArns"])
            .and_then(Value::as_array)
        {
            for arn in managed.iter().map(|a| template.render(a)) {
                if arn.contains("FullAccess") {
                    problems.push(format!(
                        "role {role} attaches the managed policy {arn} (*FullAccess)"
                    ));
                } else {
                    problems.push(format!(
                        "role {role} attaches the managed policy {arn}: roles hold inline least-privilege policies only"
                    ));
                }
            }
        }
        all_grants.insert(*role, grants(template, role, problems));
    }

    // Each function runs as its own role, and that role holds exactly its reviewed grants.
    for (function, role, expected) in EXPECTED_ROLES {
        let used = template
            .property(function, &["Role"])
            .and_then(|r| template.target_id(r));
        if used != Some(role) {
            problems.push(format!(
                "{function} runs as {}, expected its own role {role}",
                used.unwrap_or("<no role>")
            ));
        }
        let own_logs = template
            .property(function, &["LoggingConfig", "LogGroup"])
            .and_then(|g| template.target_id(g))
            .map(|g| template.arn(g))
            .unwrap_or_else(|| format!("{LOGS}<{function} has no log group>"));
        let expected: BTreeSet<(String, String)> = expected
            .iter()
            .chain(OWN_LOGS.iter())
            .map(|(a, r)| {
                let r = if *r == "<own log group>" {
                    own_logs.clone()
                } else {
                    (*r).to_owned()
                };
                ((*a).to_owned(), r)
            })
            .collect();
        let Some(actual) = all_grants.get(role) else {
            problems.push(format!("the template has no role {role} for {function}"));
            continue;
        };
        compare_grants(role, &expected, actual, problems);
    }

    // The state machine invokes exactly the four ETL functions.
    match all_grants.get(STATE_MACHINE_ROLE) {
        Some(actual) => {
            let expected: BTreeSet<(String, String)> = STATE_MACHINE_INVOKES
                .iter()
                .map(|f| ("lambda:InvokeFunction".to_owned(), template.arn(f)))
                .collect();
            compare_grants(STATE_MACHINE_ROLE, &expected, actual, problems);
        }
        None => problems.push(format!("the template has no role {STATE_MACHINE_ROLE}")),
    }
    let known: BTreeSet<&str> = EXPECTED_ROLES
        .iter()
        .map(|(_, role, _)| *role)
        .chain([STATE_MACHINE_ROLE])
        .collect();
    for role in roles.iter().filter(|r| !known.contains(*r)) {
        problems.push(format!(
            "role {role} is not in the reviewed policy table (xtask/src/security.rs)"
        ));
    }

    // Rules that hold whatever the table says.
    for (role, granted) in &all_grants {
        for (action, resource) in granted {
            let per_version_output = resource.contains("-output-")
                && (resource.ends_with("/thumbnails/*")
                    || resource.ends_with("/quarantine/objects/*"));
            if action.starts_with("s3:Delete")
                && !(action == "s3:DeleteObject" && per_version_output)
            {
                problems.push(format!(
                    "role {role} may delete ({action} on {resource}): the pipeline only deletes the per-version outputs of a superseded version (thumbnails/, quarantine/objects/ in the output bucket)"
                ));
            }
        }
    }
    for (function, variables) in WRITE_PREFIX_VARIABLES {
        let mut allowed = Vec::new();
        for variable in variables {
            match template
                .property(function, &["Environment", "Variables", variable])
                .map(|p| template.render(p))
            {
                Some(prefix) => allowed.push(prefix),
                None => problems.push(format!("{function} has no {variable} in its environment")),
            }
        }
        if allowed.len() != variables.len() {
            continue;
        }
        let role = template
            .property(function, &["Role"])
            .and_then(|r| template.target_id(r))
            .unwrap_or_default();
        let Some(granted) = all_grants.get(role) else {
            continue;
        };
        let bucket = template
            .property(function, &["Environment", "Variables", "OUTPUT_BUCKET"])
            .map(|b| template.render(b))
            .unwrap_or_default();
        for (action, resource) in granted {
            if !S3_WRITE_ACTIONS.contains(&action.as_str()) {
                continue;
            }
            if !allowed
                .iter()
                .any(|prefix| resource.starts_with(&format!("arn:aws:s3:::{bucket}/{prefix}")))
            {
                problems.push(format!(
                    "role {role} may {action} on {resource}, outside the output prefixes {} its function writes ({})",
                    allowed.join(", "),
                    variables.join(", ")
                ));
            }
        }
    }
}

fn compare_grants(
    role: &str,
    expected: &BTreeSet<(String, String)>,
    actual: &BTreeSet<(String, String)>,
    problems: &mut Vec<String>,
) {
    for (action, resource) in actual.difference(expected) {
        problems.push(format!(
            "role {role} allows {action} on {resource}, which is not in its reviewed grants"
        ));
    }
    for (action, resource) in expected.difference(actual) {
        problems.push(format!(
            "role {role} lacks {action} on {resource}, which its function needs"
        ));
    }
}

fn check_buckets(template: &Template, problems: &mut Vec<String>) {
    let policies: Vec<(&str, &Value)> = template.of_type("AWS::S3::BucketPolicy").collect();
    for (id, _) in template.of_type("AWS::S3::Bucket") {
        let flags = template.property(id, &["PublicAccessBlockConfiguration"]);
        for flag in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            let on = flags.and_then(|f| f.get(flag)).is_some_and(is_true);
            if !on {
                problems.push(format!(
                    "bucket {id}: PublicAccessBlockConfiguration.{flag} is not true"
                ));
            }
        }

        let algorithms: Vec<String> = template
            .property(
                id,
                &["BucketEncryption", "ServerSideEncryptionConfiguration"],
            )
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|rule| {
                rule.get("ServerSideEncryptionByDefault")
                    .and_then(|d| d.get("SSEAlgorithm"))
                    .map(|a| template.render(a))
            })
            .collect();
        if algorithms.is_empty()
            || !algorithms
                .iter()
                .all(|a| ["AES256", "aws:kms", "aws:kms:dsse"].contains(&a.as_str()))
        {
            problems.push(format!(
                "bucket {id} has no default encryption (BucketEncryption with SSEAlgorithm AES256 or aws:kms)"
            ));
        }

        let arn = template.arn(id);
        let name = template.name(id);
        let own: Vec<&Value> = policies
            .iter()
            .filter(|(pid, _)| {
                template
                    .property(pid, &["Bucket"])
                    .is_some_and(|b| template.render(b) == name)
            })
            .map(|(_, p)| *p)
            .collect();
        let tls_only = own.iter().any(|policy| {
            statements(
                policy
                    .get("Properties")
                    .and_then(|p| p.get("PolicyDocument")),
            )
            .into_iter()
            .any(|s| denies_plain_http(template, s, &arn))
        });
        if !tls_only {
            problems.push(format!(
                "bucket {id} has no TLS-only policy (Deny s3:* for everyone on the bucket and its objects when aws:SecureTransport is false)"
            ));
        }
        for policy in own {
            for statement in statements(
                policy
                    .get("Properties")
                    .and_then(|p| p.get("PolicyDocument")),
            ) {
                if is_allow(statement) && is_everyone(statement.get("Principal")) {
                    problems.push(format!(
                        "bucket {id}: its policy allows everyone{}",
                        sid(statement)
                    ));
                }
            }
        }
    }
}

fn is_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || v.as_str() == Some("true")
}

fn is_everyone(principal: Option<&Value>) -> bool {
    match principal {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(o)) => o.get("AWS").is_some_and(|a| {
            a.as_str() == Some("*")
                || a.as_array()
                    .is_some_and(|l| l.iter().any(|x| x.as_str() == Some("*")))
        }),
        _ => false,
    }
}

fn denies_plain_http(template: &Template, statement: &Value, bucket_arn: &str) -> bool {
    let deny = statement.get("Effect").and_then(Value::as_str) == Some("Deny");
    let actions = strings(template, statement.get("Action"));
    let all_actions = actions.iter().any(|a| a == "s3:*" || a == "*");
    let resources = strings(template, statement.get("Resource"));
    let covers = resources.iter().any(|r| r == bucket_arn)
        && resources.iter().any(|r| *r == format!("{bucket_arn}/*"));
    let insecure = statement
        .get("Condition")
        .and_then(|c| c.get("Bool"))
        .and_then(|b| b.get("aws:SecureTransport"))
        .is_some_and(|v| matches!(v, Value::Bool(false)) || v.as_str() == Some("false"));
    deny && is_everyone(statement.get("Principal")) && all_actions && covers && insecure
}

fn check_invoke_permissions(template: &Template, problems: &mut Vec<String>) {
    let buckets: Vec<String> = template
        .of_type("AWS::S3::Bucket")
        .map(|(id, _)| template.arn(id))
        .collect();
    let mut any = false;
    for (id, _) in template.of_type("AWS::Lambda::Permission") {
        any = true;
        match template.property(id, &["SourceAccount"]).map(|a| template.render(a)) {
            Some(account) if account == "{account}" => {}
            Some(other) => problems.push(format!(
                "{id}: SourceAccount is {other}, not this stack's account"
            )),
            None => problems.push(format!(
                "{id} has no SourceAccount: a bucket of the same name in another account could invoke the function"
            )),
        }
        let principal = template
            .property(id, &["Principal"])
            .map(|p| template.render(p))
            .unwrap_or_default();
        match template
            .property(id, &["SourceArn"])
            .map(|a| template.render(a))
        {
            Some(arn) if principal == "s3.amazonaws.com" && !buckets.contains(&arn) => problems
                .push(format!(
                    "{id}: SourceArn {arn} is not a bucket of this template"
                )),
            Some(_) => {}
            None => problems.push(format!(
                "{id} has no SourceArn: any bucket could invoke the function"
            )),
        }
    }
    if !any {
        problems.push(
            "the template has no AWS::Lambda::Permission for the bucket notification".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn template() -> String {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(TEMPLATE_PATH)).expect("template readable")
    }

    /// The real template with `from` (which must occur exactly once, so a test cannot
    /// silently stop mutating anything) replaced by `to`.
    fn mutated(from: &str, to: &str) -> String {
        let text = template();
        assert_eq!(
            text.matches(from).count(),
            1,
            "the mutation target must occur exactly once in the template: {from:?}"
        );
        text.replacen(from, to, 1)
    }

    fn problems(text: &str) -> Vec<String> {
        check(text).expect("template parses")
    }

    /// Asserts that some problem mentions every fragment in `expected`.
    fn assert_reported(text: &str, expected: &[&str]) {
        let found = problems(text);
        assert!(
            found
                .iter()
                .any(|p| expected.iter().all(|fragment| p.contains(fragment))),
            "expected a problem mentioning {expected:?}, got {found:#?}"
        );
    }

    #[test]
    fn security_current_template_has_no_problems() {
        assert_eq!(problems(&template()), Vec::<String>::new());
    }

    #[test]
    fn security_wildcard_s3_action_is_reported() {
        let text = mutated(
            "Sid: RemoveThumbnailsOfSupersededVersions\n                Effect: Allow\n                Action: s3:DeleteObject",
            "Sid: RemoveThumbnailsOfSupersededVersions\n                Effect: Allow\n                Action: \"s3:*\"",
        );
        assert_reported(&text, &["LoadRole", "wildcard action `s3:*`"]);
    }

    #[test]
    fn security_wildcard_states_action_is_reported() {
        let text = mutated(
            "Sid: StartPipelineExecution\n                Effect: Allow\n                Action: states:StartExecution\n                Resource: !Ref StateMachine\n              - Sid: SendFailedEventsToTheFailureQueue",
            "Sid: StartPipelineExecution\n                Effect: Allow\n                Action: \"states:*\"\n                Resource: !Ref StateMachine\n              - Sid: SendFailedEventsToTheFailureQueue",
        );
        assert_reported(&text, &["IngestRole", "wildcard action `states:*`"]);
    }

    #[test]
    fn security_star_action_and_star_resource_are_reported() {
        let text = mutated(
            "Action: states:StartExecution\n                Resource: !Ref StateMachine\n              - Sid: SendFailedEventsToTheFailureQueue",
            "Action: \"*\"\n                Resource: \"*\"\n              - Sid: SendFailedEventsToTheFailureQueue",
        );
        assert_reported(&text, &["IngestRole", "wildcard action `*`"]);
        assert_reported(&text, &["IngestRole", "every resource"]);
    }

    #[test]
    fn security_full_access_managed_policy_is_reported() {
        let text = mutated(
            "      Policies:\n        - PolicyName: load\n",
            "      ManagedPolicyArns:\n        - !Sub \"arn:${AWS::Partition}:iam::aws:policy/AmazonS3FullAccess\"\n      Policies:\n        - PolicyName: load\n",
        );
        assert_reported(&text, &["LoadRole", "AmazonS3FullAccess", "FullAccess"]);
    }

    #[test]
    fn security_inspect_reading_the_output_bucket_is_reported() {
        // Inspect reads the input bucket only.
        let from = "        - PolicyName: inspect\n          PolicyDocument:\n            Version: \"2012-10-17\"\n            Statement:\n";
        let text = mutated(
            from,
            &format!("{from}              - Effect: Allow\n                Action: s3:GetObject\n                Resource: !Sub \"${{OutputBucket.Arn}}/*\"\n"),
        );
        assert_reported(
            &text,
            &[
                "InspectRole",
                "s3:GetObject",
                "-output-",
                "not in its reviewed grants",
            ],
        );
    }

    #[test]
    fn security_load_writing_outside_manifests_is_reported() {
        let text = mutated(
            "Resource: !Sub \"${OutputBucket.Arn}/manifests/*\"",
            "Resource: !Sub \"${OutputBucket.Arn}/*\"",
        );
        assert_reported(
            &text,
            &["LoadRole", "outside the output prefixes manifests/"],
        );
        assert_reported(&text, &["LoadRole", "lacks s3:PutObject", "manifests/*"]);
    }

    #[test]
    fn security_quarantine_writing_thumbnails_is_reported() {
        // The WriteQuarantine statement (objects then reports; the reconciler's read grant
        // lists manifests then reports).
        let grant = "- !Sub \"${OutputBucket.Arn}/quarantine/objects/*\"\n                  - !Sub \"${OutputBucket.Arn}/quarantine/reports/*\"";
        let text = mutated(
            grant,
            &format!("{grant}\n                  - !Sub \"${{OutputBucket.Arn}}/thumbnails/*\""),
        );
        assert_reported(
            &text,
            &["QuarantineRole", "outside the output prefixes quarantine/"],
        );
    }

    #[test]
    fn security_write_prefix_must_match_the_function_environment() {
        // The role is unchanged but the function now writes elsewhere: on AWS its writes
        // would be denied, and MiniStack would not notice.
        let from = "Role: !GetAtt LoadRole.Arn";
        let text = template();
        let start = text.find(from).expect("load function");
        let (head, tail) = text.split_at(start);
        let tail = tail.replacen("MANIFESTS_PREFIX: manifests/", "MANIFESTS_PREFIX: meta/", 1);
        assert_reported(
            &format!("{head}{tail}"),
            &["LoadRole", "outside the output prefixes meta/"],
        );
    }

    #[test]
    fn security_delete_permission_is_reported() {
        // Deleting a manifest (the key's result) is never needed.
        let text = mutated(
            "Action:\n                  - s3:GetObject\n                  - s3:PutObject\n                Resource: !Sub \"${OutputBucket.Arn}/manifests/*\"",
            "Action:\n                  - s3:GetObject\n                  - s3:PutObject\n                  - s3:DeleteObject\n                Resource: !Sub \"${OutputBucket.Arn}/manifests/*\"",
        );
        assert_reported(&text, &["LoadRole", "may delete", "manifests/*"]);
        // Nor is deleting an object version, even of a per-version output.
        let text = mutated(
            "Sid: RemoveThumbnailsOfSupersededVersions\n                Effect: Allow\n                Action: s3:DeleteObject",
            "Sid: RemoveThumbnailsOfSupersededVersions\n                Effect: Allow\n                Action: s3:DeleteObjectVersion",
        );
        assert_reported(&text, &["LoadRole", "may delete", "DeleteObjectVersion"]);
    }

    #[test]
    fn security_function_using_another_role_is_reported() {
        let text = mutated(
            "Role: !GetAtt LoadRole.Arn",
            "Role: !GetAtt QuarantineRole.Arn",
        );
        assert_reported(&text, &["LoadFunction runs as QuarantineRole"]);
    }

    #[test]
    fn security_state_machine_invoking_ingest_is_reported() {
        let text = mutated(
            "                  - !Ref QuarantineLiveAlias\n\n",
            "                  - !Ref QuarantineLiveAlias\n                  - !Ref IngestLiveAlias\n\n",
        );
        assert_reported(
            &text,
            &["StateMachineRole", "lambda:InvokeFunction", "-ingest"],
        );
    }

    #[test]
    fn security_state_machine_invoking_latest_instead_of_the_alias_is_reported() {
        let text = mutated(
            "                  - !Ref QuarantineLiveAlias\n\n",
            "                  - !GetAtt QuarantineFunction.Arn\n\n",
        );
        assert_reported(&text, &["StateMachineRole", "lambda:InvokeFunction"]);
    }

    #[test]
    fn security_invoke_permission_without_source_arn_is_reported() {
        let text = mutated(
            "      SourceArn: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-input-${AWS::AccountId}\"\n",
            "",
        );
        assert_reported(&text, &["IngestInvokePermission has no SourceArn"]);
    }

    #[test]
    fn security_invoke_permission_for_a_foreign_bucket_is_reported() {
        let text = mutated(
            "SourceArn: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-input-${AWS::AccountId}\"",
            "SourceArn: \"arn:aws:s3:::someone-elses-bucket\"",
        );
        assert_reported(
            &text,
            &["IngestInvokePermission", "not a bucket of this template"],
        );
    }

    #[test]
    fn security_invoke_permission_without_source_account_is_reported() {
        let text = mutated(
            "      SourceArn: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-input-${AWS::AccountId}\"\n      SourceAccount: !Ref AWS::AccountId\n",
            "      SourceArn: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-input-${AWS::AccountId}\"\n",
        );
        assert_reported(&text, &["IngestInvokePermission has no SourceAccount"]);
        let text = mutated(
            "      SourceArn: !GetAtt ReconcileScheduleRule.Arn\n      SourceAccount: !Ref AWS::AccountId\n",
            "      SourceArn: !GetAtt ReconcileScheduleRule.Arn\n",
        );
        assert_reported(&text, &["ReconcileInvokePermission has no SourceAccount"]);
    }

    #[test]
    fn security_each_public_access_block_flag_is_required_on_each_bucket() {
        for bucket in ["InputBucket", "OutputBucket"] {
            for flag in [
                "BlockPublicAcls",
                "BlockPublicPolicy",
                "IgnorePublicAcls",
                "RestrictPublicBuckets",
            ] {
                let text = template();
                let start = text
                    .find(&format!("  {bucket}:\n    Type: AWS::S3::Bucket"))
                    .expect("bucket");
                let (head, tail) = text.split_at(start);
                let line = format!("{flag}: true");
                assert!(tail.contains(&line), "{bucket} {flag}");
                let tail = tail.replacen(&line, &format!("{flag}: false"), 1);
                assert_reported(
                    &format!("{head}{tail}"),
                    &[&format!("bucket {bucket}:"), flag],
                );
            }
        }
    }

    #[test]
    fn security_bucket_without_encryption_is_reported() {
        let text = template();
        let start = text
            .find("  OutputBucket:\n    Type: AWS::S3::Bucket")
            .expect("bucket");
        let (head, tail) = text.split_at(start);
        let block = "      BucketEncryption:\n        ServerSideEncryptionConfiguration:\n          - ServerSideEncryptionByDefault:\n              SSEAlgorithm: AES256\n";
        assert!(tail.contains(block));
        let tail = tail.replacen(block, "", 1);
        assert_reported(
            &format!("{head}{tail}"),
            &["bucket OutputBucket has no default encryption"],
        );
    }

    #[test]
    fn security_bucket_without_tls_only_policy_is_reported() {
        let text = template();
        let start = text.find("  InputBucketPolicy:").expect("policy");
        let end = text.find("  OutputBucketPolicy:").expect("policy");
        let without = format!("{}{}", &text[..start], &text[end..]);
        assert_reported(&without, &["bucket InputBucket has no TLS-only policy"]);
        assert!(!problems(&without)
            .iter()
            .any(|p| p.contains("bucket OutputBucket has no TLS")));
    }

    #[test]
    fn security_tls_policy_that_allows_http_is_reported() {
        // `true` instead of `false` would deny TLS requests and let plain HTTP through.
        let text = template();
        let start = text.find("  OutputBucketPolicy:").expect("policy");
        let (head, tail) = text.split_at(start);
        let tail = tail.replacen(
            "aws:SecureTransport: \"false\"",
            "aws:SecureTransport: \"true\"",
            1,
        );
        assert_reported(
            &format!("{head}{tail}"),
            &["bucket OutputBucket has no TLS-only policy"],
        );
    }

    #[test]
    fn security_tls_policy_covering_only_objects_is_reported() {
        let text = template();
        let start = text.find("  OutputBucketPolicy:").expect("policy");
        let (head, tail) = text.split_at(start);
        let tail = tail.replacen("              - !GetAtt OutputBucket.Arn\n", "", 1);
        assert_reported(
            &format!("{head}{tail}"),
            &["bucket OutputBucket has no TLS-only policy"],
        );
    }

    #[test]
    fn long_form_expands_short_tags() {
        let t = Template::parse(
            "Resources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub \"${AWS::StackName}-b\"\n",
        )
        .expect("parses");
        assert_eq!(t.arn("B"), "arn:aws:s3:::{stack}-b");
        assert_eq!(
            t.render(&serde_json::json!({"Fn::Sub": "${B.Arn}/x/*"})),
            "arn:aws:s3:::{stack}-b/x/*"
        );
        assert_eq!(t.render(&serde_json::json!({"Ref": "B"})), "{stack}-b");
    }
    const AT: Deployment<'static> = Deployment {
        stack: "s3p",
        account: "123456789012",
        region: "eu-west-1",
    };

    #[test]
    fn role_statements_render_concrete_arns_and_keep_conditions() {
        let statements = role_statements(&template(), "ReconcileRole", AT).expect("model");
        let list = statements
            .iter()
            .find(|s| s.sid.as_deref() == Some("ListResults"))
            .expect("ListResults");
        assert_eq!(list.actions, ["s3:ListBucket"]);
        assert_eq!(list.resources, ["arn:aws:s3:::s3p-output-123456789012"]);
        assert_eq!(
            list.conditions,
            [Condition {
                operator: "StringLike".into(),
                key: "s3:prefix".into(),
                values: vec!["manifests/*".into(), "quarantine/reports/*".into()],
            }]
        );
        let describe = statements
            .iter()
            .find(|s| s.actions == ["states:DescribeExecution"])
            .expect("DescribeExecution");
        assert_eq!(
            describe.resources,
            ["arn:aws:states:eu-west-1:123456789012:execution:s3p-pipeline:*"]
        );
        let load = role_statements(&template(), "LoadRole", AT).expect("model");
        assert!(load
            .iter()
            .any(|s| s.resources == ["arn:aws:dynamodb:eu-west-1:123456789012:table/s3p-catalog"]));
        let ingest = role_statements(&template(), "IngestRole", AT).expect("model");
        assert!(ingest
            .iter()
            .any(|s| s.resources == ["arn:aws:sqs:eu-west-1:123456789012:s3p-ingest-failures"]));
        let counters = role_statements(&template(), "CountersRole", AT).expect("model");
        assert!(counters.iter().any(|s| s.resources
            == ["arn:aws:dynamodb:eu-west-1:123456789012:table/s3p-catalog/stream/*"]));
    }

    #[test]
    fn functions_name_their_role_and_concrete_environment() {
        let functions = functions(&template(), AT).expect("model");
        let load = functions
            .iter()
            .find(|f| f.id == "LoadFunction")
            .expect("load");
        assert_eq!(
            (load.name.as_str(), load.role.as_str()),
            ("s3p-load", "LoadRole")
        );
        assert_eq!(load.environment["OUTPUT_BUCKET"], "s3p-output-123456789012");
        assert_eq!(load.environment["CATALOG_TABLE"], "s3p-catalog");
        assert_eq!(load.environment["MAX_OBJECT_BYTES"], "52428800");
        let reconcile = functions
            .iter()
            .find(|f| f.id == "ReconcileFunction")
            .expect("reconcile");
        assert_eq!(
            reconcile.environment["STATE_MACHINE_ARN"],
            "arn:aws:states:eu-west-1:123456789012:stateMachine:s3p-pipeline"
        );
        assert_eq!(functions.len(), 7);
    }

    #[test]
    fn role_statements_refuse_what_the_model_cannot_evaluate() {
        let tail = "\n                Action: states:StartExecution\n                Resource: !Ref StateMachine\n              - Sid: SendFailedEventsToTheFailureQueue";
        let deny = mutated(
            &format!("Sid: StartPipelineExecution\n                Effect: Allow{tail}"),
            &format!("Sid: StartPipelineExecution\n                Effect: Deny{tail}"),
        );
        let e = role_statements(&deny, "IngestRole", AT).unwrap_err();
        assert!(format!("{e:#}").contains("not an Allow statement"), "{e:#}");
        let unresolvable = mutated(
            "Resource: !GetAtt IngestFailureQueue.Arn",
            "Resource: !GetAtt IngestFailureQueue.QueueUrl",
        );
        let e = role_statements(&unresolvable, "IngestRole", AT).unwrap_err();
        assert!(format!("{e:#}").contains("cannot resolve"), "{e:#}");
        assert!(role_statements(&template(), "NoSuchRole", AT).is_err());
    }
}
