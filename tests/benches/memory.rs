//! `cargo bench -p spigot-tests --bench memory`: each function's peak memory at its
//! heaviest documented load, against its `MemorySize` in template.yaml.
//!
//! Every function is its release binary behind the Runtime API emulator, given the
//! template's `Timeout` as its deadline, on the local servers the tests use (moto, the
//! search server or the sink proxy, sandbox Jenkins / GitLab / Port). The peak is the
//! process's `VmHWM` just before it is stopped: what Lambda reports as "Max Memory
//! Used" (spigot_tests::peak). A size keeps its headroom when peak <= 0.7 × MemorySize.
//!
//! The loads (the limits are in /work/shared/reference/aws-limits.md):
//! - process_webhooks: the largest webhook that can reach it. GitHub sends up to 25 MB,
//!   API Gateway takes 10 MB, but a REST proxy integration invokes the function
//!   synchronously, and Lambda's synchronous payload is 6 MB (aws-limits §2 "Sync
//!   invocation payload"): a push as large as still fits a 6 MiB event, delivered (ON)
//!   and then queued (OFF: its body spilled to S3).
//! - send_from_queue: a drain of a full SQS batch (10, aws-limits §1 `ReceiveMessage`)
//!   of envelopes just under the queue's 1 MiB message (inline up to
//!   `INLINE_LIMIT_BYTES`), then a batch of 10 of those largest webhooks, spilled.
//! - gitlab_ingest: a 100 MiB job log (the ingest the gitlab bench measures).
//! - port_runner: a full Kafka batch: 100 runs (`PortBatchSize`'s `MaxValue`) in an
//!   event just under 6 MiB (Lambda's invoke payload).
//! - log_tailer: a finished build's ~50 MiB console log with a 20 MiB line, read in one
//!   invocation (a finished build's `progressiveText` answer is the whole rest of its
//!   log); the largest the tests give it.
//! - aliecs_ingest: a full Kafka batch: 500 legacy records (the event sources'
//!   `BatchSize`) in an event just under 6 MiB.
//!
//! Prints its own table (function | load | peak RSS MiB | MemorySize MiB | headroom % |
//! verdict); a load that could not be measured is a FAILED row, never a failed build.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spigot_common::buffer::INLINE_LIMIT_BYTES;
use spigot_common::github::sign;
use spigot_common::secrets::Secret;
use spigot_common::state::SpigotState;
use spigot_local::runtime_api::{Outcome, MAX_PAYLOAD_BYTES};
use spigot_local::stack::{example_routes, EXAMPLE_ACTION};
use spigot_local::template::Template;
use spigot_tests::aliecs::{kafka_batch, legacy_records, AliecsWorld};
use spigot_tests::gitlab::GitlabWorld;
use spigot_tests::peak::{answer_json, run_release_binary, Measured};
use spigot_tests::port::{self, big_log_lines, example_inputs, PortWorld};
use spigot_tests::{delivery_id, fixture, push_payload, Options, Spigot, Webhook, SECRET};

const MIB: f64 = 1024.0 * 1024.0;
/// Peak at most this share of `MemorySize`: >= 30 % headroom.
const MAX_SHARE: f64 = 0.7;
/// Lambda's smallest memory size; larger ones here are multiples of 64 MiB.
const MIN_MEMORY_MB: u64 = 128;
const MEMORY_STEP_MB: u64 = 64;
/// "At 1,769 MB, a function has the equivalent of one vCPU" (Lambda developer guide,
/// configuration-memory.html); CPU is shared out in proportion below that.
const FULL_VCPU_MB: f64 = 1769.0;
/// Room left in a "just under 6 MiB" event for what the sizing does not count.
const EVENT_MARGIN: usize = 4 * 1024;
const GITLAB_JOB_BYTES: u64 = 100 * 1024 * 1024;
const PORT_BATCH: usize = 100;
const ALIECS_BATCH: usize = 500;
const SPOOL_BATCH: usize = 10;

/// One function at its load: what was measured, or why not.
struct Measurement {
    function: &'static str,
    load: String,
    measured: Result<Measured, String>,
}

