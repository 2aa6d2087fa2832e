//! Records of a Lambda Kafka event (self-managed or MSK), read one by one and leniently:
//! one odd record (a partition given as a string, a value that is not base64) is that
//! record's problem, never the whole batch's. Facts: `reference/aws-limits.md` §2
//! (Kafka event source).

use base64::Engine as _;
use serde_json::Value;

/// One record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    /// Milliseconds since the epoch, when given.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// Header names and their bytes (the event's signed bytes made unsigned).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// `topic/partition@offset`, for logs.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// A record that could not be read, and where it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {position}: {problem}")]
pub struct RecordError {
    pub position: String,
    pub problem: String,
}

/// Every record of the event, in partition order (`topic-partition` keys sorted, offsets
/// as given), each decoded or with its problem.
pub fn records(event: &Value) -> Vec<Result<Record, RecordError>> {
    let Some(groups) = event.get("records").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = groups.keys().collect();
    keys.sort();
    keys.into_iter()
        .flat_map(|key| {
            groups[key]
                .as_array()
                .map(|records| {
                    records
                        .iter()
                        .map(|record| read(key, record))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_else(|| {
                    vec![Err(RecordError {
                        position: key.clone(),
                        problem: "the group is not a list of records".into(),
                    })]
                })
        })
        .collect()
}

fn read(group: &str, record: &Value) -> Result<Record, RecordError> {
    let number = |name: &str| match &record[name] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let topic = record["topic"]
        .as_str()
        .map(str::to_owned)
        // `topic-partition`: the topic is what precedes the last `-`.
        .or_else(|| group.rsplit_once('-').map(|(topic, _)| topic.to_owned()))
        .unwrap_or_else(|| group.to_owned());
    let partition = number("partition").unwrap_or(-1);
    let offset = number("offset").unwrap_or(-1);
    let position = format!("{topic}/{partition}@{offset}");
    let fail = |problem: &str| RecordError {
        position: position.clone(),
        problem: problem.to_owned(),
    };
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.decode(text.trim());
    let value = match &record["value"] {
        Value::String(text) => b64(text).map_err(|_| fail("the value is not base64"))?,
        Value::Null => return Err(fail("the record has no value")),
        _ => return Err(fail("the value is not a base64 string")),
    };
    let key = match &record["key"] {
        Value::String(text) => Some(b64(text).map_err(|_| fail("the key is not base64"))?),
        _ => None,
    };
    let headers = record["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|header| header.iter())
        .map(|(name, bytes)| {
            let bytes = bytes
                .as_array()
                .into_iter()
                .flatten()
                // Java's bytes are signed: -56 is 0xC8.
                .filter_map(|b| b.as_i64().map(|b| b as u8))
                .collect();
            (name.clone(), bytes)
        })
        .collect();
    Ok(Record {
        topic,
        partition,
        offset,
        timestamp: number("timestamp"),
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_read_one_by_one_and_odd_ones_alone_fail() {
        let event = json!({
            "eventSource": "SelfManagedKafka",
            "records": {
                "org.runs-1": [
                    {"topic": "org.runs", "partition": "1", "offset": 7, "timestamp": 1700000000000i64,
                     "value": "eyJhIjoxfQ==", "key": "aw==", "headers": [{"h": [104, -56]}]},
                    {"topic": "org.runs", "partition": 1, "offset": 8, "value": "%%%"},
                ],
                "org.runs-0": [{"partition": 0, "offset": 3, "value": null}],
            }
        });
        let records = records(&event);
        assert_eq!(records.len(), 3);
        let problem = records[0].as_ref().unwrap_err();
        assert_eq!(
            problem.position, "org.runs/0@3",
            "the topic comes from the group key"
        );
        let first = records[1].as_ref().unwrap();
        assert_eq!(
            (first.partition, first.offset, first.value.as_slice()),
            (1, 7, &b"{\"a\":1}"[..])
        );
        assert_eq!(first.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(first.headers, [("h".to_owned(), vec![104u8, 0xC8])]);
        assert_eq!(first.position(), "org.runs/1@7");
        assert!(records[2].as_ref().unwrap_err().problem.contains("base64"));
        assert!(super::records(&json!({})).is_empty());
    }
}
