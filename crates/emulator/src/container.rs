//! The emulator in a container, started by testcontainers: MiniStack from a locally built
//! image, or LocalStack.
//!
//! Every container carries [`LABEL_EMULATOR`] and [`LABEL_OWNER`] (the starting process as
//! `<pid>:<start ticks>`). Before the first start in a process, containers whose owner is no
//! longer alive (a test run killed mid-way) are removed; a container is removed when its
//! [`ContainerEmulator`] is dropped, also while a failing test unwinds.
//!
//! Docker is reached by testcontainers for the container itself and by the `docker` CLI for
//! the few synchronous calls (probe, sweep, log tail, removal in `Drop` outside a runtime).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use testcontainers_modules::localstack::LocalStack;
use testcontainers_modules::testcontainers::core::{ContainerPort, Mount, WaitFor};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::OnceCell;

use crate::backend::{Backend, ImageRef, LocalStackConfig, Probe};
use crate::health::is_healthy_at;
use crate::owner::OwnerId;
use crate::{last_lines, EmulatorError, EmulatorOptions};

/// Marks every container this project starts.
pub const LABEL_EMULATOR: &str = "org.s3-pipeline.emulator";
/// The process that started the container, as `<pid>:<start ticks>`.
pub const LABEL_OWNER: &str = "org.s3-pipeline.owner";
/// The port the emulator listens on inside its container (both emulators' default).
pub const CONTAINER_PORT: u16 = 4566;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const TAIL_LINES: usize = 40;

/// A running, healthy emulator container. Removed on drop.
pub struct ContainerEmulator {
    handle: Option<Handle>,
    id: String,
    name: String,
    image: String,
    port: u16,
    health_path: &'static str,
    ready_timeout: Duration,
}

enum Handle {
    MiniStack(Box<ContainerAsync<GenericImage>>),
    LocalStack(Box<ContainerAsync<LocalStack>>),
}

impl std::fmt::Debug for ContainerEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerEmulator")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("image", &self.image)
            .field("port", &self.port)
            .finish()
    }
}

impl ContainerEmulator {
    /// Starts the container for `backend` (container or localstack), named after
    /// `name_hint`, and waits until the emulator's health route answers 200.
    pub async fn start(
        backend: &Backend,
        opts: &EmulatorOptions,
        name_hint: &str,
    ) -> Result<ContainerEmulator, EmulatorError> {
        ensure_docker(backend.name()).await?;
        sweep_stale_once().await;
        let owner = OwnerId::current()
            .map(|o| o.to_string())
            .unwrap_or_else(|| format!("{}:0", std::process::id()));
        let name = container_name(name_hint);
        let labels = [
            (LABEL_EMULATOR.to_string(), "1".to_string()),
            (LABEL_OWNER.to_string(), owner),
        ];
        let (handle, image, health_path) = match backend {
            Backend::Container { image } => {
                require_local_image(image).await?;
                let mut request = GenericImage::new(image.name.as_str(), image.tag.as_str())
                    .with_exposed_port(ContainerPort::Tcp(CONTAINER_PORT))
                    .with_wait_for(WaitFor::Nothing)
                    .with_container_name(&name)
                    .with_labels(labels)
                    .with_startup_timeout(opts.ready_timeout);
                for (key, value) in ministack_env(&opts.extra_env) {
                    request = request.with_env_var(key, value);
                }
                let container = request.start().await.map_err(|e| start_error(image, e))?;
                (
                    Handle::MiniStack(Box::new(container)),
                    image.to_string(),
                    "/_ministack/health",
                )
            }
            Backend::LocalStack(config) => {
                let container = start_localstack(config, &name, labels, opts).await?;
                (
                    Handle::LocalStack(Box::new(container)),
                    config.image.to_string(),
                    "/_localstack/health",
                )
            }
            Backend::Process => {
                return Err(EmulatorError::BadSetting {
                    name: "backend",
                    value: "process".into(),
                    expected: "a container backend",
                })
            }
        };
        let mut emulator = ContainerEmulator {
            id: handle.id().to_string(),
            handle: Some(handle),
            name,
            image,
            port: 0,
            health_path,
            ready_timeout: opts.ready_timeout,
        };
        emulator.port = emulator
            .handle
            .as_ref()
            .map(|h| h.host_port())
            .ok_or_else(|| EmulatorError::ContainerStart {
                image: emulator.image.clone(),
                detail: "container handle missing".into(),
            })?
            .await
            .map_err(|detail| EmulatorError::ContainerStart {
                image: emulator.image.clone(),
                detail,
            })?;
        emulator
            .wait_healthy(health_path, opts.ready_timeout)
            .await?;
        Ok(emulator)
    }

