//! Jenkins' remote API for builds: trigger a job, follow its queue item to the build,
//! read the build's state and its console log as it grows. Facts:
//! `reference/jenkins-api.md` §1–§8, pitfalls included:
//! - the trigger is a POST whose redirect is not followed: the queue item is in
//!   `Location` (201 new, 303 or 200 merged into a waiting item);
//! - a cancelled queue item never gets a build; a left one expires after 5 minutes;
//! - `progressiveText`'s `X-Text-Size` is the next offset in raw bytes (the body's
//!   length is not: line ends are rewritten to CRLF), `X-More-Data` says more will come,
//!   and an offset past the end starts again at 0; nothing bounds an answer, so its body
//!   is read in pieces ([`ProgressiveText`]);
//! - API tokens need no CSRF crumb.
//!
//! Absolute URLs Jenkins returns are rebased on the configured server URL: a Jenkins
//! whose own root URL is wrong (often) is still reachable where we reach it.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::secrets::JenkinsCredentials;
use crate::text::truncate;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A job's path: its folders, the job, and for multibranch the branch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobPath(pub Vec<String>);

impl JobPath {
    /// `folder/job` (one `/` per level). A multibranch branch with a `/` in its name is
    /// given as its own segment, e.g. `["repo", "feature/x"]`.
    pub fn parse(path: &str) -> JobPath {
        JobPath(
            path.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// `/job/a/job/b`; a segment holding `/` is encoded twice (`feature%252Fx`), as
    /// Jenkins expects for branch names.
    pub fn url_path(&self) -> String {
        self.0
            .iter()
            .map(|segment| {
                let once = percent(segment);
                let encoded = if segment.contains('/') {
                    percent(&once)
                } else {
                    once
                };
                format!("/job/{encoded}")
            })
            .collect()
    }

    pub fn display(&self) -> String {
        self.0.join(" » ")
    }
}

fn percent(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum JenkinsError {
    #[error("Jenkins request failed: {0}")]
    Transport(String),
    #[error("Jenkins answered {status} for {what}: {body}")]
    Status {
        status: u16,
        what: String,
        body: String,
    },
    #[error("Jenkins' answer for {what} is not what its API returns: {reason}")]
    Unreadable { what: String, reason: String },
}

impl JenkinsError {
    /// Worth trying again: Jenkins may be restarting or busy.
    pub fn is_transient(&self) -> bool {
        match self {
            JenkinsError::Transport(_) => true,
            JenkinsError::Status { status, .. } => matches!(status, 408 | 429 | 502 | 503 | 504),
            JenkinsError::Unreadable { .. } => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            JenkinsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a trigger got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triggered {
    /// A new queue item.
    Queued { queue_url: String },
    /// Merged into an identical item already waiting (303, or 200 on newer Jenkins).
    Merged { queue_url: String },
}

impl Triggered {
    pub fn queue_url(&self) -> &str {
        match self {
            Triggered::Queued { queue_url } | Triggered::Merged { queue_url } => queue_url,
        }
    }
}

/// `GET <queue item>/api/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct QueueItem {
    #[serde(rename = "_class")]
    pub class: String,
    pub why: Option<String>,
    pub cancelled: bool,
    pub executable: Option<BuildRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct BuildRef {
    pub number: u64,
    pub url: String,
}

/// `GET <build>/api/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BuildInfo {
    pub number: u64,
    pub url: String,
    pub building: bool,
    /// `None` while building; then `SUCCESS`, `UNSTABLE`, `FAILURE`, `NOT_BUILT`,
    /// `ABORTED`.
    pub result: Option<String>,
    /// Milliseconds; 0 while building.
    pub duration: u64,
    pub timestamp: u64,
}

/// One answer of `progressiveText`: its headers, and its body to be read in pieces. No
/// request parameter bounds an answer (Stapler's LargeText takes only `start`), and a
/// finished build's answer is all of its log from `start`: the body is never read whole.
pub struct ProgressiveText {
    /// The next offset (`X-Text-Size`).
    pub next: u64,
    /// The build goes on (`X-More-Data`).
    pub more: bool,
    response: reqwest::Response,
    /// What is left of the network chunk being handed out.
    rest: Bytes,
}

impl ProgressiveText {
    /// The body's next bytes, at most `max` of them; `None` at its end.
    pub async fn piece(&mut self, max: usize) -> Result<Option<Bytes>, JenkinsError> {
        while self.rest.is_empty() {
            match self
                .response
                .chunk()
                .await
                .map_err(|e| JenkinsError::Transport(crate::http::describe_error(&e)))?
            {
                Some(chunk) => self.rest = chunk,
                None => return Ok(None),
            }
        }
        let length = max.max(1).min(self.rest.len());
        Ok(Some(self.rest.split_to(length)))
    }

    /// Bytes taken from the network and not handed out yet (at most one chunk of the
    /// HTTP client's read buffer).
    pub fn buffered_bytes(&self) -> usize {
        self.rest.len()
    }
}

/// A `progressiveText` answer's headers: the next offset (`X-Text-Size`, required) and
/// whether the build goes on (`X-More-Data: true`). Facts: `reference/jenkins-api.md` §5.
pub fn progress_headers(headers: &http::HeaderMap) -> Result<(u64, bool), JenkinsError> {
    let next = headers
        .get("x-text-size")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| JenkinsError::Unreadable {
            what: "the console log".into(),
            reason: "no X-Text-Size header, or not a number".into(),
        })?;
    let more = headers
        .get("x-more-data")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    Ok((next, more))
}

/// One Jenkins server.
#[derive(Clone)]
pub struct JenkinsServer {
    http: reqwest::Client,
    base_url: String,
    credentials: Option<JenkinsCredentials>,
}

impl JenkinsServer {
    pub fn new(
        base_url: &str,
        credentials: Option<JenkinsCredentials>,
    ) -> Result<JenkinsServer, ConfigError> {
        let base = base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "ROUTES",
                reason: format!(
                    "Jenkins server URL {:?} must start with http:// or https://",
                    crate::text::without_userinfo(base)
                ),
            });
        }
        let builder = crate::http::client_builder()?
            // A redirect is an answer here (the trigger's Location, a stop's 302).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5));
        Ok(JenkinsServer {
            http: crate::http::build(builder, "ROUTES")?,
            base_url: base.to_owned(),
            credentials,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `url` on this server: Jenkins' own absolute URLs keep their path, and take our
    /// scheme and host.
    pub fn rebase(&self, url: &str) -> String {
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => url,
        };
        let origin_end = self
            .base_url
            .split_once("://")
            .map(|(scheme, rest)| scheme.len() + 3 + rest.find('/').unwrap_or(rest.len()))
            .unwrap_or(self.base_url.len());
        format!("{}{path}", &self.base_url[..origin_end])
    }

    /// The URL of `job`.
    pub fn job_url(&self, job: &JobPath) -> String {
        format!("{}{}/", self.base_url, job.url_path())
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.credentials {
            Some(creds) => builder.basic_auth(&creds.username, Some(creds.api_token.expose())),
            None => builder,
        }
    }

    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, JenkinsError> {
        builder
            .send()
            .await
            .map_err(|e| JenkinsError::Transport(crate::http::describe_error(&e)))
    }

    /// `POST …/buildWithParameters` (with the parameters as a form body, so that they
    /// stay out of access logs), or `…/build` without parameters. The redirect is read,
    /// not followed.
    pub async fn trigger(
        &self,
        job: &JobPath,
        parameters: &[(String, String)],
    ) -> Result<Triggered, JenkinsError> {
        let what = format!("the trigger of {}", job.display());
        let url = if parameters.is_empty() {
            format!("{}build?delay=0sec", self.job_url(job))
        } else {
            format!("{}buildWithParameters?delay=0sec", self.job_url(job))
        };
        let mut builder = self.request(reqwest::Method::POST, &url);
        if !parameters.is_empty() {
            builder = builder
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form_body(parameters));
        }
        let response = self.send(builder).await?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let queue_location = location.filter(|l| l.contains("/queue/item/"));
        match (status, queue_location) {
            (201, Some(location)) => Ok(Triggered::Queued {
                queue_url: self.rebase(&location),
            }),
            (200 | 303, Some(location)) => Ok(Triggered::Merged {
                queue_url: self.rebase(&location),
            }),
            // 302 to the job page: the queue refused the item.
            _ => {
                let body = response.text().await.unwrap_or_default();
                Err(JenkinsError::Status {
                    status,
                    what,
                    body: truncate(body.trim(), 300),
                })
            }
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, JenkinsError> {
        let response = self.send(self.request(reqwest::Method::GET, url)).await?;
        let body = success_body(response, what).await?;
        serde_json::from_slice(&body).map_err(|e| JenkinsError::Unreadable {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The queue item; `None` once it has expired (404, five minutes after it left).
    pub async fn queue_item(&self, queue_url: &str) -> Result<Option<QueueItem>, JenkinsError> {
        let url = format!("{}/api/json", queue_url.trim_end_matches('/'));
        match self.get_json(&url, "the queue item").await {
            Ok(item) => Ok(Some(item)),
            Err(JenkinsError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn build(&self, build_url: &str) -> Result<BuildInfo, JenkinsError> {
        let url = format!(
            "{}/api/json?tree=number,url,building,result,duration,timestamp",
            build_url.trim_end_matches('/')
        );
        self.get_json(&url, "the build").await
    }

    /// The build of `job` whose parameter `name` is `value` (among the latest 50): how a
    /// build is found once its queue item has expired.
    pub async fn find_build(
        &self,
        job: &JobPath,
        name: &str,
        value: &str,
    ) -> Result<Option<BuildRef>, JenkinsError> {
        #[derive(Deserialize)]
        struct Builds {
            #[serde(default)]
            builds: Vec<Build>,
        }
        #[derive(Deserialize)]
        struct Build {
            number: u64,
            url: String,
            #[serde(default)]
            actions: Vec<serde_json::Value>,
        }
        let url = format!(
            "{}api/json?tree=builds[number,url,actions[parameters[name,value]]]{{0,50}}",
            self.job_url(job)
        );
        let builds: Builds = self.get_json(&url, "the job's builds").await?;
        Ok(builds
            .builds
            .into_iter()
            .find(|build| {
                build.actions.iter().any(|action| {
                    action["parameters"].as_array().is_some_and(|parameters| {
                        parameters
                            .iter()
                            .any(|p| p["name"] == name && p["value"] == value)
                    })
                })
            })
            .map(|build| BuildRef {
                number: build.number,
                url: self.rebase(&build.url),
            }))
    }

    /// `GET …/logText/progressiveText?start=N`: the headers; the body is read from the
    /// answer as it is used.
    pub async fn progressive_text(
        &self,
        build_url: &str,
        start: u64,
    ) -> Result<ProgressiveText, JenkinsError> {
        let url = format!(
            "{}/logText/progressiveText?start={start}",
            build_url.trim_end_matches('/')
        );
        // Older Stapler gzips bodies over 4 KiB when the client allows it.
        let builder = self
            .request(reqwest::Method::GET, &url)
            .header(http::header::ACCEPT_ENCODING, "identity");
        let response = self.send(builder).await?;
        if !response.status().is_success() {
            return Err(status_error(response, "the console log").await);
        }
        let (next, more) = progress_headers(response.headers())?;
        Ok(ProgressiveText {
            next,
            more,
            response,
            rest: Bytes::new(),
        })
    }

    /// The whole console log as it is stored, for streaming into the archive.
    pub async fn console_text(&self, build_url: &str) -> Result<reqwest::Response, JenkinsError> {
        let url = format!("{}/consoleText", build_url.trim_end_matches('/'));
        let builder = self
            .request(reqwest::Method::GET, &url)
            .header(http::header::ACCEPT_ENCODING, "identity");
        let response = self.send(builder).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(JenkinsError::Status {
                status,
                what: "the console text".into(),
                body: String::new(),
            });
        }
        Ok(response)
    }

    /// Aborts a running build (`POST …/stop`; Jenkins answers with a redirect).
    pub async fn stop(&self, build_url: &str) -> Result<(), JenkinsError> {
        let url = format!("{}/stop", build_url.trim_end_matches('/'));
        let response = self.send(self.request(reqwest::Method::POST, &url)).await?;
        let status = response.status().as_u16();
        if status < 400 {
            Ok(())
        } else {
            Err(JenkinsError::Status {
                status,
                what: "the stop".into(),
                body: String::new(),
            })
        }
    }
}

/// The body of a 2xx answer; another status is an error carrying the body's start.
async fn success_body(response: reqwest::Response, what: &str) -> Result<Bytes, JenkinsError> {
    if !response.status().is_success() {
        return Err(status_error(response, what).await);
    }
    response
        .bytes()
        .await
        .map_err(|e| JenkinsError::Transport(crate::http::describe_error(&e)))
}

/// Of an error page, at most this much is read: its start says what went wrong.
const ERROR_BODY_BYTES: usize = 4096;

/// The error a non-2xx answer is, with the start of its body.
async fn status_error(mut response: reqwest::Response, what: &str) -> JenkinsError {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_BYTES)]),
            _ => break,
        }
    }
    JenkinsError::Status {
        status,
        what: what.to_owned(),
        body: truncate(String::from_utf8_lossy(&body).trim(), 300),
    }
}

fn form_body(parameters: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_paths_have_one_job_per_level_and_branches_encoded_twice() {
        assert_eq!(
            JobPath::parse("deploy/microservice").url_path(),
            "/job/deploy/job/microservice"
        );
        let branch = JobPath(vec!["repo".into(), "feature/x".into()]);
        assert_eq!(branch.url_path(), "/job/repo/job/feature%252Fx");
        assert_eq!(JobPath::parse("a b").url_path(), "/job/a%20b");
    }

    #[test]
    fn jenkins_urls_are_rebased_on_the_configured_server() {
        let server = JenkinsServer::new("https://ci.example.com/jenkins/", None).unwrap();
        assert_eq!(
            server.rebase("http://localhost:8080/jenkins/queue/item/42/"),
            "https://ci.example.com/jenkins/queue/item/42/"
        );
        assert_eq!(
            server.job_url(&JobPath::parse("a/b")),
            "https://ci.example.com/jenkins/job/a/job/b/"
        );
        assert!(JenkinsServer::new("ftp://x", None).is_err());
        // The error may reach a Port run's log: never with the URL's credentials.
        let error = JenkinsServer::new("ftp://ci:url-token@jenkins", None)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("ftp://jenkins"), "{error}");
        assert!(!error.contains("url-token"), "{error}");
    }
}
