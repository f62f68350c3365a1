//! `cargo xtask emulator-image`: the MiniStack container image, built with no registry.
//!
//! 1. `debootstrap --variant=minbase` a Debian 12 root file system with python3 and
//!    python3-venv from Debian's packages (the same glibc the functions are built against).
//! 2. In a chroot, a venv at /opt/ministack with the pinned MiniStack from PyPI.
//! 3. Drop package caches, docs and apt lists.
//! 4. `tar | docker import` with the environment, port and entrypoint baked in.
//!
//! Idempotent: when the tag exists nothing is built (`--force` rebuilds). Needs root (for
//! debootstrap and chroot), Docker, and access to Debian's mirror and PyPI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
#[path = "../../crates/emulator/src/pins.rs"]
#[allow(dead_code)]
mod pins;

use pins::{ENV_IMAGE, LOCAL_IMAGE, MINISTACK_VERSION, SAM_TRANSLATOR_VERSION};

const SUITE: &str = "bookworm";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const PACKAGES: &str = "python3,python3-venv,ca-certificates";

struct Options {
    tag: String,
    force: bool,
    mirror: String,
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let opts = parse_args(args)?;
    let started = Instant::now();
    check_docker()?;
    if !opts.force {
        if let Some(id) = image_id(&opts.tag) {
            eprintln!(
                "emulator-image: {} already exists ({}); nothing to do (--force rebuilds)",
                opts.tag,
                short(&id)
            );
            return Ok(());
        }
    }
    ensure_debootstrap()?;
    let work = root.join("target").join("emulator-image");
    let rootfs = work.join("rootfs");
    clear_rootfs(&rootfs)?;
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    step(
        started,
        1,
        &format!("debootstrap {SUITE} (minbase + {PACKAGES})"),
    );
    let mut debootstrap = Command::new("debootstrap");
    debootstrap
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE])
        .arg(&rootfs)
        .arg(&opts.mirror);
    run_streaming(&mut debootstrap, started, "debootstrap")?;

    step(
        started,
        2,
        &format!(
            "venv /opt/ministack with ministack=={MINISTACK_VERSION} aws-sam-translator=={SAM_TRANSLATOR_VERSION} (PyPI)"
        ),
    );
    install_ministack(&rootfs, started)?;

    step(started, 3, "trimming caches, docs and apt lists");
    trim(&rootfs)?;

    step(started, 4, &format!("docker import as {}", opts.tag));
    import(&rootfs, &opts.tag)?;
    let id = image_id(&opts.tag).context("the imported image is not listed by docker")?;

    step(
        started,
        5,
        "smoke test: MiniStack's module imports in the image",
    );
    let smoke = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "/opt/ministack/bin/python"])
        .arg(&opts.tag)
        .args(["-c", "import ministack, sys; print(sys.version.split()[0])"])
        .output()
        .context("running docker")?;
    if !smoke.status.success() {
        bail!(
            "the image was imported but MiniStack does not import in it:\n{}",
            String::from_utf8_lossy(&smoke.stderr)
        );
    }
    clear_rootfs(&rootfs)?;
    eprintln!(
        "emulator-image: built {} ({}, python {}) in {:.0}s; use it with {}={} PIPELINE_EMULATOR=container",
        opts.tag,
        short(&id),
        String::from_utf8_lossy(&smoke.stdout).trim(),
        started.elapsed().as_secs_f64(),
        ENV_IMAGE,
        opts.tag
    );
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        tag: LOCAL_IMAGE.to_string(),
        force: false,
        mirror: std::env::var("PIPELINE_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into()),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--force" => opts.force = true,
            "--tag" => opts.tag = it.next().context("--tag needs a value")?.clone(),
            "--mirror" => opts.mirror = it.next().context("--mirror needs a value")?.clone(),
            other => bail!(
                "emulator-image: unknown argument {other:?}\nusage: cargo xtask emulator-image [--tag NAME:TAG] [--mirror URL] [--force]"
            ),
        }
    }
    Ok(opts)
}

fn step(started: Instant, n: u32, what: &str) {
    eprintln!(
        "emulator-image: [{n}/5 +{:.0}s] {what}",
        started.elapsed().as_secs_f64()
    );
}

fn short(id: &str) -> &str {
    let id = id.trim_start_matches("sha256:");
    id.get(..12).unwrap_or(id)
}

fn check_docker() -> Result<()> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!(
            "emulator-image: the Docker engine does not answer: {}\nstart Docker (or run the suite with PIPELINE_EMULATOR=process)",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!(
            "emulator-image: the docker CLI is missing ({e}); install Docker (apt-get install docker.io) \
             or run the suite with PIPELINE_EMULATOR=process"
        ),
    }
}