#[tokio::main]
async fn main() {
    let template = Template::workspace().expect("template.yaml reads");
    let functions = template.functions().expect("the template's functions");
    let mut results = Vec::new();
    for (function, load) in [
        ("process_webhooks", Load::Webhook),
        ("send_from_queue", Load::Drain),
        ("gitlab_ingest", Load::JobLog),
        ("port_runner", Load::PortBatch),
        ("log_tailer", Load::ConsoleLog),
        ("aliecs_ingest", Load::AliecsBatch),
    ] {
        let Some(spec) = functions.iter().find(|f| f.binary == function) else {
            results.push(Measurement {
                function,
                load: "-".into(),
                measured: Err("not in template.yaml".into()),
            });
            continue;
        };
        eprintln!("memory bench: {function}");
        let started = Instant::now();
        let (load_text, measured) = load.run(spec.timeout).await;
        eprintln!(
            "memory bench: {function} done in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        results.push(Measurement {
            function,
            load: load_text,
            measured,
        });
        if let Some(last) = results.last() {
            print_row(last, spec.memory_mb, false);
        }
    }
    println!();
    println!("| function | load | peak RSS MiB | MemorySize MiB | headroom % | verdict |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for result in &results {
        let memory_mb = functions
            .iter()
            .find(|f| f.binary == result.function)
            .map_or(0, |f| f.memory_mb);
        print_row(result, memory_mb, true);
    }
    println!();
    println!("Lambda gives a function MemorySize / {FULL_VCPU_MB} MB of a vCPU: at that share the CPU time above takes at least");
    for result in &results {
        let (Ok(measured), Some(spec)) = (
            &result.measured,
            functions.iter().find(|f| f.binary == result.function),
        ) else {
            continue;
        };
        let share = spec.memory_mb as f64 / FULL_VCPU_MB;
        println!(
            "- {}: {:.0} s at {} MiB ({:.3} vCPU; Timeout {} s)",
            result.function,
            (measured.cpu_seconds / share).max(measured.seconds),
            spec.memory_mb,
            share,
            spec.timeout.as_secs()
        );
    }
}

/// A row of the table (on stdout), or a progress line (on stderr).
fn print_row(result: &Measurement, memory_mb: u64, table: bool) {
    let (peak, headroom, verdict) = match &result.measured {
        Ok(measured) => {
            let peak = measured.peak_mib();
            let headroom = 100.0 * (1.0 - peak / memory_mb as f64);
            let smallest = smallest_size_mb(peak);
            let verdict = if peak <= MAX_SHARE * memory_mb as f64 {
                format!("ok (smallest with 30 %: {smallest} MiB)")
            } else {
                format!("MISSED: needs {smallest} MiB")
            };
            (format!("{peak:.1}"), format!("{headroom:.0}"), verdict)
        }
        Err(reason) => ("-".into(), "-".into(), format!("FAILED: {reason}")),
    };
    let cells = [
        result.function.to_owned(),
        result.load.clone(),
        peak,
        memory_mb.to_string(),
        headroom,
        verdict,
    ]
    .map(|cell| cell.replace('|', "/").replace('\n', " "));
    if table {
        println!("| {} |", cells.join(" | "));
    } else {
        eprintln!("| {} |", cells.join(" | "));
    }
}

/// The smallest Lambda size (128 MiB, else a multiple of 64 MiB) with `peak_mib` at
/// most 70 % of it.
fn smallest_size_mb(peak_mib: f64) -> u64 {
    let needed = (peak_mib / MAX_SHARE).ceil() as u64;
    (needed.div_ceil(MEMORY_STEP_MB) * MEMORY_STEP_MB).max(MIN_MEMORY_MB)
}

enum Load {
    Webhook,
    Drain,
    JobLog,
    PortBatch,
    ConsoleLog,
    AliecsBatch,
}

