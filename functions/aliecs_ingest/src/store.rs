//! Where the records go: timeline documents through the bulk API (`create`, so that a
//! redelivered message adds nothing), and run records by read-merge-write with
//! optimistic concurrency (`if_seq_no` / `if_primary_term`, `_create` for a new run):
//! two invocations merging into one run at once never lose each other's facts.
//! Facts: `reference/search-bulk.md`.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};
use spigot_common::buffer::{BufferError, WebhookBuffer};
use spigot_common::envelope::Envelope;
use spigot_common::jenkins::builds::JobPath;
use spigot_common::search::{SearchClient, SearchError};
use spigot_common::target_routes::{end_of_run_target, END_OF_RUN_ROUTE};

use crate::runs::RunRecord;

/// Tries of one run's read-merge-write against concurrent writers.
const MERGE_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("search: {0}")]
    Search(#[from] SearchError),
    #[error("run {run}: the record changed {MERGE_ATTEMPTS} times while merging")]
    Contended { run: u32 },
    #[error("run {run}: unreadable record: {reason}")]
    Unreadable { run: u32, reason: String },
    #[error("run {run}: cannot queue the end-of-run build: {error}")]
    EorBuild { run: u32, error: BufferError },
}

/// The end-of-run Jenkins build: a `buildWithParameters` request put into the spigot
/// queue, so that it waits there while Jenkins is away. The drain replays it only
/// through its own route (`target_routes::end_of_run_route`), which takes exactly this
/// job's build endpoint.
pub struct EorBuilds {
    pub buffer: WebhookBuffer,
    pub job: JobPath,
}

impl EorBuilds {
    /// The request for `run`. Its id is the run's, so that the FIFO queue drops a second
    /// one sent within its deduplication window.
    pub fn envelope(&self, run: &RunRecord) -> Envelope {
        let mut query = vec![("RUN_NUMBER".to_owned(), run.run_number.to_string())];
        if let Some(run_type) = &run.run_type {
            query.push(("RUN_TYPE".into(), run_type.clone()));
        }
        query.push((
            "DETECTORS".into(),
            run.detectors.iter().cloned().collect::<Vec<_>>().join(","),
        ));
        if let Some(env) = &run.environment_id {
            query.push(("ENVIRONMENT_ID".into(), env.clone()));
        }
        let mut envelope = Envelope::new(
            "POST",
            end_of_run_target(&self.job),
            query,
            vec![("user-agent".into(), "spigot-aliecs-ingest".into())],
            b"",
        )
        .through(END_OF_RUN_ROUTE);
        envelope.id = format!("aliecs-eor-{}", run.run_number);
        envelope
    }
}

/// What merging a batch's run facts did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunsApplied {
    /// Records created or changed.
    pub updated: u64,
    /// Records the facts did not change (repeats).
    pub unchanged: u64,
    pub eor_builds_queued: u64,
}

pub struct RunStore<'a> {
    pub search: &'a SearchClient,
    pub index: &'a str,
    pub eor: Option<&'a EorBuilds>,
}

impl RunStore<'_> {
    /// Merges every run's record of the batch into the stored one.
    pub async fn apply(&self, batch: BTreeMap<u32, RunRecord>) -> Result<RunsApplied, StoreError> {
        let mut applied = RunsApplied::default();
        let results: Vec<Result<(bool, bool), StoreError>> =
            futures::future::join_all(batch.iter().map(|(run, record)| self.merge(*run, record)))
                .await;
        for result in results {
            let (changed, queued) = result?;
            if changed {
                applied.updated += 1;
            } else {
                applied.unchanged += 1;
            }
            applied.eor_builds_queued += u64::from(queued);
        }
        Ok(applied)
    }

    /// One run: (whether the record changed, whether its end-of-run build was queued).
    async fn merge(&self, run: u32, batch: &RunRecord) -> Result<(bool, bool), StoreError> {
        let mut queued = false;
        for _ in 0..MERGE_ATTEMPTS {
            let (stored, version) = self.read(run).await?;
            let mut merged = stored.clone().unwrap_or_default();
            merged.absorb_record(batch);
            if Some(&merged) == stored.as_ref() {
                return Ok((false, queued));
            }
            if let Some(eor) = self.eor {
                if merged.end.is_some() && !merged.eor_build_queued {
                    eor.buffer
                        .enqueue(eor.envelope(&merged))
                        .await
                        .map_err(|error| StoreError::EorBuild { run, error })?;
                    tracing::info!(run, "end-of-run build request queued");
                    merged.eor_build_queued = true;
                    queued = true;
                }
            }
            if self.write(run, &merged, version).await? {
                return Ok((true, queued));
            }
            tracing::info!(run, "the run record changed meanwhile; merging again");
        }
        Err(StoreError::Contended { run })
    }

    /// The stored record and its version (`_seq_no`, `_primary_term`).
    async fn read(&self, run: u32) -> Result<(Option<RunRecord>, Option<(u64, u64)>), StoreError> {
        let (status, body) = self
            .search
            .request(
                http::Method::GET,
                &format!("/{}/_doc/{run}", self.index),
                "application/json",
                Bytes::new(),
            )
            .await?;
        if status == 404 {
            return Ok((None, None));
        }
        let unreadable = |reason: String| StoreError::Unreadable { run, reason };
        if status != 200 {
            return Err(SearchError::Status {
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }
            .into());
        }
        let answer: Value = serde_json::from_slice(&body).map_err(|e| unreadable(e.to_string()))?;
        if answer["found"] != true {
            return Ok((None, None));
        }
        let record: RunRecord = serde_json::from_value(answer["_source"].clone())
            .map_err(|e| unreadable(e.to_string()))?;
        let version = answer["_seq_no"]
            .as_u64()
            .zip(answer["_primary_term"].as_u64());
        Ok((Some(record), version))
    }

    /// Writes `record` if the stored one is still `version` (absent: still none);
    /// `false` when another writer came first.
    async fn write(
        &self,
        run: u32,
        record: &RunRecord,
        version: Option<(u64, u64)>,
    ) -> Result<bool, StoreError> {
        let path = match version {
            None => format!("/{}/_create/{run}", self.index),
            Some((seq_no, term)) => format!(
                "/{}/_doc/{run}?if_seq_no={seq_no}&if_primary_term={term}",
                self.index
            ),
        };
        let body = Bytes::from(serde_json::to_vec(record).expect("a run record serialises"));
        let (status, answer) = self
            .search
            .request(http::Method::PUT, &path, "application/json", body)
            .await?;
        match status {
            200 | 201 => Ok(true),
            409 => Ok(false),
            _ => Err(SearchError::Status {
                status,
                body: String::from_utf8_lossy(&answer).chars().take(300).collect(),
            }
            .into()),
        }
    }
}

/// Mappings of the timeline and run indices: names are keywords, times are dates.
pub fn index_template(prefix: &str) -> Value {
    let keyword = json!({"type": "keyword"});
    let date = json!({"type": "date"});
    let long = json!({"type": "long"});
    let moment = json!({"properties": {"ms": long, "at": date, "user": keyword}});
    json!({
        "index_patterns": [format!("{prefix}-*")],
        "priority": 110,
        "template": {"mappings": {
            "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": keyword}}],
            "properties": {
                "@timestamp": date,
                "aliecs": {"properties": {
                    "enter_state_at": date,
                    "run_number": long,
                    "timestamp_nano": long,
                    "message": {"type": "text"},
                    "error": {"type": "text"},
                }},
                "run_number": long,
                "start": moment,
                "end": moment,
                "duration_ms": long,
            },
        }},
    })
}
