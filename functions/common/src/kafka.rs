//! Records of a Lambda Kafka event (self-managed or MSK), read one by one and leniently:
//! one odd record (a partition given as a string, a value that is not base64) is that
//! record's problem, never the whole batch's. Facts: `reference/aws-limits.md` §2
//! (Kafka event source).

use base64::Engine as _;

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

/// A Kafka event as Lambda delivers it, parsed straight from its JSON (no
/// `serde_json::Value` in between: batches are large) and leniently: any valid JSON
/// parses (a repeated key: the last one counts, as in `Value`), and the odd record says
/// what is wrong with it.
#[derive(Debug, Default, Clone)]
pub struct KafkaEvent {
    records: Groups,
}

impl KafkaEvent {
    /// Every record of the event, group by group (the `topic-partition` keys in string
    /// order), offsets as given, each decoded or with its problem.
    pub fn records(&self) -> Vec<Result<Record, RecordError>> {
        self.records
            .0
            .iter()
            .flat_map(|(key, group)| match group {
                Group::Records(records) => records.iter().map(|slot| read(key, slot)).collect(),
                Group::Odd => vec![Err(RecordError {
                    position: key.clone(),
                    problem: "the group is not a list of records".into(),
                })],
            })
            .collect()
    }
}

fn read(group: &str, slot: &Slot) -> Result<Record, RecordError> {
    let Slot::Record(record) = slot else {
        return Err(RecordError {
            position: group.to_owned(),
            problem: "the record is not an object".into(),
        });
    };
    let topic = match &record.topic {
        Loose::Text(topic) => topic.clone(),
        // `topic-partition`: the topic is what precedes the last `-`.
        _ => group
            .rsplit_once('-')
            .map_or(group, |(topic, _)| topic)
            .to_owned(),
    };
    let partition = record.partition.number().unwrap_or(-1);
    let offset = record.offset.number().unwrap_or(-1);
    let fail = |problem: &str| RecordError {
        position: format!("{topic}/{partition}@{offset}"),
        problem: problem.to_owned(),
    };
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.decode(text.trim());
    let value = match &record.value {
        Loose::Text(text) => b64(text).map_err(|_| fail("the value is not base64"))?,
        Loose::Absent | Loose::Null => return Err(fail("the record has no value")),
        _ => return Err(fail("the value is not a base64 string")),
    };
    let key = match &record.key {
        Loose::Text(text) => Some(b64(text).map_err(|_| fail("the key is not base64"))?),
        _ => None,
    };
    Ok(Record {
        topic,
        partition,
        offset,
        timestamp: record.timestamp.number(),
        key,
        value,
        headers: record.headers.0.clone(),
    })
}

/// The `records` object: `topic-partition` → the group's records.
#[derive(Debug, Default, Clone)]
struct Groups(std::collections::BTreeMap<String, Group>);

#[derive(Debug, Clone)]
enum Group {
    Records(Vec<Slot>),
    /// Not a list.
    Odd,
}

#[derive(Debug, Clone)]
enum Slot {
    Record(Box<RawRecord>),
    /// Not an object.
    Odd,
}

#[derive(Debug, Default, Clone)]
struct RawRecord {
    topic: Loose,
    partition: Loose,
    offset: Loose,
    timestamp: Loose,
    value: Loose,
    key: Loose,
    headers: Headers,
}

/// A field as it came: the string and number cases matter, anything else is odd.
#[derive(Debug, Default, Clone)]
enum Loose {
    #[default]
    Absent,
    Null,
    Text(String),
    Int(i64),
    Other,
}

