//! The spigot through a Jenkins maintenance window: webhooks while ON are delivered;
//! `toggle_spigot off`; webhooks queue; Jenkins goes down; `toggle_spigot on` makes the
//! spigot DRAINING and the scheduled drain waits for Jenkins; Jenkins comes back; the
//! backlog drains and the stage flips to ON. Every webhook must reach Jenkins exactly once.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::Value;
use spigot_common::buffer::WebhookBuffer;
use spigot_common::config::{BufferConfig, StageConfig};
use spigot_common::github::sign;
use spigot_common::secrets::Secret;
use spigot_common::state::{SpigotState, Stage};

use super::{say, toggle_spigot, wait_for, Row, WEBHOOK_SECRET};
use crate::jenkins::JenkinsMode;
use crate::spigot_resources::SpigotResources;
use crate::stack::Stack;

const PART: &str = "spigot";
const LIVE: usize = 5;
const DURING_MAINTENANCE: usize = 20;
/// A GitHub push is typically a few KiB to tens of KiB.
const PAYLOAD_BYTES: usize = 8 * 1024;

pub async fn run(stack: &Stack) -> anyhow::Result<Vec<Row>> {
    let spigot = SpigotResources::from_local(stack.resources())?;
    let webhook_url = format!("{}/webhook", stack.api_url("SpigotApi")?);
    let stage = Stage::new(
        aws_sdk_apigateway::Client::new(stack.sdk()),
        StageConfig {
            rest_api_id: spigot.rest_api_id.clone(),
            stage_name: spigot.stage_name.clone(),
        },
    );
    let buffer = WebhookBuffer::new(
        aws_sdk_sqs::Client::new(stack.sdk()),
        spigot_common::aws::s3_client(stack.sdk()),
        BufferConfig {
            queue_url: spigot.queue_url.clone(),
            dlq_url: Some(spigot.dlq_url.clone()),
            payload_bucket: spigot.payload_bucket.clone(),
        },
    );
    let http = reqwest::Client::builder().no_proxy().build()?;
    let send = |n: usize| {
        let http = http.clone();
        let url = webhook_url.clone();
        async move {
            let body = push_payload(n);
            let response = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", delivery_id(n))
                .header("user-agent", "GitHub-Hookshot/demo")
                .header(
                    "x-hub-signature-256",
                    sign(&body, &Secret::new(WEBHOOK_SECRET)),
                )
                .body(body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            anyhow::Ok((status, answer))
        }
    };

    say(&format!(
        "spigot ON: {LIVE} signed GitHub push webhooks to {webhook_url}"
    ));
    let mut delivered_live = 0;
    for n in 0..LIVE {
        let (status, answer) = send(n).await?;
        println!("    webhook {n:>2} → {status} {}", answer["status"]);
        if status == 200 && answer["status"] == "delivered" {
            delivered_live += 1;
        }
    }

    say("Jenkins maintenance begins: the operator turns the spigot off");
    toggle_spigot(stack, &["off"]).await?;
    let mut queued = 0;
    for n in LIVE..LIVE + DURING_MAINTENANCE {
        let (status, answer) = send(n).await?;
        if status == 202 && answer["status"] == "queued" {
            queued += 1;
        }
    }
    println!("    {queued} of {DURING_MAINTENANCE} webhooks answered 202 queued");

    say("Jenkins goes down for its restart");
    stack.jenkins().set_mode(JenkinsMode::Unreachable).await?;

    say("toggle_spigot on: a backlog exists, so the spigot goes DRAINING");
    toggle_spigot(stack, &["on"]).await?;
    let state = stage.state().await?;
    ensure!(
        state == SpigotState::Draining,
        "expected DRAINING after `on`, found {state}"
    );
    // Two drain ticks: each finds Jenkins down and receives nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let waiting = buffer.depth().await?.total();
    println!(
        "    drains ran and waited for Jenkins: {waiting} still queued, state {}",
        stage.state().await?
    );

    say("Jenkins is back: the next scheduled drain replays the backlog and turns the spigot ON");
    stack.jenkins().set_mode(JenkinsMode::Up).await?;
    let final_state = wait_for(
        "the drain to turn the spigot ON",
        Duration::from_secs(90),
        || async {
            let state = stage.state().await?;
            Ok((state == SpigotState::On).then_some(state))
        },
    )
    .await?;
    toggle_spigot(stack, &["status"]).await?;

    let deliveries = stack.jenkins().deliveries();
    let ids: Vec<&str> = deliveries
        .iter()
        .filter_map(|d| d.header("x-github-delivery"))
        .collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    let expected: HashSet<String> = (0..LIVE + DURING_MAINTENANCE).map(delivery_id).collect();
    let lost = expected
        .iter()
        .filter(|id| !distinct.contains(id.as_str()))
        .count();
    let signed_ok = deliveries
        .iter()
        .filter(|d| d.signature_valid == Some(true))
        .count();
    let left = buffer.depth().await.context("queue depth")?.total();
    let dlq = buffer.dlq_depth().await.context("DLQ depth")?.total();
    let sent = (LIVE + DURING_MAINTENANCE) as u64;
    Ok(vec![
        Row::count(PART, "webhooks sent", sent, sent),
        Row::count(
            PART,
            "delivered at once while ON",
            LIVE as u64,
            delivered_live,
        ),
        Row::count(PART, "queued while OFF", DURING_MAINTENANCE as u64, queued),
        Row::count(
            PART,
            "waiting while Jenkins was down",
            DURING_MAINTENANCE as u64,
            waiting,
        ),
        Row::count(PART, "received by Jenkins", sent, ids.len() as u64),
        Row::count(
            PART,
            "distinct deliveries at Jenkins",
            sent,
            distinct.len() as u64,
        ),
        Row::count(PART, "signatures valid at Jenkins", sent, signed_ok as u64),
        Row::count(PART, "lost", 0, lost as u64),
        Row::count(PART, "left in the queue", 0, left),
        Row::count(PART, "in the DLQ", 0, dlq),
        Row::text(PART, "final spigot_state", "ON", final_state.as_str()),
    ])
}

/// A push payload of about [`PAYLOAD_BYTES`], valid JSON, distinct per `n`.
fn push_payload(n: usize) -> Vec<u8> {
    let head = format!("{{\"ref\":\"refs/heads/main\",\"n\":{n},\"padding\":\"");
    let pad = PAYLOAD_BYTES.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad)).into_bytes()
}

fn delivery_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}
