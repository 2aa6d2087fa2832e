//! Smoke test: every function binary, run behind the Lambda Runtime API emulator, answers
//! every sample event in events/ with a response of the right shape. This is the binary
//! Lambda runs (main.rs wiring, config from the environment), not the handler alone.
//!
//! The binaries come from `cargo build --workspace --bins` (`make test` runs it first);
//! `make test-arm64` runs these tests again with the arm64 release binaries under
//! qemu-user (`SPIGOT_FUNCTION_BINARIES`, `SPIGOT_FUNCTION_RUNNER`).
//!
//! What a binary prints on stdout is read back too: its Embedded Metric Format records
//! must name only its function's metrics of `telemetry::catalogue`, all of them, in
//! spigot's namespace with the `Function` dimension (the dashboard shows only those).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use spigot_common::telemetry::{self, catalogue};
use spigot_local::gitlab::{SandboxJob, TraceShape};
use spigot_local::runtime_api::{Outcome, RuntimeApi};
use spigot_local::stack::{EXAMPLE_ACTION, EXAMPLE_JOB};
use spigot_tests::aliecs::AliecsWorld;
use spigot_tests::gitlab::GitlabWorld;
use spigot_tests::port::PortWorld;
use spigot_tests::{fixture, Options, Spigot};
use tokio::process::Command;

/// The secret scripts/gen-events.py signs the sample events with.
const EVENTS_SECRET: &str = "spigot-test-secret";
/// The GitLab webhook secret of the sample events.
const GITLAB_EVENTS_SECRET: &str = "spigot-gitlab-test-secret";

/// The function's binary, started the way the local stack starts it.
fn function_command(name: &str) -> Command {
    let binary = spigot_local::functions::function_binary(name).unwrap();
    spigot_local::functions::function_command(&binary)
}

/// Invokes `function` once per event; returns each answer's JSON.
async fn invoke_all(spigot: &Spigot, function: &str, events: &[&str]) -> Vec<Value> {
    invoke_with_env(spigot.function_env(EVENTS_SECRET), function, events).await
}

