//! The project-local Python virtualenv that holds the pinned MiniStack.

use std::ffi::OsString;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use crate::pins::SAM_TRANSLATOR_VERSION;
use crate::{EmulatorError, MINISTACK_VERSION};

/// Written into the venv only after pip succeeded; holds [`requirement()`].
const MARKER_FILE: &str = ".pipeline-ministack-installed";
/// Lines of pip / venv output quoted in an error.
const OUTPUT_TAIL_LINES: usize = 25;

/// A virtualenv with `ministack==MINISTACK_VERSION` installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// `$PIPELINE_VENV` if set, else `<workspace root>/.pipeline/venv-ministack-<version>`.
    pub fn default_location() -> PathBuf {
        location_from(std::env::var_os("PIPELINE_VENV"))
    }

    /// Makes sure `dir` is a venv with exactly `ministack==MINISTACK_VERSION`, installing it
    /// if missing or different. Safe to call from several processes at once: installs are
    /// serialised by an exclusive lock on `<dir>.lock`, and the marker file is written only
    /// after pip succeeded, so an interrupted install is redone by the next caller.
    pub fn ensure(dir: &Path) -> Result<Venv, EmulatorError> {
        let venv = Venv {
            dir: dir.to_path_buf(),
        };
        if venv.is_installed() {
            return Ok(venv);
        }
        let _lock = lock_exclusive(&lock_path(dir))?;
        // Another process may have finished the install while we waited for the lock.
        if !venv.is_installed() {
            venv.install()?;
        }
        Ok(venv)
    }

    /// The venv directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<venv>/bin/ministack`, the server's entry point.
    pub fn ministack_bin(&self) -> PathBuf {
        self.dir.join("bin").join("ministack")
    }

    /// `<venv>/bin/python`.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    fn marker(&self) -> PathBuf {
        self.dir.join(MARKER_FILE)
    }

    fn is_installed(&self) -> bool {
        let marker = fs::read_to_string(self.marker()).unwrap_or_default();
        marker.trim() == requirement() && self.ministack_bin().is_file()
    }

    fn install(&self) -> Result<(), EmulatorError> {
        let started = Instant::now();
        eprintln!(
            "installing MiniStack {MINISTACK_VERSION} into {} (first use, ~30 s)",
            self.dir.display()
        );
        remove_if_exists(&self.marker())?;
        if !self.python().is_file() {
            check_python()?;
            let output = run(Command::new("python3").arg("-m").arg("venv").arg(&self.dir))
                .map_err(|_| EmulatorError::PythonNotFound)?;
            if !output.status.success() {
                return Err(EmulatorError::VenvCreate {
                    dir: self.dir.clone(),
                    status: output.status,
                    output: output_tail(&output),
                });
            }
        }
        // One pip call, so pip resolves ministack's own pins (botocore) in one go.
        let output = run(Command::new(self.python())
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(requirements()))
        .map_err(EmulatorError::io("run", self.python()))?;
        if !output.status.success() {
            return Err(EmulatorError::PipInstall {
                version: MINISTACK_VERSION,
                dir: self.dir.clone(),
                status: output.status,
                output: output_tail(&output),
            });
        }
        if !self.ministack_bin().is_file() {
            return Err(EmulatorError::MissingBinary {
                bin: self.ministack_bin(),
                dir: self.dir.clone(),
            });
        }
        write_atomically(&self.marker(), &format!("{}\n", requirement()))?;
        eprintln!(
            "installed MiniStack {MINISTACK_VERSION} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// The single pip requirement installed into the venv.
/// What the venv holds: MiniStack, and the SAM translator MiniStack imports to deploy a
/// template with the `AWS::Serverless-2016-10-31` transform (the SAM form of the stack).
fn requirements() -> [String; 2] {
    [
        format!("ministack=={MINISTACK_VERSION}"),
        format!("aws-sam-translator=={SAM_TRANSLATOR_VERSION}"),
    ]
}

/// The marker's content: the requirements, space-separated.
fn requirement() -> String {
    requirements().join(" ")
}

/// [`Venv::default_location`] given the value of `$PIPELINE_VENV`.
fn location_from(env_value: Option<OsString>) -> PathBuf {
    match env_value {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root()
            .join(".pipeline")
            .join(format!("venv-ministack-{MINISTACK_VERSION}")),
    }
}

/// `crates/emulator/../..`, resolved at compile time.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// `<parent>/<name>.lock`, next to the venv (inside it would be deleted with it).
fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

/// Blocks until this process holds the exclusive lock; released when the file is dropped.
fn lock_exclusive(path: &Path) -> Result<File, EmulatorError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(EmulatorError::io("create", parent))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(EmulatorError::io("open", path))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(TryLockError::WouldBlock) => eprintln!(
            "waiting for another process installing MiniStack (lock {})",
            path.display()
        ),
        Err(TryLockError::Error(source)) => {
            return Err(EmulatorError::io("lock", path)(source));
        }
    }
    file.lock().map_err(EmulatorError::io("lock", path))?;
    Ok(file)
}

