//! `cargo xtask lint`: the project's own definition checks, statelint, the template's
//! security rules, cfn-lint, and the SAM form (current, expanded by the SAM translator).
//!
//! The two Python linters live in a project-local venv (`.pipeline/venv-lint`) with
//! pinned versions; a marker file holding the pins makes the set-up idempotent, and a
//! change of pins reinstalls. Every step runs even when an earlier one failed, so one run
//! shows every problem; the command fails with the failing tools' output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::asl;
use crate::sam;
use crate::security;

/// The linter venv, relative to the workspace root (ignored by git).
const VENV_DIR: &str = ".pipeline/venv-lint";

/// The file in the venv that records which pins were installed.
const MARKER_FILE: &str = "xtask-pins.txt";

/// The Python interpreter used to create the venv.
const PYTHON: &str = "python3";

/// The linters, pinned. statelint (PyPI, a Python port of awslabs/statelint) validates
/// Amazon States Language; cfn-lint validates CloudFormation templates; aws-sam-translator
/// expands the SAM form (cfn-lint 1.58 no longer depends on it). 1.115.0 also installs
/// next to ministack 1.5.33 (boto3/botocore 1.43.106), which applies the same transform.
const PINNED_REQUIREMENTS: [&str; 3] = [
    "statelint==3.1.0",
    "cfn-lint==1.58.0",
    "aws-sam-translator==1.115.0",
];

