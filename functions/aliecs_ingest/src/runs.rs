//! Run records: one per run number, merged from every message that mentions the run.
//! A message gives [`RunFacts`]; [`RunRecord::absorb`] folds them in (a batch's into one
//! record per run, [`BatchRuns`]; that into the stored one, [`RunRecord::absorb_record`])
//! so that the record does not depend on the order or the number of times the messages
//! arrive: start and end are the earliest signals, detectors a union, how it ended the
//! most telling reason. Facts: `reference/aliecs-kafka.md` §3 (legacy SOR / EOR) and §4 (`aliecs.run`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decode::{AliecsMessage, StateChange};
use crate::legacy::{Detectors, EnvInfo, NewStateNotification};
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

/// A moment of a run, with who asked for it when known. Stored with its time in RFC 3339
/// too (`at`, for people and dashboards), which is written from `ms`, not kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Moment {
    /// Milliseconds since the epoch.
    pub ms: i64,
    #[serde(default)]
    pub user: Option<String>,
}

impl Moment {
    pub fn new(ms: i64, user: Option<String>) -> Moment {
        Moment { ms, user }
    }

    pub fn at(&self) -> Rfc3339 {
        Rfc3339::new(self.ms)
    }
}

impl Serialize for Moment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stored<'a> {
            ms: i64,
            at: Rfc3339,
            #[serde(skip_serializing_if = "Option::is_none")]
            user: Option<&'a str>,
        }
        Stored {
            ms: self.ms,
            at: self.at(),
            user: self.user.as_deref(),
        }
        .serialize(serializer)
    }
}

/// When a run started or ended, and who asked, as a message says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal<'a> {
    pub ms: i64,
    pub user: Option<&'a str>,
}

/// What one message says about a run, borrowed from the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts<'a> {
    pub run_number: u32,
    pub environment_id: Option<&'a str>,
    pub run_type: Option<&'a str>,
    pub detectors: Option<&'a Detectors<'a>>,
    pub start: Option<Signal<'a>>,
    pub end: Option<Signal<'a>>,
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
    /// Shared by the runs of a batch that name the same list (most runs of an
    /// environment do): a new run's detectors cost no allocation. Changed through
    /// `Arc::make_mut`.
    #[serde(default)]
    pub detectors: Arc<BTreeSet<String>>,
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
    pub status: Cow<'static, str>,
    #[serde(default)]
    pub sources: BTreeSet<Cow<'static, str>>,
    /// The end-of-run Jenkins build request went to the spigot queue.
    #[serde(default)]
    pub eor_build_queued: bool,
    /// An invocation claimed the end-of-run build (its conditional write won) and may
    /// send it until this time (epoch ms, its deadline). Past it, with the build still not
    /// queued, the claimer died between the claim and the send: another may claim again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eor_build_claimed_until: Option<u64>,
}

impl RunRecord {
    /// Folds `facts` in, in place: it allocates only for what is new. Call
    /// [`refresh`](Self::refresh) after the last.
    pub fn absorb(&mut self, facts: &RunFacts<'_>) {
        self.run_number = facts.run_number;
        keep_smaller(&mut self.environment_id, facts.environment_id);
        keep_smaller(&mut self.run_type, facts.run_type);
        for detector in facts.detectors.into_iter().flat_map(Detectors::iter) {
            add(&mut self.detectors, detector);
        }
        if let Some(start) = facts.start {
            keep_earliest(&mut self.start, start.ms, start.user);
        }
        if let Some(end) = facts.end {
            keep_earliest(&mut self.end, end.ms, end.user);
        }
        self.ended = self.ended.max(facts.ending);
        if !self.sources.contains(facts.source) {
            self.sources.insert(Cow::Borrowed(facts.source));
        }
    }

