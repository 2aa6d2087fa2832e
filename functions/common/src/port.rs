//! Port's API for action runs: access tokens, run updates, run logs, and entities tied
//! to a run. Facts: `reference/port-api.md` §1–§4, §9:
//! - a token lives 3 hours: it is cached until shortly before it expires;
//! - PATCH of a run takes only known fields; there is no `IN_PROGRESS` status;
//! - a run ends with the first `status` PATCH or `terminationStatus` log, and is
//!   immutable afterwards (a second termination is refused);
//! - a log body is at most 1 MiB;
//! - 429 and 5xx are waited out with backoff (`x-ratelimit-reset` when given).

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config::ConfigError;
use crate::secrets::Secret;
use crate::text::truncate;

pub const DEFAULT_API_URL: &str = "https://api.getport.io";
/// Port refuses request bodies above 1 MiB (413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// `port.json` in the credentials bucket.
#[derive(Debug, Clone, Deserialize)]
pub struct PortCredentials {
    pub client_id: String,
    pub client_secret: Secret,
}

impl PortCredentials {
    /// `port.json` in `CREDENTIALS_BUCKET`, else `PORT_CLIENT_ID` / `PORT_CLIENT_SECRET`.
    pub async fn load(s3: &aws_sdk_s3::Client) -> Result<PortCredentials, ConfigError> {
        let missing = ConfigError::Missing("Port credentials (port.json in the credentials bucket, or PORT_CLIENT_ID and PORT_CLIENT_SECRET)");
        match crate::config::optional("CREDENTIALS_BUCKET") {
            Some(bucket) => crate::secrets::read_json(s3, &bucket, "port.json")
                .await?
                .ok_or(missing),
            None => match (
                crate::config::optional("PORT_CLIENT_ID"),
                crate::config::optional("PORT_CLIENT_SECRET"),
            ) {
                (Some(client_id), Some(secret)) => Ok(PortCredentials {
                    client_id,
                    client_secret: Secret::new(secret),
                }),
                _ => Err(missing),
            },
        }
    }
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    Success,
    Failure,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "SUCCESS",
            RunStatus::Failure => "FAILURE",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("Port request failed: {0}")]
    Transport(String),
    #[error("Port answered {status} for {what}: {body}")]
    Status {
        status: u16,
        what: String,
        body: String,
    },
    #[error("Port's answer for {what} is not what its API returns: {reason}")]
    Unreadable { what: String, reason: String },
}

