//! Elasticsearch / OpenSearch over raw HTTP (the bulk API, index templates, counts):
//! the client gitlab_ingest, log_tailer and aliecs_ingest share. Facts:
//! `reference/search-bulk.md`.
//!
//! Auth is none, Basic, or AWS SigV4 (service `es` for OpenSearch Service domains, `aoss`
//! for OpenSearch Serverless), signed with the SDK's own signer and credentials.
//!
//! [`BulkWriter`] batches `create` actions into requests of at most a given size, and reads
//! the answer item by item (HTTP 200 does not mean success): 201/200 and 409 (the same
//! `_id` is already there) are done; 429 and 5xx items are sent again with backoff; any
//! other item error is a rejection, counted with its reason.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use serde_json::Value;

use crate::config::{optional, ConfigError};
use crate::secrets::Secret;
use crate::text::truncate;

/// Largest bulk request we send: under the 10 MiB cap of small Amazon OpenSearch
/// instances, with room to spare.
pub const MAX_BULK_BYTES: usize = 8 * 1024 * 1024;
/// Attempts of a request (or of an item) that the server may be too busy for.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Rejection reasons kept for the log.
const KEPT_REASONS: usize = 5;

/// How requests are authenticated.
#[derive(Clone)]
pub enum SearchAuth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    SigV4 {
        /// `es` or `aoss`.
        service: String,
        region: String,
        credentials: SharedCredentialsProvider,
    },
}

impl std::fmt::Debug for SearchAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchAuth::None => f.write_str("none"),
            SearchAuth::Basic { username, .. } => write!(f, "basic ({username})"),
            SearchAuth::SigV4 {
                service, region, ..
            } => write!(f, "sigv4 ({service}, {region})"),
        }
    }
}

/// `search.json` in the credentials bucket, for Basic auth.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SearchCredentials {
    pub username: String,
    pub password: Secret,
}

