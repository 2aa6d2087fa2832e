//! `make demo`: narrated scenarios on the running stack, one part per flow, ending in one
//! table of expected and actual counts. Every number is read back from where it lands
//! (the sandbox upstreams, the queues, the stage), never assumed.

mod aliecs;
mod gitlab;
mod port;
mod spigot;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::stack::{Stack, StackOptions};

/// The secret the demo's webhooks are signed with (github.json in the local
/// credentials bucket, and the sandbox Jenkins' check).
pub const WEBHOOK_SECRET: &str = "demo-webhook-secret";

/// One line of the summary: what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub part: &'static str,
    pub what: String,
    pub expected: String,
    pub actual: String,
}

impl Row {
    pub fn count(part: &'static str, what: &str, expected: u64, actual: u64) -> Row {
        Row {
            part,
            what: what.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }

    pub fn text(part: &'static str, what: &str, expected: &str, actual: &str) -> Row {
        Row {
            part,
            what: what.to_owned(),
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        }
    }

    pub fn ok(&self) -> bool {
        self.expected == self.actual
    }
}

/// The options the demo runs the stack with: the prebuilt binaries, a signing secret,
/// and fast schedules.
pub fn stack_options() -> StackOptions {
    StackOptions {
        stack_name: "demo".into(),
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        // rate(1 minute) → every 2 s.
        schedule_speedup: 30,
        ..StackOptions::default()
    }
}

/// What the demo may be told.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Size of the GitLab part's big job log.
    pub big_job_bytes: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            big_job_bytes: 50 * 1024 * 1024,
        }
    }
}

/// Runs every part on `stack`; the summary rows.
pub async fn run(stack: &Stack, options: &DemoOptions) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    rows.extend(spigot::run(stack).await.context("the spigot part")?);
    rows.extend(
        gitlab::run(stack, options.big_job_bytes)
            .await
            .context("the GitLab part")?,
    );
    rows.extend(port::run(stack).await.context("the Port part")?);
    rows.extend(aliecs::run(stack).await.context("the AliECS part")?);
    Ok(rows)
}

/// The summary as a table.
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| part | what | expected | actual | |\n| --- | --- | ---: | ---: | --- |\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.part,
            row.what,
            row.expected,
            row.actual,
            if row.ok() { "ok" } else { "MISMATCH" }
        ));
    }
    out
}

pub(crate) fn say(step: &str) {
    println!("\n==> {step}");
}

/// Runs the operator CLI built next to the function binaries, pointed at the stack, and
/// shows what it printed.
pub(crate) async fn toggle_spigot(stack: &Stack, args: &[&str]) -> anyhow::Result<String> {
    let binary = crate::functions::debug_binary("toggle_spigot")?;
    println!("    $ toggle_spigot {}", args.join(" "));
    let output = tokio::process::Command::new(&binary)
        .args(args)
        .envs(stack.operator_env())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    for line in stdout.lines() {
        println!("      {line}");
    }
    if !output.status.success() {
        bail!(
            "toggle_spigot {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(stdout)
}

/// Posts a record to the stack's Kafka injector; what `function` answered for it (an
/// error if it did not get the record or failed on it).
pub(crate) async fn inject_kafka(
    http: &reqwest::Client,
    stack: &Stack,
    topic: &str,
    value: Vec<u8>,
    function: &str,
) -> anyhow::Result<serde_json::Value> {
    let answer: serde_json::Value = http
        .post(format!("{}/kafka/{topic}", stack.url()))
        .body(value)
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("injecting into {topic}"))?
        .json()
        .await?;
    let delivery = answer["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["function"] == function)
        .with_context(|| format!("{function} did not get the {topic} record: {answer}"))?;
    if delivery["outcome"] != "ok" {
        bail!("{function} failed on {topic}: {}", delivery["answer"]);
    }
    Ok(delivery["answer"].clone())
}

/// Polls `check` until it gives `Some`, or fails after `timeout` saying what it waited for.
pub(crate) async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("gave up after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Messages waiting in a queue, visible or in flight.
pub(crate) async fn queue_depth(stack: &Stack, url: &str) -> anyhow::Result<u64> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = aws_sdk_sqs::Client::new(stack.sdk())
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let n = |name: A| {
        attributes
            .get(&name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible))
}

/// Size of an object in the stack's archive bucket.
pub(crate) async fn archived_size(stack: &Stack, key: &str) -> anyhow::Result<u64> {
    let bucket = stack.resources().reference("ArchiveBucket")?;
    let head = spigot_common::aws::s3_client(stack.sdk())
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .with_context(|| format!("the archived log {key}"))?;
    Ok(head.content_length.unwrap_or(0) as u64)
}
