//! Every function's real handler, on the in-memory fakes, held to its own role's policy
//! as `infra/template.yaml` grants it. MiniStack enforces no IAM, so a missing grant
//! passes every emulator test and fails on AWS; this test evaluates each call the way AWS
//! does (`pipeline_aws::iam`), including S3's rule that a read of a missing key is
//! `403 AccessDenied`, not `404`, unless the role may `s3:ListBucket` the bucket.
//!
//! Realistic scenarios per function (new key, newer version over an older result,
//! superseded, source deleted, duplicate event, reconcile of keys with and without a
//! result), then three checks, each naming function, action and resource on failure:
//! every call was allowed; every grant of every role was used by some call (except the
//! [`EXEMPT`] ones, each with its reason); every handler succeeded with the outcome the
//! scenario expects (a permission problem must not pass as a quarantine).
//!
//! The template is `infra/template.yaml` unless `PIPELINE_PERMISSIONS_TEMPLATE` names
//! another (to show the test failing on an older template). No emulator, no packaging.
//! The handler modules are compiled in from `functions/*/src/handler.rs` (the function
//! crates are binaries), as `hostile_handlers.rs` does, so their own unit tests run here too.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../functions/ingest/src/handler.rs"]
#[allow(dead_code)]
mod ingest;
#[path = "../../functions/inspect/src/handler.rs"]
mod inspect;
#[path = "../../functions/load/src/handler.rs"]
mod load;
#[path = "../../functions/quarantine/src/handler.rs"]
mod quarantine;
#[path = "../../functions/reconcile/src/handler.rs"]
mod reconcile;
#[path = "../../functions/transform/src/handler.rs"]
mod transform;

use std::collections::BTreeMap;
use std::sync::Arc;

use integration_tests::hostile::encoded;
use integration_tests::object_created_event;
use pipeline_aws::catalog::MemoryCatalog;
use pipeline_aws::iam::{self, AccessLog, AccessRecord, Policy, Principal};
use pipeline_aws::{
    AuthorizedCatalog, AuthorizedStarter, AuthorizedStore, MemoryStarter, MemoryStore,
    ObjectLocation, ObjectStore,
};
use pipeline_core::config::PipelineConfig;
use pipeline_core::payload::{
    ExecutionContext, ExecutionInput, Failure, InspectInput, Inspection, LoadInput, LoadOutput,
    Manifest, Outcome, QuarantineInput, QuarantineOutput, QuarantineReport, SourceObject,
    TransformInput, TransformOutput,
};
use pipeline_core::reconcile::ReconcileConfig;
use pipeline_core::PipelineError;
use serde_json::Value;
use xtask::security::{self, Deployment, FunctionSetup};

/// The stack the template is rendered for.
const AT: Deployment<'static> = Deployment {
    stack: "s3-pipeline",
    account: "123456789012",
    region: "eu-west-1",
};

/// Grants no handler call uses, by (role, action; `*` = every role), with who uses them.
/// Each must match a grant of the template, so a stale exemption fails too.
const EXEMPT: &[(&str, &str, &str)] = &[
    (
        "*",
        "logs:CreateLogStream",
        "the Lambda runtime writes the function's logs with its role",
    ),
    (
        "*",
        "logs:PutLogEvents",
        "the Lambda runtime writes the function's logs with its role",
    ),
    (
        "IngestRole",
        "sqs:SendMessage",
        "Lambda sends a failed asynchronous invocation to the on-failure destination (the ingest failure queue) with the function's role",
    ),
    (
        "CountersRole",
        "dynamodb:DescribeStream",
        "the event source mapping reads the catalog table's stream with the function's role",
    ),
    (
        "CountersRole",
        "dynamodb:GetRecords",
        "the event source mapping reads the catalog table's stream with the function's role",
    ),
    (
        "CountersRole",
        "dynamodb:GetShardIterator",
        "the event source mapping reads the catalog table's stream with the function's role",
    ),
    (
        "CountersRole",
        "dynamodb:ListStreams",
        "the event source mapping reads the catalog table's stream with the function's role",
    ),
    (
        "CountersRole",
        "dynamodb:PutItem",
        "pipeline_aws::catalog::Counters writes through the DynamoDB SDK only (one TransactWriteItems, no trait, no fake), so the counters function is not driven here",
    ),
    (
        "CountersRole",
        "dynamodb:UpdateItem",
        "pipeline_aws::catalog::Counters writes through the DynamoDB SDK only (one TransactWriteItems, no trait, no fake), so the counters function is not driven here",
    ),
];

