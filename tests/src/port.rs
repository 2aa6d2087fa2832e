//! port_runner and log_tailer on real protocol, handlers in-process: a moto server with
//! the template's Port resources (tail queue, state and archive buckets), the sandbox
//! Jenkins with a few jobs, and the sandbox Port. No event source runs here: tests hand
//! Kafka events to port_runner and the tail queue's messages to log_tailer themselves,
//! deleting what an invocation handled, as the SQS event source does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use serde_json::{json, Value};
use spigot_common::port::{PortClient, PortCredentials};
use spigot_common::port_run::{RunState, TailCheckpoint};
use spigot_common::secrets::{JenkinsSecrets, Secret};
use spigot_local::aws_emulator::MotoServer;
use spigot_local::jenkins::builds::{BuildScript, SandboxJob};
use spigot_local::jenkins::{SandboxJenkins, SandboxJenkinsConfig};
use spigot_local::kafka::{kafka_batch_event, Record};
use spigot_local::port::{SandboxPort, SandboxRun};
use spigot_local::resources::LocalResources;
use spigot_local::stack::{example_job, EXAMPLE_ACTION, EXAMPLE_JOB};

pub const ORG: &str = "org_test";
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-client-secret";

/// Actions of the test routes, each to a job of its own.
pub const FLAKY_ACTION: &str = "run_flaky_tests";
pub const FLAKY_JOB: &str = "qa/flaky";
pub const MISSING_ACTION: &str = "deploy_nowhere";
pub const QUEUED_ACTION: &str = "wait_for_executor";
pub const QUEUED_JOB: &str = "infra/busy";
pub const LONG_ACTION: &str = "long_build";
pub const LONG_JOB: &str = "release/long";
pub const STUCK_ACTION: &str = "stuck_build";
pub const STUCK_JOB: &str = "release/stuck";
/// Lines the long build writes, 40 ms apart: about 8 s.
pub const LONG_LINES: usize = 200;

pub struct PortWorld {
    pub jenkins: SandboxJenkins,
    pub port: SandboxPort,
    pub runner: port_runner::Deps,
    pub tailer: log_tailer::Deps,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub tail_queue_url: String,
    pub state_bucket: String,
    pub archive_bucket: String,
    pub resources: LocalResources,
    offsets: std::sync::atomic::AtomicI64,
    pub moto: MotoServer,
}

impl PortWorld {
    pub async fn start() -> PortWorld {
        // An organisation id turns the template's Port resources on.
        let parameters = HashMap::from([("PortOrgId".to_owned(), ORG.to_owned())]);
        let (moto, sdk, resources) = crate::moto_with_template("port-test", &parameters).await;
        let jenkins = SandboxJenkins::start(SandboxJenkinsConfig {
            webhook_secrets: Vec::new(),
            credentials: None,
        })
        .await
        .expect("the sandbox Jenkins starts");
        for job in jobs() {
            jenkins.add_job(job);
        }
        let port = SandboxPort::start(0, CLIENT_ID, CLIENT_SECRET)
            .await
            .expect("the sandbox Port starts");
        let client = || {
            Arc::new(
                PortClient::new(
                    &port.url(),
                    PortCredentials {
                        client_id: CLIENT_ID.into(),
                        client_secret: Secret::new(CLIENT_SECRET),
                    },
                )
                .expect("the Port client builds"),
            )
        };
        let tail_queue_url = resources.reference("TailQueue").unwrap().to_owned();
        let state_bucket = resources.reference("StateBucket").unwrap().to_owned();
        let archive_bucket = resources.reference("ArchiveBucket").unwrap().to_owned();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let s3 = spigot_common::aws::s3_client(&sdk);
        let routes = port_runner::routes::Routes::parse(&routes(&jenkins.url()).to_string())
            .expect("the test routes parse");
        PortWorld {
            runner: port_runner::Deps {
                routes,
                port: client(),
                jenkins_secrets: JenkinsSecrets::default(),
                state: RunState::new(s3.clone(), &state_bucket),
                sqs: sqs.clone(),
                tail_queue_url: tail_queue_url.clone(),
                build_number_wait: Duration::from_secs(2),
            },
            tailer: log_tailer::Deps {
                port: client(),
                jenkins_secrets: JenkinsSecrets::default(),
                state: RunState::new(s3.clone(), &state_bucket),
                sqs: sqs.clone(),
                tail_queue_url: tail_queue_url.clone(),
                s3: s3.clone(),
                archive_bucket: archive_bucket.clone(),
                search: None,
                index_prefix: "ci-logs".into(),
                poll_interval: Duration::from_millis(200),
                flush_bytes: log_tailer::DEFAULT_FLUSH_BYTES,
                template: Default::default(),
            },
            jenkins,
            port,
            sqs,
            s3,
            tail_queue_url,
            state_bucket,
            archive_bucket,
            resources,
            offsets: Default::default(),
            moto,
        }
    }

