//! `cargo xtask fuzz [--target NAME] [--seconds N]`: runs the cargo-fuzz targets in `fuzz/`.
//!
//! Installs what is missing (cargo-fuzz from crates.io, Debian's `afl++-doc` for its image
//! test cases), writes the seed corpora, runs each target for the given time with
//! libFuzzer, and prints per target the number of runs. Any crash, leak, out-of-memory or
//! timeout fails the command, naming the input libFuzzer saved. Only the stable toolchain
//! is needed: `RUSTC_BOOTSTRAP=1` lets it accept the sanitizer flags cargo-fuzz passes.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The targets, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: [&str; 3] = ["key_decode", "event_plan", "render_thumbnails"];

const DEFAULT_SECONDS: u64 = 60;

/// AFL++'s small image test cases (Debian package `afl++-doc`).
const AFL_IMAGES: &str = "/usr/share/doc/afl++-doc/afl/testcases/images";

/// Encoded keys as S3 events carry them: ordinary, unicode, escapes, hostile, broken.
const KEY_SEEDS: [&str; 14] = [
    "photo.jpg",
    "My+Photo+%C3%BC.jpg",
    "a%2Bb.jpg",
    "100%25+real.png",
    "%E6%97%A5%E6%9C%AC%E8%AA%9E.png",
    "%F0%9F%93%B7+snap.webp",
    "albums/2026/",
    "..%2F..%2Fetc%2Fpasswd",
    "%2Fabs.jpg",
    "a%5C..%5Cb.jpg",
    "ctl%0A%00%1B.jpg",
    "bad%zz.jpg",
    "%C3%28",
    "_long/0123456789abcdef",
];

/// Sample notifications: a put, a test event, a removal, a future version, a bad key.
const EVENT_SEEDS: [&str; 5] = [
    r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-29T08:00:00.000Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:EXAMPLE"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"R","x-amz-id-2":"I"},"s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"in","ownerIdentity":{"principalId":"O"},"arn":"arn:aws:s3:::in"},"object":{"key":"My+Photo+%C3%BC.jpg","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","versionId":"v1","sequencer":"0055AED6DCD90281E5"}}}]}"#,
    r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-29T08:00:00.000Z","Bucket":"in","RequestId":"R","HostId":"H"}"#,
    r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-29T08:00:00.000Z","eventName":"ObjectRemoved:Delete","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"in","arn":"arn:aws:s3:::in"},"object":{"key":"a.jpg","sequencer":"01"}}}]}"#,
    r#"{"Records":[{"eventVersion":"3.0","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-29T08:00:00.000Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"in","arn":"arn:aws:s3:::in"},"object":{"key":"a.jpg","size":1}}}]}"#,
    r#"{"Records":[{"eventVersion":"2.3","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-29T08:00:00.000Z","eventName":"ObjectCreated:Copy","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"out","arn":"arn:aws:s3:::out"},"object":{"key":"..%2Fbad%zz","size":0}}},{"eventSource":"aws:s3","s3":{"bucket":{"name":"in"},"object":{"key":"thumbnails/x.jpg/256.jpg"}}}]}"#,
];

/// What one target's run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Inputs executed (`stat::number_of_executed_units`, or `Done N runs`).
    pub runs: Option<u64>,
    /// The input libFuzzer saved for a crash, leak, OOM or timeout.
    pub artifact: Option<String>,
}

/// Reads what matters from libFuzzer's output.
pub fn summarise(output: &str) -> RunSummary {
    let mut summary = RunSummary::default();
    for line in output.lines() {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            summary.runs = n.trim().parse().ok().or(summary.runs);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            if summary.runs.is_none() {
                summary.runs = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        } else if let Some(i) = line.find("Test unit written to ") {
            summary.artifact = Some(line[i + "Test unit written to ".len()..].trim().to_owned());
        }
    }
    summary
}

