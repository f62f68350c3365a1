//! IAM as AWS evaluates it for this project's roles, and wrappers that hold every call
//! of [`ObjectStore`], [`ExecutionStarter`] and [`Catalog`] to a role's policy.
//!
//! MiniStack enforces no IAM, so a role that lacks a grant passes every emulator test and
//! fails on AWS. The wrappers close that gap for tests on the in-memory fakes: each call is
//! mapped to the IAM action(s) and resource ARN(s) AWS evaluates for it, allowed or refused
//! by the [`Policy`], and recorded in an [`AccessLog`], so a test can ask both "was every
//! call allowed?" and "was every grant used?".
//!
//! The evaluator covers what these roles use, and refuses the rest rather than guess:
//! identity-based `Allow` statements (no `Deny`, `NotAction`, `NotResource`), actions
//! matched case-insensitively with `*`/`?`, resource ARNs matched per ARN segment with
//! `*`/`?`, and the `StringLike`/`StringEquals` conditions (a key absent from the request
//! never matches). Any other condition operator is a [`PolicyError`] when the policy is
//! built, so nothing is ever allowed by a condition the evaluator does not understand.
//!
//! S3's rule for missing keys is modelled: a GET or HEAD of a key that does not exist is
//! `404` only when the caller may `s3:ListBucket` the bucket (for a request without an
//! `s3:prefix`, so a prefix-conditioned grant does not count); otherwise it is
//! `403 AccessDenied`, exactly like a refused read.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pipeline_core::catalog::CatalogEntry;
use pipeline_core::reconcile::InputObject;
use thiserror::Error;

use crate::catalog::{Catalog, CatalogError};
use crate::executions::{execution_arn, ExecutionStarter, StartError, StartOutcome};
use crate::store::{
    ListedObject, ObjectHead, ObjectLocation, ObjectStore, StoreError, StoredObject, WriteCondition,
};

/// One `Allow` statement of an identity-based policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// All must hold for the statement to apply.
    pub conditions: Vec<Condition>,
}

/// `operator` over the request's value for `key`, matching any of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// An operator the evaluator does not model: evaluating it anyway could allow what
    /// AWS refuses.
    #[error("statement {sid}: condition operator {operator} (on {key}) is not modelled")]
    UnsupportedOperator {
        sid: String,
        operator: String,
        key: String,
    },
    #[error("statement {sid} names no action or no resource")]
    Empty { sid: String },
}

/// The condition operators the evaluator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringLike,
    StringEquals,
}

#[derive(Debug, Clone)]
struct Rule {
    statement: Statement,
    conditions: Vec<(Operator, Condition)>,
}

/// A role's identity-based policy: the union of its `Allow` statements.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// What AWS evaluates for one call: an action on a resource, with the request's context
/// keys (e.g. `s3:prefix` for a listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: Vec<(String, String)>,
}

impl Request {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: Vec::new(),
        }
    }

    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.push((key.into(), value.into()));
        self
    }

    /// The request's value for a context key (key names are case-insensitive in IAM).
    fn value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// One action on one resource pattern a policy grants (a statement's action x resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub sid: Option<String>,
    pub action: String,
    pub resource: String,
    /// The statement's conditions, shown with the grant.
    pub conditions: Vec<Condition>,
    statement: usize,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)?;
        for c in &self.conditions {
            write!(f, " if {} {} {:?}", c.operator, c.key, c.values)?;
        }
        if let Some(sid) = &self.sid {
            write!(f, " (statement {sid})")?;
        }
        Ok(())
    }
}

impl Policy {
    /// Builds the policy, refusing statements the evaluator cannot evaluate faithfully.
    pub fn new(statements: Vec<Statement>) -> Result<Self, PolicyError> {
        let mut rules = Vec::new();
        for statement in statements {
            let sid = statement.sid.clone().unwrap_or_else(|| "<no Sid>".into());
            if statement.actions.is_empty() || statement.resources.is_empty() {
                return Err(PolicyError::Empty { sid });
            }
            let mut conditions = Vec::new();
            for condition in &statement.conditions {
                let operator = match condition.operator.as_str() {
                    "StringLike" => Operator::StringLike,
                    "StringEquals" => Operator::StringEquals,
                    _ => {
                        return Err(PolicyError::UnsupportedOperator {
                            sid,
                            operator: condition.operator.clone(),
                            key: condition.key.clone(),
                        })
                    }
                };
                conditions.push((operator, condition.clone()));
            }
            rules.push(Rule {
                statement,
                conditions,
            });
        }
        Ok(Policy { rules })
    }

    /// Whether some statement allows the request (implicit deny otherwise).
    pub fn allows(&self, request: &Request) -> bool {
        self.rules.iter().any(|rule| {
            rule.statement
                .actions
                .iter()
                .any(|a| action_matches(a, &request.action))
                && rule
                    .statement
                    .resources
                    .iter()
                    .any(|r| resource_matches(r, &request.resource))
                && conditions_hold(&rule.conditions, request)
        })
    }

