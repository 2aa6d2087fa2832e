//! Secrets from the credentials bucket, or from the environment when no bucket is set.
//! A [`Secret`] never prints its value, so it cannot leak through `Debug` into a log.

use serde::Deserialize;

use crate::config::optional;
use crate::json_shape::ShapeError;

#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `github.json` in the credentials bucket.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GithubSecrets {
    #[serde(default)]
    pub webhook_secrets: Vec<Secret>,
    /// `X-Gitlab-Token` values accepted on routes that verify GitLab's token (several
    /// during a rotation).
    #[serde(default)]
    pub gitlab_tokens: Vec<Secret>,
}

/// `jenkins.json` in the credentials bucket: a user and its API token (Basic auth; API
/// tokens need no CSRF crumb).
#[derive(Debug, Clone, Deserialize)]
pub struct JenkinsCredentials {
    pub username: String,
    pub api_token: Secret,
}

/// `jenkins.json` read for named Jenkins servers (port_runner, log_tailer): per-server
/// credentials under `servers`, with the top-level `username` / `api_token` (or
/// `JENKINS_USERNAME` / `JENKINS_API_TOKEN`) for servers not listed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JenkinsSecrets {
    pub username: Option<String>,
    pub api_token: Option<Secret>,
    #[serde(default)]
    pub servers: std::collections::HashMap<String, JenkinsCredentials>,
}

impl JenkinsSecrets {
    pub fn for_server(&self, name: &str) -> Option<JenkinsCredentials> {
        self.servers.get(name).cloned().or_else(|| {
            Some(JenkinsCredentials {
                username: self.username.clone()?,
                api_token: self.api_token.clone()?,
            })
        })
    }

    /// From `jenkins.json` in the credentials bucket, or the environment.
    pub async fn load(s3: &aws_sdk_s3::Client) -> Result<Self, SecretsError> {
        match optional("CREDENTIALS_BUCKET") {
            Some(bucket) => Ok(read_json(s3, &bucket, "jenkins.json")
                .await?
                .unwrap_or_default()),
            None => Ok(JenkinsSecrets {
                username: optional("JENKINS_USERNAME"),
                api_token: optional("JENKINS_API_TOKEN").map(Secret::new),
                servers: Default::default(),
            }),
        }
    }
}

#[derive(thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read s3://{bucket}/{key}: {reason}")]
    Read {
        bucket: String,
        key: String,
        reason: String,
    },
    /// Names the file and where in it, never a value of it (see [`crate::json_shape`]).
    #[error("s3://{bucket}/{key}: {problem}")]
    Shape {
        bucket: String,
        key: String,
        problem: ShapeError,
    },
}

/// As [`crate::config::ConfigError`]: what `main` prints is the sentence.
impl std::fmt::Debug for SecretsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A secret the function cannot start without is a configuration error.
impl From<SecretsError> for crate::config::ConfigError {
    fn from(error: SecretsError) -> Self {
        crate::config::ConfigError::Invalid {
            name: "CREDENTIALS_BUCKET",
            reason: error.to_string(),
        }
    }
}

/// Credentials files and run state are small: a larger object is refused unread.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Reads a JSON object from the credentials bucket; a missing object is `None`.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<T>, SecretsError> {
    let read_error = |reason: String| SecretsError::Read {
        bucket: bucket.into(),
        key: key.into(),
        reason,
    };
    let mut object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => object,
        Err(err) => {
            if err.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                return Ok(None);
            }
            return Err(read_error(crate::aws::error_text(&err)));
        }
    };
    let too_large = || read_error(format!("larger than {MAX_DOCUMENT_BYTES} bytes"));
    if object
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_BYTES as i64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .map_err(|e| read_error(e.to_string()))?
    {
        if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    crate::json_shape::parse(&bytes)
        .map(Some)
        .map_err(|problem| SecretsError::Shape {
            bucket: bucket.into(),
            key: key.into(),
            problem,
        })
}

/// The spigot's secrets: webhook secrets (several during a rotation) and Jenkins credentials.
#[derive(Debug, Clone, Default)]
pub struct SpigotSecrets {
    pub github: GithubSecrets,
    pub jenkins: Option<JenkinsCredentials>,
}

impl SpigotSecrets {
    /// From `CREDENTIALS_BUCKET` when set, else `GITHUB_WEBHOOK_SECRETS`, `JENKINS_USERNAME`
    /// and `JENKINS_API_TOKEN`.
    pub async fn load(s3: &aws_sdk_s3::Client) -> Result<Self, SecretsError> {
        match optional("CREDENTIALS_BUCKET") {
            Some(bucket) => Self::from_bucket(s3, &bucket).await,
            None => Ok(Self::from_env()),
        }
    }

    pub async fn from_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Self, SecretsError> {
        let github = read_json::<GithubSecrets>(s3, bucket, "github.json").await?;
        Ok(Self {
            github: github.unwrap_or_default(),
            jenkins: read_json(s3, bucket, "jenkins.json").await?,
        })
    }

    pub fn from_env() -> Self {
        let list = |name| {
            optional(name)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Secret::new)
                        .collect()
                })
                .unwrap_or_default()
        };
        let webhook_secrets = list("GITHUB_WEBHOOK_SECRETS");
        let gitlab_tokens = list("GITLAB_WEBHOOK_TOKENS");
        let jenkins = match (optional("JENKINS_USERNAME"), optional("JENKINS_API_TOKEN")) {
            (Some(username), Some(token)) => Some(JenkinsCredentials {
                username,
                api_token: Secret::new(token),
            }),
            _ => None,
        };
        Self {
            github: GithubSecrets {
                webhook_secrets,
                gitlab_tokens,
            },
            jenkins,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let creds = JenkinsCredentials {
            username: "ci".into(),
            api_token: Secret::new("hunter2"),
        };
        let printed = format!("{creds:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("ci"));
    }
}
