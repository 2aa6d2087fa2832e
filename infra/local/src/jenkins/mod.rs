//! The sandbox Jenkins: an HTTP server that answers like Jenkins with the GitHub plugin
//! (`POST /github-webhook/`, pitfalls included), accepts any other POST like a generic
//! webhook endpoint, records every request, and can be switched at runtime into the
//! outages spigot has to survive.
//!
//! What the GitHub plugin endpoint does, and where it comes from, is in
//! `reference/github-webhooks.md` §3 (jenkinsci/github-plugin `RequirePostWithGHHookPayload`,
//! `GHEventPayload`, `GHEventHeader`): non-POST is 405; the Content-Type must be exactly
//! `application/json` or `application/x-www-form-urlencoded` (JSON in the `payload`
//! field), anything else reads as no payload and is a 400; `X-GitHub-Event` must name a
//! known event; with secrets configured, one of them must match `X-Hub-Signature-256`
//! (SHA-256) or the legacy `X-Hub-Signature` (SHA-1).
//!
//! It also runs jobs ([`builds`]): triggers, queue items, builds with their console log.

pub mod builds;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use builds::Builds;
pub use builds::{BuildScript, BuildSummary, SandboxJob};

/// Event names the plugin accepts in `X-GitHub-Event`: the `GHEvent` enum of the
/// github-api library it parses the header into (upper-cased). Anything else, e.g.
/// `merge_group`, is a 400 "Hook should contain event type".
const KNOWN_EVENTS: &[&str] = &[
    "BRANCH_PROTECTION_RULE",
    "CHECK_RUN",
    "CHECK_SUITE",
    "CODE_SCANNING_ALERT",
    "COMMIT_COMMENT",
    "CONTENT_REFERENCE",
    "CREATE",
    "DELETE",
    "DEPLOY_KEY",
    "DEPLOYMENT",
    "DEPLOYMENT_STATUS",
    "DISCUSSION",
    "DISCUSSION_COMMENT",
    "DOWNLOAD",
    "FOLLOW",
    "FORK",
    "FORK_APPLY",
    "GITHUB_APP_AUTHORIZATION",
    "GIST",
    "GOLLUM",
    "INSTALLATION",
    "INSTALLATION_REPOSITORIES",
    "INTEGRATION_INSTALLATION_REPOSITORIES",
    "ISSUE_COMMENT",
    "ISSUES",
    "LABEL",
    "MARKETPLACE_PURCHASE",
    "MEMBER",
    "MEMBERSHIP",
    "MERGE_QUEUE_ENTRY",
    "META",
    "MILESTONE",
    "ORGANIZATION",
    "ORG_BLOCK",
    "PACKAGE",
    "PAGE_BUILD",
    "PROJECT_CARD",
    "PROJECT_COLUMN",
    "PROJECT",
    "PING",
    "PUBLIC",
    "PULL_REQUEST",
    "PULL_REQUEST_REVIEW",
    "PULL_REQUEST_REVIEW_COMMENT",
    "PULL_REQUEST_REVIEW_THREAD",
    "PUSH",
    "REGISTRY_PACKAGE",
    "RELEASE",
    "REPOSITORY_DISPATCH",
    "REPOSITORY",
    "REPOSITORY_IMPORT",
    "REPOSITORY_VULNERABILITY_ALERT",
    "SCHEDULE",
    "SECURITY_ADVISORY",
    "STAR",
    "STATUS",
    "TEAM",
    "TEAM_ADD",
    "WATCH",
    "WORKFLOW_JOB",
    "WORKFLOW_DISPATCH",
    "WORKFLOW_RUN",
    "UNKNOWN",
    "ALL",
];

/// The two Content-Type values the plugin reads a payload from, compared as exact
/// strings: `application/json; charset=UTF-8` is neither.
const JSON_CONTENT_TYPE: &str = "application/json";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Largest body read: above GitHub's 25 MB payload cap, so every real delivery fits.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Jenkins puts its version in an `X-Jenkins` header on every answer; health checks may
/// look for it.
const JENKINS_VERSION: &str = "2.516.3";
/// How long [`SandboxJenkins::set_mode`] keeps retrying to bind the port again, in case
/// the OS has not released it yet.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// How the sandbox is set up.
#[derive(Clone, Debug, Default)]
pub struct SandboxJenkinsConfig {
    /// GitHub webhook secrets; when any is set, `/github-webhook/` requires a signature
    /// that matches one of them (several during a rotation).
    pub webhook_secrets: Vec<String>,
    /// Username and API token: when set, every request must carry them as Basic auth,
    /// or it is answered 401.
    pub credentials: Option<(String, String)>,
}