impl Load {
    /// The load's description (with the time its invocations took) and the measurement.
    async fn run(&self, timeout: Duration) -> (String, Result<Measured, String>) {
        let outcome = match self {
            Load::Webhook => largest_webhook(timeout).await,
            Load::Drain => full_drain(timeout).await,
            Load::JobLog => job_log().await,
            Load::PortBatch => port_batch(timeout).await,
            Load::ConsoleLog => console_log(timeout).await,
            Load::AliecsBatch => aliecs_batch(timeout).await,
        };
        match outcome {
            Ok((load, measured)) => (
                format!(
                    "{load}; {:.1} s, {:.1} s CPU",
                    measured.seconds, measured.cpu_seconds
                ),
                Ok(measured),
            ),
            Err((load, reason)) => (load, Err(reason)),
        }
    }
}

type LoadOutcome = Result<(String, Measured), (String, String)>;

/// A GitHub push as API Gateway's REST proxy passes it (a JSON body arrives as text:
/// the template sets no BinaryMediaTypes), signed with [`SECRET`], `body_bytes` long.
fn push_event(n: usize, body_bytes: usize, state: SpigotState) -> Value {
    let body = push_payload(n, body_bytes);
    let mut event = fixture("process_webhooks/push-on.json");
    let signature = sign(&body, &Secret::new(SECRET));
    for headers in ["headers", "multiValueHeaders"] {
        let Some(headers) = event[headers].as_object_mut() else {
            continue;
        };
        let single = headers.contains_key("Accept") && headers["Accept"].is_string();
        let value = |v: String| if single { json!(v) } else { json!([v]) };
        headers.remove("X-Hub-Signature");
        headers.insert("X-Hub-Signature-256".into(), value(signature.clone()));
        headers.insert("X-GitHub-Delivery".into(), value(delivery_id(n)));
    }
    event["stageVariables"]["spigot_state"] = json!(state.to_string());
    event["body"] = json!(String::from_utf8(body).expect("the push payload is ASCII"));
    event
}

/// The body size of the largest push whose event still fits Lambda's payload limit.
fn largest_push_body() -> usize {
    let overhead = serde_json::to_vec(&push_event(0, 0, SpigotState::On))
        .expect("the event serialises")
        .len();
    MAX_PAYLOAD_BYTES - overhead - EVENT_MARGIN
}

async fn largest_webhook(timeout: Duration) -> LoadOutcome {
    let spigot = Spigot::start(Options::default()).await;
    let body_bytes = largest_push_body();
    let load = format!(
        "{:.2} MiB push (6 MiB event), delivered ON then spilled OFF",
        body_bytes as f64 / MIB
    );
    let events = [
        push_event(1, body_bytes, SpigotState::On),
        push_event(2, body_bytes, SpigotState::Off),
    ];
    let measured = run_release_binary(
        "process_webhooks",
        spigot.function_env(SECRET),
        &events,
        timeout,
    )
    .await
    .map_err(|reason| (load.clone(), reason))?;
    let statuses: Vec<Option<i64>> = measured
        .outcomes
        .iter()
        .map(|o| answer_json(o).and_then(|a| a["statusCode"].as_i64()))
        .collect();
    let delivered: Vec<usize> = spigot
        .jenkins
        .deliveries()
        .iter()
        .map(|d| d.body.len())
        .collect();
    let spilled = spigot.s3_keys("payloads/").await.len();
    if statuses != [Some(200), Some(202)] || delivered != [body_bytes] || spilled != 1 {
        return Err((
            load,
            format!(
                "answers {statuses:?}, Jenkins got bodies of {delivered:?} bytes, {spilled} spilled"
            ),
        ));
    }
    Ok((load, measured))
}

