//! Port self-service actions: a user clicks the reference example action
//! (`deploy_microservice_kafka`) in the sandbox Port; its run message reaches
//! port_runner through the Kafka injector, a sandbox Jenkins build starts, and
//! log_tailer (fed by the tail queue) streams the console log into the Port run while it
//! is written, until the run ends SUCCESS with the deployment entity upserted. Read back
//! from the sandbox Port, the sandbox Jenkins and the archive bucket.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use spigot_common::logline::clean_lines;
use spigot_common::search::{SearchAuth, SearchClient};

use super::{say, Row};
use crate::stack::{Stack, EXAMPLE_ACTION, EXAMPLE_JOB, LOCAL_PORT_ORG};

const PART: &str = "port";
const RUN_ID: &str = "r_demo0001";
/// The run may take this long from the click to its end.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(stack: &Stack) -> anyhow::Result<Vec<Row>> {
    let topic = format!("{LOCAL_PORT_ORG}.runs");
    let inject_url = format!("{}/kafka/{topic}", stack.url());
    let http = reqwest::Client::builder().no_proxy().build()?;
    let inputs = json!({
        "serviceName": "my-service",
        "version": "1.2.3",
        "environment": "dev",
        "changeReason": "JIRA-42 hotfix",
    });
    say(&format!(
        "Port: ana clicks {EXAMPLE_ACTION} (my-service 1.2.3 to dev); Port writes run {RUN_ID} to {topic}"
    ));
    let message = stack
        .port()
        .click(LOCAL_PORT_ORG, RUN_ID, EXAMPLE_ACTION, inputs);
    let inject = || async {
        let answer = super::inject_kafka(
            &http,
            stack,
            &topic,
            message.to_string().into_bytes(),
            "port_runner",
        )
        .await?;
        anyhow::Ok(Summary {
            started: answer["started"].as_u64().unwrap_or(0),
            duplicates: answer["duplicates"].as_u64().unwrap_or(0),
        })
    };
    let first = inject().await?;
    println!("    $ curl -X POST {inject_url} -d @run.json");
    println!("    port_runner: {first}");

    say("log_tailer follows the build (the tail queue's event source); the run's log in Port as it grows:");
    let clicked = Instant::now();
    let (run, seen_live) = follow_run(stack, clicked).await?;
    println!(
        "    run {RUN_ID}: {} — {}",
        run.status,
        run.status_label.as_deref().unwrap_or("")
    );
    for link in &run.link {
        println!("    link: {link}");
    }

    say("the same record delivered again (a Kafka retry): no second build");
    let again = inject().await?;
    println!("    port_runner: {again}");

    let builds: Vec<_> = stack
        .jenkins()
        .builds_of(EXAMPLE_JOB)
        .into_iter()
        .filter(|b| {
            b.parameters
                .iter()
                .any(|(k, v)| k == "PORT_RUN_ID" && v == RUN_ID)
        })
        .collect();
    let Some(build) = builds.first() else {
        bail!("no Jenkins build carries PORT_RUN_ID={RUN_ID}");
    };
    let jenkins_lines = clean_lines(build.log.as_bytes());
    // The opening message is port_runner's, the closing one log_tailer's verdict.
    let posted: Vec<&str> = run
        .logs
        .iter()
        .skip(1)
        .take(run.logs.len().saturating_sub(2))
        .flat_map(|(message, _)| message.split('\n'))
        .collect();
    let entity = run
        .entities
        .iter()
        .find(|(blueprint, _)| blueprint == "deployment")
        .map(|(_, entity)| entity["identifier"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let archived = super::archived_size(
        stack,
        &format!("jenkins/sandbox/{EXAMPLE_JOB}/{}.log", build.number),
    )
    .await?;
    let indexed = indexed_lines(stack, build.number).await?;
    let tail_queue = stack.resources().reference("TailQueue")?.to_owned();
    let tail_dlq = stack
        .resources()
        .reference("TailDeadLetterQueue")?
        .to_owned();
    let left = super::queue_depth(stack, &tail_queue).await?
        + super::queue_depth(stack, &tail_dlq).await?;

    Ok(vec![
        Row::count(PART, "runs started by port_runner", 1, first.started),
        Row::count(
            PART,
            "redelivered record: runs started again",
            0,
            again.started,
        ),
        Row::count(PART, "Jenkins builds of the run", 1, builds.len() as u64),
        Row::text(PART, "run status", "SUCCESS", &run.status),
        Row::count(
            PART,
            "log lines in Port (Jenkins log lines)",
            jenkins_lines.len() as u64,
            posted.len() as u64,
        ),
        Row::text(
            PART,
            "Port lines equal the Jenkins lines",
            "yes",
            if posted == jenkins_lines { "yes" } else { "no" },
        ),
        Row::text(
            PART,
            "lines in Port while the build ran",
            "yes",
            if seen_live { "yes" } else { "no" },
        ),
        Row::text(
            PART,
            "deployment entity upserted",
            "my-service-dev",
            &entity,
        ),
        Row::count(
            PART,
            "console log bytes archived",
            build.log.len() as u64,
            archived,
        ),
        Row::count(
            PART,
            "console log lines indexed",
            jenkins_lines.len() as u64,
            indexed,
        ),
        Row::count(PART, "checkpoints left in the tail queue and DLQ", 0, left),
    ])
}

/// port_runner's answer for the record.
struct Summary {
    started: u64,
    duplicates: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} started, {} already started",
            self.started, self.duplicates
        )
    }
}

/// Prints the run's log messages as they arrive until the run ends; the run, and
/// whether lines arrived while the build was still running.
async fn follow_run(
    stack: &Stack,
    clicked: Instant,
) -> anyhow::Result<(crate::port::SandboxRun, bool)> {
    let mut shown = 0;
    let mut seen_live = false;
    loop {
        let run = stack.port().run(RUN_ID).context("the run is in Port")?;
        let building = stack
            .jenkins()
            .builds_of(EXAMPLE_JOB)
            .last()
            .is_some_and(|b| b.building);
        for (message, _) in &run.logs[shown..] {
            let at = clicked.elapsed().as_secs_f64();
            for line in message.lines() {
                println!("    {at:>5.1}s │ {line}");
            }
        }
        // The first message is port_runner's; later ones while building are the tail.
        if building && run.logs.len() > 1 && run.logs.len() > shown {
            seen_live = true;
        }
        shown = run.logs.len();
        if run.status != "IN_PROGRESS" {
            return Ok((run, seen_live));
        }
        if clicked.elapsed() > RUN_TIMEOUT {
            bail!("gave up after {RUN_TIMEOUT:?} waiting for run {RUN_ID} to end");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Documents of the build's log in the search index (the example route indexes it).
async fn indexed_lines(stack: &Stack, build: u64) -> anyhow::Result<u64> {
    let search = SearchClient::new(stack.search_url(), SearchAuth::None)?;
    search.refresh("ci-logs-*").await?;
    let query = json!({"bool": {"filter": [
        {"term": {"ci.source": "jenkins"}},
        {"term": {"ci.project.path": EXAMPLE_JOB}},
        {"term": {"ci.job.id": build.to_string()}},
    ]}});
    Ok(search.count("ci-logs-*", &query).await?)
}
