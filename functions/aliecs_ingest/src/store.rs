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
use spigot_common::search::{template_priority, SearchClient, SearchError};
use spigot_common::target_routes::{end_of_run_target, END_OF_RUN_ROUTE};

use crate::runs::RunRecord;

/// Tries of one run's read-merge-write against concurrent writers.
const MERGE_ATTEMPTS: u32 = 8;
/// Run records merged at once. Each merge holds a connection to the search cluster, and
/// one active-runs list can name thousands of runs: unbounded, a batch ran out of file
/// descriptors (Lambda allows 1,024) and failed whole.
pub const MERGES_IN_FLIGHT: usize = 16;

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
    /// Another invocation holds the claim on the run's end-of-run build and has not
    /// confirmed it yet: the batch comes back, by then sent or claimable again.
    #[error(
        "run {run}: another invocation is sending the end-of-run build (claimed until {until_ms})"
    )]
    EorBuildClaimed { run: u32, until_ms: u64 },
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
    /// Now, epoch ms.
    pub now_ms: u64,
    /// How long a claim of this invocation holds (epoch ms): its deadline, after which
    /// it cannot be sending any more.
    pub claim_until_ms: u64,
}

impl RunStore<'_> {
    /// Merges every run's record of the batch into the stored one.
    pub async fn apply(&self, batch: BTreeMap<u32, RunRecord>) -> Result<RunsApplied, StoreError> {
        let mut applied = RunsApplied::default();
        use futures::StreamExt;
        let results: Vec<Result<(bool, bool), StoreError>> =
            futures::stream::iter(batch.iter().map(|(run, record)| self.merge(*run, record)))
                .buffer_unordered(MERGES_IN_FLIGHT)
                .collect()
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
    ///
    /// The build is sent only by the invocation whose conditional write claimed it, so
    /// two invocations folding the same end send (and count) it once; the claim holds
    /// until the claimer's deadline, so a claimer that dies before sending is replaced.
    async fn merge(&self, run: u32, batch: &RunRecord) -> Result<(bool, bool), StoreError> {
        for _ in 0..MERGE_ATTEMPTS {
            let (stored, version) = self.read(run).await?;
            let mut merged = stored.clone().unwrap_or_default();
            merged.absorb_record(batch);
            let wants_build =
                self.eor.is_some() && merged.end.is_some() && !merged.eor_build_queued;
            let claimed_elsewhere = merged
                .eor_build_claimed_until
                .filter(|until| *until >= self.now_ms);
            let claiming = wants_build && claimed_elsewhere.is_none();
            if claiming {
                merged.eor_build_claimed_until = Some(self.claim_until_ms);
            }
            if Some(&merged) == stored.as_ref() {
                if let (true, Some(until_ms)) = (wants_build, claimed_elsewhere) {
                    return Err(StoreError::EorBuildClaimed { run, until_ms });
                }
                return Ok((false, false));
            }
            if !self.write(run, &merged, version).await? {
                tracing::info!(run, "the run record changed meanwhile; merging again");
                continue;
            }
            if let (true, Some(until_ms)) = (wants_build, claimed_elsewhere) {
                // The facts are in; the build is the claimer's, or ours once it expires.
                return Err(StoreError::EorBuildClaimed { run, until_ms });
            }
            if !claiming {
                return Ok((true, false));
            }
            let eor = self.eor.expect("claiming needs the end-of-run job");
            eor.buffer
                .enqueue(eor.envelope(&merged))
                .await
                .map_err(|error| StoreError::EorBuild { run, error })?;
            tracing::info!(run, "end-of-run build request queued");
            self.confirm_build(run).await;
            return Ok((true, true));
        }
        Err(StoreError::Contended { run })
    }

    /// Marks the run's end-of-run build queued. Not done (contention or an error), the
    /// claim expires and the build may be sent once more: at least once, never lost.
    async fn confirm_build(&self, run: u32) {
        for _ in 0..MERGE_ATTEMPTS {
            let Ok((Some(mut record), version)) = self.read(run).await else {
                break;
            };
            record.eor_build_queued = true;
            record.eor_build_claimed_until = None;
            match self.write(run, &record, version).await {
                Ok(true) => return,
                Ok(false) => continue,
                Err(_) => break,
            }
        }
        tracing::warn!(run, "end-of-run build sent but not marked queued; it may be sent again once the claim expires");
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

/// Base priority of the AliECS template: above the log documents' (a stack whose AliECS
/// prefix extends its log prefix gets the AliECS mappings).
pub const ALIECS_TEMPLATE_PRIORITY: u64 = 400;

/// Mappings of the timeline and run indices: names are keywords, times are dates. The
/// patterns name exactly this prefix's two kinds of index, and the priority grows with
/// the prefix, so stacks with prefixes such as `aliecs` and `aliecs-dev` (or `o2` and
/// `o2noeor`) install side by side on one cluster.
pub fn index_template(prefix: &str) -> Value {
    let keyword = json!({"type": "keyword"});
    let date = json!({"type": "date"});
    let long = json!({"type": "long"});
    let moment = json!({"properties": {"ms": long, "at": date, "user": keyword}});
    json!({
        "index_patterns": [format!("{prefix}-timeline-*"), format!("{prefix}-runs")],
        "priority": template_priority(ALIECS_TEMPLATE_PRIORITY, prefix),
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
