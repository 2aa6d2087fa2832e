//! A Lambda Runtime API emulator: what the Lambda service offers a custom runtime
//! (`provided.al2023`) on `AWS_LAMBDA_RUNTIME_API`, so that the real function binaries
//! run locally as they run in Lambda.
//!
//! It serves, on a free port of 127.0.0.1:
//! - `GET  /2018-06-01/runtime/invocation/next`: long-polls for the next event; answers
//!   it with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error`;
//! - `POST /2018-06-01/runtime/init/error`.
//!
//! [`RuntimeApi::invoke`] queues an event and waits for the function's answer, like a
//! synchronous `Invoke`. [`RuntimeApi::spawn`] starts a function binary with the
//! environment Lambda gives it; [`FunctionProcess::invoke`] also notices when that
//! process exits instead of answering (a failing `main` exits without `/init/error`).
//!
//! Answers follow the status codes the Lambda Developer Guide lists for the runtime API:
//! 202 `{"status":"OK"}` when accepted; 400 `InvalidRequestID` for a request id that is
//! unknown or already answered; 413 for a response above the 6 MiB synchronous payload
//! limit, after which the invocation fails with `Function.ResponseSizeTooLarge`, as an
//! `Invoke` in Lambda does.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::aws_emulator::REGION;

/// Lambda's limit for a synchronous invocation's event and for its response.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest request body read from the function: above [`MAX_PAYLOAD_BYTES`], so that an
/// oversized response is read and reported as such rather than cut off.
const MAX_READ_BYTES: usize = 4 * MAX_PAYLOAD_BYTES;
/// The account in the invoked function's ARN (the emulator's, as in moto).
const ACCOUNT: &str = "123456789012";
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`: what template.yaml gives the functions.
const MEMORY_SIZE_MB: u32 = 256;
/// The header the runtime names its error type in.
const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";
/// The error type of an invocation whose function process ended before answering.
const EXIT_ERROR: &str = "Runtime.ExitError";
/// The error type of an invocation whose response was over [`MAX_PAYLOAD_BYTES`].
const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

/// A running Runtime API for one function; stops serving when dropped.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// The function's answer to one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    /// When the answer reached the emulator.
    pub answered_at: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `POST .../{id}/response`: the function's result, as sent.
    Response(Bytes),
    /// `POST .../{id}/error`, or a response Lambda would refuse.
    Error(FunctionError),
}

/// An error the runtime reported, for one invocation or for its init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionError {
    /// `Lambda-Runtime-Function-Error-Type`, else the body's `errorType`, else
    /// `Unhandled` (what Lambda reports when the runtime names none).
    pub error_type: String,
    /// As sent; the runtimes send `{"errorType": ..., "errorMessage": ...}`.
    pub body: Bytes,
}

#[derive(Debug)]
pub enum InvokeError {
    /// The event is above Lambda's synchronous payload limit; it was not queued.
    EventTooLarge { bytes: usize },
    /// No answer within the timeout. `picked_up`: the function had taken the event
    /// with `/next` (so it is slow or stuck in the handler, rather than in init).
    Timeout {
        request_id: String,
        timeout: Duration,
        picked_up: bool,
    },
    /// The runtime posted `/runtime/init/error` before answering.
    InitFailed(FunctionError),
    /// The function process ended before answering ([`FunctionProcess::invoke`] only).
    Exited(io::Result<ExitStatus>),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::EventTooLarge { bytes } => write!(
                f,
                "the event is {bytes} bytes, above Lambda's {MAX_PAYLOAD_BYTES}-byte limit"
            ),
            InvokeError::Timeout {
                request_id,
                timeout,
                picked_up: true,
            } => write!(
                f,
                "invocation {request_id} took the event but gave no answer within {timeout:?}"
            ),
            InvokeError::Timeout {
                request_id,
                timeout,
                picked_up: false,
            } => write!(
                f,
                "invocation {request_id}: the function did not ask for the event within {timeout:?}"
            ),
            InvokeError::InitFailed(error) => write!(
                f,
                "the function failed its init ({}): {}",
                error.error_type,
                String::from_utf8_lossy(&error.body)
            ),
            InvokeError::Exited(Ok(status)) => {
                write!(f, "the function process exited ({status}) before answering")
            }
            InvokeError::Exited(Err(error)) => {
                write!(f, "waiting for the function process failed: {error}")
            }
        }
    }
}

impl std::error::Error for InvokeError {}

impl Invocation {
    /// The response body, or the error body.
    pub fn body(&self) -> &Bytes {
        match &self.outcome {
            Outcome::Response(body) => body,
            Outcome::Error(error) => &error.body,
        }
    }

    pub fn json(&self) -> serde_json::Result<Value> {
        serde_json::from_slice(self.body())
    }

    pub fn is_error(&self) -> bool {
        matches!(self.outcome, Outcome::Error(_))
    }
}

impl RuntimeApi {
    /// Serves the Runtime API for a function named `function_name` on a free port.
    pub async fn start(function_name: &str) -> io::Result<RuntimeApi> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (queue, queued) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_name: function_name.to_owned(),
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"),
            request_id_prefix: format!("{:08x}", address.port()),
            next_request_number: AtomicU64::new(1),
            queue,
            queued: tokio::sync::Mutex::new(queued),
            state: Mutex::new(ApiState::default()),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(MAX_READ_BYTES))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(crate::http_server::accept_connections(
            listener,
            app,
            std::future::pending::<()>(),
            "Runtime API",
        ));
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The variables Lambda sets for the runtime: `AWS_LAMBDA_RUNTIME_API` pointing here,
    /// the function's name, memory, version and log names. Region, credentials and the
    /// function's own settings are the caller's.
    pub fn function_env(&self) -> Vec<(&'static str, String)> {
        let name = &self.shared.function_name;
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                MEMORY_SIZE_MB.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", self.shared.request_id_prefix),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ]
    }

    /// Starts `command` as the function behind this API, with [`Self::function_env`]
    /// added to the environment it already has. The process is killed when the
    /// [`FunctionProcess`] is dropped.
    pub fn spawn(&self, mut command: Command) -> io::Result<FunctionProcess> {
        command.envs(self.function_env()).kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = command.spawn()?;
        Ok(FunctionProcess {
            child,
            spawned_at,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Queues `event` for the function and waits up to `timeout` (also the deadline the
    /// function is told) for its answer.
    pub async fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        invoke(&self.shared, event, timeout).await
    }

    /// When the function first asked for an event: the end of its init.
    pub fn first_next_at(&self) -> Option<Instant> {
        self.shared.state().first_next_at
    }

    /// The init error the function reported, if it has not asked for an event since.
    pub fn init_error(&self) -> Option<FunctionError> {
        self.shared.state().init_error.clone()
    }

    /// The function process ended: the invocations it had taken fail with
    /// `Runtime.ExitError`, as in Lambda; queued ones wait for the next process.
    pub fn process_exited(&self, status: &ExitStatus) {
        let error = FunctionError {
            error_type: EXIT_ERROR.into(),
            body: Bytes::from(
                json!({
                    "errorType": EXIT_ERROR,
                    "errorMessage": format!("RequestId: the function process exited ({status})"),
                })
                .to_string(),
            ),
        };
        let mut state = self.shared.state();
        let taken: Vec<String> = state
            .waiting
            .iter()
            .filter(|(_, waiter)| waiter.picked_up)
            .map(|(id, _)| id.clone())
            .collect();
        for id in taken {
            if let Some(waiter) = state.waiting.remove(&id) {
                let _ = waiter
                    .answer
                    .send(Answer::Outcome(Outcome::Error(error.clone())));
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Drops the listener and the set of connection tasks, which aborts those too.
        self.server.abort();
    }
}

/// A function binary started by [`RuntimeApi::spawn`]; killed when dropped.
pub struct FunctionProcess {
    child: Child,
    spawned_at: Instant,
    shared: Arc<Shared>,
}

impl FunctionProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Just before the process was started: the origin of its init time.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Like [`RuntimeApi::invoke`], and fails at once with [`InvokeError::Exited`] when
    /// the process ends before answering.
    pub async fn invoke(
        &mut self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        tokio::select! {
            // An answer sent just before exiting still counts.
            biased;
            answer = invoke(&self.shared, event, timeout) => answer,
            status = self.child.wait() => Err(InvokeError::Exited(status)),
        }
    }

    /// Kills the process and waits until it is gone.
    pub async fn kill(mut self) -> io::Result<()> {
        self.child.kill().await
    }
}

struct Shared {
    function_name: String,
    function_arn: String,
    /// Makes request ids differ between emulators running at the same time.
    request_id_prefix: String,
    next_request_number: AtomicU64,
    /// Events waiting for `/next`, in invocation order.
    queue: mpsc::UnboundedSender<QueuedEvent>,
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<QueuedEvent>>,
    state: Mutex<ApiState>,
}

#[derive(Default)]
struct ApiState {
    /// Invocations waiting for their answer, queued or taken by the function.
    waiting: HashMap<String, Waiter>,
    first_next_at: Option<Instant>,
    init_error: Option<FunctionError>,
}

struct Waiter {
    answer: oneshot::Sender<Answer>,
    picked_up: bool,
}

enum Answer {
    Outcome(Outcome),
    InitFailed(FunctionError),
}

struct QueuedEvent {
    request_id: String,
    event: Bytes,
    deadline_ms: u128,
    trace_id: String,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, ApiState> {
        // The state stays consistent even if a holder panicked: every update is one
        // insert or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Delivers the answer to invocation `request_id`, which the function must have
    /// taken with `/next` and not answered yet; false if it has not.
    fn answer(&self, request_id: &str, outcome: Outcome) -> bool {
        let mut state = self.state();
        if !state
            .waiting
            .get(request_id)
            .is_some_and(|waiter| waiter.picked_up)
        {
            return false;
        }
        if let Some(waiter) = state.waiting.remove(request_id) {
            // The invoker may just have timed out; then nobody listens any more.
            let _ = waiter.answer.send(Answer::Outcome(outcome));
        }
        true
    }
}

/// Removes its invocation from the waiting ones when the invoker stops waiting, for
/// whatever reason (answer, timeout, process exit, dropped future).
struct WaitingGuard<'a> {
    shared: &'a Shared,
    request_id: String,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.shared.state().waiting.remove(&self.request_id);
    }
}

async fn invoke(
    shared: &Shared,
    event: &Value,
    timeout: Duration,
) -> Result<Invocation, InvokeError> {
    let event = Bytes::from(serde_json::to_vec(event).expect("a JSON value serializes"));
    if event.len() > MAX_PAYLOAD_BYTES {
        return Err(InvokeError::EventTooLarge { bytes: event.len() });
    }
    let number = shared.next_request_number.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{}-0000-4000-8000-{number:012x}", shared.request_id_prefix);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (answer, answered) = oneshot::channel();
    {
        let mut state = shared.state();
        if let Some(error) = &state.init_error {
            return Err(InvokeError::InitFailed(error.clone()));
        }
        state.waiting.insert(
            request_id.clone(),
            Waiter {
                answer,
                picked_up: false,
            },
        );
    }
    let _guard = WaitingGuard {
        shared,
        request_id: request_id.clone(),
    };
    let queued = QueuedEvent {
        request_id: request_id.clone(),
        event,
        deadline_ms: (now + timeout).as_millis(),
        trace_id: format!(
            "Root=1-{:08x}-{}{number:012x};Parent={number:016x};Sampled=0",
            now.as_secs(),
            shared.request_id_prefix,
        ),
    };
    shared
        .queue
        .send(queued)
        .expect("the queue's receiver lives as long as its sender, in Shared");

    match tokio::time::timeout(timeout, answered).await {
        Ok(Ok(Answer::Outcome(outcome))) => Ok(Invocation {
            request_id,
            outcome,
            answered_at: Instant::now(),
        }),
        Ok(Ok(Answer::InitFailed(error))) => Err(InvokeError::InitFailed(error)),
        // The sender is only dropped by answering or by our own guard.
        Ok(Err(_)) => unreachable!("an invocation's answer channel closed unanswered"),
        Err(_) => Err(InvokeError::Timeout {
            picked_up: shared
                .state()
                .waiting
                .get(&request_id)
                .is_some_and(|waiter| waiter.picked_up),
            request_id,
            timeout,
        }),
    }
}

/// `GET /runtime/invocation/next`: waits for the next event nobody has given up on.
async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    {
        let mut state = shared.state();
        state.first_next_at.get_or_insert_with(Instant::now);
        // A runtime asking for work is past its init: an earlier init error was a
        // previous process's.
        state.init_error = None;
    }
    // One `/next` at a time takes from the queue; `recv` is cancel-safe, so a runtime
    // that hangs up while waiting loses no event.
    let mut queued = shared.queued.lock().await;
    loop {
        let Some(event) = queued.recv().await else {
            unreachable!("the queue's sender lives in Shared")
        };
        let taken = match shared.state().waiting.get_mut(&event.request_id) {
            Some(waiter) => {
                waiter.picked_up = true;
                true
            }
            // The invoker gave up on it before the function asked.
            None => false,
        };
        if taken {
            return (
                [
                    ("lambda-runtime-aws-request-id", event.request_id),
                    ("lambda-runtime-deadline-ms", event.deadline_ms.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        shared.function_arn.clone(),
                    ),
                    ("lambda-runtime-trace-id", event.trace_id),
                    ("content-type", "application/json".to_owned()),
                ],
                event.event,
            )
                .into_response();
        }
    }
}

/// `POST /runtime/invocation/{id}/response`.
async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_PAYLOAD_BYTES {
        let message = format!(
            "the response is {} bytes, above Lambda's {MAX_PAYLOAD_BYTES}-byte limit",
            body.len()
        );
        let error = FunctionError {
            error_type: RESPONSE_TOO_LARGE.into(),
            body: Bytes::from(
                json!({"errorType": RESPONSE_TOO_LARGE, "errorMessage": message}).to_string(),
            ),
        };
        return if shared.answer(&request_id, Outcome::Error(error)) {
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &message,
            )
        } else {
            invalid_request_id(&request_id)
        };
    }
    if shared.answer(&request_id, Outcome::Response(body)) {
        accepted()
    } else {
        invalid_request_id(&request_id)
    }
}

/// `POST /runtime/invocation/{id}/error`.
async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = function_error(&headers, body);
    if shared.answer(&request_id, Outcome::Error(error)) {
        accepted()
    } else {
        invalid_request_id(&request_id)
    }
}

/// `POST /runtime/init/error`: fails every invocation waiting, and the ones that come
/// before the function asks for an event again.
async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = function_error(&headers, body);
    let mut state = shared.state();
    for (_, waiter) in state.waiting.drain() {
        let _ = waiter.answer.send(Answer::InitFailed(error.clone()));
    }
    state.init_error = Some(error);
    accepted()
}

fn function_error(headers: &HeaderMap, body: Bytes) -> FunctionError {
    let from_header = headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let from_body = || {
        serde_json::from_slice::<Value>(&body)
            .ok()?
            .get("errorType")?
            .as_str()
            .map(str::to_owned)
    };
    FunctionError {
        error_type: from_header
            .or_else(from_body)
            .unwrap_or_else(|| "Unhandled".into()),
        body,
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

fn invalid_request_id(request_id: &str) -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("no invocation {request_id} is waiting for an answer"),
    )
}

/// An error answer in the Runtime API's shape.
fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime's HTTP client; a proxy from the environment must not intercept 127.0.0.1.
    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// What a runtime does first: takes the next event.
    async fn take_next(api: &RuntimeApi) -> (HeaderMap, Bytes) {
        let response = client()
            .get(format!(
                "http://{}/2018-06-01/runtime/invocation/next",
                api.address()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        (headers, response.bytes().await.unwrap())
    }

    async fn post(api: &RuntimeApi, path: &str, body: impl Into<reqwest::Body>) -> u16 {
        client()
            .post(format!(
                "http://{}/2018-06-01/runtime/{path}",
                api.address()
            ))
            .header(ERROR_TYPE_HEADER, "Handler.Failed")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn request_id(headers: &HeaderMap) -> String {
        headers["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn an_event_goes_out_with_its_headers_and_the_response_comes_back() {
        let api = RuntimeApi::start("echo").await.unwrap();
        assert!(api.first_next_at().is_none());
        let event = json!({"hello": "world"});
        let invocation = api.invoke(&event, Duration::from_secs(5));
        let runtime = async {
            let (headers, body) = take_next(&api).await;
            assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), event);
            assert_eq!(
                headers["lambda-runtime-invoked-function-arn"],
                "arn:aws:lambda:us-east-1:123456789012:function:echo"
            );
            let deadline: u128 = headers["lambda-runtime-deadline-ms"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                deadline
                    > SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
            );
            assert!(headers.contains_key("lambda-runtime-trace-id"));
            let id = request_id(&headers);
            assert_eq!(
                post(&api, &format!("invocation/{id}/response"), body.clone()).await,
                202
            );
            // A second answer for the same invocation is refused.
            assert_eq!(
                post(&api, &format!("invocation/{id}/response"), body).await,
                400
            );
        };
        let (invocation, ()) = tokio::join!(invocation, runtime);
        let invocation = invocation.unwrap();
        assert!(!invocation.is_error());
        assert_eq!(invocation.json().unwrap(), event);
        assert!(api.first_next_at().is_some());
    }

    #[tokio::test]
    async fn an_error_answer_carries_its_type_and_body() {
        let api = RuntimeApi::start("failing").await.unwrap();
        let event = json!({});
        let invocation = api.invoke(&event, Duration::from_secs(5));
        let runtime = async {
            let (headers, _) = take_next(&api).await;
            let id = request_id(&headers);
            let body = r#"{"errorType":"x","errorMessage":"boom"}"#;
            assert_eq!(
                post(&api, &format!("invocation/{id}/error"), body).await,
                202
            );
        };
        let (invocation, ()) = tokio::join!(invocation, runtime);
        let invocation = invocation.unwrap();
        assert!(invocation.is_error());
        let Outcome::Error(error) = &invocation.outcome else {
            unreachable!()
        };
        assert_eq!(error.error_type, "Handler.Failed");
        assert_eq!(invocation.json().unwrap()["errorMessage"], "boom");
    }

    #[tokio::test]
    async fn an_init_error_fails_the_waiting_invocation_and_later_ones() {
        let api = RuntimeApi::start("broken").await.unwrap();
        let event = json!({});
        let invocation = api.invoke(&event, Duration::from_secs(5));
        let runtime = async {
            // Let the invocation be queued first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(post(&api, "init/error", "{}").await, 202);
        };
        let (invocation, ()) = tokio::join!(invocation, runtime);
        assert!(
            matches!(invocation, Err(InvokeError::InitFailed(e)) if e.error_type == "Handler.Failed")
        );
        assert!(matches!(
            api.invoke(&event, Duration::from_secs(5)).await,
            Err(InvokeError::InitFailed(_))
        ));
        assert!(api.init_error().is_some());
    }

    #[tokio::test]
    async fn an_unanswered_event_times_out_and_is_not_handed_out_later() {
        let api = RuntimeApi::start("idle").await.unwrap();
        let timeout = Duration::from_millis(100);
        let error = api.invoke(&json!({"n": 1}), timeout).await.unwrap_err();
        assert!(
            matches!(
                error,
                InvokeError::Timeout {
                    picked_up: false,
                    ..
                }
            ),
            "{error}"
        );

        // The next `/next` skips the abandoned event and gets the live one.
        let event = json!({"n": 2});
        let invocation = api.invoke(&event, Duration::from_secs(5));
        let runtime = async {
            let (headers, body) = take_next(&api).await;
            assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["n"], 2);
            let id = request_id(&headers);
            post(&api, &format!("invocation/{id}/response"), "{}").await
        };
        let (invocation, status) = tokio::join!(invocation, runtime);
        assert_eq!(status, 202);
        assert!(invocation.is_ok());
    }

    #[tokio::test]
    async fn a_response_above_the_payload_limit_fails_the_invocation() {
        let api = RuntimeApi::start("big").await.unwrap();
        let event = json!({});
        let invocation = api.invoke(&event, Duration::from_secs(5));
        let runtime = async {
            let (headers, _) = take_next(&api).await;
            let id = request_id(&headers);
            let body = vec![b'x'; MAX_PAYLOAD_BYTES + 1];
            post(&api, &format!("invocation/{id}/response"), body).await
        };
        let (invocation, status) = tokio::join!(invocation, runtime);
        assert_eq!(status, 413);
        let invocation = invocation.unwrap();
        assert!(
            matches!(&invocation.outcome, Outcome::Error(e) if e.error_type == RESPONSE_TOO_LARGE)
        );
    }

    #[tokio::test]
    async fn a_process_that_exits_without_answering_is_reported() {
        let api = RuntimeApi::start("exits").await.unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let mut process = api.spawn(command).unwrap();
        let error = process
            .invoke(&json!({}), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, InvokeError::Exited(Ok(status)) if status.code() == Some(3)),
            "{error}"
        );
    }
}
