//! Deploying the pipeline stack through the CloudFormation API: the one deploy path used
//! by the demo, the tests and real AWS alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use thiserror::Error;

use crate::clients::Clients;
use crate::store::{error_chain, ObjectStore, S3Store};

/// The Lambda functions of the pipeline, in deploy order; each ships as `<name>.zip`.
pub const FUNCTIONS: [&str; 7] = [
    "ingest",
    "inspect",
    "transform",
    "load",
    "quarantine",
    "reconcile",
    "counters",
];

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub stack_name: String,
    /// `infra/template.yaml`.
    pub template_path: PathBuf,
    /// `state-machine/pipeline.asl.json`.
    pub definition_path: PathBuf,
    /// Folder holding `<function>.zip` for each of [`FUNCTIONS`].
    pub artifacts_dir: PathBuf,
    /// Bucket to upload the zips and the definition to (created if missing).
    pub artifacts_bucket: String,
    /// Extra template parameters (`ThumbnailSizes`, `InputPrefix`, ...).
    pub parameters: Vec<(String, String)>,
    pub timeout: Duration,
}

/// The deployed stack's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStack {
    pub stack_name: String,
    pub input_bucket: String,
    pub output_bucket: String,
    pub state_machine_arn: String,
    /// Function names by short name (`ingest`, ...).
    pub functions: Vec<(String, String)>,
    /// Where Lambda puts events ingest failed to handle (ingest's on-failure destination).
    pub failure_queue_url: String,
    /// One item per object version (see `pipeline_core::catalog`).
    pub catalog_table: String,
    /// Per-prefix counts kept by the counters function from the catalog's stream.
    pub counters_table: String,
}

impl PipelineStack {
    pub fn function(&self, short: &str) -> Option<&str> {
        self.functions
            .iter()
            .find(|(s, _)| s == short)
            .map(|(_, n)| n.as_str())
    }

    /// Reads the outputs of an existing stack.
    pub async fn describe(clients: &Clients, stack_name: &str) -> Result<Self, DeployError> {
        let stacks = clients
            .cloudformation
            .describe_stacks()
            .stack_name(stack_name)
            .send()
            .await
            .map_err(|e| DeployError::Api(error_chain(&e)))?;
        let stack = stacks
            .stacks()
            .first()
            .ok_or_else(|| DeployError::Api(format!("stack {stack_name} not found")))?;
        let output = |name: &str| -> Result<String, DeployError> {
            stack
                .outputs()
                .iter()
                .find(|o| o.output_key() == Some(name))
                .and_then(|o| o.output_value())
                .map(str::to_string)
                .ok_or_else(|| DeployError::MissingOutput(name.to_string()))
        };
        let mut functions = Vec::new();
        for f in FUNCTIONS {
            let name = output(&format!("{}FunctionName", pascal_case(f)))?;
            functions.push((f.to_string(), name));
        }
        Ok(PipelineStack {
            stack_name: stack_name.to_string(),
            input_bucket: output("InputBucketName")?,
            output_bucket: output("OutputBucketName")?,
            state_machine_arn: output("StateMachineArn")?,
            functions,
            failure_queue_url: output("IngestFailureQueueUrl")?,
            catalog_table: output("CatalogTableName")?,
            counters_table: output("CountersTableName")?,
        })
    }
}

