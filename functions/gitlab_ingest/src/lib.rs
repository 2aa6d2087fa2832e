//! gitlab_ingest: GitLab job logs as searchable lines. One function, two event sources:
//! - API Gateway (`/gitlab`): the Job Hook POST or the legacy `after_script` GET
//!   ([`intake`]) puts a terminal job on the ingest queue;
//! - SQS (the ingest queue): each message becomes the job's log, one search document per
//!   line, and its raw log in S3 ([`ingest`]).

pub mod ingest;
pub mod intake;

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::sqs::SqsEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spigot_common::config::{allow_unsigned, optional, parse_or, required, ConfigError};
use spigot_common::gitlab::{GitlabClient, GitlabSecrets};
use spigot_common::search::{SearchAuth, SearchClient, SearchCredentials};
use spigot_common::secrets::{read_json, Secret, SecretsError};

/// Time kept back from the invocation's deadline to report on the batch.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);
pub const DEFAULT_INDEX_PREFIX: &str = "ci-logs";
/// How long a GitLab request may take to answer (a trace then streams as long as it needs).
const GITLAB_TIMEOUT: Duration = Duration::from_secs(30);

/// What the intake puts on the ingest queue: which job, never a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestRequest {
    pub version: u32,
    pub project_id: u64,
    pub job_id: u64,
    /// `job_hook` or `after_script`.
    pub source: String,
    /// The project's path, when the request named it (the job API does not).
    #[serde(default)]
    pub project_path: Option<String>,
    pub received_at: String,
}

pub const REQUEST_VERSION: u32 = 1;

/// Everything the handlers need, built once per cold start.
pub struct Deps {
    pub intake: intake::Intake,
    pub ingest: ingest::Ingest,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

impl Deps {
    /// From `GITLAB_URL`, `INGEST_QUEUE_URL`, `SEARCH_URL`, `SEARCH_INDEX_PREFIX`,
    /// `SEARCH_AUTH`, `ARCHIVE_BUCKET`, and the secrets in `CREDENTIALS_BUCKET`
    /// (`gitlab.json`, `search.json`), else `GITLAB_TOKEN` and `GITLAB_WEBHOOK_SECRET`.
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Deps, SetupError> {
        let s3 = spigot_common::aws::s3_client(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let (gitlab_secrets, search_credentials) = match optional("CREDENTIALS_BUCKET") {
            Some(bucket) => (
                read_json::<GitlabSecrets>(&s3, &bucket, "gitlab.json")
                    .await?
                    .unwrap_or_default(),
                read_json::<SearchCredentials>(&s3, &bucket, "search.json").await?,
            ),
            None => (
                GitlabSecrets {
                    token: optional("GITLAB_TOKEN").map(Secret::new),
                    webhook_secret: optional("GITLAB_WEBHOOK_SECRET").map(Secret::new),
                },
                None,
            ),
        };
        let queue_url = required("INGEST_QUEUE_URL")?;
        let token = gitlab_secrets.token.ok_or(ConfigError::Missing(
            "the GitLab token (gitlab.json \"token\" in the credentials bucket, or GITLAB_TOKEN)",
        ))?;
        if gitlab_secrets.webhook_secret.is_none() {
            if !allow_unsigned()? {
                return Err(ConfigError::Invalid {
                    name: "ALLOW_UNSIGNED",
                    reason: "no GitLab webhook secret (gitlab.json \"webhook_secret\", or \
                             GITLAB_WEBHOOK_SECRET): /gitlab would take anyone's request. \
                             Configure one, or set ALLOW_UNSIGNED=true on purpose"
                        .into(),
                }
                .into());
            }
            tracing::warn!("ALLOW_UNSIGNED=true: /gitlab takes requests without X-Gitlab-Token");
        }
        let search = SearchClient::new(
            &required("SEARCH_URL")?,
            SearchAuth::from_env(sdk, search_credentials)?,
        )?;
        Ok(Deps {
            intake: intake::Intake {
                sqs: sqs.clone(),
                queue_url: queue_url.clone(),
                webhook_secret: gitlab_secrets.webhook_secret,
            },
            ingest: ingest::Ingest::new(ingest::IngestConfig {
                gitlab: GitlabClient::new(&required("GITLAB_URL")?, token, GITLAB_TIMEOUT)?,
                search,
                s3,
                sqs,
                queue_url,
                archive_bucket: required("ARCHIVE_BUCKET")?,
                index_prefix: optional("SEARCH_INDEX_PREFIX")
                    .unwrap_or_else(|| DEFAULT_INDEX_PREFIX.into()),
                max_line_bytes: parse_or(
                    "MAX_LINE_BYTES",
                    spigot_common::logline::DEFAULT_MAX_LINE_BYTES,
                )?,
            }),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is neither an API Gateway request nor an SQS batch")]
    Unknown,
    #[error("the event does not read as {kind}: {reason}")]
    Malformed { kind: &'static str, reason: String },
}

/// One invocation: an API request or an SQS batch, told apart by their shape.
pub async fn handle(
    deps: &Deps,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Value, EventError> {
    let malformed = |kind| {
        move |e: serde_json::Error| EventError::Malformed {
            kind,
            reason: e.to_string(),
        }
    };
    if event.get("httpMethod").is_some() {
        let request: ApiGatewayProxyRequest =
            serde_json::from_value(event).map_err(malformed("an API Gateway request"))?;
        let response = intake::handle_request(&deps.intake, request).await;
        return Ok(serde_json::to_value(response).expect("a response serialises"));
    }
    if event.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event).map_err(malformed("an SQS batch"))?;
        let response = deps.ingest.handle_batch(batch, deadline).await;
        return Ok(serde_json::to_value(response).expect("a response serialises"));
    }
    Err(EventError::Unknown)
}
