//! Packaging: release-build every function for a Lambda architecture, check that each
//! binary starts on `provided.al2023` (see `lambda_ready`), and zip it as an executable
//! `bootstrap`. `check-artifacts` runs the same check over zips that already exist.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use zip::write::SimpleFileOptions;

use crate::elf;
use crate::lambda_ready::{self, check_lambda_ready, Arch, Problem, MAX_GLIBC};

/// The functions, as binary names; each crate is `fn-<name>`.
pub const FUNCTIONS: [&str; 7] = [
    "ingest",
    "inspect",
    "transform",
    "load",
    "quarantine",
    "reconcile",
    "counters",
];

/// `cargo xtask package [--arch x86_64|arm64] [--zig]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub arch: Arch,
    /// Link through `cargo zigbuild` against glibc 2.34 instead of the build machine's.
    pub zig: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--arch" => {
                    let value = args
                        .next()
                        .context("--arch needs a value: x86_64 or arm64")?;
                    options.arch = Arch::parse(value)?;
                }
                "--zig" => options.zig = true,
                other => match other.strip_prefix("--arch=") {
                    Some(value) => options.arch = Arch::parse(value)?,
                    None => {
                        bail!("package: unknown argument {other:?} (--arch x86_64|arm64, --zig)")
                    }
                },
            }
        }
        Ok(options)
    }
}

/// Where the zips go: `target/lambda` for x86_64 (the layout the demo and the tests
/// read), `target/lambda-arm64` for arm64.
pub fn artifacts_dir(root: &Path, arch: Arch) -> PathBuf {
    let target = crate::target_dir(root);
    match arch {
        Arch::X86_64 => target.join("lambda"),
        Arch::Arm64 => target.join("lambda-arm64"),
    }
}

/// Where cargo leaves the release binaries: the host's `release/` for a plain x86_64
/// build, `<triple>/release/` with `--target` (cargo zigbuild drops the `.2.34` suffix).
fn binaries_dir(root: &Path, options: Options) -> PathBuf {
    let target = crate::target_dir(root);
    if options.arch == Arch::X86_64 && !options.zig {
        target.join("release")
    } else {
        target.join(options.arch.rust_target()).join("release")
    }
}

/// Builds, checks and zips every function; returns the zip paths. Nothing is zipped
/// unless every binary passes.
pub fn run(root: &Path, options: Options) -> Result<Vec<PathBuf>> {
    let arch = options.arch;
    if arch == Arch::Arm64 {
        ensure_target_std(arch)?;
    }
    if options.zig && !zigbuild_available() {
        bail!(
            "package --zig: cargo-zigbuild is not on PATH; install it with\n{}",
            ZIG_INSTALL
        );
    }
    ensure_build_tools()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root);
    if options.zig {
        cmd.args(["zigbuild", "--release", "--locked", "--target"])
            .arg(format!("{}.{}", arch.rust_target(), MAX_GLIBC.0));
    } else {
        cmd.args(["build", "--release", "--locked"]);
        if arch != Arch::X86_64 {
            cmd.args(["--target", arch.rust_target()]);
        }
    }
    for f in FUNCTIONS {
        cmd.args(["-p", &format!("fn-{f}")]);
    }
    eprintln!(
        "package: building {} functions (release, {arch}{})...",
        FUNCTIONS.len(),
        if options.zig {
            ", linked by zig against glibc 2.34"
        } else {
            ""
        }
    );
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        let hint = if arch == Arch::Arm64 && !options.zig {
            "\n(cross-building for aarch64 needs an aarch64 linker and C compiler: --zig provides both)"
        } else {
            ""
        };
        bail!("building the functions failed ({status}){hint}");
    }

    let binaries = binaries_dir(root, options);
    let mut checked = Vec::new();
    for f in FUNCTIONS {
        let path = binaries.join(f);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        checked.push((f.to_owned(), bytes));
    }
    let problems = check_all("package", &checked, arch);
    if !problems.is_empty() {
        bail!(
            "package: {} problem(s), nothing was zipped:\n{}{}",
            problems.len(),
            list(&problems),
            zig_hint(&problems)
        );
    }

    let out_dir = artifacts_dir(root, arch);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut zips = Vec::new();
    for (f, elf) in &checked {
        let zip_path = out_dir.join(format!("{f}.zip"));
        write_bootstrap_zip(&zip_path, elf)?;
        let size = std::fs::metadata(&zip_path)?.len();
        eprintln!(
            "package: {:<40} {:>8.2} MB",
            zip_path.strip_prefix(root).unwrap_or(&zip_path).display(),
            size as f64 / 1_000_000.0
        );
        zips.push(zip_path);
    }
    Ok(zips)
}

