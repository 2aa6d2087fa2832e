//! Every sample event in events/ through the real handlers, with the answers
//! events/README.md promises.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use spigot_common::drain::StopReason;
use spigot_common::secrets::Secret;
use spigot_local::gitlab::{SandboxJob, TraceShape};
use spigot_tests::gitlab::GitlabWorld;
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
    assert_eq!(
        spigot.jenkins.deliveries().len(),
        3,
        "nothing more reached Jenkins"
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
    assert_eq!(
        world.documents(7001).await,
        TraceShape::default().count_lines()
    );
}
