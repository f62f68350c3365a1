//! Which emulator runs the stack: MiniStack as a child process, MiniStack in a container, or
//! LocalStack in a container. Chosen once from the environment; the choice is plain data so
//! the rules are unit-tested without Docker.

use std::fmt;

use crate::EmulatorError;

/// Selects the backend: `container`, `process`, `localstack`, or `auto` (the default).
pub const ENV_BACKEND: &str = "PIPELINE_EMULATOR";
/// The LocalStack image the `localstack` backend starts.
pub const ENV_LOCALSTACK_IMAGE: &str = "PIPELINE_LOCALSTACK_IMAGE";
/// LocalStack's licence token, passed through to its container when set.
pub const ENV_LOCALSTACK_TOKEN: &str = "LOCALSTACK_AUTH_TOKEN";
/// The Docker socket mounted into LocalStack so its Lambda service can start containers.
pub const ENV_DOCKER_SOCKET: &str = "PIPELINE_DOCKER_SOCKET";

pub use crate::pins::{ENV_IMAGE, LOCAL_IMAGE, PUBLIC_IMAGE};

/// testcontainers-modules' LocalStack pin; the last free Community line.
pub const DEFAULT_LOCALSTACK_IMAGE: &str = "localstack/localstack:4.5";
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A concrete backend with everything it needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// MiniStack from the project venv as a child process (no Docker needed).
    Process,
    /// MiniStack in a container started by testcontainers.
    Container { image: ImageRef },
    /// LocalStack in a container started by testcontainers.
    LocalStack(LocalStackConfig),
}

/// `name:tag` of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl ImageRef {
    /// `name[:tag]`; the tag defaults to `latest` as Docker does. A registry port
    /// (`host:5000/name`) is not mistaken for a tag.
    pub fn parse(text: &str) -> Result<ImageRef, EmulatorError> {
        let text = text.trim();
        let slash = text.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match text[slash..].rfind(':') {
            Some(i) => (&text[..slash + i], &text[slash + i + 1..]),
            None => (text, "latest"),
        };
        if name.is_empty() || tag.is_empty() || text.contains(char::is_whitespace) {
            return Err(EmulatorError::BadSetting {
                name: "image",
                value: text.to_string(),
                expected: "an image reference such as name:tag",
            });
        }
        Ok(ImageRef {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// What the LocalStack container is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStackConfig {
    pub image: ImageRef,
    /// `LOCALSTACK_AUTH_TOKEN`: required by LocalStack images newer than 4.14.
    pub auth_token: Option<String>,
    /// Host path of the Docker socket, mounted at the same path: LocalStack runs every
    /// Lambda function in a container of its own.
    pub docker_socket: String,
}

impl LocalStackConfig {
    /// The container's environment (the token is included only when set).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("SERVICES".to_string(), LOCALSTACK_SERVICES.to_string())];
        if let Some(token) = &self.auth_token {
            env.push((ENV_LOCALSTACK_TOKEN.to_string(), token.clone()));
        }
        env
    }

    /// `(host path, container path)` bind mounts.
    pub fn mounts(&self) -> Vec<(String, String)> {
        vec![(
            self.docker_socket.clone(),
            DEFAULT_DOCKER_SOCKET.to_string(),
        )]
    }
}

/// The services the stack uses; LocalStack starts only these.
pub const LOCALSTACK_SERVICES: &str = "s3,lambda,stepfunctions,cloudformation,iam,logs,sts";

/// What `auto` found out about the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub docker_answers: bool,
    pub image_present: bool,
}

/// The environment variables that matter, read once (see [`Settings::from_env`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub backend: Option<String>,
    pub image: Option<String>,
    pub localstack_image: Option<String>,
    pub localstack_token: Option<String>,
    pub docker_socket: Option<String>,
}

