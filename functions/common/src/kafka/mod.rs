//! Records of a Lambda Kafka event (self-managed or MSK), read one by one and leniently:
//! one odd record (a partition given as a string, a value that is not base64) is that
//! record's problem, never the whole batch's. Facts: `reference/aws-limits.md` §2
//! (Kafka event source).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Deserializer};

#[cfg(any(test, feature = "fuzzing"))]
pub mod check;
mod lenient;
mod scan;

/// One record, decoded; it borrows from its [`KafkaEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i64,
    pub offset: i64,
    /// Milliseconds since the epoch, when given.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    /// Header names and their bytes (the event's signed bytes made unsigned).
    pub headers: &'a [(String, Vec<u8>)],
}

impl Record<'_> {
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

/// A Kafka event as Lambda delivers it, read from its JSON leniently: any valid JSON
/// reads (a repeated key: the last one counts, as in `serde_json::Value`), and the odd
/// record says what is wrong with it.
///
/// Batches are large (thousands of records, megabytes): the usual shape is read in one
/// pass over the text ([`scan`]), and the reading allocates per group, not per record:
/// every value and key is base64-decoded as it is read into one byte buffer, every topic
/// copied into one string, and a record keeps where its pieces are.
#[derive(Debug, Default, Clone)]
pub struct KafkaEvent {
    /// `topic-partition` → the group's records.
    groups: BTreeMap<String, Group>,
    pieces: Pieces,
}

/// The records' text, kept once for the whole event.
#[derive(Debug, Default, Clone)]
struct Pieces {
    /// Decoded values and keys, back to back.
    bytes: Vec<u8>,
    /// Topics, back to back.
    text: String,
}

impl KafkaEvent {
    /// Every record of the event, group by group (the `topic-partition` keys in string
    /// order), offsets as given, each decoded or with its problem.
    pub fn records(&self) -> impl Iterator<Item = Result<Record<'_>, RecordError>> + '_ {
        self.groups.iter().flat_map(move |(key, group)| {
            let (slots, odd) = match group {
                Group::Records(slots) => (slots.as_slice(), None),
                Group::Odd => (
                    &[][..],
                    Some(Err(RecordError {
                        position: key.clone(),
                        problem: "the group is not a list of records".into(),
                    })),
                ),
            };
            slots
                .iter()
                .map(move |slot| self.read(key, slot))
                .chain(odd)
        })
    }

    /// How many records [`records`](Self::records) gives.
    pub fn len(&self) -> usize {
        self.groups
            .values()
            .map(|group| match group {
                Group::Records(slots) => slots.len(),
                Group::Odd => 1,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads an event's JSON text, which serde_json has checked: the usual shape fast
    /// ([`scan`]), any other leniently ([`lenient`]).
    fn from_json(json: &str) -> KafkaEvent {
        scan::event(json).unwrap_or_else(|| lenient::event(json))
    }

    fn read<'a>(&'a self, group: &'a str, slot: &'a Slot) -> Result<Record<'a>, RecordError> {
        let Slot::Record(record) = slot else {
            return Err(RecordError {
                position: group.to_owned(),
                problem: "the record is not an object".into(),
            });
        };
        let topic = match &record.topic {
            Piece::At(range) => &self.pieces.text[range.clone()],
            // `topic-partition`: the topic is what precedes the last `-`.
            _ => group.rsplit_once('-').map_or(group, |(topic, _)| topic),
        };
        let partition = record.partition.unwrap_or(-1);
        let offset = record.offset.unwrap_or(-1);
        let fail = |problem: &str| RecordError {
            position: format!("{topic}/{partition}@{offset}"),
            problem: problem.to_owned(),
        };
        let value = match &record.value {
            Piece::At(range) => &self.pieces.bytes[range.clone()],
            Piece::NotBase64 => return Err(fail("the value is not base64")),
            Piece::Absent | Piece::Null => return Err(fail("the record has no value")),
            Piece::Other => return Err(fail("the value is not a base64 string")),
        };
        let key = match &record.key {
            Piece::At(range) => Some(&self.pieces.bytes[range.clone()]),
            Piece::NotBase64 => return Err(fail("the key is not base64")),
            _ => None,
        };
        Ok(Record {
            topic,
            partition,
            offset,
            timestamp: record.timestamp,
            key,
            value,
            headers: &record.headers,
        })
    }
}

/// The event's JSON is captured whole (serde_json checks it on the way), then read by
/// [`KafkaEvent::from_json`].
impl<'de> Deserialize<'de> for KafkaEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(KafkaEvent::from_json(json.get()))
    }
}

