//! The webhook buffer: the spigot queue (FIFO or standard), its DLQ, and the payload
//! bucket that holds bodies too large for a message and the delivery-id markers.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use bytes::Bytes;

use crate::aws::error_text;
use crate::config::{BufferConfig, ConfigError};
use crate::envelope::{sha256_hex, Envelope, EnvelopeBody, EnvelopeError};
use crate::text::truncate;

/// SQS takes 1 MiB since 2025-08 (when the queue's MaximumMessageSize says so); stay well
/// under it so message attributes and a DLQ move still fit.
pub const INLINE_LIMIT_BYTES: usize = 900 * 1024;
/// One message group: replays leave in arrival order on a FIFO queue.
const MESSAGE_GROUP: &str = "webhooks";
const PAYLOAD_PREFIX: &str = "payloads/";
const DELIVERY_PREFIX: &str = "deliveries/";
pub const REASON_ATTRIBUTE: &str = "spigot_reason";
pub const STATUS_ATTRIBUTE: &str = "spigot_status";

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("cannot store the payload in s3://{bucket}: {reason}")]
    PayloadStore { bucket: String, reason: String },
    #[error("cannot read the payload s3://{bucket}/{key}: {reason}")]
    PayloadRead {
        bucket: String,
        key: String,
        reason: String,
        /// The object is gone (expired or deleted): retrying will not help.
        missing: bool,
    },
    #[error("payload s3://{bucket}/{key} does not match its sha256 or size")]
    PayloadCorrupt { bucket: String, key: String },
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("queue {queue}: {reason}")]
    Queue { queue: String, reason: String },
    #[error("no DLQ configured (SPIGOT_DLQ_URL)")]
    NoDeadLetterQueue,
}

/// Whether a delivery id was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours to deliver or store (new, or a claim a dead invocation left behind).
    First,
    /// Delivered or stored already.
    Duplicate,
    /// Another invocation claimed it and may still be handling it.
    InProgress,
    /// The marker store failed; the request goes on without deduplication rather than
    /// being lost.
    Unknown,
}

/// A delivery marker's content: claimed until a time (the claimer's deadline), or done.
/// Markers written before claims expired are empty: they count as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Marker {
    Claimed { until_ms: u64 },
    Done,
}

impl Marker {
    fn to_bytes(self) -> Vec<u8> {
        serde_json::to_vec(&self).expect("a marker serialises")
    }

    fn read(bytes: &[u8]) -> Marker {
        serde_json::from_slice(bytes).unwrap_or(Marker::Done)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A message received from the queue.
#[derive(Debug, Clone)]
pub struct QueuedHook {
    pub message_id: String,
    pub receipt_handle: String,
    /// The raw message body, kept for a move to the DLQ.
    pub raw: String,
    pub envelope: Result<Envelope, String>,
    pub receive_count: u32,
    /// The message attributes that carry a string value (String and Number types), e.g.
    /// [`REASON_ATTRIBUTE`] and [`STATUS_ATTRIBUTE`] on a dead letter.
    pub attributes: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

#[derive(Clone)]
pub struct WebhookBuffer {
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    config: BufferConfig,
    inline_limit: usize,
}

impl WebhookBuffer {
    pub fn new(sqs: aws_sdk_sqs::Client, s3: aws_sdk_s3::Client, config: BufferConfig) -> Self {
        Self {
            sqs,
            s3,
            config,
            inline_limit: INLINE_LIMIT_BYTES,
        }
    }

    /// The buffer named by `SPIGOT_QUEUE_URL`, `SPIGOT_DLQ_URL` and `PAYLOAD_BUCKET`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aws_sdk_sqs::Client::new(sdk),
            crate::aws::s3_client(sdk),
            BufferConfig::from_env()?,
        ))
    }

    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// Claims the delivery id until `until_ms` (epoch ms: the invocation's deadline).
    /// A claim is a put-if-absent marker; it counts as seen only once completed
    /// ([`complete_delivery`](Self::complete_delivery)). A claim left by an invocation that
    /// died before delivering or storing (timeout, crash, out of memory) expires at its
    /// deadline, so the operator's redelivery (same `X-GitHub-Delivery`) goes through;
    /// taking it over is a conditional overwrite, so two redeliveries cannot both win.
    /// Lifecycle rules expire the markers.
    pub async fn claim_delivery(&self, delivery_id: &str, until_ms: u64) -> Claim {
        let key = format!("{DELIVERY_PREFIX}{delivery_id}");
        let bucket = &self.config.payload_bucket;
        let claim = Marker::Claimed { until_ms }.to_bytes();
        let outcome = async {
            // Twice: a marker removed between our put and our read is absent again.
            for _ in 0..2 {
                if crate::aws::put_if_absent(&self.s3, bucket, &key, claim.clone()).await? {
                    return Ok(Claim::First);
                }
                let Some((marker, etag)) = self.read_marker(&key).await? else {
                    continue;
                };
                return Ok(match marker {
                    Marker::Done => Claim::Duplicate,
                    Marker::Claimed { until_ms } if until_ms > now_ms() => Claim::InProgress,
                    Marker::Claimed { .. } => {
                        if crate::aws::put_if_match(&self.s3, bucket, &key, &etag, claim.clone())
                            .await?
                        {
                            tracing::info!(delivery = delivery_id, "an expired claim taken over: its invocation died before delivering or storing");
                            Claim::First
                        } else {
                            Claim::InProgress
                        }
                    }
                });
            }
            Ok::<_, String>(Claim::InProgress)
        };
        match outcome.await {
            Ok(claim) => claim,
            Err(error) => {
                tracing::warn!(%error, "delivery marker store failed; not deduplicating");
                Claim::Unknown
            }
        }
    }

