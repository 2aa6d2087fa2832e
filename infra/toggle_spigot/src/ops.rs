//! What the commands do, as plain functions over explicit dependencies. Nothing here
//! prints: the results are values that [`crate::report`] turns into tables or JSON.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use spigot_common::buffer::{
    is_fifo, QueueDepth, QueuedHook, WebhookBuffer, REASON_ATTRIBUTE, STATUS_ATTRIBUTE,
};
use spigot_common::drain::{DrainSummary, StopReason};
use spigot_common::state::{SpigotState, Stage};
use time::OffsetDateTime;

use crate::age::{AgeSource, OldestAge};

/// How long listed DLQ messages stay hidden: long enough that a listing does not see the
/// first ones again, short enough that a crash before the release costs little.
pub const LIST_VISIBILITY_SECS: i32 = 30;
/// A listing stops before the first messages it hid become visible again.
const LIST_TIME_BUDGET: Duration = Duration::from_secs(LIST_VISIBILITY_SECS as u64 - 5);
/// How long a DLQ message being moved stays hidden (one send and one delete).
pub const REDRIVE_VISIBILITY_SECS: i32 = 60;
/// A short poll of a standard queue may come back empty while messages exist: look again
/// this many times when the depth says there are some.
const EMPTY_RECEIVE_RETRIES: u32 = 3;

/// The spigot's switch and its buffer.
#[derive(Clone)]
pub struct Spigot {
    pub stage: Stage,
    pub buffer: WebhookBuffer,
}

/// The `spigot_state` variable as read, and what the functions make of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateView {
    /// The state the functions act on (a missing or unknown value reads as OFF).
    pub state: SpigotState,
    /// The raw variable; `None` when unset.
    pub variable: Option<String>,
    /// Set when the variable is missing or unknown.
    pub problem: Option<String>,
}

impl StateView {
    pub fn from_variable(variable: Option<String>) -> Self {
        let (state, problem) = match SpigotState::from_variable(variable.as_deref()) {
            Ok(state) => (state, None),
            Err(problem) => (SpigotState::Off, Some(problem)),
        };
        Self {
            state,
            variable,
            problem,
        }
    }

    /// Whether the variable already holds exactly `state`.
    fn is(&self, state: SpigotState) -> bool {
        self.variable.as_deref() == Some(state.as_str())
    }
}

pub async fn read_state(stage: &Stage) -> anyhow::Result<StateView> {
    Ok(StateView::from_variable(stage.variable().await?))
}

/// What `on` / `off` did.
#[derive(Debug, Clone, Serialize)]
pub struct Toggle {
    pub rest_api_id: String,
    pub stage: String,
    pub previous: StateView,
    pub state: SpigotState,
    /// False when the variable already held the state.
    pub changed: bool,
    /// The queue depth `on` decided on.
    pub backlog: Option<Depth>,
}

/// The state `on` sets: DRAINING while anything is queued (visible, in flight or
/// delayed), so that new webhooks queue behind the backlog; ON when nothing is.
pub fn on_state(backlog: QueueDepth) -> SpigotState {
    if backlog.total() > 0 {
        SpigotState::Draining
    } else {
        SpigotState::On
    }
}

async fn set(stage: &Stage, state: SpigotState, backlog: Option<Depth>) -> anyhow::Result<Toggle> {
    let previous = read_state(stage).await?;
    let changed = !previous.is(state);
    if changed {
        stage.set_state(state).await?;
    }
    Ok(Toggle {
        rest_api_id: stage.config().rest_api_id.clone(),
        stage: stage.config().stage_name.clone(),
        previous,
        state,
        changed,
        backlog,
    })
}

/// After a deploy: sets `state` only when the stage has no `spigot_state` (a first deploy,
/// or a deploy that removed it); a state already there is kept. `make deploy` passes
/// the state read before the deploy, so a deploy during maintenance never turns the
/// spigot ON.
pub async fn restore(stage: &Stage, state: SpigotState) -> anyhow::Result<Toggle> {
    let previous = read_state(stage).await?;
    if previous.variable.is_none() {
        return set(stage, state, None).await;
    }
    Ok(Toggle {
        rest_api_id: stage.config().rest_api_id.clone(),
        stage: stage.config().stage_name.clone(),
        state: previous.state,
        previous,
        changed: false,
        backlog: None,
    })
}

