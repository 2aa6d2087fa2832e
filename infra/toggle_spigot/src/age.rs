//! The age of the oldest queued message.
//!
//! SQS has no API attribute for it, and receiving messages to look at their timestamps
//! would burn receive counts (pushing good hooks towards the DLQ) and, on a FIFO queue,
//! lock the message group against the drain. The number exists as the CloudWatch metric
//! `AWS/SQS ApproximateAgeOfOldestMessage`, published once a minute: one
//! GetMetricStatistics call reads it. Where CloudWatch has no data (a new or idle queue,
//! no permission, the local emulator, which does not serve CloudWatch) the age is `n/a`,
//! with the reason.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::operation::get_metric_statistics::GetMetricStatisticsError;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use serde::Serialize;
use spigot_common::text::truncate;

const NAMESPACE: &str = "AWS/SQS";
const METRIC: &str = "ApproximateAgeOfOldestMessage";
/// SQS publishes every minute, with a few minutes' lag: look back far enough to find
/// the latest point.
const LOOK_BACK: Duration = Duration::from_secs(15 * 60);
const PERIOD_SECS: i32 = 60;
/// `status` must stay quick when CloudWatch cannot be reached.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest error text kept in the note.
const MAX_NOTE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OldestAge {
    /// Seconds; `None` when unknown.
    pub secs: Option<u64>,
    /// Where the number comes from, or why there is none.
    pub note: String,
}

impl OldestAge {
    fn unknown(note: impl Into<String>) -> Self {
        Self {
            secs: None,
            note: note.into(),
        }
    }
}

/// Reads the oldest-message age of a queue from CloudWatch, when there is a client.
#[derive(Clone, Default)]
pub struct AgeSource {
    cloudwatch: Option<aws_sdk_cloudwatch::Client>,
}

impl AgeSource {
    pub fn cloudwatch(client: aws_sdk_cloudwatch::Client) -> Self {
        Self {
            cloudwatch: Some(client),
        }
    }

    /// No source: the age is always `n/a`.
    pub fn none() -> Self {
        Self::default()
    }

    pub async fn oldest_age(&self, queue_url: &str) -> OldestAge {
        let Some(client) = &self.cloudwatch else {
            return OldestAge::unknown("no CloudWatch client");
        };
        let now = SystemTime::now();
        let request = client
            .get_metric_statistics()
            .namespace(NAMESPACE)
            .metric_name(METRIC)
            .dimensions(
                Dimension::builder()
                    .name("QueueName")
                    .value(queue_name(queue_url))
                    .build(),
            )
            .start_time(DateTime::from(now - LOOK_BACK))
            .end_time(DateTime::from(now))
            .period(PERIOD_SECS)
            .statistics(Statistic::Maximum)
            .send();
        let output = match tokio::time::timeout(CALL_TIMEOUT, request).await {
            Err(_) => {
                return OldestAge::unknown(format!(
                    "CloudWatch did not answer within {CALL_TIMEOUT:?}"
                ))
            }
            Ok(Err(err)) => {
                return OldestAge::unknown(format!("CloudWatch unavailable: {}", describe(&err)))
            }
            Ok(Ok(output)) => output,
        };
        latest_point(
            output
                .datapoints()
                .iter()
                .filter_map(|p| Some((p.timestamp()?.secs(), p.maximum()?))),
        )
    }
}

/// A short reason: the service's code and message, or what kind of failure it was (the
/// SDK's full error chain is long and says little more to an operator).
fn describe(err: &SdkError<GetMetricStatisticsError, HttpResponse>) -> String {
    if let Some(code) = err.code() {
        let text = match err.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_string(),
        };
        return truncate(&text, MAX_NOTE_CHARS);
    }
    match err {
        SdkError::ServiceError(e) => {
            format!("unrecognised answer (HTTP {})", e.raw().status().as_u16())
        }
        SdkError::ResponseError(e) => {
            format!("unreadable answer (HTTP {})", e.raw().status().as_u16())
        }
        SdkError::TimeoutError(_) => "no answer in time".into(),
        SdkError::DispatchFailure(_) => "unreachable".into(),
        _ => "request failed".into(),
    }
}

/// The newest datapoint (epoch seconds, value) as an age.
pub fn latest_point(points: impl IntoIterator<Item = (i64, f64)>) -> OldestAge {
    match points.into_iter().max_by_key(|(at, _)| *at) {
        None => OldestAge::unknown(format!(
            "CloudWatch has no {METRIC} data for the last {} minutes",
            LOOK_BACK.as_secs() / 60
        )),
        Some((at, value)) => {
            let at = time::OffsetDateTime::from_unix_timestamp(at)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| at.to_string());
            OldestAge {
                secs: Some(value.max(0.0).round() as u64),
                note: format!("CloudWatch {METRIC}, minute of {at}"),
            }
        }
    }
}

/// The queue name, which is the CloudWatch dimension: the last segment of its URL.
pub fn queue_name(queue_url: &str) -> &str {
    queue_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(queue_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_name_is_the_last_url_segment() {
        assert_eq!(
            queue_name("https://sqs.us-east-1.amazonaws.com/123456789012/spigot-queue.fifo"),
            "spigot-queue.fifo"
        );
        assert_eq!(queue_name("http://127.0.0.1:5000/123456789012/q/"), "q");
    }

    #[test]
    fn the_newest_point_wins() {
        let age = latest_point([(120, 30.0), (180, 95.4), (60, 500.0)]);
        assert_eq!(age.secs, Some(95));
        assert!(age.note.contains("1970-01-01T00:03:00Z"), "{}", age.note);
        assert_eq!(latest_point([]).secs, None);
    }
}