    /// The environment port_runner's and log_tailer's binaries share, pointed at this
    /// world (each adds its own: `ROUTES`, `ARCHIVE_BUCKET`, ...).
    pub fn function_env(&self) -> Vec<(&'static str, String)> {
        let mut env = crate::moto_env(&self.moto);
        env.extend([
            ("PORT_API_URL", self.port.url()),
            ("PORT_CLIENT_ID", CLIENT_ID.to_owned()),
            ("PORT_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("TAIL_QUEUE_URL", self.tail_queue_url.clone()),
            ("STATE_BUCKET", self.state_bucket.clone()),
        ]);
        env
    }

    /// Routes `action` to `job`, which the sandbox Jenkins gets.
    pub fn add_route(&mut self, action: &str, job: SandboxJob) {
        let routes = json!({
            "servers": {"sandbox": self.jenkins.url()},
            "routes": {action: {"server": "sandbox", "job": job.path.join("/")}},
        });
        let mut parsed = port_runner::routes::Routes::parse(&routes.to_string())
            .expect("the added route parses");
        self.jenkins.add_job(job);
        self.runner.routes.routes.append(&mut parsed.routes);
    }

    /// Routes `action` to a job whose build has written all of `lines` when it starts:
    /// its first read is the whole log in one answer.
    pub fn add_written_job(&mut self, action: &str, job: &str, lines: Vec<String>) {
        let script = BuildScript {
            lines,
            line_interval: Duration::ZERO,
            result: "SUCCESS".into(),
        };
        self.add_route(action, SandboxJob::new(job, &["PORT_RUN_ID"], script));
    }

    /// A user clicks `action`: Port creates the run and writes the legacy envelope to
    /// `ORG.runs`; the Kafka event Lambda gets for it.
    pub fn click(&self, run_id: &str, action: &str, inputs: Value) -> Value {
        self.kafka_event(&self.port.click(ORG, run_id, action, inputs))
    }

    /// A record of `ORG.runs` carrying `value`, as the event source delivers it.
    pub fn kafka_event(&self, value: &Value) -> Value {
        self.kafka_batch(&[Bytes::from(value.to_string())])
    }

    /// One event holding a record per value, in order, on partition 0 of `ORG.runs`.
    pub fn kafka_batch(&self, values: &[Bytes]) -> Value {
        let records: Vec<Record> = values
            .iter()
            .map(|value| Record {
                topic: format!("{ORG}.runs"),
                value: value.clone(),
                ..Record::default()
            })
            .collect();
        kafka_batch_event(records.iter().map(|record| {
            let offset = self
                .offsets
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (record, offset)
        }))
    }

    /// Hands `event` (JSON, as Lambda delivers it) to port_runner.
    pub async fn run_port_runner(&self, event: &Value) -> port_runner::BatchSummary {
        let event = serde_json::from_value(event.clone()).expect("a Kafka event");
        port_runner::handle(&self.runner, &event).await
    }

    /// The checkpoints on the tail queue, hidden for `visibility` seconds (the queue's
    /// own timeout when `None`).
    pub async fn receive_checkpoints(&self, visibility: Option<i32>) -> SqsEvent {
        crate::receive_sqs_event(&self.sqs, &self.tail_queue_url, 1, visibility).await
    }

    /// One log_tailer invocation that may tail for `budget` before it must hand on;
    /// what it handled is deleted from the queue, as the event source does.
    pub async fn run_log_tailer(&self, event: SqsEvent, budget: Duration) -> SqsBatchResponse {
        let deadline = Instant::now() + log_tailer::DEADLINE_MARGIN + budget;
        let handles: Vec<(String, String)> = event
            .records
            .iter()
            .map(|m| {
                (
                    m.message_id.clone().unwrap_or_default(),
                    m.receipt_handle.clone().unwrap_or_default(),
                )
            })
            .collect();
        let response = log_tailer::handle_batch(&self.tailer, event, deadline).await;
        for (id, receipt) in handles {
            if !response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == id)
            {
                self.sqs
                    .delete_message()
                    .queue_url(&self.tail_queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete the handled checkpoint");
            }
        }
        response
    }

    /// One invocation's tail of the next checkpoint, through `log_tailer::tail::tail`
    /// itself for its report; the checkpoint is deleted when it was handled. `None` when
    /// the tail queue is empty.
    pub async fn tail_once(&self, budget: Duration) -> Option<log_tailer::tail::TailReport> {
        let event = self.receive_checkpoints(None).await;
        let message = event.records.first()?;
        let deadline = Instant::now() + log_tailer::DEADLINE_MARGIN + budget;
        let report = log_tailer::tail::tail(&self.tailer, checkpoint(&event), deadline)
            .await
            .expect("the checkpoint is handled");
        self.sqs
            .delete_message()
            .queue_url(&self.tail_queue_url)
            .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
            .send()
            .await
            .expect("delete the handled checkpoint");
        Some(report)
    }

    /// Invokes log_tailer on whatever the tail queue holds until it is empty; the number
    /// of invocations.
    pub async fn tail_until_idle(&self, budget: Duration) -> usize {
        let mut invocations = 0;
        loop {
            let event = self.receive_checkpoints(None).await;
            if event.records.is_empty() {
                return invocations;
            }
            let response = self.run_log_tailer(event, budget).await;
            assert!(
                response.batch_item_failures.is_empty(),
                "log_tailer failed a checkpoint"
            );
            invocations += 1;
            assert!(invocations < 100, "the tail never ends");
        }
    }

    /// Messages waiting on the tail queue (visible or in flight).
    pub async fn tail_queue_depth(&self) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.tail_queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        .iter()
        .map(|name| {
            attributes
                .get(&aws_sdk_sqs::types::QueueAttributeName::from(*name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    pub fn run(&self, run_id: &str) -> SandboxRun {
        self.port.run(run_id).expect("the run exists in Port")
    }

    pub async fn archived(&self, key: &str) -> Vec<u8> {
        crate::s3_object(&self.s3, &self.archive_bucket, key).await
    }

    /// The console log as Jenkins serves it (`consoleText`).
    pub async fn console_text(&self, job: &str, number: u64) -> Vec<u8> {
        let path: String = job.split('/').map(|s| format!("/job/{s}")).collect();
        reqwest::get(format!("{}{path}/{number}/consoleText", self.jenkins.url()))
            .await
            .expect("consoleText")
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }
}

/// The checkpoint a tail queue message carries.
pub fn checkpoint(event: &SqsEvent) -> TailCheckpoint {
    let body = event.records[0].body.as_deref().expect("a message body");
    serde_json::from_str(body).expect("a tail checkpoint")
}

/// The legacy envelope Port writes for a run of the test organisation.
pub fn envelope(run_id: &str, action: &str, inputs: Value) -> Value {
    spigot_local::port::run_envelope(ORG, run_id, action, inputs)
}

/// The reference example's inputs.
pub fn example_inputs(service: &str) -> Value {
    json!({
        "serviceName": service,
        "version": "1.2.3",
        "environment": "dev",
        "changeReason": "JIRA-42 hotfix",
    })
}

/// `count` numbered lines of about 100 bytes, from `first`.
pub fn numbered_lines(first: usize, count: usize) -> Vec<String> {
    (first..first + count)
        .map(|i| format!("{i:07} {}", "compiling".repeat(10)))
        .collect()
}

/// The largest console log the tests hand log_tailer in one answer: about 30 MiB of
/// numbered lines around one line of 20 MiB, ~50 MiB in all (300,001 lines).
pub fn big_log_lines() -> Vec<String> {
    let mut lines = numbered_lines(0, 150_000);
    lines.push("z".repeat(20 * 1024 * 1024));
    lines.extend(numbered_lines(150_000, 150_000));
    lines
}

/// The console log's lines as Port should show them (CRLF, ANSI, redraws cleaned).
pub fn cleaned_lines(raw: &[u8]) -> Vec<String> {
    spigot_common::logline::clean_lines(raw)
}

/// The log messages log_tailer posted: all but port_runner's opening message and the
/// closing one.
pub fn tailed_messages(run: &SandboxRun) -> Vec<String> {
    assert!(run.logs.len() >= 2, "an opening and a closing message");
    run.logs[1..run.logs.len() - 1]
        .iter()
        .map(|(message, _)| message.clone())
        .collect()
}

fn jobs() -> Vec<SandboxJob> {
    let mut example = example_job();
    example.script.line_interval = Duration::from_millis(100);
    let flaky = SandboxJob::new(
        FLAKY_JOB,
        &["PORT_RUN_ID"],
        BuildScript {
            lines: (1..=5).map(|i| format!("test {i}: ok")).collect(),
            line_interval: Duration::from_millis(50),
            result: "UNSTABLE".into(),
        },
    );
    let mut busy = SandboxJob::new(
        QUEUED_JOB,
        &["PORT_RUN_ID"],
        BuildScript {
            lines: vec!["never runs".into()],
            line_interval: Duration::from_millis(50),
            result: "SUCCESS".into(),
        },
    );
    busy.queue_delay = Duration::from_secs(600);
    let numbered = |count: usize| -> Vec<String> {
        (1..=count)
            .map(|i| format!("\u{1b}[34mstep {i:04}\u{1b}[0m of {count}: compiling module_{i}"))
            .collect()
    };
    let long = SandboxJob::new(
        LONG_JOB,
        &["PORT_RUN_ID"],
        BuildScript {
            lines: numbered(LONG_LINES),
            line_interval: Duration::from_millis(40),
            result: "SUCCESS".into(),
        },
    );
    let stuck = SandboxJob::new(
        STUCK_JOB,
        &["PORT_RUN_ID"],
        BuildScript {
            lines: numbered(10_000),
            line_interval: Duration::from_millis(100),
            result: "SUCCESS".into(),
        },
    );
    vec![example, flaky, busy, long, stuck]
}

/// The test routes: the example action as the local stack routes it, and one action per
/// other job; `deploy_nowhere` names a job Jenkins does not have.
fn routes(jenkins_url: &str) -> Value {
    let mut routes: Value =
        serde_json::from_str(&spigot_local::stack::example_routes(jenkins_url)).unwrap();
    routes["routes"][EXAMPLE_ACTION]["index_log"] = json!(false);
    let simple = |job: &str| json!({"server": "sandbox", "job": job});
    routes["routes"][FLAKY_ACTION] = simple(FLAKY_JOB);
    routes["routes"][MISSING_ACTION] = simple("deploy/nope");
    routes["routes"][QUEUED_ACTION] = simple(QUEUED_JOB);
    routes["routes"][LONG_ACTION] = simple(LONG_JOB);
    routes["routes"][STUCK_ACTION] = json!({
        "server": "sandbox", "job": STUCK_JOB,
        // 3 s.
        "timeout_minutes": 0.05,
        "abort_on_timeout": true,
    });
    assert_eq!(
        routes["routes"][EXAMPLE_ACTION]["job"], EXAMPLE_JOB,
        "the example route"
    );
    routes
}
