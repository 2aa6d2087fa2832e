//! The sandbox Port: the API as `reference/port-api.md` describes it, pitfalls included —
//! tokens from client credentials, run PATCH with only the documented fields (others,
//! and `IN_PROGRESS`, are a 422), run logs (a second `terminationStatus`, or anything
//! after a run has ended, is refused), entity upserts tied to a run (refused once it has
//! ended), bodies above 1 MiB refused with 413, and 429 (with `x-ratelimit-reset`) or any
//! status on demand. It records every request and every run's state and log.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Port refuses bodies above 1 MiB.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const TOKEN_LIFETIME_SECS: u64 = 3 * 3600;
/// The fields a run PATCH may carry.
const RUN_FIELDS: [&str; 6] = [
    "status",
    "statusLabel",
    "link",
    "summary",
    "externalRunId",
    "message",
];

/// A run as the sandbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRun {
    pub run_id: String,
    pub action: String,
    /// `IN_PROGRESS`, `SUCCESS` or `FAILURE`.
    pub status: String,
    pub status_label: Option<String>,
    pub link: Vec<String>,
    pub external_run_id: Option<String>,
    pub summary: Option<String>,
    /// Log messages in the order they were posted, with when they arrived.
    pub logs: Vec<(String, Instant)>,
    /// Entities upserted tied to the run: (blueprint, entity).
    pub entities: Vec<(String, Value)>,
}

impl SandboxRun {
    /// The run's log as one text (messages joined by newlines).
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A request the sandbox received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPortRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub at: Instant,
}

struct Shared {
    client_id: String,
    client_secret: String,
    state: Mutex<PortState>,
}

/// How a 429's `x-ratelimit-reset` is written: Port's docs have said both
/// (`reference/port-api.md` §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RateLimitReset {
    /// Seconds to wait (the published page).
    #[default]
    Delay,
    /// The UTC epoch second the window resets (the docs source, rate-limits.mdx).
    EpochTime,
}

#[derive(Default)]
struct PortState {
    /// A run the sandbox did not create appears on its first PATCH or log post (`make
    /// up`, where a user injects real messages); off, it is a 404 as in Port.
    adopt_unknown_runs: bool,
    ratelimit_reset: RateLimitReset,
    tokens: Vec<String>,
    runs: BTreeMap<String, SandboxRun>,
    /// The next N API calls are answered with this status.
    failing: Option<(u16, u32)>,
    requests: Vec<RecordedPortRequest>,
    /// The next accepted log post is recorded at once and answered this much later.
    slow_log_answer: Option<Duration>,
}

