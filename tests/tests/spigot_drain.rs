//! OFF → queued → ON (DRAINING) → drained, outages during drains, poison, big payloads.

use std::collections::HashSet;

use spigot_common::buffer::REASON_ATTRIBUTE;
use spigot_common::drain::{DrainOptions, Drainer, StopReason};
use spigot_common::state::SpigotState;
use spigot_tests::{delivery_id, push_payload, JenkinsMode, Options, Spigot, Webhook};

async fn queue_hooks(spigot: &Spigot, range: std::ops::Range<usize>) {
    for n in range {
        let r = spigot
            .send(Webhook::github("push", &delivery_id(n), &push_payload(n, 2000)).build())
            .await;
        assert_eq!(r.status(), 202, "hook {n}: {}", r.json());
    }
}

/// The `n` field of each delivered payload, in delivery order.
fn delivered_numbers(spigot: &Spigot) -> Vec<usize> {
    spigot
        .jenkins
        .deliveries()
        .iter()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_slice(&d.body).expect("JSON body");
            v["n"].as_u64().expect("n") as usize
        })
        .collect()
}

#[tokio::test]
async fn off_200_queued_then_on_drains_each_exactly_once_in_order() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    queue_hooks(&spigot, 0..200).await;
    assert_eq!(spigot.depth().await.visible, 200);
    assert!(
        spigot.jenkins.requests().is_empty(),
        "nothing reached Jenkins while OFF"
    );

    // While OFF the schedule does nothing.
    let idle = spigot.drain().await;
    assert_eq!(idle.stopped, Some(StopReason::Off));
    assert_eq!(idle.delivered, 0);

    // toggle_spigot on with a backlog → DRAINING; hooks arriving now queue behind it.
    spigot.set_state(SpigotState::Draining).await;
    queue_hooks(&spigot, 200..205).await;
    let summary = spigot.drain().await;

    assert_eq!(summary.stopped, Some(StopReason::QueueEmpty), "{summary:?}");
    assert_eq!(summary.delivered, 205);
    assert_eq!(summary.poisoned, 0);
    assert_eq!(summary.remaining, Some(0));
    assert_eq!(summary.final_state, SpigotState::On);
    assert_eq!(spigot.state().await.as_deref(), Some("ON"));
    let order = delivered_numbers(&spigot);
    assert_eq!(
        order,
        (0..205).collect::<Vec<_>>(),
        "arrival order, each once"
    );
    assert!(spigot
        .jenkins
        .deliveries()
        .iter()
        .all(|d| d.signature_valid == Some(true)));
    assert_eq!(spigot.dlq_depth().await.total(), 0);
}

#[tokio::test]
async fn concurrent_drain_delivers_everything_once() {
    let spigot = Spigot::start(Options {
        drain_concurrency: 4,
        ..Options::default()
    })
    .await;
    spigot.set_state(SpigotState::Off).await;
    queue_hooks(&spigot, 0..60).await;
    spigot.set_state(SpigotState::Draining).await;
    let summary = spigot.drain().await;
    assert_eq!(summary.delivered, 60, "{summary:?}");
    let delivered: HashSet<usize> = delivered_numbers(&spigot).into_iter().collect();
    assert_eq!(delivered.len(), 60);
    assert_eq!(spigot.jenkins.deliveries().len(), 60, "no duplicates");
    assert_eq!(summary.final_state, SpigotState::On);
}

#[tokio::test]
async fn target_down_before_the_drain_receives_nothing() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    queue_hooks(&spigot, 0..15).await;
    spigot.set_state(SpigotState::Draining).await;
    for mode in [JenkinsMode::Unreachable, JenkinsMode::Status(503)] {
        spigot.jenkins.set_mode(mode).await.unwrap();
        let summary = spigot.drain().await;
        assert_eq!(summary.stopped, Some(StopReason::TargetDown), "{summary:?}");
        assert_eq!(summary.delivered, 0);
        assert_eq!(summary.final_state, SpigotState::Draining, "stays DRAINING");
    }
    // Nothing was received: peeking sees every message for the first time.
    assert_eq!(spigot.depth().await.visible, 15);
    let peeked = spigot.peek_queue().await;
    assert_eq!(peeked.len(), 10);
    assert!(
        peeked.iter().all(|h| h.receive_count == 1),
        "receive counts not burned"
    );
}

