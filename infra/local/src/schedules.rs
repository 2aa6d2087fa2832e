//! EventBridge schedules, sped up: a `rate(1 minute)` of the template fires every
//! `1 minute / speedup` locally (at least once a second). Each tick invokes the function
//! with the Scheduled Event EventBridge sends (or the schedule's own `Input`); a tick
//! that comes while the previous invocation still runs is skipped, as a function with
//! reserved concurrency 1 and no retries drops it in AWS.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::aws_emulator::REGION;
use crate::functions::Functions;
use crate::runtime_api::Outcome;
use crate::template::ACCOUNT;

/// The shortest local interval.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// One schedule of a function.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub function: String,
    pub name: String,
    /// The interval in AWS (`rate(...)`; a `cron(...)` counts as one minute).
    pub interval: Duration,
    pub input: Option<Value>,
}

/// The interval of `rate(N unit)`; `cron(...)` is taken as every minute.
pub fn interval(expression: &str) -> anyhow::Result<Duration> {
    let expression = expression.trim();
    if expression.starts_with("cron(") {
        return Ok(Duration::from_secs(60));
    }
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|e| e.strip_suffix(')'))
        .with_context(|| format!("{expression:?} is neither rate(...) nor cron(...)"))?;
    let (count, unit) = inner
        .trim()
        .split_once(' ')
        .with_context(|| format!("{expression:?}: rate(N unit)"))?;
    let count: u64 = count
        .parse()
        .with_context(|| format!("{expression:?}: N"))?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => bail!("{expression:?}: unknown unit {other}"),
    };
    Ok(Duration::from_secs(count * seconds))
}

/// The local interval for an AWS interval.
pub fn local_interval(interval: Duration, speedup: u32) -> Duration {
    (interval / speedup.max(1)).max(MIN_INTERVAL)
}

/// The event of one tick.
pub fn scheduled_event(schedule: &Schedule) -> Value {
    if let Some(input) = &schedule.input {
        return input.clone();
    }
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{}-{}", schedule.function, schedule.name)],
        "detail": {},
    })
}

/// Fires the schedule every `every` until the task is dropped.
pub async fn run(schedule: Schedule, every: Duration, functions: Arc<Functions>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The first tick of an interval is immediate; the first schedule comes one period in.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match functions
            .invoke(&schedule.function, &scheduled_event(&schedule))
            .await
        {
            Ok(Outcome::Response(body)) => tracing::debug!(
                function = %schedule.function,
                answer = %String::from_utf8_lossy(&body),
                "scheduled invocation"
            ),
            Ok(Outcome::Error(error)) => tracing::warn!(
                function = %schedule.function,
                error = %String::from_utf8_lossy(&error.body),
                "scheduled invocation failed"
            ),
            Err(error) => {
                tracing::warn!(function = %schedule.function, error = format!("{error:#}"), "scheduled invocation failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_and_sped_up() {
        assert_eq!(interval("rate(1 minute)").unwrap(), Duration::from_secs(60));
        assert_eq!(
            interval("rate(5 minutes)").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            interval("rate(2 hours)").unwrap(),
            Duration::from_secs(7200)
        );
        assert_eq!(
            interval("cron(0 * * * ? *)").unwrap(),
            Duration::from_secs(60)
        );
        assert!(interval("rate(1 fortnight)").is_err());
        assert!(interval("every minute").is_err());
        assert_eq!(
            local_interval(Duration::from_secs(60), 12),
            Duration::from_secs(5)
        );
        assert_eq!(local_interval(Duration::from_secs(60), 1000), MIN_INTERVAL);
    }

    #[test]
    fn the_tick_is_an_eventbridge_scheduled_event() {
        let schedule = Schedule {
            function: "send_from_queue".into(),
            name: "Drain".into(),
            interval: Duration::from_secs(60),
            input: None,
        };
        let event = scheduled_event(&schedule);
        let parsed: aws_lambda_events::cloudwatch_events::CloudWatchEvent =
            serde_json::from_value(event.clone()).unwrap();
        assert_eq!(parsed.detail_type.as_deref(), Some("Scheduled Event"));
        assert_eq!(parsed.source.as_deref(), Some("aws.events"));
        let with_input = Schedule {
            input: Some(json!({"action": "drain"})),
            ..schedule
        };
        assert_eq!(scheduled_event(&with_input), json!({"action": "drain"}));
    }
}
