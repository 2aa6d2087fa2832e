//! The Lambda invocation's own facts, as the handlers use them.

use std::time::{Duration, Instant, SystemTime};

/// The invocation's deadline (epoch milliseconds from the runtime) as an `Instant`,
/// `margin` earlier: the time kept back for what must happen after the work.
pub fn deadline(deadline_ms: u64, margin: Duration) -> Instant {
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left.saturating_sub(margin)
}