#[tokio::test]
async fn outage_mid_drain_stops_keeps_the_rest_and_a_later_drain_finishes() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    queue_hooks(&spigot, 0..30).await;
    spigot.set_state(SpigotState::Draining).await;

    // Jenkins goes away after the 13th replay of this drain.
    let mut delivered_first = 0;
    spigot.jenkins.fail_next(503, 0).unwrap();
    {
        let watcher = async {
            loop {
                if spigot.jenkins.deliveries().len() >= 13 {
                    spigot.jenkins.fail_next(503, 1000).unwrap();
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        let (summary, ()) = tokio::join!(spigot.drain(), watcher);
        assert_eq!(
            summary.stopped,
            Some(StopReason::TargetUnavailable),
            "{summary:?}"
        );
        assert!(summary.detail.as_deref().unwrap().contains("503"));
        delivered_first += summary.delivered as usize;
        assert_eq!(delivered_first, spigot.jenkins.deliveries().len());
        assert!((13..30).contains(&delivered_first), "{delivered_first}");
        assert_eq!(summary.remaining, Some(30 - delivered_first as u64));
        assert_eq!(summary.final_state, SpigotState::Draining);
    }
    assert_eq!(
        spigot.depth().await.visible,
        30 - delivered_first as u64,
        "nothing undelivered was deleted, all visible again"
    );
    // The next messages in line were received by the stopped drain at most once.
    let peeked = spigot.peek_queue().await;
    assert!(!peeked.is_empty());
    assert!(
        peeked.iter().all(|h| h.receive_count <= 2),
        "receive counts stay low"
    );

    spigot.jenkins.fail_next(503, 0).unwrap();
    let summary = spigot.drain().await;
    assert_eq!(summary.stopped, Some(StopReason::QueueEmpty), "{summary:?}");
    assert_eq!(delivered_first + summary.delivered as usize, 30);
    assert_eq!(
        delivered_numbers(&spigot),
        (0..30).collect::<Vec<_>>(),
        "each once, in order"
    );
    assert_eq!(
        spigot.dlq_depth().await.total(),
        0,
        "an outage sends nothing to the DLQ"
    );
    assert_eq!(summary.final_state, SpigotState::On);
}

#[tokio::test]
async fn poison_goes_to_the_dlq_with_its_reason_and_redrive_brings_it_back() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    queue_hooks(&spigot, 0..3).await;
    // A request Jenkins calls wrong: the plugin wants the exact Content-Type.
    let mut wrong = Webhook::github("push", &delivery_id(3), &push_payload(3, 100));
    wrong.header("content-type", "application/json; charset=UTF-8");
    assert_eq!(spigot.send(wrong.build()).await.status(), 202);
    queue_hooks(&spigot, 4..6).await;
    spigot.set_state(SpigotState::On).await;

    let summary = spigot.drain().await;
    assert_eq!(summary.delivered, 5, "{summary:?}");
    assert_eq!(summary.poisoned, 1);
    assert_eq!(summary.stopped, Some(StopReason::QueueEmpty));
    assert_eq!(delivered_numbers(&spigot), vec![0, 1, 2, 4, 5]);
    assert_eq!(spigot.depth().await.total(), 0);
    assert_eq!(spigot.dlq_depth().await.visible, 1);

    let parked = spigot.buffer().receive_dead_letters(10, 0).await.unwrap();
    assert_eq!(parked.len(), 1);
    let hook = &parked[0];
    let envelope = hook.envelope.as_ref().unwrap();
    assert_eq!(
        envelope.header("x-github-delivery"),
        Some(delivery_id(3).as_str())
    );
    let reason = hook
        .attributes
        .get(REASON_ATTRIBUTE)
        .expect("reason attribute");
    assert!(reason.contains("400"), "{reason}");

    // redrive: back on the main queue, the DLQ empty.
    spigot.buffer().redrive(hook).await.unwrap();
    assert_eq!(spigot.dlq_depth().await.total(), 0);
    assert_eq!(spigot.depth().await.visible, 1);
    let back = spigot.peek_queue().await;
    assert_eq!(back[0].envelope.as_ref().unwrap(), envelope);
}

#[tokio::test]
async fn two_mib_payload_goes_through_s3_and_replays_identically() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    let body = push_payload(9, 2 * 1024 * 1024);
    let response = spigot
        .send(Webhook::github("push", &delivery_id(9), &body).build())
        .await;
    assert_eq!(response.status(), 202, "{}", response.json());
    assert_eq!(
        spigot.s3_keys("payloads/").await.len(),
        1,
        "body spilled to S3"
    );
    let queued = spigot.peek_queue().await;
    assert!(
        queued[0].raw.len() < 4096,
        "the message holds a pointer, not the body"
    );

    spigot.set_state(SpigotState::Draining).await;
    let summary = spigot.drain().await;
    assert_eq!(summary.delivered, 1, "{summary:?}");
    let got = &spigot.jenkins.deliveries()[0];
    assert_eq!(got.body.len(), body.len());
    assert!(
        got.body.as_ref() == body.as_slice(),
        "replayed bytes differ"
    );
    assert_eq!(got.signature_valid, Some(true));
    assert!(
        spigot.s3_keys("payloads/").await.is_empty(),
        "S3 body deleted after delivery"
    );
}

