//! Replaying the backlog to the target: the one drain used by send_from_queue and by
//! `toggle_spigot drain`.
//!
//! The drain checks that the target answers before it receives anything, replays the
//! envelopes byte for byte, deletes only what the target accepted, parks requests the
//! target calls wrong in the DLQ, and stops at the first sign of an outage with the
//! unprocessed messages made visible again, so an outage does not push good requests
//! towards the DLQ.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use crate::buffer::{BufferError, QueuedHook, WebhookBuffer};
use crate::jenkins::{Delivery, JenkinsTarget, OutgoingRequest};
use crate::state::{SpigotState, Stage};
use crate::target_routes::TargetRoutes;

/// SQS returns at most 10 messages per receive.
const BATCH_SIZE: usize = 10;
/// Kept free before the deadline for the receive itself, the deletes and the report.
const RECEIVE_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Replays in flight at once; 1 replays in arrival order.
    pub concurrency: usize,
    /// Receive only what can still be replayed before this instant; stop when not even
    /// one message can.
    pub deadline: Option<Instant>,
    /// Long-poll wait of a receive: an empty answer must mean an empty queue.
    pub receive_wait_secs: i32,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            concurrency: 1,
            deadline: None,
            receive_wait_secs: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The spigot is OFF: nothing is replayed.
    Off,
    /// The target did not answer the probe: nothing was received.
    TargetDown,
    /// The target answered a replay in a way that may be its state.
    TargetUnavailable,
    QueueEmpty,
    /// The invocation's time is nearly up.
    Deadline,
    /// The queue, the bucket or the stage failed.
    Error,
}

impl StopReason {
    /// The name in logs and reports (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Off => "off",
            StopReason::TargetDown => "target_down",
            StopReason::TargetUnavailable => "target_unavailable",
            StopReason::QueueEmpty => "queue_empty",
            StopReason::Deadline => "deadline",
            StopReason::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainSummary {
    /// The state when the drain started.
    pub state: SpigotState,
    /// The state when it ended (DRAINING becomes ON once the queue is empty).
    pub final_state: SpigotState,
    pub delivered: u64,
    pub poisoned: u64,
    /// Received but not replayed, made visible again.
    pub released: u64,
    /// Messages left in the queue afterwards, when it could be read.
    pub remaining: Option<u64>,
    pub stopped: Option<StopReason>,
    pub detail: Option<String>,
}

impl DrainSummary {
    fn new(state: SpigotState) -> Self {
        Self {
            state,
            final_state: state,
            delivered: 0,
            poisoned: 0,
            released: 0,
            remaining: None,
            stopped: None,
            detail: None,
        }
    }

    fn stop(&mut self, reason: StopReason, detail: Option<String>) {
        self.stopped = Some(reason);
        self.detail = detail;
    }
}

/// The explicit dependencies of a drain.
pub struct Drainer<'a> {
    pub stage: &'a Stage,
    pub buffer: &'a WebhookBuffer,
    pub target: &'a JenkinsTarget,
    /// What may still be replayed, and how.
    pub routes: &'a TargetRoutes,
}

enum Outcome {
    Delivered,
    Poison {
        reason: String,
        status: Option<u16>,
    },
    /// Not replayed: the drain stops and the message goes back to the queue.
    Stop {
        reason: StopReason,
        detail: String,
    },
    NotTried,
}

