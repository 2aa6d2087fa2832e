//! AliECS: an environment starts a run and ends it, telling both message generations
//! (the legacy `aliecs.env_*` notifications and the newer `aliecs.run` events) through
//! the Kafka injector. aliecs_ingest makes a timeline and one run record with its
//! duration; the end-of-run build goes through the spigot: it waits in the queue while
//! the spigot is OFF and reaches the sandbox Jenkins once it is back ON.

use std::time::Duration;

use aliecs_ingest::wire::{active_runs, env_info, notification, run_event, ENV};
use aliecs_ingest::BatchSummary;
use anyhow::Context;
use serde_json::Value;
use spigot_common::config::StageConfig;
use spigot_common::search::{SearchAuth, SearchClient};
use spigot_common::state::{SpigotState, Stage};

use super::{say, toggle_spigot, wait_for, Row};
use crate::spigot_resources::SpigotResources;
use crate::stack::{Stack, EOR_JOB};

const PART: &str = "aliecs";
const RUN: u64 = 560_001;
// Sorted, as the run record keeps them.
const DETECTORS: &[&str] = &["ITS", "TOF", "TPC"];
/// The message timestamps are AliECS's, so the run can last longer than the demo.
const RUN_LENGTH_MS: u64 = 42 * 60_000 + 17_000;
/// aliecs_ingest's index prefix (the template's default).
const INDEX_PREFIX: &str = "aliecs";
/// The spigot's drain runs every 2 s in the demo: this is several drains.
const DRAINS_WHILE_OFF: Duration = Duration::from_secs(6);

pub async fn run(stack: &Stack) -> anyhow::Result<Vec<Row>> {
    let kafka = Injector {
        stack,
        http: reqwest::Client::builder().no_proxy().build()?,
    };
    let spigot = SpigotResources::from_local(stack.resources())?;
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    let start = now_ms - RUN_LENGTH_MS - 60_000;
    let end = start + RUN_LENGTH_MS;
    let entered_running = start + 1_500;
    let running = env_info(Some(RUN), "RUNNING", DETECTORS, entered_running);

    say(&format!(
        "AliECS: environment {ENV} starts PHYSICS run {RUN} with {}",
        DETECTORS.join(", ")
    ));
    let mut timeline = 0;
    for (topic, value) in [
        (
            "aliecs.run",
            run_event(start, RUN, "START_ACTIVITY", 1, "CONFIGURED", "anna"),
        ),
        (
            "aliecs.env_state.RUNNING",
            notification(&running, entered_running),
        ),
        (
            "aliecs.env_list.RUNNING",
            active_runs(std::slice::from_ref(&running), entered_running + 500),
        ),
    ] {
        timeline += kafka.inject(topic, &value).await?.timeline_created;
    }

    say("Jenkins maintenance: the spigot is turned OFF before the run ends");
    toggle_spigot(stack, &["off"]).await?;

    say(&format!(
        "AliECS: run {RUN} ends {} later; the environment goes back to CONFIGURED",
        minutes_seconds(RUN_LENGTH_MS)
    ));
    let leave_running = notification(&running, end + 800);
    let mut queued = 0;
    for (topic, value) in [
        (
            "aliecs.run",
            run_event(end, RUN, "STOP_ACTIVITY", 1, "RUNNING", "anna"),
        ),
        ("aliecs.env_leave_state.RUNNING", leave_running.clone()),
        (
            "aliecs.env_state.CONFIGURED",
            notification(
                &env_info(None, "CONFIGURED", DETECTORS, end + 900),
                end + 900,
            ),
        ),
    ] {
        let summary = kafka.inject(topic, &value).await?;
        timeline += summary.timeline_created;
        queued += summary.eor_builds_queued;
    }
    say("the end of run delivered again (a Kafka retry)");
    let again = kafka
        .inject("aliecs.env_leave_state.RUNNING", &leave_running)
        .await?;

    let record = run_record(stack).await?;
    let run = &record["_source"];
    println!(
        "    run {RUN}: {} in {}, detectors {}, from {} ({}) to {} — {} long, ended {}",
        run["run_type"].as_str().unwrap_or("?"),
        run["environment_id"].as_str().unwrap_or("?"),
        run["detectors"],
        run["start"]["at"].as_str().unwrap_or("?"),
        run["start"]["user"].as_str().unwrap_or("?"),
        run["end"]["at"].as_str().unwrap_or("?"),
        minutes_seconds(run["duration_ms"].as_u64().unwrap_or(0)),
        run["ended"].as_str().unwrap_or("?"),
    );

    say(&format!(
        "the end-of-run build of {EOR_JOB} waits in the spigot queue while OFF"
    ));
    tokio::time::sleep(DRAINS_WHILE_OFF).await;
    let waiting = super::queue_depth(stack, &spigot.queue_url).await?;
    let builds_while_off = eor_builds(stack).len() as u64;
    println!("    {waiting} in the queue, {builds_while_off} builds of {EOR_JOB}");

    say("maintenance over: toggle_spigot on; the drain takes the build request to Jenkins");
    toggle_spigot(stack, &["on"]).await?;
    let build = wait_for(
        "the end-of-run build in the sandbox Jenkins",
        Duration::from_secs(60),
        || async { Ok(eor_builds(stack).into_iter().next()) },
    )
    .await?;
    let parameters: Vec<String> = build
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("    {EOR_JOB} #{}: {}", build.number, parameters.join(" "));
    let parameter = |name: &str| {
        build
            .parameters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // The drain deletes the message after Jenkins took it, and turns the spigot ON once
    // the queue is empty.
    let stage = Stage::new(
        aws_sdk_apigateway::Client::new(stack.sdk()),
        StageConfig {
            rest_api_id: spigot.rest_api_id.clone(),
            stage_name: spigot.stage_name.clone(),
        },
    );
    wait_for(
        "the drain to turn the spigot ON",
        Duration::from_secs(60),
        || async { Ok((stage.state().await? == SpigotState::On).then_some(())) },
    )
    .await?;
    let left = super::queue_depth(stack, &spigot.queue_url).await?
        + super::queue_depth(stack, &spigot.dlq_url).await?;

    Ok(vec![
        Row::count(PART, "timeline documents", 6, timeline),
        Row::count(
            PART,
            "redelivered end of run: new documents",
            0,
            again.timeline_created,
        ),
        Row::count(
            PART,
            "run duration (ms)",
            RUN_LENGTH_MS,
            run["duration_ms"].as_u64().unwrap_or(0),
        ),
        Row::text(
            PART,
            "run ended",
            "normal",
            run["ended"].as_str().unwrap_or(""),
        ),
        Row::text(
            PART,
            "run detectors",
            &DETECTORS.join(","),
            &string_list(&run["detectors"]).join(","),
        ),
        Row::count(PART, "end-of-run builds queued", 1, queued),
        Row::count(
            PART,
            "redelivered end of run: builds queued",
            0,
            again.eor_builds_queued,
        ),
        Row::count(PART, "waiting in the queue while OFF", 1, waiting),
        Row::count(PART, "end-of-run builds while OFF", 0, builds_while_off),
        Row::count(
            PART,
            "end-of-run builds after ON",
            1,
            eor_builds(stack).len() as u64,
        ),
        Row::text(
            PART,
            "build parameters",
            &format!("{RUN} PHYSICS {} {ENV}", DETECTORS.join(",")),
            &format!(
                "{} {} {} {}",
                parameter("RUN_NUMBER"),
                parameter("RUN_TYPE"),
                parameter("DETECTORS"),
                parameter("ENVIRONMENT_ID")
            ),
        ),
        Row::count(PART, "left in the spigot queue and DLQ", 0, left),
    ])
}

/// Posts AliECS's messages to the stack's Kafka injector.
struct Injector<'a> {
    stack: &'a Stack,
    http: reqwest::Client,
}