/// Functions no scenario drives, with the reason (their grants are all in [`EXEMPT`]).
const NOT_DRIVEN: &[(&str, &str)] = &[(
    "CountersFunction",
    "writes through the DynamoDB SDK only; its grants are exempt above",
)];

fn template_path() -> std::path::PathBuf {
    std::env::var_os("PIPELINE_PERMISSIONS_TEMPLATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
        })
}

/// The deployed functions and their roles' policies, from the template.
struct Model {
    functions: BTreeMap<String, FunctionSetup>,
    policies: BTreeMap<String, Policy>,
}

impl Model {
    fn from_template(text: &str) -> Self {
        let functions: BTreeMap<String, FunctionSetup> = security::functions(text, AT)
            .expect("the template's functions")
            .into_iter()
            .map(|f| (f.id.clone(), f))
            .collect();
        let mut policies = BTreeMap::new();
        for f in functions.values() {
            let statements = security::role_statements(text, &f.role, AT)
                .unwrap_or_else(|e| panic!("{}'s role {}: {e:#}", f.id, f.role))
                .into_iter()
                .map(|s| iam::Statement {
                    sid: s.sid,
                    actions: s.actions,
                    resources: s.resources,
                    conditions: s
                        .conditions
                        .into_iter()
                        .map(|c| iam::Condition {
                            operator: c.operator,
                            key: c.key,
                            values: c.values,
                        })
                        .collect(),
                })
                .collect();
            let policy = Policy::new(statements)
                .unwrap_or_else(|e| panic!("{}'s role {}: {e}", f.id, f.role));
            policies.insert(f.id.clone(), policy);
        }
        Model {
            functions,
            policies,
        }
    }

    fn function(&self, id: &str) -> &FunctionSetup {
        self.functions
            .get(id)
            .unwrap_or_else(|| panic!("the template has no {id}"))
    }

    fn env(&self, id: &str, name: &str) -> String {
        self.function(id)
            .environment
            .get(name)
            .unwrap_or_else(|| panic!("{id} has no {name} in its environment"))
            .clone()
    }
}

/// One scenario's AWS: the fakes, and each function's view of them through its role.
struct World<'m> {
    model: &'m Model,
    log: AccessLog,
    store: Arc<MemoryStore>,
    starter: Arc<MemoryStarter>,
    catalog: Arc<MemoryCatalog>,
    input: String,
    output: String,
}

/// A step's result or what went wrong, with the scenario's words.
type Step<T> = Result<T, String>;

fn failed(what: &str, e: PipelineError) -> String {
    format!("{what}: {}: {e}", e.name())
}

impl<'m> World<'m> {
    /// The input bucket is versioned, as the template makes it.
    fn new(model: &'m Model, log: &AccessLog) -> Self {
        let world = Self::unversioned(model, log);
        world.store.enable_versioning(&world.input);
        world
    }

    /// The input bucket before versioning is turned on (objects get the `null` version).
    fn unversioned(model: &'m Model, log: &AccessLog) -> Self {
        World {
            model,
            log: log.clone(),
            store: Arc::new(MemoryStore::new()),
            starter: Arc::new(MemoryStarter::new()),
            catalog: Arc::new(MemoryCatalog::new()),
            input: model.env("IngestFunction", "INPUT_BUCKET"),
            output: model.env("LoadFunction", "OUTPUT_BUCKET"),
        }
    }