/// A running sandbox Port; stops when dropped.
pub struct SandboxPort {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SandboxPort {
    /// Starts on `port` of 127.0.0.1 (0: a free one), accepting these client credentials.
    pub async fn start(
        port: u16,
        client_id: &str,
        client_secret: &str,
    ) -> anyhow::Result<SandboxPort> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            state: Mutex::new(PortState::default()),
        });
        let app = Router::new()
            .route("/v1/auth/access_token", post(access_token))
            .route("/v1/actions/runs/{run}", patch(update_run))
            .route("/v1/actions/runs/{run}/logs", post(add_log))
            .route("/v1/blueprints/{blueprint}/entities", post(upsert_entity))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"ok": false, "error": "not_found"})),
                )
            })
            // Read more than Port takes, to answer 413 like it does.
            .layer(axum::extract::DefaultBodyLimit::max(4 * MAX_BODY_BYTES))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(crate::http_server::accept_connections(
            listener,
            app,
            std::future::pending::<()>(),
            "sandbox Port",
        ));
        Ok(SandboxPort { addr, shared, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A run waiting for its backend, as Port creates it when a user clicks the action.
    pub fn create_run(&self, run_id: &str, action: &str) {
        self.lock()
            .runs
            .insert(run_id.to_owned(), new_run(run_id, action));
    }

    /// A user clicks `action` in organisation `org`: the run is created and the message
    /// Port writes to `{org}.runs` comes back.
    pub fn click(&self, org: &str, run_id: &str, action: &str, inputs: Value) -> Value {
        self.create_run(run_id, action);
        run_envelope(org, run_id, action, inputs)
    }

    pub fn run(&self, run_id: &str) -> Option<SandboxRun> {
        self.lock().runs.get(run_id).cloned()
    }

    /// A user stops the run in Port's UI: it ends FAILURE, and what the backend posts
    /// afterwards is refused (422).
    pub fn stop_run(&self, run_id: &str) {
        if let Some(run) = self.lock().runs.get_mut(run_id) {
            run.status = "FAILURE".into();
            run.status_label = Some("Stopped by user".into());
        }
    }

    /// Port no longer knows the run (deleted): what the backend posts is a 404.
    pub fn forget_run(&self, run_id: &str) {
        self.lock().runs.remove(run_id);
    }

    /// Lets runs the sandbox did not create appear on their first PATCH or log post.
    pub fn adopt_unknown_runs(&self, adopt: bool) {
        self.lock().adopt_unknown_runs = adopt;
    }

    /// How 429s say when to come back.
    pub fn set_ratelimit_reset(&self, form: RateLimitReset) {
        self.lock().ratelimit_reset = form;
    }

    /// Every run, as JSON (`GET /_local/port/runs`).
    pub fn runs_json(&self) -> Value {
        let state = self.lock();
        Value::Array(
            state
                .runs
                .values()
                .map(|run| {
                    json!({
                        "run_id": run.run_id,
                        "action": run.action,
                        "status": run.status,
                        "status_label": run.status_label,
                        "link": run.link,
                        "external_run_id": run.external_run_id,
                        "summary": run.summary,
                        "logs": run.logs.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
                        "entities": run.entities.iter().map(|(b, e)| json!({"blueprint": b, "entity": e})).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }

    /// Answers the next `count` API calls (not token requests) with `status`; a 429
    /// carries `x-ratelimit-reset` of one second, in the form set by
    /// [`set_ratelimit_reset`](Self::set_ratelimit_reset).
    pub fn fail_next(&self, status: u16, count: u32) {
        self.lock().failing = (count > 0).then_some((status, count));
    }

    /// Records the next accepted log post at once but answers it `delay` later: a
    /// caller that dies meanwhile has posted without knowing it (a crash mid-post).
    pub fn answer_next_log_late(&self, delay: Duration) {
        self.lock().slow_log_answer = Some(delay);
    }

    /// Whether the late answer asked for is still to come: once `false`, a post has been
    /// recorded and its answer is being held back.
    pub fn late_log_answer_pending(&self) -> bool {
        self.lock().slow_log_answer.is_some()
    }

    pub fn requests(&self) -> Vec<RecordedPortRequest> {
        self.lock().requests.clone()
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens.len()
    }

    fn lock(&self) -> MutexGuard<'_, PortState> {
        lock(&self.shared)
    }
}

impl Drop for SandboxPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The legacy agent envelope Port writes to `{org}.runs` for a triggered run
/// (`reference/port-api.md` §5a).
pub fn run_envelope(org: &str, run_id: &str, action: &str, inputs: Value) -> Value {
    json!({
        "action": action,
        "resourceType": "run",
        "status": "TRIGGERED",
        "trigger": {
            "by": {"orgId": org, "userId": "auth0|ana", "user": {"email": "ana@example.com"}},
            "origin": "UI",
            "at": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        },
        "context": {"entity": null, "blueprint": "service", "runId": run_id},
        "payload": {
            "entity": null,
            "action": {"invocationMethod": {"type": "KAFKA"}, "trigger": "CREATE"},
            "properties": inputs,
            "censoredProperties": [],
        },
    })
}

fn new_run(run_id: &str, action: &str) -> SandboxRun {
    SandboxRun {
        run_id: run_id.to_owned(),
        action: action.to_owned(),
        status: "IN_PROGRESS".into(),
        status_label: None,
        link: Vec::new(),
        external_run_id: None,
        summary: None,
        logs: Vec::new(),
        entities: Vec::new(),
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, PortState> {
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"ok": false, "error": kind, "message": message})),
    )
        .into_response()
}

async fn access_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = lock(&shared);
    let ok = request["clientId"] == shared.client_id.as_str()
        && request["clientSecret"] == shared.client_secret.as_str();
    let status = if ok { 200 } else { 401 };
    state.requests.push(RecordedPortRequest {
        method: "POST".into(),
        path: "/v1/auth/access_token".into(),
        status,
        at: Instant::now(),
    });
    if !ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid client credentials",
        );
    }
    let token = format!("sandbox-token-{}", state.tokens.len() + 1);
    state.tokens.push(token.clone());
    Json(json!({"ok": true, "accessToken": token, "expiresIn": TOKEN_LIFETIME_SECS, "tokenType": "Bearer"})).into_response()
}