impl Injector<'_> {
    /// Delivers one record; aliecs_ingest's summary of it.
    async fn inject(&self, topic: &str, value: &[u8]) -> anyhow::Result<BatchSummary> {
        let answer = super::inject_kafka(
            &self.http,
            self.stack,
            topic,
            value.to_vec(),
            "aliecs_ingest",
        )
        .await?;
        let summary: BatchSummary = serde_json::from_value(answer.clone())
            .with_context(|| format!("aliecs_ingest's answer {answer}"))?;
        println!(
            "    {topic} ({} bytes) → {} timeline, {} run records, {} end-of-run builds",
            value.len(),
            summary.timeline_created,
            summary.runs_updated,
            summary.eor_builds_queued
        );
        Ok(summary)
    }
}

async fn run_record(stack: &Stack) -> anyhow::Result<Value> {
    let search = SearchClient::new(stack.search_url(), SearchAuth::None)?;
    search
        .json(
            http::Method::GET,
            &format!("/{INDEX_PREFIX}-runs/_doc/{RUN}"),
            None,
        )
        .await
        .with_context(|| format!("the run record of {RUN}"))
}

fn eor_builds(stack: &Stack) -> Vec<crate::jenkins::builds::BuildSummary> {
    stack
        .jenkins()
        .builds_of(EOR_JOB)
        .into_iter()
        .filter(|b| {
            b.parameters
                .iter()
                .any(|(k, v)| k == "RUN_NUMBER" && *v == RUN.to_string())
        })
        .collect()
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn minutes_seconds(ms: u64) -> String {
    format!("{} min {:02} s", ms / 60_000, ms % 60_000 / 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(super::minutes_seconds(42 * 60_000 + 7_400), "42 min 07 s");
        assert_eq!(super::minutes_seconds(0), "0 min 00 s");
    }
}
