//! The front door: one HTTP server on 127.0.0.1 that stands in for what AWS puts in
//! front of the functions.
//!
//! - `/{stage}/...`: API Gateway ([`crate::api_gateway`]) with the stage variables read
//!   live from the emulator's stage, so `toggle_spigot` pointed at the emulator changes
//!   the behaviour at once;
//! - `POST /kafka/{topic}`: the Kafka record injector ([`crate::kafka`]); the body is the
//!   record value; `?key=` and `?partition=` are optional; each `X-Kafka-Header-<name>`
//!   header becomes a record header;
//! - `GET /_local`: what runs where, as JSON; `POST /_local/jenkins` `{"mode": "up" |
//!   "down" | "slow", "status": N, "delay_ms": N}` switches the sandbox Jenkins;
//!   `GET /_local/jenkins/requests` is what the sandbox Jenkins received, `GET
//!   /_local/port/runs` every run the sandbox Port holds (status, label, logs).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api_gateway::{self, HttpAnswer, HttpRequest, Routes};
use crate::functions::Functions;
use crate::jenkins::{JenkinsMode, SandboxJenkins};
use crate::kafka::{KafkaInjector, Record};
use crate::port::SandboxPort;
use crate::runtime_api::Outcome;

/// Record headers come as `X-Kafka-Header-<name>`.
const KAFKA_HEADER_PREFIX: &str = "x-kafka-header-";

/// What the front door serves.
pub struct FrontDoorParts {
    pub routes: Routes,
    pub functions: Arc<Functions>,
    pub apigateway: aws_sdk_apigateway::Client,
    pub kafka: Arc<KafkaInjector>,
    pub jenkins: Option<Arc<SandboxJenkins>>,
    pub port: Option<Arc<SandboxPort>>,
    /// Served on `GET /_local`; filled in once the stack is up.
    pub info: Arc<RwLock<Value>>,
}

/// A running front door; stops when dropped.
pub struct FrontDoor {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FrontDoor {
    /// Serves on `port` of 127.0.0.1 (0: a free one).
    pub async fn start(port: u16, parts: FrontDoorParts) -> anyhow::Result<FrontDoor> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(dispatch)
            // Read a little more than API Gateway takes, to answer 413 like it does.
            .layer(DefaultBodyLimit::max(api_gateway::MAX_BODY_BYTES + 1))
            .with_state(Arc::new(parts));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "front door stopped");
            }
        });
        Ok(FrontDoor {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

async fn dispatch(
    State(parts): State<Arc<FrontDoorParts>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (head, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, api_gateway::MAX_BODY_BYTES + 1).await {
        Ok(body) if body.len() <= api_gateway::MAX_BODY_BYTES => body,
        _ => return answer(HttpAnswer::too_large()),
    };
    let path = head.uri.path().to_owned();
    if let Some(topic) = path.strip_prefix("/kafka/") {
        if head.method != http::Method::POST {
            return json_error(StatusCode::METHOD_NOT_ALLOWED, "POST the record value");
        }
        return inject(&parts, topic, head.uri.query(), &head.headers, body).await;
    }
    if path == "/_local" {
        let info = parts.info.read().unwrap_or_else(|p| p.into_inner()).clone();
        return (StatusCode::OK, axum::Json(info)).into_response();
    }
    if path == "/_local/jenkins" && head.method == http::Method::POST {
        return switch_jenkins(&parts, &body).await;
    }
    if path == "/_local/jenkins/requests" && head.method == http::Method::GET {
        return match &parts.jenkins {
            Some(jenkins) => {
                (StatusCode::OK, axum::Json(jenkins_requests(jenkins))).into_response()
            }
            None => json_error(StatusCode::NOT_FOUND, "no sandbox Jenkins runs here"),
        };
    }
    if path == "/_local/port/runs" && head.method == http::Method::GET {
        return match &parts.port {
            Some(port) => (StatusCode::OK, axum::Json(port.runs_json())).into_response(),
            None => json_error(StatusCode::NOT_FOUND, "no sandbox Port runs here"),
        };
    }
    let Some(matched) = parts.routes.find(&head.method, &path) else {
        return answer(HttpAnswer::missing_route());
    };
    let stage_variables = match stage_variables(
        &parts.apigateway,
        &matched.route.api_id,
        &matched.route.stage,
    )
    .await
    {
        Ok(variables) => variables,
        Err(error) => {
            tracing::error!(error, "cannot read the stage variables");
            return answer(HttpAnswer::internal_error());
        }
    };
    let host = head
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let request_id = uuid::Uuid::new_v4().to_string();
    let event = api_gateway::proxy_event(
        &matched,
        &HttpRequest {
            method: &head.method,
            query: head.uri.query(),
            headers: &head.headers,
            body: &body,
            source_ip: peer.ip().to_string(),
            host,
        },
        &stage_variables,
        &request_id,
    );
    let function = matched.route.function.clone();
    let invocation = tokio::time::timeout(
        api_gateway::INTEGRATION_TIMEOUT,
        parts.functions.invoke(&function, &event),
    )
    .await;
    answer(match invocation {
        Err(_) => HttpAnswer::timed_out(),
        Ok(Ok(Outcome::Response(body))) => api_gateway::http_answer(&body),
        Ok(Ok(Outcome::Error(error))) => {
            tracing::warn!(%function, error = %String::from_utf8_lossy(&error.body), "function error");
            HttpAnswer::internal_error()
        }
        Ok(Err(error)) => {
            tracing::warn!(%function, error = format!("{error:#}"), "invocation failed");
            HttpAnswer::internal_error()
        }
    })
}

async fn stage_variables(
    apigateway: &aws_sdk_apigateway::Client,
    api_id: &str,
    stage: &str,
) -> Result<HashMap<String, String>, String> {
    apigateway
        .get_stage()
        .rest_api_id(api_id)
        .stage_name(stage)
        .send()
        .await
        .map(|s| s.variables.unwrap_or_default())
        .map_err(|e| spigot_common::aws::error_text(&e))
}

async fn inject(
    parts: &FrontDoorParts,
    topic: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    value: Bytes,
) -> Response {
    let query: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let partition = match query.get("partition").map(|p| p.parse::<i64>()) {
        None => 0,
        Some(Ok(p)) if p >= 0 => p,
        Some(_) => return json_error(StatusCode::BAD_REQUEST, "partition must be a number >= 0"),
    };
    let record = Record {
        topic: topic.to_owned(),
        partition,
        key: query.get("key").map(|k| Bytes::from(k.clone())),
        value,
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix(KAFKA_HEADER_PREFIX)?;
                Some((name.to_owned(), value.as_bytes().to_vec()))
            })
            .collect(),
    };
    match parts.kafka.inject(record).await {
        None => json_error(
            StatusCode::NOT_FOUND,
            &format!(
                "no function subscribes to topic {topic:?}; subscribed topics: {:?}",
                parts.kafka.topics().map(|(t, _)| t.clone()).collect::<Vec<_>>()
            ),
        ),
        Some((offset, deliveries)) => (
            StatusCode::OK,
            axum::Json(json!({"topic": topic, "partition": partition, "offset": offset, "deliveries": deliveries})),
        )
            .into_response(),
    }
}