/// Checks the token, the body size and the injected failures, and records the request:
/// the answer when refused, else where the request is recorded.
fn refuse(
    shared: &Shared,
    method: Method,
    path: String,
    headers: &HeaderMap,
    body_len: usize,
) -> Result<usize, Box<Response>> {
    let mut state = lock(shared);
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| state.tokens.iter().any(|t| t == token));
    let entry = |status: u16| RecordedPortRequest {
        method: method.to_string(),
        path: path.clone(),
        status,
        at: Instant::now(),
    };
    if !authorized {
        state.requests.push(entry(401));
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid token",
        )));
    }
    if body_len > MAX_BODY_BYTES {
        state.requests.push(entry(413));
        return Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request body is too large (limit is 1MiB)",
        )));
    }
    if let Some((status, left)) = state.failing {
        state.failing = (left > 1).then_some((status, left - 1));
        state.requests.push(entry(status));
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error(code, "sandbox", "failure on demand");
        if status == 429 {
            let reset = match state.ratelimit_reset {
                RateLimitReset::Delay => 1,
                RateLimitReset::EpochTime => {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                        + 1
                }
            };
            response
                .headers_mut()
                .insert("x-ratelimit-reset", reset.into());
        }
        return Err(Box::new(response));
    }
    state.requests.push(entry(0));
    Ok(state.requests.len() - 1)
}

/// Refused (bad token, too big, failure on demand) or answered by `handler`; recorded
/// either way.
fn serve(
    shared: &Shared,
    method: Method,
    path: String,
    headers: &HeaderMap,
    body_len: usize,
    handler: impl FnOnce() -> Response,
) -> Response {
    match refuse(shared, method, path, headers, body_len) {
        Err(refused) => *refused,
        Ok(recorded) => {
            let response = handler();
            // Recorded as 0 until the handler knows the status.
            if let Some(request) = lock(shared).requests.get_mut(recorded) {
                request.status = response.status().as_u16();
            }
            response
        }
    }
}

/// The run, while it is in progress; 404 when unknown, 422 saying `ended` once over.
fn open_run<'a>(
    state: &'a mut PortState,
    run_id: &str,
    ended: &str,
) -> Result<&'a mut SandboxRun, Box<Response>> {
    if state.adopt_unknown_runs && !state.runs.contains_key(run_id) {
        state.runs.insert(run_id.to_owned(), new_run(run_id, ""));
    }
    let Some(run) = state.runs.get_mut(run_id) else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("run {run_id} was not found"),
        )));
    };
    if run.status != "IN_PROGRESS" {
        return Err(Box::new(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "run_terminated",
            ended,
        )));
    }
    Ok(run)
}