    /// Folds another record of the run in (the batch's into the stored one): the same
    /// rules as [`absorb`](Self::absorb), and then [`refresh`](Self::refresh).
    pub fn absorb_record(&mut self, other: &RunRecord) {
        // One run's records; 0 is a record with nothing in it yet.
        self.run_number = self.run_number.max(other.run_number);
        keep_smaller(&mut self.environment_id, other.environment_id.as_deref());
        keep_smaller(&mut self.run_type, other.run_type.as_deref());
        for detector in other.detectors.iter() {
            add(&mut self.detectors, detector);
        }
        for (mine, theirs) in [(&mut self.start, &other.start), (&mut self.end, &other.end)] {
            if let Some(moment) = theirs {
                keep_earliest(mine, moment.ms, moment.user.as_deref());
            }
        }
        self.ended = self.ended.max(other.ended);
        for source in &other.sources {
            if !self.sources.contains(source) {
                self.sources.insert(source.clone());
            }
        }
        self.eor_build_queued |= other.eor_build_queued;
        self.eor_build_claimed_until = if self.eor_build_queued {
            None
        } else {
            self.eor_build_claimed_until
                .max(other.eor_build_claimed_until)
        };
        self.refresh();
    }

    /// The duration and status, from the start and end.
    pub fn refresh(&mut self) {
        self.duration_ms = match (&self.start, &self.end) {
            (Some(start), Some(end)) => Some(end.ms.saturating_sub(start.ms).max(0)),
            _ => None,
        };
        let status = if self.end.is_some() {
            "ended"
        } else {
            "running"
        };
        if self.status != status {
            self.status = Cow::Borrowed(status);
        }
    }
}

/// The smaller of two values, a value rather than none: a choice that does not depend on
/// the order they come in.
fn keep_smaller(slot: &mut Option<String>, new: Option<&str>) {
    if let Some(new) = new {
        if slot.as_deref().is_none_or(|current| new < current) {
            *slot = Some(new.to_owned());
        }
    }
}

/// The earlier moment; on a tie the one with a user, then the smaller user: a total
/// order, so that folding commutes.
fn keep_earliest(slot: &mut Option<Moment>, ms: i64, user: Option<&str>) {
    let key = (ms, user.is_none(), user);
    if slot
        .as_ref()
        .is_none_or(|m| key < (m.ms, m.user.is_none(), m.user.as_deref()))
    {
        *slot = Some(Moment::new(ms, user.map(str::to_owned)));
    }
}

fn add(set: &mut Arc<BTreeSet<String>>, value: &str) {
    // Looked up first: a name already there costs no allocation (nor a copy of a shared set).
    if !set.contains(value) {
        Arc::make_mut(set).insert(value.to_owned());
    }
}

/// The run records of one batch, each message's facts folded in as it is read.
#[derive(Debug, Default)]
pub struct BatchRuns {
    /// Each run's record so far, and the wire bytes of the detectors folded in last.
    runs: Vec<(RunRecord, Vec<u8>)>,
    /// Run number → its place in `runs`.
    places: HashMap<u32, usize>,
    /// The run of the last facts: messages about one run tend to come together.
    last: Option<(u32, usize)>,
    /// The wire bytes of the detector list a new run took last, and its set: the next
    /// new run with the same bytes (mostly the environment's next) shares it.
    shared: (Vec<u8>, Arc<BTreeSet<String>>),
}