    fn principal(&self, id: &str) -> Principal {
        let f = self.model.function(id);
        Principal::new(
            f.name.clone(),
            f.role.clone(),
            self.model.policies[id].clone(),
            self.log.clone(),
        )
    }

    fn store(&self, id: &str) -> AuthorizedStore {
        AuthorizedStore::new(self.store.clone(), self.principal(id))
    }

    fn starter(&self, id: &str) -> AuthorizedStarter {
        let arn = self.model.env(id, "STATE_MACHINE_ARN");
        AuthorizedStarter::new(self.starter.clone(), arn, self.principal(id))
    }

    fn catalog(&self, id: &str) -> AuthorizedCatalog {
        let table = self.model.env(id, "CATALOG_TABLE");
        let arn = format!(
            "arn:aws:dynamodb:{}:{}:table/{table}",
            AT.region, AT.account
        );
        AuthorizedCatalog::new(self.catalog.clone(), arn, self.principal(id))
    }

    fn config(&self, id: &str) -> PipelineConfig {
        PipelineConfig::from_vars(self.model.function(id).environment.clone())
            .unwrap_or_else(|e| panic!("{id}'s environment: {e}"))
    }

    /// Uploads `body` as a new version of `key`; the ObjectCreated event S3 sends for it.
    async fn upload(&self, key: &str, body: Vec<u8>) -> Value {
        let size = body.len() as u64;
        let version = self.store.insert(&self.input, key, body);
        let head = self
            .store
            .head(ObjectLocation::latest(&self.input, key))
            .await
            .unwrap();
        object_created_event(
            &self.input,
            key,
            size,
            head.etag.as_deref(),
            version.as_deref(),
        )
    }

    /// The event to the ingest function; `(started, duplicates)`.
    async fn ingest(&self, event: &Value) -> Step<(usize, usize)> {
        let id = "IngestFunction";
        let report = ingest::handle(event, &self.config(id).layout, &self.starter(id))
            .await
            .map_err(|e| failed("ingest", e))?;
        Ok((report.started, report.duplicates))
    }

    /// Uploads and ingests: the execution ingest started, by name and input.
    async fn upload_and_ingest(&self, key: &str, body: Vec<u8>) -> Step<(String, SourceObject)> {
        let event = self.upload(key, body).await;
        self.ingest_one(key, &event).await
    }

    /// Ingests an event that must start exactly one execution.
    async fn ingest_one(&self, key: &str, event: &Value) -> Step<(String, SourceObject)> {
        let before = self.starter.started();
        let (started, _) = self.ingest(event).await?;
        let new: Vec<(String, String)> = self
            .starter
            .started()
            .into_iter()
            .filter(|(name, _)| !before.contains_key(name))
            .collect();
        match (started, new.as_slice()) {
            (1, [(name, input)]) => {
                let input: ExecutionInput = serde_json::from_str(input).unwrap();
                Ok((name.clone(), input.source))
            }
            _ => Err(format!(
                "ingest of {key:?} started {started} execution(s): {new:?}"
            )),
        }
    }

    async fn inspect(&self, source: &SourceObject) -> Result<Inspection, PipelineError> {
        let id = "InspectFunction";
        let input = InspectInput {
            source: source.clone(),
        };
        inspect::inspect(input, &self.store(id), &self.config(id)).await
    }

    async fn transform(
        &self,
        source: &SourceObject,
        inspection: &Inspection,
    ) -> Result<TransformOutput, PipelineError> {
        let id = "TransformFunction";
        let input = TransformInput {
            source: source.clone(),
            inspection: inspection.clone(),
        };
        transform::transform(input, &self.store(id), &self.config(id)).await
    }