async fn update_run(
    State(shared): State<Arc<Shared>>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        &shared,
        Method::PATCH,
        format!("/v1/actions/runs/{run_id}"),
        &headers,
        body.len(),
        || {
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    "the body must be a JSON object",
                );
            };
            if let Some(unknown) = fields.keys().find(|k| !RUN_FIELDS.contains(&k.as_str())) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    &format!("body/{unknown} is not allowed (additionalProperties: false)"),
                );
            }
            let status = match fields.get("status") {
                None => None,
                Some(Value::String(s)) if s == "SUCCESS" || s == "FAILURE" => Some(s.clone()),
                Some(other) => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request",
                        &format!("status {other} must be SUCCESS or FAILURE"),
                    )
                }
            };
            let link = match fields.get("link") {
                None => None,
                Some(Value::String(s)) => Some(vec![s.clone()]),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect(),
                ),
                Some(_) => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request",
                        "link must be a string or a list of strings",
                    )
                }
            };
            let mut state = lock(&shared);
            let run = match open_run(
                &mut state,
                &run_id,
                "the run has ended and cannot be changed",
            ) {
                Ok(run) => run,
                Err(refused) => return *refused,
            };
            if let Some(status) = status {
                run.status = status;
            }
            if let Some(link) = link {
                run.link = link;
            }
            let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
            run.status_label = text("statusLabel").or(run.status_label.take());
            run.summary = text("summary").or(run.summary.take());
            run.external_run_id = text("externalRunId").or(run.external_run_id.take());
            (
                StatusCode::OK,
                Json(json!({"ok": true, "run": {"id": run_id, "status": run.status}})),
            )
                .into_response()
        },
    )
}

async fn add_log(
    State(shared): State<Arc<Shared>>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = serve(
        &shared,
        Method::POST,
        format!("/v1/actions/runs/{run_id}/logs"),
        &headers,
        body.len(),
        || {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(message) = request["message"].as_str() else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    "body/message is required",
                );
            };
            let termination = match request.get("terminationStatus") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s == "SUCCESS" || s == "FAILURE" => Some(s.clone()),
                Some(other) => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request",
                        &format!("terminationStatus {other} must be SUCCESS or FAILURE"),
                    )
                }
            };
            let mut state = lock(&shared);
            let run = match open_run(
                &mut state,
                &run_id,
                "the run has ended: terminationStatus is accepted once",
            ) {
                Ok(run) => run,
                Err(refused) => return *refused,
            };
            run.logs.push((message.to_owned(), Instant::now()));
            if let Some(status) = termination {
                run.status = status;
                if let Some(label) = request["statusLabel"].as_str() {
                    run.status_label = Some(label.to_owned());
                }
            }
            let id = run.logs.len();
            (StatusCode::CREATED, Json(json!({"ok": true, "runLog": {"id": id, "runId": run_id, "message": message, "createdBy": "sandbox"}}))).into_response()
        },
    );
    if response.status().is_success() {
        let late = lock(&shared).slow_log_answer.take();
        if let Some(delay) = late {
            tokio::time::sleep(delay).await;
        }
    }
    response
}

async fn upsert_entity(
    State(shared): State<Arc<Shared>>,
    Path(blueprint): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        &shared,
        Method::POST,
        format!("/v1/blueprints/{blueprint}/entities"),
        &headers,
        body.len(),
        || {
            let Ok(entity @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    "the body must be an entity object",
                );
            };
            let valid_identifier = entity["identifier"].as_str().is_some_and(|id| {
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "@_.:/=-".contains(c))
            });
            if !valid_identifier {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    "identifier must match ^[A-Za-z0-9@_.:\\/=-]+$",
                );
            }
            let mut state = lock(&shared);
            if let Some(run_id) = query.get("run_id") {
                let run = match open_run(
                    &mut state,
                    run_id,
                    "an entity can be tied to a run only while it is in progress",
                ) {
                    Ok(run) => run,
                    Err(refused) => return *refused,
                };
                run.entities.push((blueprint.clone(), entity.clone()));
            }
            (
                StatusCode::CREATED,
                Json(json!({"ok": true, "entity": entity})),
            )
                .into_response()
        },
    )
}
