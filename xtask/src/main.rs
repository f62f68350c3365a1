//! Project automation, run as `cargo xtask <command>`: package, check-artifacts, lint,
//! sam, demo, load, test, emulator-image, fuzz, bench-transform.

mod bench;
mod elf;
mod emulator_image;
mod fuzz;
mod lambda_ready;
mod lint;
mod package;
mod sam;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
// The template and ASL readers live in the library target (`src/lib.rs`), shared with tests.
use xtask::{asl, security};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  package [--arch x86_64|arm64] [--zig]
                     build every function in release mode, check that each binary starts on
                     provided.al2023 (machine, GLIBC <= 2.34, only libraries the base image
                     has) and zip each as target/lambda/<name>.zip (arm64: target/lambda-arm64/);
                     --zig links through cargo-zigbuild against glibc 2.34
  check-artifacts [--arch x86_64|arm64] [DIR|ZIP|FILE...]
                     run the same check over existing zips (default: target/lambda/*.zip,
                     or target/lambda-arm64/*.zip with --arch arm64) without building
  lint               check the state machine (own checks + statelint), the template (cfn-lint,
                     security rules) and its SAM form (current, SAM-translated, cfn-lint)
  sam [--packaged]   write infra/sam/template.yaml, the SAM form of infra/template.yaml
                     (rust-cargolambda builds, AutoPublishAlias live; see infra/README.md);
                     --packaged: target/sam/packaged.yaml, its code at S3 locations (emulator test)
  demo [ARGS...]     package, then run `pipeline demo ARGS...` on the embedded emulator
                     (e.g. `cargo xtask demo --input ~/Pictures`)
  load --objects N --writers W
                     package, then upload N keys from W writers to the embedded emulator
                     (every fifth key twice, while its first version runs), deliver recorded
                     events to ingest again (duplicates, older after newer), run one reconcile
                     pass, check every key's newest version against its manifest (thumbnails
                     decoded) or report, print `objects=.. versions=.. redelivered=..
                     processed=.. quarantined=.. lost=.. duplicated=.. stale=.. p50_ms=..
                     p99_ms=.. objects_per_s=..`; exit 1 on anything lost, duplicated or stale
  test               package, lint, then run every unit and end-to-end test
                     (emulator backend from PIPELINE_EMULATOR: container|process|localstack|auto)
  emulator-image [--tag T] [--mirror URL] [--force]
                     build the MiniStack container image from Debian packages (debootstrap,
                     then pip in a chroot) and import it into Docker; skips if the tag exists
  fuzz [--target NAME] [--seconds N]
                     run the cargo-fuzz targets in fuzz/ (key_decode, event_plan,
                     render_thumbnails) for N seconds each (default 60), print the runs
                     of each, fail on any crash
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = workspace_root();
    match command.as_str() {
        "package" => package::run(&root, package::Options::parse(&rest)?).map(|_| ()),
        "check-artifacts" => package::check_artifacts(&root, &rest),
        "lint" => lint::run(&root),
        "sam" if rest.iter().any(|a| a == "--packaged") => sam::write_packaged(&root).map(drop),
        "sam" => sam::run(&root),
        "fuzz" => fuzz::run(&root, &rest),
        "demo" | "load" => {
            // The emulator runs the zips on this machine: x86_64.
            package::run(&root, package::Options::default())?;
            let artifacts = package::artifacts_dir(&root, package::Options::default().arch);
            let mut cli = vec![command.clone(), "--artifacts".into()];
            cli.push(artifacts.display().to_string());
            cli.extend(rest);
            run_pipeline_cli(&root, &cli)
        }
        "test" => {
            ensure_test_photos()?;
            package::run(&root, package::Options::default())?;
            lint::run(&root)?;
            // The SAM form's emulator test deploys it with its code at S3 locations.
            sam::write_packaged(&root)?;
            // The recovery tests run the `pipeline` binary as a user would.
            cargo(&root, &BUILD_BINS, &[])?;
            cargo(
                &root,
                &[
                    "test",
                    "--workspace",
                    "--all-targets",
                    "--features",
                    "integration-tests/e2e",
                ],
                &rest,
            )
        }
        "emulator-image" => emulator_image::run(&root, &rest),
        "bench-transform" => bench::run(&root, &rest),
        "bench-corpus" => bench::corpus(&rest),
        "" | "help" | "--help" | "-h" => {
            println!("{USAGE}{}", bench::USAGE);
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}{}", bench::USAGE),
    }
}

/// The e2e suite processes real photos from Debian's `ukui-wallpapers` package; install it
/// when missing (as root), or say exactly what is needed.
fn ensure_test_photos() -> Result<()> {
    if std::env::var_os("PIPELINE_PHOTOS").is_some()
        || Path::new("/usr/share/backgrounds/the-mouse.jpg").exists()
    {
        return Ok(());
    }
    eprintln!("test: installing real test photos (apt-get install ukui-wallpapers)...");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ukui-wallpapers",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("the e2e suite needs real photos: run `apt-get install ukui-wallpapers` as root, or set PIPELINE_PHOTOS to a folder with firstgeneration.jpg, the-mouse.jpg and desert.png");
    }
    Ok(())
}

/// Builds every binary with the feature set the tests use, so `demo`, `load` and `test`
/// share one build of the SDK crates (`cargo run -p pipeline-cli` alone would build them
/// again with other features).
const BUILD_BINS: [&str; 5] = [
    "build",
    "--workspace",
    "--bins",
    "--features",
    "integration-tests/e2e",
];

/// Runs `target/debug/pipeline` with `args`, building it first.
fn run_pipeline_cli(root: &Path, args: &[String]) -> Result<()> {
    cargo(root, &BUILD_BINS, &[])?;
    let cli = target_dir(root).join("debug").join("pipeline");
    let status = Command::new(&cli)
        .current_dir(root)
        .args(args)
        .status()
        .with_context(|| format!("running {}", cli.display()))?;
    if !status.success() {
        bail!("`pipeline {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when
/// relative) or `<root>/target`, so packaging and the CLI find what cargo built.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(root: &Path, args: &[&str], extra: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args(args)
        .args(extra)
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
