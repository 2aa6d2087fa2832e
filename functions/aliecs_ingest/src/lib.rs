//! aliecs_ingest: AliECS environment and run events (protobuf over Kafka) into the
//! search index — a state timeline with one document per message, and one record per
//! run (start, end, duration, detectors, run type, environment, how it ended) — and,
//! when configured, a Jenkins build request at the end of each run, through the spigot
//! queue. Facts: `reference/aliecs-kafka.md`. See [`decode`], [`timeline`], [`runs`],
//! [`store`].

pub mod decode;
pub mod legacy;
pub mod proto;
pub mod runs;
pub mod store;
pub mod timeline;
pub mod wire;

use spigot_common::config::{optional, required, ConfigError};
use spigot_common::jenkins::builds::JobPath;
use spigot_common::kafka::KafkaEvent;
use spigot_common::search::{
    BulkWriter, SearchAuth, SearchClient, SearchCredentials, TemplateInstall,
};
use spigot_common::telemetry::{catalogue::aliecs_ingest as metric, Metrics};

use crate::decode::DecodeError;
use crate::store::{EorBuilds, RunStore};

pub const DEFAULT_INDEX_PREFIX: &str = "aliecs";
/// How long an end-of-run build claim holds when the deadline is not known.
const DEFAULT_CLAIM_MS: u64 = 90_000;
/// Largest bulk request.
const BULK_BYTES: usize = 8 * 1024 * 1024;

pub struct Deps {
    pub search: SearchClient,
    /// Indices `{prefix}-timeline-YYYY.MM.DD` and `{prefix}-runs`.
    pub index_prefix: String,
    /// Set with `EOR_JENKINS_JOB`.
    pub eor: Option<EorBuilds>,
    /// The index template goes in once per cold start.
    pub template: TemplateInstall,
}

impl Deps {
    /// From `SEARCH_URL`, `SEARCH_INDEX_PREFIX`, `SEARCH_AUTH` (+ `search.json` in
    /// `CREDENTIALS_BUCKET`), and for end-of-run builds `EOR_JENKINS_JOB`,
    /// `SPIGOT_QUEUE_URL` and `PAYLOAD_BUCKET`.
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Deps, ConfigError> {
        let s3 = spigot_common::aws::s3_client(sdk);
        let credentials = match optional("CREDENTIALS_BUCKET") {
            Some(bucket) => {
                spigot_common::secrets::read_json::<SearchCredentials>(&s3, &bucket, "search.json")
                    .await?
            }
            None => None,
        };
        let search = SearchClient::new(
            &required("SEARCH_URL")?,
            SearchAuth::from_env(sdk, credentials)?,
        )?;
        let eor = match optional("EOR_JENKINS_JOB") {
            None => None,
            Some(job) => Some(EorBuilds {
                buffer: spigot_common::buffer::WebhookBuffer::from_env(sdk)?,
                job: JobPath::parse(&job),
            }),
        };
        Ok(Deps {
            search,
            index_prefix: optional("SEARCH_INDEX_PREFIX")
                .unwrap_or_else(|| DEFAULT_INDEX_PREFIX.into()),
            eor,
            template: TemplateInstall::default(),
        })
    }

    pub fn runs_index(&self) -> String {
        format!("{}-runs", self.index_prefix)
    }

    /// The timeline index of a message dated `ms`.
    pub fn timeline_index(&self, ms: i64) -> String {
        let at = runs::Rfc3339::new(ms);
        let day = &at.as_str()[..10];
        format!("{}-timeline-{}", self.index_prefix, day.replace('-', "."))
    }
}

/// What a batch came to; also the invocation's answer.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchSummary {
    pub records: u64,
    pub timeline_created: u64,
    /// Timeline documents already there: redelivered messages.
    pub timeline_existed: u64,
    /// Timeline documents the index refused for good (logged).
    pub timeline_rejected: u64,
    pub runs_updated: u64,
    pub runs_unchanged: u64,
    pub eor_builds_queued: u64,
    /// Records that are not the message their topic carries (logged, skipped).
    pub undecodable: u64,
    /// Records of topics this function does not read (logged, skipped).
    pub unknown_topic: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("search: {0}")]
    Search(#[from] spigot_common::search::SearchError),
    #[error(transparent)]
    Runs(#[from] store::StoreError),
}

/// The documents of one batch, before they are written.
pub struct Prepared<'a> {
    pub bulk: BulkWriter<'a>,
    /// Every run the batch speaks of, its facts folded into one record.
    pub runs: std::collections::BTreeMap<u32, runs::RunRecord>,
    pub summary: BatchSummary,
}

