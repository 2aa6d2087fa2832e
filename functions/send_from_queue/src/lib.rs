//! send_from_queue: on a schedule (or a `{"action":"drain"}` invoke) replays the backlog to
//! the target with the shared drain, and reports what it did.

use std::time::Instant;

use serde_json::Value;
use spigot_common::buffer::WebhookBuffer;
use spigot_common::drain::{DrainOptions, DrainSummary, Drainer};
use spigot_common::jenkins::JenkinsTarget;
use spigot_common::state::Stage;
use spigot_common::target_routes::TargetRoutes;
use spigot_common::telemetry::Metrics;

pub struct Deps {
    pub stage: Stage,
    pub buffer: WebhookBuffer,
    pub target: JenkinsTarget,
    /// What may be replayed: the API's routes and our own functions' (end-of-run builds).
    pub routes: TargetRoutes,
    /// Replays in flight at once (`DRAIN_CONCURRENCY`); 1 keeps arrival order.
    pub concurrency: usize,
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
    tracing::info!(
        state = %summary.state,
        final_state = %summary.final_state,
        delivered = summary.delivered,
        poisoned = summary.poisoned,
        released = summary.released,
        remaining = summary.remaining,
        stopped = ?summary.stopped,
        detail = summary.detail.as_deref().unwrap_or(""),
        "drain finished"
    );
    let mut metrics = Metrics::new("Spigot")
        .dimension("Function", "send_from_queue")
        .count("Delivered", summary.delivered)
        .count("Poisoned", summary.poisoned)
        .count("Released", summary.released);
    if let Some(remaining) = summary.remaining {
        metrics = metrics.count("Remaining", remaining);
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