/// What the sandbox Jenkins received, for a person to read: credentials shown as
/// present, not as their value; bodies as text, cut at 4 KiB.
fn jenkins_requests(jenkins: &SandboxJenkins) -> Value {
    Value::Array(
        jenkins
            .requests()
            .iter()
            .map(|r| {
                let headers: serde_json::Map<String, Value> = r
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let shown = if name == "authorization" {
                            "(set)"
                        } else {
                            value
                        };
                        (name.clone(), Value::String(shown.to_owned()))
                    })
                    .collect();
                let body = String::from_utf8_lossy(&r.body);
                json!({
                    "method": r.method,
                    "path": r.path,
                    "query": r.query,
                    "status": r.status,
                    "headers": headers,
                    "body": spigot_common::text::truncate(&body, 4096),
                })
            })
            .collect(),
    )
}

async fn switch_jenkins(parts: &FrontDoorParts, body: &[u8]) -> Response {
    let Some(jenkins) = &parts.jenkins else {
        return json_error(StatusCode::NOT_FOUND, "no sandbox Jenkins runs here");
    };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mode = match (
        request["mode"].as_str(),
        request["status"].as_u64(),
        request["delay_ms"].as_u64(),
    ) {
        (Some("up"), None, None) => JenkinsMode::Up,
        (Some("down"), None, None) => JenkinsMode::Unreachable,
        (Some("up"), Some(status), None) => JenkinsMode::Status(status as u16),
        (Some("slow"), None, Some(ms)) => JenkinsMode::Slow(Duration::from_millis(ms)),
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                r#"expected {"mode":"up"}, {"mode":"down"}, {"mode":"up","status":503} or {"mode":"slow","delay_ms":9000}"#,
            )
        }
    };
    match jenkins.set_mode(mode).await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({"jenkins": format!("{mode:?}")})),
        )
            .into_response(),
        Err(error) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error:#}")),
    }
}

fn answer(answer: HttpAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}
