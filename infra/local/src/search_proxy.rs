//! A proxy in front of the search server that can be made to fail the way a busy
//! Elasticsearch / OpenSearch fails (`reference/search-bulk.md` §2–§3), and that records
//! the size of every bulk request:
//! - whole bulk requests answered 429 (or any status) without reaching the server;
//! - single items answered with an error status inside a 200 bulk answer, the rest
//!   indexed for real.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running proxy; stops when dropped.
pub struct SearchProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Mutex<Faults>,
}

#[derive(Default)]
struct Faults {
    /// Answer bulk requests here, as created, without indexing: for measuring the
    /// client's side with volumes the in-memory server cannot hold.
    sink: bool,
    /// The next N bulk requests are answered with this status.
    reject_requests: Option<(u16, u32)>,
    /// The next N items are answered with this status and error type.
    fail_items: Option<(u16, String, u32)>,
    bulk_sizes: Vec<usize>,
}

impl SearchProxy {
    pub async fn start(upstream: &str) -> anyhow::Result<SearchProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder().no_proxy().build()?,
            state: Mutex::new(Faults::default()),
        });
        let app = Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(crate::http_server::accept_connections(
            listener,
            app,
            std::future::pending::<()>(),
            "search proxy",
        ));
        Ok(SearchProxy { addr, shared, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `count` bulk requests with `status`.
    pub fn reject_bulk_requests(&self, status: u16, count: u32) {
        self.lock().reject_requests = (count > 0).then_some((status, count));
    }

    /// Answers the next `count` bulk items with `status` (e.g. 429
    /// `es_rejected_execution_exception`, 400 `mapper_parsing_exception`).
    pub fn fail_bulk_items(&self, status: u16, error_type: &str, count: u32) {
        self.lock().fail_items = (count > 0).then(|| (status, error_type.to_owned(), count));
    }

    /// Answers bulk requests as if every item were created, without indexing anything.
    pub fn set_sink(&self, sink: bool) {
        self.lock().sink = sink;
    }

    /// The size in bytes of every bulk request that came through.
    pub fn bulk_sizes(&self) -> Vec<usize> {
        self.lock().bulk_sizes.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SearchProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (head, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let path_and_query = head
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let is_bulk = head.method == http::Method::POST && head.uri.path().ends_with("/_bulk");
    if !is_bulk {
        return relay(
            &shared,
            head.method,
            &path_and_query,
            head.headers.get("content-type"),
            body,
        )
        .await;
    }
    let rejected = {
        let mut faults = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        faults.bulk_sizes.push(body.len());
        match faults.reject_requests {
            Some((status, left)) => {
                faults.reject_requests = (left > 1).then_some((status, left - 1));
                Some(status)
            }
            None => None,
        }
    };
    let sink = shared.state.lock().unwrap_or_else(|p| p.into_inner()).sink;
    if sink && rejected.is_none() {
        let items: Vec<Value> = split_items(&body)
            .iter()
            .map(|item| json!({ item.action.clone(): {"_index": item.index, "_id": item.id, "status": 201, "result": "created"}}))
            .collect();
        return axum::Json(json!({"took": 0, "errors": false, "items": items})).into_response();
    }
    if let Some(status) = rejected {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let error = json!({"error": {"type": "es_rejected_execution_exception", "reason": "rejected by the sandbox proxy"}, "status": status});
        return (code, axum::Json(error)).into_response();
    }
    bulk_with_item_faults(&shared, &path_and_query, body).await
}

/// Forwards the bulk request without the items chosen to fail, and answers for all.
async fn bulk_with_item_faults(shared: &Shared, path: &str, body: Bytes) -> Response {
    let items = split_items(&body);
    let mut failed: Vec<Option<(u16, String)>> = vec![None; items.len()];
    {
        let mut faults = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        for slot in failed.iter_mut() {
            match &mut faults.fail_items {
                Some((status, kind, left)) if *left > 0 => {
                    *slot = Some((*status, kind.clone()));
                    *left -= 1;
                }
                _ => break,
            }
        }
        if matches!(faults.fail_items, Some((_, _, 0))) {
            faults.fail_items = None;
        }
    }
    if failed.iter().all(Option::is_none) {
        let ndjson = http::HeaderValue::from_static("application/x-ndjson");
        return relay(shared, http::Method::POST, path, Some(&ndjson), body).await;
    }
    let mut forwarded = Vec::new();
    for (item, fault) in items.iter().zip(&failed) {
        if fault.is_none() {
            forwarded.extend_from_slice(item.bytes);
        }
    }
    let mut upstream_items = Vec::new();
    if !forwarded.is_empty() {
        let answer = shared
            .http
            .post(format!("{}{path}", shared.upstream))
            .header("content-type", "application/x-ndjson")
            .body(forwarded)
            .send()
            .await;
        let Ok(answer) = answer else {
            return (StatusCode::BAD_GATEWAY, "search server unreachable").into_response();
        };
        let answer: Value = answer.json().await.unwrap_or(Value::Null);
        upstream_items = answer["items"].as_array().cloned().unwrap_or_default();
    }
    let mut upstream_items = upstream_items.into_iter();
    let merged: Vec<Value> = items
        .iter()
        .zip(failed)
        .map(|(item, fault)| match fault {
            Some((status, kind)) => json!({ item.action.clone(): {
                "_index": item.index, "_id": item.id, "status": status,
                "error": {"type": kind, "reason": "failed by the sandbox proxy"},
            }}),
            None => upstream_items.next().unwrap_or(Value::Null),
        })
        .collect();
    axum::Json(json!({"took": 1, "errors": true, "items": merged})).into_response()
}

async fn relay(
    shared: &Shared,
    method: http::Method,
    path: &str,
    content_type: Option<&http::HeaderValue>,
    body: Bytes,
) -> Response {
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let body = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response.headers_mut().insert("content-type", content_type);
            }
            response
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "search server unreachable").into_response(),
    }
}

/// One action of a bulk body, with its source line.
struct Item<'a> {
    bytes: &'a [u8],
    action: String,
    index: Value,
    id: Value,
}

fn split_items(body: &[u8]) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let action_end = memchr_newline(rest);
        let action: Value = serde_json::from_slice(&rest[..action_end]).unwrap_or(Value::Null);
        let (name, meta) = action
            .as_object()
            .and_then(|o| o.iter().next())
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap_or_default();
        let with_source = name != "delete";
        let mut end = (action_end + 1).min(rest.len());
        if with_source && end < rest.len() {
            end = (end + memchr_newline(&rest[end..]) + 1).min(rest.len());
        }
        items.push(Item {
            bytes: &rest[..end],
            action: name,
            index: meta["_index"].clone(),
            id: meta["_id"].clone(),
        });
        rest = &rest[end..];
    }
    items
}

fn memchr_newline(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len())
}
