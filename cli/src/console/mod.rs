//! `pipeline console`: a local web app over the deployed stack. Executions with their
//! object status, one execution's graph, history, input, output, thumbnails and quarantine
//! reason, and drag-and-drop upload. It only reads (list, describe, history, output bucket
//! reads), apart from uploads into the input bucket.
//!
//! The page is plain HTML, CSS and JS embedded in the binary; the JSON API is under
//! `/api/`. What is computed from the answers lives in the pure modules [`model`] and
//! [`graph`].

pub mod graph;
pub mod model;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pipeline_aws::deploy::PipelineStack;
use pipeline_aws::{Clients, Executions, ObjectLocation, ObjectStore, S3Store, StoreError};
use pipeline_core::payload::QuarantineReport;
use serde::{Deserialize, Serialize};
use serde_json::json;

use model::{Counters, ExecutionRow, StateRun};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Largest upload the page accepts (the stack's default `MaxObjectBytes` is 50 MiB).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;
/// Largest thumbnail or report the console reads from the output bucket.
const MAX_READ_BYTES: u64 = 32 << 20;

/// Rows of a state machine's executions, keeping the rows of finished executions (they
/// never change) so a refresh only describes new and running ones.
#[derive(Debug, Default)]
pub struct RowCache {
    finished: Mutex<HashMap<String, ExecutionRow>>,
}

impl RowCache {
    /// Every execution of `state_machine_arn`, classified.
    pub async fn rows(
        &self,
        executions: &Executions,
        state_machine_arn: &str,
    ) -> Result<Vec<ExecutionRow>> {
        let summaries = executions
            .list(state_machine_arn)
            .await
            .map_err(|e| anyhow!("listing executions: {e}"))?;
        let mut rows = Vec::with_capacity(summaries.len());
        for s in summaries {
            let cached = self
                .finished
                .lock()
                .map_err(|_| anyhow!("row cache poisoned"))?
                .get(&s.arn)
                .cloned();
            let row = match cached {
                Some(row) => row,
                None => {
                    let detail = executions
                        .describe(&s.arn)
                        .await
                        .map_err(|e| anyhow!("describing {}: {e}", s.name))?;
                    let row = ExecutionRow::from_detail(&detail);
                    if row.is_final() {
                        self.finished
                            .lock()
                            .map_err(|_| anyhow!("row cache poisoned"))?
                            .insert(s.arn.clone(), row.clone());
                    }
                    row
                }
            };
            rows.push(row);
        }
        Ok(rows)
    }
}

struct Console {
    executions: Executions,
    store: S3Store,
    stack: PipelineStack,
    graph: graph::Graph,
    rows: RowCache,
}

/// Serves the console on `listener` until the task is dropped or the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    clients: &Clients,
    stack: PipelineStack,
) -> Result<()> {
    let app = router(clients, stack).await?;
    axum::serve(listener, app)
        .await
        .context("serving the console")
}

