//! log_tailer: follows the Jenkins build of a Port run and streams its console log into
//! the run, then ends the run with the build's result. One tail checkpoint per message
//! (the tail queue); an invocation tails until the build ends or its own time is nearly
//! up, then hands the next checkpoint on. Progress is saved after every post, so a crash
//! repeats at most the last chunk and no byte is lost. See [`tail`] and [`finish`].

pub mod answer;
pub mod finish;
pub mod tail;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use spigot_common::config::{optional, parse_or, required, ConfigError};
use spigot_common::port::{PortClient, PortCredentials, RunStatus, DEFAULT_API_URL};
use spigot_common::port_run::{RunState, TailCheckpoint, CHECKPOINT_VERSION};
use spigot_common::search::{SearchAuth, SearchClient, SearchCredentials, TemplateInstall};
use spigot_common::secrets::JenkinsSecrets;
use spigot_common::telemetry::{catalogue::log_tailer as metric, Metrics};

pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2000;
/// A post's message stays under this many bytes of JSON (Port takes 1 MiB).
pub const DEFAULT_FLUSH_BYTES: usize = 512 * 1024;
/// Time kept back before the invocation's deadline to post, save and hand on.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(15);

pub struct Deps {
    pub port: Arc<PortClient>,
    pub jenkins_secrets: JenkinsSecrets,
    pub state: RunState,
    pub sqs: aws_sdk_sqs::Client,
    pub tail_queue_url: String,
    pub s3: aws_sdk_s3::Client,
    pub archive_bucket: String,
    /// Where build logs are indexed, for routes that ask for it.
    pub search: Option<SearchClient>,
    pub index_prefix: String,
    pub poll_interval: Duration,
    pub flush_bytes: usize,
    /// The index template goes in once per cold start.
    pub template: TemplateInstall,
}

impl Deps {
    /// From `PORT_API_URL`, `TAIL_QUEUE_URL`, `STATE_BUCKET`, `ARCHIVE_BUCKET`,
    /// `POLL_INTERVAL_MS`, `FLUSH_BYTES`, `SEARCH_URL` (optional), `SEARCH_INDEX_PREFIX`,
    /// `SEARCH_AUTH` and the credentials (`port.json`, `jenkins.json`, `search.json`).
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Deps, ConfigError> {
        let s3 = spigot_common::aws::s3_client(sdk);
        let jenkins_secrets = JenkinsSecrets::load(&s3).await?;
        let search = match optional("SEARCH_URL") {
            None => None,
            Some(url) => {
                let credentials = match optional("CREDENTIALS_BUCKET") {
                    Some(bucket) => {
                        spigot_common::secrets::read_json::<SearchCredentials>(
                            &s3,
                            &bucket,
                            "search.json",
                        )
                        .await?
                    }
                    None => None,
                };
                Some(SearchClient::new(
                    &url,
                    SearchAuth::from_env(sdk, credentials)?,
                )?)
            }
        };
        let flush_bytes: usize = parse_or("FLUSH_BYTES", DEFAULT_FLUSH_BYTES)?;
        if !(1024..=900 * 1024).contains(&flush_bytes) {
            return Err(ConfigError::Invalid {
                name: "FLUSH_BYTES",
                reason: "must be 1024 to 921600: a post must stay under Port's 1 MiB".into(),
            });
        }
        Ok(Deps {
            port: Arc::new(PortClient::new(
                &optional("PORT_API_URL").unwrap_or_else(|| DEFAULT_API_URL.into()),
                PortCredentials::load(&s3).await?,
            )?),
            jenkins_secrets,
            state: RunState::new(s3.clone(), &required("STATE_BUCKET")?),
            sqs: aws_sdk_sqs::Client::new(sdk),
            tail_queue_url: required("TAIL_QUEUE_URL")?,
            archive_bucket: required("ARCHIVE_BUCKET")?,
            s3,
            search,
            index_prefix: optional("SEARCH_INDEX_PREFIX").unwrap_or_else(|| "ci-logs".into()),
            poll_interval: Duration::from_millis(
                parse_or("POLL_INTERVAL_MS", DEFAULT_POLL_INTERVAL_MS)?.max(100),
            ),
            flush_bytes,
            template: TemplateInstall::default(),
        })
    }
}

/// Tails every checkpoint of the batch at once; the ones that could not be handled come
/// back.
pub async fn handle_batch(deps: &Deps, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let work = event.records.iter().map(|message| async move {
        let id = message.message_id.clone().unwrap_or_default();
        let checkpoint: Result<TailCheckpoint, _> =
            serde_json::from_str(message.body.as_deref().unwrap_or(""));
        let result = match checkpoint {
            Ok(checkpoint) if checkpoint.version == CHECKPOINT_VERSION => {
                tail::tail(deps, checkpoint, deadline).await
            }
            Ok(checkpoint) => Err(tail::TailError::Checkpoint(format!(
                "version {} is not {CHECKPOINT_VERSION}",
                checkpoint.version
            ))),
            Err(error) => Err(tail::TailError::Checkpoint(error.to_string())),
        };
        (id, result)
    });
    let results = futures::future::join_all(work).await;
    let mut response = SqsBatchResponse::default();
    let (mut finished, mut handed, mut failed) = (0, 0, 0);
    let (mut succeeded, mut ended_failure, mut posts) = (0, 0, 0);
    let mut worst_latency: Option<Duration> = None;
    for (id, result) in results {
        match result {
            Ok(report) => {
                tracing::info!(message_id = %id, tailed = ?report.tailed, posts = report.posts, peak_held_bytes = report.peak_held_bytes, "tail checkpoint handled");
                posts += report.posts;
                worst_latency = worst_latency.max(report.worst_post_latency);
                match report.ended {
                    Some(RunStatus::Success) => succeeded += 1,
                    Some(RunStatus::Failure) => ended_failure += 1,
                    None => {}
                }
                match report.tailed {
                    tail::Tailed::Finished => finished += 1,
                    tail::Tailed::HandedOn => handed += 1,
                }
            }
            Err(error) => {
                failed += 1;
                tracing::error!(message_id = %id, %error, "tail checkpoint not handled; it comes back");
                response.add_failure(id);
            }
        }
    }
    let mut metrics = Metrics::new("log_tailer")
        .put(metric::RUNS_FINISHED, finished)
        .put(metric::RUNS_SUCCEEDED, succeeded)
        .put(metric::RUNS_ENDED_FAILURE, ended_failure)
        .put(metric::CHECKPOINTS_HANDED_ON, handed)
        .put(metric::CHECKPOINTS_FAILED, failed)
        .put(metric::LOG_POSTS, posts);
    if let Some(latency) = worst_latency {
        metrics = metrics.put(metric::LOG_LATENCY_MAX, latency.as_millis() as u64);
    }
    metrics.emit();
    response
}
