//! What a Lambda SQS event source mapping does: poll the queue, hand batches to the
//! function as SQS events, and delete what the function finished. Receive counts and
//! the move to the DLQ are the queue's own (its redrive policy on the emulator).
//!
//! - The function answers: every message is deleted, except, with
//!   `ReportBatchItemFailures`, the ones it lists in `batchItemFailures` (a list naming
//!   a message not in the batch, or an empty id, fails the whole batch, as in Lambda).
//! - The function fails or times out: nothing is deleted; the messages come back when
//!   their visibility timeout ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::aws_emulator::REGION;
use crate::functions::Functions;
use crate::runtime_api::Outcome;

/// One SQS event source mapping.
#[derive(Debug, Clone)]
pub struct SqsEventSource {
    pub function: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: u32,
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
}

/// Long-poll wait of one receive: short, so that a stop is prompt.
const RECEIVE_WAIT_SECS: i32 = 1;

/// Polls until the task is dropped.
pub async fn run(source: SqsEventSource, sqs: aws_sdk_sqs::Client, functions: Arc<Functions>) {
    loop {
        match poll_once(&source, &sqs, &functions).await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(function = %source.function, count, "SQS batch handled"),
            Err(error) => {
                tracing::warn!(function = %source.function, error = format!("{error:#}"), "SQS event source");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Receives one batch and hands it to the function; the number of messages received.
pub async fn poll_once(
    source: &SqsEventSource,
    sqs: &aws_sdk_sqs::Client,
    functions: &Functions,
) -> anyhow::Result<usize> {
    let batch = receive_batch(source, sqs).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let event = sqs_event(&batch, &source.queue_arn);
    let failed: Vec<&Message> = match functions.invoke(&source.function, &event).await {
        Ok(Outcome::Response(body)) => {
            match failures(&body, &batch, source.report_batch_item_failures) {
                Some(failed) => failed,
                None => {
                    tracing::warn!(function = %source.function, "the batch response names no valid message: the whole batch fails");
                    return Ok(batch.len());
                }
            }
        }
        Ok(Outcome::Error(error)) => {
            tracing::warn!(function = %source.function, error_type = %error.error_type, "the function failed: the batch comes back after its visibility timeout");
            return Ok(batch.len());
        }
        Err(error) => {
            tracing::warn!(function = %source.function, error = format!("{error:#}"), "the invocation failed: the batch comes back after its visibility timeout");
            return Ok(batch.len());
        }
    };
    let done: Vec<&Message> = batch
        .iter()
        .filter(|m| !failed.iter().any(|f| f.message_id == m.message_id))
        .collect();
    for chunk in done.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(batch.len())
}

async fn receive_batch(
    source: &SqsEventSource,
    sqs: &aws_sdk_sqs::Client,
) -> anyhow::Result<Vec<Message>> {
    let window_ends = Instant::now() + source.batching_window;
    let mut batch = Vec::new();
    loop {
        let want = (source.batch_size as usize - batch.len()).min(10) as i32;
        let wait = if batch.is_empty() {
            RECEIVE_WAIT_SECS
        } else {
            0
        };
        let received = sqs
            .receive_message()
            .queue_url(&source.queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?
            .messages
            .unwrap_or_default();
        let got = received.len();
        batch.extend(received);
        if batch.len() >= source.batch_size as usize || Instant::now() >= window_ends || got == 0 {
            return Ok(batch);
        }
    }
}

/// The messages the function reported as failed; `None` when the report is invalid.
fn failures<'a>(body: &[u8], batch: &'a [Message], report: bool) -> Option<Vec<&'a Message>> {
    if !report {
        return Some(Vec::new());
    }
    let response: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(items) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return Some(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            let id = item
                .get("itemIdentifier")?
                .as_str()
                .filter(|id| !id.is_empty())?;
            batch.iter().find(|m| m.message_id.as_deref() == Some(id))
        })
        .collect()
}

/// The SQS event Lambda gives the function for `batch`.
pub fn sqs_event(batch: &[Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|message| {
            let attributes: Map<String, Value> = message
                .attributes
                .iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
                .collect();
            let message_attributes: Map<String, Value> = message
                .message_attributes
                .iter()
                .flatten()
                .map(|(name, value)| {
                    let encode = |blob: &aws_sdk_sqs::primitives::Blob| {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(blob.as_ref()))
                    };
                    (
                        name.clone(),
                        json!({
                            "stringValue": value.string_value,
                            "binaryValue": value.binary_value.as_ref().map(encode),
                            "stringListValues": value.string_list_values(),
                            "binaryListValues": value.binary_list_values().iter().map(encode).collect::<Vec<_>>(),
                            "dataType": value.data_type,
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": message.message_id,
                "receiptHandle": message.receipt_handle,
                "body": message.body,
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": message.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;

    fn message(id: &str) -> Message {
        Message::builder()
            .message_id(id)
            .receipt_handle(format!("rh-{id}"))
            .body(format!("body {id}"))
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("x")
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[test]
    fn the_event_reads_as_lambdas_sqs_event() {
        let batch = [message("a"), message("b")];
        let event = sqs_event(&batch, "arn:aws:sqs:us-east-1:123456789012:q");
        let parsed: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(event).unwrap();
        assert_eq!(parsed.records.len(), 2);
        let first = &parsed.records[0];
        assert_eq!(first.message_id.as_deref(), Some("a"));
        assert_eq!(first.body.as_deref(), Some("body a"));
        assert_eq!(first.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            first.message_attributes["kind"].string_value.as_deref(),
            Some("x")
        );
        assert_eq!(first.event_source.as_deref(), Some("aws:sqs"));
    }

    #[test]
    fn batch_item_failures_name_messages_of_the_batch_or_fail_it_all() {
        let batch = [message("a"), message("b")];
        let ids = |failed: Option<Vec<&Message>>| {
            failed.map(|f| {
                f.iter()
                    .map(|m| m.message_id.clone().unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            ids(failures(
                br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#,
                &batch,
                true
            )),
            Some(vec!["b".into()])
        );
        assert_eq!(
            ids(failures(br#"{"batchItemFailures":[]}"#, &batch, true)),
            Some(vec![])
        );
        assert_eq!(ids(failures(b"null", &batch, true)), Some(vec![]));
        assert_eq!(
            ids(failures(
                br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
                &batch,
                true
            )),
            None
        );
        assert_eq!(
            ids(failures(
                br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#,
                &batch,
                true
            )),
            None
        );
        // Without ReportBatchItemFailures a list is ignored.
        assert_eq!(
            ids(failures(
                br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#,
                &batch,
                false
            )),
            Some(vec![])
        );
    }
}