/// Decodes every record of a Kafka event and lays out its timeline documents and run
/// facts; records that cannot be read are counted and skipped.
pub fn prepare<'a>(deps: &'a Deps, event: &KafkaEvent) -> Prepared<'a> {
    let mut bulk = BulkWriter::new(&deps.search, BULK_BYTES);
    let mut summary = BatchSummary::default();
    let mut runs = runs::BatchRuns::default();
    let mut detectors_json = timeline::DetectorsJson::default();
    // A batch's messages are mostly of one day: its index name is made once.
    let mut index: Option<(i64, String)> = None;
    // A timeline document with its action line is a few hundred bytes.
    bulk.reserve(event.len() * 512);
    for record in event.records() {
        summary.records += 1;
        let record = match record {
            Ok(record) => record,
            Err(problem) => {
                tracing::warn!(%problem, "record skipped: unreadable");
                summary.undecodable += 1;
                continue;
            }
        };
        let message = match decode::decode(record.topic, record.value) {
            Ok(message) => message,
            Err(error @ DecodeError::UnknownTopic(_)) => {
                tracing::warn!(record = %record.position(), %error, "record skipped");
                summary.unknown_topic += 1;
                continue;
            }
            Err(error) => {
                tracing::warn!(record = %record.position(), %error, "record skipped: undecodable");
                summary.undecodable += 1;
                continue;
            }
        };
        // Dated by the message; by the record when the message has no time.
        let ms = timeline::message_ms(&message)
            .or(record.timestamp)
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp() * 1000);
        let doc = timeline::document(record.topic, &message, ms);
        let day = ms.div_euclid(runs::DAY_MS);
        let index = match &mut index {
            Some((cached, name)) if *cached == day => name,
            slot => &slot.insert((day, deps.timeline_index(ms))).1,
        };
        bulk.create_with(
            index,
            timeline::document_id(record.topic, record.value).as_str(),
            |out| doc.write_json(out, &mut detectors_json),
        );
        runs.absorb(&message);
    }
    Prepared {
        bulk,
        runs: runs.into_records(),
        summary,
    }
}

/// Handles a Kafka event: the timeline and the run records. A record that cannot be
/// read is skipped; an unreachable search server fails the batch, which comes back
/// (every write is idempotent).
///
/// `deadline_ms` is the invocation's deadline (epoch ms, from the runtime): how long a
/// claim of an end-of-run build made here holds. `None` (tests, benches): a minute
/// and a half from now.
pub async fn handle(
    deps: &Deps,
    event: &KafkaEvent,
    deadline_ms: Option<u64>,
) -> Result<BatchSummary, IngestError> {
    let Prepared {
        bulk,
        runs,
        mut summary,
    } = prepare(deps, event);
    // Nothing to index (Lambda does not send empty batches; a test invoke might): no
    // call, no log line, no metrics.
    if summary.records == 0 {
        return Ok(summary);
    }
    deps.template
        .ensure(
            &deps.search,
            &format!("{}-aliecs", deps.index_prefix),
            &store::index_template(&deps.index_prefix),
        )
        .await;
    let stats = bulk.finish().await?;
    summary.timeline_created = stats.created;
    summary.timeline_existed = stats.existed;
    summary.timeline_rejected = stats.rejected;
    if stats.rejected > 0 {
        tracing::error!(rejected = stats.rejected, reasons = %stats.reasons.join("; "), "timeline documents refused by the index");
    }
    let runs_index = deps.runs_index();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let applied = RunStore {
        search: &deps.search,
        index: &runs_index,
        eor: deps.eor.as_ref(),
        now_ms,
        claim_until_ms: deadline_ms.unwrap_or(now_ms + DEFAULT_CLAIM_MS),
    }
    .apply(runs)
    .await?;
    summary.runs_updated = applied.updated;
    summary.runs_unchanged = applied.unchanged;
    summary.eor_builds_queued = applied.eor_builds_queued;
    tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "batch handled");
    Metrics::new("aliecs_ingest")
        .put(metric::RECORDS_INDEXED, summary.timeline_created)
        .put(metric::RECORDS_REPEATED, summary.timeline_existed)
        .put(
            metric::RECORDS_UNDECODABLE,
            summary.undecodable + summary.unknown_topic,
        )
        .put(metric::RUNS_UPDATED, summary.runs_updated)
        .put(metric::EOR_BUILDS_QUEUED, summary.eor_builds_queued)
        .emit();
    Ok(summary)
}