/// How the sandbox answers, switchable at runtime with [`SandboxJenkins::set_mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JenkinsMode {
    /// Normal answers.
    Up,
    /// Every request, `/login` included, is answered with this status, like a Jenkins
    /// that is restarting (503) or a proxy in front of a missing Jenkins (404, 502).
    Status(u16),
    /// Normal answers, each after this delay.
    Slow(Duration),
    /// Requests are read and never answered nor acted on: a Jenkins that hangs (a long
    /// garbage-collection pause, a deadlock). The caller can only time out.
    Hang,
    /// Not listening: connections are refused, open ones are closed.
    Unreachable,
}

/// One request as the sandbox received and answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    /// Names lower-cased, one entry per value; values that are not UTF-8 are converted
    /// lossily.
    pub headers: Vec<(String, String)>,
    /// The body bytes exactly as received.
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
    /// Whether a signature header matched one of the webhook secrets; `None` when no
    /// secret is configured or the request is not a POST.
    pub signature_valid: Option<bool>,
}

impl RecordedRequest {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A running sandbox Jenkins on 127.0.0.1; stops when dropped.
pub struct SandboxJenkins {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop while listening; `None` while [`JenkinsMode::Unreachable`].
    listening: tokio::sync::Mutex<Option<Listening>>,
}

/// A running accept loop and the means to stop it.
struct Listening {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl SandboxJenkins {
    /// Starts the sandbox on a free port of 127.0.0.1.
    pub async fn start(config: SandboxJenkinsConfig) -> anyhow::Result<SandboxJenkins> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts the sandbox on `addr` (port 0: any free port), e.g. for a standalone
    /// sandbox on a fixed port.
    pub async fn start_on(
        addr: SocketAddr,
        config: SandboxJenkinsConfig,
    ) -> anyhow::Result<SandboxJenkins> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the sandbox Jenkins to {addr}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            root_url: format!("http://{addr}"),
            builds: Mutex::new(Builds::default()),
            state: Mutex::new(SharedState {
                mode: JenkinsMode::Up,
                injected_failure: None,
                next_arrival: 0,
                log: Vec::new(),
            }),
        });
        let listening = Listening::start(listener, Arc::clone(&shared));
        tracing::info!(%addr, "sandbox Jenkins listening");
        Ok(SandboxJenkins {
            addr,
            shared,
            listening: tokio::sync::Mutex::new(Some(listening)),
        })
    }

    /// Base URL, without a trailing slash: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches how the sandbox answers. `Unreachable` returns once the port is closed
    /// and every open connection is gone; leaving it binds the same port again.
    pub async fn set_mode(&self, mode: JenkinsMode) -> anyhow::Result<()> {
        if let JenkinsMode::Status(code) = mode {
            valid_status(code)?;
        }
        let mut listening = self.listening.lock().await;
        let previous = std::mem::replace(&mut self.shared.lock().mode, mode);
        match (mode, listening.take()) {
            (JenkinsMode::Unreachable, Some(running)) => running.stop().await,
            (JenkinsMode::Unreachable, None) => {}
            (_, Some(running)) => *listening = Some(running),
            (_, None) => match rebind(self.addr).await {
                Ok(listener) => {
                    *listening = Some(Listening::start(listener, Arc::clone(&self.shared)));
                }
                Err(error) => {
                    self.shared.lock().mode = previous;
                    return Err(error);
                }
            },
        }
        tracing::info!(?mode, "sandbox Jenkins mode");
        Ok(())
    }

    /// Adds a job builds can be triggered of.
    pub fn add_job(&self, job: SandboxJob) {
        self.shared.lock_builds().add_job(job);
    }

    /// Cancels queue item `id` if it is still waiting; `true` when it was.
    pub fn cancel_queue_item(&self, id: u64) -> bool {
        self.shared.lock_builds().cancel(id)
    }

    /// How long a queue item answers after it left the queue (Jenkins: 5 minutes).
    pub fn set_queue_ttl(&self, ttl: Duration) {
        self.shared.lock_builds().set_queue_ttl(ttl);
    }

    /// The builds of `job` (`folder/name`), oldest first, as of now.
    pub fn builds_of(&self, job: &str) -> Vec<BuildSummary> {
        self.shared.lock_builds().builds_of(job)
    }

    /// Answers the next `count` POSTs (webhook deliveries, on any path) with `status`
    /// instead of handling them, then goes back to normal. `count` 0 cancels.
    pub fn fail_next(&self, status: u16, count: usize) -> anyhow::Result<()> {
        let status = valid_status(status)?;
        self.shared.lock().injected_failure = (count > 0).then_some(InjectedFailure {
            status,
            remaining: count,
        });
        Ok(())
    }

    /// Every request received so far, in arrival order, whatever its answer.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .log
            .iter()
            .map(|(_, request)| request.clone())
            .collect()
    }

    /// The POSTs answered with a 2xx: what Jenkins accepted.
    pub fn deliveries(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .log
            .iter()
            .map(|(_, request)| request)
            .filter(|request| {
                request.method == Method::POST.as_str() && (200..300).contains(&request.status)
            })
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.shared.lock().log.clear();
    }
}

