//! GitHub never retries a failed delivery by itself, and the operator's redelivery keeps
//! the same `X-GitHub-Delivery`: a function that died between claiming the delivery id
//! and delivering or storing the request must not make that redelivery a "duplicate".
//! The real binary is killed mid-delivery (Jenkins hangs, the invocation is killed, as a
//! timeout or an out-of-memory kill would), then the request is redelivered.

use std::time::{Duration, Instant};

use spigot_common::state::SpigotState;
use spigot_local::runtime_api::RuntimeApi;
use spigot_tests::{delivery_id, push_payload, JenkinsMode, Options, Spigot, Webhook, SECRET};

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_whose_function_died_after_the_claim_is_delivered_when_redelivered() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::On).await;
    let id = delivery_id(42);
    let webhook = Webhook::github("push", &id, &push_payload(42, 500));
    let mut event = serde_json::to_value(webhook.build()).unwrap();
    event["stageVariables"] = serde_json::json!({"spigot_state": "ON"});

    // Jenkins hangs: the function claims the id, forwards, and waits.
    spigot.jenkins.set_mode(JenkinsMode::Hang).await.unwrap();
    let api = RuntimeApi::start("process_webhooks").await.unwrap();
    let mut command = tokio::process::Command::new(
        spigot_local::functions::debug_binary("process_webhooks").unwrap(),
    );
    command
        .env_clear()
        .envs(spigot.function_env(SECRET))
        .env("FORWARD_TIMEOUT_MS", "12000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let mut process = api.spawn(command).unwrap();
    let pid = process.pid().expect("running") as i32;
    // The invocation is told its deadline is 3 s away.
    let told = Instant::now();
    let invocation = process.invoke(&event, Duration::from_secs(3));
    let killer = async {
        // Until the claim is written, then the process dies mid-forward.
        let key = format!("deliveries/{id}");
        for _ in 0..100 {
            if spigot.s3_keys("deliveries/").await.contains(&key) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unsafe { libc::kill(pid, libc::SIGKILL) };
    };
    let (answer, ()) = tokio::join!(invocation, killer);
    assert!(
        answer.is_err(),
        "the killed invocation answered: {answer:?}"
    );
    assert!(spigot.jenkins.deliveries().is_empty());
    assert_eq!(
        spigot.depth().await.total(),
        0,
        "neither delivered nor stored"
    );

    // A redelivery while the claim may still be live is told to come back.
    spigot.jenkins.set_mode(JenkinsMode::Up).await.unwrap();
    let early = spigot.send(webhook.build()).await;
    if told.elapsed() < Duration::from_secs(3) {
        assert_eq!(early.status(), 409, "{}", early.json());
    }
    // Past the dead invocation's deadline, the operator redelivers: delivered once.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(told.elapsed())).await;
    let redelivered = spigot.send(webhook.build()).await;
    assert_eq!(redelivered.status(), 200, "{}", redelivered.json());
    assert_eq!(redelivered.json()["status"], "delivered");
    let again = spigot.send(webhook.build()).await;
    assert_eq!(again.json()["status"], "duplicate", "{}", again.json());
    let deliveries = spigot.jenkins.deliveries();
    assert_eq!(deliveries.len(), 1, "delivered once: {deliveries:?}");
    assert_eq!(deliveries[0].header("x-github-delivery"), Some(id.as_str()));
}

#[tokio::test]
async fn a_delivery_stored_or_delivered_is_a_duplicate_whenever_it_comes_again() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    let webhook = Webhook::github("push", &delivery_id(7), &push_payload(7, 100));
    assert_eq!(spigot.send(webhook.build()).await.status(), 202);
    spigot.set_state(SpigotState::On).await;
    // However long after: done is done, not a claim that expires.
    let again = spigot.send(webhook.build()).await;
    assert_eq!(again.json()["status"], "duplicate", "{}", again.json());
    assert_eq!(spigot.depth().await.total(), 1, "queued once");
    // A marker from before claims expired (empty) also counts as done.
    let old = Webhook::github("push", &delivery_id(8), &push_payload(8, 100));
    spigot_common::aws::s3_client(&spigot.sdk)
        .put_object()
        .bucket(&spigot.resources.payload_bucket)
        .key(format!("deliveries/{}", delivery_id(8)))
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
    assert_eq!(spigot.send(old.build()).await.json()["status"], "duplicate");
    assert!(spigot.jenkins.deliveries().is_empty());
}
