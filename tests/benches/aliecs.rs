//! `cargo bench -p spigot-tests --bench aliecs`: aliecs_ingest's throughput from the
//! Kafka event JSON Lambda delivers to the bulk request body, on one core: the event
//! parsed (as the runtime does for the function, into its event type), every record's base64 and protobuf decoded, its
//! timeline document and bulk action written, its run facts taken. No network: the
//! documents are counted in the bulk writer, not sent.
//!
//! Goal: ≥ 1,000,000 records/s for legacy messages (`aliecs.env_state.*`,
//! `aliecs.env_leave_state.*`, `aliecs.env_list.RUNNING`). The newer `aliecs.run`
//! events are shown beside them.
//!
//! Prints a table; never fails the build on a missed target.

#[allow(dead_code)]
mod report;

use std::time::{Duration, Instant};

use aliecs_ingest::wire::{run_event, T0};
use report::{print_table, Row};
use spigot_common::kafka::KafkaEvent;
use spigot_common::search::{SearchAuth, SearchClient};
use spigot_tests::aliecs::{kafka_batch, legacy_records};

/// Records per Kafka event: about what a 6 MB invocation payload holds.
const RECORDS: usize = 10_000;
// Many short rounds over a few seconds, the best judged (the median shown beside it):
// this VM's speed varies by a third from moment to moment, and for a second at a time.
const ROUNDS: usize = 200;
const TARGET_RECORDS_PER_S: f64 = 1_000_000.0;

fn main() {
    let deps = aliecs_ingest::Deps {
        // Never called: prepare() only lays the documents out.
        search: SearchClient::new("http://127.0.0.1:9", SearchAuth::None).unwrap(),
        index_prefix: aliecs_ingest::DEFAULT_INDEX_PREFIX.into(),
        eor: None,
        template: Default::default(),
    };
    let rows = vec![
        measure(&deps, "legacy messages", &legacy_records(RECORDS, 1), true),
        measure(&deps, "aliecs.run events", &run_records(), false),
    ];
    print_table(&rows);
}

/// START_ACTIVITY and STOP_ACTIVITY of run after run.
fn run_records() -> Vec<(&'static str, Vec<u8>)> {
    (0..RECORDS)
        .map(|i| {
            let run = 560_000 + (i / 2) as u64;
            let at = T0 + i as u64 * 1_000;
            let (transition, state) = if i % 2 == 0 {
                ("START_ACTIVITY", "CONFIGURED")
            } else {
                ("STOP_ACTIVITY", "RUNNING")
            };
            (
                "aliecs.run",
                run_event(at, run, transition, 1, state, "anna"),
            )
        })
        .collect()
}

fn measure(
    deps: &aliecs_ingest::Deps,
    what: &str,
    records: &[(&str, Vec<u8>)],
    judged: bool,
) -> Row {
    let benchmark = format!("aliecs_ingest, Kafka event JSON to bulk documents, {what}, one core");
    // The bytes Lambda hands the runtime.
    let event_json = serde_json::to_vec(&kafka_batch(records)).expect("the event serialises");
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        // As lambda_runtime reads it (serde_path_to_error over serde_json).
        let event: KafkaEvent = serde_path_to_error::deserialize(
            &mut serde_json::Deserializer::from_slice(&event_json),
        )
        .expect("the event parses");
        let prepared = aliecs_ingest::prepare(deps, &event);
        let elapsed = started.elapsed();
        // Every record became a document; a bench that dropped them would be fast.
        let documents = prepared.bulk.pending_items();
        if documents != records.len() || prepared.summary.undecodable > 0 {
            return Row::failed(
                benchmark,
                ">= 1,000,000 records/s",
                &format!(
                    "{documents} documents from {} records: {:?}",
                    records.len(),
                    prepared.summary
                ),
            );
        }
        std::hint::black_box(&prepared.runs);
        times.push(elapsed);
    }
    times.sort();
    let rate = |time: Duration| records.len() as f64 / time.as_secs_f64();
    let per_s = rate(times[0]);
    let value = format!(
        "{:.0} records/s ({} records, {:.1} MB event, best of {ROUNDS}; median {:.0})",
        per_s,
        records.len(),
        event_json.len() as f64 / 1e6,
        rate(times[ROUNDS / 2]),
    );
    if judged {
        Row::judged(
            benchmark,
            value,
            ">= 1,000,000 records/s",
            per_s >= TARGET_RECORDS_PER_S,
        )
    } else {
        Row::info(benchmark, value)
    }
}