impl Drop for SandboxJenkins {
    fn drop(&mut self) {
        if let Some(running) = self.listening.get_mut().take() {
            // Aborting drops the listener and the set of connection tasks, which aborts
            // those too.
            running.task.abort();
        }
    }
}

impl Listening {
    fn start(listener: TcpListener, shared: Arc<Shared>) -> Listening {
        let (stop, stop_requested) = oneshot::channel();
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(shared);
        let task = tokio::spawn(crate::http_server::accept_connections(
            listener,
            app,
            stop_requested,
            "sandbox Jenkins",
        ));
        Listening { stop, task }
    }

    /// Stops listening and waits until the listener and every connection are closed.
    async fn stop(self) {
        // A send error means the loop is already gone; awaiting the task covers both.
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "sandbox Jenkins accept loop ended abnormally");
        }
    }
}

/// Binds `addr` again after [`JenkinsMode::Unreachable`]. Tokio sets SO_REUSEADDR on
/// listeners, so the connections just closed (in TIME_WAIT) do not block it; the retry
/// covers the moment the OS takes to release the old socket.
async fn rebind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + REBIND_TIMEOUT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(error)
                    .with_context(|| format!("binding the sandbox Jenkins to {addr} again"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn valid_status(code: u16) -> anyhow::Result<StatusCode> {
    StatusCode::from_u16(code).with_context(|| format!("{code} is not an HTTP status code"))
}

/// State shared by the handle and the request handlers.
struct Shared {
    config: SandboxJenkinsConfig,
    /// `http://127.0.0.1:PORT`: the root of the absolute URLs Jenkins returns.
    root_url: String,
    state: Mutex<SharedState>,
    builds: Mutex<Builds>,
}

struct SharedState {
    mode: JenkinsMode,
    injected_failure: Option<InjectedFailure>,
    /// Sequence number of the next request to arrive.
    next_arrival: u64,
    /// Recorded requests with their arrival numbers, kept sorted by them (slow requests
    /// finish out of order).
    log: Vec<(u64, RecordedRequest)>,
}

struct InjectedFailure {
    status: StatusCode,
    remaining: usize,
}

/// Endpoints anonymous callers may reach on a Jenkins that requires credentials.
const UNPROTECTED_PATHS: [&str; 4] = [
    "/github-webhook/",
    "/github-webhook",
    "/generic-webhook-trigger/invoke",
    "/multibranch-webhook-trigger/invoke",
];

/// A request as read from the wire.
struct ReceivedRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SharedState> {
        // A handler that panicked while holding the lock left consistent data (every
        // update is a single assignment or push), so the poison can be ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_builds(&self) -> MutexGuard<'_, Builds> {
        self.builds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes an arrival number and the mode the request is to be answered in.
    fn arrive(&self) -> (u64, JenkinsMode) {
        let mut state = self.lock();
        let arrival = state.next_arrival;
        state.next_arrival += 1;
        (arrival, state.mode)
    }

    fn record(&self, arrival: u64, request: RecordedRequest) {
        let mut state = self.lock();
        let position = state.log.partition_point(|(earlier, _)| *earlier < arrival);
        state.log.insert(position, (arrival, request));
    }

    fn take_injected_failure(&self) -> Option<StatusCode> {
        let mut state = self.lock();
        let failure = state.injected_failure.as_mut()?;
        let status = failure.status;
        failure.remaining -= 1;
        if failure.remaining == 0 {
            state.injected_failure = None;
        }
        Some(status)
    }

    /// The answer Jenkins would give in `mode`.
    fn answer(
        &self,
        mode: JenkinsMode,
        request: &ReceivedRequest,
        signature_valid: Option<bool>,
    ) -> Response {
        if let JenkinsMode::Status(code) = mode {
            // Validated by set_mode; the fallback only keeps this path panic-free.
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (status, format!("sandbox Jenkins is answering {status}\n")).into_response();
        }
        // Up and Slow answer normally; so does Unreachable for a request that arrived
        // just before the port closed.
        let mut response = self.jenkins_answer(request, signature_valid);
        response
            .headers_mut()
            .insert("x-jenkins", HeaderValue::from_static(JENKINS_VERSION));
        response
    }

    /// What a running Jenkins answers.
    fn jenkins_answer(&self, request: &ReceivedRequest, signature_valid: Option<bool>) -> Response {
        if request.method == Method::POST {
            if let Some(status) = self.take_injected_failure() {
                return (status, "sandbox Jenkins: injected failure\n").into_response();
            }
        }
        if !self.credentials_accepted(&request.headers, request.uri.path()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, "Basic realm=\"Jenkins\"")],
                "Invalid password/token or missing credentials\n",
            )
                .into_response();
        }
        let build_api = self.lock_builds().answer(
            &self.root_url,
            &request.method,
            request.uri.path(),
            request.uri.query(),
            &request.headers,
            &request.body,
        );
        if let Some(response) = build_api {
            return response;
        }
        match request.uri.path() {
            // Stapler dispatches both spellings to the plugin's doIndex.
            "/github-webhook/" | "/github-webhook" => github_webhook(request, signature_valid),
            "/login" if matches!(request.method, Method::GET | Method::HEAD) => {
                (StatusCode::OK, "sandbox Jenkins login page\n").into_response()
            }
            // Generic webhook endpoints (generic-webhook-trigger, /project/..., build
            // triggers) accept any POST.
            _ if request.method == Method::POST => (
                StatusCode::OK,
                [(CONTENT_TYPE, "application/json")],
                r#"{"status":"ok"}"#,
            )
                .into_response(),
            _ => (StatusCode::NOT_FOUND, "Not Found\n").into_response(),
        }
    }

    /// Jenkins' rule: wrong credentials are refused on every path; none at all are
    /// anonymous, which the webhook receivers take (they are unprotected root actions:
    /// github-plugin `GitHubWebHook`, generic-webhook-trigger `GenericWebHookRequestReceiver`,
    /// multibranch-scan-webhook-trigger) and everything else refuses once credentials are
    /// configured.
    fn credentials_accepted(&self, headers: &HeaderMap, path: &str) -> bool {
        let Some((username, api_token)) = &self.config.credentials else {
            return true;
        };
        let Some(authorization) = headers.get(AUTHORIZATION) else {
            return UNPROTECTED_PATHS.contains(&path);
        };
        let Some((scheme, encoded)) = authorization
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic")
            && base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .is_ok_and(|decoded| decoded == format!("{username}:{api_token}").as_bytes())
    }

    /// Whether a signature header matches one of the secrets, for every POST once
    /// secrets are configured; only `/github-webhook/` enforces it.
    ///
    /// The HMAC is over the raw body, which is what GitHub signs. The plugin hashes the
    /// body decoded as UTF-8 (JSON) or `payload=` + the payload URL-encoded again (form);
    /// for a body GitHub produced, both are the same bytes.
    fn signature_validity(&self, request: &ReceivedRequest) -> Option<bool> {
        let secrets = &self.config.webhook_secrets;
        if secrets.is_empty() || request.method != Method::POST {
            return None;
        }
        let signature = |header: &str, prefix: &str| {
            request
                .headers
                .get(header)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix(prefix))
        };
        let sha256 = signature("x-hub-signature-256", "sha256=");
        let sha1 = signature("x-hub-signature", "sha1=");
        let body = &request.body;
        Some(secrets.iter().any(|secret| {
            let matches = |given: Option<&str>, expected: Option<String>| {
                given.is_some_and(|given| expected.is_some_and(|expected| expected == given))
            };
            matches(sha256, hmac_hex::<Hmac<Sha256>>(secret, body))
                || matches(sha1, hmac_hex::<Hmac<Sha1>>(secret, body))
        }))
    }
}