    /// Every action x resource the policy grants, statement by statement.
    pub fn grants(&self) -> Vec<Grant> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            for action in &rule.statement.actions {
                for resource in &rule.statement.resources {
                    out.push(Grant {
                        sid: rule.statement.sid.clone(),
                        action: action.clone(),
                        resource: resource.clone(),
                        conditions: rule.statement.conditions.clone(),
                        statement: i,
                    });
                }
            }
        }
        out
    }

    /// Whether `grant` (one of [`Policy::grants`]) alone allows the request.
    pub fn grant_allows(&self, grant: &Grant, request: &Request) -> bool {
        let Some(rule) = self.rules.get(grant.statement) else {
            return false;
        };
        action_matches(&grant.action, &request.action)
            && resource_matches(&grant.resource, &request.resource)
            && conditions_hold(&rule.conditions, request)
    }
}

fn conditions_hold(conditions: &[(Operator, Condition)], request: &Request) -> bool {
    conditions.iter().all(|(operator, condition)| {
        // A key the request does not carry matches no value (no `...IfExists` here).
        let Some(value) = request.value(&condition.key) else {
            return false;
        };
        condition.values.iter().any(|pattern| match operator {
            Operator::StringLike => glob(pattern, value),
            Operator::StringEquals => pattern == value,
        })
    })
}

/// Actions match case-insensitively, with wildcards.
fn action_matches(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// ARNs match segment by segment (`arn:partition:service:region:account:resource`, the
/// resource part may hold further colons); `*` alone matches every resource.
fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let r: Vec<&str> = resource.splitn(6, ':').collect();
    if p.len() == 6 && r.len() == 6 {
        p.iter().zip(&r).all(|(p, r)| glob(p, r))
    } else {
        glob(pattern, resource)
    }
}

/// `*` matches any run of characters (also none), `?` exactly one; the rest literally.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One call as AWS evaluated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// Who called (the function).
    pub principal: String,
    /// The API call, e.g. `HeadObject`, or `HeadObject (missing key)` for the
    /// `s3:ListBucket` check S3 makes before it answers 404.
    pub operation: String,
    pub request: Request,
    pub allowed: bool,
}

impl std::fmt::Display for AccessRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} needs {} on {}",
            self.principal, self.operation, self.request.action, self.request.resource
        )?;
        for (k, v) in &self.request.context {
            write!(f, " ({k}={v:?})")?;
        }
        f.write_str(if self.allowed {
            ": allowed"
        } else {
            ": DENIED"
        })
    }
}

/// Every call of every wrapped client, in order; clones share the log.
#[derive(Debug, Clone, Default)]
pub struct AccessLog(Arc<Mutex<Vec<AccessRecord>>>);

impl AccessLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn records(&self) -> Vec<AccessRecord> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn push(&self, record: AccessRecord) {
        if let Ok(mut r) = self.0.lock() {
            r.push(record);
        }
    }
}

/// Who is calling: a function, the role it runs as and that role's policy, and the log
/// its calls go to.
#[derive(Debug, Clone)]
pub struct Principal {
    name: String,
    role: String,
    policy: Arc<Policy>,
    log: AccessLog,
}

impl Principal {
    pub fn new(
        name: impl Into<String>,
        role: impl Into<String>,
        policy: Policy,
        log: AccessLog,
    ) -> Self {
        Principal {
            name: name.into(),
            role: role.into(),
            policy: Arc::new(policy),
            log,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Evaluates and records one request.
    pub fn authorize(&self, operation: impl Into<String>, request: Request) -> bool {
        let allowed = self.policy.allows(&request);
        self.log.push(AccessRecord {
            principal: self.name.clone(),
            operation: operation.into(),
            request,
            allowed,
        });
        allowed
    }

    /// AWS's wording for an implicit deny.
    fn denial(&self, action: &str, resource: &str) -> String {
        format!(
            "AccessDeniedException: {} (role {}) is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action",
            self.name, self.role
        )
    }
}

pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// A read names a version: `s3:GetObjectVersion`, else `s3:GetObject`.
fn read_action(at: ObjectLocation<'_>) -> &'static str {
    if at.version_id.is_some() {
        "s3:GetObjectVersion"
    } else {
        "s3:GetObject"
    }
}

fn access_denied(operation: &'static str, bucket: &str, key: &str) -> StoreError {
    StoreError::AccessDenied {
        operation,
        bucket: bucket.to_string(),
        key: key.to_string(),
    }
}

/// An [`ObjectStore`] that answers as S3 would to a caller with `principal`'s policy.
pub struct AuthorizedStore {
    inner: Arc<dyn ObjectStore>,
    principal: Principal,
}

impl AuthorizedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, principal: Principal) -> Self {
        AuthorizedStore { inner, principal }
    }

    fn allow(&self, operation: &'static str, request: Request) -> bool {
        self.principal.authorize(operation, request)
    }

    fn read(&self, operation: &'static str, at: ObjectLocation<'_>) -> Result<(), StoreError> {
        let request = Request::new(read_action(at), object_arn(at.bucket, at.key));
        if self.allow(operation, request) {
            Ok(())
        } else {
            Err(access_denied(operation, at.bucket, at.key))
        }
    }

    fn write(&self, operation: &'static str, bucket: &str, key: &str) -> Result<(), StoreError> {
        if self.allow(
            operation,
            Request::new("s3:PutObject", object_arn(bucket, key)),
        ) {
            Ok(())
        } else {
            Err(access_denied(operation, bucket, key))
        }
    }

    /// S3 answers a read of a missing key with 404 only if the caller may list the
    /// bucket (a listing without `s3:prefix`); otherwise with 403.
    fn missing(&self, operation: &'static str, bucket: &str, key: &str) -> Result<(), StoreError> {
        if self.principal.authorize(
            format!("{operation} (missing key: 404 needs s3:ListBucket, else 403)"),
            Request::new("s3:ListBucket", bucket_arn(bucket)),
        ) {
            Ok(())
        } else {
            Err(access_denied(operation, bucket, key))
        }
    }

    fn answer<T>(
        &self,
        operation: &'static str,
        at: ObjectLocation<'_>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match result {
            Err(StoreError::NotFound { bucket, key }) => {
                self.missing(operation, at.bucket, at.key)?;
                Err(StoreError::NotFound { bucket, key })
            }
            other => other,
        }
    }
}

