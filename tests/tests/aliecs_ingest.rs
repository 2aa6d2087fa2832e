//! aliecs_ingest against the search server and the spigot on moto: a run told by both
//! message generations, out of order and twice, becomes one timeline document per
//! message and one run record; bad records are counted and skipped; the end-of-run
//! build request goes once into the spigot queue and the drain takes it to Jenkins.

use std::time::Duration;

use aliecs_ingest::store::EorBuilds;
use aliecs_ingest::wire::{cat, env_info, int, len, notification, run_event, ENV, T0};
use bytes::Bytes;
use serde_json::{json, Value};
use spigot_common::jenkins::builds::JobPath;
use spigot_common::search::{SearchAuth, SearchClient};
use spigot_local::jenkins::builds::{BuildScript, SandboxJob};
use spigot_local::kafka::{kafka_event, Record};
use spigot_local::search_server::SearchServer;
use spigot_tests::{Options, Spigot};

const PREFIX: &str = "aliecs-test";
const RUN: u64 = 559_123;

const DETECTORS: &[&str] = &["ITS", "TPC"];

fn notification_of(state: &str, entered: u64, at: u64) -> Vec<u8> {
    notification(&env_info(Some(RUN), state, DETECTORS, entered), at)
}

fn run_event_of(at: u64, transition: &str, state: &str) -> Vec<u8> {
    // transitionStatus 1: STARTED.
    run_event(at, RUN, transition, 1, state, "anna")
}