async fn full_drain(timeout: Duration) -> LoadOutcome {
    let spigot = Spigot::start(Options::default()).await;
    // The envelope carries the body in base64 (4/3) beside the request's headers.
    let inline_body = (INLINE_LIMIT_BYTES - 16 * 1024) * 3 / 4;
    let spilled_body = largest_push_body();
    let load = format!(
        "{SPOOL_BATCH} queued webhooks of {:.2} MiB inline, then {SPOOL_BATCH} of {:.2} MiB spilled",
        inline_body as f64 / MIB,
        spilled_body as f64 / MIB
    );
    spigot.set_state(SpigotState::Off).await;
    let sizes = std::iter::repeat_n(inline_body, SPOOL_BATCH)
        .chain(std::iter::repeat_n(spilled_body, SPOOL_BATCH));
    for (n, size) in sizes.enumerate() {
        let body = push_payload(n, size);
        let answer = spigot
            .send(Webhook::github("push", &delivery_id(n), &body).build())
            .await;
        if answer.status() != 202 {
            return Err((load, format!("queueing webhook {n}: {}", answer.status())));
        }
    }
    let spilled = spigot.s3_keys("payloads/").await.len();
    if spilled != SPOOL_BATCH {
        let reason = format!("{spilled} bodies spilled, not {SPOOL_BATCH}");
        return Err((load, reason));
    }
    spigot.set_state(SpigotState::Draining).await;
    let measured = run_release_binary(
        "send_from_queue",
        spigot.function_env(SECRET),
        &[fixture("send_from_queue/drain.json")],
        timeout,
    )
    .await
    .map_err(|reason| (load.clone(), reason))?;
    let summary = measured.outcomes.first().and_then(answer_json);
    let delivered = spigot.jenkins.deliveries().len();
    let expected = 2 * SPOOL_BATCH;
    match summary {
        Some(s) if s["delivered"] == expected && s["remaining"] == 0 && delivered == expected => {
            Ok((load, measured))
        }
        _ => Err((
            load,
            format!(
                "drain answered {}; Jenkins got {delivered} of {expected}",
                said(&measured)
            ),
        )),
    }
}

async fn job_log() -> LoadOutcome {
    let world = GitlabWorld::start().await;
    // The in-memory search server cannot hold a million documents: the proxy answers
    // every bulk item as created (as the gitlab bench does).
    world.proxy.set_sink(true);
    let load = format!(
        "{} MiB job log, one SQS message",
        GITLAB_JOB_BYTES / 1024 / 1024
    );
    match world.ingest_whole_job(1, GITLAB_JOB_BYTES).await {
        Ok((measured, lines)) => Ok((format!("{load} ({lines} lines)"), measured)),
        Err(reason) => Err((load, reason)),
    }
}