impl Loose {
    /// A number, given as a number or as a string.
    fn number(&self) -> Option<i64> {
        match self {
            Loose::Int(n) => Some(*n),
            Loose::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Header names and their bytes: `[{"name": [signed bytes]}, ...]`.
#[derive(Debug, Default, Clone)]
struct Headers(Vec<(String, Vec<u8>)>);

mod lenient {
    //! Visitors that accept any JSON: a wrong shape becomes an odd value, never a failed
    //! parse of the whole event.

    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::{Group, Groups, Headers, KafkaEvent, Loose, RawRecord, Slot};

    /// Consumes a sequence or map whatever it holds.
    fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    /// Implements the scalar visits of a visitor whose value for them is `$odd`.
    macro_rules! odd_scalars {
        ($odd:expr) => {
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok($odd)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok($odd)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok($odd)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok($odd)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok($odd)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok($odd)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok($odd)
            }
        };
    }

    /// An object key compared without allocating: its index in the names, or `None`.
    struct Key<const N: usize>([&'static str; N]);

    impl<'de, const N: usize> de::DeserializeSeed<'de> for Key<N> {
        type Value = Option<usize>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de, const N: usize> Visitor<'de> for Key<N> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
            Ok(self.0.iter().position(|name| *name == key))
        }
    }

    const EVENT_KEYS: [&str; 1] = ["records"];
    const RECORD_KEYS: [&str; 7] = [
        "topic",
        "partition",
        "offset",
        "timestamp",
        "value",
        "key",
        "headers",
    ];

    impl<'de> Deserialize<'de> for KafkaEvent {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = KafkaEvent;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a Kafka event")
                }
                odd_scalars!(KafkaEvent::default());
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<KafkaEvent, A::Error> {
                    skip_seq(seq).map(|()| KafkaEvent::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KafkaEvent, A::Error> {
                    let mut event = KafkaEvent::default();
                    while let Some(field) = map.next_key_seed(Key(EVENT_KEYS))? {
                        match field {
                            Some(_) => event.records = map.next_value()?,
                            None => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(event)
                }
            }
            deserializer.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for RawRecord {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = RawRecord;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a record")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord, A::Error> {
                    let mut r = RawRecord::default();
                    while let Some(field) = map.next_key_seed(Key(RECORD_KEYS))? {
                        match field {
                            Some(0) => r.topic = map.next_value()?,
                            Some(1) => r.partition = map.next_value()?,
                            Some(2) => r.offset = map.next_value()?,
                            Some(3) => r.timestamp = map.next_value()?,
                            Some(4) => r.value = map.next_value()?,
                            Some(5) => r.key = map.next_value()?,
                            Some(_) => r.headers = map.next_value()?,
                            None => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(r)
                }
            }
            deserializer.deserialize_map(V)
        }
    }

    impl<'de> Deserialize<'de> for Loose {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Loose;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose, E> {
                    Ok(Loose::Other)
                }
                fn visit_i64<E: de::Error>(self, n: i64) -> Result<Loose, E> {
                    Ok(Loose::Int(n))
                }
                fn visit_u64<E: de::Error>(self, n: u64) -> Result<Loose, E> {
                    Ok(i64::try_from(n).map_or(Loose::Other, Loose::Int))
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose, E> {
                    Ok(Loose::Other)
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Loose, E> {
                    Ok(Loose::Text(s.to_owned()))
                }
                fn visit_string<E: de::Error>(self, s: String) -> Result<Loose, E> {
                    Ok(Loose::Text(s))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
                    Ok(Loose::Null)
                }
                fn visit_none<E: de::Error>(self) -> Result<Loose, E> {
                    Ok(Loose::Null)
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
                    Loose::deserialize(d)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose, A::Error> {
                    skip_seq(seq).map(|()| Loose::Other)
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose, A::Error> {
                    skip_map(map).map(|()| Loose::Other)
                }
            }
            deserializer.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Groups {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Groups;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object of record lists")
                }
                odd_scalars!(Groups::default());
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Groups, A::Error> {
                    skip_seq(seq).map(|()| Groups::default())
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Groups, A::Error> {
                    let mut groups = std::collections::BTreeMap::new();
                    while let Some((key, group)) = map.next_entry::<String, Group>()? {
                        groups.insert(key, group);
                    }
                    Ok(Groups(groups))
                }
            }
            deserializer.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Group {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Group;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a list of records")
                }
                odd_scalars!(Group::Odd);
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Group, A::Error> {
                    let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                    while let Some(slot) = seq.next_element::<Slot>()? {
                        records.push(slot);
                    }
                    Ok(Group::Records(records))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Group, A::Error> {
                    skip_map(map).map(|()| Group::Odd)
                }
            }
            deserializer.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Slot {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Slot;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a record")
                }
                odd_scalars!(Slot::Odd);
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot, A::Error> {
                    skip_seq(seq).map(|()| Slot::Odd)
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot, A::Error> {
                    RawRecord::deserialize(de::value::MapAccessDeserializer::new(map))
                        .map(|record| Slot::Record(Box::new(record)))
                }
            }
            deserializer.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Headers {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            /// `{"name": [bytes]}`, or nothing when it is not that.
            struct Header(Vec<(String, Vec<u8>)>);
            /// Signed bytes; what is not a number is left out.
            struct Bytes(Vec<u8>);
            impl<'de> Deserialize<'de> for Bytes {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V;
                    impl<'de> Visitor<'de> for V {
                        type Value = Bytes;
                        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                            f.write_str("a list of bytes")
                        }
                        odd_scalars!(Bytes(Vec::new()));
                        fn visit_seq<A: SeqAccess<'de>>(
                            self,
                            mut seq: A,
                        ) -> Result<Bytes, A::Error> {
                            let mut bytes = Vec::new();
                            while let Some(byte) = seq.next_element::<Loose>()? {
                                // Java's bytes are signed: -56 is 0xC8.
                                if let Loose::Int(b) = byte {
                                    bytes.push(b as u8);
                                }
                            }
                            Ok(Bytes(bytes))
                        }
                        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Bytes, A::Error> {
                            skip_map(map).map(|()| Bytes(Vec::new()))
                        }
                    }
                    d.deserialize_any(V)
                }
            }
            impl<'de> Deserialize<'de> for Header {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V;
                    impl<'de> Visitor<'de> for V {
                        type Value = Header;
                        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                            f.write_str("a header object")
                        }
                        odd_scalars!(Header(Vec::new()));
                        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Header, A::Error> {
                            skip_seq(seq).map(|()| Header(Vec::new()))
                        }
                        fn visit_map<A: MapAccess<'de>>(
                            self,
                            mut map: A,
                        ) -> Result<Header, A::Error> {
                            let mut entries = Vec::new();
                            while let Some((name, Bytes(bytes))) =
                                map.next_entry::<String, Bytes>()?
                            {
                                entries.push((name, bytes));
                            }
                            Ok(Header(entries))
                        }
                    }
                    d.deserialize_any(V)
                }
            }
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Headers;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a list of headers")
                }
                odd_scalars!(Headers::default());
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                    let mut headers = Vec::new();
                    while let Some(Header(entries)) = seq.next_element::<Header>()? {
                        headers.extend(entries);
                    }
                    Ok(Headers(headers))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Headers, A::Error> {
                    skip_map(map).map(|()| Headers::default())
                }
            }
            deserializer.deserialize_any(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize as _;
    use serde_json::{json, Value};

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
        let records = KafkaEvent::deserialize(&event).unwrap().records();
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
        assert!(KafkaEvent::deserialize(&json!({}))
            .unwrap()
            .records()
            .is_empty());
    }

    #[test]
    fn odd_shapes_anywhere_are_their_records_problem_not_the_events() {
        let text = r#"{
            "eventSource": "aws:kafka",
            "records": {
                "t-0": [
                    "not an object",
                    {"topic": "t", "partition": 0.5, "offset": [1], "value": 7},
                    {"topic": "t", "partition": 0, "offset": 2, "value": "aGk=",
                     "headers": [5, {"a": "x", "b": [1, "y", -1]}, {"c": {}}], "key": {"k": 1},
                     "timestamp": "1700000000000", "extra": {"nested": [1, 2]}}
                ],
                "t-1": {"not": "a list"},
                "t-2": []
            }
        }"#;
        let event: KafkaEvent = serde_json::from_str(text).expect("a lenient parse never fails");
        let records = event.records();
        assert_eq!(records.len(), 4);
        assert_eq!(
            records[0].as_ref().unwrap_err().problem,
            "the record is not an object"
        );
        let odd = records[1].as_ref().unwrap_err();
        assert_eq!(
            (odd.position.as_str(), odd.problem.as_str()),
            ("t/-1@-1", "the value is not a base64 string")
        );
        let good = records[2].as_ref().unwrap();
        assert_eq!(good.value, b"hi");
        assert_eq!(good.timestamp, Some(1_700_000_000_000));
        assert_eq!(good.key, None);
        assert_eq!(
            good.headers,
            [
                ("a".to_owned(), vec![]),
                ("b".to_owned(), vec![1, 0xFF]),
                ("c".to_owned(), vec![])
            ]
        );
        assert_eq!(
            records[3].as_ref().unwrap_err().problem,
            "the group is not a list of records"
        );
        // The same event through serde_json::Value reads the same.
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(KafkaEvent::deserialize(&value).unwrap().records(), records);
        for odd_event in [
            "{}",
            "5",
            "null",
            r#""x""#,
            r#"[{"records": {"t-0": [{"value": "aGk="}]}}]"#,
            r#"{"records": 5}"#,
            r#"{"records": [1]}"#,
        ] {
            let event: KafkaEvent = serde_json::from_str(odd_event).unwrap();
            assert!(event.records().is_empty(), "{odd_event}");
        }
    }

    /// The reader this module had before [`KafkaEvent`], walking a `serde_json::Value`:
    /// the reference the typed parse must agree with.
    fn records_by_value(event: &Value) -> Vec<Result<Record, RecordError>> {
        let Some(groups) = event.get("records").and_then(Value::as_object) else {
            return Vec::new();
        };
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.decode(text.trim());
        let mut out = Vec::new();
        for (group, records) in groups {
            for record in records.as_array().into_iter().flatten() {
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
                out.push(Ok(Record {
                    topic,
                    partition,
                    offset,
                    timestamp: number("timestamp"),
                    key,
                    value,
                    headers,
                }));
            }
        }
        out
    }

    #[test]
    fn the_typed_parse_agrees_with_the_value_walk() {
        let events = [
            r#"{"records": {"t-1": [{"topic": "t", "partition": "1", "offset": 7, "timestamp": 1700000000000,
                 "value": "eyJhIjoxfQ==", "key": "aw==", "headers": [{"h": [104, -56]}, {"g": [1]}]}],
               "t-0": [{"partition": 0.5, "offset": [1], "value": 7}, {"value": null},
                 {"value": "%%%"}, {"value": "aGk=", "key": "%%", "timestamp": true},
                 {"value": "aGk=", "value": "aGV5", "topic": "first", "topic": "second"}],
               "u-3": [{"value": "aGk=", "offset": 18446744073709551615, "timestamp": -5,
                 "headers": {"not": "a list"}, "extra": [{"deep": null}]}],
               "t-0": [{"value": "bGFzdA==", "offset": 9}]},
               "records2": 1}"#,
            r#"{"eventSource": "SelfManagedKafka"}"#,
            r#"{"records": null}"#,
        ];
        for text in events {
            let typed: KafkaEvent = serde_json::from_str(text).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(typed.records(), records_by_value(&value), "{text}");
        }
        let typed: KafkaEvent = serde_json::from_str(events[0]).unwrap();
        assert_eq!(
            typed.records().len(),
            3,
            "a repeated group key: the last one counts"
        );
    }
}
