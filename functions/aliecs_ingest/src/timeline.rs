//! The state timeline: one search document per message, whatever its kind, with the
//! environment, state, run and transition flattened out so that a dashboard can filter
//! on them. The id is a 128-bit digest of the topic and the message bytes: a redelivered
//! message is the same document (`create` answers 409), two different ones practically
//! never are.
//!
//! A document is written by [`TimelineDoc::write_json`], by hand, not through serde:
//! one per record of large batches, and most of its text needs no escaping. Its serde
//! form is the reference the tests hold it to, byte for byte.

use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64};

use crate::decode::{AliecsMessage, StateChange};
use crate::legacy::{Detectors, EnvInfo};
use crate::proto::events::{event::Payload, OpStatus};
use crate::runs::Rfc3339;

/// A timeline document.
#[derive(Debug, Default, Serialize)]
pub struct TimelineDoc<'a> {
    #[serde(rename = "@timestamp")]
    pub timestamp: Rfc3339,
    pub event: EventFields,
    pub aliecs: AliecsFields<'a>,
}

#[derive(Debug, Default, Serialize)]
pub struct EventFields {
    pub dataset: &'static str,
    /// `enter_state`, `leave_state`, `start_activity`, `active_runs`, or the event
    /// model's payload (`environment`, `run`, `task`, `call`, `role`,
    /// `integrated_service`, `core_start`, `beam_mode`, ...).
    pub action: &'static str,
}

#[derive(Debug, Default, Serialize)]
pub struct AliecsFields<'a> {
    pub topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_type: Option<&'a str>,
    #[serde(skip_serializing_if = "no_detectors")]
    pub detectors: Option<&'a Detectors<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enter_state_at: Option<Rfc3339>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    /// ActiveRunsList: the runs going on.
    #[serde(skip_serializing_if = "ActiveRuns::is_empty")]
    pub active_runs: ActiveRuns<'a>,
    /// `timestampNano` of an event (its full epoch time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_nano: Option<i64>,
}

fn no_detectors(detectors: &Option<&Detectors<'_>>) -> bool {
    detectors.is_none_or(|d| d.is_empty())
}

/// The environments of an ActiveRunsList, written as they are read.
#[derive(Debug, Default, Clone, Copy)]
pub struct ActiveRuns<'a>(pub &'a [EnvInfo<'a>]);

impl ActiveRuns<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ActiveRuns<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct ActiveRun<'a> {
            environment_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            run_number: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            run_type: Option<&'a str>,
            detectors: &'a Detectors<'a>,
        }
        serializer.collect_seq(self.0.iter().map(|env| ActiveRun {
            environment_id: env.environment_id,
            run_number: env.run_number,
            run_type: env.run_type,
            detectors: &env.detectors,
        }))
    }
}

/// A timeline document's id: 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DocumentId([u8; 32]);

