//! Every sample event in events/ through the real handlers, with the answers
//! events/README.md promises.

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::sqs::SqsEvent;
use spigot_common::drain::StopReason;
use spigot_common::secrets::Secret;
use spigot_local::gitlab::{SandboxJob, TraceShape};
use spigot_local::stack::EXAMPLE_ACTION;
use spigot_local::stack::EXAMPLE_JOB;
use spigot_tests::aliecs::AliecsWorld;
use spigot_tests::gitlab::GitlabWorld;
use spigot_tests::port::PortWorld;
use spigot_tests::{fixture, Options, Response, Spigot};

/// The secret scripts/gen-events.py signs the sample events with.
const EVENTS_SECRET: &str = "spigot-test-secret";

async fn invoke(spigot: &Spigot, path: &str) -> Response {
    let request: ApiGatewayProxyRequest =
        serde_json::from_value(fixture(path)).expect("an API Gateway REST proxy event");
    Response(process_webhooks::handle_request(&spigot.webhooks, request).await)
}

#[tokio::test]
async fn process_webhooks_fixtures_get_their_documented_answers() {
    let spigot = Spigot::start(Options {
        webhook_secrets: vec![EVENTS_SECRET.into()],
        ..Options::default()
    })
    .await;

    let on = invoke(&spigot, "process_webhooks/push-on.json").await;
    assert_eq!(
        (on.status(), on.json()["status"].clone()),
        (200, "delivered".into())
    );
    let base64 = invoke(&spigot, "process_webhooks/base64-body.json").await;
    assert_eq!(base64.status(), 200, "{}", base64.json());
    let proxy = invoke(&spigot, "process_webhooks/proxy-path.json").await;
    assert_eq!(proxy.status(), 200, "{}", proxy.json());

    let delivered = spigot.jenkins.deliveries();
    assert_eq!(delivered.len(), 3);
    assert!(delivered[..2]
        .iter()
        .all(|d| d.path == "/github-webhook/" && d.signature_valid == Some(true)));
    assert_eq!(
        delivered[0].body, delivered[1].body,
        "base64 decoded to the same bytes"
    );
    assert_eq!(delivered[2].path, "/generic-webhook-trigger/invoke");
    assert_eq!(delivered[2].query.as_deref(), Some("token=abc"));

    let off = invoke(&spigot, "process_webhooks/push-off.json").await;
    assert_eq!(
        (off.status(), off.json()["status"].clone()),
        (202, "queued".into())
    );
    let missing = invoke(&spigot, "process_webhooks/missing-state.json").await;
    assert_eq!(missing.status(), 202, "{}", missing.json());
    assert_eq!(spigot.depth().await.visible, 2);

    let bad = invoke(&spigot, "process_webhooks/bad-base64.json").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json()["error"].is_string());
    let unsigned = invoke(&spigot, "process_webhooks/bad-signature.json").await;
    assert_eq!(unsigned.status(), 401);
    let script = invoke(&spigot, "process_webhooks/replayed-to-script-console.json").await;
    assert_eq!(script.status(), 404, "{}", script.json());
    assert!(script.json()["error"]
        .as_str()
        .unwrap()
        .contains("no route"));
    let escape = invoke(&spigot, "process_webhooks/dot-segment-escape.json").await;
    assert_eq!(escape.status(), 400, "{}", escape.json());
    assert!(escape.json()["error"].as_str().unwrap().contains("encoded"));
    let empty = invoke(&spigot, "process_webhooks/empty-query-list.json").await;
    assert_eq!(empty.status(), 200, "{}", empty.json());
    assert_eq!(
        spigot.depth().await.visible,
        2,
        "nothing refused was queued"
    );
    assert_eq!(
        spigot.jenkins.deliveries().len(),
        4,
        "nothing more reached Jenkins than the empty-query push"
    );
    assert!(
        spigot
            .jenkins
            .requests()
            .iter()
            .all(|r| r.path == "/github-webhook/" || r.path == "/generic-webhook-trigger/invoke"),
        "{:?}",
        spigot.jenkins.requests()
    );
}