/// One Kafka event holding `records` (topic, value), each on its own partition key.
fn event(records: &[(&str, Vec<u8>)]) -> Value {
    let mut event = kafka_event(&Record::default(), 0);
    let mut all = serde_json::Map::new();
    for (offset, (topic, value)) in records.iter().enumerate() {
        let record = Record {
            topic: (*topic).to_owned(),
            partition: 0,
            key: None,
            value: Bytes::from(value.clone()),
            headers: Vec::new(),
        };
        let one = kafka_event(&record, offset as i64);
        let key = format!("{topic}-0");
        let entry = one["records"][&key][0].clone();
        all.entry(key)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(entry);
    }
    event["records"] = Value::Object(all);
    event
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_from_both_generations_out_of_order_and_twice_gives_one_record_and_one_build() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.jenkins.add_job(SandboxJob::new(
        "aliecs/eor",
        &["RUN_NUMBER", "RUN_TYPE", "DETECTORS", "ENVIRONMENT_ID"],
        BuildScript {
            lines: vec!["post-run checks".into()],
            line_interval: Duration::from_millis(10),
            result: "SUCCESS".into(),
        },
    ));
    let server = SearchServer::start(0)
        .await
        .expect("the search server starts");
    let search = SearchClient::new(server.url(), SearchAuth::None).unwrap();
    let deps = aliecs_ingest::Deps {
        search: search.clone(),
        index_prefix: PREFIX.into(),
        eor: Some(EorBuilds {
            buffer: spigot.buffer().clone(),
            job: JobPath::parse("aliecs/eor"),
        }),
        template: Default::default(),
    };
    let entered = T0 + 2_000;
    // The end comes first: legacy topics have no key and land on random partitions.
    let records = [
        (
            "aliecs.env_leave_state.RUNNING",
            notification_of("RUNNING", entered, T0 + 61_000),
        ),
        (
            "aliecs.run",
            run_event_of(T0 + 60_000, "STOP_ACTIVITY", "RUNNING"),
        ),
        ("aliecs.env_list.RUNNING", int(2, T0 + 61_500)),
        (
            "aliecs.env_state.RUNNING",
            notification_of("RUNNING", entered, entered),
        ),
        (
            "aliecs.run",
            run_event_of(T0, "START_ACTIVITY", "CONFIGURED"),
        ),
        (
            "aliecs.env_list.RUNNING",
            cat(&[
                len(1, &env_info(Some(RUN), "RUNNING", DETECTORS, entered)),
                int(2, entered),
            ]),
        ),
        (
            "aliecs.env_state.CONFIGURED",
            notification(
                &env_info(None, "CONFIGURED", DETECTORS, T0 + 62_000),
                T0 + 62_000,
            ),
        ),
        // Not protobuf, and a topic nobody asked for.
        ("aliecs.run", b"\xff\xff\xff not protobuf".to_vec()),
        ("aliecs.unheard_of", int(2, T0)),
    ];
    let batch = event(&records);
    let first = aliecs_ingest::handle(&deps, &batch)
        .await
        .expect("the batch");
    assert_eq!(
        (
            first.records,
            first.timeline_created,
            first.undecodable,
            first.unknown_topic
        ),
        (9, 7, 1, 1),
        "{first:?}"
    );
    assert_eq!(
        (first.runs_updated, first.eor_builds_queued),
        (1, 1),
        "{first:?}"
    );

    // Delivered again: nothing new, no second build.
    let again = aliecs_ingest::handle(&deps, &batch)
        .await
        .expect("the batch again");
    assert_eq!(
        (
            again.timeline_created,
            again.timeline_existed,
            again.runs_unchanged,
            again.eor_builds_queued
        ),
        (0, 7, 1, 0),
        "{again:?}"
    );

    search.refresh(&format!("{PREFIX}-*")).await.unwrap();
    assert_eq!(
        search
            .count(&format!("{PREFIX}-timeline-*"), &json!({"match_all": {}}))
            .await
            .unwrap(),
        7
    );
    let sor = search
        .search(
            &format!("{PREFIX}-timeline-*"),
            &json!({"query": {"bool": {"filter": [
                {"term": {"event.action": "enter_state"}},
                {"term": {"aliecs.state": "RUNNING"}},
            ]}}}),
        )
        .await
        .unwrap();
    let doc = &sor["hits"]["hits"][0]["_source"];
    assert_eq!(doc["aliecs"]["environment_id"], ENV, "{doc}");
    assert_eq!(doc["aliecs"]["run_number"], RUN);
    assert_eq!(doc["aliecs"]["detectors"], json!(["ITS", "TPC"]));
    assert_eq!(doc["@timestamp"], "2025-11-22T10:00:02.000Z");

    let record = search
        .json(
            http::Method::GET,
            &format!("/{PREFIX}-runs/_doc/{RUN}"),
            None,
        )
        .await
        .unwrap();
    let run = &record["_source"];
    assert_eq!(run["environment_id"], ENV, "{run}");
    assert_eq!(run["run_type"], "PHYSICS");
    assert_eq!(run["detectors"], json!(["ITS", "TPC"]));
    assert_eq!(run["start"]["ms"], T0, "SOSOR, the first sign of the run");
    assert_eq!(run["start"]["user"], "anna");
    assert_eq!(run["end"]["ms"], T0 + 60_000, "SOEOR");
    assert_eq!(run["duration_ms"], 60_000);
    assert_eq!(run["ended"], "normal");
    assert_eq!(run["status"], "ended");
    assert_eq!(run["eor_build_queued"], true);

    // The build request waits in the spigot queue; the drain takes it to Jenkins.
    assert_eq!(
        spigot.depth().await.visible,
        1,
        "one end-of-run build request"
    );
    let drained = spigot.drain().await;
    assert_eq!(drained.delivered, 1, "{drained:?}");
    let builds = spigot.jenkins.builds_of("aliecs/eor");
    assert_eq!(builds.len(), 1);
    let mut parameters = builds[0].parameters.clone();
    parameters.sort();
    assert_eq!(
        parameters,
        [
            ("DETECTORS".to_owned(), "ITS,TPC".to_owned()),
            ("ENVIRONMENT_ID".to_owned(), ENV.to_owned()),
            ("RUN_NUMBER".to_owned(), RUN.to_string()),
            ("RUN_TYPE".to_owned(), "PHYSICS".to_owned()),
        ]
    );
}
