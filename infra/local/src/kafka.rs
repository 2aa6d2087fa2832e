//! A Kafka record injector standing in for a self-managed Kafka / MSK event source
//! mapping: a record posted for a topic becomes the Kafka event Lambda would deliver
//! (base64 key and value, `topic-partition` keys, increasing offsets per partition,
//! header values as signed bytes) for every function the template subscribes to it.
//!
//! There is no broker: a failed invocation is reported to the caller, not retried.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::functions::Functions;
use crate::runtime_api::Outcome;

/// What self-managed event sources put in `bootstrapServers` locally (and what the
/// template's broker parameters are set to: the injector stands in for them).
pub const BOOTSTRAP_SERVERS: &str = "127.0.0.1:9092";

/// One record to deliver.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub topic: String,
    pub partition: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What one function made of a record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    pub function: String,
    /// `ok`, `error` (the function failed) or `failed` (it could not be invoked).
    pub outcome: &'static str,
    /// The function's answer or error, as JSON when it is JSON.
    pub answer: Value,
}

pub struct KafkaInjector {
    /// Topic → the functions subscribed to it.
    subscriptions: BTreeMap<String, Vec<String>>,
    offsets: Mutex<HashMap<(String, i64), i64>>,
    functions: Arc<Functions>,
}

impl KafkaInjector {
    pub fn new(subscriptions: BTreeMap<String, Vec<String>>, functions: Arc<Functions>) -> Self {
        KafkaInjector {
            subscriptions,
            offsets: Mutex::new(HashMap::new()),
            functions,
        }
    }

    pub fn topics(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.subscriptions.iter()
    }

    /// Delivers `record` to each subscribed function; `None` when nobody subscribes.
    pub async fn inject(&self, record: Record) -> Option<(i64, Vec<Delivery>)> {
        let functions = self.subscriptions.get(&record.topic)?;
        let offset = {
            let mut offsets = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
            let next = offsets
                .entry((record.topic.clone(), record.partition))
                .or_insert(0);
            let offset = *next;
            *next += 1;
            offset
        };
        let event = kafka_event(&record, offset);
        let mut deliveries = Vec::new();
        for function in functions {
            let (outcome, answer) = match self.functions.invoke(function, &event).await {
                Ok(Outcome::Response(body)) => ("ok", as_json(&body)),
                Ok(Outcome::Error(error)) => ("error", as_json(&error.body)),
                Err(error) => ("failed", Value::String(format!("{error:#}"))),
            };
            deliveries.push(Delivery {
                function: function.clone(),
                outcome,
                answer,
            });
        }
        Some((offset, deliveries))
    }
}

fn as_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// The Kafka event for one record at `offset`.
pub fn kafka_event(record: &Record, offset: i64) -> Value {
    kafka_batch_event([(record, offset)])
}

/// The Kafka event for several records, each at its offset, grouped by
/// `topic-partition` in the order given.
pub fn kafka_batch_event<'a>(records: impl IntoIterator<Item = (&'a Record, i64)>) -> Value {
    let mut groups = serde_json::Map::new();
    for (record, offset) in records {
        let group = groups
            .entry(format!("{}-{}", record.topic, record.partition))
            .or_insert_with(|| json!([]));
        if let Value::Array(entries) = group {
            entries.push(record_entry(record, offset));
        }
    }
    json!({
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": BOOTSTRAP_SERVERS,
        "records": groups,
    })
}

fn record_entry(record: &Record, offset: i64) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let headers: Vec<Value> = record
        .headers
        .iter()
        // Java's bytes are signed, and so are the event's.
        .map(|(name, value)| json!({ name: value.iter().map(|b| *b as i8).collect::<Vec<i8>>() }))
        .collect();
    let mut entry = json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": offset,
        "timestamp": (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        "timestampType": "CREATE_TIME",
        "value": b64(&record.value),
        "headers": headers,
    });
    if let Some(key) = &record.key {
        entry["key"] = Value::String(b64(key));
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_reads_as_lambdas_kafka_event() {
        let record = Record {
            topic: "org.runs".into(),
            partition: 2,
            key: Some(Bytes::from_static(b"k")),
            value: Bytes::from_static(b"{\"a\":1}"),
            headers: vec![("h".into(), vec![b'v', 0xC8])],
        };
        let event = kafka_event(&record, 7);
        let parsed: aws_lambda_events::kafka::KafkaEvent = serde_json::from_value(event).unwrap();
        let records = &parsed.records["org.runs-2"];
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].offset, 7);
        assert_eq!(records[0].partition, 2);
        assert_eq!(records[0].value.as_deref(), Some("eyJhIjoxfQ=="));
        assert_eq!(records[0].key.as_deref(), Some("aw=="));
        assert_eq!(records[0].headers[0]["h"], vec![b'v' as i8, -56]);
    }
}
