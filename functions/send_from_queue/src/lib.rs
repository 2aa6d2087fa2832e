//! send_from_queue: on a schedule (or a `{"action":"drain"}` invoke) replays the backlog to
//! the target with the shared drain, and reports what it did.

use std::time::Instant;

use serde_json::Value;
use spigot_common::buffer::WebhookBuffer;
use spigot_common::drain::{DrainOptions, DrainSummary, Drainer, StopReason};
use spigot_common::jenkins::JenkinsTarget;
use spigot_common::state::Stage;
use spigot_common::target_routes::TargetRoutes;
use spigot_common::telemetry::{catalogue::send_from_queue as metric, Metrics};

pub struct Deps {
    pub stage: Stage,
    pub buffer: WebhookBuffer,
    pub target: JenkinsTarget,
    /// What may be replayed: the API's routes and our own functions' (end-of-run builds).
    pub routes: TargetRoutes,
    /// Replays in flight at once (`DRAIN_CONCURRENCY`); 1 keeps arrival order.
    pub concurrency: usize,
    /// Drains in a row of this instance that found the target down.
    pub down_streak: DownStreak,
}

/// Drains in a row that found the target down, and since when: the first few are
/// routine (a restart), after that an operator should look.
#[derive(Debug, Default)]
pub struct DownStreak(std::sync::Mutex<Option<(u32, Instant)>>);

/// Drains in a row that may find the target down before it is a warning (a minute
/// apart on the schedule: a Jenkins restart).
pub const DOWN_DRAINS_BEFORE_WARNING: u32 = 3;

impl DownStreak {
    /// Counts this drain in; `Some((drains in a row, since))` while the target is down.
    pub fn record(&self, down: bool) -> Option<(u32, Instant)> {
        let mut streak = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !down {
            *streak = None;
            return None;
        }
        let (count, since) = streak.get_or_insert((0, Instant::now()));
        *count += 1;
        Some((*count, *since))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unknown action {0:?}; the only action is \"drain\"")]
    UnknownAction(String),
}

/// Accepts an EventBridge schedule event, a Scheduler payload, or `{"action":"drain"}`.
pub fn check_event(event: &Value) -> Result<(), EventError> {
    match event.get("action") {
        None => Ok(()),
        Some(Value::String(action)) if action == "drain" => Ok(()),
        Some(other) => Err(EventError::UnknownAction(match other {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })),
    }
}

pub async fn handle_event(
    deps: &Deps,
    event: Value,
    deadline: Option<Instant>,
) -> Result<DrainSummary, EventError> {
    check_event(&event)?;
    let drainer = Drainer {
        stage: &deps.stage,
        buffer: &deps.buffer,
        target: &deps.target,
        routes: &deps.routes,
    };
    let options = DrainOptions {
        concurrency: deps.concurrency,
        deadline,
        ..DrainOptions::default()
    };
    let summary = drainer.drain(&options, &|_| {}).await;
    let down = matches!(
        summary.stopped,
        Some(StopReason::TargetDown | StopReason::TargetUnavailable)
    );
    let stopped = summary.stopped.map(StopReason::as_str);
    match deps.down_streak.record(down) {
        Some((drains, since)) if drains > DOWN_DRAINS_BEFORE_WARNING => tracing::warn!(
            state = %summary.state,
            remaining = summary.remaining,
            stopped,
            detail = summary.detail.as_deref(),
            drains_in_a_row = drains,
            down_for_secs = since.elapsed().as_secs(),
            "the target is still down: the backlog waits"
        ),
        _ => tracing::info!(
            state = %summary.state,
            final_state = %summary.final_state,
            delivered = summary.delivered,
            poisoned = summary.poisoned,
            released = summary.released,
            remaining = summary.remaining,
            stopped,
            detail = summary.detail.as_deref(),
            "drain finished"
        ),
    }
    let mut metrics = Metrics::new("send_from_queue")
        .put(metric::SPIGOT_STATE, summary.final_state.metric_value())
        .put(metric::DELIVERED, summary.delivered)
        .put(metric::POISONED, summary.poisoned)
        .put(metric::RELEASED, summary.released);
    if let Some(remaining) = summary.remaining {
        metrics = metrics.put(metric::REMAINING, remaining);
    }
    metrics.emit();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_schedules_and_drain_requests_only() {
        assert_eq!(
            check_event(
                &json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
            ),
            Ok(())
        );
        assert_eq!(check_event(&json!({"action": "drain"})), Ok(()));
        assert_eq!(check_event(&json!(null)), Ok(()));
        assert_eq!(
            check_event(&json!({"action": "purge"})),
            Err(EventError::UnknownAction("purge".into()))
        );
    }
}
