//! `cargo bench -p spigot-tests --bench init_time`: cold starts of the release function
//! binaries through the Lambda Runtime API emulator, against a bare hello-world Rust
//! function (`hello_lambda`). The binaries come from `$SPIGOT_BENCH_BIN_DIR`, else
//! `target/release`; scripts/bench.sh builds them first.
//!
//! Init time is from spawning the process to the first invocation's answer. The first
//! events are ones the functions answer without calling AWS or Jenkins, so that the
//! emulators' own latency does not count as init; the time to the first `/next` (the end
//! of init proper) is shown beside it.
//!
//! Prints a table; a function that fails to start is a row saying so, never a failed
//! build.

// Each benchmark uses a part of the shared report helpers.
#[allow(dead_code)]
mod report;

use std::path::Path;
use std::time::Duration;

use report::{millis, percentile, print_table, Row};
use serde_json::{json, Value};
use spigot_local::runtime_api::{Outcome, RuntimeApi};
use spigot_tests::peak::{release_bin_dir, spawn_quiet};
use spigot_tests::{fixture, Options, Spigot};

const COLD_STARTS: usize = 20;
const INVOKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The target: a function's median init within this factor of hello-world's.
const MAX_FACTOR: f64 = 2.0;
/// The secret the fixtures in `events/` are signed with.
const FIXTURE_SECRET: &str = "spigot-test-secret";

