//! Run records: one per run number, merged from every message that mentions the run.
//! A message gives [`RunFacts`]; [`RunRecord::merge`] folds them in so that the record
//! does not depend on the order or the number of times the messages arrive: start and
//! end are the earliest signals, detectors a union, how it ended the most telling
//! reason. Facts: `reference/aliecs-kafka.md` §3 (legacy SOR / EOR) and §4 (`aliecs.run`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::decode::{AliecsMessage, StateChange};
use crate::proto::events::{self, event::Payload, OpStatus};

/// How a run ended, from least to most telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The legacy leave-RUNNING message says the run ended, not why.
    Unknown,
    /// STOP_ACTIVITY.
    Normal,
    /// TEARDOWN while RUNNING: the environment was destroyed.
    Teardown,
    /// GO_ERROR.
    Error,
}

/// A moment of a run, with who asked for it when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    /// Milliseconds since the epoch.
    pub ms: i64,
    /// RFC 3339, for people and dashboards.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Moment {
    pub fn new(ms: i64, user: Option<String>) -> Moment {
        Moment {
            ms,
            at: rfc3339_ms(ms),
            user,
        }
    }

    /// The earlier; on a tie the one with a user, then the smaller user: a total order,
    /// so that merging commutes.
    fn earliest(a: Option<Moment>, b: Option<Moment>) -> Option<Moment> {
        match (a, b) {
            (Some(a), Some(b)) => Some(std::cmp::min_by(a, b, |a, b| {
                (a.ms, a.user.is_none(), &a.user).cmp(&(b.ms, b.user.is_none(), &b.user))
            })),
            (a, b) => a.or(b),
        }
    }
}

/// What one message says about a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    pub run_number: u32,
    pub environment_id: Option<String>,
    pub run_type: Option<String>,
    pub detectors: BTreeSet<String>,
    pub start: Option<Moment>,
    pub end: Option<Moment>,
    pub ending: Option<Ending>,
    /// `legacy` or `events`.
    pub source: &'static str,
}

/// The run record as it is stored (`_id` = the run number).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_number: u32,
    #[serde(default)]
    pub environment_id: Option<String>,
    #[serde(default)]
    pub run_type: Option<String>,
    #[serde(default)]
    pub detectors: BTreeSet<String>,
    #[serde(default)]
    pub start: Option<Moment>,
    #[serde(default)]
    pub end: Option<Moment>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub ended: Option<Ending>,
    /// `running` until an end is known, then `ended`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub sources: BTreeSet<String>,
    /// The end-of-run Jenkins build request went to the spigot queue.
    #[serde(default)]
    pub eor_build_queued: bool,
}

impl RunRecord {
    /// The record with `facts` folded in.
    pub fn merge(&self, facts: &RunFacts) -> RunRecord {
        let smaller = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b).clone()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let mut merged = RunRecord {
            run_number: facts.run_number,
            environment_id: smaller(&self.environment_id, &facts.environment_id),
            run_type: smaller(&self.run_type, &facts.run_type),
            detectors: self.detectors.union(&facts.detectors).cloned().collect(),
            start: Moment::earliest(self.start.clone(), facts.start.clone()),
            end: Moment::earliest(self.end.clone(), facts.end.clone()),
            ended: self.ended.max(facts.ending),
            sources: self.sources.clone(),
            eor_build_queued: self.eor_build_queued,
            ..RunRecord::default()
        };
        merged.sources.insert(facts.source.to_owned());
        merged.duration_ms = match (&merged.start, &merged.end) {
            (Some(start), Some(end)) => Some((end.ms - start.ms).max(0)),
            _ => None,
        };
        merged.status = if merged.end.is_some() {
            "ended"
        } else {
            "running"
        }
        .into();
        merged
    }
}

/// What `message` says about runs: none, one, or one per active run.
pub fn facts(message: &AliecsMessage) -> Vec<RunFacts> {
    match message {
        AliecsMessage::State(change, notification) => {
            let Some(env) = &notification.env_info else {
                return Vec::new();
            };
            let Some(run_number) = env.run_number.filter(|n| *n > 0) else {
                return Vec::new();
            };
            let mut facts = legacy_facts(env, run_number);
            let entered = (env.enter_state_timestamp > 0).then_some(env.enter_state_timestamp);
            let sent = notification.timestamp as i64;
            match (change, env.state.as_str()) {
                // SOR: the time RUNNING was entered.
                (StateChange::Enter, "RUNNING") => {
                    facts.start = Some(Moment::new(entered.unwrap_or(sent as u64) as i64, None));
                }
                // EOR: sent on leaving RUNNING, which it still says; it carries when RUNNING
                // was entered too.
                (StateChange::Leave, "RUNNING") => {
                    facts.start = entered.map(|ms| Moment::new(ms as i64, None));
                    facts.end = Some(Moment::new(sent, None));
                    facts.ending = Some(Ending::Unknown);
                }
                // The start-of-run hooks: the run number is assigned.
                (StateChange::StartActivity, _) => {
                    facts.start = Some(Moment::new(sent, None));
                }
                _ => {}
            }
            vec![facts]
        }
        // A snapshot: who runs what, no times.
        AliecsMessage::ActiveRuns(list) => list
            .active_runs
            .iter()
            .filter_map(|env| {
                let run_number = env.run_number.filter(|n| *n > 0)?;
                Some(legacy_facts(env, run_number))
            })
            .collect(),
        AliecsMessage::Event(event) => match &event.payload {
            Some(Payload::RunEvent(run)) if run.run_number > 0 => vec![run_event_facts(event, run)],
            _ => Vec::new(),
        },
    }
}

