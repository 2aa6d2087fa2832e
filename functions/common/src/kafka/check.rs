//! The references the readers are held to, shared by the unit tests and the fuzz
//! targets (`fuzz/`): the fast reading ([`super::scan`]) must read what the lenient one
//! ([`super::lenient`]) reads, and both what a walk over a `serde_json::Value` reads.
//! Each check panics on a disagreement, naming the input.

use base64::Engine as _;
use serde_json::Value;

use super::{lenient, scan, KafkaEvent, Record, RecordError};

/// Every reading of `text` agrees, when it is JSON (the runtime refuses other text
/// before a function sees it): the event as a function reads it, the value walk, and
/// the fast and lenient readings. Whether the fast one read it.
pub fn readers_agree(text: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let event = KafkaEvent::from_json(text);
    assert_eq!(owned(event.records()), records_by_value(&value), "{text}");
    assert_eq!(event.len(), event.records().count(), "{text}");
    both_readings(text)
}

/// A record with its pieces owned: topic, partition, offset, timestamp, key, value,
/// headers.
pub type Owned = (
    String,
    i64,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    Vec<u8>,
    Vec<(String, Vec<u8>)>,
);

pub fn owned<'a>(
    records: impl Iterator<Item = Result<Record<'a>, RecordError>>,
) -> Vec<Result<Owned, RecordError>> {
    records
        .map(|record| {
            record.map(|r| {
                (
                    r.topic.to_owned(),
                    r.partition,
                    r.offset,
                    r.timestamp,
                    r.key.map(<[u8]>::to_vec),
                    r.value.to_vec(),
                    r.headers.to_vec(),
                )
            })
        })
        .collect()
}

/// The reader this module had before [`KafkaEvent`], walking a `serde_json::Value`:
/// the reference the typed parse must agree with.
pub fn records_by_value(event: &Value) -> Vec<Result<Owned, RecordError>> {
    let Some(groups) = event.get("records").and_then(Value::as_object) else {
        return Vec::new();
    };
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.decode(text.trim());
    let mut out = Vec::new();
    let odd = |group: &str, problem: &str| {
        Err(RecordError {
            position: group.to_owned(),
            problem: problem.to_owned(),
        })
    };
    for (group, records) in groups {
        // A group that is not a list, or a record that is not an object, is one record
        // that could not be read (found by the kafka_event fuzz target: the walk skipped
        // them, while the function reports them).
        let Some(records) = records.as_array() else {
            out.push(odd(group, "the group is not a list of records"));
            continue;
        };
        for record in records {
            if !record.is_object() {
                out.push(odd(group, "the record is not an object"));
                continue;
            }
            let number = |name: &str| match &record[name] {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            let topic = record["topic"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    group
                        .rsplit_once('-')
                        .map_or(group.as_str(), |(t, _)| t)
                        .to_owned()
                });
            let (partition, offset) = (
                number("partition").unwrap_or(-1),
                number("offset").unwrap_or(-1),
            );
            let fail = |problem: &str| {
                Err(RecordError {
                    position: format!("{topic}/{partition}@{offset}"),
                    problem: problem.to_owned(),
                })
            };
            let value = match &record["value"] {
                Value::String(text) => match b64(text) {
                    Ok(value) => value,
                    Err(_) => {
                        out.push(fail("the value is not base64"));
                        continue;
                    }
                },
                Value::Null => {
                    out.push(fail("the record has no value"));
                    continue;
                }
                _ => {
                    out.push(fail("the value is not a base64 string"));
                    continue;
                }
            };
            let key = match &record["key"] {
                Value::String(text) => match b64(text) {
                    Ok(key) => Some(key),
                    Err(_) => {
                        out.push(fail("the key is not base64"));
                        continue;
                    }
                },
                _ => None,
            };
            let headers = record["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|h| h.iter())
                .map(|(name, bytes)| {
                    (
                        name.clone(),
                        bytes
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|b| b.as_i64().map(|b| b as u8))
                            .collect(),
                    )
                })
                .collect();
            out.push(Ok((
                topic,
                partition,
                offset,
                number("timestamp"),
                key,
                value,
                headers,
            )));
        }
    }
    out
}

/// Both readings of `text`: the same records when the fast one reads it; whether it
/// did.
pub fn both_readings(text: &str) -> bool {
    let lenient = lenient::event(text);
    match scan::event(text) {
        Some(fast) => {
            assert_eq!(owned(fast.records()), owned(lenient.records()), "{text}");
            true
        }
        None => false,
    }
}