#[derive(Debug, Error)]
pub enum DeployError {
    #[error("missing artifact {path}: run `cargo xtask package` first")]
    MissingArtifact { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("upload failed: {0}")]
    Upload(#[from] crate::store::StoreError),
    #[error("CloudFormation call failed: {0}")]
    Api(String),
    #[error("stack {stack} ended in {status}: {reasons}")]
    StackFailed {
        stack: String,
        status: String,
        reasons: String,
    },
    #[error("stack {stack} did not finish within {seconds} s (last status {status})")]
    Timeout {
        stack: String,
        seconds: u64,
        status: String,
    },
    #[error("stack output {0} missing")]
    MissingOutput(String),
}

fn read(path: &Path) -> Result<Vec<u8>, DeployError> {
    if !path.exists() {
        return Err(DeployError::MissingArtifact {
            path: path.to_path_buf(),
        });
    }
    std::fs::read(path).map_err(|source| DeployError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Uploads the artifacts, creates or updates the stack and waits for it.
pub async fn deploy(clients: &Clients, req: &DeployRequest) -> Result<PipelineStack, DeployError> {
    let store = S3Store::new(clients.s3.clone());
    store.ensure_bucket(&req.artifacts_bucket).await?;
    let mut params: Vec<(String, String)> =
        vec![("ArtifactsBucket".into(), req.artifacts_bucket.clone())];
    let prefix = format!("{}/", req.stack_name);
    // Everything the release is made of, for ReleaseId (see `release_id`).
    let mut release_parts: Vec<String> = Vec::new();
    for f in FUNCTIONS {
        let body = read(&req.artifacts_dir.join(format!("{f}.zip")))?;
        let key = format!("{prefix}{f}-{}.zip", short_digest(&body));
        release_parts.push(format!("zip {key}"));
        store
            .put(&req.artifacts_bucket, &key, body, "application/zip")
            .await?;
        params.push((format!("{}CodeKey", pascal_case(f)), key));
    }
    let definition = read(&req.definition_path)?;
    let definition_key = format!("{prefix}pipeline-{}.asl.json", short_digest(&definition));
    store
        .put(
            &req.artifacts_bucket,
            &definition_key,
            definition,
            "application/json",
        )
        .await?;
    release_parts.push(format!("definition {definition_key}"));
    params.push(("DefinitionKey".into(), definition_key));
    params.extend(req.parameters.iter().cloned());

    let template = String::from_utf8(read(&req.template_path)?).map_err(|e| DeployError::Read {
        path: req.template_path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    release_parts.push(format!("template {}", short_digest(template.as_bytes())));
    release_parts.extend(
        req.parameters
            .iter()
            .map(|(k, v)| format!("parameter {k}={v}")),
    );
    params.push(("ReleaseId".into(), release_id(release_parts)));
    apply_stack(clients, &req.stack_name, &template, &params, req.timeout).await
}

/// Creates or updates `stack_name` from `template` (plain CloudFormation or a template
/// with a transform such as SAM's) with `parameters`, waits for it and reads its outputs.
/// "No updates" is success.
pub async fn apply_stack(
    clients: &Clients,
    stack_name: &str,
    template: &str,
    parameters: &[(String, String)],
    timeout: Duration,
) -> Result<PipelineStack, DeployError> {
    let parameters: Vec<Parameter> = parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    // Named roles are not used, but a caller's template may; AUTO_EXPAND lets a template
    // with a transform (the SAM form) be created directly.
    let capabilities = [
        Capability::CapabilityIam,
        Capability::CapabilityNamedIam,
        Capability::CapabilityAutoExpand,
    ];

    let exists = clients
        .cloudformation
        .describe_stacks()
        .stack_name(stack_name)
        .send()
        .await
        .map(|s| {
            s.stacks()
                .iter()
                .any(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))
        })
        .unwrap_or(false);
    if exists {
        let r = clients
            .cloudformation
            .update_stack()
            .stack_name(stack_name)
            .template_body(template)
            .set_parameters(Some(parameters))
            .set_capabilities(Some(capabilities.to_vec()))
            .send()
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.message().unwrap_or_default().contains("No updates") => {
                return PipelineStack::describe(clients, stack_name).await;
            }
            Err(e) => return Err(DeployError::Api(error_chain(&e))),
        }
    } else {
        clients
            .cloudformation
            .create_stack()
            .stack_name(stack_name)
            .template_body(template)
            .set_parameters(Some(parameters))
            .set_capabilities(Some(capabilities.to_vec()))
            .send()
            .await
            .map_err(|e| DeployError::Api(error_chain(&e)))?;
    }
    wait_for_stack(clients, stack_name, timeout).await?;
    PipelineStack::describe(clients, stack_name).await
}

async fn wait_for_stack(
    clients: &Clients,
    stack: &str,
    timeout: Duration,
) -> Result<(), DeployError> {
    let started = tokio::time::Instant::now();
    let mut status = String::from("unknown");
    while started.elapsed() < timeout {
        let out = clients
            .cloudformation
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| DeployError::Api(error_chain(&e)))?;
        if let Some(s) = out.stacks().first().and_then(|s| s.stack_status()) {
            status = s.as_str().to_string();
            if status.ends_with("_COMPLETE") && !status.contains("ROLLBACK") {
                return Ok(());
            }
            if status.ends_with("_FAILED") || status.contains("ROLLBACK") {
                return Err(DeployError::StackFailed {
                    stack: stack.to_string(),
                    status,
                    reasons: failure_reasons(clients, stack).await,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(DeployError::Timeout {
        stack: stack.to_string(),
        seconds: timeout.as_secs(),
        status,
    })
}

async fn failure_reasons(clients: &Clients, stack: &str) -> String {
    let Ok(events) = clients
        .cloudformation
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
    else {
        return "no stack events".into();
    };
    let reasons: Vec<String> = events
        .stack_events()
        .iter()
        .filter(|e| {
            e.resource_status()
                .map(|s| s.as_str().ends_with("_FAILED"))
                .unwrap_or(false)
        })
        .map(|e| {
            format!(
                "{}: {}",
                e.logical_resource_id().unwrap_or_default(),
                e.resource_status_reason().unwrap_or_default()
            )
        })
        .collect();
    if reasons.is_empty() {
        "no failed resources reported".into()
    } else {
        reasons.join("; ")
    }
}

/// Content-addressed artifact keys make CloudFormation update functions whose code changed.
fn short_digest(bytes: &[u8]) -> String {
    let mut hex = pipeline_core::image_info::sha256_hex(bytes);
    hex.truncate(16);
    hex
}

/// The template's `ReleaseId`: 16 hex digits over what the deploy ships (zip and
/// definition keys, which are content-addressed, the template and the caller's
/// parameters, in any order). A change to any of them changes every function's
/// configuration, so each publishes a new version and its `live` alias moves; the same
/// inputs give the same id, so an unchanged deploy is a no-op.
fn release_id(mut parts: Vec<String>) -> String {
    parts.sort();
    short_digest(parts.join("\n").as_bytes())
}

/// `ingest` -> `Ingest`: how the template names a function's parameters and outputs.
fn pascal_case(function: &str) -> String {
    let mut chars = function.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_matches_template_names() {
        let names: Vec<String> = FUNCTIONS.iter().map(|f| pascal_case(f)).collect();
        assert_eq!(
            names,
            [
                "Ingest",
                "Inspect",
                "Transform",
                "Load",
                "Quarantine",
                "Reconcile",
                "Counters"
            ]
        );
        let template = include_str!("../../../infra/template.yaml");
        for name in names {
            assert!(
                template.contains(&format!("{name}CodeKey:")),
                "{name}CodeKey"
            );
            assert!(
                template.contains(&format!("{name}FunctionName:")),
                "{name}FunctionName"
            );
        }
    }

    #[test]
    fn release_id_ignores_order_and_changes_with_any_part() {
        let parts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = release_id(parts(&["zip a", "parameter X=1", "template t"]));
        assert_eq!(
            a,
            release_id(parts(&["template t", "zip a", "parameter X=1"]))
        );
        assert_ne!(
            a,
            release_id(parts(&["zip a", "parameter X=2", "template t"]))
        );
        assert_ne!(
            a,
            release_id(parts(&["zip b", "parameter X=1", "template t"]))
        );
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn short_digest_is_stable_and_content_addressed() {
        assert_eq!(short_digest(b"abc"), "ba7816bf8f01cfea");
        assert_ne!(short_digest(b"abc"), short_digest(b"abd"));
    }
}
