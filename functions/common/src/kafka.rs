//! Records of a Lambda Kafka event (self-managed or MSK), read one by one and leniently:
//! one odd record (a partition given as a string, a value that is not base64) is that
//! record's problem, never the whole batch's. Facts: `reference/aws-limits.md` §2
//! (Kafka event source).

use std::collections::BTreeMap;
use std::ops::Range;

use base64::Engine as _;

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

/// A Kafka event as Lambda delivers it, parsed straight from its JSON and leniently: any
/// valid JSON parses (a repeated key: the last one counts, as in `serde_json::Value`),
/// and the odd record says what is wrong with it.
///
/// Batches are large (thousands of records, megabytes), so the parse allocates per group,
/// not per record: every value and key is base64-decoded as it is read into one byte
/// buffer, every topic copied into one string, and a record keeps where its pieces are.
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
    match base64::engine::general_purpose::STANDARD.decode_vec(text.trim(), bytes) {
        Ok(()) => Piece::At(start..bytes.len()),
        Err(_) => {
            bytes.truncate(start);
            Piece::NotBase64
        }
    }
}

mod lenient {
    //! Visitors that accept any JSON: a wrong shape becomes an odd value, never a failed
    //! parse of the whole event. The ones below the event are seeds that carry the
    //! event's [`Pieces`], where record text goes.

    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{
        self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
    };

    use super::{decode_base64, Group, KafkaEvent, Piece, Pieces, RawRecord, Slot};

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

    /// Implements the visits of containers a visitor takes as `$odd`.
    macro_rules! odd_containers {
        ($odd:expr) => {
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| $odd)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| $odd)
            }
        };
    }

    /// An object key compared without allocating: its index in the names, or `None`.
    /// Asked for as bytes: the Lambda runtime reads events through
    /// `serde_path_to_error`, which copies every key given as a string into a new
    /// `String` (a few per record), and none given as bytes. JSON keys are always
    /// strings, so this never fails where a string would not.
    struct Key<const N: usize>([&'static str; N]);

    impl<'de, const N: usize> DeserializeSeed<'de> for Key<N> {
        type Value = Option<usize>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
            d.deserialize_bytes(self)
        }
    }

    impl<'de, const N: usize> Visitor<'de> for Key<N> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Option<usize>, E> {
            Ok(self.0.iter().position(|name| name.as_bytes() == key))
        }
        fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
            self.visit_bytes(key.as_bytes())
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
                            Some(_) => {
                                event.groups = map.next_value_seed(Groups(&mut event.pieces))?
                            }
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

    /// The `records` object: `topic-partition` → the group's records.
    struct Groups<'p>(&'p mut Pieces);

    impl<'de> DeserializeSeed<'de> for Groups<'_> {
        type Value = BTreeMap<String, Group>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Groups<'_> {
        type Value = BTreeMap<String, Group>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of record lists")
        }
        odd_scalars!(BTreeMap::new());
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|()| BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut groups = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let group = map.next_value_seed(Records(&mut *self.0))?;
                groups.insert(key, group);
            }
            Ok(groups)
        }
    }

    /// A group: a list of records.
    struct Records<'p>(&'p mut Pieces);

    impl<'de> DeserializeSeed<'de> for Records<'_> {
        type Value = Group;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Group, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Records<'_> {
        type Value = Group;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of records")
        }
        odd_scalars!(Group::Odd);
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Group, A::Error> {
            let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(slot) = seq.next_element_seed(OneRecord(&mut *self.0))? {
                records.push(slot);
            }
            Ok(Group::Records(records))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Group, A::Error> {
            skip_map(map).map(|()| Group::Odd)
        }
    }

    /// One record object.
    struct OneRecord<'p>(&'p mut Pieces);

    impl<'de> DeserializeSeed<'de> for OneRecord<'_> {
        type Value = Slot;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Slot, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for OneRecord<'_> {
        type Value = Slot;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a record")
        }
        odd_scalars!(Slot::Odd);
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot, A::Error> {
            skip_seq(seq).map(|()| Slot::Odd)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Slot, A::Error> {
            let pieces = self.0;
            let mut r = RawRecord::default();
            while let Some(field) = map.next_key_seed(Key(RECORD_KEYS))? {
                match field {
                    Some(0) => r.topic = map.next_value_seed(Text::Topic(&mut pieces.text))?,
                    Some(1) => r.partition = map.next_value::<Number<true>>()?.0,
                    Some(2) => r.offset = map.next_value::<Number<true>>()?.0,
                    Some(3) => r.timestamp = map.next_value::<Number<true>>()?.0,
                    Some(4) => r.value = map.next_value_seed(Text::Base64(&mut pieces.bytes))?,
                    Some(5) => r.key = map.next_value_seed(Text::Base64(&mut pieces.bytes))?,
                    Some(_) => r.headers = map.next_value::<Headers>()?.0,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(Slot::Record(r))
        }
    }

    /// A string field, kept where it belongs.
    enum Text<'p> {
        /// Copied as it is.
        Topic(&'p mut String),
        /// Base64, decoded.
        Base64(&'p mut Vec<u8>),
    }

    impl<'de> DeserializeSeed<'de> for Text<'_> {
        type Value = Piece;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Piece, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Text<'_> {
        type Value = Piece;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Piece, E> {
            Ok(match self {
                Text::Topic(text) => {
                    let start = text.len();
                    text.push_str(s);
                    Piece::At(start..text.len())
                }
                Text::Base64(bytes) => decode_base64(s, bytes),
            })
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Piece, E> {
            Ok(Piece::Other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Piece, E> {
            Ok(Piece::Other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Piece, E> {
            Ok(Piece::Other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Piece, E> {
            Ok(Piece::Other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Piece, E> {
            Ok(Piece::Null)
        }
        fn visit_none<E: de::Error>(self) -> Result<Piece, E> {
            Ok(Piece::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Piece, D::Error> {
            d.deserialize_any(self)
        }
        odd_containers!(Piece::Other);
    }

    /// A number; with `TEXT`, a string of one too; `None` when it is neither.
    struct Number<const TEXT: bool>(Option<i64>);

    impl<'de, const TEXT: bool> Deserialize<'de> for Number<TEXT> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V<const TEXT: bool>;
            impl<'de, const TEXT: bool> Visitor<'de> for V<TEXT> {
                type Value = Number<TEXT>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a number")
                }
                fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                    Ok(Number(Some(n)))
                }
                fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                    Ok(Number(i64::try_from(n).ok()))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                    Ok(Number(TEXT.then(|| s.trim().parse().ok()).flatten()))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                    Ok(Number(None))
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                    Ok(Number(None))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                    Ok(Number(None))
                }
                fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                    Ok(Number(None))
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                    Number::deserialize(d)
                }
                odd_containers!(Number(None));
            }
            deserializer.deserialize_any(V::<TEXT>)
        }
    }

    /// Header names and their bytes: `[{"name": [signed bytes]}, ...]`.
    #[derive(Default)]
    struct Headers(Vec<(String, Vec<u8>)>);

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
                            // Java's bytes are signed: -56 is 0xC8.
                            while let Some(Number::<false>(byte)) = seq.next_element()? {
                                bytes.extend(byte.map(|b| b as u8));
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

    /// A record with its pieces owned: topic, partition, offset, timestamp, key, value,
    /// headers.
    type Owned = (
        String,
        i64,
        i64,
        Option<i64>,
        Option<Vec<u8>>,
        Vec<u8>,
        Vec<(String, Vec<u8>)>,
    );

    fn owned<'a>(
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
    fn records_by_value(event: &Value) -> Vec<Result<Owned, RecordError>> {
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
}
