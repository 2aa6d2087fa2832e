//! `cargo bench -p spigot-tests --bench port`: how live a Port run's log is, and what it
//! costs in Port API calls. Three runs of the same action at once, each a sandbox
//! Jenkins build writing a line every 100 ms for a minute, followed by log_tailer with
//! its default poll interval (2 s) against the sandbox Port; handlers in-process, moto
//! for the queue and the state.
//! - Latency from a line written in Jenkins (the sandbox knows when: line i at
//!   start + i × interval) to its arrival in the Port run: p50 / p99, goal ≤ poll
//!   interval + 250 ms.
//! - Port calls per minute per run while the log streams, goal ≤ 30; and the calls a
//!   whole run makes, start and end included.
//!
//! Prints a table; never fails the build on a missed target.

#[allow(dead_code)]
mod report;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use report::{millis, percentile, print_table, Row};
use spigot_local::jenkins::builds::{BuildScript, SandboxJob};
use spigot_local::port::SandboxRun;
use spigot_tests::port::{envelope, PortWorld};

const ACTION: &str = "bench_stream";
const JOB: &str = "bench/stream";
const RUNS: usize = 3;
const LINES: usize = 600;
const LINE_INTERVAL: Duration = Duration::from_millis(100);
const CALLS_PER_MINUTE_TARGET: f64 = 30.0;

#[tokio::main]
async fn main() {
    let rows = match measure().await {
        Ok(rows) => rows,
        Err(reason) => vec![Row::failed(
            "Port run log: line written → posted",
            "p99 <= poll + 250 ms",
            &reason,
        )],
    };
    print_table(&rows);
}

async fn measure() -> Result<Vec<Row>, String> {
    let mut world = PortWorld::start().await;
    let poll = Duration::from_millis(log_tailer::DEFAULT_POLL_INTERVAL_MS);
    world.tailer.poll_interval = poll;
    world.add_route(
        ACTION,
        SandboxJob::new(
            JOB,
            &["PORT_RUN_ID"],
            BuildScript {
                lines: (1..=LINES)
                    .map(|i| format!("bench line {i:05} of {LINES}: compiling crate_{i}"))
                    .collect(),
                line_interval: LINE_INTERVAL,
                result: "SUCCESS".into(),
            },
        ),
    );
    let run_ids: Vec<String> = (1..=RUNS).map(|i| format!("r_bench{i:04}")).collect();
    let records: Vec<Bytes> = run_ids
        .iter()
        .map(|run_id| {
            world.port.create_run(run_id, ACTION);
            Bytes::from(envelope(run_id, ACTION, serde_json::json!({})).to_string())
        })
        .collect();
    eprintln!(
        "port bench: {RUNS} runs of a {} s build, log_tailer polling every {} ms",
        (LINE_INTERVAL * LINES as u32).as_secs(),
        poll.as_millis()
    );
    let clicked = Instant::now();
    let summary = world.run_port_runner(&world.kafka_batch(&records)).await;
    if summary.started != RUNS as u64 {
        return Err(format!("port_runner started {summary:?}"));
    }
    let mut checkpoints = world.receive_checkpoints(None).await;
    while checkpoints.records.len() < RUNS {
        let more = world.receive_checkpoints(None).await;
        if more.records.is_empty() {
            return Err("the tail checkpoints did not all arrive".into());
        }
        checkpoints.records.extend(more.records);
    }
    // One invocation follows all three to the end (a build of a minute fits one).
    let response = world
        .run_log_tailer(checkpoints, Duration::from_secs(600))
        .await;
    if !response.batch_item_failures.is_empty() {
        return Err("log_tailer failed a checkpoint".into());
    }
    let finished = clicked.elapsed();

    let builds = world.jenkins.builds_of(JOB);
    let requests = world.port.requests();
    let mut latencies = Vec::new();
    let mut sustained = Vec::new();
    let mut whole = Vec::new();
    for run_id in &run_ids {
        let run = world.port.run(run_id).ok_or("a run is missing")?;
        if run.status != "SUCCESS" {
            return Err(format!("run {run_id} ended {}", run.status));
        }
        let build = builds
            .iter()
            .find(|b| {
                b.parameters
                    .iter()
                    .any(|(k, v)| k == "PORT_RUN_ID" && v == run_id)
            })
            .ok_or("a build is missing")?;
        let arrived = arrivals(&run);
        if arrived.len() != LINES {
            return Err(format!(
                "run {run_id} shows {} of {LINES} lines",
                arrived.len()
            ));
        }
        for (line, at) in arrived {
            let written = build.started_at + LINE_INTERVAL * line as u32;
            latencies.push(at.saturating_duration_since(written));
        }
        // Port calls for this run (the token is the client's, not the run's).
        let calls: Vec<Instant> = requests
            .iter()
            .filter(|r| r.path.contains(run_id.as_str()))
            .map(|r| r.at)
            .collect();
        whole.push(calls.len());
        // While the log streams: the tail's posts, from the first to the last.
        let tail_posts: Vec<Instant> = run.logs[1..run.logs.len() - 1]
            .iter()
            .map(|(_, at)| *at)
            .collect();
        if let (Some(first), Some(last)) = (tail_posts.first(), tail_posts.last()) {
            let window = last.duration_since(*first).as_secs_f64() / 60.0;
            let during = calls
                .iter()
                .filter(|at| *at >= first && *at <= last)
                .count();
            // n calls span n - 1 intervals.
            sustained.push((during.saturating_sub(1)) as f64 / window);
        }
    }
    let goal = poll + Duration::from_millis(250);
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    let worst_rate = sustained.iter().cloned().fold(0.0_f64, f64::max);
    let run_minutes = finished.as_secs_f64() / 60.0;
    Ok(vec![
        Row::judged(
            format!(
                "Port run log: line written in Jenkins → in Port (poll {} ms, {} lines)",
                poll.as_millis(),
                latencies.len()
            ),
            format!("p50 {} / p99 {}", millis(p50), millis(p99)),
            format!("p99 <= {}", millis(goal)),
            p99 <= goal,
        ),
        Row::judged(
            "Port calls per minute per run, while the log streams",
            format!("{worst_rate:.1} (worst of {RUNS} runs)"),
            format!("<= {CALLS_PER_MINUTE_TARGET}"),
            worst_rate <= CALLS_PER_MINUTE_TARGET,
        ),
        Row::info(
            "Port calls of a whole run, start and end included",
            format!(
                "{:?} calls over {:.1} min ({:.1}/min)",
                whole,
                run_minutes,
                whole.iter().max().copied().unwrap_or(0) as f64 / run_minutes
            ),
        ),
    ])
}

/// When each line of the bench build reached the run: line number → arrival.
fn arrivals(run: &SandboxRun) -> HashMap<usize, Instant> {
    let mut arrived = HashMap::new();
    for (message, at) in &run.logs {
        for line in message.split('\n') {
            let number = line
                .strip_prefix("bench line ")
                .and_then(|rest| rest.get(..5))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(number) = number {
                arrived.entry(number).or_insert(*at);
            }
        }
    }
    arrived
}
