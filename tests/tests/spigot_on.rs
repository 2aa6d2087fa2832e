//! process_webhooks while the spigot is ON, against the sandbox Jenkins and the emulator.

use spigot_common::state::SpigotState;
use spigot_tests::{delivery_id, push_payload, JenkinsMode, Options, Spigot, Webhook};

#[tokio::test]
async fn on_forwards_body_and_signature_byte_for_byte() {
    let spigot = Spigot::start(Options::default()).await;
    let body = push_payload(1, 25 * 1024);
    let response = spigot
        .send(Webhook::github("push", &delivery_id(1), &body).build())
        .await;

    assert_eq!(response.status(), 200, "{}", response.json());
    assert_eq!(response.json()["status"], "delivered");
    let deliveries = spigot.jenkins.deliveries();
    assert_eq!(deliveries.len(), 1);
    let got = &deliveries[0];
    assert_eq!(got.path, "/github-webhook/");
    assert_eq!(got.body.as_ref(), body.as_slice(), "body bytes differ");
    assert_eq!(got.signature_valid, Some(true), "sandbox HMAC check");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("x-github-event"), Some("push"));
    assert_eq!(
        got.header("x-github-delivery"),
        Some(delivery_id(1).as_str())
    );
    assert_eq!(got.header("user-agent"), Some("GitHub-Hookshot/f00d"));
    assert_eq!(got.header("x-github-hook-id"), Some("4242"));
    assert_eq!(spigot.depth().await.total(), 0, "nothing queued");
}

#[tokio::test]
async fn on_passes_back_a_request_the_target_calls_wrong() {
    let spigot = Spigot::start(Options::default()).await;
    let body = push_payload(2, 100);
    // The GitHub plugin's exact-match pitfall: a charset suffix yields 400.
    let mut webhook = Webhook::github("push", &delivery_id(2), &body);
    webhook.header("content-type", "application/json; charset=UTF-8");
    let response = spigot.send(webhook.build()).await;

    assert_eq!(response.status(), 400);
    assert_eq!(response.json()["target_status"], 400);
    assert!(response.json()["error"].as_str().unwrap().contains("400"));
    assert_eq!(
        spigot.depth().await.total(),
        0,
        "a wrong request is not queued"
    );
    // The marker was dropped: a corrected redelivery with the same id goes through.
    let again = spigot
        .send(Webhook::github("push", &delivery_id(2), &body).build())
        .await;
    assert_eq!(again.status(), 200, "{}", again.json());
    assert_eq!(spigot.jenkins.deliveries().len(), 1);
}