struct Options {
    targets: Vec<String>,
    seconds: u64,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut targets = Vec::new();
    let mut seconds = DEFAULT_SECONDS;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--target" => {
                let name = it.next().context("--target needs a name")?;
                if !TARGETS.contains(&name.as_str()) {
                    bail!(
                        "unknown fuzz target {name:?}; targets: {}",
                        TARGETS.join(", ")
                    );
                }
                targets.push(name.clone());
            }
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| *s > 0)
                    .context("--seconds needs a positive whole number")?;
            }
            other => {
                bail!("unknown argument {other:?}: cargo xtask fuzz [--target NAME] [--seconds N]")
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    Ok(Options { targets, seconds })
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    ensure_cargo_fuzz()?;
    if options.targets.iter().any(|t| t == "render_thumbnails") {
        ensure_afl_images()?;
    }
    let fuzz_dir = root.join("fuzz");
    let mut failures = Vec::new();
    for target in &options.targets {
        let seeds = write_seeds(root, target)?;
        let corpus = fuzz_dir.join("corpus").join(target);
        fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        let logs = fuzz_dir.join("logs");
        fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("{target}.log"));
        println!(
            "fuzz: {target} for {} s (seeds {}, corpus {}, log {})",
            options.seconds,
            seeds.display(),
            corpus.display(),
            log_path.display()
        );
        let started = Instant::now();
        let (passed, output) =
            run_target(root, target, &corpus, &seeds, options.seconds, &log_path)?;
        let elapsed = started.elapsed().as_secs();
        let summary = summarise(&output);
        let runs = summary
            .runs
            .map_or_else(|| "an unknown number of".to_owned(), |r| r.to_string());
        println!("fuzz: {target}: {runs} runs in {elapsed} s");
        if !passed {
            let artifact = summary
                .artifact
                .unwrap_or_else(|| "(no input saved)".to_owned());
            println!(
                "fuzz: {target}: FAILED, input {artifact}; see {}",
                log_path.display()
            );
            failures.push(format!("{target}: {artifact}"));
        }
    }
    if !failures.is_empty() {
        bail!(
            "fuzzing found {} failing target(s): {}\nreproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <input>`, then add the input as a regression test in crates/core",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

/// Runs one target, copying libFuzzer's progress lines to stdout and all of it to the log.
fn run_target(
    root: &Path,
    target: &str,
    corpus: &Path,
    seeds: &Path,
    seconds: u64,
    log_path: &Path,
) -> Result<(bool, String)> {
    let mut child = Command::new("cargo")
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", target])
        .arg(corpus)
        .arg(seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-timeout=30", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cargo fuzz")?;
    // libFuzzer writes to stderr; cargo's build output too. Stdout is drained on a thread.
    let stdout = child.stdout.take();
    let drain = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let mut log =
        fs::File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut output = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            writeln!(log, "{line}")?;
            let progress = line.contains("pulse")
                || line.contains("DONE")
                || line.starts_with("Done ")
                || line.starts_with("stat::")
                || line.contains("ERROR")
                || line.contains("SUMMARY")
                || line.contains("Test unit written")
                || line.starts_with("error");
            if progress {
                println!("  {line}");
            }
            output.push_str(&line);
            output.push('\n');
        }
    }
    let stdout_text = drain.join().unwrap_or_default();
    write!(log, "{stdout_text}")?;
    output.push_str(&stdout_text);
    let status = child.wait().context("waiting for cargo fuzz")?;
    Ok((status.success(), output))
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)...");
    let ok = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("installing cargo-fuzz failed: run `cargo install cargo-fuzz --locked`");
    }
    Ok(())
}

fn ensure_afl_images() -> Result<()> {
    if Path::new(AFL_IMAGES).is_dir() {
        return Ok(());
    }
    println!("fuzz: installing AFL++'s image test cases (apt-get install afl++-doc)...");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends afl++-doc",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !Path::new(AFL_IMAGES).is_dir() {
        bail!("the render_thumbnails seeds need {AFL_IMAGES}: run `apt-get install afl++-doc` as root");
    }
    Ok(())
}

/// (Re)writes `fuzz/seeds/<target>/` and returns it.
fn write_seeds(root: &Path, target: &str) -> Result<PathBuf> {
    let dir = root.join("fuzz").join("seeds").join(target);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let fixtures = fixture_files(root)?;
    match target {
        "key_decode" => {
            for (i, key) in KEY_SEEDS.iter().enumerate() {
                seeds.push((format!("key-{i}"), key.as_bytes().to_vec()));
            }
            for (name, text) in &fixtures {
                let json: serde_json::Value = serde_json::from_slice(text)
                    .with_context(|| format!("parsing fixture {name}"))?;
                if let Some(key) = json.pointer("/source/key").and_then(|k| k.as_str()) {
                    seeds.push((format!("fixture-{name}"), key.as_bytes().to_vec()));
                }
            }
        }
        "event_plan" => {
            for (i, event) in EVENT_SEEDS.iter().enumerate() {
                seeds.push((format!("event-{i}.json"), event.as_bytes().to_vec()));
            }
            seeds.extend(fixtures);
        }
        "render_thumbnails" => {
            for path in files_under(Path::new(AFL_IMAGES))? {
                let name = path
                    .strip_prefix(AFL_IMAGES)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('/', "-");
                seeds.push((format!("afl-{name}"), fs::read(&path)?));
            }
        }
        other => bail!("no seeds for {other}"),
    }
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes)?;
    }
    Ok(dir)
}

/// `state-machine/fixtures/*.json`, as (file name, bytes).
fn fixture_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = root.join("state-machine").join("fixtures");
    let mut out = Vec::new();
    for path in files_under(&dir)? {
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, fs::read(&path)?));
        }
    }
    Ok(out)
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarise_reads_runs_from_final_stats() {
        let output = "#1048576\tpulse  cov: 1 ft: 2 corp: 3/4b exec/s: 5 rss: 6Mb\n\
                      #2000000\tDONE   cov: 1 ft: 2 corp: 3/4b lim: 4 exec/s: 3333 rss: 60Mb\n\
                      Done 2000000 runs in 601 second(s)\n\
                      stat::number_of_executed_units: 2000001\n";
        assert_eq!(
            summarise(output),
            RunSummary {
                runs: Some(2_000_001),
                artifact: None
            }
        );
    }

    #[test]
    fn summarise_falls_back_to_done_line_and_finds_the_crash_input() {
        let output = "Done 42 runs in 1 second(s)\n\
                      ==1== ERROR: libFuzzer: deadly signal\n\
                      artifact_prefix='fuzz/artifacts/x/'; Test unit written to fuzz/artifacts/x/crash-abc\n";
        assert_eq!(
            summarise(output),
            RunSummary {
                runs: Some(42),
                artifact: Some("fuzz/artifacts/x/crash-abc".into())
            }
        );
    }

    #[test]
    fn parse_args_rejects_unknown_target_and_bad_seconds() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(parse_args(&args(&["--target", "nope"])).is_err());
        assert!(parse_args(&args(&["--seconds", "0"])).is_err());
        let o = parse_args(&args(&["--target", "event_plan", "--seconds", "5"])).unwrap();
        assert_eq!((o.targets, o.seconds), (vec!["event_plan".to_owned()], 5));
        assert_eq!(parse_args(&[]).unwrap().targets.len(), TARGETS.len());
    }
}