#[async_trait]
impl ObjectStore for AuthorizedStore {
    async fn head(&self, at: ObjectLocation<'_>) -> Result<ObjectHead, StoreError> {
        self.read("HeadObject", at)?;
        let result = self.inner.head(at).await;
        self.answer("HeadObject", at, result)
    }

    async fn get_prefix(&self, at: ObjectLocation<'_>, len: u64) -> Result<Vec<u8>, StoreError> {
        self.read("GetObject (range)", at)?;
        let result = self.inner.get_prefix(at, len).await;
        self.answer("GetObject (range)", at, result)
    }

    async fn get(&self, at: ObjectLocation<'_>, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        self.read("GetObject", at)?;
        let result = self.inner.get(at, max_bytes).await;
        self.answer("GetObject", at, result)
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.write("PutObject", bucket, key)?;
        self.inner.put(bucket, key, body, content_type).await
    }

    async fn copy(
        &self,
        from: ObjectLocation<'_>,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<(), StoreError> {
        // CopyObject needs both: read the source (its version when named), write the
        // destination.
        let read = self.read("CopyObject (source)", from);
        let write = self.write("CopyObject (destination)", to_bucket, to_key);
        read?;
        write?;
        let result = self.inner.copy(from, to_bucket, to_key).await;
        self.answer("CopyObject", from, result)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let request = Request::new("s3:ListBucket", bucket_arn(bucket)).with("s3:prefix", prefix);
        if !self.allow("ListObjectsV2", request) {
            return Err(access_denied("ListObjectsV2", bucket, prefix));
        }
        self.inner.list(bucket, prefix).await
    }

