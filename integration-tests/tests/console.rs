//! The web console (`pipeline console`) in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against a deployed stack on the emulator. Checks what a user
//! sees: the statuses in the list, the graph's state colours, a thumbnail that loads, the
//! quarantine reason, and an upload through the page that runs to the end.
//! Saves a screenshot to `target/ci-artifacts/console.png`.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use integration_tests::{announce, photo, TestPipeline};
use pipeline_core::report::ObjectStatus;
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(120);

/// The CSS fill of each status (`cli/src/console/assets/style.css`), as computed.
const SUCCEEDED_FILL: &str = "rgb(46, 157, 79)";
const FAILED_FILL: &str = "rgb(214, 69, 69)";
const NOT_RUN_FILL: &str = "rgb(208, 212, 218)";

/// chromedriver as a child process in its own process group; dropping it kills the group
/// (chromedriver and the browsers it started).
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start(log: &Path) -> Result<Self> {
        let binary = std::env::var_os("CHROMEDRIVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(CHROMEDRIVER));
        if !binary.exists() || !Path::new(CHROMIUM).exists() {
            bail!(
                "the console's browser test needs {} and {CHROMIUM}: install the Debian packages \
                 `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`; \
                 .ci/run does). This test never skips.",
                binary.display()
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log_file = std::fs::File::create(log)?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&binary)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?
        };
        let driver = ChromeDriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "chromedriver did not listen on port {port} within 20 s; its log ({}):\n{}",
                    log.display(),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(driver)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &ChromeDriver) -> Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1100"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .context("opening a WebDriver session in headless Chromium")
}

/// Runs `script` until it returns something other than `null`/`false`, or fails after `WAIT`
/// with `what` and the last value.
async fn wait_for(c: &Client, what: &str, script: &str) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = c.execute(script, vec![]).await?;
        if !(value.is_null() || value == Value::Bool(false)) {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `key -> status` of every row of the list.
async fn list_rows(c: &Client) -> Result<BTreeMap<String, String>> {
    let rows = c
        .execute(
            "return [...document.querySelectorAll('#executions tbody tr')]
                 .map(tr => [tr.dataset.key, tr.dataset.status]);",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value::<Vec<(String, String)>>(rows)?
        .into_iter()
        .collect())
}

/// Opens `key`'s execution by clicking its row in the list, waits until its graph is drawn,
/// and returns `state -> (data-status, computed fill)`.
async fn open_execution(
    c: &Client,
    base: &str,
    key: &str,
) -> Result<BTreeMap<String, (String, String)>> {
    c.goto(&format!("{base}/#/")).await?;
    let selector = format!("#executions tbody tr[data-key=\"{key}\"]");
    wait_for(
        c,
        &format!("the row of {key}"),
        &format!("return document.querySelector('{selector}') !== null;"),
    )
    .await?;
    // The list refreshes every 2 s and may replace the row between finding and clicking it.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let clicked = match c.find(Locator::Css(&selector)).await {
            Ok(row) => row.click().await,
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => break,
            Err(e) if attempts < 5 && e.to_string().contains("stale") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let title_is_key = format!(
        "return !document.querySelector('#detail-view').hidden
             && document.querySelector('#detail-title').textContent === {}
             && document.querySelectorAll('#graph g.state').length > 0;",
        serde_json::to_string(key)?
    );
    wait_for(c, &format!("the execution of {key}"), &title_is_key).await?;
    let states = c
        .execute(
            "return [...document.querySelectorAll('#graph g.state')].map(g =>
                 [g.dataset.state, [g.dataset.status, getComputedStyle(g.querySelector('rect')).fill]]);",
            vec![],
        )
        .await?;
    Ok(
        serde_json::from_value::<Vec<(String, (String, String))>>(states)?
            .into_iter()
            .collect(),
    )
}

/// `assert_eq!` that returns an error instead of panicking, so the page's screenshot is
/// still taken when a check in the browser fails.
macro_rules! same {
    ($got:expr, $expected:expr $(,)?) => {
        same!($got, $expected, "{}", stringify!($got))
    };
    ($got:expr, $expected:expr, $($what:tt)+) => {{
        let (got, expected) = (&$got, &$expected);
        ensure!(got == expected, "{}: got {got:?}, expected {expected:?}", format!($($what)+));
    }};
}

fn fill_of(status: &str) -> &'static str {
    match status {
        "succeeded" => SUCCEEDED_FILL,
        "failed" => FAILED_FILL,
        _ => NOT_RUN_FILL,
    }
}