/// The console's routes, over the stack's deployed state machine.
pub async fn router(clients: &Clients, stack: PipelineStack) -> Result<Router> {
    let executions = Executions::new(clients.sfn.clone());
    let definition = executions
        .definition(&stack.state_machine_arn)
        .await
        .map_err(|e| anyhow!("reading the state machine definition: {e}"))?;
    let graph = graph::layout(&definition).context("laying out the state machine")?;
    let console = Arc::new(Console {
        executions,
        store: S3Store::new(clients.s3.clone()),
        stack,
        graph,
        rows: RowCache::default(),
    });
    Ok(Router::new()
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { page("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { page("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/stack", get(stack_info))
        .route("/api/graph", get(graph_json))
        .route("/api/executions", get(list))
        .route("/api/executions/{name}", get(one))
        .route("/api/thumbnail", get(thumbnail))
        .route("/api/upload", post(upload))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(console))
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An error answered as `{"error": "..."}` with a status code.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(StatusCode::BAD_GATEWAY, format!("{e:#}"))
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn stack_info(State(c): State<Arc<Console>>) -> Json<serde_json::Value> {
    Json(json!({
        "stack": c.stack.stack_name,
        "input_bucket": c.stack.input_bucket,
        "output_bucket": c.stack.output_bucket,
        "state_machine_arn": c.stack.state_machine_arn,
    }))
}

async fn graph_json(State(c): State<Arc<Console>>) -> Json<graph::Graph> {
    Json(c.graph.clone())
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
}

#[derive(Serialize)]
struct ListAnswer {
    counters: Counters,
    executions: Vec<ExecutionRow>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn list(
    State(c): State<Arc<Console>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ListAnswer>> {
    let rows = c
        .rows
        .rows(&c.executions, &c.stack.state_machine_arn)
        .await?;
    Ok(Json(ListAnswer {
        counters: Counters::of(&rows, now_ms()),
        executions: model::filter_rows(rows, q.status.as_deref()),
    }))
}

#[derive(Serialize)]
struct HistoryRow {
    id: i64,
    kind: String,
    at_ms: i64,
    state: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize)]
struct Quarantine {
    error: String,
    cause: String,
    report_key: String,
}

#[derive(Serialize)]
struct ExecutionAnswer {
    execution: ExecutionRow,
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    states: std::collections::BTreeMap<String, StateRun>,
    history: Vec<HistoryRow>,
    thumbnails: Vec<String>,
    quarantine: Option<Quarantine>,
}

async fn one(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
) -> ApiResult<Json<ExecutionAnswer>> {
    let summaries = c
        .executions
        .list(&c.stack.state_machine_arn)
        .await
        .map_err(|e| anyhow!("listing executions: {e}"))?;
    let summary = summaries
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no execution named {name}")))?;
    let detail = c
        .executions
        .describe(&summary.arn)
        .await
        .map_err(|e| anyhow!("describing {name}: {e}"))?;
    let history = c
        .executions
        .history(&summary.arn)
        .await
        .map_err(|e| anyhow!("reading the history of {name}: {e}"))?;
    let execution = ExecutionRow::from_detail(&detail);
    let states = model::state_runs(&history, !execution.is_final());
    let quarantine = match model::quarantine_report_key(detail.output.as_deref()) {
        Some(key) => Some(quarantine_reason(&c, key).await),
        None => None,
    };
    Ok(Json(ExecutionAnswer {
        states,
        thumbnails: model::thumbnail_keys(detail.output.as_deref()),
        quarantine,
        history: history
            .into_iter()
            .map(|h| HistoryRow {
                id: h.id,
                kind: h.kind,
                at_ms: h.epoch_ms,
                state: h.state,
                detail: h.detail,
            })
            .collect(),
        execution,
        input: detail.input,
        output: detail.output,
        error: detail.error,
        cause: detail.cause,
    }))
}

/// The quarantine report's error and cause; a report that cannot be read says so.
async fn quarantine_reason(c: &Console, report_key: String) -> Quarantine {
    let read = c
        .store
        .get(
            ObjectLocation::latest(&c.stack.output_bucket, &report_key),
            MAX_READ_BYTES,
        )
        .await;
    let (error, cause) = match read {
        Ok(body) => match serde_json::from_slice::<QuarantineReport>(&body) {
            Ok(r) => (r.error, r.cause),
            Err(e) => ("UnreadableReport".into(), e.to_string()),
        },
        Err(e) => ("UnreadableReport".into(), e.to_string()),
    };
    Quarantine {
        error,
        cause,
        report_key,
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

/// A thumbnail from the output bucket; nothing outside `thumbnails/` is served.
async fn thumbnail(
    State(c): State<Arc<Console>>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Response> {
    if !q.key.starts_with("thumbnails/") {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "only keys under thumbnails/ are served".into(),
        ));
    }
    let body = c
        .store
        .get(
            ObjectLocation::latest(&c.stack.output_bucket, &q.key),
            MAX_READ_BYTES,
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            other => ApiError(StatusCode::BAD_GATEWAY, other.to_string()),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response())
}

/// Uploads the request body to the input bucket under `key`.
async fn upload(
    State(c): State<Arc<Console>>,
    Query(q): Query<KeyQuery>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    if q.key.is_empty() || q.key.len() > 1024 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a key is 1 to 1024 bytes".into(),
        ));
    }
    let bytes = body.len();
    c.store
        .put(
            &c.stack.input_bucket,
            &q.key,
            body.to_vec(),
            "application/octet-stream",
        )
        .await
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(Json(json!({
        "bucket": c.stack.input_bucket,
        "key": q.key,
        "bytes": bytes,
    })))
}
