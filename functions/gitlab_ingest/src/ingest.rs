//! The ingest queue's side: a finished job's trace streamed once, through the line
//! parser into the search index (one document per line, `create` with ids derived from
//! the line) and, byte for byte, into the archive bucket. Memory stays flat whatever the
//! log's size: one chunk, one bulk request and one archive part at a time.
//!
//! Per message (partial batch response, nothing thrown):
//! - the job has not finished (the `after_script` call comes from inside the job): the
//!   message comes back later, each time later (30 s, 1 min, 2 min, ... up to 15 min),
//!   until the queue's redrive moves it to the DLQ;
//! - documents the index refuses for good, or a failed read or archive: the message fails
//!   and comes back; what was indexed stays, and the replay only adds what is missing.

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Serialize;
use spigot_common::archive::ArchiveUpload;
use spigot_common::aws::error_text;
use spigot_common::gitlab::{is_terminal, GitlabClient, GitlabError, Job};
use spigot_common::log_copy::{CopyError, IndexTarget, LogCopy};
use spigot_common::log_index::{index_name, index_template, JobFields, LogSource};
use spigot_common::search::{BulkStats, SearchClient, SearchError, TemplateInstall};
use spigot_common::telemetry::{catalogue::gitlab_ingest as metric, Metrics};

use crate::{IngestRequest, REQUEST_VERSION};

/// The first wait for a job that has not finished; it doubles with every receive.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(30);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(15 * 60);

pub struct IngestConfig {
    pub gitlab: GitlabClient,
    pub search: SearchClient,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub archive_bucket: String,
    pub index_prefix: String,
    pub max_line_bytes: usize,
}

pub struct Ingest {
    config: IngestConfig,
    /// The index template goes in once per cold start.
    template: TemplateInstall,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum JobOutcome {
    Ingested(IngestStats),
    /// Still running (or pending): try again later.
    NotFinished {
        status: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    pub lines: u64,
    pub bytes: u64,
    pub index: String,
    pub archive_key: String,
    /// The runner cut the log at its size limit.
    pub log_truncated: bool,
    pub bulk: BulkStats,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the message is not an ingest request: {0}")]
    BadMessage(String),
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error("reading the trace: {0}")]
    Trace(String),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error("{count} documents refused by the index, e.g. {reasons:?}")]
    Rejected { count: u64, reasons: Vec<String> },
    #[error("the invocation's time ran out")]
    OutOfTime,
}

impl Ingest {
    pub fn new(config: IngestConfig) -> Ingest {
        Ingest {
            config,
            template: TemplateInstall::default(),
        }
    }