impl DocumentId {
    pub fn as_str(&self) -> &str {
        // Hex digits: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The document id of a message: the 128-bit XXH3 of its bytes, seeded with the 64-bit
/// XXH3 of its topic (written on the stack: one per record of large batches). Not a
/// cryptographic digest, and needs not be: the messages come from AliECS over the
/// operators' own Kafka, and one who could forge a colliding message there could as
/// well send a wrong one. SHA-256 was a tenth of the ingest's time.
pub fn document_id(topic: &str, value: &[u8]) -> DocumentId {
    let digest = xxh3_128_with_seed(value, xxh3_64(topic.as_bytes()));
    let mut id = [0u8; 32];
    // 16 bytes are 32 digits: it always fits.
    let _ = hex::encode_to_slice(digest.to_be_bytes(), &mut id);
    DocumentId(id)
}

/// The message's time in ms, when it carries one.
pub fn message_ms(message: &AliecsMessage) -> Option<i64> {
    let ms = match message {
        AliecsMessage::State(_, n) => n.timestamp as i64,
        AliecsMessage::ActiveRuns(l) => l.timestamp as i64,
        AliecsMessage::Event(e) => e.timestamp,
    };
    (ms > 0).then_some(ms)
}

/// The timeline document of `message`, dated `ms`.
pub fn document<'a>(topic: &'a str, message: &'a AliecsMessage<'a>, ms: i64) -> TimelineDoc<'a> {
    let mut doc = TimelineDoc {
        timestamp: Rfc3339::new(ms),
        event: EventFields {
            dataset: "aliecs.timeline",
            action: "",
        },
        aliecs: AliecsFields {
            topic,
            ..AliecsFields::default()
        },
    };
    let fields = &mut doc.aliecs;
    match message {
        AliecsMessage::State(change, notification) => {
            doc.event.action = match change {
                StateChange::Enter => "enter_state",
                StateChange::Leave => "leave_state",
                StateChange::StartActivity => "start_activity",
            };
            if let Some(env) = &notification.env_info {
                fields.environment_id = some(env.environment_id);
                fields.state = some(env.state);
                fields.run_number = env.run_number;
                fields.run_type = env.run_type;
                fields.detectors = Some(&env.detectors);
                fields.enter_state_at = (env.enter_state_timestamp > 0)
                    .then(|| Rfc3339::new(env.enter_state_timestamp as i64));
            }
        }
        AliecsMessage::ActiveRuns(list) => {
            doc.event.action = "active_runs";
            fields.active_runs = ActiveRuns(&list.active_runs);
        }
        AliecsMessage::Event(event) => {
            fields.timestamp_nano = (event.timestamp_nano > 0).then_some(event.timestamp_nano);
            doc.event.action = event_fields(event.payload.as_ref(), fields);
        }
    }
    doc
}

/// Fills in an event's payload; its action name.
fn event_fields<'a>(payload: Option<&'a Payload>, fields: &mut AliecsFields<'a>) -> &'static str {
    let status = |s: i32| OpStatus::try_from(s).ok().map(|s| s.as_str_name());
    let Some(payload) = payload else {
        return "empty";
    };
    match payload {
        Payload::EnvironmentEvent(e) => {
            fields.environment_id = some(&e.environment_id);
            fields.state = some(&e.state);
            fields.run_number = (e.run_number > 0).then_some(e.run_number);
            fields.transition = some(&e.transition);
            fields.transition_status = status(e.transition_status);
            fields.name = some(&e.transition_step);
            fields.error = some(&e.error);
            fields.message = some(&e.message);
            fields.user = e.last_request_user.as_ref().and_then(|u| some(&u.name));
            "environment"
        }
        Payload::RunEvent(e) => {
            fields.environment_id = some(&e.environment_id);
            fields.state = some(&e.state);
            fields.run_number = (e.run_number > 0).then_some(e.run_number);
            fields.transition = some(&e.transition);
            fields.transition_status = status(e.transition_status);
            fields.error = some(&e.error);
            fields.user = e.last_request_user.as_ref().and_then(|u| some(&u.name));
            "run"
        }
        Payload::TaskEvent(e) => {
            fields.environment_id = some(&e.environment_id);
            fields.state = some(&e.state);
            fields.name = some(&e.name);
            fields.message = some(&e.status);
            "task"
        }
        Payload::RoleEvent(e) => {
            fields.environment_id = some(&e.environment_id);
            fields.state = some(&e.state);
            fields.name = some(&e.name);
            fields.message = some(&e.status);
            "role"
        }
        Payload::CallEvent(e) => {
            fields.environment_id = some(&e.environment_id);
            fields.name = some(&e.func);
            fields.transition_status = status(e.call_status);
            fields.error = some(&e.error);
            fields.message = some(&e.output);
            "call"
        }
        Payload::IntegratedServiceEvent(e) => {
            fields.environment_id = some(&e.environment_id);
            fields.name = some(&e.name);
            fields.transition = some(&e.operation_name);
            fields.transition_status = status(e.operation_status);
            fields.error = some(&e.error);
            fields.message = some(&e.payload);
            "integrated_service"
        }
        Payload::FrameworkEvent(e) => {
            fields.message = some(&e.message);
            "framework"
        }
        Payload::MesosHeartbeatEvent(_) => "mesos_heartbeat",
        Payload::CoreStartEvent(e) => {
            fields.name = some(&e.framework_id);
            "core_start"
        }
        Payload::BeamModeEvent(_) => "beam_mode",
    }
}