    async fn load(
        &self,
        name: &str,
        source: &SourceObject,
        inspection: Inspection,
        transform: TransformOutput,
    ) -> Step<LoadOutput> {
        let id = "LoadFunction";
        let input = LoadInput {
            source: source.clone(),
            inspection,
            transform,
            execution: execution(name),
        };
        load::load(input, &self.store(id), &self.catalog(id), &self.config(id))
            .await
            .map_err(|e| failed(&format!("load of {}", source.key), e))
    }

    async fn quarantine(
        &self,
        name: &str,
        source: &SourceObject,
        failure: Failure,
    ) -> Step<QuarantineOutput> {
        let id = "QuarantineFunction";
        let input = QuarantineInput {
            source: source.clone(),
            failure,
            execution: execution(name),
        };
        quarantine::quarantine(
            input,
            &self.store(id),
            &self.catalog(id),
            &self.config(id),
            "2026-11-29T08:00:01Z".into(),
        )
        .await
        .map_err(|e| failed(&format!("quarantine of {}", source.key), e))
    }

    /// Inspect, Transform and Load of an image that must end processed.
    async fn process(&self, name: &str, source: &SourceObject) -> Step<LoadOutput> {
        let inspection = self
            .inspect(source)
            .await
            .map_err(|e| failed(&format!("inspect of {}", source.key), e))?;
        if !inspection.supported {
            return Err(format!("inspect: {} is not supported", source.key));
        }
        let transform = self
            .transform(source, &inspection)
            .await
            .map_err(|e| failed(&format!("transform of {}", source.key), e))?;
        self.load(name, source, inspection, transform).await
    }

    /// Inspect of an object it must find unsupported, then Quarantine.
    async fn reject(&self, name: &str, source: &SourceObject) -> Step<QuarantineOutput> {
        let inspection = self
            .inspect(source)
            .await
            .map_err(|e| failed(&format!("inspect of {}", source.key), e))?;
        if inspection.supported {
            return Err(format!("inspect: {} was supported", source.key));
        }
        let failure = Failure {
            error: "UnsupportedType".into(),
            cause: inspection.detected,
        };
        self.quarantine(name, source, failure).await
    }

    fn manifest(&self, key: &str) -> Option<Manifest> {
        let (body, _) = self
            .store
            .object(&self.output, &format!("manifests/{key}.json"))?;
        serde_json::from_slice(&body).ok()
    }

    fn report(&self, key: &str) -> Option<QuarantineReport> {
        let (body, _) = self
            .store
            .object(&self.output, &format!("quarantine/reports/{key}.json"))?;
        serde_json::from_slice(&body).ok()
    }
}

fn execution(name: &str) -> ExecutionContext {
    ExecutionContext {
        name: name.to_owned(),
        started_at: "2026-11-29T08:00:00Z".into(),
    }
}

fn jpeg() -> Vec<u8> {
    encoded(64, 48, image::ImageFormat::Jpeg)
}

fn expect(what: &str, outcome: Outcome, expected: Outcome) -> Step<()> {
    if outcome == expected {
        Ok(())
    } else {
        Err(format!("{what}: ended {outcome:?}, expected {expected:?}"))
    }
}

/// The same source naming a version that no longer exists (removed for good, e.g. by a
/// lifecycle rule expiring noncurrent versions) after its execution started.
fn expired(source: &SourceObject) -> SourceObject {
    SourceObject {
        version_id: Some("expired-version".into()),
        ..source.clone()
    }
}

