//! The legacy plugin's messages (`proto/kafka/kafka.proto`) read in place: strings are
//! slices of the record, the detectors are read from the message bytes when asked.
//! Why not prost's types: a batch holds thousands of these, and their owned decode (a
//! `String` per field and per detector) was the largest part of the ingest's time. The
//! rules are prost's, and the tests hold the two to the same answers: unknown fields
//! skipped, the last of a repeated scalar wins, a repeated `envInfo` merges, strings
//! must be UTF-8, a field of the wrong wire type is an error.

use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};

/// Why bytes are not the message.
pub type Reason = String;

/// `kafka.EnvInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvInfo<'a> {
    pub environment_id: &'a str,
    pub run_number: Option<u32>,
    pub run_type: Option<&'a str>,
    pub state: &'a str,
    pub detectors: Detectors<'a>,
    pub enter_state_timestamp: u64,
}

/// `kafka.NewStateNotification`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewStateNotification<'a> {
    pub env_info: Option<EnvInfo<'a>>,
    pub timestamp: u64,
}

/// `kafka.ActiveRunsList`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveRunsList<'a> {
    pub active_runs: Vec<EnvInfo<'a>>,
    pub timestamp: u64,
}

/// An EnvInfo's repeated `detectors`, in order, read from its bytes (checked when the
/// message was read) each time they are asked for: no list is built.
#[derive(Debug, Clone, Default)]
pub struct Detectors<'a> {
    /// The EnvInfo's bytes; `more` when the message repeats its `envInfo` (merged).
    first: &'a [u8],
    more: Vec<&'a [u8]>,
    len: usize,
    /// The detector fields' bytes, when they are one stretch of one EnvInfo.
    wire: Option<&'a [u8]>,
}

impl<'a> Detectors<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        // The stretch when there is one: nothing else to step over.
        let (first, more) = match self.wire {
            Some(wire) => (wire, &[][..]),
            None => (self.first, self.more.as_slice()),
        };
        std::iter::once(first)
            .chain(more.iter().copied())
            .flat_map(|mut buf| std::iter::from_fn(move || next_detector(&mut buf)))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The detector fields' own bytes, when they are one stretch of the message (as
    /// producers write them): two lists with the same bytes are the same list, which is
    /// cheaper to ask than to compare their names.
    pub fn wire(&self) -> Option<&'a [u8]> {
        self.wire
    }

    fn add(&mut self, env_info: &'a [u8], len: usize, wire: Option<&'a [u8]>) {
        if self.first.is_empty() && self.more.is_empty() {
            self.first = env_info;
            self.wire = wire;
        } else {
            self.more.push(env_info);
            self.wire = None;
        }
        self.len += len;
    }
}

impl PartialEq for Detectors<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Detectors<'_> {}

impl serde::Serialize for Detectors<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// The next detector name in an EnvInfo's bytes (read once without error already: none
/// can happen now).
fn next_detector<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    loop {
        match **buf {
            // Field 5, length-delimited, a name under 128 bytes: the usual case, read
            // without the general varint decoding.
            [0x2a, len, ref rest @ ..] if len < 0x80 && usize::from(len) <= rest.len() => {
                let (name, after) = rest.split_at(usize::from(len));
                *buf = after;
                return std::str::from_utf8(name).ok();
            }
            [] => return None,
            _ => {
                let (tag, wire) = decode_key(buf).ok()?;
                if tag == 5 {
                    return string(wire, buf).ok();
                }
                skip_field(wire, tag, buf, DecodeContext::default()).ok()?;
            }
        }
    }
}

/// Reads a `kafka.NewStateNotification`.
pub fn new_state_notification(mut buf: &[u8]) -> Result<NewStateNotification<'_>, Reason> {
    let mut notification = NewStateNotification::default();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(reason)?;
        match tag {
            1 => merge_env_info(
                notification.env_info.get_or_insert_with(EnvInfo::default),
                message(wire, &mut buf)?,
            )?,
            2 => notification.timestamp = uint(wire, &mut buf)?,
            _ => skip(wire, tag, &mut buf, NESTING)?,
        }
    }
    Ok(notification)
}