pub async fn turn_off(stage: &Stage) -> anyhow::Result<Toggle> {
    set(stage, SpigotState::Off, None).await
}

pub async fn turn_on(spigot: &Spigot) -> anyhow::Result<Toggle> {
    let backlog = spigot
        .buffer
        .depth()
        .await
        .context("reading the queue depth to decide between ON and DRAINING")?;
    set(&spigot.stage, on_state(backlog), Some(backlog.into())).await
}

/// How a wait for ON ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    On,
    /// Someone set OFF (or an unknown value) while we waited.
    NotDraining(StateView),
    TimedOut {
        depth: Option<QueueDepth>,
    },
}

/// Polls the stage until send_from_queue, having emptied the queue, sets ON. `tick` sees
/// the state and depth at every look.
pub async fn wait_until_on(
    spigot: &Spigot,
    timeout: Option<Duration>,
    interval: Duration,
    tick: &dyn Fn(&StateView, Option<QueueDepth>),
) -> anyhow::Result<WaitEnd> {
    let started = Instant::now();
    loop {
        let view = read_state(&spigot.stage).await?;
        // The depth is for the operator's eyes only: a failed read must not end the wait.
        let depth = spigot.buffer.depth().await.ok();
        tick(&view, depth);
        match view.state {
            SpigotState::On => return Ok(WaitEnd::On),
            SpigotState::Draining => {}
            _ => return Ok(WaitEnd::NotDraining(view)),
        }
        if timeout.is_some_and(|t| started.elapsed() + interval > t) {
            return Ok(WaitEnd::TimedOut { depth });
        }
        tokio::time::sleep(interval).await;
    }
}

/// A queue depth with its total, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub total: u64,
}