/// A function binary, how it is configured, and its first event.
struct Subject {
    binary: &'static str,
    env: Vec<(&'static str, String)>,
    event: Value,
    /// Whether the first answer is the expected one, not a function that is broken fast.
    expected: fn(&Outcome) -> bool,
}

/// Init times of one subject, or why it could not be measured.
#[derive(Default)]
struct ColdStarts {
    to_first_answer: Vec<Duration>,
    to_first_next: Vec<Duration>,
    failure: Option<String>,
}

#[tokio::main]
async fn main() {
    // The functions read their AWS resources and target from the environment at init:
    // they get real ones (moto, the sandbox Jenkins), though their first events touch
    // neither.
    let spigot = Spigot::start(Options::default()).await;
    let subjects = subjects(&spigot);
    let bin_dir = release_bin_dir();

    // Progress goes to stderr: stdout is the table.
    eprintln!(
        "init_time bench: {COLD_STARTS} cold starts each of {}",
        subjects
            .iter()
            .map(|s| s.binary)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut results: Vec<ColdStarts> = subjects.iter().map(|_| ColdStarts::default()).collect();
    // One untimed start each loads the binary into the page cache; then the subjects
    // take turns, so that a noisy moment on the machine hits them all alike.
    for round in 0..=COLD_STARTS {
        for (subject, result) in subjects.iter().zip(&mut results) {
            if result.failure.is_some() {
                continue;
            }
            match cold_start(&bin_dir.join(subject.binary), subject).await {
                Ok(_) if round == 0 => {}
                Ok((to_first_next, to_first_answer)) => {
                    result.to_first_next.push(to_first_next);
                    result.to_first_answer.push(to_first_answer);
                }
                Err(reason) => result.failure = Some(reason),
            }
        }
    }

    let hello_median = results[0]
        .failure
        .is_none()
        .then(|| percentile(&results[0].to_first_answer, 50.0));
    let mut rows = vec![baseline_row(&subjects[0], &results[0])];
    rows.extend(
        subjects[1..]
            .iter()
            .zip(&results[1..])
            .map(|(subject, result)| function_row(subject, result, hello_median)),
    );
    print_table(&rows);
}

fn baseline_row(subject: &Subject, result: &ColdStarts) -> Row {
    let benchmark = format!("init time, {}", subject.binary);
    match &result.failure {
        Some(reason) => Row::failed(benchmark, "baseline", reason),
        None => Row {
            benchmark,
            value: init_times(result),
            target: "baseline".into(),
            verdict: report::NO_TARGET.into(),
        },
    }
}

fn function_row(subject: &Subject, result: &ColdStarts, hello_median: Option<Duration>) -> Row {
    let benchmark = format!("init time, {}", subject.binary);
    let Some(hello_median) = hello_median else {
        let target = format!("<= {MAX_FACTOR}x hello_lambda");
        return Row::failed(benchmark, target, "hello_lambda could not be measured");
    };
    let limit = hello_median.mul_f64(MAX_FACTOR);
    let target = format!("<= {MAX_FACTOR}x hello_lambda (<= {})", millis(limit));
    match &result.failure {
        Some(reason) => Row::failed(benchmark, target, reason),
        None => Row::judged(
            benchmark,
            init_times(result),
            target,
            percentile(&result.to_first_answer, 50.0) <= limit,
        ),
    }
}

fn init_times(result: &ColdStarts) -> String {
    format!(
        "median {}, p90 {} (to first /next: median {})",
        millis(percentile(&result.to_first_answer, 50.0)),
        millis(percentile(&result.to_first_answer, 90.0)),
        millis(percentile(&result.to_first_next, 50.0)),
    )
}

/// hello_lambda first: it is the baseline.
fn subjects(spigot: &Spigot) -> Vec<Subject> {
    let function_env = spigot.function_env(FIXTURE_SECRET);
    vec![
        Subject {
            binary: "hello_lambda",
            env: Vec::new(),
            event: json!({"hello": "world"}),
            expected: |outcome| matches!(outcome, Outcome::Response(_)),
        },
        Subject {
            binary: "process_webhooks",
            env: function_env.clone(),
            // Refused at the signature check, before any call out.
            event: fixture("process_webhooks/bad-signature.json"),
            expected: |outcome| answered(outcome, |response| response["statusCode"] == 401),
        },
        Subject {
            binary: "send_from_queue",
            env: function_env.clone(),
            // Every valid event starts by reading the stage; an unknown action is
            // refused before that.
            event: json!({"action": "bench-init"}),
            expected: |outcome| {
                matches!(outcome, Outcome::Error(error)
                    if String::from_utf8_lossy(&error.body).contains("unknown action"))
            },
        },
        Subject {
            binary: "gitlab_ingest",
            env: with(
                &function_env,
                &[
                    ("GITLAB_URL", "http://127.0.0.1:9"),
                    ("GITLAB_TOKEN", "glpat-bench"),
                    ("GITLAB_WEBHOOK_SECRET", "spigot-gitlab-test-secret"),
                    ("INGEST_QUEUE_URL", "http://127.0.0.1:9/queue/ingest"),
                    ("SEARCH_URL", "http://127.0.0.1:9"),
                    ("ARCHIVE_BUCKET", "bench-archive"),
                ],
            ),
            // A hook with the wrong token is refused before any call out.
            event: fixture("gitlab_ingest/job-hook-bad-token.json"),
            expected: |outcome| answered(outcome, |response| response["statusCode"] == 401),
        },
        Subject {
            binary: "port_runner",
            env: with(&function_env, &port_env()),
            // A batch without records: nothing to trigger.
            event: json!({"eventSource": "SelfManagedKafka", "records": {}}),
            expected: |outcome| answered(outcome, |summary| summary["records"] == 0),
        },
        Subject {
            binary: "aliecs_ingest",
            env: with(
                &function_env,
                &[
                    ("SEARCH_URL", "http://127.0.0.1:9"),
                    ("EOR_JENKINS_JOB", "aliecs/eor"),
                ],
            ),
            // A batch without records: nothing to index.
            event: json!({"eventSource": "SelfManagedKafka", "records": {}}),
            expected: |outcome| answered(outcome, |summary| summary["records"] == 0),
        },
        Subject {
            binary: "log_tailer",
            env: with(&function_env, &port_env()),
            event: json!({"Records": []}),
            expected: |outcome| {
                answered(outcome, |answer| answer["batchItemFailures"] == json!([]))
            },
        },
    ]
}

/// Whether the function answered with JSON that passes `check`.
fn answered(outcome: &Outcome, check: impl Fn(&Value) -> bool) -> bool {
    matches!(outcome, Outcome::Response(body)
        if serde_json::from_slice::<Value>(body).is_ok_and(|answer| check(&answer)))
}

/// What port_runner and log_tailer read at init (none of it is called by the events).
fn port_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PORT_API_URL", "http://127.0.0.1:9"),
        ("PORT_CLIENT_ID", "bench-client"),
        ("PORT_CLIENT_SECRET", "bench-secret"),
        (
            "ROUTES",
            r#"{"servers": {"main": "http://127.0.0.1:9"}, "routes": {"deploy": {"server": "main", "job": "deploy"}}}"#,
        ),
        ("TAIL_QUEUE_URL", "http://127.0.0.1:9/queue/tail"),
        ("STATE_BUCKET", "bench-state"),
        ("ARCHIVE_BUCKET", "bench-archive"),
    ]
}

/// `env` with `extra` added.
fn with(
    env: &[(&'static str, String)],
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

/// Starts `binary` behind a fresh Runtime API and invokes it once: the times from the
/// spawn to its first `/next` and to its answer.
async fn cold_start(binary: &Path, subject: &Subject) -> Result<(Duration, Duration), String> {
    if !binary.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release` (scripts/bench.sh does)",
            binary.display()
        ));
    }
    let api = RuntimeApi::start(subject.binary)
        .await
        .map_err(|error| format!("starting the Runtime API: {error}"))?;
    let mut process = spawn_quiet(&api, binary, subject.env.iter().cloned())?;
    let answer = process.invoke(&subject.event, INVOKE_TIMEOUT).await;
    let spawned_at = process.spawned_at();
    // Killing it is cleanup; a failure here does not change what was measured.
    let _ = process.kill().await;
    let invocation = answer.map_err(|error| error.to_string())?;
    if !(subject.expected)(&invocation.outcome) {
        return Err(format!(
            "unexpected first answer: {}",
            String::from_utf8_lossy(invocation.body())
        ));
    }
    let first_next = api
        .first_next_at()
        .ok_or("answered without asking for an event")?;
    Ok((first_next - spawned_at, invocation.answered_at - spawned_at))
}