/// Reads one request, answers it in the current mode and records it.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (arrival, mode) = shared.arrive();
    let request = ReceivedRequest {
        method,
        uri,
        headers,
        body,
    };
    // In its own task, so that a request Jenkins has read is answered and recorded even
    // if the client hangs up first, as in a servlet container: a caller that times out
    // on a slow Jenkins has still delivered the hook.
    let answering = tokio::spawn(async move {
        match mode {
            JenkinsMode::Slow(delay) => tokio::time::sleep(delay).await,
            JenkinsMode::Hang => std::future::pending::<()>().await,
            _ => {}
        }
        let signature_valid = shared.signature_validity(&request);
        let response = shared.answer(mode, &request, signature_valid);
        tracing::info!(
            method = %request.method,
            path = request.uri.path(),
            status = response.status().as_u16(),
            "sandbox Jenkins answered"
        );
        shared.record(
            arrival,
            RecordedRequest {
                method: request.method.to_string(),
                path: request.uri.path().to_owned(),
                query: request.uri.query().map(str::to_owned),
                headers: request
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        (name.as_str().to_owned(), value)
                    })
                    .collect(),
                body: request.body,
                status: response.status().as_u16(),
                signature_valid,
            },
        );
        response
    });
    answering
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `POST /github-webhook/`, checked in the plugin's order.
fn github_webhook(request: &ReceivedRequest, signature_valid: Option<bool>) -> Response {
    if request.method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "Method POST required\n").into_response();
    }
    let known_event = request
        .headers
        .get("x-github-event")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|event| KNOWN_EVENTS.contains(&event.to_ascii_uppercase().as_str()));
    if !known_event {
        return (StatusCode::BAD_REQUEST, "Hook should contain event type\n").into_response();
    }
    if !has_payload(request) {
        return (StatusCode::BAD_REQUEST, "Hook should contain payload\n").into_response();
    }
    if signature_valid == Some(false) {
        return (
            StatusCode::BAD_REQUEST,
            "No valid signature found. Ensure webhook is configured with a supported \
             signature algorithm (SHA-256 recommended, SHA-1 for legacy compatibility).\n",
        )
            .into_response();
    }
    StatusCode::OK.into_response()
}