/// Fails with an actionable message unless `python3` runs and is at least 3.10.
fn check_python() -> Result<(), EmulatorError> {
    let output =
        run(Command::new("python3")
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]))
        .map_err(|_| EmulatorError::PythonNotFound)?;
    if !output.status.success() {
        return Err(EmulatorError::PythonNotFound);
    }
    let found = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if python_is_supported(&found) {
        Ok(())
    } else {
        Err(EmulatorError::PythonTooOld {
            found,
            version: MINISTACK_VERSION,
        })
    }
}

/// MiniStack 1.5.33 declares `Requires-Python: >=3.10`.
fn python_is_supported(major_minor: &str) -> bool {
    let mut parts = major_minor.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (3, 10),
        _ => false,
    }
}

fn run(command: &mut Command) -> std::io::Result<Output> {
    command.stdin(std::process::Stdio::null()).output()
}

/// Last lines of a command's stdout and stderr, for error messages.
fn output_tail(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    crate::last_lines(&text, OUTPUT_TAIL_LINES)
}

fn remove_if_exists(path: &Path) -> Result<(), EmulatorError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(EmulatorError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

fn write_atomically(path: &Path, contents: &str) -> Result<(), EmulatorError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).map_err(EmulatorError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(EmulatorError::io("rename", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_location_env_set_uses_it() {
        let dir = location_from(Some(OsString::from("/opt/venvs/ms")));
        assert_eq!(dir, PathBuf::from("/opt/venvs/ms"));
    }

    #[test]
    fn default_location_env_unset_or_empty_is_versioned_dir_in_workspace() {
        for env_value in [None, Some(OsString::new())] {
            assert_eq!(
                location_from(env_value),
                workspace_root()
                    .join(".pipeline")
                    .join("venv-ministack-1.5.33")
            );
        }
        let root_manifest = fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(root_manifest.contains("[workspace]"));
    }

    #[test]
    fn lock_path_is_sibling_of_venv_keeping_dots() {
        assert_eq!(
            lock_path(Path::new("/w/.pipeline/venv-ministack-1.5.33")),
            PathBuf::from("/w/.pipeline/venv-ministack-1.5.33.lock")
        );
    }

    #[test]
    fn python_is_supported_310_and_later_only() {
        for (version, expected) in [
            ("3.10", true),
            ("3.11", true),
            ("3.13", true),
            ("3.9", false),
            ("2.7", false),
            ("", false),
            ("three", false),
        ] {
            assert_eq!(python_is_supported(version), expected, "{version}");
        }
    }

    #[test]
    fn venv_paths_are_under_bin() {
        let venv = Venv {
            dir: PathBuf::from("/v"),
        };
        assert_eq!(venv.ministack_bin(), PathBuf::from("/v/bin/ministack"));
        assert_eq!(venv.python(), PathBuf::from("/v/bin/python"));
    }

    #[test]
    fn is_installed_requires_marker_with_pinned_version_and_binary() {
        let dir = std::env::temp_dir().join(format!("emulator-venv-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("bin")).unwrap();
        let venv = Venv { dir: dir.clone() };
        assert!(!venv.is_installed(), "empty dir");
        fs::write(dir.join("bin/ministack"), "").unwrap();
        assert!(
            !venv.is_installed(),
            "binary without marker (interrupted install)"
        );
        fs::write(venv.marker(), "ministack==1.5.32\n").unwrap();
        assert!(!venv.is_installed(), "other version");
        fs::write(venv.marker(), "ministack==1.5.33\n").unwrap();
        assert!(
            !venv.is_installed(),
            "without the SAM translator (an older venv)"
        );
        write_atomically(
            &venv.marker(),
            &format!("ministack==1.5.33 aws-sam-translator=={SAM_TRANSLATOR_VERSION}\n"),
        )
        .unwrap();
        assert!(venv.is_installed(), "marker and binary");
        fs::remove_dir_all(&dir).unwrap();
    }
}