/// Reads a `kafka.ActiveRunsList`.
pub fn active_runs_list(mut buf: &[u8]) -> Result<ActiveRunsList<'_>, Reason> {
    let mut list = ActiveRunsList::default();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(reason)?;
        match tag {
            1 => {
                let mut env_info = EnvInfo::default();
                merge_env_info(&mut env_info, message(wire, &mut buf)?)?;
                list.active_runs.push(env_info);
            }
            2 => list.timestamp = uint(wire, &mut buf)?,
            _ => skip(wire, tag, &mut buf, NESTING)?,
        }
    }
    Ok(list)
}

/// Reads an EnvInfo's bytes into `env_info`: what they set replaces, detectors add.
fn merge_env_info<'a>(env_info: &mut EnvInfo<'a>, bytes: &'a [u8]) -> Result<(), Reason> {
    let mut buf = bytes;
    let mut detectors = 0;
    // Where the detector fields start and end, while they are one stretch.
    let mut stretch: Option<(usize, usize)> = None;
    let mut in_one_stretch = true;
    while !buf.is_empty() {
        let at = bytes.len() - buf.len();
        let name = match *buf {
            // Field 5, length-delimited, a name under 128 bytes: the usual detector,
            // read without the general key and varint decoding.
            [0x2a, len, ref rest @ ..] if len < 0x80 && usize::from(len) <= rest.len() => {
                let (name, after) = rest.split_at(usize::from(len));
                buf = after;
                name
            }
            _ => match env_info_field(env_info, &mut buf)? {
                Some(name) => name,
                None => continue,
            },
        };
        // Checked, not kept (they are read again when asked for); names are short and
        // ASCII, which is checked without a call.
        if !name.is_ascii() {
            utf8(name)?;
        }
        detectors += 1;
        let end = bytes.len() - buf.len();
        stretch = match stretch {
            None => Some((at, end)),
            Some((start, last)) => {
                in_one_stretch &= last == at;
                Some((start, end))
            }
        };
    }
    let wire = stretch
        .filter(|_| in_one_stretch)
        .map(|(start, end)| &bytes[start..end]);
    env_info.detectors.add(bytes, detectors, wire);
    Ok(())
}

/// Reads one field of an EnvInfo into `env_info`; a detector's bytes are given back.
fn env_info_field<'a>(
    env_info: &mut EnvInfo<'a>,
    buf: &mut &'a [u8],
) -> Result<Option<&'a [u8]>, Reason> {
    let (tag, wire) = decode_key(buf).map_err(reason)?;
    match tag {
        1 => env_info.environment_id = string(wire, buf)?,
        // uint32: the varint's low 32 bits, as prost (and protoc's code) take it.
        2 => env_info.run_number = Some(uint(wire, buf)? as u32),
        3 => env_info.run_type = Some(string(wire, buf)?),
        4 => env_info.state = string(wire, buf)?,
        5 => return message(wire, buf).map(Some),
        6 => env_info.enter_state_timestamp = uint(wire, buf)?,
        _ => skip(wire, tag, buf, NESTING - 1)?,
    }
    Ok(None)
}

fn uint(wire: WireType, buf: &mut &[u8]) -> Result<u64, Reason> {
    expect(WireType::Varint, wire)?;
    decode_varint(buf).map_err(reason)
}

/// A length-delimited field's bytes.
fn message<'a>(wire: WireType, buf: &mut &'a [u8]) -> Result<&'a [u8], Reason> {
    expect(WireType::LengthDelimited, wire)?;
    let len = decode_varint(buf).map_err(reason)?;
    if len > buf.len() as u64 {
        return Err("buffer underflow".into());
    }
    let (bytes, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(bytes)
}

fn string<'a>(wire: WireType, buf: &mut &'a [u8]) -> Result<&'a str, Reason> {
    utf8(message(wire, buf)?)
}