    /// Handles a batch message by message; the ones not done come back.
    pub async fn handle_batch(
        &self,
        batch: SqsEvent,
        deadline: Option<Instant>,
    ) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let (mut ingested, mut waiting, mut failed) = (0u64, 0u64, 0u64);
        let (mut lines, mut bytes) = (0u64, 0u64);
        for message in &batch.records {
            let id = message.message_id.clone().unwrap_or_default();
            let work = self.ingest_message(message);
            let outcome = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
                    .await
                    .unwrap_or(Err(IngestError::OutOfTime)),
                None => work.await,
            };
            match outcome {
                Ok(JobOutcome::Ingested(stats)) => {
                    ingested += 1;
                    lines += stats.lines;
                    bytes += stats.bytes;
                    tracing::info!(message_id = %id, stats = %serde_json::to_string(&stats).unwrap_or_default(), "job ingested");
                }
                Ok(JobOutcome::NotFinished { status }) => {
                    waiting += 1;
                    let delay = self.delay_retry(message).await;
                    tracing::info!(message_id = %id, status, delay_secs = delay.as_secs(), "job not finished; trying again later");
                    response.add_failure(id);
                }
                Err(error) => {
                    failed += 1;
                    tracing::error!(message_id = %id, %error, "job not ingested; the message comes back");
                    response.add_failure(id);
                }
            }
        }
        Metrics::new("gitlab_ingest")
            .put(metric::JOBS_INGESTED, ingested)
            .put(metric::JOBS_NOT_FINISHED, waiting)
            .put(metric::JOBS_FAILED, failed)
            .put(metric::LINES_INDEXED, lines)
            .put(metric::BYTES_ARCHIVED, bytes)
            .emit();
        response
    }

    async fn ingest_message(&self, message: &SqsMessage) -> Result<JobOutcome, IngestError> {
        let request: IngestRequest = serde_json::from_str(message.body.as_deref().unwrap_or(""))
            .map_err(|e| IngestError::BadMessage(e.to_string()))?;
        if request.version != REQUEST_VERSION {
            return Err(IngestError::BadMessage(format!(
                "version {} is not {REQUEST_VERSION}",
                request.version
            )));
        }
        self.ingest_job(&request).await
    }

    /// Fetches the job, and when it has finished, indexes and archives its log.
    pub async fn ingest_job(&self, request: &IngestRequest) -> Result<JobOutcome, IngestError> {
        let c = &self.config;
        let job = c.gitlab.job(request.project_id, request.job_id).await?;
        if !is_terminal(&job.status) {
            return Ok(JobOutcome::NotFinished { status: job.status });
        }
        self.template
            .ensure(&c.search, &c.index_prefix, &index_template(&c.index_prefix))
            .await;

        let job_time = job
            .finished_at
            .clone()
            .or_else(|| job.started_at.clone())
            .or_else(|| job.created_at.clone())
            .unwrap_or_else(spigot_common::envelope::now_rfc3339);
        let index = index_name(&c.index_prefix, &job_time);
        let archive_key = format!("gitlab/{}/{}.log", request.project_id, request.job_id);
        let source = LogSource::new(
            "gitlab.job_log",
            &job_fields(request, &job),
            job.started_at.as_deref().unwrap_or(&job_time),
            Some(format!("s3://{}/{archive_key}", c.archive_bucket)),
        );
        let archive = ArchiveUpload::new(
            c.s3.clone(),
            &c.archive_bucket,
            &archive_key,
            "text/plain; charset=utf-8",
        );
        let target = IndexTarget {
            search: &c.search,
            index: &index,
            source: &source,
        };
        let mut copy = LogCopy::new(archive, Some(target), c.max_line_bytes);
        if let Err(error) = self.stream_trace(request, &mut copy).await {
            copy.abort().await;
            return Err(error);
        }
        let copied = copy.finish().await?;
        let bulk = copied.bulk.unwrap_or_default();
        if bulk.rejected > 0 {
            return Err(IngestError::Rejected {
                count: bulk.rejected,
                reasons: bulk.reasons.clone(),
            });
        }
        Ok(JobOutcome::Ingested(IngestStats {
            lines: copied.lines,
            bytes: copied.bytes,
            index,
            archive_key,
            log_truncated: copied.log_truncated,
            bulk,
        }))
    }

    /// Streams the trace into the copy.
    async fn stream_trace(
        &self,
        request: &IngestRequest,
        copy: &mut LogCopy<'_>,
    ) -> Result<(), IngestError> {
        let c = &self.config;
        match c.gitlab.trace(request.project_id, request.job_id).await {
            // The job exists (it was just read): a 404 here means it has no log.
            Err(GitlabError::NotFound { .. }) => {
                tracing::info!(
                    project_id = request.project_id,
                    job_id = request.job_id,
                    "the job has no log"
                );
                Ok(())
            }
            Err(error) => Err(error.into()),
            Ok(mut response) => {
                let silence = c.gitlab.timeout();
                loop {
                    let chunk = tokio::time::timeout(silence, response.chunk())
                        .await
                        .map_err(|_| {
                            IngestError::Trace(format!("GitLab sent nothing for {silence:?}"))
                        })?
                        .map_err(|e| IngestError::Trace(spigot_common::http::error_chain(&e)))?;
                    let Some(chunk) = chunk else { return Ok(()) };
                    copy.write(&chunk).await?;
                }
            }
        }
    }

    /// Hides the message for longer each time it comes back; the delay it got.
    async fn delay_retry(&self, message: &SqsMessage) -> Duration {
        let receives: u32 = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let delay = retry_delay(receives);
        if let Some(receipt) = &message.receipt_handle {
            let result = self
                .config
                .sqs
                .change_message_visibility()
                .queue_url(&self.config.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(delay.as_secs() as i32)
                .send()
                .await;
            if let Err(error) = result {
                // It comes back after the queue's own visibility timeout instead.
                tracing::warn!(error = %error_text(&error), "cannot delay the message");
            }
        }
        delay
    }
}

/// 30 s after the first receive, doubling, at most 15 min.
pub fn retry_delay(receives: u32) -> Duration {
    let doublings = receives.saturating_sub(1).min(16);
    (FIRST_RETRY_DELAY * 2u32.pow(doublings)).min(MAX_RETRY_DELAY)
}

fn job_fields(request: &IngestRequest, job: &Job) -> JobFields {
    let pipeline = job.pipeline.clone().unwrap_or_default();
    let runner = job.runner.clone().unwrap_or_default();
    JobFields {
        source: "gitlab",
        project_id: request.project_id.to_string(),
        project_path: request
            .project_path
            .clone()
            .or_else(|| project_path_from_url(&job.web_url))
            .unwrap_or_default(),
        job_id: job.id.to_string(),
        job_name: job.name.clone(),
        job_stage: job.stage.clone(),
        job_status: job.status.clone(),
        job_url: job.web_url.clone(),
        started_at: job.started_at.clone(),
        finished_at: job.finished_at.clone(),
        pipeline_id: if pipeline.id > 0 {
            pipeline.id.to_string()
        } else {
            String::new()
        },
        git_ref: job.git_ref.clone(),
        sha: if pipeline.sha.is_empty() {
            job.commit.clone().unwrap_or_default().id
        } else {
            pipeline.sha
        },
        runner_id: if runner.id > 0 {
            runner.id.to_string()
        } else {
            String::new()
        },
        runner_description: runner.description,
        user: job.user.clone().unwrap_or_default().username,
    }
}

/// `https://gitlab.example.com/group/app/-/jobs/7` → `group/app`.
fn project_path_from_url(web_url: &str) -> Option<String> {
    let (before, _) = web_url.split_once("/-/jobs/")?;
    let after_scheme = before.split_once("://").map_or(before, |(_, rest)| rest);
    let (_, path) = after_scheme.split_once('/')?;
    (!path.is_empty()).then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stop_at_fifteen_minutes() {
        let secs: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(retry_delay(0).as_secs(), 30);
        assert_eq!(retry_delay(1000).as_secs(), 900);
    }

    #[test]
    fn the_project_path_comes_from_the_job_url() {
        assert_eq!(
            project_path_from_url("https://gitlab.example.com/group/sub/app/-/jobs/7").as_deref(),
            Some("group/sub/app")
        );
        assert_eq!(
            project_path_from_url("http://127.0.0.1:8080/g/a/-/jobs/1").as_deref(),
            Some("g/a")
        );
        assert_eq!(project_path_from_url("nonsense"), None);
    }
}
