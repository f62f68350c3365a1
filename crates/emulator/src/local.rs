//! The whole pipeline on the embedded emulator: start MiniStack, deploy the stack through
//! the same CloudFormation template as AWS, hand back clients and the stack's outputs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pipeline_aws::deploy::{deploy, DeployError, DeployRequest, PipelineStack};
use pipeline_aws::{sdk_config_for_endpoint, Clients};

use crate::{Emulator, EmulatorError, EmulatorOptions};

/// The region the emulator is configured with.
pub const REGION: &str = "us-east-1";

/// Where the repository keeps what a deploy needs.
#[derive(Debug, Clone)]
pub struct RepoPaths {
    pub template: PathBuf,
    pub definition: PathBuf,
    pub artifacts: PathBuf,
}

impl RepoPaths {
    /// Paths inside this workspace; `PIPELINE_ARTIFACTS` overrides the zips' folder.
    pub fn from_workspace() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let artifacts = std::env::var_os("PIPELINE_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/lambda"));
        RepoPaths {
            template: root.join("infra/template.yaml"),
            definition: root.join("state-machine/pipeline.asl.json"),
            artifacts,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error("deploying the stack to the emulator failed: {source}\n--- emulator log (last lines) ---\n{log}")]
    Deploy { source: DeployError, log: String },
    #[error("emulator start task failed: {0}")]
    Join(String),
}

/// A running emulator with the pipeline stack deployed. Dropping it stops the emulator
/// and every function process it started.
pub struct LocalPipeline {
    pub clients: Clients,
    pub stack: PipelineStack,
    pub emulator: Emulator,
}

impl LocalPipeline {
    /// Starts MiniStack and deploys `stack_name` with the given extra template parameters.
    pub async fn start(
        stack_name: &str,
        paths: &RepoPaths,
        parameters: Vec<(String, String)>,
        options: EmulatorOptions,
    ) -> Result<Self, LocalError> {
        let emulator = tokio::task::spawn_blocking(move || Emulator::start(&options))
            .await
            .map_err(|e| LocalError::Join(e.to_string()))??;
        let config = sdk_config_for_endpoint(&emulator.endpoint(), REGION).await;
        let clients = Clients::new(&config);
        let request = DeployRequest {
            stack_name: stack_name.to_string(),
            template_path: paths.template.clone(),
            definition_path: paths.definition.clone(),
            artifacts_dir: paths.artifacts.clone(),
            artifacts_bucket: format!("{stack_name}-artifacts"),
            parameters,
            timeout: Duration::from_secs(120),
        };
        match deploy(&clients, &request).await {
            Ok(stack) => Ok(LocalPipeline {
                clients,
                stack,
                emulator,
            }),
            Err(source) => Err(LocalError::Deploy {
                source,
                log: emulator.log_tail(40),
            }),
        }
    }

    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }
}