impl Drainer<'_> {
    /// Drains until the queue is empty, the deadline is near, the state turns OFF, or the
    /// target stops accepting. `progress` sees the running totals after every batch.
    pub async fn drain(
        &self,
        options: &DrainOptions,
        progress: &(dyn Fn(&DrainSummary) + Sync),
    ) -> DrainSummary {
        let state = match self.stage.state().await {
            Ok(state) => state,
            Err(err) => {
                let mut summary = DrainSummary::new(SpigotState::Off);
                summary.stop(StopReason::Error, Some(err.to_string()));
                return summary;
            }
        };
        let mut summary = DrainSummary::new(state);
        if state == SpigotState::Off {
            summary.stop(StopReason::Off, None);
            summary.remaining = self.buffer.depth().await.ok().map(|d| d.total());
            return summary;
        }
        if let Err(reason) = self.target.probe().await {
            summary.stop(StopReason::TargetDown, Some(reason));
            summary.remaining = self.buffer.depth().await.ok().map(|d| d.total());
            return summary;
        }

        let concurrency = options.concurrency.max(1);
        let forward_timeout = self.target.config().timeout;

        loop {
            // Worst case: every replay waits for the whole forward timeout. Near the
            // deadline take only as many messages as can still finish.
            let batch_size = match options.deadline {
                None => BATCH_SIZE,
                Some(deadline) => {
                    let left = deadline
                        .saturating_duration_since(Instant::now())
                        .saturating_sub(RECEIVE_MARGIN);
                    let rounds = (left.as_millis() / forward_timeout.as_millis().max(1)) as usize;
                    BATCH_SIZE.min(rounds * concurrency)
                }
            };
            if batch_size == 0 {
                summary.stop(StopReason::Deadline, None);
                break;
            }
            let rounds = batch_size.div_ceil(concurrency) as u32;
            // Hidden long enough that a message is never seen twice while it is replayed.
            let visibility_secs = ((forward_timeout * rounds).as_secs() + 35).min(43_200) as i32;
            let hooks = match self
                .buffer
                .receive(
                    batch_size as i32,
                    visibility_secs,
                    options.receive_wait_secs,
                )
                .await
            {
                Ok(hooks) => hooks,
                Err(err) => {
                    summary.stop(StopReason::Error, Some(err.to_string()));
                    break;
                }
            };
            // The state may have changed since the last look: an operator who turned the
            // spigot OFF while we waited for messages must not see them replayed.
            match self.stage.state().await {
                Ok(SpigotState::Off) => {
                    summary.final_state = SpigotState::Off;
                    self.give_back(&hooks, &mut summary).await;
                    summary.stop(StopReason::Off, Some("turned OFF during the drain".into()));
                    break;
                }
                Ok(now) => summary.final_state = now,
                Err(err) => {
                    // Not knowing the state, replay nothing. Given back, the batch has used
                    // one of its receives (the DLQ takes a message after 10): only a stage
                    // that stays unreadable for many drains could push a hook there.
                    self.give_back(&hooks, &mut summary).await;
                    summary.stop(StopReason::Error, Some(err.to_string()));
                    break;
                }
            }
            if hooks.is_empty() {
                summary.stop(StopReason::QueueEmpty, None);
                break;
            }
            if let Err((reason, detail)) =
                self.replay_batch(&hooks, concurrency, &mut summary).await
            {
                summary.stop(reason, Some(detail));
                break;
            }
            progress(&summary);
        }

        let depth = self.buffer.depth().await.ok();
        summary.remaining = depth.map(|d| d.total());
        if summary.stopped == Some(StopReason::QueueEmpty)
            && summary.final_state == SpigotState::Draining
            && depth.is_some_and(|d| d.total() == 0)
        {
            match self.stage.set_state(SpigotState::On).await {
                Ok(()) => summary.final_state = SpigotState::On,
                Err(err) => summary.detail = Some(format!("could not set ON: {err}")),
            }
        }
        progress(&summary);
        summary
    }

    /// Replays one batch. Accepted messages are deleted, poison goes to the DLQ, and
    /// everything not replayed is made visible again. `Err` says why the drain stops.
    async fn replay_batch(
        &self,
        hooks: &[QueuedHook],
        concurrency: usize,
        summary: &mut DrainSummary,
    ) -> Result<(), (StopReason, String)> {
        let first_stop: Mutex<Option<(StopReason, String)>> = Mutex::new(None);
        let outcomes: Vec<(&QueuedHook, Outcome)> = futures::stream::iter(hooks)
            .map(|hook| {
                let first_stop = &first_stop;
                async move {
                    // Nothing new starts once one replay said the target is not able.
                    if first_stop.lock().expect("lock").is_some() {
                        return (hook, Outcome::NotTried);
                    }
                    let outcome = self.replay(hook).await;
                    if let Outcome::Stop { reason, detail } = &outcome {
                        first_stop
                            .lock()
                            .expect("lock")
                            .get_or_insert_with(|| (*reason, detail.clone()));
                    }
                    (hook, outcome)
                }
            })
            .buffered(concurrency)
            .collect()
            .await;

        let delivered: Vec<&QueuedHook> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Delivered))
            .map(|(h, _)| *h)
            .collect();
        let mut release: Vec<&QueuedHook> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Stop { .. } | Outcome::NotTried))
            .map(|(h, _)| *h)
            .collect();
        let mut problem = first_stop.into_inner().expect("lock");

        if !delivered.is_empty() {
            match self.buffer.delete(&delivered).await {
                // Not deleted means delivered again later: at least once, never lost.
                Ok(deleted) => summary.delivered += deleted.len() as u64,
                Err(err) => {
                    problem.get_or_insert((StopReason::Error, err.to_string()));
                }
            }
        }
        for (hook, outcome) in &outcomes {
            if let Outcome::Poison { reason, status } = outcome {
                tracing::warn!(message_id = %hook.message_id, reason, status, "poison message to the DLQ");
                match self.buffer.dead_letter(hook, reason, *status).await {
                    Ok(()) => summary.poisoned += 1,
                    Err(err) => {
                        release.push(hook);
                        problem.get_or_insert((StopReason::Error, err.to_string()));
                    }
                }
            }
        }
        self.release(&release, summary).await;
        match problem {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Received messages not replayed: visible again at once.
    async fn give_back(&self, hooks: &[QueuedHook], summary: &mut DrainSummary) {
        let hooks: Vec<&QueuedHook> = hooks.iter().collect();
        self.release(&hooks, summary).await;
    }

    async fn release(&self, hooks: &[&QueuedHook], summary: &mut DrainSummary) {
        if hooks.is_empty() {
            return;
        }
        if let Err(err) = self.buffer.release(hooks).await {
            // They reappear when the visibility timeout ends instead.
            tracing::warn!(error = %err, "cannot release unprocessed messages");
        }
        summary.released += hooks.len() as u64;
    }

    async fn replay(&self, hook: &QueuedHook) -> Outcome {
        let envelope = match &hook.envelope {
            Ok(envelope) => envelope,
            Err(reason) => {
                return Outcome::Poison {
                    reason: format!("unreadable envelope: {reason}"),
                    status: None,
                }
            }
        };
        // Only where a route takes it now: a route removed since it was queued, or a
        // message no route ever took, goes to the DLQ with the reason.
        let route = match self.routes.for_replay(&envelope.method, &envelope.path) {
            Ok(route) => route,
            Err(err) => {
                return Outcome::Poison {
                    reason: format!("no configured route takes it now: {err}"),
                    status: None,
                }
            }
        };
        let body = match self.buffer.load_body(envelope).await {
            Ok(body) => body,
            Err(
                err @ (BufferError::PayloadRead { missing: true, .. }
                | BufferError::PayloadCorrupt { .. }
                | BufferError::Envelope(_)),
            ) => {
                return Outcome::Poison {
                    reason: err.to_string(),
                    status: None,
                }
            }
            Err(err) => {
                return Outcome::Stop {
                    reason: StopReason::Error,
                    detail: err.to_string(),
                }
            }
        };
        let query = route.filter_query(&envelope.query);
        let request = OutgoingRequest {
            method: &envelope.method,
            path: &envelope.path,
            query: &query,
            headers: &envelope.headers,
            body,
            with_credentials: route.credentials,
        };
        match self.target.forward(&request).await {
            Delivery::Accepted { .. } => Outcome::Delivered,
            Delivery::Rejected { status, body } => Outcome::Poison {
                reason: format!("target refused the request with {status}: {body}"),
                status: Some(status),
            },
            Delivery::Unavailable { reason, .. } => Outcome::Stop {
                reason: StopReason::TargetUnavailable,
                detail: reason,
            },
        }
    }
}
