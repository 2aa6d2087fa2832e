//! The GitLab REST API as gitlab_ingest uses it: a job, and its trace as a byte stream.
//! Facts: `reference/gitlab-api.md` §1–§4. The token goes in the `PRIVATE-TOKEN` header,
//! never in a URL; the trace is the whole log in one answer (no ranges), so it is read as
//! a stream, never held whole.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::secrets::Secret;
use crate::text::truncate;

/// `gitlab.json` in the credentials bucket.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GitlabSecrets {
    /// A token with `read_api` (personal, project or group access token).
    pub token: Option<Secret>,
    /// The secret the Job Hook sends in `X-Gitlab-Token`.
    pub webhook_secret: Option<Secret>,
}

/// The header a GitLab webhook carries its secret token in, verbatim.
pub const HOOK_TOKEN_HEADER: &str = "x-gitlab-token";

/// Whether `token` is one of `secrets`, compared in constant time.
pub fn hook_token_matches(token: &str, secrets: &[Secret]) -> bool {
    use subtle::ConstantTimeEq;
    // Every secret is compared, so the time says nothing about which one matched.
    secrets.iter().fold(false, |matched, secret| {
        matched | bool::from(token.as_bytes().ct_eq(secret.expose().as_bytes()))
    })
}

/// Headers of a GitLab webhook a receiver may need (delivery headers,
/// `reference/gitlab-api.md` §4). Never `X-Gitlab-Token`: it is a secret, and it is
/// checked here, not passed on.
pub fn is_kept_hook_header(name: &str) -> bool {
    const KEPT: [&str; 6] = [
        "x-gitlab-event",
        "x-gitlab-event-uuid",
        "x-gitlab-instance",
        "x-gitlab-webhook-uuid",
        "idempotency-key",
        "content-type",
    ];
    let name = name.to_ascii_lowercase();
    KEPT.contains(&name.as_str()) || name == "user-agent"
}

/// Job statuses after which the trace is complete.
pub const TERMINAL_STATUSES: [&str; 3] = ["success", "failed", "canceled"];

pub fn is_terminal(status: &str) -> bool {
    TERMINAL_STATUSES.contains(&status)
}

/// `GET /projects/:id/jobs/:job_id`, the fields a log line carries.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Job {
    pub id: u64,
    pub name: String,
    pub stage: String,
    pub status: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub web_url: String,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub pipeline: Option<Pipeline>,
    pub commit: Option<Commit>,
    pub runner: Option<Runner>,
    pub user: Option<User>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Pipeline {
    pub id: u64,
    pub project_id: u64,
    pub sha: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Commit {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Runner {
    pub id: u64,
    pub description: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct User {
    pub username: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    /// The job does not exist, the token may not see it, or (trace) it has no log.
    #[error("GitLab answered 404 for {what}")]
    NotFound { what: String },
    #[error("GitLab refused the token ({status}); it needs read_api on the project")]
    Unauthorized { status: u16 },
    #[error("GitLab answered {status} for {what}: {body}")]
    Status {
        status: u16,
        what: String,
        body: String,
    },
    #[error("GitLab request for {what} failed: {reason}")]
    Transport { what: String, reason: String },
    #[error("GitLab's answer for {what} is not a job: {reason}")]
    Unreadable { what: String, reason: String },
}

impl GitlabError {
    /// Worth trying again later.
    pub fn is_transient(&self) -> bool {
        match self {
            GitlabError::Transport { .. } => true,
            GitlabError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct GitlabClient {
    http: reqwest::Client,
    api_url: String,
    token: Secret,
    timeout: Duration,
}

impl GitlabClient {
    /// `base_url` is the instance (`https://gitlab.example.com`); the API is below
    /// `/api/v4`.
    pub fn new(
        base_url: &str,
        token: Secret,
        timeout: Duration,
    ) -> Result<GitlabClient, ConfigError> {
        let base = base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "GITLAB_URL",
                reason: "must start with http:// or https://".into(),
            });
        }
        // No read timeout on the client: a trace is read only as fast as it is indexed,
        // and a pause of ours is not GitLab's silence. The trace's reader times its own
        // waits (see `trace`).
        let builder = crate::http::client_builder()?.connect_timeout(timeout);
        Ok(GitlabClient {
            http: crate::http::build(builder, "GITLAB_URL")?,
            api_url: format!("{base}/api/v4"),
            token,
            timeout,
        })
    }

    pub async fn job(&self, project_id: u64, job_id: u64) -> Result<Job, GitlabError> {
        let what = format!("job {job_id} of project {project_id}");
        let response = self
            .get(&format!("/projects/{project_id}/jobs/{job_id}"), &what)
            .await?;
        let body = tokio::time::timeout(self.timeout, response.bytes())
            .await
            .map_err(|_| GitlabError::Transport {
                what: what.clone(),
                reason: "timed out".into(),
            })?
            .map_err(|e| GitlabError::Transport {
                what: what.clone(),
                reason: crate::http::describe_error(&e),
            })?;
        serde_json::from_slice(&body).map_err(|e| GitlabError::Unreadable {
            what,
            reason: e.to_string(),
        })
    }

    /// The job's log, as a response whose body the caller streams; each wait for a chunk
    /// should be bounded by [`GitlabClient::timeout`].
    pub async fn trace(
        &self,
        project_id: u64,
        job_id: u64,
    ) -> Result<reqwest::Response, GitlabError> {
        let what = format!("the trace of job {job_id} of project {project_id}");
        self.get(
            &format!("/projects/{project_id}/jobs/{job_id}/trace"),
            &what,
        )
        .await
    }

    /// How long GitLab may stay silent while we wait for it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn get(&self, path: &str, what: &str) -> Result<reqwest::Response, GitlabError> {
        let request = self
            .http
            .get(format!("{}{path}", self.api_url))
            .header("PRIVATE-TOKEN", self.token.expose())
            .send();
        let response = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| GitlabError::Transport {
                what: what.to_owned(),
                reason: "timed out".into(),
            })?
            .map_err(|e| GitlabError::Transport {
                what: what.to_owned(),
                reason: crate::http::describe_error(&e),
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(response),
            401 | 403 => Err(GitlabError::Unauthorized { status }),
            404 => Err(GitlabError::NotFound {
                what: what.to_owned(),
            }),
            _ => {
                let body = response.text().await.unwrap_or_default();
                Err(GitlabError::Status {
                    status,
                    what: what.to_owned(),
                    body: truncate(&body, 300),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reads_from_the_api_shape() {
        let job: Job = serde_json::from_str(
            r#"{"id":7,"name":"build","stage":"test","status":"success","ref":"main","tag":false,
            "web_url":"https://gitlab/x/-/jobs/7","started_at":"2026-11-22T10:00:00.000Z",
            "pipeline":{"id":3,"project_id":5,"sha":"abc","status":"success"},
            "runner":{"id":9,"description":"docker"},"user":{"id":1,"username":"ana"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            (
                job.id,
                job.git_ref.as_str(),
                job.pipeline.as_ref().unwrap().id
            ),
            (7, "main", 3)
        );
        assert_eq!(job.runner.unwrap().description, "docker");
        assert!(is_terminal("canceled") && !is_terminal("running"));
    }
}