/// Asserts each listed state's status and that its box is drawn in that status's colour.
fn check_states(
    key: &str,
    got: &BTreeMap<String, (String, String)>,
    expected: &[(&str, &str)],
) -> Result<()> {
    for (state, status) in expected {
        let (shown, fill) = got
            .get(*state)
            .ok_or_else(|| anyhow!("{key}: the graph has no state {state}: {got:?}"))?;
        if shown != status || fill != fill_of(status) {
            bail!(
                "{key}: state {state} is shown {shown} (fill {fill}), expected {status} (fill {})",
                fill_of(status)
            );
        }
    }
    Ok(())
}

async fn text_of(c: &Client, css: &str) -> Result<String> {
    Ok(c.find(Locator::Css(css)).await?.text().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_statuses_graph_thumbnails_and_runs_an_upload_in_a_browser() -> Result<()> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().unwrap_or(manifest_dir);
    let artifacts = root.join("target/ci-artifacts");
    std::fs::create_dir_all(&artifacts)?;
    // Fail early and loudly when the browser is missing, before starting an emulator.
    let driver = ChromeDriver::start(&artifacts.join("chromedriver.log"))?;

    let p = TestPipeline::start("console").await?;
    let (_, photo_bytes) = photo("the-mouse.jpg")?;
    p.upload("photos/the-mouse.jpg", photo_bytes.clone())
        .await?;
    p.upload(
        "bad/notes.jpg",
        b"these are my notes, not a photo\n".to_vec(),
    )
    .await?;
    p.upload(
        "bad/truncated.jpg",
        photo_bytes[..photo_bytes.len() / 2].to_vec(),
    )
    .await?;
    let runs = p.settle(3).await?;
    let statuses: BTreeMap<&str, &str> = runs
        .iter()
        .map(|r| (r.key.as_str(), r.status.label()))
        .collect();
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("bad/notes.jpg", "quarantined"),
            ("bad/truncated.jpg", "quarantined"),
            ("photos/the-mouse.jpg", "processed"),
        ]),
        "the pipeline itself (before looking at the console)"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let clients = p.local.clients.clone();
    let stack = p.local.stack.clone();
    let server =
        tokio::spawn(async move { pipeline_cli::console::serve(listener, &clients, stack).await });
    eprintln!(
        "console test: console at {base}/, chromedriver at {}",
        driver.url()
    );

    let c = browser(&driver).await?;
    let checked = check_in_browser(&c, &base, &p, root).await;
    // A screenshot of wherever the page is, passed or failed.
    let shot = artifacts.join("console.png");
    match c.screenshot().await {
        Ok(png) => {
            std::fs::write(&shot, png)?;
            announce(&format!("console test: screenshot {}", shot.display()));
        }
        Err(e) => announce(&format!("console test: no screenshot: {e}")),
    }
    let _ = c.close().await;
    server.abort();
    checked
}

