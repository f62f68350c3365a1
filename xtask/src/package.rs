//! Packaging: release-build every function and zip it with an executable `bootstrap`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use zip::write::SimpleFileOptions;

/// The functions, as binary names; each crate is `fn-<name>`.
pub const FUNCTIONS: [&str; 6] = [
    "ingest",
    "inspect",
    "transform",
    "load",
    "quarantine",
    "reconcile",
];

pub fn artifacts_dir(root: &Path) -> PathBuf {
    crate::target_dir(root).join("lambda")
}

/// Builds and zips every function; returns the zip paths.
pub fn run(root: &Path) -> Result<Vec<PathBuf>> {
    eprintln!(
        "package: building {} functions (release)...",
        FUNCTIONS.len()
    );
    ensure_build_tools()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked"]);
    for f in FUNCTIONS {
        cmd.args(["-p", &format!("fn-{f}")]);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the functions failed ({status})");
    }
    let out_dir = artifacts_dir(root);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut zips = Vec::new();
    for f in FUNCTIONS {
        let binary = crate::target_dir(root).join("release").join(f);
        let elf =
            std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
        check_elf_x86_64(&elf).with_context(|| format!("checking {}", binary.display()))?;
        let zip_path = out_dir.join(format!("{f}.zip"));
        write_bootstrap_zip(&zip_path, &elf)?;
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

/// Lambda's x86_64 runtime needs a 64-bit little-endian x86-64 ELF executable.
fn check_elf_x86_64(elf: &[u8]) -> Result<()> {
    if elf.len() < 20 || &elf[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 {
        bail!("not a 64-bit little-endian ELF");
    }
    let machine = u16::from_le_bytes([elf[18], elf[19]]);
    if machine != 0x3E {
        bail!("ELF machine is 0x{machine:x}, expected x86-64 (0x3e)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

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

    #[test]
    fn check_elf_x86_64_table() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[18] = 0x3E;
        assert!(check_elf_x86_64(&elf).is_ok());
        let mut arm = elf.clone();
        arm[18] = 0xB7;
        assert!(check_elf_x86_64(&arm).is_err());
        assert!(check_elf_x86_64(b"#!/bin/sh").is_err());
    }
}