/// Whether the plugin finds a non-blank payload: the body for exactly
/// `application/json`, the `payload` field for exactly the form type, nothing otherwise.
fn has_payload(request: &ReceivedRequest) -> bool {
    let content_type = request
        .headers
        .get(CONTENT_TYPE)
        .map(|value| value.as_bytes());
    if content_type == Some(JSON_CONTENT_TYPE.as_bytes()) {
        !String::from_utf8_lossy(&request.body).trim().is_empty()
    } else if content_type == Some(FORM_CONTENT_TYPE.as_bytes()) {
        // Like the servlet's getParameter: the first `payload` field counts.
        form_urlencoded::parse(&request.body)
            .find(|(name, _)| name == "payload")
            .is_some_and(|(_, payload)| !payload.trim().is_empty())
    } else {
        false
    }
}

/// Lower-case hex HMAC of `body`, as the plugin computes it to compare with the header
/// (`None` only for a key the MAC refuses, which HMAC never does).
fn hmac_hex<M: Mac + KeyInit>(secret: &str, body: &[u8]) -> Option<String> {
    let mut mac = <M as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(body);
    Some(hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_githubs_known_answer() {
        // From GitHub's "Validating webhook deliveries".
        assert_eq!(
            hmac_hex::<Hmac<Sha256>>("It's a Secret to Everybody", b"Hello, World!").as_deref(),
            Some("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        );
    }
}
