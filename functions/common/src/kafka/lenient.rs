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
/// Asked for as bytes: no UTF-8 check, and no copy under `serde_path_to_error` (which
/// copies every key given as a string). JSON keys are always strings, so this never
/// fails where a string would not.
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

/// Reads any JSON text as a Kafka event.
pub(super) fn event(json: &str) -> KafkaEvent {
    // Valid JSON (serde_json checked it): every value has a reading, none fails.
    serde_json::from_str::<Lenient>(json)
        .map(|lenient| lenient.0)
        .unwrap_or_default()
}

/// A Kafka event read leniently.
struct Lenient(KafkaEvent);

impl<'de> Deserialize<'de> for Lenient {
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
                        Some(_) => event.groups = map.next_value_seed(Groups(&mut event.pieces))?,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(event)
            }
        }
        deserializer.deserialize_any(V).map(Lenient)
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
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
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
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
                        let mut entries = Vec::new();
                        while let Some((name, Bytes(bytes))) = map.next_entry::<String, Bytes>()? {
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
