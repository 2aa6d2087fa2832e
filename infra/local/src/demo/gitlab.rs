//! GitLab job logs: the sandbox GitLab finishes three jobs (nested sections with
//! timestamps, a failed one, a 50 MiB one) and sends their Job Hooks to `/gitlab`; the
//! ingest queue feeds gitlab_ingest, which indexes every line and archives every log.
//! The counts are read back from the search server and the archive bucket, and every
//! job's lines are held to what GitLab's job log page shows for its trace.

use std::time::Duration;

use serde_json::{json, Value};
use spigot_common::search::{SearchAuth, SearchClient};

use super::{say, wait_for, Row};
use crate::gitlab::{check_indexed, SandboxJob, TraceShape};
use crate::stack::Stack;

const PART: &str = "gitlab";
const PROJECT: u64 = 42;
const INDEX: &str = "ci-logs-*";

/// The jobs of the demo: name, status, log shape.
fn jobs(big_job_bytes: u64) -> Vec<SandboxJob> {
    let mut sections = SandboxJob::finished(
        PROJECT,
        9001,
        "build",
        "success",
        TraceShape {
            bytes: 256 * 1024,
            seed: 11,
            ..TraceShape::default()
        },
    );
    sections.project_path = "demo/app".into();
    let mut failed = SandboxJob::finished(
        PROJECT,
        9002,
        "unit-tests",
        "failed",
        TraceShape {
            bytes: 96 * 1024,
            seed: 12,
            timestamps: false,
            failed: true,
            ..TraceShape::default()
        },
    );
    failed.project_path = "demo/app".into();
    let mut big = SandboxJob::finished(
        PROJECT,
        9003,
        "e2e-report",
        "success",
        TraceShape {
            bytes: big_job_bytes,
            seed: 13,
            // A job that prints its large JSON reports: 4 KiB lines.
            line_bytes: 4096,
            ..TraceShape::default()
        },
    );
    big.project_path = "demo/app".into();
    vec![sections, failed, big]
}

pub async fn run(stack: &Stack, big_job_bytes: u64) -> anyhow::Result<Vec<Row>> {
    let hook_url = format!("{}/gitlab", stack.api_url("SpigotApi")?);
    let search = SearchClient::new(stack.search_url(), SearchAuth::None)?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let secret = stack.options().gitlab_webhook_secret.clone();
    let post_hook = |hook: Value| {
        let http = http.clone();
        let url = hook_url.clone();
        let secret = secret.clone();
        async move {
            let response = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-gitlab-event", "Job Hook")
                .header("x-gitlab-token", secret)
                .body(hook.to_string())
                .send()
                .await?;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            anyhow::Ok((status, answer))
        }
    };

    let jobs = jobs(big_job_bytes);
    say(&format!(
        "GitLab: three jobs finish in the sandbox GitLab and send their Job Hooks to {hook_url}"
    ));
    let mut queued = 0;
    for job in &jobs {
        // GitLab sends a hook on every status change: the running one is ignored.
        let mut running = job.clone();
        running.status = "running".into();
        let (status, answer) = post_hook(stack.gitlab().job_hook(&running)).await?;
        println!(
            "    job {} ({}) running  → {status} {}",
            job.job_id, job.name, answer["status"]
        );
        stack.gitlab().add_job(job.clone());
        let (status, answer) = post_hook(stack.gitlab().job_hook(job)).await?;
        println!(
            "    job {} ({}) {:<8} → {status} {}",
            job.job_id, job.name, job.status, answer["status"]
        );
        if status == 202 {
            queued += 1;
        }
    }

    say("gitlab_ingest reads each finished job's trace (the SQS event source hands it the queue)");
    let mut rows = vec![Row::count(
        PART,
        "finished jobs queued",
        jobs.len() as u64,
        queued,
    )];
    for job in &jobs {
        let crate::gitlab::Trace::Generated(shape) = &job.trace else {
            unreachable!()
        };
        let expected_lines = shape.count_lines();
        let expected_bytes = shape.bytes_len();
        // Done when every line is searchable and the archive is complete (it is
        // written last).
        let (counted, archived) = wait_for(
            &format!("the lines and the archive of job {}", job.job_id),
            Duration::from_secs(600),
            || async {
                search.refresh(INDEX).await.ok();
                let count = documents(&search, job.job_id).await.unwrap_or(0);
                let archived = super::archived_size(
                    stack,
                    &format!("gitlab/{}/{}.log", job.project_id, job.job_id),
                )
                .await
                .ok();
                Ok(archived
                    .filter(|_| count >= expected_lines)
                    .map(|size| (count, size)))
            },
        )
        .await?;
        println!(
            "    job {} ({}, {}): {counted} lines indexed, {} archived",
            job.job_id,
            job.status,
            human_bytes(expected_bytes),
            human_bytes(archived)
        );
        rows.push(Row::count(
            PART,
            &format!("job {} lines indexed", job.name),
            expected_lines,
            counted,
        ));
        rows.push(Row::count(
            PART,
            &format!("job {} bytes archived", job.name),
            expected_bytes,
            archived,
        ));
        // Every line where GitLab's job log page shows it: section, text, duration.
        let shown = match check_indexed(&search, INDEX, job.job_id, &shape.expected_lines()).await?
        {
            Ok(()) => "yes".to_owned(),
            Err(diff) => {
                println!("    job {} differs from its log page:\n{diff}", job.job_id);
                "no".to_owned()
            }
        };
        rows.push(Row::text(
            PART,
            &format!("job {} lines as its log page shows them", job.name),
            "yes",
            &shown,
        ));
    }

    say("a search: the lines of the build job's `unit_tests` section");
    let hits = search
        .search(
            INDEX,
            &json!({
                "size": 3,
                "sort": [{"event.sequence": "asc"}],
                "query": {"bool": {"filter": [
                    {"term": {"ci.job.id": "9001"}},
                    {"term": {"ci.section.name": "unit_tests"}},
                ]}},
            }),
        )
        .await?;
    let total = hits["hits"]["total"]["value"].as_u64().unwrap_or(0);
    for hit in hits["hits"]["hits"].as_array().into_iter().flatten() {
        let doc = &hit["_source"];
        println!(
            "    #{:<5} {} [{}] {}",
            doc["event"]["sequence"],
            doc["@timestamp"].as_str().unwrap_or(""),
            doc["ci"]["section"]["path"].as_str().unwrap_or(""),
            doc["message"].as_str().unwrap_or("")
        );
    }
    println!("    … {total} lines in that section");

    let queue = stack.resources().reference("IngestQueue")?.to_owned();
    let dlq = stack
        .resources()
        .reference("IngestDeadLetterQueue")?
        .to_owned();
    let left = super::queue_depth(stack, &queue).await? + super::queue_depth(stack, &dlq).await?;
    rows.push(Row::text(
        PART,
        "a section's lines found by a search",
        "yes",
        if total > 0 { "yes" } else { "no" },
    ));
    rows.push(Row::count(
        PART,
        "messages left in the ingest queue and DLQ",
        0,
        left,
    ));
    Ok(rows)
}

async fn documents(search: &SearchClient, job_id: u64) -> anyhow::Result<u64> {
    Ok(search
        .count(INDEX, &json!({"term": {"ci.job.id": job_id.to_string()}}))
        .await?)
}

fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}