/// What port_runner and log_tailer read at start, pointed at `world`.
fn port_env(world: &PortWorld) -> Vec<(&'static str, String)> {
    let mut env = world.function_env();
    env.extend([
        ("ARCHIVE_BUCKET", world.archive_bucket.clone()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    env
}

/// `PORT_BATCH` clicks of the example action whose change reasons fill the event to
/// just under Lambda's payload limit.
fn port_values(padding: usize) -> Vec<bytes::Bytes> {
    (0..PORT_BATCH)
        .map(|n| {
            let mut inputs = example_inputs(&format!("service-{n:03}"));
            inputs["changeReason"] = json!(format!("JIRA-{n} {}", "x".repeat(padding)));
            let value = port::envelope(&port_run_id(n), EXAMPLE_ACTION, inputs);
            bytes::Bytes::from(value.to_string())
        })
        .collect()
}

fn port_run_id(n: usize) -> String {
    format!("r_memoryBench{n:03}")
}

async fn port_batch(timeout: Duration) -> LoadOutcome {
    let world = PortWorld::start().await;
    let unpadded = serde_json::to_vec(&world.kafka_batch(&port_values(0)))
        .expect("the event serialises")
        .len();
    // A record's value is base64 in the event: 4 bytes for every 3 of padding.
    let padding = (MAX_PAYLOAD_BYTES - unpadded - EVENT_MARGIN) / PORT_BATCH * 3 / 4;
    let event = world.kafka_batch(&port_values(padding));
    let event_bytes = serde_json::to_vec(&event).map_or(0, |e| e.len());
    let load = format!(
        "{PORT_BATCH} runs in one Kafka event of {:.2} MiB",
        event_bytes as f64 / MIB
    );
    for n in 0..PORT_BATCH {
        world.port.create_run(&port_run_id(n), EXAMPLE_ACTION);
    }
    let mut env = port_env(&world);
    env.push(("ROUTES", example_routes(&world.jenkins.url())));
    let measured = run_release_binary("port_runner", env, &[event], timeout)
        .await
        .map_err(|reason| (load.clone(), reason))?;
    let summary = measured.outcomes.first().and_then(answer_json);
    match summary {
        Some(s) if s["records"] == PORT_BATCH && s["started"] == PORT_BATCH => Ok((load, measured)),
        _ => Err((load, format!("port_runner answered {}", said(&measured)))),
    }
}

async fn console_log(timeout: Duration) -> LoadOutcome {
    let mut world = PortWorld::start().await;
    let lines = big_log_lines();
    let log_bytes: usize = lines.iter().map(|l| l.len() + 2).sum();
    let load = format!(
        "finished build's {:.0} MiB console log (one 20 MiB line)",
        log_bytes as f64 / MIB
    );
    world.add_written_job("memory_bench", "bench/big-log", lines);
    let run_id = "r_memoryBenchLog";
    let summary = world
        .run_port_runner(&world.click(run_id, "memory_bench", json!({})))
        .await;
    if summary.started != 1 {
        return Err((load, format!("the run did not start: {summary:?}")));
    }
    let checkpoints = world.receive_checkpoints(None).await;
    if checkpoints.records.len() != 1 {
        let reason = format!("{} checkpoints queued", checkpoints.records.len());
        return Err((load, reason));
    }
    let event = serde_json::to_value(&checkpoints).expect("the SQS event serialises");
    let measured = run_release_binary("log_tailer", port_env(&world), &[event], timeout)
        .await
        .map_err(|reason| (load.clone(), reason))?;
    let answer = measured.outcomes.first().and_then(answer_json);
    let run = world.run(run_id);
    if answer != Some(json!({"batchItemFailures": []})) {
        return Err((load, format!("log_tailer answered {}", said(&measured))));
    }
    // Not finished within one invocation is still the heaviest it gets: it hands on.
    let load = if run.status == "SUCCESS" {
        format!("{load}, read to the end")
    } else {
        format!("{load}, {} posts before handing on", run.logs.len())
    };
    Ok((load, measured))
}

async fn aliecs_batch(timeout: Duration) -> LoadOutcome {
    let world = AliecsWorld::start("aliecs-memory").await;
    let event_bytes = |envs: usize| {
        serde_json::to_vec(&kafka_batch(&legacy_records(ALIECS_BATCH, envs)))
            .map_or(usize::MAX, |e| e.len())
    };
    // Active-runs lists as long as still fit the payload: a list's size grows by one
    // environment at a time.
    let (one, two) = (event_bytes(1), event_bytes(2));
    let per_env = two.saturating_sub(one).max(1);
    let mut envs = 1 + (MAX_PAYLOAD_BYTES - EVENT_MARGIN - one) / per_env;
    while envs > 1 && event_bytes(envs) > MAX_PAYLOAD_BYTES - EVENT_MARGIN {
        envs -= 1;
    }
    let event = kafka_batch(&legacy_records(ALIECS_BATCH, envs));
    let load = format!(
        "{ALIECS_BATCH} legacy records ({envs} environments a list) in one Kafka event of {:.2} MiB",
        event_bytes(envs) as f64 / MIB
    );
    let mut env = world.spigot.function_env(SECRET);
    env.extend([
        ("SEARCH_URL", world.search_url().to_owned()),
        ("SEARCH_INDEX_PREFIX", world.prefix.clone()),
        ("EOR_JENKINS_JOB", spigot_local::stack::EOR_JOB.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    let measured = run_release_binary("aliecs_ingest", env, &[event], timeout)
        .await
        .map_err(|reason| (load.clone(), reason))?;
    let summary = measured.outcomes.first().and_then(answer_json);
    match summary {
        Some(s) if s["records"] == ALIECS_BATCH && s["undecodable"] == 0 => Ok((load, measured)),
        _ => Err((load, format!("aliecs_ingest answered {}", said(&measured)))),
    }
}

/// The first answer, shortened, for a FAILED row.
fn said(measured: &Measured) -> String {
    let text = match measured.outcomes.first() {
        Some(Outcome::Response(body)) => String::from_utf8_lossy(body).into_owned(),
        Some(Outcome::Error(error)) => format!(
            "{} {}",
            error.error_type,
            String::from_utf8_lossy(&error.body)
        ),
        None => "nothing".into(),
    };
    text.chars().take(300).collect()
}