fn legacy_facts(env: &crate::proto::kafka::EnvInfo, run_number: u32) -> RunFacts {
    RunFacts {
        run_number,
        environment_id: non_empty(&env.environment_id),
        run_type: env.run_type.as_deref().and_then(non_empty),
        detectors: env.detectors.iter().cloned().collect(),
        source: "legacy",
        ..RunFacts::default()
    }
}

/// `aliecs.run`: START_ACTIVITY STARTED is the start (as Bookkeeping and QC take it);
/// STOP_ACTIVITY, GO_ERROR or TEARDOWN STARTED the end, and how.
fn run_event_facts(event: &events::Event, run: &events::EvRunEvent) -> RunFacts {
    let user = run
        .last_request_user
        .as_ref()
        .and_then(|u| non_empty(&u.name));
    let moment = || Some(Moment::new(event.timestamp, user.clone()));
    let mut facts = RunFacts {
        run_number: run.run_number,
        environment_id: non_empty(&run.environment_id),
        source: "events",
        ..RunFacts::default()
    };
    let started = run.transition_status == OpStatus::Started as i32;
    match run.transition.as_str() {
        "START_ACTIVITY" if started => facts.start = moment(),
        "STOP_ACTIVITY" if started => {
            facts.end = moment();
            facts.ending = Some(Ending::Normal);
        }
        "GO_ERROR" => {
            facts.end = moment();
            facts.ending = Some(Ending::Error);
        }
        "TEARDOWN" => {
            facts.end = moment();
            facts.ending = Some(Ending::Teardown);
        }
        _ => {}
    }
    facts
}

pub(crate) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

pub const DAY_MS: i64 = 86_400_000;