    /// The marker and its ETag; `None` when there is none.
    async fn read_marker(&self, key: &str) -> Result<Option<(Marker, String)>, String> {
        let object = match self
            .s3
            .get_object()
            .bucket(&self.config.payload_bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(err) => return Err(error_text(&err)),
        };
        let etag = object.e_tag().unwrap_or_default().to_owned();
        // A marker is a few bytes; anything longer is not ours.
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .into_bytes();
        Ok(Some((Marker::read(&bytes[..bytes.len().min(256)]), etag)))
    }

    /// Marks a claimed delivery done: delivered or stored. Not written (an error), the
    /// claim expires and a redelivery goes through once more: a duplicate, never a loss.
    pub async fn complete_delivery(&self, delivery_id: &str) {
        let result = self
            .s3
            .put_object()
            .bucket(&self.config.payload_bucket)
            .key(format!("{DELIVERY_PREFIX}{delivery_id}"))
            .body(ByteStream::from(Marker::Done.to_bytes()))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %error_text(&err), "cannot mark a delivery done; a redelivery after its claim expires is delivered again");
        }
    }

    /// Forgets a claimed delivery id, so that a redelivery of a request we did not keep
    /// is not mistaken for a duplicate.
    pub async fn release_delivery(&self, delivery_id: &str) {
        let result = self
            .s3
            .delete_object()
            .bucket(&self.config.payload_bucket)
            .key(format!("{DELIVERY_PREFIX}{delivery_id}"))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %error_text(&err), "cannot remove a delivery marker");
        }
    }

    /// Stores the envelope: inline when it fits a message, otherwise the body goes to the
    /// payload bucket first and the envelope points at it.
    pub async fn enqueue(&self, mut envelope: Envelope) -> Result<Envelope, BufferError> {
        let mut message = envelope.to_message();
        let mut spilled_key = None;
        if message.len() > self.inline_limit {
            let body = envelope
                .inline_body()
                .expect("a new envelope carries its body inline")?;
            let key = format!("{PAYLOAD_PREFIX}{}", envelope.id);
            self.s3
                .put_object()
                .bucket(&self.config.payload_bucket)
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .map_err(|err| BufferError::PayloadStore {
                    bucket: self.config.payload_bucket.clone(),
                    reason: error_text(&err),
                })?;
            envelope.body = EnvelopeBody::S3 {
                bucket: self.config.payload_bucket.clone(),
                key: key.clone(),
                size: body.len() as u64,
                sha256: sha256_hex(&body),
            };
            message = envelope.to_message();
            spilled_key = Some(key);
        }
        if let Err(err) = self
            .send(&self.config.queue_url, &message, &envelope.id, &[])
            .await
        {
            if let Some(key) = spilled_key {
                self.delete_payload(&self.config.payload_bucket, &key).await;
            }
            return Err(err);
        }
        Ok(envelope)
    }

    async fn send(
        &self,
        queue_url: &str,
        message: &str,
        dedup_id: &str,
        attributes: &[(&str, MessageAttributeValue)],
    ) -> Result<(), BufferError> {
        let mut request = self
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(message);
        if is_fifo(queue_url) {
            request = request
                .message_group_id(MESSAGE_GROUP)
                .message_deduplication_id(dedup_id);
        }
        for (name, value) in attributes {
            request = request.message_attributes(*name, value.clone());
        }
        request.send().await.map_err(|err| BufferError::Queue {
            queue: queue_url.into(),
            reason: error_text(&err),
        })?;
        Ok(())
    }

    /// Receives up to `max` (≤ 10) messages, hidden for `visibility_secs`.
    pub async fn receive(
        &self,
        max: i32,
        visibility_secs: i32,
        wait_secs: i32,
    ) -> Result<Vec<QueuedHook>, BufferError> {
        receive_from(
            &self.sqs,
            &self.config.queue_url,
            max,
            visibility_secs,
            wait_secs,
        )
        .await
    }

    /// The body bytes of a received envelope, fetched from S3 when spilled; checked
    /// against the recorded size and sha256.
    pub async fn load_body(&self, envelope: &Envelope) -> Result<Bytes, BufferError> {
        match &envelope.body {
            EnvelopeBody::Inline { .. } => {
                Ok(Bytes::from(envelope.inline_body().expect("inline body")?))
            }
            EnvelopeBody::S3 {
                bucket,
                key,
                size,
                sha256,
            } => {
                let read_error = |reason: String, missing: bool| BufferError::PayloadRead {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    reason,
                    missing,
                };
                let object = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|err| {
                        let missing = err.as_service_error().is_some_and(|e| e.is_no_such_key());
                        read_error(error_text(&err), missing)
                    })?;
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| read_error(e.to_string(), false))?
                    .into_bytes();
                if bytes.len() as u64 != *size || sha256_hex(&bytes) != *sha256 {
                    return Err(BufferError::PayloadCorrupt {
                        bucket: bucket.clone(),
                        key: key.clone(),
                    });
                }
                Ok(bytes)
            }
        }
    }

    /// Deletes delivered messages (batch delete), then their spilled bodies. Returns the
    /// message ids that are gone from the queue.
    pub async fn delete(&self, hooks: &[&QueuedHook]) -> Result<Vec<String>, BufferError> {
        let deleted = delete_from(&self.sqs, &self.config.queue_url, hooks).await?;
        for hook in hooks.iter().filter(|h| deleted.contains(&h.message_id)) {
            if let Ok(Envelope {
                body: EnvelopeBody::S3 { bucket, key, .. },
                ..
            }) = &hook.envelope
            {
                self.delete_payload(bucket, key).await;
            }
        }
        Ok(deleted)
    }

    /// Makes received but unprocessed messages visible again at once.
    pub async fn release(&self, hooks: &[&QueuedHook]) -> Result<(), BufferError> {
        release_from(&self.sqs, &self.config.queue_url, hooks).await
    }

    /// Moves a message the target refused (poison) to the DLQ with the reason and status
    /// as message attributes, then deletes it from the main queue.
    pub async fn dead_letter(
        &self,
        hook: &QueuedHook,
        reason: &str,
        status: Option<u16>,
    ) -> Result<(), BufferError> {
        let dlq = self
            .config
            .dlq_url
            .as_deref()
            .ok_or(BufferError::NoDeadLetterQueue)?;
        let mut attributes = vec![(REASON_ATTRIBUTE, string_attribute(&truncate(reason, 1024)))];
        if let Some(status) = status {
            attributes.push((
                STATUS_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value(status.to_string())
                    .build()
                    .expect("data type is set"),
            ));
        }
        self.send(dlq, &hook.raw, &hook.message_id, &attributes)
            .await?;
        delete_from(&self.sqs, &self.config.queue_url, &[hook]).await?;
        Ok(())
    }

    pub async fn depth(&self) -> Result<QueueDepth, BufferError> {
        queue_depth(&self.sqs, &self.config.queue_url).await
    }

    pub async fn dlq_depth(&self) -> Result<QueueDepth, BufferError> {
        let dlq = self
            .config
            .dlq_url
            .as_deref()
            .ok_or(BufferError::NoDeadLetterQueue)?;
        queue_depth(&self.sqs, dlq).await
    }

    /// Receives from the DLQ (for redrive and listing).
    pub async fn receive_dead_letters(
        &self,
        max: i32,
        visibility_secs: i32,
    ) -> Result<Vec<QueuedHook>, BufferError> {
        let dlq = self
            .config
            .dlq_url
            .as_deref()
            .ok_or(BufferError::NoDeadLetterQueue)?;
        receive_from(&self.sqs, dlq, max, visibility_secs, 0).await
    }

    /// Makes DLQ messages received for a listing visible again at once.
    pub async fn release_dead_letters(&self, hooks: &[&QueuedHook]) -> Result<(), BufferError> {
        let dlq = self
            .config
            .dlq_url
            .as_deref()
            .ok_or(BufferError::NoDeadLetterQueue)?;
        release_from(&self.sqs, dlq, hooks).await
    }

    /// Moves one DLQ message back to the main queue: send, then delete from the DLQ.
    pub async fn redrive(&self, hook: &QueuedHook) -> Result<(), BufferError> {
        let dlq = self
            .config
            .dlq_url
            .as_deref()
            .ok_or(BufferError::NoDeadLetterQueue)?;
        // A fresh dedup id: the original one may still be inside FIFO's 5-minute window.
        let dedup_id = format!("redrive-{}", hook.message_id);
        self.send(&self.config.queue_url, &hook.raw, &dedup_id, &[])
            .await?;
        delete_from(&self.sqs, dlq, &[hook]).await?;
        Ok(())
    }

    async fn delete_payload(&self, bucket: &str, key: &str) {
        if let Err(err) = self.s3.delete_object().bucket(bucket).key(key).send().await {
            // The lifecycle rule removes it later; a leftover costs storage, not data.
            tracing::warn!(bucket, key, error = %error_text(&err), "cannot delete a payload");
        }
    }
}

pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

async fn receive_from(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
    visibility_secs: i32,
    wait_secs: i32,
) -> Result<Vec<QueuedHook>, BufferError> {
    let output = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max.clamp(1, 10))
        .visibility_timeout(visibility_secs)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|err| BufferError::Queue {
            queue: queue_url.into(),
            reason: error_text(&err),
        })?;
    Ok(output
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|message| {
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let attributes = message
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.string_value?)))
                .collect();
            let raw = message.body.unwrap_or_default();
            Some(QueuedHook {
                message_id: message.message_id?,
                receipt_handle: message.receipt_handle?,
                envelope: Envelope::from_message(&raw).map_err(|e| e.to_string()),
                raw,
                receive_count,
                attributes,
            })
        })
        .collect())
}

async fn release_from(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    hooks: &[&QueuedHook],
) -> Result<(), BufferError> {
    for chunk in hooks.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, hook)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&hook.receipt_handle)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        sqs.change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| BufferError::Queue {
                queue: queue_url.into(),
                reason: error_text(&err),
            })?;
    }
    Ok(())
}

async fn delete_from(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    hooks: &[&QueuedHook],
) -> Result<Vec<String>, BufferError> {
    let mut deleted = Vec::with_capacity(hooks.len());
    for chunk in hooks.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, hook)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&hook.receipt_handle)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        let output = sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| BufferError::Queue {
                queue: queue_url.into(),
                reason: error_text(&err),
            })?;
        for ok in output.successful() {
            if let Some(hook) = ok.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                deleted.push(hook.message_id.clone());
            }
        }
        for failed in output.failed() {
            tracing::warn!(
                code = failed.code(),
                message = failed.message(),
                "delete failed; the message will be delivered again"
            );
        }
    }
    Ok(deleted)
}

async fn queue_depth(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<QueueDepth, BufferError> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|err| BufferError::Queue {
            queue: queue_url.into(),
            reason: error_text(&err),
        })?;
    let read = |name: QueueAttributeName| {
        output
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(QueueDepth {
        visible: read(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: read(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}