/// `cargo xtask check-artifacts [--arch x86_64|arm64] [PATH...]`: checks the `bootstrap`
/// of every zip in each directory (default: the arch's artifacts directory), of each zip
/// named, or each plain executable named, without building anything.
pub fn check_artifacts(root: &Path, args: &[String]) -> Result<()> {
    let mut arch = Arch::X86_64;
    let mut paths = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--arch" => {
                arch = Arch::parse(
                    args.next()
                        .context("--arch needs a value: x86_64 or arm64")?,
                )?
            }
            other => match other.strip_prefix("--arch=") {
                Some(value) => arch = Arch::parse(value)?,
                None if other.starts_with("--") => {
                    bail!("check-artifacts: unknown option {other:?} (--arch x86_64|arm64)")
                }
                None => paths.push(PathBuf::from(other)),
            },
        }
    }
    if paths.is_empty() {
        paths.push(artifacts_dir(root, arch));
    }

    let mut binaries = Vec::new();
    let mut problems = Vec::new();
    for path in &paths {
        if !path.exists() {
            bail!(
                "check-artifacts: {} does not exist (build the zips with `cargo xtask package{}`)",
                path.display(),
                if arch == Arch::X86_64 {
                    ""
                } else {
                    " --arch arm64"
                }
            );
        }
        if path.is_dir() {
            let mut zips: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "zip"))
                .collect();
            zips.sort();
            if zips.is_empty() {
                bail!(
                    "check-artifacts: no .zip in {} (build them with `cargo xtask package{}`)",
                    path.display(),
                    if arch == Arch::X86_64 {
                        ""
                    } else {
                        " --arch arm64"
                    }
                );
            }
            for zip in zips {
                binaries.push(read_zipped_bootstrap(root, &zip, &mut problems)?);
            }
        } else if path.extension().is_some_and(|e| e == "zip") {
            binaries.push(read_zipped_bootstrap(root, path, &mut problems)?);
        } else {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            binaries.push((shown(root, path), bytes));
        }
    }
    problems.extend(check_all("check-artifacts", &binaries, arch));
    if !problems.is_empty() {
        bail!(
            "check-artifacts: {} problem(s):\n{}{}",
            problems.len(),
            list(&problems),
            zig_hint(&problems)
        );
    }
    println!(
        "check-artifacts: {} binar{} ready for provided.al2023 on {arch}",
        binaries.len(),
        if binaries.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}

/// The `bootstrap` entry of a function zip, named after the zip; a missing execute bit
/// (Lambda execs the file) is recorded as a problem.
fn read_zipped_bootstrap(
    root: &Path,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Result<(String, Vec<u8>)> {
    let name = shown(root, path);
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive =
        zip::ZipArchive::new(file).with_context(|| format!("reading zip {}", path.display()))?;
    let mut entry = archive
        .by_name("bootstrap")
        .with_context(|| format!("{}: no `bootstrap` at the zip's root", path.display()))?;
    if entry.unix_mode().is_some_and(|mode| mode & 0o111 == 0) {
        problems.push(Problem {
            binary: name.clone(),
            found: "its bootstrap is not executable".into(),
            fix: "zip it with mode 0755 (`cargo xtask package` does)".into(),
        });
    }
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .with_context(|| format!("unzipping bootstrap from {}", path.display()))?;
    Ok((name, bytes))
}

/// Checks each (name, executable), prints one line per executable that passes and
/// returns the problems of those that do not.
fn check_all(step: &str, binaries: &[(String, Vec<u8>)], arch: Arch) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, bytes) in binaries {
        match elf::read(bytes) {
            Err(error) => problems.push(Problem {
                binary: name.clone(),
                found: format!("is not a Linux executable Lambda can load: {error:#}"),
                fix: format!(
                    "package a release build for {} (`cargo xtask package --arch {arch}`)",
                    arch.rust_target()
                ),
            }),
            Ok(found) => match check_lambda_ready(name, &found, arch) {
                Ok(()) => eprintln!("{step}: {name} ok: {}", lambda_ready::summary(&found)),
                Err(found_problems) => problems.extend(found_problems),
            },
        }
    }
    problems
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