/// Ingest (new event, duplicate) and Load: a new key; a newer version over the older
/// manifest; a version superseded before its load; a source deleted during its execution.
async fn scenario_load(model: &Model, log: &AccessLog) -> Step<()> {
    let w = World::new(model, log);
    let key = "photos/a.jpg";
    let event = w.upload(key, jpeg()).await;
    let (first, v1) = w.ingest_one(key, &event).await?;
    let out = w.process(&first, &v1).await?;
    expect("load of a new key", out.outcome, Outcome::Processed)?;

    // The same event again once its execution ended: a duplicate, nothing started.
    w.starter.set_status(&first, "SUCCEEDED");
    let (started, duplicates) = w.ingest(&event).await?;
    if (started, duplicates) != (0, 1) {
        return Err(format!(
            "duplicate event: started {started}, duplicates {duplicates}"
        ));
    }

    // A newer version: its create-only write meets v1's manifest (412), reads it, replaces it.
    let (second, v2) = w.upload_and_ingest(key, jpeg()).await?;
    let out = w.process(&second, &v2).await?;
    expect(
        "load over an older manifest",
        out.outcome,
        Outcome::Processed,
    )?;
    let recorded = w.manifest(key).map(|m| m.source.version_id);
    if recorded != Some(v2.version_id.clone()) {
        return Err(format!("the manifest records {recorded:?}, not v2"));
    }

    // v3 and v4 uploaded; v3's execution loads after v4 exists: superseded, thumbnails go.
    let (third, v3) = w.upload_and_ingest(key, jpeg()).await?;
    let (fourth, v4) = w.upload_and_ingest(key, jpeg()).await?;
    let out = w.process(&third, &v3).await?;
    expect(
        "load of a superseded version",
        out.outcome,
        Outcome::Superseded,
    )?;
    let out = w.process(&fourth, &v4).await?;
    expect(
        "load of the newest version",
        out.outcome,
        Outcome::Processed,
    )?;

    // Deleted while its execution ran: Load asks S3 for the key's current version (404).
    let key = "photos/deleted.jpg";
    let (name, source) = w.upload_and_ingest(key, jpeg()).await?;
    let inspection = w.inspect(&source).await.map_err(|e| failed("inspect", e))?;
    let transform = w
        .transform(&source, &inspection)
        .await
        .map_err(|e| failed("transform", e))?;
    w.store.delete(&w.input, key).await.unwrap();
    let out = w.load(&name, &source, inspection, transform).await?;
    expect(
        "load of a source deleted meanwhile",
        out.outcome,
        Outcome::Processed,
    )?;
    Ok(())
}

/// An object with the `null` version (written before versioning was enabled): every read
/// names no version, so it is `s3:GetObject`, not `s3:GetObjectVersion`.
async fn scenario_null_version(model: &Model, log: &AccessLog) -> Step<()> {
    let w = World::unversioned(model, log);
    let key = "legacy/old.jpg";
    let event = w.upload(key, jpeg()).await;
    w.store.enable_versioning(&w.input);
    let (name, source) = w.ingest_one(key, &event).await?;
    if source.version_id.is_some() {
        return Err(format!("the null version's execution names {source:?}"));
    }
    let out = w.process(&name, &source).await?;
    expect("null version", out.outcome, Outcome::Processed)
}