impl BatchRuns {
    pub fn absorb(&mut self, message: &AliecsMessage<'_>) {
        for mut facts in facts(message) {
            let run = facts.run_number;
            let place = match self.last {
                Some((last, place)) if last == run => place,
                _ => *self.places.entry(run).or_insert_with(|| {
                    self.runs.push(Default::default());
                    self.runs.len() - 1
                }),
            };
            self.last = Some((run, place));
            let (record, folded) = &mut self.runs[place];
            // A run's messages mostly repeat its detector list byte for byte, and runs
            // one after the other the same list.
            let mut new_list = None;
            if let Some(wire) = facts.detectors.and_then(Detectors::wire) {
                if wire == folded.as_slice() {
                    facts.detectors = None;
                } else {
                    folded.clear();
                    folded.extend_from_slice(wire);
                    if record.detectors.is_empty() {
                        if wire == self.shared.0.as_slice() {
                            record.detectors = Arc::clone(&self.shared.1);
                            facts.detectors = None;
                        } else {
                            new_list = Some(wire);
                        }
                    }
                }
            }
            record.absorb(&facts);
            // The set is this list's alone: the next run may share it.
            if let Some(wire) = new_list {
                self.shared.0.clear();
                self.shared.0.extend_from_slice(wire);
                self.shared.1 = Arc::clone(&record.detectors);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Every run's record, by run number.
    pub fn into_records(self) -> BTreeMap<u32, RunRecord> {
        self.runs
            .into_iter()
            .map(|(mut record, _)| {
                record.refresh();
                (record.run_number, record)
            })
            .collect()
    }
}

/// What `message` says about runs: none, one, or one per active run.
pub fn facts<'a, 'm>(message: &'m AliecsMessage<'a>) -> impl Iterator<Item = RunFacts<'m>> {
    let (one, list) = match message {
        AliecsMessage::State(change, notification) => (state_facts(*change, notification), &[][..]),
        // A snapshot: who runs what, no times.
        AliecsMessage::ActiveRuns(list) => (None, &list.active_runs[..]),
        AliecsMessage::Event(event) => match &event.payload {
            Some(Payload::RunEvent(run)) if run.run_number > 0 => {
                (Some(run_event_facts(event, run)), &[][..])
            }
            _ => (None, &[][..]),
        },
    };
    one.into_iter().chain(list.iter().filter_map(|env| {
        let run_number = env.run_number.filter(|n| *n > 0)?;
        Some(legacy_facts(env, run_number))
    }))
}

fn state_facts<'m>(
    change: StateChange,
    notification: &'m NewStateNotification<'_>,
) -> Option<RunFacts<'m>> {
    let env = notification.env_info.as_ref()?;
    let run_number = env.run_number.filter(|n| *n > 0)?;
    let mut facts = legacy_facts(env, run_number);
    let entered = (env.enter_state_timestamp > 0).then_some(env.enter_state_timestamp as i64);
    let sent = notification.timestamp as i64;
    let at = |ms| Some(Signal { ms, user: None });
    match (change, env.state) {
        // SOR: the time RUNNING was entered.
        (StateChange::Enter, "RUNNING") => facts.start = at(entered.unwrap_or(sent)),
        // EOR: sent on leaving RUNNING, which it still says; it carries when RUNNING
        // was entered too.
        (StateChange::Leave, "RUNNING") => {
            facts.start = entered.and_then(at);
            facts.end = at(sent);
            facts.ending = Some(Ending::Unknown);
        }
        // The start-of-run hooks: the run number is assigned.
        (StateChange::StartActivity, _) => facts.start = at(sent),
        _ => {}
    }
    Some(facts)
}

fn legacy_facts<'m>(env: &'m EnvInfo<'_>, run_number: u32) -> RunFacts<'m> {
    RunFacts {
        run_number,
        environment_id: some(env.environment_id),
        run_type: env.run_type.and_then(some),
        detectors: Some(&env.detectors),
        source: "legacy",
        ..RunFacts::default()
    }
}

/// `aliecs.run`: START_ACTIVITY STARTED is the start (as Bookkeeping and QC take it);
/// STOP_ACTIVITY, GO_ERROR or TEARDOWN STARTED the end, and how.
fn run_event_facts<'m>(event: &'m events::Event, run: &'m events::EvRunEvent) -> RunFacts<'m> {
    let user = run.last_request_user.as_ref().and_then(|u| some(&u.name));
    let moment = Some(Signal {
        ms: event.timestamp,
        user,
    });
    let mut facts = RunFacts {
        run_number: run.run_number,
        environment_id: some(&run.environment_id),
        source: "events",
        ..RunFacts::default()
    };
    let started = run.transition_status == OpStatus::Started as i32;
    match run.transition.as_str() {
        "START_ACTIVITY" if started => facts.start = moment,
        "STOP_ACTIVITY" if started => {
            facts.end = moment;
            facts.ending = Some(Ending::Normal);
        }
        "GO_ERROR" => {
            facts.end = moment;
            facts.ending = Some(Ending::Error);
        }
        "TEARDOWN" => {
            facts.end = moment;
            facts.ending = Some(Ending::Teardown);
        }
        _ => {}
    }
    facts
}

