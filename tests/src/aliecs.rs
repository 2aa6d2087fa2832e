//! aliecs_ingest on real protocol, handler in-process: the spigot on moto (its FIFO queue
//! takes the end-of-run builds, the sandbox Jenkins has the end-of-run job) and the
//! search server. Tests hand Kafka events to the handler themselves.

use aliecs_ingest::wire::{active_runs, env_info, notification, T0};
use bytes::Bytes;
use serde_json::Value;
use spigot_common::jenkins::builds::JobPath;
use spigot_common::search::{SearchAuth, SearchClient};
use spigot_local::kafka::{kafka_batch_event, Record};
use spigot_local::search_server::SearchServer;
use spigot_local::stack::{eor_job, EOR_JOB};

use crate::{Options, Spigot};

pub struct AliecsWorld {
    pub spigot: Spigot,
    pub search: SearchClient,
    pub deps: aliecs_ingest::Deps,
    pub prefix: String,
    server: SearchServer,
}

impl AliecsWorld {
    /// Indices `{prefix}-timeline-*` and `{prefix}-runs`; end-of-run builds of
    /// [`EOR_JOB`] into the spigot queue.
    pub async fn start(prefix: &str) -> AliecsWorld {
        // The drain takes end-of-run builds through their own route, as
        // send_from_queue does with EOR_JENKINS_JOB set.
        let spigot = Spigot::start(Options {
            eor_jenkins_job: Some(EOR_JOB.into()),
            ..Options::default()
        })
        .await;
        spigot.jenkins.add_job(eor_job());
        let server = SearchServer::start(0)
            .await
            .expect("the search server starts");
        let search = SearchClient::new(server.url(), SearchAuth::None).unwrap();
        let deps = aliecs_ingest::Deps {
            search: search.clone(),
            index_prefix: prefix.into(),
            eor: Some(aliecs_ingest::store::EorBuilds {
                buffer: spigot.buffer().clone(),
                job: JobPath::parse(EOR_JOB),
            }),
            template: Default::default(),
        };
        AliecsWorld {
            spigot,
            search,
            deps,
            prefix: prefix.into(),
            server,
        }
    }

    /// Where the search server listens (the world's [`SearchClient`] talks to it).
    pub fn search_url(&self) -> &str {
        self.server.url()
    }

    /// Hands `event` (JSON, as Lambda delivers it) to the handler.
    pub async fn handle(&self, event: &Value) -> aliecs_ingest::BatchSummary {
        let event = serde_json::from_value(event.clone()).expect("a Kafka event");
        aliecs_ingest::handle(&self.deps, &event, None)
            .await
            .expect("the batch")
    }

    /// The run record's `_source`.
    pub async fn run_record(&self, run: u64) -> Value {
        let record = self
            .search
            .json(
                http::Method::GET,
                &format!("/{}-runs/_doc/{run}", self.prefix),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("the record of run {run}: {e}"));
        record["_source"].clone()
    }

    /// Documents in the timeline indices matching `query`.
    pub async fn timeline_count(&self, query: &Value) -> u64 {
        self.search
            .refresh(&format!("{}-*", self.prefix))
            .await
            .unwrap();
        self.search
            .count(&format!("{}-timeline-*", self.prefix), query)
            .await
            .unwrap()
    }

    /// Builds of the end-of-run job in the sandbox Jenkins, their parameters sorted.
    pub fn eor_builds(&self) -> Vec<Vec<(String, String)>> {
        self.spigot
            .jenkins
            .builds_of(EOR_JOB)
            .into_iter()
            .map(|b| {
                let mut parameters = b.parameters;
                parameters.sort();
                parameters
            })
            .collect()
    }
}

/// One Kafka event holding `records` (topic, value), each topic on partition 0 with
/// increasing offsets.
pub fn kafka_batch(records: &[(&str, Vec<u8>)]) -> Value {
    let records: Vec<Record> = records
        .iter()
        .map(|(topic, value)| Record {
            topic: (*topic).to_owned(),
            value: Bytes::from(value.clone()),
            ..Record::default()
        })
        .collect();
    kafka_batch_event(records.iter().zip(0..))
}

const DETECTORS: &[&str] = &["ITS", "MCH", "MFT", "MID", "TOF", "TPC", "TRD"];

/// `count` legacy notifications, run after run: enter RUNNING, the active runs list
/// (`active_envs` environments in it: the run's own, then the batch's next runs, so
/// the batch names no more runs than it has), leave RUNNING, enter CONFIGURED.
pub fn legacy_records(count: usize, active_envs: usize) -> Vec<(&'static str, Vec<u8>)> {
    let runs = count.div_ceil(4).max(1) as u64;
    (0..count)
        .map(|i| {
            let run = 560_000 + (i / 4) as u64;
            let at = T0 + i as u64 * 1_000;
            let running = env_info(Some(run), "RUNNING", DETECTORS, at);
            match i % 4 {
                0 => ("aliecs.env_state.RUNNING", notification(&running, at)),
                1 => {
                    let others = (1..active_envs as u64).map(|n| {
                        let other = 560_000 + (run - 560_000 + n) % runs;
                        env_info(Some(other), "RUNNING", DETECTORS, at)
                    });
                    let envs: Vec<Vec<u8>> = std::iter::once(running).chain(others).collect();
                    ("aliecs.env_list.RUNNING", active_runs(&envs, at))
                }
                2 => ("aliecs.env_leave_state.RUNNING", notification(&running, at)),
                _ => (
                    "aliecs.env_state.CONFIGURED",
                    notification(&env_info(None, "CONFIGURED", DETECTORS, at), at),
                ),
            }
        })
        .collect()
}