/// Like [`invoke_all`], with the function's whole environment given.
async fn invoke_with_env(
    env: Vec<(&'static str, String)>,
    function: &str,
    events: &[&str],
) -> Vec<Value> {
    let events: Vec<(String, Value)> = events
        .iter()
        .map(|name| ((*name).to_owned(), fixture(name)))
        .collect();
    invoke_events(env, function, &events).await
}

/// Runs the function's binary with `env` and invokes it with each (name, event).
async fn invoke_events(
    env: Vec<(&'static str, String)>,
    function: &str,
    events: &[(String, Value)],
) -> Vec<Value> {
    let api = RuntimeApi::start(function)
        .await
        .expect("Runtime API starts");
    let stdout = StdoutFile::new(function);
    let mut command = function_command(function);
    command
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(stdout.reopen().expect("the stdout file opens again"));
    let mut process = api.spawn(command).expect("the function starts");
    let mut answers = Vec::new();
    for (name, event) in events {
        let invocation = process
            .invoke(event, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{function} with {name}: {e}"));
        match invocation.outcome {
            Outcome::Response(body) => answers
                .push(serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"))),
            Outcome::Error(error) => panic!(
                "{function} with {name} failed: {}",
                String::from_utf8_lossy(&error.body)
            ),
        }
    }
    process.kill().await.expect("the function stops");
    let printed = std::fs::read_to_string(&stdout.path).expect("the function's stdout");
    check_emitted_metrics(function, &printed);
    answers
}

/// A file for a function's stdout, removed when dropped.
struct StdoutFile {
    path: std::path::PathBuf,
}

impl StdoutFile {
    fn new(function: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "spigot-smoke-{function}-{}-{n}.stdout",
            std::process::id()
        ));
        std::fs::File::create(&path).expect("the stdout file is created");
        StdoutFile { path }
    }

    fn reopen(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().append(true).open(&self.path)
    }
}

impl Drop for StdoutFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every EMF record `function` printed names only its catalogue metrics, with the
/// catalogue's namespace, dimension and unit; together they name every one (a metric
/// without a value this time, such as a latency with nothing posted, is left out of a
/// record, never sent as 0).
fn check_emitted_metrics(function: &str, printed: &str) {
    let expected: BTreeMap<&str, &str> = catalogue::of(function)
        .map(|m| (m.name, m.unit.as_str()))
        .collect();
    let mut emitted = BTreeSet::new();
    for line in printed.lines() {
        let Some(metrics) = telemetry::emf_metrics(line) else {
            continue;
        };
        for metric in &metrics {
            assert_eq!(metric.namespace, telemetry::NAMESPACE, "{function}: {line}");
            assert_eq!(
                metric.dimensions,
                vec![(
                    telemetry::FUNCTION_DIMENSION.to_owned(),
                    function.to_owned()
                )],
                "{function}: {line}"
            );
            let unit = metric.unit.as_deref().unwrap_or("");
            assert_eq!(
                expected.get(metric.name.as_str()),
                Some(&unit),
                "{function} emitted {} ({unit}), not as the catalogue has it: {line}",
                metric.name
            );
            emitted.insert(metric.name.clone());
        }
    }
    let missing: Vec<&&str> = expected
        .keys()
        .filter(|name| !emitted.contains(**name))
        .collect();
    assert!(
        missing.is_empty(),
        "{function} never emitted {missing:?}:\n{printed}"
    );
}

#[tokio::test]
async fn process_webhooks_binary_answers_every_fixture() {
    let spigot = Spigot::start(Options {
        webhook_secrets: vec![EVENTS_SECRET.into()],
        ..Options::default()
    })
    .await;
    let cases = [
        ("process_webhooks/push-on.json", 200),
        ("process_webhooks/base64-body.json", 200),
        ("process_webhooks/proxy-path.json", 200),
        ("process_webhooks/push-off.json", 202),
        ("process_webhooks/missing-state.json", 202),
        ("process_webhooks/bad-base64.json", 400),
        ("process_webhooks/bad-signature.json", 401),
        ("process_webhooks/replayed-to-script-console.json", 404),
        ("process_webhooks/dot-segment-escape.json", 400),
        // The runtime process must survive an event the query_map crate panics on.
        ("process_webhooks/empty-query-list.json", 200),
    ];
    let events: Vec<&str> = cases.iter().map(|(event, _)| *event).collect();
    let answers = invoke_all(&spigot, "process_webhooks", &events).await;

    assert_eq!(answers.len(), cases.len());
    for ((event, status), answer) in cases.iter().zip(&answers) {
        assert_eq!(answer["statusCode"], *status, "{event}: {answer}");
        assert_eq!(
            answer["headers"]["content-type"], "application/json",
            "{event}"
        );
        let body: Value = serde_json::from_str(answer["body"].as_str().expect("a text body"))
            .unwrap_or_else(|e| panic!("{event}: body is not JSON: {e}"));
        let expected_key = if *status < 400 { "status" } else { "error" };
        assert!(body[expected_key].is_string(), "{event}: {body}");
    }
    assert_eq!(
        spigot.jenkins.deliveries().len(),
        4,
        "the four accepted ON events reached Jenkins, nothing refused did"
    );
    assert_eq!(
        spigot.depth().await.visible,
        2,
        "the OFF and missing-state events queued"
    );
}

#[tokio::test]
async fn send_from_queue_binary_answers_every_fixture() {
    let spigot = Spigot::start(Options::default()).await;
    let answers = invoke_all(
        &spigot,
        "send_from_queue",
        &[
            "send_from_queue/schedule.json",
            "send_from_queue/drain.json",
        ],
    )
    .await;
    for answer in &answers {
        assert_eq!(answer["state"], "ON", "{answer}");
        assert_eq!(answer["stopped"], "queue_empty", "{answer}");
        assert_eq!(answer["delivered"], 0, "{answer}");
        assert_eq!(answer["remaining"], 0, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_ingest_binary_answers_every_fixture() {
    let world = GitlabWorld::start().await;
    let job = SandboxJob::finished(42, 7001, "build", "success", TraceShape::default());
    world.gitlab.add_job(job);
    let mut env = spigot_tests::moto_env(&world.moto);
    env.extend([
        ("GITLAB_URL", world.gitlab.url()),
        ("GITLAB_TOKEN", spigot_tests::gitlab::TOKEN.to_owned()),
        ("GITLAB_WEBHOOK_SECRET", GITLAB_EVENTS_SECRET.to_owned()),
        ("INGEST_QUEUE_URL", world.queue_url.clone()),
        ("SEARCH_URL", world.proxy.url()),
        ("ARCHIVE_BUCKET", world.archive_bucket.clone()),
    ]);
    let cases = [
        ("gitlab_ingest/job-hook-success.json", 202),
        ("gitlab_ingest/job-hook-running.json", 200),
        ("gitlab_ingest/job-hook-bad-token.json", 401),
        ("gitlab_ingest/after-script.json", 202),
        ("gitlab_ingest/after-script-token-in-url.json", 400),
        ("gitlab_ingest/after-script-empty-query-list.json", 400),
    ];
    // Without its webhook secret the function does not start (unless ALLOW_UNSIGNED).
    let unsigned_env: Vec<(&str, String)> = env
        .iter()
        .filter(|(name, _)| *name != "GITLAB_WEBHOOK_SECRET")
        .cloned()
        .collect();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        function_command("gitlab_ingest")
            .envs(unsigned_env)
            .output(),
    )
    .await
    .expect("the binary ends")
    .expect("the binary runs");
    assert!(
        !refused.status.success(),
        "started without a webhook secret"
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("ALLOW_UNSIGNED"), "{said}");

    let mut events: Vec<&str> = cases.iter().map(|(event, _)| *event).collect();
    events.push("gitlab_ingest/ingest-batch.json");
    let answers = invoke_with_env(env, "gitlab_ingest", &events).await;
    for ((event, status), answer) in cases.iter().zip(&answers) {
        assert_eq!(answer["statusCode"], *status, "{event}: {answer}");
        let body: Value =
            serde_json::from_str(answer["body"].as_str().expect("a text body")).unwrap();
        let key = if *status < 400 { "status" } else { "error" };
        assert!(body[key].is_string(), "{event}: {body}");
    }
    let batch = answers.last().unwrap();
    assert_eq!(batch["batchItemFailures"], serde_json::json!([]), "{batch}");
    world
        .assert_indexed_as_shown(7001, &TraceShape::default())
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_runner_and_log_tailer_binaries_run_the_fixtures_to_the_end() {
    let world = PortWorld::start().await;
    let runs = [
        "r_fixtureLegacy01",
        "r_fixtureV2payload",
        "r_fixtureBatch01",
    ];
    for run_id in runs {
        world.port.create_run(run_id, EXAMPLE_ACTION);
    }
    let mut env = world.function_env();
    let mut runner_env = env.clone();
    runner_env.push((
        "ROUTES",
        spigot_local::stack::example_routes(&world.jenkins.url()),
    ));
    let summaries = invoke_with_env(
        runner_env,
        "port_runner",
        &[
            "port_runner/self-managed-kafka.json",
            "port_runner/msk-v2-payload.json",
            "port_runner/mixed-batch.json",
        ],
    )
    .await;
    let counts: Vec<(u64, u64, u64)> = summaries
        .iter()
        .map(|s| {
            let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
            (n("records"), n("started"), n("rejected"))
        })
        .collect();
    assert_eq!(counts, [(1, 1, 0), (1, 1, 0), (3, 1, 2)]);
    assert_eq!(world.jenkins.builds_of(EXAMPLE_JOB).len(), 3);

    // The three checkpoints port_runner handed on, in one batch, and a bad one.
    let mut checkpoints = world.receive_checkpoints(Some(60)).await;
    while checkpoints.records.len() < 3 {
        let more = world.receive_checkpoints(Some(60)).await;
        assert!(
            !more.records.is_empty(),
            "three checkpoints on the tail queue"
        );
        checkpoints.records.extend(more.records);
    }
    env.extend([
        ("ARCHIVE_BUCKET", world.archive_bucket.clone()),
        ("POLL_INTERVAL_MS", "200".to_owned()),
    ]);
    let answers = invoke_events(
        env,
        "log_tailer",
        &[
            (
                "log_tailer/bad-checkpoint.json".into(),
                fixture("log_tailer/bad-checkpoint.json"),
            ),
            (
                "the tail queue's checkpoints".into(),
                serde_json::to_value(&checkpoints).unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(
        answers[0]["batchItemFailures"],
        json!([{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6d0"}]),
        "{}",
        answers[0]
    );
    assert_eq!(answers[1]["batchItemFailures"], json!([]), "{}", answers[1]);
    for run_id in runs {
        let run = world.run(run_id);
        assert_eq!(run.status, "SUCCESS", "{run_id}: {run:?}");
        assert!(run.log_text().contains(&format!("(Port run {run_id})")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aliecs_ingest_binary_answers_every_fixture() {
    let world = AliecsWorld::start("aliecs-smoke").await;
    let mut env = world.spigot.function_env(EVENTS_SECRET);
    env.extend([
        ("SEARCH_URL", world.search_url().to_owned()),
        ("SEARCH_INDEX_PREFIX", world.prefix.clone()),
        ("EOR_JENKINS_JOB", spigot_local::stack::EOR_JOB.to_owned()),
    ]);
    let answers = invoke_with_env(
        env,
        "aliecs_ingest",
        &[
            "aliecs_ingest/legacy-run.json",
            "aliecs_ingest/run-events.json",
            "aliecs_ingest/bad-records.json",
        ],
    )
    .await;
    let counts: Vec<[u64; 5]> = answers
        .iter()
        .map(|a| {
            let n = |k: &str| a[k].as_u64().unwrap_or_else(|| panic!("{k} in {a}"));
            [
                n("records"),
                n("timeline_created"),
                n("runs_updated"),
                n("eor_builds_queued"),
                n("undecodable") + n("unknown_topic"),
            ]
        })
        .collect();
    assert_eq!(counts, [[4, 4, 1, 1, 0], [3, 3, 1, 1, 0], [3, 1, 0, 0, 2]]);
    assert_eq!(world.run_record(559_124).await["duration_ms"], 60_000);
    assert_eq!(
        world.spigot.depth().await.visible,
        2,
        "two end-of-run builds queued"
    );
}