fn image_id(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn ensure_debootstrap() -> Result<()> {
    if !is_root() {
        bail!("emulator-image: debootstrap and chroot need root; run it as root (or with sudo)");
    }
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_ok()
    {
        return Ok(());
    }
    eprintln!("emulator-image: installing debootstrap (apt-get install debootstrap)...");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("emulator-image: debootstrap is missing and could not be installed; run `apt-get install debootstrap`");
    }
    Ok(())
}

/// Removes a root file system left by an earlier (possibly interrupted) build, unmounting
/// anything debootstrap left mounted inside it first so nothing outside is touched.
fn clear_rootfs(rootfs: &Path) -> Result<()> {
    if !rootfs.exists() {
        return Ok(());
    }
    let prefix = rootfs.display().to_string();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut inside: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    inside.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in &inside {
        let ok = Command::new("umount").arg("-l").arg(mount).status();
        if !ok.is_ok_and(|s| s.success()) {
            bail!("{mount} is still mounted inside {prefix}; unmount it and retry");
        }
    }
    std::fs::remove_dir_all(rootfs).with_context(|| format!("removing {}", rootfs.display()))
}

/// Runs `cmd`, printing each output line with the elapsed time; fails with its last lines.
fn run_streaming(cmd: &mut Command, started: Instant, what: &str) -> Result<()> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut last = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            // debootstrap prints one line per package retrieved/unpacked/configured.
            eprintln!("  +{:>3.0}s {line}", started.elapsed().as_secs_f64());
            last.push(line);
            if last.len() > 20 {
                last.remove(0);
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); last lines:\n{}", last.join("\n"));
    }
    Ok(())
}

fn install_ministack(rootfs: &Path, started: Instant) -> Result<()> {
    // The chroot resolves names and trusts certificates as the host does, for pip only.
    copy(
        Path::new("/etc/resolv.conf"),
        &rootfs.join("etc/resolv.conf"),
    )?;
    let host_ca = PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
    let ca_in_root = rootfs.join("tmp/host-ca.crt");
    if host_ca.exists() {
        copy(&host_ca, &ca_in_root)?;
    }
    let mut cmd = Command::new("chroot");
    cmd.arg(rootfs)
        .args([
            "/usr/bin/env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
        ])
        .arg("PIP_DISABLE_PIP_VERSION_CHECK=1")
        .arg("PIP_DEFAULT_TIMEOUT=180")
        .arg("PIP_NO_CACHE_DIR=1")
        .arg("PIP_PROGRESS_BAR=off");
    if host_ca.exists() {
        cmd.arg("PIP_CERT=/tmp/host-ca.crt");
    }
    for var in [
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        if let Ok(value) = std::env::var(var) {
            cmd.arg(format!("{var}={value}"));
        }
    }
    cmd.args([
        "sh",
        "-c",
        &format!(
            "python3 -m venv /opt/ministack && /opt/ministack/bin/pip install ministack=={MINISTACK_VERSION} aws-sam-translator=={SAM_TRANSLATOR_VERSION} 2>&1 \
             | grep -E '^(Collecting|Successfully|ERROR)'; test -x /opt/ministack/bin/ministack"
        ),
    ]);
    run_streaming(&mut cmd, started, "pip install in the chroot")?;
    let _ = std::fs::remove_file(&ca_in_root);
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

fn trim(rootfs: &Path) -> Result<()> {
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ] {
        let path = rootfs.join(dir);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
            std::fs::create_dir_all(&path)?;
        }
    }
    // Name resolution inside the container is Docker's business.
    std::fs::write(rootfs.join("etc/resolv.conf"), "")?;
    Ok(())
}

/// The image's configuration: MiniStack on 4566 on every interface of the container,
/// functions as local processes (same container, same glibc).
fn import_changes() -> Vec<String> {
    vec![
        "ENV PATH=/opt/ministack/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "ENV GATEWAY_PORT=4566 BIND_HOST=0.0.0.0 LAMBDA_EXECUTOR=local PYTHONUNBUFFERED=1".into(),
        "WORKDIR /opt/ministack".into(),
        "EXPOSE 4566".into(),
        format!("LABEL org.s3-pipeline.image=ministack org.s3-pipeline.ministack-version={MINISTACK_VERSION} org.s3-pipeline.base=debian-{SUITE}"),
        r#"ENTRYPOINT ["/opt/ministack/bin/ministack"]"#.into(),
    ]
}

fn import(rootfs: &Path, tag: &str) -> Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting tar")?;
    let stdout = tar.stdout.take().context("tar has no stdout")?;
    let mut import = Command::new("docker");
    import.arg("import");
    for change in import_changes() {
        import.args(["--change", &change]);
    }
    let status = import
        .args(["-", tag])
        .stdin(Stdio::from(stdout))
        .stdout(Stdio::null())
        .status()
        .context("running docker import")?;
    let tar_status = tar.wait().context("waiting for tar")?;
    if !tar_status.success() || !status.success() {
        bail!("docker import failed (tar {tar_status}, docker {status})");
    }
    Ok(())
}