async fn check_in_browser(c: &Client, base: &str, p: &TestPipeline, root: &Path) -> Result<()> {
    c.goto(&format!("{base}/")).await?;

    // The list: every object with the status a user must see (a quarantine is not a success).
    wait_for(
        c,
        "three rows in the list",
        "return document.querySelectorAll('#executions tbody tr').length === 3;",
    )
    .await?;
    let rows = list_rows(c).await?;
    same!(
        rows,
        BTreeMap::from([
            ("bad/notes.jpg".to_string(), "quarantined".to_string()),
            ("bad/truncated.jpg".to_string(), "quarantined".to_string()),
            ("photos/the-mouse.jpg".to_string(), "processed".to_string()),
        ])
    );
    let shown = text_of(c, "#executions tbody").await?;
    ensure!(!shown.contains("succeeded"), "list shows: {shown}");
    same!(text_of(c, "#count-processed").await?, "1");
    same!(text_of(c, "#count-quarantined").await?, "2");
    same!(text_of(c, "#count-failed").await?, "0");

    // The status filter.
    c.execute(
        "const s = document.querySelector('#status-filter'); s.value = 'quarantined';
         s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await?;
    wait_for(
        c,
        "only quarantined rows",
        "const rows = [...document.querySelectorAll('#executions tbody tr')];
         return rows.length === 2 && rows.every(r => r.dataset.status === 'quarantined');",
    )
    .await?;
    c.execute(
        "const s = document.querySelector('#status-filter'); s.value = 'all';
         s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await?;

    // A processed object: the happy path green, the quarantine path grey, thumbnails load.
    let states = open_execution(c, base, "photos/the-mouse.jpg").await?;
    check_states(
        "photos/the-mouse.jpg",
        &states,
        &[
            ("Inspect", "succeeded"),
            ("IsSupported", "succeeded"),
            ("Transform", "succeeded"),
            ("Load", "succeeded"),
            ("Unsupported", "not-run"),
            ("Quarantine", "not-run"),
            ("QuarantineFailed", "not-run"),
        ],
    )?;
    let thumbs = wait_for(
        c,
        "two thumbnails loaded",
        "const imgs = [...document.querySelectorAll('#thumbnails img.thumbnail')];
         return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0)
             && imgs.map(i => [i.alt, i.naturalWidth, i.naturalHeight]);",
    )
    .await?;
    eprintln!("console test: thumbnails {thumbs}");
    ensure!(
        text_of(c, "#quarantine").await?.is_empty()
            || !c
                .find(Locator::Css("#quarantine"))
                .await?
                .is_displayed()
                .await?,
        "no quarantine reason on a processed object"
    );

    // Unsupported content: the Unsupported branch, then Quarantine; the reason is shown.
    let states = open_execution(c, base, "bad/notes.jpg").await?;
    check_states(
        "bad/notes.jpg",
        &states,
        &[
            ("Inspect", "succeeded"),
            ("IsSupported", "succeeded"),
            ("Unsupported", "succeeded"),
            ("Quarantine", "succeeded"),
            ("Transform", "not-run"),
            ("Load", "not-run"),
            ("QuarantineFailed", "not-run"),
        ],
    )?;
    same!(text_of(c, "#quarantine-error").await?, "UnsupportedType");
    let reason = text_of(c, "#quarantine-reason").await?;
    ensure!(!reason.trim().is_empty(), "a quarantine reason is shown");
    let report = p.quarantine_report("bad/notes.jpg").await?;
    same!(reason, report.cause, "the reason is the report's cause");

    // A truncated JPEG: the step that rejected it is red, Quarantine green, Load never ran.
    let states = open_execution(c, base, "bad/truncated.jpg").await?;
    check_states(
        "bad/truncated.jpg",
        &states,
        &[
            ("Quarantine", "succeeded"),
            ("Load", "not-run"),
            ("Unsupported", "not-run"),
            ("QuarantineFailed", "not-run"),
        ],
    )?;
    let red: Vec<&String> = states
        .iter()
        .filter(|(_, (status, fill))| status == "failed" && fill == FAILED_FILL)
        .map(|(name, _)| name)
        .collect();
    ensure!(
        red == ["Inspect"] || red == ["Transform"],
        "exactly the rejecting step is red: {states:?}"
    );
    same!(text_of(c, "#quarantine-error").await?, "InvalidImage");

    // Upload through the page (the file input behind the drop zone); it appears and finishes.
    let upload_dir = root.join("target/ci-artifacts/upload");
    std::fs::create_dir_all(&upload_dir)?;
    let file = upload_dir.join("dropped.jpg");
    std::fs::write(&file, photo("firstgeneration.jpg")?.1)?;
    c.goto(&format!("{base}/#/")).await?;
    c.find(Locator::Css("#file-input"))
        .await?
        .send_keys(&file.canonicalize()?.to_string_lossy())
        .await?;
    wait_for(
        c,
        "the uploaded file to be processed in the list",
        "const tr = document.querySelector('#executions tbody tr[data-key=\"dropped.jpg\"]');
         return tr !== null && tr.dataset.status === 'processed';",
    )
    .await?;
    ensure!(text_of(c, "#upload-status")
        .await?
        .contains("uploaded 1 file"));
    let uploaded = p.runs_now().await?;
    let dropped = uploaded
        .iter()
        .find(|r| r.key == "dropped.jpg")
        .ok_or_else(|| anyhow!("no execution for the page's upload"))?;
    same!(dropped.status, ObjectStatus::Processed);
    let states = open_execution(c, base, "dropped.jpg").await?;
    check_states(
        "dropped.jpg",
        &states,
        &[("Transform", "succeeded"), ("Quarantine", "not-run")],
    )?;
    wait_for(
        c,
        "the upload's thumbnails",
        "const imgs = [...document.querySelectorAll('#thumbnails img.thumbnail')];
         return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);",
    )
    .await?;
    Ok(())
}