/// The text, when there is some.
pub(crate) fn some(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

pub const DAY_MS: i64 = 86_400_000;

/// Milliseconds since the epoch as RFC 3339 with milliseconds (UTC), on the stack; the
/// epoch when the year would not have four digits. Written by hand: every timeline
/// document takes one or two, and the `time` crate's formatter was a tenth of the
/// ingest's time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339([u8; 24]);

impl Default for Rfc3339 {
    fn default() -> Rfc3339 {
        Rfc3339::new(0)
    }
}

impl Rfc3339 {
    pub fn new(ms: i64) -> Rfc3339 {
        let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
        let (year, month, day) = civil_from_days(days);
        let (year, month, day, in_day) = if (0..=9999).contains(&year) {
            (year, month, day, in_day)
        } else {
            (1970, 1, 1, 0)
        };
        let mut out = *b"0000-00-00T00:00:00.000Z";
        // Small unsigned numbers now, written two digits at a time.
        let (year, month, day, in_day) = (year as u32, month as u32, day as u32, in_day as u32);
        let mut put = |at: usize, value: u32| {
            let pair = 2 * value as usize;
            out[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        };
        put(0, year / 100);
        put(2, year % 100);
        put(5, month);
        put(8, day);
        put(11, in_day / 3_600_000);
        put(14, in_day / 60_000 % 60);
        put(17, in_day / 1000 % 60);
        put(21, in_day % 100);
        out[20] = b'0' + (in_day % 1000 / 100) as u8;
        Rfc3339(out)
    }

    /// Digits and separators: text that needs no check and no escaping.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // ASCII digits and separators: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// "00" to "99", back to back.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

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

    /// Records' bytes, decoded; facts borrow from them.
    struct Messages(Vec<(&'static str, Vec<u8>)>);

    impl Messages {
        fn decoded(&self) -> Vec<AliecsMessage<'_>> {
            self.0
                .iter()
                .map(|(topic, bytes)| decode(topic, bytes).unwrap())
                .collect()
        }
    }

    fn facts_of<'m>(messages: &'m [AliecsMessage<'m>]) -> Vec<RunFacts<'m>> {
        messages.iter().flat_map(|m| facts(m)).collect()
    }

    /// The messages of one run, both generations: SOSOR, enter RUNNING, the active list,
    /// SOEOR (stopped by a user), leave RUNNING.
    fn one_run() -> Messages {
        let run = 559_123;
        let entered = T0 + 2_000;
        Messages(vec![
            (
                "aliecs.run",
                run_event(T0, run, "START_ACTIVITY", 1, "CONFIGURED", "anna"),
            ),
            (
                "aliecs.env_state.RUNNING",
                notification(
                    &env_info(Some(run), "RUNNING", &["TPC", "ITS"], entered),
                    entered,
                ),
            ),
            (
                "aliecs.env_list.RUNNING",
                cat(&[
                    len(1, &env_info(Some(run), "RUNNING", &["MCH"], entered)),
                    int(2, entered),
                ]),
            ),
            (
                "aliecs.run",
                run_event(T0 + 60_000, run, "STOP_ACTIVITY", 1, "RUNNING", "ben"),
            ),
            (
                "aliecs.env_leave_state.RUNNING",
                notification(
                    &env_info(Some(run), "RUNNING", &["TPC", "ITS"], entered),
                    T0 + 61_000,
                ),
            ),
        ])
    }

    fn fold(facts: &[RunFacts]) -> RunRecord {
        let mut record = RunRecord::default();
        for f in facts {
            record.absorb(f);
        }
        record.refresh();
        record
    }

    #[test]
    fn a_run_record_holds_start_end_duration_and_who() {
        let messages = one_run();
        let record = fold(&facts_of(&messages.decoded()));
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
        assert_eq!(start.at().as_str(), "2025-11-22T10:00:00.000Z");
        // Stored with its RFC 3339 time, read back without it.
        let stored = serde_json::to_value(&start).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"ms": T0, "at": "2025-11-22T10:00:00.000Z", "user": "anna"})
        );
        assert_eq!(serde_json::from_value::<Moment>(stored).unwrap(), start);
        let end = record.end.clone().unwrap();
        assert_eq!(
            (end.ms, end.user.as_deref()),
            ((T0 + 60_000) as i64, Some("ben"))
        );
        assert_eq!(record.duration_ms, Some(60_000));
        assert_eq!(record.ended, Some(Ending::Normal));
        assert_eq!(record.status, "ended");
        assert_eq!(
            record.sources.iter().map(|s| &**s).collect::<Vec<_>>(),
            ["events", "legacy"]
        );
    }

    #[test]
    fn any_order_and_any_repeats_give_the_same_record() {
        let messages = one_run();
        let decoded = messages.decoded();
        let facts = facts_of(&decoded);
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
        // Folding what is folded already changes nothing.
        for f in &facts {
            let mut again = expected.clone();
            again.absorb(f);
            again.refresh();
            assert_eq!(again, expected);
        }
        // Records of parts of the run folded into each other, either way round, give
        // the record of the whole: a batch's record into the stored one.
        for split in 0..=facts.len() {
            let (first, second) = (fold(&facts[..split]), fold(&facts[split..]));
            for (mut into, from) in [(first.clone(), &second), (second.clone(), &first)] {
                into.absorb_record(from);
                assert_eq!(into, expected, "split at {split}");
            }
        }
    }

    #[test]
    fn a_batch_folds_each_run_once_whatever_the_order() {
        let messages = one_run();
        let decoded = messages.decoded();
        let expected = fold(&facts_of(&decoded));
        let mut batch = BatchRuns::default();
        for message in decoded.iter().rev().chain(&decoded) {
            batch.absorb(message);
        }
        let other = Messages(vec![(
            "aliecs.env_state.RUNNING",
            notification(&env_info(Some(7), "RUNNING", &["ZDC"], T0), T0),
        )]);
        let other = other.decoded();
        batch.absorb(&other[0]);
        assert_eq!(batch.len(), 2);
        let records = batch.into_records();
        assert_eq!(records[&559_123], expected);
        assert_eq!(*records[&7].detectors, BTreeSet::from(["ZDC".to_owned()]));
        assert_eq!(records[&7].status, "running");
    }

    #[test]
    fn runs_that_share_a_detector_list_keep_their_own_detectors() {
        // Runs 1 to 4 name the same list; later messages add to some of them, run
        // after run, and the list a run took first comes back.
        let lists: [&[&str]; 4] = [&["ITS", "TPC"], &["ITS", "TPC", "MCH"], &["ZDC"], &[]];
        let plan = [
            (1, 0),
            (2, 0),
            (3, 0),
            (2, 1),
            (4, 0),
            (1, 2),
            (3, 0),
            (5, 3),
            (5, 0),
            (4, 1),
            (6, 1),
            (7, 1),
            (6, 0),
            (1, 0),
        ];
        let messages = Messages(
            plan.iter()
                .map(|&(run, list)| {
                    let env = env_info(Some(run), "RUNNING", lists[list], T0 + run);
                    ("aliecs.env_state.RUNNING", notification(&env, T0 + run))
                })
                .collect(),
        );
        let decoded = messages.decoded();
        let mut batch = BatchRuns::default();
        for message in &decoded {
            batch.absorb(message);
        }
        let records = batch.into_records();
        assert_eq!(records.len(), 7);
        let facts = facts_of(&decoded);
        for (run, record) in &records {
            let own: Vec<_> = facts
                .iter()
                .filter(|f| f.run_number == *run)
                .cloned()
                .collect();
            assert_eq!(*record, fold(&own), "run {run}");
        }
        let names = |run: u32| records[&run].detectors.iter().cloned().collect::<Vec<_>>();
        assert_eq!(names(1), ["ITS", "TPC", "ZDC"]);
        assert_eq!(names(2), ["ITS", "MCH", "TPC"]);
        assert_eq!(names(3), ["ITS", "TPC"]);
    }

    #[test]
    fn legacy_messages_alone_give_the_duration_from_the_end_message() {
        let entered = T0 + 2_000;
        let messages = Messages(vec![
            (
                "aliecs.env_leave_state.RUNNING",
                notification(
                    &env_info(Some(7), "RUNNING", &["ITS"], entered),
                    entered + 90_000,
                ),
            ),
            (
                "aliecs.env_state.RUNNING",
                notification(&env_info(Some(7), "RUNNING", &["ITS"], entered), entered),
            ),
        ]);
        let decoded = messages.decoded();
        let (eor, sor) = (facts_of(&decoded[..1]), facts_of(&decoded[1..]));
        // End of run before (or without) its start.
        let record = fold(&eor);
        assert_eq!(record.start.as_ref().map(|m| m.ms), Some(entered as i64));
        assert_eq!(record.duration_ms, Some(90_000));
        assert_eq!(record.ended, Some(Ending::Unknown));
        let both = fold(&[eor[0].clone(), sor[0].clone()]);
        assert_eq!(both, fold(&[sor[0].clone(), eor[0].clone()]));
        assert_eq!(both.duration_ms, Some(90_000));
        // Times from the far ends of the wire's range: a duration, no overflow.
        let mut far = RunRecord {
            start: Some(Moment::new(i64::MIN, None)),
            end: Some(Moment::new(i64::MAX, None)),
            ..RunRecord::default()
        };
        far.refresh();
        assert_eq!(far.duration_ms, Some(i64::MAX));
    }

    #[test]
    fn errors_and_teardowns_say_how_the_run_ended() {
        let messages = Messages(vec![
            (
                "aliecs.run",
                run_event(T0, 9, "STOP_ACTIVITY", 1, "RUNNING", ""),
            ),
            (
                "aliecs.run",
                run_event(T0 + 5, 9, "GO_ERROR", 1, "RUNNING", ""),
            ),
            (
                "aliecs.run",
                run_event(T0 + 9, 9, "TEARDOWN", 1, "RUNNING", ""),
            ),
            // No run number, no record: environment-only messages.
            (
                "aliecs.env_state.CONFIGURED",
                notification(&env_info(None, "CONFIGURED", &["ITS"], T0), T0),
            ),
            ("aliecs.env_list.RUNNING", int(2, T0)),
            // START_ACTIVITY DONE_OK (EOSOR) is not the start.
            (
                "aliecs.run",
                run_event(T0, 9, "START_ACTIVITY", 3, "RUNNING", ""),
            ),
        ]);
        let decoded = messages.decoded();
        let [stop, error, teardown, configured, empty_list, done]: [Vec<RunFacts>; 6] = decoded
            .iter()
            .map(|m| facts(m).collect())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        assert_eq!(fold(&teardown).ended, Some(Ending::Teardown));
        let all = fold(&[error, stop, teardown].concat());
        assert_eq!(all.ended, Some(Ending::Error));
        assert_eq!(all.end.unwrap().ms, T0 as i64, "the first sign of the end");
        assert!(configured.is_empty());
        assert!(empty_list.is_empty());
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
            assert_eq!(Rfc3339::new(ms).as_str(), by_time(ms), "{ms}");
            ms += step;
        }
        for ms in [
            0,
            -1,
            951_782_400_000,
            4_107_456_000_000,
            253_402_300_799_999,
        ] {
            assert_eq!(Rfc3339::new(ms).as_str(), by_time(ms), "{ms}");
        }
        assert_eq!(Rfc3339::new(T0 as i64).as_str(), "2025-11-22T10:00:00.000Z");
        assert_eq!(Rfc3339::new(i64::MAX).as_str(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Rfc3339::new(i64::MIN).as_str(), "1970-01-01T00:00:00.000Z");
    }
}