    async fn list_latest_versions(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<InputObject>, StoreError> {
        let request =
            Request::new("s3:ListBucketVersions", bucket_arn(bucket)).with("s3:prefix", prefix);
        if !self.allow("ListObjectVersions", request) {
            return Err(access_denied("ListObjectVersions", bucket, prefix));
        }
        self.inner.list_latest_versions(bucket, prefix).await
    }

    async fn read_current(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<StoredObject>, StoreError> {
        let at = ObjectLocation::latest(bucket, key);
        self.read("GetObject", at)?;
        match self.inner.read_current(bucket, key, max_bytes).await {
            Ok(None) => {
                self.missing("GetObject", bucket, key)?;
                Ok(None)
            }
            other => self.answer("GetObject", at, other),
        }
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<(), StoreError> {
        // A conditional write needs only s3:PutObject, whatever the condition finds.
        self.write("PutObject (conditional)", bucket, key)?;
        self.inner
            .put_if(bucket, key, body, content_type, condition)
            .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let request = Request::new("s3:DeleteObject", object_arn(bucket, key));
        if !self.allow("DeleteObject", request) {
            return Err(access_denied("DeleteObject", bucket, key));
        }
        self.inner.delete(bucket, key).await
    }
}

/// An [`ExecutionStarter`] for the state machine `state_machine_arn`, answering as Step
/// Functions would to `principal`. A refusal is what [`crate::SfnStarter`] makes of
/// `AccessDeniedException`: a retryable error carrying AWS's message.
pub struct AuthorizedStarter {
    inner: Arc<dyn ExecutionStarter>,
    state_machine_arn: String,
    principal: Principal,
}

impl AuthorizedStarter {
    pub fn new(
        inner: Arc<dyn ExecutionStarter>,
        state_machine_arn: impl Into<String>,
        principal: Principal,
    ) -> Self {
        AuthorizedStarter {
            inner,
            state_machine_arn: state_machine_arn.into(),
            principal,
        }
    }

    fn check(
        &self,
        operation: &'static str,
        action: &str,
        resource: String,
    ) -> Result<(), StartError> {
        if self
            .principal
            .authorize(operation, Request::new(action, resource.clone()))
        {
            Ok(())
        } else {
            Err(StartError::Retryable(
                self.principal.denial(action, &resource),
            ))
        }
    }
}

#[async_trait]
impl ExecutionStarter for AuthorizedStarter {
    async fn start(&self, name: &str, input_json: &str) -> Result<StartOutcome, StartError> {
        self.check(
            "StartExecution",
            "states:StartExecution",
            self.state_machine_arn.clone(),
        )?;
        self.inner.start(name, input_json).await
    }

    async fn status(&self, name: &str) -> Result<Option<String>, StartError> {
        self.check(
            "DescribeExecution",
            "states:DescribeExecution",
            execution_arn(&self.state_machine_arn, name),
        )?;
        self.inner.status(name).await
    }
}

/// A [`Catalog`] on the table `table_arn`, answering as DynamoDB would to `principal`.
/// A refusal is what [`crate::catalog::DynamoCatalog`] makes of `AccessDeniedException`.
pub struct AuthorizedCatalog {
    inner: Arc<dyn Catalog>,
    table_arn: String,
    principal: Principal,
}

impl AuthorizedCatalog {
    pub fn new(
        inner: Arc<dyn Catalog>,
        table_arn: impl Into<String>,
        principal: Principal,
    ) -> Self {
        AuthorizedCatalog {
            inner,
            table_arn: table_arn.into(),
            principal,
        }
    }

    fn check(&self, operation: &'static str, action: &str) -> Result<(), CatalogError> {
        if self
            .principal
            .authorize(operation, Request::new(action, self.table_arn.clone()))
        {
            return Ok(());
        }
        let table = self
            .table_arn
            .split_once(":table/")
            .map_or(self.table_arn.as_str(), |(_, t)| t);
        Err(CatalogError::Failed {
            operation,
            table: table.to_string(),
            message: self.principal.denial(action, &self.table_arn),
        })
    }
}

#[async_trait]
impl Catalog for AuthorizedCatalog {
    async fn put_version(&self, entry: &CatalogEntry) -> Result<(), CatalogError> {
        self.check("PutItem", "dynamodb:PutItem")?;
        self.inner.put_version(entry).await
    }

    async fn latest(&self, key: &str) -> Result<Option<CatalogEntry>, CatalogError> {
        self.check("GetItem", "dynamodb:GetItem")?;
        self.inner.latest(key).await
    }

    async fn put_latest(
        &self,
        entry: &CatalogEntry,
        expected: Option<&CatalogEntry>,
    ) -> Result<bool, CatalogError> {
        // A conditional PutItem needs only dynamodb:PutItem.
        self.check("PutItem (conditional)", "dynamodb:PutItem")?;
        self.inner.put_latest(entry, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MemoryCatalog;
    use crate::executions::MemoryStarter;
    use crate::store::MemoryStore;
    use pipeline_core::catalog::CatalogStatus;

    fn statement(
        actions: &[&str],
        resources: &[&str],
        conditions: &[(&str, &str, &[&str])],
    ) -> Statement {
        Statement {
            sid: None,
            actions: actions.iter().map(|a| a.to_string()).collect(),
            resources: resources.iter().map(|r| r.to_string()).collect(),
            conditions: conditions
                .iter()
                .map(|(operator, key, values)| Condition {
                    operator: operator.to_string(),
                    key: key.to_string(),
                    values: values.iter().map(|v| v.to_string()).collect(),
                })
                .collect(),
        }
    }

    /// The shapes this project's roles use.
    fn policy() -> Policy {
        Policy::new(vec![
            statement(
                &["s3:GetObject", "s3:GetObjectVersion"],
                &["arn:aws:s3:::in/*"],
                &[],
            ),
            statement(&["s3:ListBucket"], &["arn:aws:s3:::in"], &[]),
            statement(
                &["s3:ListBucket"],
                &["arn:aws:s3:::out"],
                &[(
                    "StringLike",
                    "s3:prefix",
                    &["manifests/*", "quarantine/reports/*"],
                )],
            ),
            statement(&["s3:PutObject"], &["arn:aws:s3:::out/thumbnails/*"], &[]),
            statement(&["s3:Get*"], &["arn:aws:s3:::wild/?.jpg"], &[]),
            statement(
                &["states:DescribeExecution"],
                &["arn:aws:states:eu-west-1:1:execution:sm:*"],
                &[],
            ),
            statement(
                &["dynamodb:GetItem"],
                &["arn:aws:dynamodb:eu-west-1:1:table/t"],
                &[("StringEquals", "dynamodb:Select", &["ALL_ATTRIBUTES"])],
            ),
        ])
        .unwrap()
    }

    fn check(action: &str, resource: &str, context: &[(&str, &str)], expected: bool) {
        let mut request = Request::new(action, resource);
        for (k, v) in context {
            request = request.with(*k, *v);
        }
        assert_eq!(policy().allows(&request), expected, "{request:?}");
    }

    /// (action, resource, context, allowed?)
    type PolicyCase = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        bool,
    );

    #[test]
    fn policy_evaluates_actions_resources_and_conditions_as_iam_does() {
        let cases: &[PolicyCase] = &[
            ("s3:GetObject", "arn:aws:s3:::in/a.jpg", &[], true),
            ("s3:GetObject", "arn:aws:s3:::in/dir/a b.jpg", &[], true),
            // Actions are case-insensitive; resources are not.
            ("S3:getobject", "arn:aws:s3:::in/a.jpg", &[], true),
            ("s3:GetObject", "arn:aws:s3:::IN/a.jpg", &[], false),
            ("s3:GetObjectVersion", "arn:aws:s3:::in/a.jpg", &[], true),
            ("s3:PutObject", "arn:aws:s3:::in/a.jpg", &[], false),
            // Object grants do not cover the bucket, nor another bucket.
            ("s3:GetObject", "arn:aws:s3:::in", &[], false),
            ("s3:GetObject", "arn:aws:s3:::input/a.jpg", &[], false),
            ("s3:ListBucket", "arn:aws:s3:::in", &[], true),
            (
                "s3:ListBucket",
                "arn:aws:s3:::in",
                &[("s3:prefix", "x/")],
                true,
            ),
            ("s3:ListBucket", "arn:aws:s3:::in/x", &[], false),
            // A prefix-conditioned listing: only for the named prefixes, never without one.
            (
                "s3:ListBucket",
                "arn:aws:s3:::out",
                &[("s3:prefix", "manifests/")],
                true,
            ),
            (
                "s3:ListBucket",
                "arn:aws:s3:::out",
                &[("s3:prefix", "manifests/a/b")],
                true,
            ),
            (
                "s3:ListBucket",
                "arn:aws:s3:::out",
                &[("S3:Prefix", "quarantine/reports/")],
                true,
            ),
            (
                "s3:ListBucket",
                "arn:aws:s3:::out",
                &[("s3:prefix", "thumbnails/")],
                false,
            ),
            (
                "s3:ListBucket",
                "arn:aws:s3:::out",
                &[("s3:prefix", "manifests")],
                false,
            ),
            ("s3:ListBucket", "arn:aws:s3:::out", &[], false),
            (
                "s3:PutObject",
                "arn:aws:s3:::out/thumbnails/a/v/256.jpg",
                &[],
                true,
            ),
            (
                "s3:PutObject",
                "arn:aws:s3:::out/manifests/a.json",
                &[],
                false,
            ),
            // Wildcards in actions; `?` is exactly one character.
            ("s3:GetObjectTagging", "arn:aws:s3:::wild/a.jpg", &[], true),
            ("s3:GetObject", "arn:aws:s3:::wild/ab.jpg", &[], false),
            ("s3:GetObject", "arn:aws:s3:::wild/.jpg", &[], false),
            (
                "states:DescribeExecution",
                "arn:aws:states:eu-west-1:1:execution:sm:n-1",
                &[],
                true,
            ),
            (
                "states:DescribeExecution",
                "arn:aws:states:eu-west-1:2:execution:sm:n-1",
                &[],
                false,
            ),
            (
                "states:DescribeExecution",
                "arn:aws:states:eu-west-1:1:execution:sm2:n",
                &[],
                false,
            ),
            (
                "states:StartExecution",
                "arn:aws:states:eu-west-1:1:execution:sm:n",
                &[],
                false,
            ),
            (
                "dynamodb:GetItem",
                "arn:aws:dynamodb:eu-west-1:1:table/t",
                &[("dynamodb:Select", "ALL_ATTRIBUTES")],
                true,
            ),
            (
                "dynamodb:GetItem",
                "arn:aws:dynamodb:eu-west-1:1:table/t",
                &[("dynamodb:Select", "COUNT")],
                false,
            ),
            (
                "dynamodb:GetItem",
                "arn:aws:dynamodb:eu-west-1:1:table/t",
                &[],
                false,
            ),
        ];
        for (action, resource, context, expected) in cases {
            check(action, resource, context, *expected);
        }
    }

    #[test]
    fn glob_table() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbcd", false),
            ("*b*", "abc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b?d", "axxbxbcd", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob(pattern, text), expected, "{pattern:?} {text:?}");
        }
    }

    #[test]
    fn policy_refuses_condition_operators_it_does_not_model() {
        for operator in [
            "StringNotLike",
            "StringLikeIfExists",
            "ForAnyValue:StringLike",
            "Bool",
            "ArnLike",
            "stringlike",
        ] {
            let result = Policy::new(vec![statement(
                &["s3:ListBucket"],
                &["arn:aws:s3:::out"],
                &[(operator, "s3:prefix", &["manifests/*"])],
            )]);
            assert!(
                matches!(result, Err(PolicyError::UnsupportedOperator { .. })),
                "{operator}: {result:?}"
            );
        }
        assert!(matches!(
            Policy::new(vec![statement(&[], &["*"], &[])]),
            Err(PolicyError::Empty { .. })
        ));
    }

    #[test]
    fn grants_are_action_by_resource_and_match_their_own_requests() {
        let policy = policy();
        let grants = policy.grants();
        assert_eq!(grants.len(), 8);
        let prefixed = grants
            .iter()
            .find(|g| g.resource == "arn:aws:s3:::out")
            .unwrap();
        let listing = Request::new("s3:ListBucket", "arn:aws:s3:::out");
        assert!(!policy.grant_allows(prefixed, &listing));
        assert!(policy.grant_allows(prefixed, &listing.clone().with("s3:prefix", "manifests/")));
        let unconditioned = grants
            .iter()
            .find(|g| g.resource == "arn:aws:s3:::in")
            .unwrap();
        assert!(!policy.grant_allows(unconditioned, &listing));
        assert!(
            prefixed.to_string().contains("StringLike s3:prefix"),
            "{prefixed}"
        );
    }

    /// One call of a wrapped client.
    #[derive(Debug, Clone, Copy)]
    enum Call {
        Head(&'static str, &'static str, Option<&'static str>),
        Get(&'static str, &'static str, Option<&'static str>),
        Prefix(&'static str, &'static str),
        ReadCurrent(&'static str, &'static str),
        Put(&'static str, &'static str),
        PutIfAbsent(&'static str, &'static str),
        Copy(
            &'static str,
            &'static str,
            Option<&'static str>,
            &'static str,
            &'static str,
        ),
        List(&'static str, &'static str),
        ListVersions(&'static str, &'static str),
        Delete(&'static str, &'static str),
        Start(&'static str),
        Status(&'static str),
        PutVersion,
        Latest,
        PutLatest,
    }

    const SM: &str = "arn:aws:states:eu-west-1:1:stateMachine:sm";
    const TABLE: &str = "arn:aws:dynamodb:eu-west-1:1:table/t";

    /// Runs `call` with `statements` as the policy on fakes holding `in/a.jpg` (versioned,
    /// version id `v1`) and `out/manifests/a.json`; the outcome as text and what was
    /// recorded as `(action, resource, allowed)`.
    async fn run(
        statements: Vec<Statement>,
        call: Call,
    ) -> (Result<String, String>, Vec<(String, String, bool)>) {
        let store = Arc::new(MemoryStore::new());
        store.insert_version("in", "a.jpg", b"jpeg".to_vec(), "v1");
        store.insert("out", "manifests/a.json", b"{}".to_vec());
        let log = AccessLog::new();
        let principal = Principal::new(
            "fn",
            "FnRole",
            Policy::new(statements).unwrap(),
            log.clone(),
        );
        let s = AuthorizedStore::new(store, principal.clone());
        let starter = AuthorizedStarter::new(Arc::new(MemoryStarter::new()), SM, principal.clone());
        let catalog = AuthorizedCatalog::new(Arc::new(MemoryCatalog::new()), TABLE, principal);
        let at = |b, k, v| ObjectLocation {
            bucket: b,
            key: k,
            version_id: v,
        };
        let entry = CatalogEntry {
            key: "a.jpg".into(),
            version: "v1".into(),
            seq: String::new(),
            etag: None,
            status: CatalogStatus::Processed,
            result_key: "manifests/a.json".into(),
            error: None,
            thumbnails: 0,
            execution: "e".into(),
            recorded_at: "t".into(),
        };
        fn text<T: std::fmt::Debug, E: std::fmt::Display>(
            r: Result<T, E>,
        ) -> Result<String, String> {
            r.map(|v| format!("{v:?}")).map_err(|e| e.to_string())
        }
        let outcome = match call {
            Call::Head(b, k, v) => text(s.head(at(b, k, v)).await.map(|h| h.size)),
            Call::Get(b, k, v) => text(s.get(at(b, k, v), 100).await.map(|b| b.len())),
            Call::Prefix(b, k) => text(s.get_prefix(at(b, k, None), 2).await.map(|b| b.len())),
            Call::ReadCurrent(b, k) => text(s.read_current(b, k, 100).await.map(|o| o.is_some())),
            Call::Put(b, k) => text(s.put(b, k, vec![1], "x").await),
            Call::PutIfAbsent(b, k) => {
                text(s.put_if(b, k, vec![1], "x", WriteCondition::IfAbsent).await)
            }
            Call::Copy(b, k, v, tb, tk) => text(s.copy(at(b, k, v), tb, tk).await),
            Call::List(b, p) => text(s.list(b, p).await.map(|l| l.len())),
            Call::ListVersions(b, p) => text(s.list_latest_versions(b, p).await.map(|l| l.len())),
            Call::Delete(b, k) => text(s.delete(b, k).await),
            Call::Start(n) => text(starter.start(n, "{}").await),
            Call::Status(n) => text(starter.status(n).await),
            Call::PutVersion => text(catalog.put_version(&entry).await),
            Call::Latest => text(catalog.latest("a.jpg").await.map(|e| e.is_some())),
            Call::PutLatest => text(catalog.put_latest(&entry, None).await),
        };
        let records = log
            .records()
            .into_iter()
            .map(|r| (r.request.action, r.request.resource, r.allowed))
            .collect();
        (outcome, records)
    }

    fn allow(actions: &[&str], resources: &[&str]) -> Statement {
        statement(actions, resources, &[])
    }

    /// (what, policy, call, outcome it starts with / error it contains, recorded calls)
    type WrapperCase = (
        &'static str,
        Vec<Statement>,
        Call,
        Result<&'static str, &'static str>,
        Vec<(&'static str, String, bool)>,
    );

    #[tokio::test]
    async fn wrappers_map_each_call_to_what_aws_evaluates_and_answer_as_aws() {
        let read_in = || allow(&["s3:GetObject"], &["arn:aws:s3:::in/*"]);
        let read_versions = || {
            allow(
                &["s3:GetObject", "s3:GetObjectVersion"],
                &["arn:aws:s3:::in/*"],
            )
        };
        let list_in = || allow(&["s3:ListBucket"], &["arn:aws:s3:::in"]);
        let list_in_prefixed = || {
            statement(
                &["s3:ListBucket"],
                &["arn:aws:s3:::in"],
                &[("StringLike", "s3:prefix", &["*"])],
            )
        };
        let obj = |k: &str| format!("arn:aws:s3:::{k}");
        let cases: Vec<WrapperCase> = vec![
            (
                "head of an existing key",
                vec![read_in()],
                Call::Head("in", "a.jpg", None),
                Ok("4"),
                vec![("s3:GetObject", obj("in/a.jpg"), true)],
            ),
            (
                "head of a version needs GetObjectVersion",
                vec![read_in()],
                Call::Head("in", "a.jpg", Some("v1")),
                Err("access denied"),
                vec![("s3:GetObjectVersion", obj("in/a.jpg"), false)],
            ),
            (
                "head of a missing key without ListBucket is 403",
                vec![read_in()],
                Call::Head("in", "gone.jpg", None),
                Err("access denied"),
                vec![
                    ("s3:GetObject", obj("in/gone.jpg"), true),
                    ("s3:ListBucket", obj("in"), false),
                ],
            ),
            (
                "head of a missing key with ListBucket is 404",
                vec![read_in(), list_in()],
                Call::Head("in", "gone.jpg", None),
                Err("not found"),
                vec![
                    ("s3:GetObject", obj("in/gone.jpg"), true),
                    ("s3:ListBucket", obj("in"), true),
                ],
            ),
            (
                "a prefix-conditioned ListBucket does not make it 404",
                vec![read_in(), list_in_prefixed()],
                Call::Head("in", "gone.jpg", None),
                Err("access denied"),
                vec![
                    ("s3:GetObject", obj("in/gone.jpg"), true),
                    ("s3:ListBucket", obj("in"), false),
                ],
            ),
            (
                "get of a missing version",
                vec![read_versions(), list_in()],
                Call::Get("in", "a.jpg", Some("v9")),
                Err("not found"),
                vec![
                    ("s3:GetObjectVersion", obj("in/a.jpg"), true),
                    ("s3:ListBucket", obj("in"), true),
                ],
            ),
            (
                "ranged get",
                vec![read_in()],
                Call::Prefix("in", "a.jpg"),
                Ok("2"),
                vec![("s3:GetObject", obj("in/a.jpg"), true)],
            ),
            (
                "get refused before anything is read",
                vec![],
                Call::Get("in", "gone.jpg", None),
                Err("access denied"),
                vec![("s3:GetObject", obj("in/gone.jpg"), false)],
            ),
            (
                "read_current of a stored result",
                vec![allow(&["s3:GetObject"], &["arn:aws:s3:::out/manifests/*"])],
                Call::ReadCurrent("out", "manifests/a.json"),
                Ok("true"),
                vec![("s3:GetObject", obj("out/manifests/a.json"), true)],
            ),
            (
                "read_current of a missing result without ListBucket is 403",
                vec![allow(&["s3:GetObject"], &["arn:aws:s3:::out/manifests/*"])],
                Call::ReadCurrent("out", "manifests/b.json"),
                Err("access denied"),
                vec![
                    ("s3:GetObject", obj("out/manifests/b.json"), true),
                    ("s3:ListBucket", obj("out"), false),
                ],
            ),
            (
                "read_current of a missing result with ListBucket is None",
                vec![
                    allow(&["s3:GetObject"], &["arn:aws:s3:::out/manifests/*"]),
                    allow(&["s3:ListBucket"], &["arn:aws:s3:::out"]),
                ],
                Call::ReadCurrent("out", "manifests/b.json"),
                Ok("false"),
                vec![
                    ("s3:GetObject", obj("out/manifests/b.json"), true),
                    ("s3:ListBucket", obj("out"), true),
                ],
            ),
            (
                "put",
                vec![allow(&["s3:PutObject"], &["arn:aws:s3:::out/thumbnails/*"])],
                Call::Put("out", "manifests/a.json"),
                Err("access denied"),
                vec![("s3:PutObject", obj("out/manifests/a.json"), false)],
            ),
            (
                "a conditional put needs only PutObject",
                vec![allow(&["s3:PutObject"], &["arn:aws:s3:::out/manifests/*"])],
                Call::PutIfAbsent("out", "manifests/a.json"),
                Err("changed since it was read"),
                vec![("s3:PutObject", obj("out/manifests/a.json"), true)],
            ),
            (
                "copy reads the source version and writes the destination",
                vec![
                    read_versions(),
                    allow(&["s3:PutObject"], &["arn:aws:s3:::out/q/*"]),
                ],
                Call::Copy("in", "a.jpg", Some("v1"), "out", "q/a"),
                Ok("()"),
                vec![
                    ("s3:GetObjectVersion", obj("in/a.jpg"), true),
                    ("s3:PutObject", obj("out/q/a"), true),
                ],
            ),
            (
                "copy without the destination grant",
                vec![read_versions()],
                Call::Copy("in", "a.jpg", Some("v1"), "out", "q/a"),
                Err("access denied"),
                vec![
                    ("s3:GetObjectVersion", obj("in/a.jpg"), true),
                    ("s3:PutObject", obj("out/q/a"), false),
                ],
            ),
            (
                "copy of a missing source with ListBucket is 404",
                vec![
                    read_versions(),
                    list_in(),
                    allow(&["s3:PutObject"], &["arn:aws:s3:::out/q/*"]),
                ],
                Call::Copy("in", "a.jpg", Some("v9"), "out", "q/a"),
                Err("not found"),
                vec![
                    ("s3:GetObjectVersion", obj("in/a.jpg"), true),
                    ("s3:PutObject", obj("out/q/a"), true),
                    ("s3:ListBucket", obj("in"), true),
                ],
            ),
            (
                "list carries s3:prefix",
                vec![statement(
                    &["s3:ListBucket"],
                    &["arn:aws:s3:::out"],
                    &[("StringLike", "s3:prefix", &["manifests/*"])],
                )],
                Call::List("out", "manifests/"),
                Ok("1"),
                vec![("s3:ListBucket", obj("out"), true)],
            ),
            (
                "list of another prefix",
                vec![statement(
                    &["s3:ListBucket"],
                    &["arn:aws:s3:::out"],
                    &[("StringLike", "s3:prefix", &["manifests/*"])],
                )],
                Call::List("out", "thumbnails/"),
                Err("access denied"),
                vec![("s3:ListBucket", obj("out"), false)],
            ),
            (
                "listing versions is its own action",
                vec![list_in()],
                Call::ListVersions("in", ""),
                Err("access denied"),
                vec![("s3:ListBucketVersions", obj("in"), false)],
            ),
            (
                "listing versions",
                vec![allow(&["s3:ListBucketVersions"], &["arn:aws:s3:::in"])],
                Call::ListVersions("in", ""),
                Ok("1"),
                vec![("s3:ListBucketVersions", obj("in"), true)],
            ),
            (
                "delete",
                vec![allow(
                    &["s3:DeleteObject"],
                    &["arn:aws:s3:::out/thumbnails/*"],
                )],
                Call::Delete("out", "thumbnails/a"),
                Ok("()"),
                vec![("s3:DeleteObject", obj("out/thumbnails/a"), true)],
            ),
            (
                "start is on the state machine",
                vec![allow(&["states:StartExecution"], &[SM])],
                Call::Start("n-1"),
                Ok("Started"),
                vec![("states:StartExecution", SM.to_string(), true)],
            ),
            (
                "start refused",
                vec![],
                Call::Start("n-1"),
                Err("not authorized to perform: states:StartExecution"),
                vec![("states:StartExecution", SM.to_string(), false)],
            ),
            (
                "status is on the execution",
                vec![allow(
                    &["states:DescribeExecution"],
                    &["arn:aws:states:eu-west-1:1:execution:sm:*"],
                )],
                Call::Status("n-1"),
                Ok("None"),
                vec![(
                    "states:DescribeExecution",
                    "arn:aws:states:eu-west-1:1:execution:sm:n-1".into(),
                    true,
                )],
            ),
            (
                "status on the state machine ARN is not enough",
                vec![allow(&["states:DescribeExecution"], &[SM])],
                Call::Status("n-1"),
                Err("AccessDeniedException"),
                vec![(
                    "states:DescribeExecution",
                    "arn:aws:states:eu-west-1:1:execution:sm:n-1".into(),
                    false,
                )],
            ),
            (
                "catalog version item",
                vec![allow(&["dynamodb:PutItem"], &[TABLE])],
                Call::PutVersion,
                Ok("()"),
                vec![("dynamodb:PutItem", TABLE.to_string(), true)],
            ),
            (
                "catalog latest item read",
                vec![allow(&["dynamodb:PutItem"], &[TABLE])],
                Call::Latest,
                Err("GetItem on table t failed: AccessDeniedException"),
                vec![("dynamodb:GetItem", TABLE.to_string(), false)],
            ),
            (
                "catalog latest item conditional write",
                vec![allow(&["dynamodb:PutItem"], &[TABLE])],
                Call::PutLatest,
                Ok("true"),
                vec![("dynamodb:PutItem", TABLE.to_string(), true)],
            ),
        ];
        for (what, statements, call, expected, expected_records) in cases {
            let (outcome, records) = run(statements, call).await;
            match (&outcome, expected) {
                (Ok(v), Ok(e)) => assert!(v.starts_with(e), "{what}: {v} (expected {e})"),
                (Err(v), Err(e)) => assert!(v.contains(e), "{what}: {v} (expected {e})"),
                _ => panic!("{what}: {outcome:?}, expected {expected:?}"),
            }
            let expected_records: Vec<(String, String, bool)> = expected_records
                .into_iter()
                .map(|(a, r, ok)| (a.to_string(), r, ok))
                .collect();
            assert_eq!(records, expected_records, "{what}");
        }
    }
}