fn utf8(bytes: &[u8]) -> Result<&str, Reason> {
    std::str::from_utf8(bytes).map_err(|_| "a string is not UTF-8".into())
}

/// How deep groups may nest, as prost counts: 100 in the message, one less in the
/// EnvInfo inside it.
const NESTING: u32 = 100;

/// Steps over an unknown field; `depth` is the nesting it may still go (prost's limit,
/// whose own counter cannot be set from outside).
fn skip(wire: WireType, tag: u32, buf: &mut &[u8], depth: u32) -> Result<(), Reason> {
    if depth == 0 {
        return Err("recursion limit reached".into());
    }
    if wire != WireType::StartGroup {
        return skip_field(wire, tag, buf, DecodeContext::default()).map_err(reason);
    }
    loop {
        let (inner_tag, inner_wire) = decode_key(buf).map_err(reason)?;
        if inner_wire == WireType::EndGroup {
            if inner_tag != tag {
                return Err("unexpected end group tag".into());
            }
            return Ok(());
        }
        skip(inner_wire, inner_tag, buf, depth - 1)?;
    }
}

fn expect(expected: WireType, actual: WireType) -> Result<(), Reason> {
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "invalid wire type: {actual:?} (expected {expected:?})"
        ))
    }
}

fn reason(error: prost::DecodeError) -> Reason {
    error.to_string()
}

/// The reference this reader is held to, shared by the unit tests and the fuzz targets
/// (`fuzz/`): prost's decoding of the same messages.
#[cfg(any(test, feature = "fuzzing"))]
pub mod check {
    use prost::Message as _;

    use super::*;
    use crate::proto::kafka;