fn some(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The JSON of the detector list written last, by its wire bytes: a batch's messages
/// mostly repeat one list byte for byte, and writing it name by name was a third of a
/// document's time.
#[derive(Debug, Default)]
pub struct DetectorsJson {
    wire: Vec<u8>,
    json: Vec<u8>,
}

impl DetectorsJson {
    fn write(&mut self, out: &mut Vec<u8>, detectors: &Detectors<'_>) {
        // Lists merged from repeated EnvInfos have no one stretch of bytes: rare.
        let Some(wire) = detectors.wire() else {
            return write_detectors(out, detectors);
        };
        // (Nothing written yet is no list at all, not even one of no bytes.)
        if self.json.is_empty() || wire != self.wire.as_slice() {
            self.wire.clear();
            self.wire.extend_from_slice(wire);
            self.json.clear();
            write_detectors(&mut self.json, detectors);
        }
        out.extend_from_slice(&self.json);
    }
}

impl TimelineDoc<'_> {
    /// Appends the document as one line of JSON: the bytes `serde_json` writes for it.
    /// Each object's first member is always there, so every later one starts with a
    /// comma: the keys are literals with their punctuation.
    pub fn write_json(&self, out: &mut Vec<u8>, detectors_json: &mut DetectorsJson) {
        let f = &self.aliecs;
        // Digits and separators: nothing to escape.
        out.extend_from_slice(b"{\"@timestamp\":\"");
        out.extend_from_slice(self.timestamp.as_bytes());
        out.extend_from_slice(b"\",\"event\":{\"dataset\":");
        write_name(out, self.event.dataset);
        out.extend_from_slice(b",\"action\":");
        write_name(out, self.event.action);
        out.extend_from_slice(b"},\"aliecs\":{\"topic\":");
        write_str(out, f.topic);
        member(out, b",\"environment_id\":", f.environment_id);
        member(out, b",\"state\":", f.state);
        if let Some(run) = f.run_number {
            number(out, b",\"run_number\":", run);
        }
        member(out, b",\"run_type\":", f.run_type);
        if let Some(detectors) = f.detectors.filter(|d| !d.is_empty()) {
            out.extend_from_slice(b",\"detectors\":");
            detectors_json.write(out, detectors);
        }
        if let Some(at) = &f.enter_state_at {
            out.extend_from_slice(b",\"enter_state_at\":\"");
            out.extend_from_slice(at.as_bytes());
            out.push(b'"');
        }
        member(out, b",\"transition\":", f.transition);
        if let Some(status) = f.transition_status {
            out.extend_from_slice(b",\"transition_status\":");
            write_name(out, status);
        }
        member(out, b",\"name\":", f.name);
        member(out, b",\"error\":", f.error);
        member(out, b",\"message\":", f.message);
        member(out, b",\"user\":", f.user);
        if !f.active_runs.is_empty() {
            out.extend_from_slice(b",\"active_runs\":[");
            for (i, env) in f.active_runs.0.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"environment_id\":");
                write_str(out, env.environment_id);
                if let Some(run) = env.run_number {
                    number(out, b",\"run_number\":", run);
                }
                member(out, b",\"run_type\":", env.run_type);
                out.extend_from_slice(b",\"detectors\":");
                detectors_json.write(out, &env.detectors);
                out.push(b'}');
            }
            out.push(b']');
        }
        if let Some(nano) = f.timestamp_nano {
            number(out, b",\"timestamp_nano\":", nano);
        }
        out.extend_from_slice(b"}}");
    }
}

/// `key` (with its punctuation) and the text, when there is some.
fn member(out: &mut Vec<u8>, key: &[u8], value: Option<&str>) {
    if let Some(value) = value {
        out.extend_from_slice(key);
        write_str(out, value);
    }
}

fn number(out: &mut Vec<u8>, key: &[u8], value: impl itoa::Integer) {
    out.extend_from_slice(key);
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn write_detectors(out: &mut Vec<u8>, detectors: &Detectors<'_>) {
    out.push(b'[');
    for (i, detector) in detectors.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, detector);
    }
    out.push(b']');
}

