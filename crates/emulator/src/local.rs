//! The whole pipeline on the embedded emulator: start MiniStack, deploy the stack through
//! the same CloudFormation template as AWS, hand back clients and the stack's outputs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pipeline_aws::deploy::{
    apply_stack, deploy, DeployError, DeployRequest, PipelineStack, FUNCTIONS,
};
use pipeline_aws::{sdk_config_for_endpoint, Clients, ObjectStore, S3Store};

use crate::backend::{Backend, Settings};
use crate::{ContainerEmulator, Emulator, EmulatorError, EmulatorOptions};

/// The region the emulator is configured with.
pub const REGION: &str = "us-east-1";

/// Where the repository keeps what a deploy needs.
#[derive(Debug, Clone)]
pub struct RepoPaths {
    pub template: PathBuf,
    pub definition: PathBuf,
    pub artifacts: PathBuf,
    /// The SAM form with its code at S3 locations (`cargo xtask sam --packaged`).
    pub sam_packaged: PathBuf,
}

impl RepoPaths {
    /// Paths inside this workspace; `PIPELINE_ARTIFACTS` overrides the zips' folder,
    /// which is `lambda/` in cargo's target directory (`CARGO_TARGET_DIR` when set).
    pub fn from_workspace() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| root.join(d))
            .unwrap_or_else(|| root.join("target"));
        let artifacts = std::env::var_os("PIPELINE_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("lambda"));
        RepoPaths {
            template: root.join("infra/template.yaml"),
            definition: root.join("state-machine/pipeline.asl.json"),
            artifacts,
            sam_packaged: target.join("sam").join("packaged.yaml"),
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
    #[error("{0}")]
    SamForm(String),
    #[error("uploading the SAM form's code: {0}")]
    Upload(#[from] pipeline_aws::StoreError),
}

/// One running emulator, whichever backend started it. Dropping it stops it (the process
/// group, or the container).
#[derive(Debug)]
pub enum RunningEmulator {
    Process(Emulator),
    Container(ContainerEmulator),
}

impl RunningEmulator {
    /// Starts `backend`; `name_hint` names the container (a stack or test name).
    pub async fn start(
        backend: &Backend,
        options: EmulatorOptions,
        name_hint: &str,
    ) -> Result<RunningEmulator, EmulatorError> {
        match backend {
            Backend::Process => tokio::task::spawn_blocking(move || Emulator::start(&options))
                .await
                .map_err(|e| EmulatorError::ContainerStart {
                    image: "(process)".into(),
                    detail: e.to_string(),
                })?
                .map(RunningEmulator::Process),
            other => ContainerEmulator::start(other, &options, name_hint)
                .await
                .map(RunningEmulator::Container),
        }
    }

    /// Stops the emulator and starts it again with the same settings and data, as a host
    /// or container restart would. What survives is what the emulator persists: with
    /// MiniStack, everything only when started with `PERSIST_STATE=1` and `S3_PERSIST=1`.
    /// The endpoint may change (container backends): read it again afterwards.
    pub async fn restart(&mut self) -> Result<(), EmulatorError> {
        match self {
            RunningEmulator::Process(e) => {
                // Blocking (a few seconds): off the async worker where the runtime allows.
                let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|h| {
                    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                });
                if multi_thread {
                    tokio::task::block_in_place(|| e.restart())
                } else {
                    e.restart()
                }
            }
            RunningEmulator::Container(c) => c.restart().await,
        }
    }

    pub fn endpoint(&self) -> String {
        match self {
            RunningEmulator::Process(e) => e.endpoint(),
            RunningEmulator::Container(c) => c.endpoint(),
        }
    }

    /// The last `lines` lines of the emulator's output.
    pub fn log_tail(&self, lines: usize) -> String {
        match self {
            RunningEmulator::Process(e) => e.log_tail(lines),
            RunningEmulator::Container(c) => c.log_tail(lines),
        }
    }

    /// One line naming what runs: the process and its log, or the container and its image.
    pub fn describe(&self) -> String {
        match self {
            RunningEmulator::Process(e) => format!(
                "MiniStack process pid {} at {} (log {})",
                e.pid(),
                e.endpoint(),
                e.log_path().display()
            ),
            RunningEmulator::Container(c) => format!(
                "container {} (id {}, image {}) at {}",
                c.name(),
                c.id().get(..12).unwrap_or(c.id()),
                c.image(),
                c.endpoint()
            ),
        }
    }
}

/// The bucket `cargo xtask sam --packaged` puts the SAM form's code in.
pub const SAM_ARTIFACTS_BUCKET: &str = "sam-artifacts";

/// The template parameter that switches on the stack's explicit handling of MiniStack's
/// differences from AWS (see `EmulatorQuirks` in infra/template.yaml).
pub const QUIRKS_PARAMETER: &str = "EmulatorQuirks";

/// The backend the environment selects (see [`Settings::choose`]).
async fn chosen_backend() -> Result<(Backend, String), LocalError> {
    let settings = Settings::from_env();
    tokio::task::spawn_blocking(move || settings.choose(crate::container::probe))
        .await
        .map_err(|e| LocalError::Join(e.to_string()))?
        .map_err(LocalError::from)
}

/// Starts `backend` and builds the clients for it.
async fn start_emulator(
    backend: &Backend,
    options: EmulatorOptions,
    name_hint: &str,
) -> Result<(RunningEmulator, Clients), LocalError> {
    let emulator = RunningEmulator::start(backend, options, name_hint).await?;
    let config = sdk_config_for_endpoint(&emulator.endpoint(), REGION).await;
    Ok((emulator, Clients::new(&config)))
}

/// `EmulatorQuirks=ministack` on MiniStack (process or container), nothing elsewhere.
fn quirks_parameter(backend: &Backend) -> Option<(String, String)> {
    matches!(backend, Backend::Process | Backend::Container { .. })
        .then(|| (QUIRKS_PARAMETER.to_string(), "ministack".to_string()))
}

fn deploy_request(
    backend: &Backend,
    stack_name: &str,
    paths: &RepoPaths,
    mut parameters: Vec<(String, String)>,
) -> DeployRequest {
    if !parameters.iter().any(|(k, _)| k == QUIRKS_PARAMETER) {
        parameters.extend(quirks_parameter(backend));
    }
    DeployRequest {
        stack_name: stack_name.to_string(),
        template_path: paths.template.clone(),
        definition_path: paths.definition.clone(),
        artifacts_dir: paths.artifacts.clone(),
        artifacts_bucket: format!("{stack_name}-artifacts"),
        parameters,
        timeout: Duration::from_secs(120),
    }
}

/// A running emulator with the pipeline stack deployed. Dropping it stops the emulator
/// and every function process it started.
pub struct LocalPipeline {
    pub clients: Clients,
    pub stack: PipelineStack,
    pub emulator: RunningEmulator,
    /// The backend and why it was chosen (e.g. `PIPELINE_EMULATOR=container`).
    pub backend: (Backend, String),
}

impl LocalPipeline {
    /// Starts the emulator the environment selects (see [`Settings::choose`]) and deploys
    /// `stack_name` with the given extra template parameters.
    pub async fn start(
        stack_name: &str,
        paths: &RepoPaths,
        parameters: Vec<(String, String)>,
        options: EmulatorOptions,
    ) -> Result<Self, LocalError> {
        let backend = chosen_backend().await?;
        Self::start_on(backend, stack_name, paths, parameters, options).await
    }

    /// Like [`LocalPipeline::start`] on an explicit backend.
    pub async fn start_on(
        backend: (Backend, String),
        stack_name: &str,
        paths: &RepoPaths,
        parameters: Vec<(String, String)>,
        options: EmulatorOptions,
    ) -> Result<Self, LocalError> {
        let (emulator, clients) = start_emulator(&backend.0, options, stack_name).await?;
        let request = deploy_request(&backend.0, stack_name, paths, parameters);
        let deployed = deploy(&clients, &request).await;
        Self::deployed(clients, emulator, backend, deployed)
    }

    /// The pipeline once its stack deployed, or the deploy error with the emulator's log.
    fn deployed(
        clients: Clients,
        emulator: RunningEmulator,
        backend: (Backend, String),
        deployed: Result<PipelineStack, DeployError>,
    ) -> Result<Self, LocalError> {
        match deployed {
            Ok(stack) => Ok(LocalPipeline {
                clients,
                stack,
                emulator,
                backend,
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

    /// Starts the emulator the environment selects and deploys the SAM form of the stack
    /// (`infra/sam/template.yaml`, packaged by `cargo xtask sam --packaged` with its code
    /// in `s3://sam-artifacts/`): uploads the zips and the definition there, as `sam
    /// deploy` would, and creates the stack, which the emulator expands with the SAM
    /// transform.
    pub async fn start_sam(
        stack_name: &str,
        paths: &RepoPaths,
        options: EmulatorOptions,
    ) -> Result<Self, LocalError> {
        let backend = chosen_backend().await?;
        let sam_form = |detail: String| LocalError::SamForm(detail);
        let template = std::fs::read_to_string(&paths.sam_packaged).map_err(|e| {
            sam_form(format!(
                "{}: {e}; write it with `cargo xtask sam --packaged` (`cargo xtask test` does)",
                paths.sam_packaged.display()
            ))
        })?;
        let (emulator, clients) = start_emulator(&backend.0, options, stack_name).await?;
        let store = S3Store::new(clients.s3.clone());
        let uploaded = async {
            store.ensure_bucket(SAM_ARTIFACTS_BUCKET).await?;
            for f in FUNCTIONS {
                let key = format!("code/{f}.zip");
                if !template.contains(&format!("Key: {key}")) {
                    return Err(sam_form(format!(
                        "{} does not name s3://{SAM_ARTIFACTS_BUCKET}/{key}: run `cargo xtask sam --packaged`",
                        paths.sam_packaged.display()
                    )));
                }
                let zip = paths.artifacts.join(format!("{f}.zip"));
                let body =
                    std::fs::read(&zip).map_err(|e| sam_form(format!("{}: {e}", zip.display())))?;
                store
                    .put(SAM_ARTIFACTS_BUCKET, &key, body, "application/zip")
                    .await?;
            }
            let definition = std::fs::read(&paths.definition)
                .map_err(|e| sam_form(format!("{}: {e}", paths.definition.display())))?;
            store
                .put(
                    SAM_ARTIFACTS_BUCKET,
                    "state-machine/pipeline.asl.json",
                    definition,
                    "application/json",
                )
                .await?;
            Ok::<(), LocalError>(())
        };
        uploaded.await?;
        let parameters: Vec<_> = quirks_parameter(&backend.0).into_iter().collect();
        let deployed = apply_stack(
            &clients,
            stack_name,
            &template,
            &parameters,
            Duration::from_secs(120),
        )
        .await;
        Self::deployed(clients, emulator, backend, deployed)
    }

    /// Deploys the stack again (an update) with these template parameters, as a user
    /// would after changing code or settings.
    pub async fn redeploy(
        &mut self,
        paths: &RepoPaths,
        parameters: Vec<(String, String)>,
    ) -> Result<(), LocalError> {
        let request = deploy_request(&self.backend.0, &self.stack.stack_name, paths, parameters);
        match deploy(&self.clients, &request).await {
            Ok(stack) => {
                self.stack = stack;
                Ok(())
            }
            Err(source) => Err(LocalError::Deploy {
                source,
                log: self.emulator.log_tail(40),
            }),
        }
    }

    /// Restarts the emulator (see [`RunningEmulator::restart`]) and rebuilds the clients
    /// for its endpoint. The deployed stack is whatever the emulator restored.
    pub async fn restart_emulator(&mut self) -> Result<(), EmulatorError> {
        self.emulator.restart().await?;
        let config = sdk_config_for_endpoint(&self.emulator.endpoint(), REGION).await;
        self.clients = Clients::new(&config);
        Ok(())
    }
}