#[tokio::test]
async fn drain_action_event_and_unknown_action() {
    let spigot = Spigot::start(Options::default()).await;
    let summary =
        send_from_queue::handle_event(&spigot.sender, serde_json::json!({"action": "drain"}), None)
            .await
            .unwrap();
    assert_eq!(summary.stopped, Some(StopReason::QueueEmpty));
    let refused = send_from_queue::handle_event(
        &spigot.sender,
        serde_json::json!({"action": "explode"}),
        None,
    )
    .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn near_the_deadline_the_drain_takes_only_what_can_finish() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    queue_hooks(&spigot, 0..5).await;
    spigot.set_state(SpigotState::Draining).await;
    let drain_until = |left: std::time::Duration| {
        send_from_queue::handle_event(
            &spigot.sender,
            serde_json::json!({"action": "drain"}),
            Some(std::time::Instant::now() + left),
        )
    };

    // The harness' forward timeout is 2 s and 5 s stay free: no replay fits in 6 s.
    let too_late = drain_until(std::time::Duration::from_secs(6))
        .await
        .unwrap();
    assert_eq!(too_late.stopped, Some(StopReason::Deadline), "{too_late:?}");
    assert_eq!(too_late.delivered, 0);
    assert_eq!(spigot.depth().await.visible, 5, "nothing was received");

    // Room for two worst-case replays per receive: small batches, all delivered.
    let tight = drain_until(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(tight.stopped, Some(StopReason::QueueEmpty), "{tight:?}");
    assert_eq!(tight.delivered, 5);
    assert_eq!(delivered_numbers(&spigot), (0..5).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_hook_queued_after_off_is_not_replayed_by_a_drain_already_waiting() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::On).await;
    let drainer = Drainer {
        stage: &spigot.sender.stage,
        buffer: &spigot.sender.buffer,
        target: &spigot.sender.target,
        routes: &spigot.sender.routes,
    };
    // The drain saw ON and waits on an empty queue; meanwhile the operator turns the
    // spigot OFF and a hook is queued. The receive returns it, but it was queued while OFF.
    let options = DrainOptions {
        receive_wait_secs: 5,
        ..DrainOptions::default()
    };
    let operator = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        spigot.set_state(SpigotState::Off).await;
        queue_hooks(&spigot, 0..1).await;
    };
    let (summary, ()) = tokio::join!(drainer.drain(&options, &|_| {}), operator);

    assert_eq!(summary.stopped, Some(StopReason::Off), "{summary:?}");
    assert_eq!(
        (summary.delivered, summary.released),
        (0, 1),
        "received, then given back"
    );
    assert!(
        spigot.jenkins.deliveries().is_empty(),
        "nothing reached Jenkins"
    );
    assert_eq!(spigot.depth().await.visible, 1, "visible again at once");
}

/// A target that stays down: the first few drains say so at INFO (a restart), then each
/// is a WARN with how long the backlog has waited; a drain that gets through ends it.
#[tokio::test]
async fn a_target_down_for_long_is_a_warning_with_how_long() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    let queued = spigot
        .send(Webhook::github("push", &delivery_id(1), &push_payload(1, 100)).build())
        .await;
    assert_eq!(queued.status(), 202);
    spigot.set_state(SpigotState::On).await;
    spigot
        .jenkins
        .set_mode(JenkinsMode::Unreachable)
        .await
        .unwrap();

    let (logs, _guard) = spigot_tests::logs::CapturedLogs::start();
    let drains = send_from_queue::DOWN_DRAINS_BEFORE_WARNING + 2;
    for _ in 0..drains {
        assert_eq!(spigot.drain().await.stopped, Some(StopReason::TargetDown));
    }
    spigot.jenkins.set_mode(JenkinsMode::Up).await.unwrap();
    assert_eq!(spigot.drain().await.delivered, 1);

    let routine = logs.with_message("drain finished");
    let warnings = logs.with_message("the target is still down: the backlog waits");
    assert_eq!(
        routine.len() as u32,
        send_from_queue::DOWN_DRAINS_BEFORE_WARNING + 1,
        "the first few and the one that got through"
    );
    assert!(routine.iter().all(|l| l["level"] == "INFO"), "{routine:?}");
    assert_eq!(
        routine[0]["fields"]["stopped"], "target_down",
        "{:?}",
        routine[0]
    );
    assert_eq!(warnings.len(), 2, "{}", logs.text());
    for (n, warning) in warnings.iter().enumerate() {
        assert_eq!(warning["level"], "WARN");
        assert_eq!(
            warning["fields"]["drains_in_a_row"],
            send_from_queue::DOWN_DRAINS_BEFORE_WARNING as usize + 1 + n
        );
        assert!(warning["fields"]["down_for_secs"].is_u64(), "{warning}");
        assert_eq!(warning["fields"]["remaining"], 1);
    }
    assert!(
        !logs.text().contains("Some("),
        "optional fields are logged as values: {}",
        logs.text()
    );
}