    impl EnvInfo<'_> {
        fn to_prost(&self) -> kafka::EnvInfo {
            kafka::EnvInfo {
                environment_id: self.environment_id.into(),
                run_number: self.run_number,
                run_type: self.run_type.map(Into::into),
                state: self.state.into(),
                detectors: self.detectors.iter().map(Into::into).collect(),
                enter_state_timestamp: self.enter_state_timestamp,
            }
        }
    }

    /// Both readers on `bytes`: both fail, or both read the same message.
    pub fn agree(bytes: &[u8]) {
        let prost = kafka::NewStateNotification::decode(bytes).ok();
        let ours = new_state_notification(bytes).ok().map(|n| {
            let detectors = n.env_info.as_ref().map_or(0, |e| e.detectors.len());
            let prost_detectors = n
                .env_info
                .as_ref()
                .map_or(0, |e| e.detectors.iter().count());
            assert_eq!(detectors, prost_detectors, "{bytes:?}");
            kafka::NewStateNotification {
                env_info: n.env_info.as_ref().map(EnvInfo::to_prost),
                timestamp: n.timestamp,
            }
        });
        assert_eq!(ours, prost, "notification {bytes:?}");
        let prost = kafka::ActiveRunsList::decode(bytes).ok();
        let ours = active_runs_list(bytes).ok().map(|l| kafka::ActiveRunsList {
            active_runs: l.active_runs.iter().map(EnvInfo::to_prost).collect(),
            timestamp: l.timestamp,
        });
        assert_eq!(ours, prost, "list {bytes:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::check::agree;
    use super::*;
    use crate::wire::*;

    /// Messages built by hand from the reference's layout, and odd ones.
    fn samples() -> Vec<Vec<u8>> {
        let running = env_info(Some(559_123), "RUNNING", &["ITS", "TPC", "MCH"], T0);
        let configured = env_info(None, "CONFIGURED", &[], T0);
        // A name of 128 bytes or more: its length takes two bytes.
        let long_name = "X".repeat(200);
        vec![
            notification(&running, T0),
            notification(
                &env_info(Some(1), "RUNNING", &["ITS", &long_name, "TPC"], T0),
                T0,
            ),
            notification(&configured, T0),
            cat(&[len(1, &running), len(1, &running), int(2, T0)]),
            active_runs(&[running.clone(), configured.clone()], T0),
            int(2, T0),
            Vec::new(),
            // Unknown fields of every wire type, a group among them, in both messages.
            cat(&[
                len(1, &cat(&[running.clone(), int(9, 1), len(10, b"x")])),
                varint((20 << 3) | 5),
                vec![1, 2, 3, 4],
                varint((21 << 3) | 1),
                vec![0; 8],
                varint((22 << 3) | 3),
                int(1, 5),
                varint((22 << 3) | 4),
                int(2, T0),
            ]),
            // A repeated scalar: the last wins; a run number past 32 bits.
            cat(&[
                len(1, &cat(&[int(2, 1), int(2, (1 << 33) + 7)])),
                int(2, 1),
                int(2, 2),
            ]),
            // Groups nested as deep as prost allows, and one deeper: in the message and
            // in the EnvInfo (where prost allows one less).
            cat(&[vec![0x3b; 99], vec![0x3c; 99]]),
            cat(&[vec![0x3b; 100], vec![0x3c; 100]]),
            len(1, &cat(&[vec![0x3b; 99], vec![0x3c; 99]])),
            len(1, &cat(&[vec![0x3b; 100], vec![0x3c; 100]])),
            // Wrong wire types for known fields.
            cat(&[int(1, 5)]),
            cat(&[len(1, &int(1, 5))]),
            cat(&[len(1, &len(2, b"x"))]),
            cat(&[len(1, &int(5, 1))]),
            cat(&[len(2, b"x")]),
            // Not UTF-8.
            cat(&[len(1, &len(5, &[0xff, 0xfe]))]),
            cat(&[len(1, &len(4, &[0xc3]))]),
        ]
    }

    #[test]
    fn the_reader_agrees_with_prost_on_every_sample() {
        for bytes in samples() {
            agree(&bytes);
        }
    }

    #[test]
    fn the_reader_agrees_with_prost_on_damaged_bytes() {
        // Cut short anywhere, and every byte changed to a few telling values.
        for bytes in samples() {
            for end in 0..bytes.len() {
                agree(&bytes[..end]);
            }
            for at in 0..bytes.len() {
                for value in [0x00, 0x01, 0x08, 0x0a, 0x12, 0x2a, 0x7f, 0x80, 0xff] {
                    let mut damaged = bytes.clone();
                    damaged[at] = value;
                    agree(&damaged);
                }
            }
        }
    }

    #[test]
    fn detectors_are_read_in_order_without_a_list() {
        let info = env_info(Some(1), "RUNNING", &["ITS", "TPC"], T0);
        let merged = cat(&[
            len(1, &info),
            len(1, &env_info(Some(2), "RUNNING", &["MCH"], T0)),
        ]);
        let n = new_state_notification(&merged).unwrap();
        let env = n.env_info.unwrap();
        assert_eq!(
            env.detectors.iter().collect::<Vec<_>>(),
            ["ITS", "TPC", "MCH"]
        );
        assert_eq!(env.detectors.len(), 3);
        assert_eq!(env.run_number, Some(2), "the later occurrence wins");
        assert_eq!(
            serde_json::to_string(&env.detectors).unwrap(),
            r#"["ITS","TPC","MCH"]"#
        );
        assert_eq!(env.detectors.wire(), None, "two stretches");
        // One stretch: the detector fields' bytes, whatever comes around them.
        let n = notification(&info, T0);
        let once = new_state_notification(&n).unwrap().env_info.unwrap();
        assert_eq!(
            once.detectors.wire(),
            Some(&cat(&[len(5, b"ITS"), len(5, b"TPC")])[..])
        );
        let apart = len(1, &cat(&[len(5, b"ITS"), int(6, 1), len(5, b"TPC")]));
        let apart = new_state_notification(&apart).unwrap().env_info.unwrap();
        assert_eq!(apart.detectors.wire(), None, "interrupted");
        assert_eq!(apart.detectors.iter().collect::<Vec<_>>(), ["ITS", "TPC"]);
    }
}