impl PortError {
    pub fn status(&self) -> Option<u16> {
        match self {
            PortError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A run update: only the fields Port's PATCH accepts.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_label: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_run_id: Option<String>,
}

pub struct PortClient {
    http: reqwest::Client,
    base_url: String,
    credentials: PortCredentials,
    token: Mutex<Option<(String, Instant)>>,
}

impl PortClient {
    pub fn new(base_url: &str, credentials: PortCredentials) -> Result<PortClient, ConfigError> {
        let base = base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "PORT_API_URL",
                reason: "must start with http:// or https://".into(),
            });
        }
        let builder = crate::http::client_builder()?
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5));
        Ok(PortClient {
            http: crate::http::build(builder, "PORT_API_URL")?,
            base_url: base.to_owned(),
            credentials,
            token: Mutex::new(None),
        })
    }

    /// `PATCH /v1/actions/runs/{id}`.
    pub async fn update_run(&self, run_id: &str, update: &RunUpdate) -> Result<(), PortError> {
        let body = serde_json::to_value(update).expect("an update serialises");
        self.call(
            reqwest::Method::PATCH,
            &format!("/v1/actions/runs/{}", segment(run_id)),
            Some(&body),
            "the run update",
        )
        .await
        .map(|_| ())
    }

    /// `POST /v1/actions/runs/{id}/logs`; with `termination`, the log ends the run.
    pub async fn add_log(
        &self,
        run_id: &str,
        message: &str,
        termination: Option<(RunStatus, &str)>,
    ) -> Result<(), PortError> {
        let mut body = json!({ "message": message });
        if let Some((status, label)) = termination {
            body["terminationStatus"] = json!(status.as_str());
            body["statusLabel"] = json!(label);
        }
        self.call(
            reqwest::Method::POST,
            &format!("/v1/actions/runs/{}/logs", segment(run_id)),
            Some(&body),
            "the run log",
        )
        .await
        .map(|_| ())
    }

    /// `POST /v1/blueprints/{blueprint}/entities?upsert=true&merge=true&run_id=`: only
    /// while the run is in progress is the entity tied to it.
    pub async fn upsert_entity(
        &self,
        blueprint: &str,
        entity: &Value,
        run_id: &str,
    ) -> Result<(), PortError> {
        let path = format!(
            "/v1/blueprints/{}/entities?upsert=true&merge=true&run_id={}",
            segment(blueprint),
            segment(run_id)
        );
        self.call(
            reqwest::Method::POST,
            &path,
            Some(entity),
            "the entity upsert",
        )
        .await
        .map(|_| ())
    }

    /// One API call, with a cached token, waiting out 429 and 5xx.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, PortError> {
        let mut backoff = FIRST_BACKOFF;
        let mut renewed = false;
        let mut attempt = 1;
        loop {
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let result = request.send().await;
            let (status, wait, answer) = match result {
                Err(e) => (
                    None,
                    None,
                    Err(PortError::Transport(crate::http::describe_error(&e))),
                ),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let reset = response
                        .headers()
                        .get("x-ratelimit-reset")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| ratelimit_wait(v, std::time::SystemTime::now()));
                    let text = response.bytes().await.unwrap_or_default();
                    let answer = if (200..300).contains(&status) {
                        Ok(serde_json::from_slice(&text).unwrap_or(Value::Null))
                    } else {
                        Err(PortError::Status {
                            status,
                            what: what.to_owned(),
                            body: truncate(String::from_utf8_lossy(&text).trim(), 300),
                        })
                    };
                    (Some(status), reset, answer)
                }
            };
            match status {
                // An expired or revoked token: one fresh one.
                Some(401) if !renewed => {
                    renewed = true;
                    *self.token.lock().await = None;
                    continue;
                }
                Some(429) | Some(500..=599) | None if attempt < ATTEMPTS => {
                    let delay = wait.unwrap_or(backoff).min(MAX_BACKOFF);
                    tracing::warn!(
                        what,
                        status,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "Port is busy; trying again"
                    );
                    tokio::time::sleep(delay).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                _ => return answer,
            }
        }
    }

    /// The access token, fetched once and reused until shortly before it expires.
    async fn token(&self) -> Result<String, PortError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() + TOKEN_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct TokenAnswer {
            access_token: String,
            expires_in: u64,
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let answer = loop {
            let result = self
                .http
                .post(format!("{}/v1/auth/access_token", self.base_url))
                .json(&json!({
                    "clientId": self.credentials.client_id,
                    "clientSecret": self.credentials.client_secret.expose(),
                }))
                .send()
                .await;
            let error = match result {
                Ok(response) if response.status().is_success() => break response,
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    PortError::Status {
                        status,
                        what: "an access token".into(),
                        body: truncate(body.trim(), 200),
                    }
                }
                Err(e) => PortError::Transport(crate::http::describe_error(&e)),
            };
            let transient =
                !matches!(error.status(), Some(status) if status < 500 && status != 429);
            if !transient || attempt == ATTEMPTS {
                return Err(error);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        };
        let token: TokenAnswer = answer.json().await.map_err(|e| PortError::Unreadable {
            what: "an access token".into(),
            reason: e.to_string(),
        })?;
        let expires = Instant::now() + Duration::from_secs(token.expires_in);
        *cached = Some((token.access_token.clone(), expires));
        Ok(token.access_token)
    }
}

fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Values of `x-ratelimit-reset` from here on are epoch seconds (2001-09-09), below
/// are seconds to wait.
const EPOCH_THRESHOLD: f64 = 1_000_000_000.0;

/// How long `x-ratelimit-reset` says to wait. Port's docs disagree between versions:
/// the docs source (port-docs docs/api-reference/rate-limits.mdx) says "the time at which
/// the window resets, in UTC epoch seconds", the published page has said "the number of
/// seconds before the rate limit is reset" (`reference/port-api.md` §4). Both are read: a
/// value of 10⁹ or more is an epoch time, a smaller one a delay; an epoch time already
/// past is no wait; `None` (backoff instead) for what is neither. The caller caps it.
pub fn ratelimit_wait(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value: f64 = value.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    if value >= EPOCH_THRESHOLD {
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        return Some(Duration::from_secs_f64((value - now).max(0.0)));
    }
    Some(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratelimit_reset_reads_as_an_epoch_time_or_a_delay() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        assert_eq!(
            ratelimit_wait("1796000012", now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            ratelimit_wait("1795999990", now),
            Some(Duration::ZERO),
            "already past"
        );
        assert_eq!(ratelimit_wait("12", now), Some(Duration::from_secs(12)));
        assert_eq!(
            ratelimit_wait(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        for odd in ["", "soon", "-3", "NaN", "inf"] {
            assert_eq!(ratelimit_wait(odd, now), None, "{odd:?}");
        }
    }

    #[test]
    fn a_run_update_sends_only_what_is_set() {
        let update = RunUpdate {
            status_label: Some("Running #4".into()),
            link: vec!["https://ci/job/x/4/".into()],
            external_run_id: Some("4".into()),
            ..RunUpdate::default()
        };
        assert_eq!(
            serde_json::to_value(update).unwrap(),
            json!({"statusLabel": "Running #4", "link": ["https://ci/job/x/4/"], "externalRunId": "4"})
        );
        let done = RunUpdate {
            status: Some(RunStatus::Failure),
            ..RunUpdate::default()
        };
        assert_eq!(
            serde_json::to_value(done).unwrap(),
            json!({"status": "FAILURE"})
        );
    }
}
