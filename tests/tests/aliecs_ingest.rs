//! aliecs_ingest against the search server and the spigot on moto: a run told by both
//! message generations, out of order and twice, becomes one timeline document per
//! message and one run record; bad records are counted and skipped; the end-of-run
//! build request goes once into the spigot queue and the drain takes it to Jenkins.

use aliecs_ingest::wire::{cat, env_info, int, len, notification, run_event, ENV, T0};
use serde_json::json;
use spigot_tests::aliecs::{kafka_batch, AliecsWorld};

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

#[tokio::test(flavor = "multi_thread")]
async fn a_run_from_both_generations_out_of_order_and_twice_gives_one_record_and_one_build() {
    let world = AliecsWorld::start(PREFIX).await;
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
    let batch = kafka_batch(&records);
    let first = world.handle(&batch).await;
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
    let again = world.handle(&batch).await;
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

    assert_eq!(world.timeline_count(&json!({"match_all": {}})).await, 7);
    let sor = world
        .search
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

    let run = &world.run_record(RUN).await;
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
        world.spigot.depth().await.visible,
        1,
        "one end-of-run build request"
    );
    let drained = world.spigot.drain().await;
    assert_eq!(drained.delivered, 1, "{drained:?}");
    assert_eq!(
        world.eor_builds(),
        [[
            ("DETECTORS".to_owned(), "ITS,TPC".to_owned()),
            ("ENVIRONMENT_ID".to_owned(), ENV.to_owned()),
            ("RUN_NUMBER".to_owned(), RUN.to_string()),
            ("RUN_TYPE".to_owned(), "PHYSICS".to_owned()),
        ]]
    );
}

#[tokio::test]
async fn an_empty_batch_is_answered_without_calls() {
    // Nothing listens on port 9: a call out would fail the batch.
    let deps = aliecs_ingest::Deps {
        search: spigot_common::search::SearchClient::new(
            "http://127.0.0.1:9",
            spigot_common::search::SearchAuth::None,
        )
        .unwrap(),
        index_prefix: PREFIX.into(),
        eor: None,
        template: Default::default(),
    };
    let event = serde_json::from_value(json!({"eventSource": "aws:kafka", "records": {}})).unwrap();
    let summary = aliecs_ingest::handle(&deps, &event)
        .await
        .expect("nothing to do is no error");
    assert_eq!(summary, aliecs_ingest::BatchSummary::default());
}
