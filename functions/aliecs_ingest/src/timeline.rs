//! The state timeline: one search document per message, whatever its kind, with the
//! environment, state, run and transition flattened out so that a dashboard can filter
//! on them. The id is a digest of the topic and the message bytes: a redelivered
//! message is the same document (`create` answers 409), two different ones never are.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::decode::{AliecsMessage, StateChange};
use crate::proto::events::{event::Payload, OpStatus};
use crate::runs::rfc3339_ms;

/// A timeline document.
#[derive(Debug, Default, Serialize)]
pub struct TimelineDoc<'a> {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub detectors: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enter_state_at: Option<String>,
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
    /// ActiveRunsList: the runs going on, as `environment/run`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub active_runs: Vec<ActiveRun<'a>>,
    /// `timestampNano` of an event (its full epoch time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_nano: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ActiveRun<'a> {
    pub environment_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_type: Option<&'a str>,
    pub detectors: &'a [String],
}

/// The document id of a message: the topic and the bytes.
pub fn document_id(topic: &str, value: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(topic.as_bytes());
    digest.update([0]);
    digest.update(value);
    hex::encode(&digest.finalize()[..16])
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
pub fn document<'a>(topic: &'a str, message: &'a AliecsMessage, ms: i64) -> TimelineDoc<'a> {
    let mut doc = TimelineDoc {
        timestamp: rfc3339_ms(ms),
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
                fields.environment_id = some(&env.environment_id);
                fields.state = some(&env.state);
                fields.run_number = env.run_number;
                fields.run_type = env.run_type.as_deref();
                fields.detectors = &env.detectors;
                fields.enter_state_at = (env.enter_state_timestamp > 0)
                    .then(|| rfc3339_ms(env.enter_state_timestamp as i64));
            }
        }
        AliecsMessage::ActiveRuns(list) => {
            doc.event.action = "active_runs";
            fields.active_runs = list
                .active_runs
                .iter()
                .map(|env| ActiveRun {
                    environment_id: &env.environment_id,
                    run_number: env.run_number,
                    run_type: env.run_type.as_deref(),
                    detectors: &env.detectors,
                })
                .collect();
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
