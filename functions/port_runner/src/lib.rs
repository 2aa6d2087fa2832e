//! port_runner: Port self-service action runs (Kafka, `ORG_ID.runs`) become Jenkins
//! builds. Every record is handled on its own and nothing fails the batch: a Kafka
//! partition is never blocked by one bad record or one slow build. Per record:
//! decode ([`message`]) → route ([`routes`]) → claim the run id → trigger Jenkins, link
//! the run in Port, write its first log lines → hand a tail checkpoint to log_tailer
//! ([`run`]).

pub mod message;
pub mod routes;
pub mod run;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use spigot_common::config::{optional, required, ConfigError};
use spigot_common::kafka::KafkaEvent;
use spigot_common::port::{PortClient, PortCredentials, DEFAULT_API_URL};
use spigot_common::port_run::RunState;
use spigot_common::secrets::JenkinsSecrets;
use spigot_common::telemetry::{catalogue::port_runner as metric, Metrics};

use crate::routes::Routes;

/// Records handled at once: each may wait a few seconds for its build number.
const CONCURRENCY: usize = 4;

pub struct Deps {
    pub routes: Routes,
    pub port: Arc<PortClient>,
    pub jenkins_secrets: JenkinsSecrets,
    pub state: RunState,
    pub sqs: aws_sdk_sqs::Client,
    pub tail_queue_url: String,
    /// How long to wait for a queued build to get its number before handing over.
    pub build_number_wait: Duration,
}

impl Deps {
    /// From `ROUTES` (or `routes.json` in `CREDENTIALS_BUCKET`), `PORT_API_URL`,
    /// `TAIL_QUEUE_URL`, `STATE_BUCKET` and the credentials (`port.json`,
    /// `jenkins.json`).
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Deps, ConfigError> {
        let s3 = spigot_common::aws::s3_client(sdk);
        let routes_text = match optional("ROUTES") {
            Some(inline) => inline,
            None => {
                let bucket = required("CREDENTIALS_BUCKET").map_err(|_| {
                    ConfigError::Missing("ROUTES (or routes.json in CREDENTIALS_BUCKET)")
                })?;
                let routes: Option<serde_json::Value> =
                    spigot_common::secrets::read_json(&s3, &bucket, "routes.json").await?;
                routes
                    .ok_or(ConfigError::Missing(
                        "routes.json in the credentials bucket (or ROUTES)",
                    ))?
                    .to_string()
            }
        };
        let routes = Routes::parse(&routes_text).map_err(|e| ConfigError::Invalid {
            name: "ROUTES",
            reason: e.to_string(),
        })?;
        let jenkins_secrets = JenkinsSecrets::load(&s3).await?;
        let port = PortClient::new(
            &optional("PORT_API_URL").unwrap_or_else(|| DEFAULT_API_URL.into()),
            PortCredentials::load(&s3).await?,
        )?;
        Ok(Deps {
            routes,
            port: Arc::new(port),
            jenkins_secrets,
            state: RunState::new(s3, &required("STATE_BUCKET")?),
            sqs: aws_sdk_sqs::Client::new(sdk),
            tail_queue_url: required("TAIL_QUEUE_URL")?,
            build_number_wait: Duration::from_secs(3),
        })
    }
}

/// What a batch came to; also the invocation's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub records: u64,
    /// Builds started and handed to log_tailer.
    pub started: u64,
    /// Runs already started by an earlier delivery of the record.
    pub duplicates: u64,
    /// Actions no route names, left to other consumers.
    pub skipped: u64,
    /// Runs ended FAILURE in Port (Jenkins refused, no route, ...).
    pub failed: u64,
    /// Records that are not run requests: logged and skipped.
    pub rejected: u64,
    /// Runs of another invocation method (a port-agent WEBHOOK run, ...) seen on the
    /// topic: their own consumer's, skipped.
    pub other_invocation: u64,
}

/// What a record asks of this invocation.
enum Work {
    Start(message::RunRequest),
    /// A run that names itself but cannot be used: ended FAILURE, saying why.
    End(String, message::MessageError),
    Done(run::Outcome),
}

/// Handles every record of the batch (a Kafka event, read leniently); never fails it.
/// A run that appears twice in the batch starts once: the runs of a batch go at once,
/// and two deliveries of one run must not race for it.
pub async fn handle(deps: &Deps, event: &KafkaEvent) -> BatchSummary {
    let mut runs_in_batch = HashSet::new();
    let work: Vec<Work> = event
        .records()
        .map(|record| {
            let record = match record {
                Ok(record) => record,
                Err(problem) => {
                    tracing::warn!(%problem, "record skipped: unreadable");
                    return Work::Done(run::Outcome::Rejected);
                }
            };
            let request = match message::decode(record.value) {
                Ok(request) => request,
                Err(unusable) => {
                    let record = record.position();
                    let run_id = unusable.run_id.as_deref().unwrap_or("");
                    let problem = unusable.problem;
                    return match (&unusable.run_id, &problem) {
                        (_, message::MessageError::NotKafka(_)) => {
                            tracing::info!(%record, run_id, %problem, "run skipped: another consumer's");
                            Work::Done(run::Outcome::OtherInvocation)
                        }
                        (Some(run_id), problem) if problem.ends_the_run() => {
                            tracing::warn!(%record, run_id, %problem, "run cannot be started; ending it FAILURE");
                            Work::End(run_id.clone(), problem.clone())
                        }
                        _ => {
                            tracing::warn!(%record, run_id, %problem, "record skipped: not a run request");
                            Work::Done(run::Outcome::Rejected)
                        }
                    };
                }
            };
            if !runs_in_batch.insert(request.run_id.clone()) {
                tracing::info!(record = %record.position(), run_id = %request.run_id, "run delivered twice in the batch; started once");
                return Work::Done(run::Outcome::Duplicate);
            }
            Work::Start(request)
        })
        .collect();
    let outcomes: Vec<run::Outcome> = futures::stream::iter(work)
        .map(|work| async move {
            match work {
                Work::Start(request) => run::start(deps, &request).await,
                Work::End(run_id, problem) => {
                    run::end_failed(deps, &run_id, problem.status_label(), &problem.to_string())
                        .await;
                    run::Outcome::Failed
                }
                Work::Done(outcome) => outcome,
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut summary = BatchSummary {
        records: outcomes.len() as u64,
        ..BatchSummary::default()
    };
    for outcome in outcomes {
        match outcome {
            run::Outcome::Started => summary.started += 1,
            run::Outcome::Duplicate => summary.duplicates += 1,
            run::Outcome::Skipped => summary.skipped += 1,
            run::Outcome::Failed => summary.failed += 1,
            run::Outcome::Rejected => summary.rejected += 1,
            run::Outcome::OtherInvocation => summary.other_invocation += 1,
        }
    }
    tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "batch handled");
    Metrics::new("port_runner")
        .put(metric::RUNS_STARTED, summary.started)
        .put(metric::RUNS_DUPLICATE, summary.duplicates)
        .put(metric::RUNS_SKIPPED, summary.skipped)
        .put(metric::RUNS_FAILED, summary.failed)
        .put(metric::RECORDS_REJECTED, summary.rejected)
        .put(metric::RUNS_OTHER_INVOCATION, summary.other_invocation)
        .emit();
    summary
}
