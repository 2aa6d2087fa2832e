//! `make demo` (spigot part): the spigot on one machine — a moto server, the sandbox
//! Jenkins and the real process_webhooks / send_from_queue handlers — through a Jenkins
//! maintenance window. Exits 0 only when every webhook was delivered exactly once.

use std::collections::HashSet;
use std::process::ExitCode;

use spigot_common::state::SpigotState;
use spigot_tests::{delivery_id, push_payload, JenkinsMode, Options, Spigot, Webhook};
use toggle_spigot::ops;

const LIVE: usize = 5;
const DURING_MAINTENANCE: usize = 20;

fn say(step: &str) {
    println!("\n==> {step}");
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("demo failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    say("starting the AWS emulator (moto), the spigot's queue, DLQ, bucket and API stage, and a sandbox Jenkins");
    let spigot = Spigot::start(Options::default()).await;
    println!("    AWS emulator  {}", spigot.moto.endpoint());
    println!("    Jenkins       {}", spigot.jenkins.url());
    println!("    queue         {}", spigot.resources.queue_url);

    let mut sent = 0;
    let mut send = |n: usize| {
        sent += 1;
        let body = push_payload(n, 25 * 1024);
        spigot.send(Webhook::github("push", &delivery_id(n), &body).build())
    };

    say(&format!("spigot ON: {LIVE} GitHub push webhooks"));
    for n in 0..LIVE {
        let r = send(n).await;
        println!("    webhook {n:>2} → {} {}", r.status(), r.json()["status"]);
    }

    say("toggle_spigot off: Jenkins maintenance begins");
    let off = ops::turn_off(&spigot.stage).await?;
    println!("    spigot_state {} → {}", off.previous.state, off.state);
    for n in LIVE..LIVE + DURING_MAINTENANCE {
        let r = send(n).await;
        anyhow::ensure!(
            r.status() == 202,
            "webhook {n} was not queued: {}",
            r.json()
        );
    }
    println!(
        "    {DURING_MAINTENANCE} webhooks answered 202 queued; queue depth {}",
        spigot.depth().await.visible
    );

    say("Jenkins goes down for its restart");
    spigot.jenkins.set_mode(JenkinsMode::Unreachable).await?;

    say("toggle_spigot on: a backlog exists, so the spigot goes DRAINING");
    let operator = ops::Spigot {
        stage: spigot.stage.clone(),
        buffer: spigot.buffer().clone(),
    };
    let on = ops::turn_on(&operator).await?;
    println!("    spigot_state {} → {}", on.previous.state, on.state);
    anyhow::ensure!(
        on.state == SpigotState::Draining,
        "expected DRAINING, got {}",
        on.state
    );
    let waiting = spigot.drain().await;
    println!(
        "    scheduled drain: stopped {:?} ({}), delivered {}, queue still {}",
        waiting.stopped,
        waiting.detail.as_deref().unwrap_or(""),
        waiting.delivered,
        waiting.remaining.unwrap_or_default()
    );

    say("Jenkins is back");
    spigot.jenkins.set_mode(JenkinsMode::Up).await?;
    let drained = spigot.drain().await;
    println!(
        "    scheduled drain: delivered {}, stopped {:?}, state now {}",
        drained.delivered, drained.stopped, drained.final_state
    );

    let deliveries = spigot.jenkins.deliveries();
    let distinct: HashSet<&str> = deliveries
        .iter()
        .filter_map(|d| d.header("x-github-delivery"))
        .collect();
    let queued = DURING_MAINTENANCE as u64;
    let dlq = spigot.dlq_depth().await.total();
    let left = spigot.depth().await.total();
    let state = spigot.state().await.unwrap_or_default();

    println!("\n| spigot demo            | count |");
    println!("|------------------------|-------|");
    println!("| webhooks sent          | {sent:>5} |");
    println!("| delivered to Jenkins   | {:>5} |", deliveries.len());
    println!("| distinct deliveries    | {:>5} |", distinct.len());
    println!("| queued while OFF       | {queued:>5} |");
    println!("| left in queue          | {left:>5} |");
    println!("| in DLQ                 | {dlq:>5} |");
    println!("| final state            | {state:>5} |");

    let ok = deliveries.len() == sent
        && distinct.len() == sent
        && left == 0
        && dlq == 0
        && state == "ON";
    println!(
        "\n{}",
        if ok {
            "OK: every webhook reached Jenkins exactly once; nothing lost."
        } else {
            "MISMATCH: the numbers do not add up."
        }
    );
    Ok(ok)
}