/// Milliseconds since the epoch as RFC 3339 with milliseconds (UTC); the epoch when the
/// year would not have four digits. Written by hand: every timeline document takes two,
/// and the `time` crate's formatter was a tenth of the ingest's time.
pub fn rfc3339_ms(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let (year, month, day) = civil_from_days(days);
    let (year, month, day, in_day) = if (0..=9999).contains(&year) {
        (year, month, day, in_day)
    } else {
        (1970, 1, 1, 0)
    };
    let mut out = [0u8; 24];
    let mut put = |at: usize, value: i64, width: usize| {
        let mut value = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, in_day / 3_600_000, 2);
    put(14, in_day / 60_000 % 60, 2);
    put(17, in_day / 1000 % 60, 2);
    put(20, in_day % 1000, 3);
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ] {
        out[at] = separator;
    }
    // ASCII digits and separators: always UTF-8.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Year, month, day of a day number (days since 1970-01-01), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::wire::*;

    fn facts_of(topic: &str, bytes: &[u8]) -> Vec<RunFacts> {
        facts(&decode(topic, bytes).unwrap())
    }

    /// The messages of one run, both generations: SOSOR, enter RUNNING, the active list,
    /// SOEOR (stopped by a user), leave RUNNING.
    fn one_run() -> Vec<RunFacts> {
        let run = 559_123;
        let entered = T0 + 2_000;
        [
            facts_of(
                "aliecs.run",
                &run_event(T0, run, "START_ACTIVITY", 1, "CONFIGURED", "anna"),
            ),
            facts_of(
                "aliecs.env_state.RUNNING",
                &notification(
                    &env_info(Some(run), "RUNNING", &["TPC", "ITS"], entered),
                    entered,
                ),
            ),
            facts_of(
                "aliecs.env_list.RUNNING",
                &cat(&[
                    len(1, &env_info(Some(run), "RUNNING", &["MCH"], entered)),
                    int(2, entered),
                ]),
            ),
            facts_of(
                "aliecs.run",
                &run_event(T0 + 60_000, run, "STOP_ACTIVITY", 1, "RUNNING", "ben"),
            ),
            facts_of(
                "aliecs.env_leave_state.RUNNING",
                &notification(
                    &env_info(Some(run), "RUNNING", &["TPC", "ITS"], entered),
                    T0 + 61_000,
                ),
            ),
        ]
        .concat()
    }

    fn fold(facts: &[RunFacts]) -> RunRecord {
        facts.iter().fold(RunRecord::default(), |r, f| r.merge(f))
    }

    #[test]
    fn a_run_record_holds_start_end_duration_and_who() {
        let record = fold(&one_run());
        assert_eq!(record.run_number, 559_123);
        assert_eq!(record.environment_id.as_deref(), Some(ENV));
        assert_eq!(record.run_type.as_deref(), Some("PHYSICS"));
        assert_eq!(
            record
                .detectors
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["ITS", "MCH", "TPC"]
        );
        let start = record.start.clone().unwrap();
        assert_eq!((start.ms, start.user.as_deref()), (T0 as i64, Some("anna")));
        assert_eq!(start.at, "2025-11-22T10:00:00.000Z");
        let end = record.end.clone().unwrap();
        assert_eq!(
            (end.ms, end.user.as_deref()),
            ((T0 + 60_000) as i64, Some("ben"))
        );
        assert_eq!(record.duration_ms, Some(60_000));
        assert_eq!(record.ended, Some(Ending::Normal));
        assert_eq!(record.status, "ended");
        assert_eq!(
            record
                .sources
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["events", "legacy"]
        );
    }

    #[test]
    fn any_order_and_any_repeats_give_the_same_record() {
        let facts = one_run();
        let expected = fold(&facts);
        // Every rotation and its reverse, each message twice.
        for shift in 0..facts.len() {
            let mut order = facts.clone();
            order.rotate_left(shift);
            let twice: Vec<RunFacts> = order.iter().flat_map(|f| [f.clone(), f.clone()]).collect();
            assert_eq!(fold(&twice), expected, "rotation {shift}");
            order.reverse();
            assert_eq!(fold(&order), expected, "reversed rotation {shift}");
        }
        // Merging what is merged already changes nothing.
        for f in &facts {
            assert_eq!(expected.merge(f), expected);
        }
    }

    #[test]
    fn legacy_messages_alone_give_the_duration_from_the_end_message() {
        let entered = T0 + 2_000;
        let eor = facts_of(
            "aliecs.env_leave_state.RUNNING",
            &notification(
                &env_info(Some(7), "RUNNING", &["ITS"], entered),
                entered + 90_000,
            ),
        );
        // End of run before (or without) its start.
        let record = fold(&eor);
        assert_eq!(record.start.as_ref().map(|m| m.ms), Some(entered as i64));
        assert_eq!(record.duration_ms, Some(90_000));
        assert_eq!(record.ended, Some(Ending::Unknown));
        let sor = facts_of(
            "aliecs.env_state.RUNNING",
            &notification(&env_info(Some(7), "RUNNING", &["ITS"], entered), entered),
        );
        assert_eq!(
            record.merge(&sor[0]),
            fold(&[sor[0].clone(), eor[0].clone()])
        );
        assert_eq!(record.merge(&sor[0]).duration_ms, Some(90_000));
    }

    #[test]
    fn errors_and_teardowns_say_how_the_run_ended() {
        let stop = facts_of(
            "aliecs.run",
            &run_event(T0, 9, "STOP_ACTIVITY", 1, "RUNNING", ""),
        );
        let error = facts_of(
            "aliecs.run",
            &run_event(T0 + 5, 9, "GO_ERROR", 1, "RUNNING", ""),
        );
        let teardown = facts_of(
            "aliecs.run",
            &run_event(T0 + 9, 9, "TEARDOWN", 1, "RUNNING", ""),
        );
        assert_eq!(fold(&teardown).ended, Some(Ending::Teardown));
        let all = fold(&[error.clone(), stop, teardown].concat());
        assert_eq!(all.ended, Some(Ending::Error));
        assert_eq!(all.end.unwrap().ms, T0 as i64, "the first sign of the end");
        // No run number, no record: environment-only messages.
        assert!(facts_of(
            "aliecs.env_state.CONFIGURED",
            &notification(&env_info(None, "CONFIGURED", &["ITS"], T0), T0)
        )
        .is_empty());
        assert!(facts_of("aliecs.env_list.RUNNING", &int(2, T0)).is_empty());
        // START_ACTIVITY DONE_OK (EOSOR) is not the start.
        let done = facts_of(
            "aliecs.run",
            &run_event(T0, 9, "START_ACTIVITY", 3, "RUNNING", ""),
        );
        assert_eq!(done[0].start, None);
    }

    #[test]
    fn timestamps_format_as_the_time_crate_does() {
        let by_time = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap()
                .format(&time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap()
        };
        // Across leap days, centuries, the epoch and both ends of four-digit years.
        let mut ms = -62_167_219_200_000i64; // 0000-01-01
        let step = 7_777_777_777i64 + 123; // ~90 days, odd milliseconds
        while ms < 253_402_300_799_999 {
            assert_eq!(rfc3339_ms(ms), by_time(ms), "{ms}");
            ms += step;
        }
        for ms in [
            0,
            -1,
            951_782_400_000,
            4_107_456_000_000,
            253_402_300_799_999,
        ] {
            assert_eq!(rfc3339_ms(ms), by_time(ms), "{ms}");
        }
        assert_eq!(rfc3339_ms(T0 as i64), "2025-11-22T10:00:00.000Z");
        assert_eq!(rfc3339_ms(i64::MAX), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(i64::MIN), "1970-01-01T00:00:00.000Z");
    }
}