const ZIG_INSTALL: &str = "    pip install ziglang\n    cargo install --locked cargo-zigbuild";

/// When a fix is to link with zig and cargo-zigbuild is missing, how to get it.
fn zig_hint(problems: &[Problem]) -> String {
    if problems.iter().any(|p| p.fix.contains("--zig")) && !zigbuild_available() {
        format!("\n(cargo-zigbuild is not on PATH; install it with\n{ZIG_INSTALL})")
    } else {
        String::new()
    }
}

fn zigbuild_available() -> bool {
    Command::new("cargo-zigbuild")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A path as the user would type it: relative to the workspace root when inside it.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Cross-building needs the target's standard library (`libstd-*.rlib` in rustc's
/// target libdir). These machines do not have aarch64's and cannot fetch it, so say what
/// a machine that can should run, and where the results land.
fn ensure_target_std(arch: Arch) -> Result<()> {
    let target = arch.rust_target();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = match &libdir {
        Some(dir) => has_std_rlib(dir),
        // A rustc that does not know the target at all: ask rustup, if there is one.
        None => Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|l| l.trim() == target)
            }),
    };
    if installed {
        return Ok(());
    }
    let looked = libdir
        .map(|d| format!(" (no libstd-*.rlib in {})", d.display()))
        .unwrap_or_default();
    bail!(
        "package --arch {arch}: the Rust standard library for {target} is not installed{looked}.\n\
         This machine cannot fetch it; on a machine that can, run:\n\
         \x20   rustup target add {target}\n\
         {ZIG_INSTALL}\n\
         \x20   cargo xtask package --arch {arch} --zig\n\
         which builds with `cargo zigbuild --release --locked --target {target}.{glibc} -p fn-ingest ...`\n\
         (binaries in target/{target}/release/, zips in target/lambda-arm64/<name>.zip, each\n\
         checked like the x86_64 ones); deploy them with the template parameter Architecture={arch}.",
        glibc = MAX_GLIBC.0,
    )
}