/// Quarantine: a new key; a source gone before Inspect and one gone before Transform
/// (reported without a copy); a version superseded before its quarantine; a newer version
/// over an older report.
async fn scenario_quarantine(model: &Model, log: &AccessLog) -> Step<()> {
    let w = World::new(model, log);
    let text = || b"just some notes, not an image".to_vec();
    let key = "inbox/notes.jpg";
    let (first, v1) = w.upload_and_ingest(key, text()).await?;
    let out = w.reject(&first, &v1).await?;
    expect("quarantine of a new key", out.outcome, Outcome::Quarantined)?;
    if w.report(key).and_then(|r| r.copy).is_none() {
        return Err("the report of a new key names no copy".into());
    }

    // v2 and v3 uploaded; v2 is quarantined after v3 exists: superseded, its copy goes.
    let (second, v2) = w.upload_and_ingest(key, text()).await?;
    let (third, v3) = w.upload_and_ingest(key, text()).await?;
    let out = w.reject(&second, &v2).await?;
    expect(
        "quarantine of a superseded version",
        out.outcome,
        Outcome::Superseded,
    )?;
    // v3 meets v1's report (412), reads it and replaces it.
    let out = w.reject(&third, &v3).await?;
    expect(
        "quarantine over an older report",
        out.outcome,
        Outcome::Quarantined,
    )?;
    let recorded = w.report(key).map(|r| r.source.version_id);
    if recorded != Some(v3.version_id.clone()) {
        return Err(format!("the report records {recorded:?}, not v3"));
    }

    // Gone before Inspect: SourceMissing (a 404, which needs s3:ListBucket), then a report
    // without a copy.
    for (key, gone_before) in [
        ("inbox/gone-early.jpg", "inspect"),
        ("inbox/gone-late.jpg", "transform"),
    ] {
        let (name, source) = w.upload_and_ingest(key, jpeg()).await?;
        w.store.delete(&w.input, key).await.unwrap();
        let error = if gone_before == "inspect" {
            w.inspect(&expired(&source)).await.err()
        } else {
            let inspection = w.inspect(&source).await.map_err(|e| failed("inspect", e))?;
            w.transform(&expired(&source), &inspection).await.err()
        };
        let error = match error {
            Some(e) if e.name() == "SourceMissing" => e,
            other => {
                return Err(format!(
                    "{gone_before} of {key} (version gone): expected SourceMissing, got {}",
                    other.map_or("success".to_string(), |e| failed("", e))
                ))
            }
        };
        let failure = Failure {
            error: error.name().into(),
            cause: error.to_string(),
        };
        let out = w.quarantine(&name, &expired(&source), failure).await?;
        expect(
            &format!("quarantine of a source gone before {gone_before}"),
            out.outcome,
            Outcome::Quarantined,
        )?;
        let report = w.report(key).ok_or("no report")?;
        if report.copy.is_some() || report.error != "SourceMissing" {
            return Err(format!("report of {key}: {report:?}"));
        }
    }
    Ok(())
}

/// Reconcile as the function runs it: a key with a manifest, one with a report, one whose
/// event was lost, one whose execution failed.
async fn scenario_reconcile(model: &Model, log: &AccessLog) -> Step<()> {
    let w = World::new(model, log);
    let (name, source) = w.upload_and_ingest("done.jpg", jpeg()).await?;
    expect(
        "done.jpg",
        w.process(&name, &source).await?.outcome,
        Outcome::Processed,
    )?;
    w.starter.set_status(&name, "SUCCEEDED");
    let (name, source) = w
        .upload_and_ingest("rejected.jpg", b"plain text".to_vec())
        .await?;
    expect(
        "rejected.jpg",
        w.reject(&name, &source).await?.outcome,
        Outcome::Quarantined,
    )?;
    w.starter.set_status(&name, "SUCCEEDED");
    w.upload("lost.jpg", jpeg()).await;
    let (failed_name, _) = w.upload_and_ingest("failed.jpg", jpeg()).await?;
    w.starter.set_status(&failed_name, "FAILED");
    for key in ["done.jpg", "rejected.jpg", "lost.jpg", "failed.jpg"] {
        w.store.set_last_modified(&w.input, key, 0);
    }

    let id = "ReconcileFunction";
    let settings = ReconcileConfig::from_vars(model.function(id).environment.clone())
        .map_err(|e| failed("reconcile settings", e))?;
    let out = reconcile::reconcile(
        reconcile::ReconcileInvocation::default(),
        &w.config(id),
        &settings,
        &w.store(id),
        &w.starter(id),
    )
    .await
    .map_err(|e| failed("reconcile", e))?;
    // The lost one under its first name, the failed one under its next generation.
    let started = &out.started;
    let ok = out.errors.is_empty()
        && out.has_result == 2
        && started.len() == 2
        && started.iter().any(|n| n.starts_with("lost-jpg-"))
        && started.contains(&format!("{failed_name}-g1"));
    if !ok {
        return Err(format!(
            "reconcile: {} (started {started:?}, errors {:?})",
            out.summary, out.errors
        ));
    }
    Ok(())
}

