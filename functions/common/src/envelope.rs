//! The queue message: an envelope of one HTTP request, replayed byte for byte later.
//! Other functions (aliecs_ingest) enqueue envelopes too, so the format is versioned.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ENVELOPE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    /// Unique per received request; also the FIFO deduplication id.
    pub id: String,
    /// RFC 3339.
    pub received_at: String,
    pub method: String,
    /// Path on the target, e.g. `/github-webhook/`.
    pub path: String,
    /// Decoded query pairs, in a stable order.
    #[serde(default)]
    pub query: Vec<(String, String)>,
    /// Kept headers, names lower-case, values exactly as received.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: EnvelopeBody,
    /// The route it came through (informational: a replay goes only where a route
    /// configured then takes its method and path). Absent in envelopes queued before
    /// routes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvelopeBody {
    /// Base64, so that any bytes survive JSON untouched.
    Inline { base64: String },
    /// Too large for a queue message: the bytes are in the payload bucket.
    S3 {
        bucket: String,
        key: String,
        size: u64,
        sha256: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message is not a spigot envelope: {0}")]
    Unreadable(String),
    #[error("envelope version {0} is not supported (expected {ENVELOPE_VERSION})")]
    Version(u32),
    #[error("inline body is not valid base64")]
    BadBase64,
}

impl Envelope {
    /// A new envelope with the body inline; [`crate::buffer::WebhookBuffer::enqueue`]
    /// moves it to S3 when the message would be too large.
    pub fn new(
        method: impl Into<String>,
        path: impl Into<String>,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            received_at: now_rfc3339(),
            method: method.into(),
            path: path.into(),
            query,
            headers,
            body: EnvelopeBody::Inline {
                base64: BASE64.encode(body),
            },
            route: None,
        }
    }

    /// Names the route the request came through.
    pub fn through(mut self, route: &str) -> Self {
        self.route = Some(route.to_owned());
        self
    }

    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }

    pub fn from_message(message: &str) -> Result<Self, EnvelopeError> {
        let envelope: Envelope =
            serde_json::from_str(message).map_err(|e| EnvelopeError::Unreadable(e.to_string()))?;
        if envelope.version != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(envelope.version));
        }
        Ok(envelope)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn inline_body(&self) -> Option<Result<Vec<u8>, EnvelopeError>> {
        match &self.body {
            EnvelopeBody::Inline { base64 } => {
                Some(BASE64.decode(base64).map_err(|_| EnvelopeError::BadBase64))
            }
            EnvelopeBody::S3 { .. } => None,
        }
    }

    pub fn body_size(&self) -> u64 {
        match &self.body {
            EnvelopeBody::Inline { base64 } => (base64.len() as u64 / 4) * 3,
            EnvelopeBody::S3 { size, .. } => *size,
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("UTC time always formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_bytes() {
        let body: Vec<u8> = (0..=255).collect();
        let envelope = Envelope::new(
            "POST",
            "/github-webhook/",
            vec![("token".into(), "a b".into())],
            vec![("content-type".into(), "application/json".into())],
            &body,
        );
        let back = Envelope::from_message(&envelope.to_message()).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.inline_body().unwrap().unwrap(), body);
        assert_eq!(back.header("Content-Type"), Some("application/json"));
    }

    #[test]
    fn refuses_foreign_messages() {
        assert!(matches!(
            Envelope::from_message("{\"hello\":1}"),
            Err(EnvelopeError::Unreadable(_))
        ));
        let mut envelope = Envelope::new("POST", "/", vec![], vec![], b"");
        envelope.version = 99;
        assert!(matches!(
            Envelope::from_message(&envelope.to_message()),
            Err(EnvelopeError::Version(99))
        ));
    }
}