impl SearchAuth {
    /// From `SEARCH_AUTH`: `none` (default), `basic` (with `credentials`, or
    /// `SEARCH_USERNAME` / `SEARCH_PASSWORD`), `sigv4:es` or `sigv4:aoss` (the SDK's
    /// credentials and region).
    pub fn from_env(
        sdk: &aws_config::SdkConfig,
        credentials: Option<SearchCredentials>,
    ) -> Result<SearchAuth, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: "SEARCH_AUTH",
            reason,
        };
        match optional("SEARCH_AUTH").as_deref().map(str::trim) {
            None | Some("none") => Ok(SearchAuth::None),
            Some("basic") => {
                let credentials = credentials
                    .or_else(|| {
                        Some(SearchCredentials {
                            username: optional("SEARCH_USERNAME")?,
                            password: Secret::new(optional("SEARCH_PASSWORD")?),
                        })
                    })
                    .ok_or_else(|| invalid("basic needs search.json in the credentials bucket, or SEARCH_USERNAME and SEARCH_PASSWORD".into()))?;
                Ok(SearchAuth::Basic {
                    username: credentials.username,
                    password: credentials.password,
                })
            }
            Some(sigv4) if sigv4.starts_with("sigv4:") => {
                let service = &sigv4["sigv4:".len()..];
                if service != "es" && service != "aoss" {
                    return Err(invalid(format!("{service:?}: the SigV4 service is es (OpenSearch Service) or aoss (Serverless)")));
                }
                Ok(SearchAuth::SigV4 {
                    service: service.to_owned(),
                    region: sdk
                        .region()
                        .map(|r| r.to_string())
                        .ok_or_else(|| invalid("SigV4 needs an AWS region".into()))?,
                    credentials: sdk
                        .credentials_provider()
                        .ok_or_else(|| invalid("SigV4 needs AWS credentials".into()))?,
                })
            }
            Some(other) => Err(invalid(format!(
                "{other:?} is not none, basic, sigv4:es or sigv4:aoss"
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search request failed: {0}")]
    Transport(String),
    #[error("search answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("search answer is not what the bulk API returns: {0}")]
    Unreadable(String),
    #[error("cannot sign the search request: {0}")]
    Signing(String),
}

impl SearchError {
    /// Worth sending again: the server is busy or briefly gone.
    fn is_transient(&self) -> bool {
        match self {
            SearchError::Transport(_) => true,
            SearchError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SearchClient {
    http: reqwest::Client,
    base_url: String,
    auth: SearchAuth,
}

impl SearchClient {
    pub fn new(base_url: &str, auth: SearchAuth) -> Result<SearchClient, ConfigError> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "SEARCH_URL",
                reason: "must start with http:// or https://".into(),
            });
        }
        let builder = crate::http::client_builder()?
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5));
        Ok(SearchClient {
            http: crate::http::build(builder, "SEARCH_URL")?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// One request; the status and body of any answer.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), SearchError> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body)
            .map_err(|e| SearchError::Transport(e.to_string()))?;
        match &self.auth {
            SearchAuth::None => {}
            SearchAuth::Basic { username, password } => {
                use base64::Engine as _;
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                let value = http::HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|e| SearchError::Signing(e.to_string()))?;
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
            SearchAuth::SigV4 {
                service,
                region,
                credentials,
            } => {
                sign(&mut request, service, region, credentials).await?;
            }
        }
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
            .map_err(|e| SearchError::Transport(e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| SearchError::Transport(crate::http::describe_error(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| SearchError::Transport(crate::http::describe_error(&e)))?;
        Ok((status, body))
    }

    /// Like [`SearchClient::request`] with a JSON body, for answers that must be 2xx.
    pub async fn json(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SearchError> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let (status, answer) = self.request(method, path, "application/json", body).await?;
        if !(200..300).contains(&status) {
            return Err(SearchError::Status {
                status,
                body: truncate(&String::from_utf8_lossy(&answer), 500),
            });
        }
        if answer.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer).map_err(|e| SearchError::Unreadable(e.to_string()))
    }

    /// Installs (or replaces) a composable index template.
    ///
    /// [`TemplateInstall::ensure`] is what the functions call: once per cold start, and
    /// never failing a batch.
    pub async fn put_index_template(
        &self,
        name: &str,
        template: &Value,
    ) -> Result<(), SearchError> {
        self.json(
            http::Method::PUT,
            &format!("/_index_template/{name}"),
            Some(template),
        )
        .await
        .map(|_| ())
    }

    /// Makes what was indexed searchable now (tests, the demo).
    pub async fn refresh(&self, index: &str) -> Result<(), SearchError> {
        self.json(http::Method::POST, &format!("/{index}/_refresh"), None)
            .await
            .map(|_| ())
    }

    pub async fn count(&self, index: &str, query: &Value) -> Result<u64, SearchError> {
        let answer = self
            .json(
                http::Method::POST,
                &format!("/{index}/_count"),
                Some(&serde_json::json!({ "query": query })),
            )
            .await?;
        answer["count"]
            .as_u64()
            .ok_or_else(|| SearchError::Unreadable(format!("no count in {answer}")))
    }

    pub async fn search(&self, index: &str, body: &Value) -> Result<Value, SearchError> {
        self.json(http::Method::POST, &format!("/{index}/_search"), Some(body))
            .await
    }

    /// One `_bulk` request, sent again with backoff while the server is busy.
    async fn bulk_request(&self, body: Bytes) -> Result<Vec<ItemResult>, SearchError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = self
                .request(
                    http::Method::POST,
                    "/_bulk",
                    "application/x-ndjson",
                    body.clone(),
                )
                .await;
            let error = match result {
                Ok((200..=299, answer)) => return parse_bulk_answer(&answer),
                Ok((status, answer)) => SearchError::Status {
                    status,
                    body: truncate(&String::from_utf8_lossy(&answer), 500),
                },
                Err(error) => error,
            };
            if !error.is_transient() || attempt == ATTEMPTS {
                return Err(error);
            }
            tracing::warn!(%error, attempt, "bulk request failed; trying again");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

/// Signs `request` with SigV4 for `service`; the body is hashed into the signature.
async fn sign(
    request: &mut http::Request<Bytes>,
    service: &str,
    region: &str,
    credentials: &SharedCredentialsProvider,
) -> Result<(), SearchError> {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    let credentials = credentials
        .provide_credentials()
        .await
        .map_err(|e| SearchError::Signing(e.to_string()))?;
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    // OpenSearch Serverless requires the payload hash as a header.
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| SearchError::Signing(e.to_string()))?
        .into();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| SearchError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SearchError::Signing(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// What became of one action of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ItemResult {
    status: u16,
    reason: Option<String>,
}

/// Characters of a server's text kept in a rejection reason or an error: an answer is
/// the server's, and what it says goes into our logs.
const MAX_ANSWER_TEXT_CHARS: usize = 300;

fn parse_bulk_answer(answer: &[u8]) -> Result<Vec<ItemResult>, SearchError> {
    let answer: Value =
        serde_json::from_slice(answer).map_err(|e| SearchError::Unreadable(e.to_string()))?;
    let items = answer["items"]
        .as_array()
        .ok_or_else(|| SearchError::Unreadable("no items".into()))?;
    let quote = |item: &Value| truncate(&item.to_string(), MAX_ANSWER_TEXT_CHARS);
    items
        .iter()
        .map(|item| {
            let result = item
                .as_object()
                .and_then(|o| o.values().next())
                .ok_or_else(|| SearchError::Unreadable(format!("item {}", quote(item))))?;
            let status = result["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| {
                    SearchError::Unreadable(format!("item without status: {}", quote(item)))
                })?;
            let reason = result.get("error").filter(|e| !e.is_null()).map(|error| {
                truncate(
                    &format!(
                        "{}: {}",
                        error["type"].as_str().unwrap_or("error"),
                        error["reason"].as_str().unwrap_or_default()
                    ),
                    MAX_ANSWER_TEXT_CHARS,
                )
            });
            Ok(ItemResult { status, reason })
        })
        .collect()
}

/// The bulk answer reader's promises as a check, shared by the unit tests and the fuzz
/// targets (`fuzz/`): an answer it reads has one result per item, and what it keeps of
/// the server's text is bounded.
#[cfg(any(test, feature = "fuzzing"))]
pub mod check {
    use super::*;

    /// Reads `answer`; panics on a broken promise. The statuses read.
    pub fn bulk_answer(answer: &[u8]) -> Option<Vec<u16>> {
        // Our own words around the quoted text.
        let bound = MAX_ANSWER_TEXT_CHARS + 100;
        match parse_bulk_answer(answer) {
            Ok(items) => {
                let value: Value = serde_json::from_slice(answer).expect("read, so JSON");
                assert_eq!(Some(items.len()), value["items"].as_array().map(Vec::len));
                for item in &items {
                    let reason = item.reason.as_deref().unwrap_or_default();
                    assert!(reason.chars().count() <= bound, "reason {reason:?}");
                }
                Some(items.iter().map(|i| i.status).collect())
            }
            Err(error) => {
                let text = error.to_string();
                assert!(text.chars().count() <= bound, "error {text:?}");
                None
            }
        }
    }
}

/// What a [`BulkWriter`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkStats {
    /// Documents created now.
    pub created: u64,
    /// Documents whose `_id` was there already (409 on `create`): done before.
    pub existed: u64,
    /// Documents refused for good (mapping errors, or busy beyond the retries).
    pub rejected: u64,
    /// Item sends that were tried again after a 429 or 5xx.
    pub retried: u64,
    pub requests: u64,
    /// Size of every request sent, in bytes.
    pub request_bytes: Vec<usize>,
    /// The first few rejection reasons.
    pub reasons: Vec<String>,
}

/// Batches `create` actions into bulk requests of at most `max_request_bytes`.
pub struct BulkWriter<'a> {
    client: &'a SearchClient,
    max_request_bytes: usize,
    /// Action and source lines of the items not sent yet.
    buffer: Vec<u8>,
    /// End offset in `buffer` of each item.
    item_ends: Vec<usize>,
    stats: BulkStats,
}

impl<'a> BulkWriter<'a> {
    pub fn new(client: &'a SearchClient, max_request_bytes: usize) -> Self {
        BulkWriter {
            client,
            max_request_bytes,
            buffer: Vec::new(),
            item_ends: Vec::new(),
            stats: BulkStats::default(),
        }
    }

    /// Adds a `create` of `source` (one line of JSON) with `_id` into `index`.
    pub fn create(&mut self, index: &str, id: &str, source: &[u8]) {
        self.create_with(index, id, |buffer| buffer.extend_from_slice(source));
    }

    /// [`create`](Self::create), the document written by `write_source` (one line of
    /// JSON) straight into the request: nothing copied.
    pub fn create_with(&mut self, index: &str, id: &str, write_source: impl FnOnce(&mut Vec<u8>)) {
        // Index names and ids are ours: no escaping needed, but keep them valid JSON.
        debug_assert!(!index.contains('"') && !id.contains('"'));
        // Pieces, not `write!`: this runs for every document of large batches.
        for piece in [
            "{\"create\":{\"_index\":\"",
            index,
            "\",\"_id\":\"",
            id,
            "\"}}\n",
        ] {
            self.buffer.extend_from_slice(piece.as_bytes());
        }
        write_source(&mut self.buffer);
        self.buffer.push(b'\n');
        self.item_ends.push(self.buffer.len());
    }

    /// Bytes waiting to be sent.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Room for about `bytes` more of actions and documents, so that a large batch laid
    /// out at once does not copy its buffer as it grows.
    pub fn reserve(&mut self, bytes: usize) {
        self.buffer.reserve(bytes);
    }

    /// Items waiting to be sent.
    pub fn pending_items(&self) -> usize {
        self.item_ends.len()
    }

    /// Sends full requests while at least one request's worth is waiting.
    pub async fn send_full(&mut self) -> Result<(), SearchError> {
        while self.buffer.len() >= self.max_request_bytes {
            self.send_one().await?;
        }
        Ok(())
    }

    /// Sends everything; the totals.
    pub async fn finish(mut self) -> Result<BulkStats, SearchError> {
        while !self.item_ends.is_empty() {
            self.send_one().await?;
        }
        Ok(self.stats)
    }

    /// Sends the longest run of whole items that fits one request (at least one).
    async fn send_one(&mut self) -> Result<(), SearchError> {
        let count = self
            .item_ends
            .iter()
            .take_while(|&&end| end <= self.max_request_bytes)
            .count()
            .max(1);
        let split = self.item_ends[count - 1];
        let rest = self.buffer.split_off(split);
        let body = Bytes::from(std::mem::replace(&mut self.buffer, rest));
        let ends: Vec<usize> = self.item_ends.drain(..count).collect();
        for end in &mut self.item_ends {
            *end -= split;
        }
        self.send_items(body, ends).await
    }

    /// Sends `body` (items ending at `ends`), then the items the server was too busy
    /// for, with backoff.
    async fn send_items(
        &mut self,
        mut body: Bytes,
        mut ends: Vec<usize>,
    ) -> Result<(), SearchError> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            self.stats.requests += 1;
            self.stats.request_bytes.push(body.len());
            let results = self.client.bulk_request(body.clone()).await?;
            if results.len() != ends.len() {
                return Err(SearchError::Unreadable(format!(
                    "{} items sent, {} answered",
                    ends.len(),
                    results.len()
                )));
            }
            let mut again = Vec::new();
            let mut again_ends = Vec::new();
            let mut start = 0;
            for (result, &end) in results.iter().zip(&ends) {
                match result.status {
                    200 | 201 => self.stats.created += 1,
                    409 => self.stats.existed += 1,
                    429 | 500..=599 if attempt < ATTEMPTS => {
                        again.extend_from_slice(&body[start..end]);
                        again_ends.push(again.len());
                    }
                    status => {
                        self.stats.rejected += 1;
                        if self.stats.reasons.len() < KEPT_REASONS {
                            self.stats.reasons.push(format!(
                                "{status} {}",
                                result.reason.as_deref().unwrap_or("(no reason given)")
                            ));
                        }
                    }
                }
                start = end;
            }
            if again_ends.is_empty() {
                return Ok(());
            }
            self.stats.retried += again_ends.len() as u64;
            tracing::warn!(
                items = again_ends.len(),
                attempt,
                "search was busy for some items; sending them again"
            );
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            body = Bytes::from(again);
            ends = again_ends;
        }
        Ok(())
    }
}