impl From<QueueDepth> for Depth {
    fn from(d: QueueDepth) -> Self {
        Self {
            visible: d.visible,
            in_flight: d.in_flight,
            delayed: d.delayed,
            total: d.total(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub url: String,
    #[serde(flatten)]
    pub depth: Depth,
}

impl QueueView {
    fn new(url: &str, depth: QueueDepth) -> Self {
        Self {
            url: url.to_string(),
            depth: depth.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub rest_api_id: String,
    pub stage: String,
    #[serde(flatten)]
    pub state: StateView,
    pub queue: QueueView,
    /// `None` when no DLQ is configured.
    pub dlq: Option<QueueView>,
    pub oldest_message_age_secs: Option<u64>,
    pub oldest_message_age_note: String,
}

pub async fn status(spigot: &Spigot, ages: &AgeSource) -> anyhow::Result<Status> {
    let state = read_state(&spigot.stage).await?;
    let config = spigot.buffer.config();
    let depth = spigot.buffer.depth().await?;
    let dlq = match &config.dlq_url {
        Some(url) => Some(QueueView::new(url, spigot.buffer.dlq_depth().await?)),
        None => None,
    };
    let age = if depth.total() == 0 {
        OldestAge {
            secs: None,
            note: "the queue is empty".into(),
        }
    } else {
        ages.oldest_age(&config.queue_url).await
    };
    Ok(Status {
        rest_api_id: spigot.stage.config().rest_api_id.clone(),
        stage: spigot.stage.config().stage_name.clone(),
        state,
        queue: QueueView::new(&config.queue_url, depth),
        dlq,
        oldest_message_age_secs: age.secs,
        oldest_message_age_note: age.note,
    })
}

/// One DLQ message as `redrive --dry-run` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    /// `X-GitHub-Event` of the request.
    pub event: Option<String>,
    /// `X-GitHub-Delivery` of the request.
    pub delivery: Option<String>,
    /// Why the drain parked it (the `spigot_reason` attribute).
    pub reason: Option<String>,
    /// The target's answer, when there was one (the `spigot_status` attribute).
    pub status: Option<String>,
    pub received_at: Option<String>,
    pub age_secs: Option<u64>,
    pub receive_count: u32,
    /// Set when the message is not a readable envelope.
    pub problem: Option<String>,
}

pub fn describe_dead_letter(hook: &QueuedHook, now: OffsetDateTime) -> DeadLetter {
    let envelope = hook.envelope.as_ref().ok();
    let received_at = envelope.map(|e| e.received_at.clone());
    let age_secs = received_at.as_deref().and_then(|at| {
        let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
        u64::try_from((now - at).whole_seconds()).ok()
    });
    DeadLetter {
        message_id: hook.message_id.clone(),
        event: envelope
            .and_then(|e| e.header("x-github-event"))
            .map(str::to_string),
        delivery: envelope
            .and_then(|e| e.header("x-github-delivery"))
            .map(str::to_string),
        reason: hook.attributes.get(REASON_ATTRIBUTE).cloned(),
        status: hook.attributes.get(STATUS_ATTRIBUTE).cloned(),
        received_at,
        age_secs,
        receive_count: hook.receive_count,
        problem: hook.envelope.as_ref().err().cloned(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub dlq_url: String,
    /// The DLQ's depth when the listing started.
    pub dlq_depth: Depth,
    pub messages: Vec<DeadLetter>,
    /// Why fewer messages were listed than the DLQ holds, if so.
    pub note: Option<String>,
}

/// Lists DLQ messages without moving them: receives them hidden for a short while, then
/// makes them all visible again (also when the listing fails half-way).
pub async fn list_dead_letters(
    buffer: &WebhookBuffer,
    max: Option<u64>,
) -> anyhow::Result<Listing> {
    let dlq_url = buffer
        .config()
        .dlq_url
        .clone()
        .context("redrive needs the DLQ URL")?;
    let dlq_depth = Depth::from(buffer.dlq_depth().await?);
    let limit = max.unwrap_or(u64::MAX);
    let started = Instant::now();
    let mut held: Vec<QueuedHook> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out_of_time = false;
    let received: anyhow::Result<()> = async {
        while (held.len() as u64) < limit {
            if started.elapsed() > LIST_TIME_BUDGET {
                out_of_time = true;
                break;
            }
            let want = (limit - held.len() as u64).min(10) as i32;
            let batch = buffer
                .receive_dead_letters(want, LIST_VISIBILITY_SECS)
                .await?;
            let mut fresh = 0;
            for hook in batch {
                match index.get(&hook.message_id) {
                    // Seen before and visible again: keep the newest receipt handle.
                    Some(&i) => held[i] = hook,
                    None => {
                        index.insert(hook.message_id.clone(), held.len());
                        held.push(hook);
                        fresh += 1;
                    }
                }
            }
            if fresh == 0 {
                break;
            }
        }
        Ok(())
    }
    .await;
    let refs: Vec<&QueuedHook> = held.iter().collect();
    let released = buffer.release_dead_letters(&refs).await;
    received?;
    released.context(
        "making the listed DLQ messages visible again (they reappear on their own within 30 s)",
    )?;

    let now = OffsetDateTime::now_utc();
    let messages: Vec<DeadLetter> = held.iter().map(|h| describe_dead_letter(h, now)).collect();
    let listed = messages.len() as u64;
    let note = if out_of_time {
        Some(format!(
            "stopped after {listed} messages so that none is listed twice; use --max to list fewer"
        ))
    } else if listed < limit && listed < dlq_depth.total {
        Some(if is_fifo(&dlq_url) {
            format!(
                "listed {listed} of {}: a FIFO queue holds back the rest of a message group while \
                 part of it is in flight, so only the head of the DLQ can be listed without moving it",
                dlq_depth.total
            )
        } else {
            format!(
                "listed {listed} of {}: the others are in flight or were not sampled by SQS",
                dlq_depth.total
            )
        })
    } else {
        None
    };
    Ok(Listing {
        dlq_url,
        dlq_depth,
        messages,
        note,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct RedriveSummary {
    pub dlq_url: String,
    pub queue_url: String,
    /// The DLQ's depth when the redrive started.
    pub dlq_before: Depth,
    pub moved: u64,
    /// The DLQ's depth afterwards, when it could be read.
    pub dlq_after: Option<Depth>,
    /// Why the redrive stopped early.
    pub error: Option<String>,
}

/// How many messages a redrive moves: the ones in the DLQ when it starts (at most
/// `max`), so that it ends even while a drain parks messages again.
pub fn redrive_limit(dlq_before: QueueDepth, max: Option<u64>) -> u64 {
    max.map_or(dlq_before.total(), |m| m.min(dlq_before.total()))
}

/// Moves DLQ messages back to the queue, oldest first: receive, send to the queue,
/// delete from the DLQ. `progress` sees the number moved so far.
pub async fn redrive(
    buffer: &WebhookBuffer,
    max: Option<u64>,
    progress: &dyn Fn(u64),
) -> anyhow::Result<RedriveSummary> {
    let dlq_url = buffer
        .config()
        .dlq_url
        .clone()
        .context("redrive needs the DLQ URL")?;
    let dlq_before = buffer.dlq_depth().await?;
    let limit = redrive_limit(dlq_before, max);
    let mut summary = RedriveSummary {
        dlq_url,
        queue_url: buffer.config().queue_url.clone(),
        dlq_before: dlq_before.into(),
        moved: 0,
        dlq_after: None,
        error: None,
    };
    let mut empty_receives = 0;
    'receive: while summary.moved < limit {
        let want = (limit - summary.moved).min(10) as i32;
        let batch = match buffer
            .receive_dead_letters(want, REDRIVE_VISIBILITY_SECS)
            .await
        {
            Ok(batch) => batch,
            Err(err) => {
                summary.error = Some(err.to_string());
                break;
            }
        };
        if batch.is_empty() {
            empty_receives += 1;
            let visible = buffer.dlq_depth().await.map(|d| d.visible).unwrap_or(0);
            if visible == 0 || empty_receives > EMPTY_RECEIVE_RETRIES {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        empty_receives = 0;
        for (i, hook) in batch.iter().enumerate() {
            if let Err(err) = buffer.redrive(hook).await {
                // This one is left to its visibility timeout (it may have been sent before
                // the delete failed); the rest of the batch goes back at once.
                let rest: Vec<&QueuedHook> = batch[i + 1..].iter().collect();
                if let Err(release) = buffer.release_dead_letters(&rest).await {
                    tracing::warn!(error = %release, "cannot release the unmoved DLQ messages");
                }
                summary.error = Some(format!("message {}: {err}", hook.message_id));
                break 'receive;
            }
            summary.moved += 1;
            progress(summary.moved);
        }
    }
    summary.dlq_after = buffer.dlq_depth().await.ok().map(Depth::from);
    Ok(summary)
}

/// Whether a drain ended well: `Err` says why it stopped early.
pub fn drain_verdict(summary: &DrainSummary) -> Result<(), String> {
    let detail = summary.detail.as_deref().unwrap_or("no detail");
    match summary.stopped {
        Some(StopReason::QueueEmpty) | Some(StopReason::Off) => Ok(()),
        Some(StopReason::TargetDown) => Err(format!(
            "the target did not answer the probe ({detail}); nothing was received"
        )),
        Some(StopReason::TargetUnavailable) => Err(format!(
            "the target stopped accepting ({detail}); the unprocessed messages are back in the queue"
        )),
        Some(StopReason::Error) => Err(format!("the drain failed: {detail}")),
        Some(StopReason::Deadline) => Err("the drain ran out of time".into()),
        None => Err("the drain ended without saying why".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spigot_common::envelope::Envelope;

    #[test]
    fn on_drains_first_when_anything_is_queued() {
        let depth = |visible, in_flight, delayed| QueueDepth {
            visible,
            in_flight,
            delayed,
        };
        assert_eq!(on_state(depth(0, 0, 0)), SpigotState::On);
        assert_eq!(on_state(depth(3, 0, 0)), SpigotState::Draining);
        assert_eq!(on_state(depth(0, 1, 0)), SpigotState::Draining);
        assert_eq!(on_state(depth(0, 0, 2)), SpigotState::Draining);
    }

    #[test]
    fn an_unknown_variable_is_flagged_and_read_as_off() {
        let view = StateView::from_variable(Some("OPEN".into()));
        assert_eq!(view.state, SpigotState::Off);
        assert!(view.problem.as_deref().unwrap().contains("OPEN"));
        assert!(
            !view.is(SpigotState::Off),
            "OPEN must be overwritten by off"
        );
        let view = StateView::from_variable(Some("DRAINING".into()));
        assert_eq!((view.state, view.problem), (SpigotState::Draining, None));
        assert!(StateView::from_variable(None).problem.is_some());
    }

    #[test]
    fn a_dead_letter_shows_event_delivery_reason_and_age() {
        let mut envelope = Envelope::new(
            "POST",
            "/github-webhook/",
            vec![],
            vec![
                ("x-github-event".into(), "push".into()),
                ("X-GitHub-Delivery".into(), "d-1".into()),
            ],
            b"{}",
        );
        envelope.received_at = "2026-01-01T10:00:00Z".into();
        let hook = QueuedHook {
            message_id: "m-1".into(),
            receipt_handle: "r".into(),
            raw: envelope.to_message(),
            envelope: Ok(envelope),
            receive_count: 2,
            attributes: HashMap::from([
                (
                    REASON_ATTRIBUTE.to_string(),
                    "target refused the request with 400".to_string(),
                ),
                (STATUS_ATTRIBUTE.to_string(), "400".to_string()),
            ]),
        };
        let now = OffsetDateTime::parse(
            "2026-01-01T12:30:05Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let letter = describe_dead_letter(&hook, now);
        assert_eq!(letter.event.as_deref(), Some("push"));
        assert_eq!(letter.delivery.as_deref(), Some("d-1"));
        assert_eq!(
            letter.reason.as_deref(),
            Some("target refused the request with 400")
        );
        assert_eq!(letter.status.as_deref(), Some("400"));
        assert_eq!(letter.age_secs, Some(2 * 3600 + 30 * 60 + 5));
        assert_eq!(letter.problem, None);

        let unreadable = QueuedHook {
            envelope: Err("not an envelope".into()),
            attributes: HashMap::new(),
            ..hook
        };
        let letter = describe_dead_letter(&unreadable, now);
        assert_eq!((letter.event, letter.age_secs), (None, None));
        assert_eq!(letter.problem.as_deref(), Some("not an envelope"));
    }

    #[test]
    fn redrive_moves_what_was_there_at_the_start() {
        let before = QueueDepth {
            visible: 7,
            in_flight: 1,
            delayed: 0,
        };
        assert_eq!(redrive_limit(before, None), 8);
        assert_eq!(redrive_limit(before, Some(3)), 3);
        assert_eq!(redrive_limit(before, Some(30)), 8);
    }

    #[test]
    fn only_an_empty_queue_or_off_is_a_good_drain() {
        let summary = |stopped| DrainSummary {
            state: SpigotState::Draining,
            final_state: SpigotState::Draining,
            delivered: 0,
            poisoned: 0,
            released: 0,
            remaining: None,
            stopped,
            detail: Some("target unreachable".into()),
        };
        assert!(drain_verdict(&summary(Some(StopReason::QueueEmpty))).is_ok());
        assert!(drain_verdict(&summary(Some(StopReason::Off))).is_ok());
        for bad in [
            Some(StopReason::TargetDown),
            Some(StopReason::TargetUnavailable),
            Some(StopReason::Error),
            Some(StopReason::Deadline),
            None,
        ] {
            assert!(drain_verdict(&summary(bad)).is_err(), "{bad:?}");
        }
        let why = drain_verdict(&summary(Some(StopReason::TargetDown))).unwrap_err();
        assert!(why.contains("target unreachable"), "{why}");
    }
}