#[tokio::test]
async fn on_queues_when_the_target_is_down_or_failing() {
    let spigot = Spigot::start(Options::default()).await;
    spigot
        .jenkins
        .set_mode(JenkinsMode::Unreachable)
        .await
        .unwrap();
    let r1 = spigot
        .send(Webhook::github("push", &delivery_id(1), &push_payload(1, 300)).build())
        .await;
    spigot.jenkins.set_mode(JenkinsMode::Up).await.unwrap();
    for (n, status) in [(2, 503), (3, 404), (4, 401), (5, 429)] {
        spigot.jenkins.fail_next(status, 1).unwrap();
        let r = spigot
            .send(Webhook::github("push", &delivery_id(n), &push_payload(n, 300)).build())
            .await;
        assert_eq!(r.status(), 202, "status {status}: {}", r.json());
        assert_eq!(r.json()["status"], "queued");
        assert!(r.json()["reason"]
            .as_str()
            .unwrap()
            .contains(&status.to_string()));
    }
    spigot
        .jenkins
        .set_mode(JenkinsMode::Slow(std::time::Duration::from_secs(4)))
        .await
        .unwrap();
    let slow = spigot
        .send(Webhook::github("push", &delivery_id(6), &push_payload(6, 300)).build())
        .await;
    assert_eq!(slow.status(), 202, "{}", slow.json());
    assert!(slow.json()["reason"]
        .as_str()
        .unwrap()
        .contains("timed out"));

    assert_eq!(r1.status(), 202, "{}", r1.json());
    assert!(r1.json()["reason"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    assert_eq!(spigot.depth().await.visible, 6);
}

#[tokio::test]
async fn duplicate_delivery_is_forwarded_once() {
    let spigot = Spigot::start(Options::default()).await;
    let body = push_payload(7, 500);
    let first = spigot
        .send(Webhook::github("push", "dup-1", &body).build())
        .await;
    let second = spigot
        .send(Webhook::github("push", "dup-1", &body).build())
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    assert_eq!(second.json()["status"], "duplicate");
    assert_eq!(spigot.jenkins.deliveries().len(), 1);

    // Also while OFF: queued once.
    spigot.set_state(SpigotState::Off).await;
    let q1 = spigot
        .send(Webhook::github("push", "dup-2", &body).build())
        .await;
    let q2 = spigot
        .send(Webhook::github("push", "dup-2", &body).build())
        .await;
    assert_eq!(q1.status(), 202);
    assert_eq!(q2.json()["status"], "duplicate");
    assert_eq!(spigot.depth().await.visible, 1);
}

#[tokio::test]
async fn bad_signature_is_refused_with_401() {
    let spigot = Spigot::start(Options::default()).await;
    let mut wrong = Webhook::github("push", &delivery_id(1), b"{\"a\":1}");
    wrong.header("x-hub-signature-256", &format!("sha256={}", "0".repeat(64)));
    let mut missing = Webhook::github("push", &delivery_id(2), b"{\"a\":1}");
    missing.request.headers.remove("x-hub-signature-256");

    for (webhook, expected) in [(wrong, "does not match"), (missing, "missing")] {
        let response = spigot.send(webhook.build()).await;
        assert_eq!(response.status(), 401);
        assert!(response.json()["error"]
            .as_str()
            .unwrap()
            .contains(expected));
    }
    assert!(spigot.jenkins.requests().is_empty());
    assert_eq!(spigot.depth().await.total(), 0);
}

#[tokio::test]
async fn secret_rotation_accepts_either_secret() {
    let spigot = Spigot::start(Options {
        webhook_secrets: vec!["new-secret".into(), spigot_tests::SECRET.into()],
        ..Options::default()
    })
    .await;
    let response = spigot
        .send(Webhook::github("push", &delivery_id(1), b"{}").build())
        .await;
    assert_eq!(response.status(), 200, "{}", response.json());
}

#[tokio::test]
async fn malformed_events_get_400_with_a_reason() {
    let spigot = Spigot::start(Options::default()).await;
    let mut bad_base64 = Webhook::github("push", &delivery_id(1), b"{}");
    bad_base64.request.body = Some("%%% not base64".into());
    let response = spigot.send(bad_base64.build()).await;
    assert_eq!(response.status(), 400);
    assert!(response.json()["error"]
        .as_str()
        .unwrap()
        .contains("base64"));

    let mut no_body = Webhook::github("push", &delivery_id(2), b"");
    no_body.request.body = None;
    let response = spigot.send(no_body.build()).await;
    assert_eq!(response.status(), 400);
    assert!(response.json()["error"]
        .as_str()
        .unwrap()
        .contains("no body"));

    let mut bad_id = Webhook::github("push", "../../x", b"{}");
    bad_id.header("x-github-delivery", "../../x");
    let response = spigot.send(bad_id.build()).await;
    assert_eq!(response.status(), 400);
    assert!(response.json()["error"]
        .as_str()
        .unwrap()
        .contains("X-GitHub-Delivery"));
    assert!(spigot.jenkins.requests().is_empty());
}

#[tokio::test]
async fn proxy_path_reaches_the_same_path_on_the_target() {
    let spigot = Spigot::start(Options::default()).await;
    let mut webhook = Webhook::github("push", &delivery_id(1), b"{\"x\":1}");
    webhook.proxy_path("generic-webhook-trigger/invoke", &[("token", "abc def")]);
    let response = spigot.send(webhook.build()).await;
    assert_eq!(response.status(), 200, "{}", response.json());
    let got = &spigot.jenkins.deliveries()[0];
    assert_eq!(got.path, "/generic-webhook-trigger/invoke");
    assert_eq!(got.query.as_deref(), Some("token=abc+def"));
}

#[tokio::test]
async fn missing_or_unknown_state_queues() {
    let spigot = Spigot::start(Options::default()).await;
    // No stage variables at all: the handler itself sees none.
    let response = process_webhooks::handle_request(
        &spigot.webhooks,
        Webhook::github("push", &delivery_id(1), b"{}").build(),
    )
    .await;
    assert_eq!(response.status_code, 202);
    let mut unknown = Webhook::github("push", &delivery_id(2), b"{}").build();
    unknown
        .stage_variables
        .insert("spigot_state".into(), "OPEN".into());
    let response = process_webhooks::handle_request(&spigot.webhooks, unknown).await;
    assert_eq!(response.status_code, 202);
    assert_eq!(spigot.depth().await.visible, 2);
    assert!(spigot.jenkins.requests().is_empty());
}

#[tokio::test]
async fn queue_down_answers_503_never_2xx() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    // The queue disappears (as if deleted or unreachable): storing must fail loudly.
    aws_sdk_sqs::Client::new(&spigot.sdk)
        .delete_queue()
        .queue_url(&spigot.resources.queue_url)
        .send()
        .await
        .unwrap();
    let response = spigot
        .send(Webhook::github("push", &delivery_id(1), b"{}").build())
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.json()["error"]
        .as_str()
        .unwrap()
        .contains("could not be stored"));
    // The delivery marker is gone again, so GitHub's redelivery is not a "duplicate".
    assert!(spigot.s3_keys("deliveries/").await.is_empty());
}