#[tokio::test]
async fn send_from_queue_fixtures_drain() {
    let spigot = Spigot::start(Options::default()).await;
    for path in [
        "send_from_queue/schedule.json",
        "send_from_queue/drain.json",
    ] {
        let summary = send_from_queue::handle_event(&spigot.sender, fixture(path), None)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(summary.stopped, Some(StopReason::QueueEmpty), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_ingest_fixtures_get_their_documented_answers() {
    let mut world = GitlabWorld::start().await;
    world.deps.intake.webhook_secret = Some(Secret::new("spigot-gitlab-test-secret"));
    world.gitlab.add_job(SandboxJob::finished(
        42,
        7001,
        "build",
        "success",
        TraceShape::default(),
    ));
    for (path, status, says) in [
        ("gitlab_ingest/job-hook-success.json", 202, "queued"),
        ("gitlab_ingest/job-hook-running.json", 200, "ignored"),
        (
            "gitlab_ingest/job-hook-bad-token.json",
            401,
            "does not match",
        ),
        ("gitlab_ingest/after-script.json", 202, "queued"),
        (
            "gitlab_ingest/after-script-token-in-url.json",
            400,
            "gitlab_token",
        ),
        (
            "gitlab_ingest/after-script-empty-query-list.json",
            400,
            "job_id are required",
        ),
    ] {
        let answer = world.invoke(fixture(path)).await;
        assert_eq!(answer["statusCode"], status, "{path}: {answer}");
        assert!(
            answer["body"].as_str().unwrap().contains(says),
            "{path}: {answer}"
        );
    }
    let queued = world.receive().await;
    assert_eq!(
        queued["Records"].as_array().unwrap().len(),
        2,
        "the hook and the after_script call"
    );
    for record in queued["Records"].as_array().unwrap() {
        let body = record["body"].as_str().unwrap();
        assert!(
            !body.contains("secret") && !body.contains("glpat"),
            "no token in the queue: {body}"
        );
    }
    let batch = world
        .invoke(fixture("gitlab_ingest/ingest-batch.json"))
        .await;
    assert_eq!(batch["batchItemFailures"], serde_json::json!([]), "{batch}");
    world
        .assert_indexed_as_shown(7001, &TraceShape::default())
        .await;
}

/// The Jenkins the sample checkpoint names; tests point it at the sandbox.
const CHECKPOINT_JENKINS: &str = "http://127.0.0.1:8080";

#[tokio::test(flavor = "multi_thread")]
async fn port_fixtures_start_their_runs_and_the_checkpoint_ends_one() {
    let world = PortWorld::start().await;
    for run_id in [
        "r_fixtureLegacy01",
        "r_fixtureV2payload",
        "r_fixtureBatch01",
    ] {
        world.port.create_run(run_id, EXAMPLE_ACTION);
    }
    let legacy = world
        .run_port_runner(&fixture("port_runner/self-managed-kafka.json"))
        .await;
    assert_eq!((legacy.records, legacy.started), (1, 1), "{legacy:?}");
    let v2 = world
        .run_port_runner(&fixture("port_runner/msk-v2-payload.json"))
        .await;
    assert_eq!((v2.records, v2.started), (1, 1), "{v2:?}");
    let mixed = world
        .run_port_runner(&fixture("port_runner/mixed-batch.json"))
        .await;
    assert_eq!(
        (mixed.records, mixed.rejected, mixed.started),
        (3, 2, 1),
        "{mixed:?}"
    );
    let runs: Vec<String> = world
        .jenkins
        .builds_of(EXAMPLE_JOB)
        .iter()
        .map(|b| {
            assert!(b
                .parameters
                .contains(&("SERVICE_NAME".into(), "my-service".into())));
            b.parameters
                .iter()
                .find(|(k, _)| k == "PORT_RUN_ID")
                .map(|(_, v)| v.clone())
                .unwrap()
        })
        .collect();
    assert_eq!(
        runs,
        [
            "r_fixtureLegacy01",
            "r_fixtureV2payload",
            "r_fixtureBatch01"
        ]
    );
    assert!(world
        .run("r_fixtureV2payload")
        .log_text()
        .starts_with("Deploying my-service v1.2.3 to dev…"));

    // The sample checkpoint follows queue item 1: the legacy fixture's build.
    let text = serde_json::to_string(&fixture("log_tailer/checkpoint.json"))
        .unwrap()
        .replace(CHECKPOINT_JENKINS, &world.jenkins.url());
    let event: SqsEvent = serde_json::from_str(&text).unwrap();
    let response = log_tailer::handle_batch(
        &world.tailer,
        event,
        Instant::now() + log_tailer::DEADLINE_MARGIN + Duration::from_secs(30),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let run = world.run("r_fixtureLegacy01");
    assert_eq!(run.status, "SUCCESS", "{run:?}");
    assert!(run
        .log_text()
        .contains("Deploying my-service 1.2.3 to dev (Port run r_fixtureLegacy01)"));

    let bad: SqsEvent = serde_json::from_value(fixture("log_tailer/bad-checkpoint.json")).unwrap();
    let id = bad.records[0].message_id.clone().unwrap();
    let response = log_tailer::handle_batch(&world.tailer, bad, Instant::now()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, id);
}

#[tokio::test(flavor = "multi_thread")]
async fn aliecs_fixtures_become_timelines_run_records_and_end_of_run_builds() {
    let world = AliecsWorld::start("aliecs-fixtures").await;
    let legacy = world
        .handle(&fixture("aliecs_ingest/legacy-run.json"))
        .await;
    assert_eq!(
        (
            legacy.records,
            legacy.timeline_created,
            legacy.runs_updated,
            legacy.eor_builds_queued
        ),
        (4, 4, 1, 1),
        "{legacy:?}"
    );
    let events = world
        .handle(&fixture("aliecs_ingest/run-events.json"))
        .await;
    assert_eq!(
        (
            events.records,
            events.timeline_created,
            events.runs_updated,
            events.eor_builds_queued
        ),
        (3, 3, 1, 1),
        "{events:?}"
    );
    let bad = world
        .handle(&fixture("aliecs_ingest/bad-records.json"))
        .await;
    assert_eq!(
        (
            bad.records,
            bad.undecodable,
            bad.unknown_topic,
            bad.timeline_created,
            bad.runs_updated
        ),
        (3, 1, 1, 1, 0),
        "{bad:?}"
    );

    let legacy_run = world.run_record(559_124).await;
    assert_eq!(legacy_run["duration_ms"], 60_000, "{legacy_run}");
    assert_eq!(
        legacy_run["ended"], "unknown",
        "the legacy topics cannot tell"
    );
    assert_eq!(legacy_run["detectors"], serde_json::json!(["ITS", "TPC"]));
    let events_run = world.run_record(559_125).await;
    assert_eq!(events_run["duration_ms"], 45_000, "{events_run}");
    assert_eq!(events_run["ended"], "error");
    assert_eq!(events_run["start"]["user"], "anna");

    // Delivered again: nothing new.
    let again = world
        .handle(&fixture("aliecs_ingest/legacy-run.json"))
        .await;
    assert_eq!(
        (
            again.timeline_created,
            again.timeline_existed,
            again.eor_builds_queued
        ),
        (0, 4, 0),
        "{again:?}"
    );
    assert_eq!(world.spigot.drain().await.delivered, 2);
    let runs: Vec<String> = world
        .eor_builds()
        .iter()
        .filter_map(|p| {
            p.iter()
                .find(|(k, _)| k == "RUN_NUMBER")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(runs, ["559124", "559125"]);
}