    /// `docker restart`: SIGTERM to the emulator (with `PERSIST_STATE=1` MiniStack saves its
    /// state inside the container, which a restart keeps), up to 10 s, then start again.
    /// Docker may publish a different host port afterwards, so the port is read again:
    /// callers must rebuild clients from [`ContainerEmulator::endpoint`].
    pub async fn restart(&mut self) -> Result<(), EmulatorError> {
        let out = tokio::process::Command::new("docker")
            .args(["restart", "--time", "10", &self.id])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| EmulatorError::ContainerStart {
                image: self.image.clone(),
                detail: format!("docker restart: {e}"),
            })?;
        if !out.status.success() {
            return Err(EmulatorError::ContainerStart {
                image: self.image.clone(),
                detail: format!(
                    "docker restart {} failed: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        let handle = self
            .handle
            .as_ref()
            .ok_or_else(|| EmulatorError::ContainerStart {
                image: self.image.clone(),
                detail: "container handle missing".into(),
            })?;
        self.port = handle
            .host_port()
            .await
            .map_err(|detail| EmulatorError::ContainerStart {
                image: self.image.clone(),
                detail,
            })?;
        self.wait_healthy(self.health_path, self.ready_timeout)
            .await
    }

    async fn wait_healthy(
        &self,
        path: &'static str,
        timeout: Duration,
    ) -> Result<(), EmulatorError> {
        let deadline = Instant::now() + timeout;
        let port = self.port;
        loop {
            let healthy = tokio::task::spawn_blocking(move || is_healthy_at(port, path))
                .await
                .unwrap_or(false);
            if healthy {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EmulatorError::ContainerNotHealthy {
                    name: self.name.clone(),
                    timeout,
                    tail: self.log_tail(TAIL_LINES),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `http://127.0.0.1:<mapped port>`.
    pub fn endpoint(&self) -> String {
        crate::emulator::endpoint_for(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The container's full id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's name (`s3-pipeline-<hint>-<pid>-<n>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    /// The last `lines` lines of the container's output (`docker logs`).
    pub fn log_tail(&self, lines: usize) -> String {
        let out = Command::new("docker")
            .args(["logs", "--tail", &lines.to_string(), &self.id])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                last_lines(&text, lines)
            }
            Err(e) => format!("(could not run `docker logs {}`: {e})", self.id),
        }
    }
}

impl Drop for ContainerEmulator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "emulator container {} ({}) last {TAIL_LINES} log lines:\n{}",
                self.name,
                short_id(&self.id),
                self.log_tail(TAIL_LINES)
            );
        }
        let Some(handle) = self.handle.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // testcontainers removes the container (and its volumes) in its own Drop.
            drop(handle);
        } else {
            // Its Drop needs a runtime; remove through the CLI and let the handle go.
            remove_containers(std::slice::from_ref(&self.id));
            std::mem::forget(handle);
        }
    }
}

impl Handle {
    fn id(&self) -> &str {
        match self {
            Handle::MiniStack(c) => c.id(),
            Handle::LocalStack(c) => c.id(),
        }
    }

    async fn host_port(&self) -> Result<u16, String> {
        let port = ContainerPort::Tcp(CONTAINER_PORT);
        match self {
            Handle::MiniStack(c) => c.get_host_port_ipv4(port).await,
            Handle::LocalStack(c) => c.get_host_port_ipv4(port).await,
        }
        .map_err(|e| format!("no host port for {CONTAINER_PORT}/tcp: {e}"))
    }
}

async fn start_localstack(
    config: &LocalStackConfig,
    name: &str,
    labels: [(String, String); 2],
    opts: &EmulatorOptions,
) -> Result<ContainerAsync<LocalStack>, EmulatorError> {
    let mut request = LocalStack::default()
        .with_name(config.image.name.as_str())
        .with_tag(config.image.tag.as_str())
        .with_container_name(name)
        .with_labels(labels)
        .with_startup_timeout(opts.ready_timeout);
    for (host, container) in config.mounts() {
        request = request.with_mount(Mount::bind_mount(host, container));
    }
    for (key, value) in config.env().into_iter().chain(opts.extra_env.clone()) {
        request = request.with_env_var(key, value);
    }
    request
        .start()
        .await
        .map_err(|e| start_error(&config.image, e))
}

fn start_error(image: &ImageRef, e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::ContainerStart {
        image: image.to_string(),
        detail: e.to_string(),
    }
}

/// MiniStack's environment inside its container: listen on every interface of the
/// container, and give function processes (which run in the same container) the in-container
/// endpoint. Applied last, `extra` can override.
pub(crate) fn ministack_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    let endpoint = format!("http://127.0.0.1:{CONTAINER_PORT}");
    let mut env: Vec<(String, String)> = [
        ("GATEWAY_PORT", CONTAINER_PORT.to_string()),
        ("BIND_HOST", "0.0.0.0".to_string()),
        ("AWS_ENDPOINT_URL", endpoint),
    ]
    .into_iter()
    .chain(crate::emulator::shared_env())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.extend(extra.iter().cloned());
    env
}

/// `s3-pipeline-<hint>-<pid>-<n>`, with anything Docker does not allow in a name replaced.
fn container_name(hint: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("s3-pipeline-{clean}-{}-{n}", std::process::id())
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Whether a Docker engine answers and `image` is in it; both `false` without Docker.
pub fn probe(image: &ImageRef) -> Probe {
    let docker_answers = docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    Probe {
        docker_answers,
        image_present: docker_answers && docker_ok(&["image", "inspect", &image.to_string()]),
    }
}

fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn ensure_docker(backend: &'static str) -> Result<(), EmulatorError> {
    let out = tokio::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(EmulatorError::DockerUnavailable {
            backend,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
        Err(e) => Err(EmulatorError::DockerUnavailable {
            backend,
            detail: format!("docker CLI: {e}"),
        }),
    }
}

/// No registry is reachable here, so a missing MiniStack image is reported with the command
/// that builds it instead of a pull error.
async fn require_local_image(image: &ImageRef) -> Result<(), EmulatorError> {
    let reference = image.to_string();
    let present = tokio::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &reference])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if present || std::env::var_os("PIPELINE_EMULATOR_PULL").is_some() {
        return Ok(());
    }
    Err(EmulatorError::ImageMissing {
        image: reference,
        hint: "build it with `cargo xtask emulator-image` (or set PIPELINE_EMULATOR_PULL=1 \
               where a registry is reachable)"
            .into(),
    })
}

/// Removes, once per process, labelled containers whose owner process is gone.
async fn sweep_stale_once() {
    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let removed = tokio::task::spawn_blocking(sweep_stale)
                .await
                .unwrap_or_default();
            if !removed.is_empty() {
                eprintln!(
                    "emulator: removed {} stale container(s) of killed runs: {}",
                    removed.len(),
                    removed.join(", ")
                );
            }
        })
        .await;
}

/// Lists labelled containers and removes those whose owner is not alive; returns their names.
pub fn sweep_stale() -> Vec<String> {
    let filter = format!("label={LABEL_EMULATOR}");
    let format = format!("{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label \"{LABEL_OWNER}\"}}}}");
    let Ok(out) = Command::new("docker")
        .args(["ps", "-a", "--filter", &filter, "--format", &format])
        .stdin(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    let stale = stale_containers(&listing, |owner| owner.is_alive());
    let ids: Vec<String> = stale.iter().map(|(id, _)| id.clone()).collect();
    remove_containers(&ids);
    stale.into_iter().map(|(_, name)| name).collect()
}

/// From `docker ps` lines `<id>\t<name>\t<owner>`, the `(id, name)` of containers whose
/// owner is unparseable or not alive.
pub(crate) fn stale_containers(
    listing: &str,
    alive: impl Fn(&OwnerId) -> bool,
) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let id = fields.next()?.trim();
            let name = fields.next().unwrap_or_default().trim();
            let owner = fields.next().and_then(OwnerId::parse);
            if id.is_empty() || owner.as_ref().is_some_and(&alive) {
                return None;
            }
            Some((id.to_string(), name.to_string()))
        })
        .collect()
}

fn remove_containers(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let result = Command::new("docker")
        .args(["rm", "--force", "--volumes"])
        .args(ids)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output();
    if let Ok(out) = result {
        if !out.status.success() {
            eprintln!(
                "warning: removing containers {ids:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_containers_keeps_live_owners_and_removes_dead_or_unlabelled() {
        let listing =
            "aaa\ts3-pipeline-a\t100:5\nbbb\ts3-pipeline-b\t200:6\nccc\ts3-pipeline-c\t\n\n";
        let stale = stale_containers(listing, |o| o.pid == 100);
        assert_eq!(
            stale,
            vec![
                ("bbb".to_string(), "s3-pipeline-b".to_string()),
                ("ccc".to_string(), "s3-pipeline-c".to_string())
            ]
        );
    }

    #[test]
    fn container_name_sanitises_hint_and_is_unique() {
        let a = container_name("e2e photos/ü");
        let b = container_name("e2e photos/ü");
        assert!(a.starts_with("s3-pipeline-e2e-photos---"), "{a}");
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
    }

    #[test]
    fn ministack_env_binds_all_interfaces_and_points_functions_inside() {
        let env = ministack_env(&[("SFN_WAIT_SCALE".into(), "0".into())]);
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("BIND_HOST"), Some("0.0.0.0"));
        assert_eq!(get("GATEWAY_PORT"), Some("4566"));
        assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:4566"));
        assert_eq!(get("LAMBDA_EXECUTOR"), Some("local"));
        assert_eq!(get("PERSIST_STATE"), Some("0"));
        assert_eq!(get("SFN_WAIT_SCALE"), Some("0"));
    }
}