impl Settings {
    pub fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Settings {
            backend: var(ENV_BACKEND),
            image: var(ENV_IMAGE),
            localstack_image: var(ENV_LOCALSTACK_IMAGE),
            localstack_token: var(ENV_LOCALSTACK_TOKEN),
            docker_socket: var(ENV_DOCKER_SOCKET),
        }
    }

    /// The MiniStack image the container backend would use.
    pub fn ministack_image(&self) -> Result<ImageRef, EmulatorError> {
        ImageRef::parse(self.image.as_deref().unwrap_or(LOCAL_IMAGE))
    }

    /// Resolves the backend. `probe` is asked only for `auto`, with the MiniStack image.
    pub fn choose(
        &self,
        probe: impl FnOnce(&ImageRef) -> Probe,
    ) -> Result<(Backend, String), EmulatorError> {
        let requested = self.backend.as_deref().map(str::trim).unwrap_or("auto");
        match requested.to_ascii_lowercase().as_str() {
            "process" => Ok((Backend::Process, format!("{ENV_BACKEND}=process"))),
            "container" => Ok((
                Backend::Container {
                    image: self.ministack_image()?,
                },
                format!("{ENV_BACKEND}=container"),
            )),
            "localstack" => Ok((
                Backend::LocalStack(LocalStackConfig {
                    image: ImageRef::parse(
                        self.localstack_image
                            .as_deref()
                            .unwrap_or(DEFAULT_LOCALSTACK_IMAGE),
                    )?,
                    auth_token: self.localstack_token.clone(),
                    docker_socket: self
                        .docker_socket
                        .clone()
                        .unwrap_or_else(|| DEFAULT_DOCKER_SOCKET.to_string()),
                }),
                format!("{ENV_BACKEND}=localstack"),
            )),
            "auto" => {
                let image = self.ministack_image()?;
                let found = probe(&image);
                if found.docker_answers && found.image_present {
                    let why = format!("auto: Docker answers and {image} exists");
                    Ok((Backend::Container { image }, why))
                } else if found.docker_answers {
                    Ok((
                        Backend::Process,
                        format!(
                            "auto: Docker answers but {image} is missing \
                             (build it with `cargo xtask emulator-image`)"
                        ),
                    ))
                } else {
                    Ok((Backend::Process, "auto: no Docker engine answers".into()))
                }
            }
            _ => Err(EmulatorError::BadSetting {
                name: ENV_BACKEND,
                value: requested.to_string(),
                expected: "container, process, localstack or auto",
            }),
        }
    }
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Process => "process",
            Backend::Container { .. } => "container",
            Backend::LocalStack(_) => "localstack",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(backend: Option<&str>) -> Settings {
        Settings {
            backend: backend.map(String::from),
            ..Settings::default()
        }
    }

    fn probe(docker: bool, image: bool) -> impl FnOnce(&ImageRef) -> Probe {
        move |_| Probe {
            docker_answers: docker,
            image_present: image,
        }
    }

    #[test]
    fn choose_auto_with_docker_and_image_is_container_of_local_image() {
        let (backend, why) = settings(None).choose(probe(true, true)).unwrap();
        assert_eq!(
            backend,
            Backend::Container {
                image: ImageRef::parse(LOCAL_IMAGE).unwrap()
            }
        );
        assert!(why.contains("exists"), "{why}");
    }

    #[test]
    fn choose_auto_without_image_or_docker_is_process_and_says_why() {
        let (backend, why) = settings(Some("auto")).choose(probe(true, false)).unwrap();
        assert_eq!(backend, Backend::Process);
        assert!(why.contains("cargo xtask emulator-image"), "{why}");
        let (backend, why) = settings(None).choose(probe(false, false)).unwrap();
        assert_eq!(backend, Backend::Process);
        assert!(why.contains("no Docker"), "{why}");
    }

    #[test]
    fn choose_explicit_backend_never_probes() {
        let never = |_: &ImageRef| -> Probe { unreachable!("explicit choice must not probe") };
        assert_eq!(
            settings(Some("process")).choose(never).unwrap().0,
            Backend::Process
        );
        let (backend, _) = settings(Some("Container")).choose(never).unwrap();
        assert_eq!(backend.name(), "container");
    }

    #[test]
    fn choose_container_uses_image_override() {
        let s = Settings {
            backend: Some("container".into()),
            image: Some("ministackorg/ministack:1.5.33".into()),
            ..Settings::default()
        };
        let (backend, _) = s.choose(probe(true, true)).unwrap();
        assert_eq!(
            backend,
            Backend::Container {
                image: ImageRef {
                    name: "ministackorg/ministack".into(),
                    tag: "1.5.33".into()
                }
            }
        );
    }

    #[test]
    fn choose_unknown_backend_is_an_error_naming_the_choices() {
        let err = settings(Some("kubernetes"))
            .choose(probe(true, true))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PIPELINE_EMULATOR"), "{err}");
        assert!(err.contains("container, process, localstack"), "{err}");
    }

    #[test]
    fn choose_localstack_defaults_to_free_pin_socket_and_no_token() {
        let (backend, _) = settings(Some("localstack"))
            .choose(probe(false, false))
            .unwrap();
        let Backend::LocalStack(config) = backend else {
            panic!("expected localstack, got {backend:?}");
        };
        assert_eq!(config.image.to_string(), DEFAULT_LOCALSTACK_IMAGE);
        assert_eq!(config.auth_token, None);
        assert_eq!(
            config.mounts(),
            vec![(
                "/var/run/docker.sock".to_string(),
                "/var/run/docker.sock".to_string()
            )]
        );
        let env = config.env();
        assert!(env.iter().all(|(k, _)| k != ENV_LOCALSTACK_TOKEN));
        assert!(env
            .iter()
            .any(|(k, v)| k == "SERVICES" && v.contains("stepfunctions")));
    }

    #[test]
    fn choose_localstack_passes_token_image_and_socket_through() {
        let s = Settings {
            backend: Some("localstack".into()),
            localstack_image: Some("localstack/localstack-pro:4.20".into()),
            localstack_token: Some("ls-secret".into()),
            docker_socket: Some("/run/user/1000/docker.sock".into()),
            ..Settings::default()
        };
        let Backend::LocalStack(config) = s.choose(probe(false, false)).unwrap().0 else {
            panic!("expected localstack");
        };
        assert_eq!(config.image.name, "localstack/localstack-pro");
        assert_eq!(config.image.tag, "4.20");
        assert!(config
            .env()
            .contains(&(ENV_LOCALSTACK_TOKEN.to_string(), "ls-secret".to_string())));
        assert_eq!(
            config.mounts()[0],
            (
                "/run/user/1000/docker.sock".to_string(),
                "/var/run/docker.sock".to_string()
            )
        );
    }

    #[test]
    fn image_ref_parse_handles_default_tag_and_registry_port() {
        let check = |text: &str, name: &str, tag: &str| {
            let image = ImageRef::parse(text).unwrap();
            assert_eq!(
                (image.name.as_str(), image.tag.as_str()),
                (name, tag),
                "{text}"
            );
        };
        check("ministack", "ministack", "latest");
        check("a/b:1.2", "a/b", "1.2");
        check("registry:5000/a/b", "registry:5000/a/b", "latest");
        check("registry:5000/a/b:7", "registry:5000/a/b", "7");
        for bad in ["", ":tag", "name:", "a b:1"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_constants_pin_the_ministack_version() {
        assert!(LOCAL_IMAGE.contains(&format!(":{}-", crate::MINISTACK_VERSION)));
        assert!(PUBLIC_IMAGE.ends_with(&format!(":{}", crate::MINISTACK_VERSION)));
    }
}
