//! aliecs_ingest against the search server and the spigot on moto: a run told by both
//! message generations, out of order and twice, becomes one timeline document per
//! message and one run record; bad records are counted and skipped; the end-of-run
//! build request goes once into the spigot queue and the drain takes it to Jenkins.

use aliecs_ingest::wire::{active_runs, cat, env_info, int, len, notification, run_event, ENV, T0};
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
    let summary = aliecs_ingest::handle(&deps, &event, None)
        .await
        .expect("nothing to do is no error");
    assert_eq!(summary, aliecs_ingest::BatchSummary::default());
}

/// Two stacks on one search cluster: prefixes where one extends the other (`aliecs` and
/// `aliecs-dev`, `o2` and `o2noeor`) install their templates side by side (the cluster
/// refuses overlapping patterns of equal priority), and each writes its own records.
#[tokio::test]
async fn two_stacks_share_one_search_cluster() {
    let world = AliecsWorld::start("aliecs").await;
    let event = spigot_tests::fixture("aliecs_ingest/legacy-run.json");
    let first = world.handle(&event).await;
    assert!(first.timeline_created > 0, "{first:?}");
    for prefix in ["aliecs-dev", "o2", "o2noeor"] {
        let deps = aliecs_ingest::Deps {
            search: world.search.clone(),
            index_prefix: prefix.into(),
            eor: None,
            template: Default::default(),
        };
        let event = serde_json::from_value(event.clone()).unwrap();
        let summary = aliecs_ingest::handle(&deps, &event, None)
            .await
            .expect(prefix);
        assert_eq!(summary.timeline_created, first.timeline_created, "{prefix}");
        let template = world
            .search
            .json(
                http::Method::GET,
                &format!("/_index_template/{prefix}-aliecs"),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{prefix}'s template: {e}"));
        assert_eq!(
            template["index_templates"][0]["index_template"]["index_patterns"],
            json!([format!("{prefix}-timeline-*"), format!("{prefix}-runs")]),
            "{template}"
        );
        world
            .search
            .refresh(&format!("{prefix}-runs"))
            .await
            .unwrap();
        let count = world
            .search
            .json(http::Method::GET, &format!("/{prefix}-runs/_count"), None)
            .await
            .unwrap();
        assert_eq!(count["count"], 1, "{prefix}: {count}");
    }
    // The log documents' templates of two such stacks install side by side too.
    for prefix in ["ci-logs", "ci-logs-dev"] {
        world
            .search
            .put_index_template(prefix, &spigot_common::log_index::index_template(prefix))
            .await
            .unwrap_or_else(|e| panic!("{prefix}: {e}"));
    }
}

/// A template the cluster refuses is logged and tried again later; the batch is written.
#[tokio::test]
async fn a_refused_template_does_not_fail_the_batch() {
    let world = AliecsWorld::start(PREFIX).await;
    // Someone else's template on the same indices at the same priority.
    let ours = aliecs_ingest::store::index_template(PREFIX);
    let foreign = json!({
        "index_patterns": [format!("{PREFIX}-runs")],
        "priority": ours["priority"],
        "template": {},
    });
    world
        .search
        .put_index_template("someone-elses", &foreign)
        .await
        .unwrap();
    let summary = world
        .handle(&spigot_tests::fixture("aliecs_ingest/legacy-run.json"))
        .await;
    assert!(summary.timeline_created > 0, "{summary:?}");
    assert_eq!(summary.runs_updated, 1, "{summary:?}");
    let missing = world
        .search
        .json(
            http::Method::GET,
            &format!("/_index_template/{PREFIX}-aliecs"),
            None,
        )
        .await;
    assert!(missing.is_err() || missing.unwrap()["index_templates"] == json!([]));
}

/// Invocations fold the same end of run at once (a standard queue delivers a
/// duplicate, a Kafka retry overlaps a slow invocation): the build is sent and counted
/// by the one whose conditional write claimed it, once.
#[tokio::test]
async fn invocations_folding_one_end_at_once_send_and_count_one_build() {
    let world = AliecsWorld::start(PREFIX).await;
    let event: spigot_common::kafka::KafkaEvent =
        serde_json::from_value(spigot_tests::fixture("aliecs_ingest/legacy-run.json")).unwrap();
    // Four at once: their reads of the run record overlap.
    let outcomes =
        futures::future::join_all((0..4).map(|_| aliecs_ingest::handle(&world.deps, &event, None)))
            .await;
    let mut queued = 0;
    for outcome in outcomes {
        match outcome {
            Ok(summary) => queued += summary.eor_builds_queued,
            // The loser met the winner's claim before it was confirmed: its batch comes
            // back, as Lambda retries it.
            Err(error) => {
                assert!(error.to_string().contains("another invocation"), "{error}");
                let retried = aliecs_ingest::handle(&world.deps, &event, None)
                    .await
                    .expect("the retry finds the build queued");
                queued += retried.eor_builds_queued;
            }
        }
    }
    assert_eq!(queued, 1, "counted once");
    assert_eq!(world.spigot.depth().await.total(), 1, "sent once");
    let record = world.run_record(559_124).await;
    assert_eq!(record["eor_build_queued"], true, "{record}");
    assert!(record.get("eor_build_claimed_until").is_none(), "{record}");
}

/// A claimer that died between its claim and the send: until its deadline nobody else
/// sends (the batch comes back), after it the next fold claims and sends.
#[tokio::test]
async fn a_claim_left_by_a_crash_is_claimed_again_after_its_deadline() {
    let world = AliecsWorld::start(PREFIX).await;
    let event: spigot_common::kafka::KafkaEvent =
        serde_json::from_value(spigot_tests::fixture("aliecs_ingest/legacy-run.json")).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // What the dead invocation left: the record with its claim, no build sent. Its
    // deadline is a minute away.
    let no_eor = aliecs_ingest::Deps {
        search: world.search.clone(),
        index_prefix: PREFIX.into(),
        eor: None,
        template: Default::default(),
    };
    aliecs_ingest::handle(&no_eor, &event, None).await.unwrap();
    let runs = format!("/{PREFIX}-runs/_doc/559124");
    let mut record = world.run_record(559_124).await;
    record["eor_build_claimed_until"] = json!(now_ms + 60_000);
    world
        .search
        .json(http::Method::PUT, &runs, Some(&record))
        .await
        .unwrap();

    let early = aliecs_ingest::handle(&world.deps, &event, None).await;
    assert!(
        early
            .as_ref()
            .is_err_and(|e| e.to_string().contains("claimed until")),
        "{early:?}"
    );
    assert_eq!(
        world.spigot.depth().await.total(),
        0,
        "nothing sent while the claim holds"
    );

    record["eor_build_claimed_until"] = json!(now_ms - 1);
    world
        .search
        .json(http::Method::PUT, &runs, Some(&record))
        .await
        .unwrap();
    let late = aliecs_ingest::handle(&world.deps, &event, None)
        .await
        .unwrap();
    assert_eq!(late.eor_builds_queued, 1, "{late:?}");
    assert_eq!(world.spigot.depth().await.total(), 1);
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// One active-runs list naming 1,500 runs (more than Lambda's 1,024 file descriptors):
/// every run gets its record, with a bounded number of connections open at once. Found
/// by the memory benchmark, whose first load failed its batch with "Too many open files".
#[tokio::test]
async fn an_active_runs_list_of_thousands_of_runs_is_recorded_with_few_connections() {
    const RUNS: u64 = 1_500;
    let world = AliecsWorld::start(PREFIX).await;
    let envs: Vec<Vec<u8>> = (0..RUNS)
        .map(|n| env_info(Some(570_000 + n), "RUNNING", DETECTORS, T0))
        .collect();
    let batch = kafka_batch(&[("aliecs.env_list.RUNNING", active_runs(&envs, T0))]);
    let before = open_fds();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(open_fds(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let summary = world.handle(&batch).await;
    sampler.abort();
    assert_eq!(summary.records, 1);
    assert_eq!(summary.runs_updated, RUNS);
    for run in [570_000, 570_000 + RUNS / 2, 570_000 + RUNS - 1] {
        assert_eq!(world.run_record(run).await["run_number"], run, "run {run}");
    }
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    // The merges' connections, the search client's pool and the sampler's own reads.
    let bound = before + 4 * aliecs_ingest::store::MERGES_IN_FLIGHT;
    assert!(
        peak <= bound,
        "{peak} descriptors open at once (before: {before}, bound {bound})"
    );
}