/// One of our own names (an action, a status): nothing in it to escape.
fn write_name(out: &mut Vec<u8>, name: &'static str) {
    debug_assert!(name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'));
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// The bytes a JSON string cannot hold as they are: quote, backslash, control characters.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// A JSON string: copied when nothing in it needs escaping (no quote, backslash or
/// control character), else written by serde_json.
fn write_str(out: &mut Vec<u8>, text: &str) {
    // A table, as serde_json's: the strings are short (ids, states, topics).
    let plain = text.bytes().all(|b| !ESCAPED[usize::from(b)]);
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// The reference [`TimelineDoc::write_json`] is held to, shared by the unit tests and the
/// fuzz targets (`fuzz/`): the bytes serde_json writes for the same document.
#[cfg(any(test, feature = "fuzzing"))]
pub mod check {
    use super::*;

    /// Both ways of writing the document of `message`: the same bytes.
    /// `memo` is kept from document to document, as a batch keeps it: a list remembered
    /// from an earlier document must never stand for another.
    pub fn same_json(topic: &str, message: &AliecsMessage<'_>, memo: &mut DetectorsJson) {
        for ms in [0, 1, crate::wire::T0 as i64, 253_402_300_799_999] {
            let doc = document(topic, message, ms);
            let reference = String::from_utf8(serde_json::to_vec(&doc).unwrap()).unwrap();
            for memo in [&mut DetectorsJson::default(), &mut *memo] {
                let mut ours = Vec::new();
                doc.write_json(&mut ours, memo);
                assert_eq!(String::from_utf8(ours).unwrap(), reference);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check::same_json;
    use super::*;
    use crate::decode::decode;
    use crate::proto::{common, events};
    use crate::wire::*;

    /// Text a dashboard might hold: quotes, backslashes, control characters (each alone,
    /// so that one does not hide another), non-ASCII.
    const ODDS: [&str; 7] = [
        "say \"hi\"",
        "back\\slash",
        "line\nbreak",
        "unit\u{1f}separator",
        "\u{1}",
        "é ✓ </script> \u{7f}",
        "",
    ];
    const ODD: &str = "say \"hi\"\\ \n\t\u{1}\u{1f} é ✓ </script> \u{7f}";

    #[test]
    fn odd_text_is_escaped_as_serde_json_escapes_it() {
        let mut memo = DetectorsJson::default();
        for odd in ODDS {
            let state = notification(&env_info(Some(1), odd, &[odd, "ITS"], T0), T0);
            let topic = "aliecs.env_state.RUNNING";
            same_json(topic, &decode(topic, &state).unwrap(), &mut memo);
            let list = active_runs(&[env_info(Some(2), "RUNNING", &[odd], T0)], T0);
            let topic = "aliecs.env_list.RUNNING";
            same_json(topic, &decode(topic, &list).unwrap(), &mut memo);
            let run = run_event(T0, 3, odd, 1, odd, odd);
            same_json(
                "aliecs.run",
                &decode("aliecs.run", &run).unwrap(),
                &mut memo,
            );
        }
    }

    #[test]
    fn documents_are_written_as_serde_json_writes_them() {
        let mut memo = DetectorsJson::default();
        let legacy = [
            (
                "aliecs.env_state.RUNNING",
                notification(&env_info(Some(559_123), "RUNNING", &["ITS", "TPC"], T0), T0),
            ),
            (
                "aliecs.env_leave_state.RUNNING",
                notification(&env_info(Some(1), ODD, &[ODD, ""], 0), T0),
            ),
            (
                "aliecs.env_state.CONFIGURED",
                notification(&env_info(None, "CONFIGURED", &[], T0), 0),
            ),
            ("aliecs.start_activity", int(2, T0)),
            ("aliecs.env_list.RUNNING", int(2, T0)),
            (
                "aliecs.env_list.RUNNING",
                active_runs(
                    &[
                        env_info(Some(7), "RUNNING", &["MCH"], T0),
                        env_info(None, "", &[], 0),
                    ],
                    T0,
                ),
            ),
            (
                "aliecs.run",
                run_event(T0, 559_123, "START_ACTIVITY", 1, "CONFIGURED", ODD),
            ),
        ];
        // The first again at the end: its list after others.
        for (topic, bytes) in legacy.iter().chain(&legacy[..1]) {
            same_json(topic, &decode(topic, bytes).unwrap(), &mut memo);
        }
        use events::event::Payload;
        let user = Some(common::User {
            name: ODD.into(),
            ..Default::default()
        });
        let payloads = [
            Payload::EnvironmentEvent(events::EvEnvironmentEvent {
                environment_id: ENV.into(),
                state: "RUNNING".into(),
                run_number: 9,
                error: ODD.into(),
                message: "ok".into(),
                transition: "START_ACTIVITY".into(),
                transition_step: "before".into(),
                transition_status: 2,
                last_request_user: user.clone(),
                ..Default::default()
            }),
            Payload::TaskEvent(events::EvTaskEvent {
                name: ODD.into(),
                state: "RUNNING".into(),
                status: "ACTIVE".into(),
                environment_id: ENV.into(),
                ..Default::default()
            }),
            Payload::RoleEvent(events::EvRoleEvent {
                name: "readout".into(),
                status: ODD.into(),
                ..Default::default()
            }),
            Payload::CallEvent(events::EvCallEvent {
                func: "odc.Start".into(),
                call_status: 99,
                output: ODD.into(),
                ..Default::default()
            }),
            Payload::IntegratedServiceEvent(events::EvIntegratedServiceEvent {
                name: "dcs".into(),
                operation_name: "PrepareForRun".into(),
                operation_status: 3,
                payload: "{\"a\": 1}".into(),
                ..Default::default()
            }),
            Payload::FrameworkEvent(events::EvMetaEventFrameworkEvent {
                message: ODD.into(),
                ..Default::default()
            }),
            Payload::MesosHeartbeatEvent(Default::default()),
            Payload::CoreStartEvent(events::EvMetaEventCoreStart {
                framework_id: "f-1".into(),
            }),
            Payload::BeamModeEvent(Default::default()),
        ];
        let run = events::EvRunEvent {
            environment_id: ENV.into(),
            run_number: 3,
            transition: "STOP_ACTIVITY".into(),
            last_request_user: user.clone(),
            ..Default::default()
        };
        let payloads = payloads.into_iter().chain([Payload::RunEvent(run)]);
        for payload in payloads.map(Some).chain([None]) {
            let event = events::Event {
                timestamp: T0 as i64,
                timestamp_nano: -5,
                payload,
            };
            same_json(
                "aliecs.environment",
                &AliecsMessage::Event(Box::new(event)),
                &mut memo,
            );
        }
    }

    #[test]
    fn ids_are_the_digest_of_topic_and_bytes() {
        let id = document_id("aliecs.run", b"\x01\x02");
        // The C library's answers (python-xxhash: xxh3_128_hexdigest(value,
        // seed=xxh3_64_intdigest(b"aliecs.run"))), for a short value and for the sizes of
        // messages, which take XXH3's other paths. Ids must not change from one release
        // to the next: a message redelivered after a deploy is still the document it was.
        assert_eq!(id.as_str(), "192710a84e0405260877118b4e15123e");
        for (len, pinned) in [
            (100, "cfa56dbdbf167332b6e0ccd4d323ddf6"),
            (200, "61f6c1886a8a85b73da72b928a1f8eea"),
            (300, "810a2fe2005cdc6e3dc03e9fcc53aff9"),
            (2000, "10e64cc637add0ba3d3d09f94b8dc1ad"),
        ] {
            let value: Vec<u8> = (0..len)
                .map(|i: usize| (i as u8).wrapping_mul(37))
                .collect();
            assert_eq!(
                document_id("aliecs.run", &value).as_str(),
                pinned,
                "{len} bytes"
            );
        }
        assert_ne!(document_id("aliecs.core", b"\x01\x02"), id);
        assert_ne!(document_id("aliecs.run", b"\x01"), id);
        assert_ne!(
            document_id("aliecs.run", b""),
            document_id("aliecs.core", b"")
        );
    }
}