/// Whether this process installed its index template yet: once per cold start, and
/// never failing the batch. A template the cluster refuses is logged loudly and tried
/// again next invocation; the writes go on (with the cluster's default mappings) and fail
/// only if the indices themselves cannot be written.
#[derive(Debug, Default)]
pub struct TemplateInstall(tokio::sync::OnceCell<()>);

impl TemplateInstall {
    /// Installs template `name` unless this process did already; `false` when the
    /// cluster refused it (logged).
    pub async fn ensure(&self, search: &SearchClient, name: &str, template: &Value) -> bool {
        if self.0.initialized() {
            return true;
        }
        match search.put_index_template(name, template).await {
            Ok(()) => {
                let _ = self.0.set(());
                true
            }
            Err(error) => {
                tracing::error!(
                    template = name,
                    %error,
                    "index template not installed: new indices get the cluster's default \
                     mappings until it is; two stacks on one cluster need distinct index prefixes"
                );
                false
            }
        }
    }
}

/// The priority of a template for the indices under `prefix`. Patterns of two prefixes
/// overlap only when one prefix extends the other (`aliecs-*` and `aliecs-dev-*`), and the
/// cluster refuses overlapping templates of equal priority: the longer, more specific
/// prefix gets the higher priority, so both install and the specific one wins.
pub fn template_priority(base: u64, prefix: &str) -> u64 {
    base + prefix.len().min(255) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_answers_are_read_item_by_item() {
        let answer = br#"{"took":1,"errors":true,"items":[
            {"create":{"_id":"a","status":201}},
            {"create":{"_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"_id":"c","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad field"}}}]}"#;
        let items = parse_bulk_answer(answer).unwrap();
        assert_eq!(
            items.iter().map(|i| i.status).collect::<Vec<_>>(),
            [201, 409, 400]
        );
        assert_eq!(
            items[2].reason.as_deref(),
            Some("mapper_parsing_exception: bad field")
        );
        assert!(parse_bulk_answer(b"{}").is_err());
        assert!(parse_bulk_answer(b"not json").is_err());
        assert_eq!(check::bulk_answer(answer), Some(vec![201, 409, 400]));
    }

    #[test]
    fn what_an_answer_says_is_kept_bounded() {
        let long = "x".repeat(100_000);
        let answer = format!(
            r#"{{"items":[{{"index":{{"status":400,"error":{{"type":"t","reason":"{long}"}}}}}}]}}"#
        );
        let items = parse_bulk_answer(answer.as_bytes()).unwrap();
        let reason = items[0].reason.as_deref().unwrap();
        assert_eq!(
            reason.chars().count(),
            MAX_ANSWER_TEXT_CHARS + 1,
            "cut, with …"
        );
        assert!(reason.starts_with("t: xxx") && reason.ends_with('…'));
        assert_eq!(check::bulk_answer(answer.as_bytes()), Some(vec![400]));
        for odd in [
            format!(r#"{{"items":[{{"index":{{"status":"{long}"}}}}]}}"#),
            format!(r#"{{"items":["{long}"]}}"#),
        ] {
            let error = parse_bulk_answer(odd.as_bytes()).unwrap_err().to_string();
            assert!(error.len() < 1_000, "{} bytes", error.len());
            assert_eq!(check::bulk_answer(odd.as_bytes()), None);
        }
    }

    /// A one-shot HTTP server: answers `answer` and hands back the request's head.
    async fn capture_one(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 8192];
            let n = socket.read(&mut head).await.unwrap();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&head[..n]).into_owned()
        });
        (url, task)
    }

    #[tokio::test]
    async fn basic_auth_goes_in_the_authorization_header() {
        let (url, request) = capture_one(r#"{"count":3}"#).await;
        let client = SearchClient::new(
            &url,
            SearchAuth::Basic {
                username: "indexer".into(),
                password: Secret::new("pa55"),
            },
        )
        .unwrap();
        let count = client
            .count("ci-logs-*", &serde_json::json!({"match_all": {}}))
            .await
            .unwrap();
        assert_eq!(count, 3);
        let head = request.await.unwrap().to_ascii_lowercase();
        // base64("indexer:pa55")
        assert!(
            head.contains("authorization: basic aw5kzxhlcjpwytu1"),
            "{head}"
        );
        assert!(head.starts_with("post /ci-logs-*/_count "), "{head}");
        assert!(
            format!(
                "{:?}",
                SearchAuth::Basic {
                    username: "indexer".into(),
                    password: Secret::new("pa55")
                }
            ) == "basic (indexer)"
        );
    }

    #[tokio::test]
    async fn sigv4_signs_with_the_service_and_region_in_the_scope() {
        let credentials = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("session".into()),
            None,
            "test",
        ));
        let mut request = http::Request::builder()
            .method("POST")
            .uri("https://search-domain.eu-west-1.es.amazonaws.com/_bulk")
            .header("content-type", "application/x-ndjson")
            .body(Bytes::from_static(b"{}\n"))
            .unwrap();
        sign(&mut request, "aoss", "eu-west-1", &credentials)
            .await
            .unwrap();
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{authorization}"
        );
        assert!(
            authorization.contains("/eu-west-1/aoss/aws4_request"),
            "{authorization}"
        );
        assert!(request.headers().contains_key("x-amz-content-sha256"));
        assert_eq!(request.headers()["x-amz-security-token"], "session");
        assert!(!authorization.contains("secret"));
    }
}