/// What one run over the template found.
#[derive(Debug, Default)]
struct Audit {
    denied: Vec<String>,
    failures: Vec<String>,
    unused: Vec<String>,
    exemptions: Vec<String>,
}

impl Audit {
    fn is_clean(&self) -> bool {
        self.denied.is_empty()
            && self.failures.is_empty()
            && self.unused.is_empty()
            && self.exemptions.is_empty()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        let unused = if self.failures.is_empty() {
            "grant(s) no call used"
        } else {
            "grant(s) no call used (a scenario that stopped early leaves its later grants unused)"
        };
        for (title, lines) in [
            ("call(s) the role does not allow", &self.denied),
            ("handler(s) that did not end as expected", &self.failures),
            (unused, &self.unused),
            ("exemption(s) that match no grant", &self.exemptions),
        ] {
            if !lines.is_empty() {
                out.push_str(&format!("{} {title}:\n", lines.len()));
                for l in lines {
                    out.push_str(&format!("  {l}\n"));
                }
            }
        }
        out
    }
}

async fn audit(template_text: &str) -> Audit {
    let model = Model::from_template(template_text);
    let log = AccessLog::new();
    let mut audit = Audit::default();
    for (name, result) in [
        ("load", scenario_load(&model, &log).await),
        ("null version", scenario_null_version(&model, &log).await),
        ("quarantine", scenario_quarantine(&model, &log).await),
        ("reconcile", scenario_reconcile(&model, &log).await),
    ] {
        if let Err(e) = result {
            audit.failures.push(format!("scenario {name}: {e}"));
        }
    }
    let records = log.records();
    // Each denied call once, in the order first made.
    for record in records.iter().filter(|r| !r.allowed) {
        let line = record.to_string();
        if !audit.denied.contains(&line) {
            audit.denied.push(line);
        }
    }
    check_grants(&model, &records, &mut audit);
    audit
}

/// Every grant of every function's role is used by one of that function's calls, or
/// exempt; every exemption matches a grant.
fn check_grants(model: &Model, records: &[AccessRecord], audit: &mut Audit) {
    let mut exemption_used = vec![false; EXEMPT.len()];
    for (id, f) in &model.functions {
        let policy = &model.policies[id];
        let driven = records.iter().any(|r| r.principal == f.name);
        let excused = NOT_DRIVEN.iter().any(|(n, _)| n == id);
        if !driven && !excused {
            audit.failures.push(format!(
                "{id} ({}) made no call: no scenario drives it",
                f.name
            ));
        }
        for grant in policy.grants() {
            let exempt = EXEMPT.iter().position(|(role, action, _)| {
                (*role == "*" || *role == f.role) && grant.action.eq_ignore_ascii_case(action)
            });
            if let Some(i) = exempt {
                exemption_used[i] = true;
                continue;
            }
            let used = records.iter().any(|r| {
                r.principal == f.name && r.allowed && policy.grant_allows(&grant, &r.request)
            });
            if !used {
                audit.unused.push(format!(
                    "{} (role {}) is granted {grant}, but no call of the function used it",
                    f.name, f.role
                ));
            }
        }
    }
    for (i, (role, action, why)) in EXEMPT.iter().enumerate() {
        if !exemption_used[i] {
            audit.exemptions.push(format!(
                "{role} {action} ({why}) is exempt but no role grants it: remove the exemption"
            ));
        }
    }
}

#[tokio::test]
async fn permissions_every_call_is_allowed_and_every_grant_is_used() {
    let path = template_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let audit = audit(&text).await;
    assert!(
        audit.is_clean(),
        "the handlers against the policies of {}:\n{}",
        path.display(),
        audit.report()
    );
}

fn repo_template() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"),
    )
    .unwrap()
}

/// The real template with `from` (which must occur exactly once) replaced by `to`.
fn mutated(from: &str, to: &str) -> String {
    let text = repo_template();
    assert_eq!(
        text.matches(from).count(),
        1,
        "the mutation target must occur exactly once: {from:?}"
    );
    text.replacen(from, to, 1)
}