#[derive(Debug, Clone)]
enum Group {
    Records(Vec<Slot>),
    /// Not a list.
    Odd,
}

#[derive(Debug, Clone)]
enum Slot {
    Record(RawRecord),
    /// Not an object.
    Odd,
}

/// A record as read: numbers parsed, its text pieces where the event keeps them.
#[derive(Debug, Default, Clone)]
struct RawRecord {
    /// In [`Pieces::text`].
    topic: Piece,
    /// Given as a number or as a string of one; `None` otherwise.
    partition: Option<i64>,
    offset: Option<i64>,
    timestamp: Option<i64>,
    /// Decoded, in [`Pieces::bytes`].
    value: Piece,
    key: Piece,
    headers: Vec<(String, Vec<u8>)>,
}

/// A string field as it came.
#[derive(Debug, Default, Clone)]
enum Piece {
    #[default]
    Absent,
    Null,
    /// Where its text (or decoded bytes) is kept.
    At(Range<usize>),
    /// A string, but not base64 where base64 is wanted.
    NotBase64,
    /// Not a string.
    Other,
}

/// Decodes base64 `text` onto the end of `bytes`: where it went, or `NotBase64`.
fn decode_base64(text: &str, bytes: &mut Vec<u8>) -> Piece {
    let start = bytes.len();
    // decode_append reserves exactly what it needs: in a buffer not sized beforehand
    // (the lenient reading's), that would be a copy of it per value.
    bytes.reserve(text.len() / 4 * 3 + 3);
    match base64_simd::STANDARD.decode_append(text.trim(), bytes) {
        Ok(()) => Piece::At(start..bytes.len()),
        Err(_) => {
            bytes.truncate(start);
            Piece::NotBase64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check::{both_readings, owned, records_by_value};
    use super::*;
    use base64::Engine as _;
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
        let event = KafkaEvent::deserialize(&event).unwrap();
        let records: Vec<_> = event.records().collect();
        assert_eq!((records.len(), event.len()), (3, 3));
        let problem = records[0].as_ref().unwrap_err();
        assert_eq!(
            problem.position, "org.runs/0@3",
            "the topic comes from the group key"
        );
        let first = records[1].as_ref().unwrap();
        assert_eq!(
            (first.partition, first.offset, first.value),
            (1, 7, &b"{\"a\":1}"[..])
        );
        assert_eq!(first.key, Some(&b"k"[..]));
        assert_eq!(first.headers, [("h".to_owned(), vec![104u8, 0xC8])]);
        assert_eq!(first.position(), "org.runs/1@7");
        assert!(records[2].as_ref().unwrap_err().problem.contains("base64"));
        assert!(KafkaEvent::deserialize(&json!({})).unwrap().is_empty());
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
        let records: Vec<_> = event.records().collect();
        assert_eq!((records.len(), event.len()), (4, 4));
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
        assert_eq!(
            owned(KafkaEvent::deserialize(&value).unwrap().records()),
            owned(records.into_iter())
        );
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
            assert_eq!(event.records().count(), 0, "{odd_event}");
        }
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
               "t-0": [{"value": "bGFzdA==", "offset": 9}, {"value": "Pz8\/", "key": "a\u0047k=", "offset": 10}]},
               "records2": 1}"#,
            r#"{"eventSource": "SelfManagedKafka"}"#,
            r#"{"records": null}"#,
        ];
        for text in events {
            let typed: KafkaEvent = serde_json::from_str(text).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(owned(typed.records()), records_by_value(&value), "{text}");
            both_readings(text);
            // As the Lambda runtime reads it.
            let runtime: KafkaEvent =
                serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
                    .unwrap();
            assert_eq!(owned(runtime.records()), records_by_value(&value), "{text}");
        }
        let typed: KafkaEvent = serde_json::from_str(events[0]).unwrap();
        assert_eq!(
            typed.records().count(),
            4,
            "a repeated group key: the last one counts"
        );
        // Escaped in the JSON (`\/`, `\u0047`), still base64.
        let last = typed.records().flatten().find(|r| r.offset == 10).unwrap();
        assert_eq!((last.value, last.key), (&b"???"[..], Some(&b"hi"[..])));
    }

    /// An event as Lambda writes it: `records` last, several groups, keys null or not.
    fn lambda_event(records_per_group: u64) -> String {
        let group = |topic: &str, partition: u64| {
            (0..records_per_group)
                .map(|offset| {
                    json!({
                        "topic": topic, "partition": partition, "offset": offset,
                        "timestamp": 1_700_000_000_000u64 + offset, "timestampType": "CREATE_TIME",
                        "key": if offset % 2 == 0 { Value::Null } else { json!("aw==") },
                        "value": "eyJhIjoxfQ==", "headers": []
                    })
                })
                .collect::<Vec<_>>()
        };
        json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": "b-1:9092,b-2:9092",
            "records": {
                "aliecs.run-0": group("aliecs.run", 0),
                "aliecs.env_list.RUNNING-3": group("aliecs.env_list.RUNNING", 3),
                "org.runs-1": []
            }
        })
        .to_string()
    }

    #[test]
    fn usual_events_are_read_fast_and_as_the_lenient_reading_reads_them() {
        let event = lambda_event(5);
        assert!(both_readings(&event));
        let value: Value = serde_json::from_str(&event).unwrap();
        assert!(both_readings(
            &serde_json::to_string_pretty(&value).unwrap()
        ));
        // As the Lambda runtime reads it, and from a Value: the same records.
        let runtime: KafkaEvent =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&event))
                .unwrap();
        assert_eq!(runtime.len(), 10);
        assert_eq!(
            owned(runtime.records()),
            owned(KafkaEvent::deserialize(&value).unwrap().records())
        );
        // Shapes left to the lenient reading, which reads them all.
        for text in [
            r#"{"records": {"t-0": [{"value": "aGk=", "headers": [{"h": [1, -1]}]}]}}"#,
            r#"{"records": {"t-0": [{"value": "aG\u0073="}]}}"#,
            r#"{"records": {"t\/x-0": [{"value": "aGk="}]}}"#,
            r#"{"records": {"t-0": [{"value": "aGk=", "partition": "1"}]}}"#,
            r#"{"records": {"t-0": [{"value": "aGk=", "offset": 1.0}]}}"#,
            r#"{"records": {"t-0": [{"value": "aGk=", "offset": -0, "timestamp": -0}]}}"#,
            r#"{"records": {"t-0": [{"value": "aGk=", "offset": 12345678901234567890}]}}"#,
            r#"{"records": {"t-0": [{"value": 7}]}}"#,
            r#"{"records": {"t-0": ["not an object"]}}"#,
            r#"{"records": {"t-0": {"not": "a list"}}}"#,
            r#"{"records": null}"#,
            r#"[{"records": {}}]"#,
        ] {
            assert!(!both_readings(text), "read fast: {text}");
            assert_eq!(
                KafkaEvent::from_json(text).len(),
                lenient::event(text).len()
            );
        }
        // Read fast: nulls, unknown keys of any shape, a repeated key, empty groups.
        for text in [
            r#"{"records": {"t-0": [{"value": null, "key": null, "topic": null, "offset": null}]}}"#,
            r#"{"x": {"y": [1, {"z": "a\"b"}]}, "records": {"t-0": [{"extra": [true, false, null, -1.5e3], "value": "aGk="}]}}"#,
            r#"{"records": {"t-0": [{"value": "aGk=", "value": "%%"}], "t-0": []}, "records": {"u-1": [{"value": "aGV5"}]}}"#,
            r#"{"records": {}}"#,
            "{}",
            // 18 digits, the most the fast reading takes; topics and group keys about
            // 32 bytes long.
            r#"{"records": {"t-0": [{"value": "aGk=", "offset": 999999999999999999, "timestamp": -999999999999999999}]}}"#,
            r#"{"records": {"topic.of.thirty.one.characters.-0": [{"topic": "topic.of.thirty.two.characters..", "value": "aGk="}]}}"#,
            r#"{"records": {"a-topic-of-thirty-three-characters-0": [{"topic": "", "value": "aGVsbG8gd29ybGQsIGFuZCB0aGVuIHNvbWU="}]}}"#,
        ] {
            assert!(both_readings(text), "not read fast: {text}");
        }
        // 19 digits and more, which the fast reading leaves (they may not fit an i64).
        for number in [
            "1000000000000000000",
            "9223372036854775807",
            "-9223372036854775808",
            "9999999999999999999",
        ] {
            let text =
                format!(r#"{{"records": {{"t-0": [{{"value": "aGk=", "offset": {number}}}]}}}}"#);
            assert!(!both_readings(&text), "read fast: {text}");
            let event = KafkaEvent::from_json(&text);
            let offset = event.records().next().unwrap().map(|r| r.offset);
            assert_eq!(offset, Ok(number.parse::<i64>().unwrap_or(-1)), "{text}");
        }
    }

    /// Values are decoded by base64-simd, which must take and refuse what the base64
    /// crate (the reference of these tests, and of the rest of the project) does.
    #[test]
    fn values_decode_as_the_base64_crate_decodes_them() {
        let oracle = |text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
        };
        let ours = |text: &str| {
            let mut bytes = vec![7];
            match decode_base64(text, &mut bytes) {
                Piece::At(range) => Some(bytes[range].to_vec()),
                _ => {
                    assert_eq!(bytes, [7], "nothing left behind: {text:?}");
                    None
                }
            }
        };
        // Every string of up to five of these: padding, the other alphabet, trailing
        // bits set or not, white space.
        const CHARS: &[u8] = b"AQgw/+=-_ \n";
        let mut texts = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..5 {
            last = last
                .iter()
                .flat_map(|text| CHARS.iter().map(move |&c| format!("{text}{}", c as char)))
                .collect();
            texts.extend(last.iter().cloned());
        }
        // Longer ones, as the vector code reads them: encodings of 0 to 100 bytes, whole
        // and with one character changed anywhere.
        for len in 0..100u8 {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode((0..len).map(|b| b.wrapping_mul(37)).collect::<Vec<u8>>());
            for at in 0..encoded.len() {
                // Also the bytes next to the alphabet's ranges, and beyond ASCII.
                for c in [
                    '=', '-', 'A', '/', ' ', ',', '.', ':', '@', '[', '`', '{', '\x7f', '\0', 'é',
                ] {
                    let mut changed = encoded.clone();
                    changed.replace_range(at..=at, c.encode_utf8(&mut [0; 4]));
                    texts.push(changed);
                }
            }
            texts.push(encoded);
        }
        let (mut taken, mut refused) = (0, 0);
        for text in &texts {
            let expected = oracle(text);
            assert_eq!(ours(text), expected, "{text:?}");
            if expected.is_some() {
                taken += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            taken > 10_000 && refused > 100_000,
            "{taken} taken, {refused} refused"
        );
    }

    /// Inputs the kafka_event fuzz target found (fuzz/): the readings disagreed.
    #[test]
    fn what_the_fuzzer_found_reads_the_same_every_way() {
        for text in [
            // A group that is not a list: the value walk skipped it.
            "{\n  \"eventSource\": \"SelfManagedKafka\",\n  \"records\": {\n    \"aliecs.run-0ventSource\": \"SelfManagedKafka\" }\n}\n",
            // Records that are not objects.
            r#"{"records": {"t-0": [5, "x", null, {"value": "aGk="}], "u-1": {}}}"#,
        ] {
            check::readers_agree(text);
        }
    }

    #[test]
    fn text_that_is_not_json_is_no_panic() {
        for text in [
            r#"{"a":"\"#,
            r#"{"records":{"t-0":[{"value":"aGk\"#,
            "{",
            r#"{"records":"#,
        ] {
            assert!(scan::event(text).is_none(), "{text}");
        }
    }

    #[test]
    fn damaged_events_read_the_same_both_ways() {
        let event = lambda_event(1);
        let (mut valid, mut fast) = (0, 0);
        for at in 0..event.len() {
            for byte in *b" ,:\"\\{}[]0-n.ex" {
                let mut damaged = event.clone().into_bytes();
                damaged[at] = byte;
                let Ok(text) = String::from_utf8(damaged) else {
                    continue;
                };
                if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
                    continue;
                }
                valid += 1;
                fast += usize::from(both_readings(&text));
            }
        }
        assert!(
            valid > 200 && fast > 100,
            "{valid} still JSON, {fast} read fast"
        );
    }
}