fn has_std_rlib(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

/// libjpeg-turbo (crate `turbojpeg`) is built from source by cmake, with nasm for its
/// SIMD code: install both when missing (as root), or say exactly what is needed.
pub fn ensure_build_tools() -> Result<()> {
    let missing: Vec<&str> = ["cmake", "nasm"]
        .into_iter()
        .filter(|tool| {
            !Command::new(tool)
                .arg(if *tool == "cmake" { "--version" } else { "-v" })
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::bench::apt_install(&missing)
        .context("libjpeg-turbo (crate turbojpeg) builds from source with cmake and nasm")
}

/// A zip holding one entry, `bootstrap`, mode 0755 (Lambda's custom runtimes exec it),
/// deflated at the highest level (a few percent smaller than the default level 6; Lambda
/// reads only deflate or stored entries).
pub fn write_bootstrap_zip(path: &Path, binary: &[u8]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(binary)?;
    zip.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::synthetic::SyntheticElf;

    #[test]
    fn write_bootstrap_zip_entry_is_executable_bootstrap() {
        let dir = std::env::temp_dir().join(format!("xtask-zip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.zip");
        write_bootstrap_zip(&path, b"binary").unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_name("bootstrap").unwrap();
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"binary");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A scratch directory for one test.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-pkg-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn options_parse_table() {
        let parse = |list: &[&str]| Options::parse(&args(list));
        assert_eq!(parse(&[]).unwrap(), Options::default());
        assert_eq!(parse(&[]).unwrap().arch, Arch::X86_64);
        assert_eq!(
            parse(&["--arch", "arm64", "--zig"]).unwrap(),
            Options {
                arch: Arch::Arm64,
                zig: true
            }
        );
        assert_eq!(parse(&["--arch=x86_64"]).unwrap().arch, Arch::X86_64);
        assert!(parse(&["--arch"]).is_err());
        assert!(parse(&["--arch", "mips"]).is_err());
        assert!(parse(&["--release"]).is_err());
    }

    #[test]
    fn artifacts_dir_keeps_x86_64_layout() {
        let root = Path::new("/w");
        assert!(artifacts_dir(root, Arch::X86_64).ends_with("lambda"));
        assert!(artifacts_dir(root, Arch::Arm64).ends_with("lambda-arm64"));
    }

    #[test]
    fn check_artifacts_ready_zips_pass() {
        let dir = scratch("ready");
        let elf = SyntheticElf::x86_64(&["GLIBC_2.2.5", "GLIBC_2.34"]).build();
        write_bootstrap_zip(&dir.join("ingest.zip"), &elf).unwrap();
        write_bootstrap_zip(&dir.join("load.zip"), &elf).unwrap();
        check_artifacts(&dir, &args(&[dir.to_str().unwrap()])).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_artifacts_lists_every_problem() {
        let dir = scratch("problems");
        let ok = SyntheticElf::x86_64(&["GLIBC_2.34"]);
        write_bootstrap_zip(&dir.join("ingest.zip"), &ok.build()).unwrap();
        let new_glibc = SyntheticElf::x86_64(&["GLIBC_2.36"]);
        write_bootstrap_zip(&dir.join("inspect.zip"), &new_glibc.build()).unwrap();
        let mut arm = SyntheticElf::x86_64(&["GLIBC_2.17"]);
        arm.e_machine = 0xB7;
        arm.interpreter = Some(Arch::Arm64.interpreter().into());
        write_bootstrap_zip(&dir.join("load.zip"), &arm.build()).unwrap();
        write_bootstrap_zip(&dir.join("transform.zip"), b"#!/bin/sh").unwrap();

        let error = check_artifacts(&dir, &args(&[dir.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("3 problem(s)"), "{error}");
        assert!(error.contains("inspect.zip: needs GLIBC_2.36"), "{error}");
        assert!(error.contains("load.zip: is built for aarch64"), "{error}");
        assert!(
            error.contains("transform.zip: is not a Linux executable"),
            "{error}"
        );
        assert!(!error.contains("ingest.zip"), "{error}");
        // The same zips are fine for arm64 only where they are aarch64.
        let error = check_artifacts(&dir, &args(&["--arch", "arm64", dir.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(!error.contains("load.zip"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_artifacts_non_executable_bootstrap_is_a_problem() {
        let dir = scratch("mode");
        let path = dir.join("ingest.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(
            "bootstrap",
            SimpleFileOptions::default().unix_permissions(0o644),
        )
        .unwrap();
        zip.write_all(&SyntheticElf::x86_64(&["GLIBC_2.34"]).build())
            .unwrap();
        zip.finish().unwrap();
        let error = check_artifacts(&dir, &args(&[path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("bootstrap is not executable"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_artifacts_empty_dir_says_how_to_build() {
        let dir = scratch("empty");
        let error = check_artifacts(&dir, &args(&[dir.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cargo xtask package"), "{error}");
        let missing = dir.join("lambda-arm64");
        let error = check_artifacts(&dir, &args(&["--arch", "arm64", missing.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
        assert!(
            error.contains("cargo xtask package --arch arm64"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ensure_target_std_host_std_is_found() {
        ensure_target_std(Arch::X86_64).unwrap();
    }

    #[test]
    fn ensure_target_std_missing_aarch64_says_what_to_run() {
        // Where the aarch64 standard library is installed there is nothing to report.
        if let Err(error) = ensure_target_std(Arch::Arm64) {
            let message = error.to_string();
            for expected in [
                "rustup target add aarch64-unknown-linux-gnu",
                "pip install ziglang",
                "cargo install --locked cargo-zigbuild",
                "cargo zigbuild --release --locked --target aarch64-unknown-linux-gnu.2.34",
                "target/lambda-arm64/",
                "Architecture=arm64",
            ] {
                assert!(
                    message.contains(expected),
                    "{expected:?} missing from {message}"
                );
            }
        }
    }
}