/// `expected` is one of `lines` (denied calls or unused grants of `audit`).
fn assert_listed(audit: &Audit, lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "expected {expected:?} in:\n{}",
        audit.report()
    );
}

/// Some handler failure of `audit` mentions every one of `words`.
fn assert_failed(audit: &Audit, words: &[&str]) {
    assert!(
        audit
            .failures
            .iter()
            .any(|f| words.iter().all(|w| f.contains(w))),
        "expected a failure with {words:?} in:\n{}",
        audit.report()
    );
}

#[tokio::test]
async fn permissions_a_removed_grant_is_reported_with_function_action_and_resource() {
    // Load may no longer read the manifests: the read after a 412 is refused.
    let text = mutated(
        "                  - s3:GetObject\n                  - s3:PutObject\n                Resource: !Sub \"${OutputBucket.Arn}/manifests/*\"",
        "                  - s3:PutObject\n                Resource: !Sub \"${OutputBucket.Arn}/manifests/*\"",
    );
    let audit = audit(&text).await;
    assert_listed(
        &audit,
        &audit.denied,
        "s3-pipeline-load: GetObject needs s3:GetObject on arn:aws:s3:::s3-pipeline-output-123456789012/manifests/photos/a.jpg.json: DENIED",
    );
    assert_failed(&audit, &["load of photos/a.jpg: AccessDenied"]);
}

#[tokio::test]
async fn permissions_a_missing_list_grant_turns_a_404_into_access_denied() {
    // Without s3:ListBucket on the input bucket, Inspect cannot tell a gone source from a
    // refused one: S3 answers 403 and the scenario fails as AccessDenied, not SourceMissing.
    let from = "        - PolicyName: inspect\n          PolicyDocument:\n            Version: \"2012-10-17\"\n            Statement:\n              - Sid: ReadInputObjects\n                Effect: Allow\n                Action:\n                  - s3:GetObject\n                  - s3:GetObjectVersion\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-input-${AWS::AccountId}/*\"\n              - Sid: ListInputSoMissingKeysAnswer404\n                Effect: Allow\n                Action: s3:ListBucket\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-input-${AWS::AccountId}\"\n";
    let to = "        - PolicyName: inspect\n          PolicyDocument:\n            Version: \"2012-10-17\"\n            Statement:\n              - Sid: ReadInputObjects\n                Effect: Allow\n                Action:\n                  - s3:GetObject\n                  - s3:GetObjectVersion\n                Resource: !Sub \"arn:${AWS::Partition}:s3:::${AWS::StackName}-input-${AWS::AccountId}/*\"\n";
    let audit = audit(&mutated(from, to)).await;
    assert_listed(
        &audit,
        &audit.denied,
        "s3-pipeline-inspect: HeadObject (missing key: 404 needs s3:ListBucket, else 403) needs s3:ListBucket on arn:aws:s3:::s3-pipeline-input-123456789012: DENIED",
    );
    assert_failed(&audit, &["expected SourceMissing", "AccessDenied"]);
}

#[tokio::test]
async fn permissions_a_grant_nothing_uses_is_reported() {
    let from = "              - Sid: RemoveThumbnailsOfSupersededVersions\n";
    let to = "              - Sid: ReadThumbnails\n                Effect: Allow\n                Action: s3:GetObject\n                Resource: !Sub \"${OutputBucket.Arn}/thumbnails/*\"\n              - Sid: RemoveThumbnailsOfSupersededVersions\n";
    let audit = audit(&mutated(from, to)).await;
    assert_listed(
        &audit,
        &audit.unused,
        "s3-pipeline-load (role LoadRole) is granted s3:GetObject on arn:aws:s3:::s3-pipeline-output-123456789012/thumbnails/* (statement ReadThumbnails), but no call of the function used it",
    );
    assert!(audit.denied.is_empty(), "{}", audit.report());
}