/// Runs every lint step for the workspace at `workspace_root`.
pub fn run(workspace_root: &Path) -> Result<()> {
    println!(
        "lint: linter venv {VENV_DIR} ({})",
        PINNED_REQUIREMENTS.join(", ")
    );
    let venv = ensure_venv(workspace_root)?;
    let bin = venv.join("bin");
    let mut failures: Vec<String> = Vec::new();

    println!(
        "lint: own checks of {} against {}",
        asl::DEFINITION_PATH,
        asl::TEMPLATE_PATH
    );
    let sources = match asl::load(workspace_root) {
        Ok(sources) => {
            let problems = asl::check(&sources.definition, &sources.substitution_keys);
            if problems.is_empty() {
                println!("  ok");
            } else {
                let report = problems
                    .iter()
                    .map(|p| format!("  - {p}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                println!("  FAILED ({} problem(s), listed below)", problems.len());
                failures.push(format!("own definition checks:\n{report}"));
            }
            Some(sources)
        }
        Err(error) => {
            println!("  FAILED (listed below)");
            failures.push(format!("own definition checks: {error:#}"));
            None
        }
    };

    println!(
        "lint: statelint on {} with placeholders substituted",
        asl::DEFINITION_PATH
    );
    match &sources {
        Some(sources) => {
            let substituted = asl::substitute(
                &sources.definition_text,
                &asl::dummy_substitutions(&sources.substitution_keys),
            );
            let file = std::env::temp_dir().join(format!(
                "pipeline-{}.substituted.asl.json",
                std::process::id()
            ));
            fs::write(&file, substituted).with_context(|| format!("writing {}", file.display()))?;
            let outcome = run_tool(Command::new(bin.join("statelint")).arg(&file), "statelint");
            // Best effort: a leftover file in the temp dir is harmless.
            let _ = fs::remove_file(&file);
            record(outcome?, "statelint", &mut failures);
        }
        None => {
            println!("  skipped: the definition or template could not be read");
            failures.push("statelint: skipped, see the own checks".to_owned());
        }
    }

    println!(
        "lint: security rules on {} (roles, buckets, invoke permission)",
        asl::TEMPLATE_PATH
    );
    record_problems(
        security::check_workspace(workspace_root),
        "security rules",
        &mut failures,
    );

    println!("lint: cfn-lint {}", asl::TEMPLATE_PATH);
    let outcome = run_tool(
        Command::new(bin.join("cfn-lint"))
            .arg(asl::TEMPLATE_PATH)
            .current_dir(workspace_root),
        "cfn-lint",
    )?;
    record(outcome, "cfn-lint", &mut failures);

    sam_form(workspace_root, &venv, &mut failures)?;

    if !failures.is_empty() {
        bail!(
            "lint failed in {} step(s):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    println!("lint: all checks passed");
    Ok(())
}

/// Prints and records the outcome of a rule step that lists problems; `false` when the
/// step could not run at all (its error is recorded).
fn record_problems(result: Result<Vec<String>>, step: &str, failures: &mut Vec<String>) -> bool {
    match result {
        Ok(problems) if problems.is_empty() => println!("  ok"),
        Ok(problems) => {
            println!("  FAILED ({} problem(s), listed below)", problems.len());
            let report = problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n");
            failures.push(format!("{step}:\n{report}"));
        }
        Err(error) => {
            println!("  FAILED (listed below)");
            failures.push(format!("{step}: {error:#}"));
            return false;
        }
    }
    true
}

/// The step "SAM form": `infra/sam/template.yaml` is what `cargo xtask sam` generates,
/// the SAM translator expands it (code at stand-in S3 locations, as `sam package` leaves
/// it) into what the project expects, and cfn-lint passes on the expansion.
fn sam_form(root: &Path, venv: &Path, failures: &mut Vec<String>) -> Result<()> {
    println!(
        "lint: SAM form {} (generated, aws-sam-translator expansion, cfn-lint)",
        sam::SAM_TEMPLATE_PATH
    );
    let expanded =
        std::env::temp_dir().join(format!("pipeline-{}.sam-expanded.json", std::process::id()));
    let checked = record_problems(
        sam::check_workspace(root, &venv.join("bin").join("python"), &expanded),
        "SAM form",
        failures,
    );
    if !checked {
        return Ok(());
    }
    println!(
        "lint: cfn-lint {} (cfn-lint applies the transform)",
        sam::SAM_TEMPLATE_PATH
    );
    let outcome = run_tool(
        Command::new(venv.join("bin").join("cfn-lint"))
            .arg("--")
            .arg(sam::SAM_TEMPLATE_PATH)
            .current_dir(root),
        "cfn-lint (SAM form)",
    )?;
    record(outcome, "cfn-lint (SAM form)", failures);
    println!("lint: cfn-lint on the SAM translator's expansion");
    let outcome = run_tool(
        Command::new(venv.join("bin").join("cfn-lint"))
            .arg("--")
            .arg(&expanded)
            .current_dir(root),
        "cfn-lint (SAM expansion)",
    );
    // Best effort: a leftover file in the temp dir is harmless.
    let _ = fs::remove_file(&expanded);
    record(outcome?, "cfn-lint (SAM expansion)", failures);
    Ok(())
}

/// What one linter run printed, and whether it passed.
struct ToolOutcome {
    passed: bool,
    output: String,
}

fn record(outcome: ToolOutcome, tool: &str, failures: &mut Vec<String>) {
    if outcome.passed {
        println!("  ok");
    } else {
        println!("  FAILED (output below)");
        failures.push(format!("{tool}:\n{}", outcome.output.trim_end()));
    }
}

/// Runs a tool to completion, capturing stdout and stderr together.
fn run_tool(command: &mut Command, what: &str) -> Result<ToolOutcome> {
    let output = command
        .output()
        .with_context(|| format!("starting {what} ({command:?})"))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() && text.trim().is_empty() {
        text = format!("{what} exited with {}", output.status);
    }
    Ok(ToolOutcome {
        passed: output.status.success(),
        output: text,
    })
}

/// The marker contents for the current pins.
fn marker_contents() -> String {
    let mut contents = PINNED_REQUIREMENTS.join("\n");
    contents.push('\n');
    contents
}

/// Whether the venv at `venv` already has exactly the pinned linters installed.
fn venv_is_current(venv: &Path) -> bool {
    let marker = fs::read_to_string(venv.join(MARKER_FILE)).ok();
    let bin = venv.join("bin");
    marker.as_deref() == Some(marker_contents().as_str())
        && bin.join("statelint").is_file()
        && bin.join("cfn-lint").is_file()
}

/// Creates or updates the linter venv so that it holds exactly the pinned versions.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(VENV_DIR);
    if venv_is_current(&venv) {
        println!("  up to date");
        return Ok(venv);
    }
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        println!("  creating {}", venv.display());
        let created = run_tool(
            Command::new(PYTHON).arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
        if !created.passed {
            bail!("creating {} failed:\n{}", venv.display(), created.output);
        }
    }
    // Remove the marker first so that an interrupted install is redone next time.
    let marker = venv.join(MARKER_FILE);
    if marker.exists() {
        fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
    }
    println!("  installing {}", PINNED_REQUIREMENTS.join(" "));
    let installed = run_tool(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PINNED_REQUIREMENTS),
        "pip install",
    )?;
    if !installed.passed {
        bail!(
            "installing {} into {} failed:\n{}",
            PINNED_REQUIREMENTS.join(" "),
            venv.display(),
            installed.output
        );
    }
    fs::write(&marker, marker_contents())
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(venv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh scratch directory for one test, shaped like a venv's `bin/`.
    fn scratch_venv(test: &str, with_tools: bool) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-lint-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).expect("create scratch venv");
        if with_tools {
            for tool in ["statelint", "cfn-lint"] {
                fs::write(dir.join("bin").join(tool), "").expect("write stand-in tool");
            }
        }
        dir
    }

    #[test]
    fn venv_marker_matching_pins_is_current() {
        let venv = scratch_venv("current", true);
        fs::write(venv.join(MARKER_FILE), marker_contents()).expect("write marker");
        assert!(venv_is_current(&venv));
        let _ = fs::remove_dir_all(&venv);
    }

    #[test]
    fn venv_marker_with_other_pins_is_stale() {
        let venv = scratch_venv("other-pins", true);
        fs::write(
            venv.join(MARKER_FILE),
            "statelint==3.0.0\ncfn-lint==1.58.0\n",
        )
        .expect("write marker");
        assert!(!venv_is_current(&venv));
        let _ = fs::remove_dir_all(&venv);
    }

    #[test]
    fn venv_without_marker_is_stale() {
        let venv = scratch_venv("no-marker", true);
        assert!(!venv_is_current(&venv));
        let _ = fs::remove_dir_all(&venv);
    }

    #[test]
    fn venv_marker_without_tools_is_stale() {
        let venv = scratch_venv("no-tools", false);
        fs::write(venv.join(MARKER_FILE), marker_contents()).expect("write marker");
        assert!(!venv_is_current(&venv));
        let _ = fs::remove_dir_all(&venv);
    }

    #[test]
    fn marker_contents_lists_every_pin_exactly() {
        assert_eq!(
            marker_contents(),
            "statelint==3.1.0\ncfn-lint==1.58.0\naws-sam-translator==1.115.0\n"
        );
        assert!(PINNED_REQUIREMENTS.iter().all(|p| p.contains("==")));
    }

    #[test]
    fn run_tool_failing_command_reports_its_output() {
        let outcome = run_tool(
            Command::new("sh").args(["-c", "echo found a problem >&2; exit 3"]),
            "sh",
        )
        .expect("sh starts");
        assert!(!outcome.passed);
        assert_eq!(outcome.output.trim(), "found a problem");
    }

    #[test]
    fn run_tool_silent_failure_reports_exit_status() {
        let outcome = run_tool(Command::new("sh").args(["-c", "exit 4"]), "sh").expect("sh starts");
        assert!(!outcome.passed);
        assert!(
            outcome.output.contains("exit status: 4"),
            "{}",
            outcome.output
        );
    }

    #[test]
    fn run_tool_missing_program_is_an_error() {
        assert!(run_tool(&mut Command::new("/nonexistent/xtask-lint-tool"), "missing").is_err());
    }
}
