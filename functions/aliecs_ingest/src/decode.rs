//! A record's message type comes from its topic (`reference/aliecs-kafka.md` §7): the
//! legacy plugin's state notifications and active-runs lists (read in place, see
//! [`legacy`](crate::legacy)), or an event-model `Event` (prost). Unknown fields are
//! skipped, as protobuf wants.

use prost::Message as _;

use crate::legacy;
use crate::proto::events;

/// What a legacy state notification says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    /// `aliecs.env_state.<STATE>`: the environment entered the state.
    Enter,
    /// `aliecs.env_leave_state.<STATE>`: it is leaving the state (the message still says
    /// that state: a leave of RUNNING is the end of a run).
    Leave,
    /// `aliecs.before_start_activity`, `aliecs.after_start_activity`,
    /// `aliecs.start_activity`: the start-of-run hooks.
    StartActivity,
}

/// A record's message; the legacy ones borrow from the record.
#[derive(Debug, Clone, PartialEq)]
pub enum AliecsMessage<'a> {
    State(StateChange, legacy::NewStateNotification<'a>),
    ActiveRuns(legacy::ActiveRunsList<'a>),
    Event(Box<events::Event>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("topic {0} is not an AliECS topic this function reads")]
    UnknownTopic(String),
    #[error("not a {message}: {reason}")]
    Protobuf {
        message: &'static str,
        reason: String,
    },
}

/// Decodes `value` as the message type of `topic`.
pub fn decode<'a>(topic: &str, value: &'a [u8]) -> Result<AliecsMessage<'a>, DecodeError> {
    let protobuf = |message: &'static str| {
        move |error: legacy::Reason| DecodeError::Protobuf {
            message,
            reason: error,
        }
    };
    let Some(rest) = topic.strip_prefix("aliecs.") else {
        return Err(DecodeError::UnknownTopic(topic.to_owned()));
    };
    let state = |change| {
        legacy::new_state_notification(value)
            .map(|n| AliecsMessage::State(change, n))
            .map_err(protobuf("kafka.NewStateNotification"))
    };
    if rest.starts_with("env_list.") {
        return legacy::active_runs_list(value)
            .map(AliecsMessage::ActiveRuns)
            .map_err(protobuf("kafka.ActiveRunsList"));
    }
    if rest.starts_with("env_state.") {
        return state(StateChange::Enter);
    }
    if rest.starts_with("env_leave_state.") {
        return state(StateChange::Leave);
    }
    if rest.ends_with("start_activity") && !rest.contains('.') {
        return state(StateChange::StartActivity);
    }
    let event_topic = matches!(
        rest,
        "core" | "environment" | "run" | "task" | "role" | "call"
    ) || rest.starts_with("integrated_service.");
    if event_topic {
        return events::Event::decode(value)
            .map(|event| AliecsMessage::Event(Box::new(event)))
            .map_err(|error| protobuf("events.Event")(error.to_string()));
    }
    Err(DecodeError::UnknownTopic(topic.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::events::event::Payload;
    use crate::wire::*;

    #[test]
    fn a_start_of_run_notification_decodes_from_the_reference_layout() {
        let bytes = notification(
            &env_info(Some(559_123), "RUNNING", &["ITS"], T0 - 5_000),
            T0,
        );
        // reference §6: RUNNING with one detector is 56 bytes.
        assert_eq!(bytes.len(), 56);
        let AliecsMessage::State(StateChange::Enter, n) =
            decode("aliecs.env_state.RUNNING", &bytes).unwrap()
        else {
            panic!("an enter-state notification")
        };
        assert_eq!(n.timestamp, T0);
        let env = n.env_info.unwrap();
        assert_eq!(env.environment_id, ENV);
        assert_eq!(env.run_number, Some(559_123));
        assert_eq!(env.run_type, Some("PHYSICS"));
        assert_eq!(env.state, "RUNNING");
        assert_eq!(env.detectors.iter().collect::<Vec<_>>(), ["ITS"]);
        assert_eq!(env.enter_state_timestamp, T0 - 5_000);
    }

    #[test]
    fn absent_run_fields_are_none_and_unknown_fields_are_skipped() {
        let mut info = env_info(None, "CONFIGURED", &["TPC"], T0);
        assert_eq!(
            notification(&info, T0).len(),
            46,
            "reference §6: CONFIGURED is 46 bytes"
        );
        // A field from a future producer, in the message and in its EnvInfo.
        info.extend(len(9, b"future"));
        let mut bytes = notification(&info, T0);
        bytes.extend(int(15, 7));
        let AliecsMessage::State(StateChange::Leave, n) =
            decode("aliecs.env_leave_state.CONFIGURED", &bytes).unwrap()
        else {
            panic!("a leave-state notification")
        };
        let env = n.env_info.unwrap();
        assert_eq!((env.run_number, env.run_type), (None, None));
        assert_eq!(env.detectors.iter().collect::<Vec<_>>(), ["TPC"]);
    }

    #[test]
    fn active_runs_lists_decode_empty_and_full() {
        let empty = int(2, T0);
        assert_eq!(empty.len(), 7, "reference §6: the empty list is 7 bytes");
        let AliecsMessage::ActiveRuns(list) = decode("aliecs.env_list.RUNNING", &empty).unwrap()
        else {
            panic!("a list")
        };
        assert!(list.active_runs.is_empty());
        assert_eq!(list.timestamp, T0);

        let full = cat(&[
            len(1, &env_info(Some(1), "RUNNING", &["ITS", "TPC"], T0)),
            len(1, &env_info(Some(2), "RUNNING", &["MCH"], T0)),
            int(2, T0),
        ]);
        let AliecsMessage::ActiveRuns(list) = decode("aliecs.env_list.RUNNING", &full).unwrap()
        else {
            panic!("a list")
        };
        let runs: Vec<_> = list.active_runs.iter().map(|e| e.run_number).collect();
        assert_eq!(runs, [Some(1), Some(2)]);
    }

    #[test]
    fn run_events_decode_with_their_two_byte_oneof_tag() {
        let bytes = run_event(T0, 559_123, "START_ACTIVITY", 1, "CONFIGURED", "anna");
        // Field 16, length-delimited: tag (16 << 3) | 2 = 130, a two-byte varint.
        let tag = varint((16 << 3) | 2);
        assert_eq!(tag, [0x82, 0x01]);
        assert!(bytes.windows(2).any(|w| w == tag));
        let AliecsMessage::Event(event) = decode("aliecs.run", &bytes).unwrap() else {
            panic!("an event")
        };
        assert_eq!(event.timestamp, T0 as i64);
        assert_eq!(event.timestamp_nano, (T0 * 1_000_000 + 123_456) as i64);
        let Some(Payload::RunEvent(run)) = event.payload else {
            panic!("a run event")
        };
        assert_eq!(run.run_number, 559_123);
        assert_eq!(run.transition, "START_ACTIVITY");
        assert_eq!(run.transition_status, events::OpStatus::Started as i32);
        assert_eq!(run.last_request_user.unwrap().name, "anna");
    }

    #[test]
    fn topics_choose_the_message_and_bad_bytes_are_errors() {
        let state = notification(&env_info(Some(1), "RUNNING", &[], T0), T0);
        for topic in [
            "aliecs.before_start_activity",
            "aliecs.after_start_activity",
            "aliecs.start_activity",
        ] {
            assert!(matches!(
                decode(topic, &state),
                Ok(AliecsMessage::State(StateChange::StartActivity, _))
            ));
        }
        for topic in [
            "aliecs.environment",
            "aliecs.task",
            "aliecs.integrated_service.dcs",
            "aliecs.core",
        ] {
            assert!(
                matches!(decode(topic, &[]), Ok(AliecsMessage::Event(_))),
                "{topic}"
            );
        }
        for topic in ["aliecs.unheard_of", "dip.lhc.beam_mode", "org.runs"] {
            assert_eq!(
                decode(topic, &state),
                Err(DecodeError::UnknownTopic(topic.into()))
            );
        }
        // Cut short inside the EnvInfo.
        assert!(matches!(
            decode("aliecs.env_state.RUNNING", &state[..10]),
            Err(DecodeError::Protobuf { .. })
        ));
        assert!(matches!(
            decode("aliecs.run", b"\xff\xff\xff"),
            Err(DecodeError::Protobuf { .. })
        ));
    }
}
