//! `cargo bench -p spigot-tests --bench spigot`: the spigot's real handlers in-process,
//! on the local stack (moto, sandbox Jenkins):
//! - process_webhooks latency for a 25 KiB push, ON (forwarded to the sandbox Jenkins)
//!   and OFF (queued on the emulator);
//! - send_from_queue drain throughput for 1,000 queued hooks, ordered (concurrency 1)
//!   and with concurrency 8.
//!
//! Prints a table; a benchmark that goes wrong is a row saying so, never a failed build.

// Each benchmark uses a part of the shared report helpers.
#[allow(dead_code)]
mod report;

use std::ops::Range;
use std::time::{Duration, Instant};

use report::{millis, percentile, print_table, Row};
use spigot_common::drain::StopReason;
use spigot_common::state::{SpigotState, STATE_VARIABLE};
use spigot_tests::{delivery_id, push_payload, Options, Spigot, Webhook};

const PAYLOAD_BYTES: usize = 25 * 1024;
/// Requests before the timed ones: connection pools, the first SDK calls, moto's
/// lazily created handlers.
const WARMUP_REQUESTS: usize = 20;
const TIMED_REQUESTS: usize = 1000;
const DRAIN_HOOKS: usize = 1000;
/// A drain stops at its invocation deadline (120 s); the next scheduled one goes on.
const MAX_DRAIN_INVOCATIONS: usize = 10;

#[tokio::main]
async fn main() {
    let mut spigot = Spigot::start(Options::default()).await;
    let mut hooks = HookNumbers::default();
    let mut rows = Vec::new();

    // Progress goes to stderr: stdout is the table.
    eprintln!("spigot bench: process_webhooks latency, ON");
    // ON: every webhook is forwarded to the sandbox Jenkins at once.
    spigot.set_state(SpigotState::On).await;
    send_webhooks(&spigot, SpigotState::On, hooks.take(WARMUP_REQUESTS)).await;
    let on = send_webhooks(&spigot, SpigotState::On, hooks.take(TIMED_REQUESTS)).await;
    rows.push(latency_row(
        "ON, forwarded to the sandbox Jenkins",
        &on,
        200,
    ));
    spigot.jenkins.clear();

    eprintln!("spigot bench: process_webhooks latency, OFF");
    // OFF: every webhook is queued. The warm-up hooks are drained right away, which
    // also warms the drain; the timed ones are the backlog of the first drain row.
    spigot.set_state(SpigotState::Off).await;
    send_webhooks(&spigot, SpigotState::Off, hooks.take(WARMUP_REQUESTS)).await;
    spigot.set_state(SpigotState::Draining).await;
    drain_all(&spigot).await;
    spigot.set_state(SpigotState::Off).await;
    let off = send_webhooks(&spigot, SpigotState::Off, hooks.take(TIMED_REQUESTS)).await;
    // moto's FIFO SendMessage slows down as the queue grows (about 25 ms when empty,
    // 150 ms at 1,000 messages): the row says over which depths it was measured.
    rows.push(latency_row(
        &format!("OFF, queued on the AWS emulator (queue depth 0-{TIMED_REQUESTS})"),
        &off,
        202,
    ));
    spigot.jenkins.clear();

    eprintln!("spigot bench: drain, concurrency 1");
    rows.push(drain_row(&spigot, 1).await);

    eprintln!("spigot bench: drain, concurrency 8");
    spigot.set_state(SpigotState::Off).await;
    send_webhooks(&spigot, SpigotState::Off, hooks.take(DRAIN_HOOKS)).await;
    spigot.sender.concurrency = 8;
    rows.push(drain_row(&spigot, 8).await);

    print_table(&rows);
}

/// Hands out fresh webhook numbers: a repeated delivery id would be dropped as a
/// duplicate.
#[derive(Default)]
struct HookNumbers {
    next: usize,
}

impl HookNumbers {
    fn take(&mut self, count: usize) -> Range<usize> {
        let numbers = self.next..self.next + count;
        self.next = numbers.end;
        numbers
    }
}

/// Handler latencies and every answer's status.
struct Sent {
    latencies: Vec<Duration>,
    statuses: Vec<i64>,
}

/// Sends one GitHub push per number through process_webhooks, one at a time, with the
/// spigot `state` in the event as API Gateway puts it there. Only the handler call is
/// timed: building and signing the event is the sender's work.
async fn send_webhooks(spigot: &Spigot, state: SpigotState, numbers: Range<usize>) -> Sent {
    let mut sent = Sent {
        latencies: Vec::with_capacity(numbers.len()),
        statuses: Vec::with_capacity(numbers.len()),
    };
    for n in numbers {
        let mut request =
            Webhook::github("push", &delivery_id(n), &push_payload(n, PAYLOAD_BYTES)).build();
        request
            .stage_variables
            .insert(STATE_VARIABLE.into(), state.to_string());
        let started = Instant::now();
        let response = process_webhooks::handle_request(&spigot.webhooks, request).await;
        sent.latencies.push(started.elapsed());
        sent.statuses.push(response.status_code);
    }
    sent
}

fn latency_row(case: &str, sent: &Sent, expected_status: i64) -> Row {
    let benchmark = format!("process_webhooks latency, 25 KiB push, {case}");
    let unexpected: Vec<i64> = sent
        .statuses
        .iter()
        .copied()
        .filter(|&status| status != expected_status)
        .collect();
    if let Some(first) = unexpected.first() {
        let reason = format!(
            "{} of {} answered other than {expected_status} (first: {first})",
            unexpected.len(),
            sent.statuses.len()
        );
        return Row::failed(benchmark, report::NO_TARGET, &reason);
    }
    Row::info(
        benchmark,
        format!(
            "p50 {}, p99 {} (n={})",
            millis(percentile(&sent.latencies, 50.0)),
            millis(percentile(&sent.latencies, 99.0)),
            sent.latencies.len()
        ),
    )
}

/// What the scheduled drains did until the queue was empty.
struct Drained {
    delivered: u64,
    elapsed: Duration,
    stopped: Option<StopReason>,
    detail: Option<String>,
}

/// Runs scheduled send_from_queue invocations until one empties the queue (or stops
/// for another reason than its deadline).
async fn drain_all(spigot: &Spigot) -> Drained {
    let started = Instant::now();
    let mut drained = Drained {
        delivered: 0,
        elapsed: Duration::ZERO,
        stopped: None,
        detail: None,
    };
    for _ in 0..MAX_DRAIN_INVOCATIONS {
        let summary = spigot.drain().await;
        drained.delivered += summary.delivered;
        drained.stopped = summary.stopped;
        drained.detail = summary.detail;
        if drained.stopped != Some(StopReason::Deadline) {
            break;
        }
    }
    drained.elapsed = started.elapsed();
    drained
}

/// Drains the backlog of [`DRAIN_HOOKS`] hooks with `concurrency` replays in flight.
async fn drain_row(spigot: &Spigot, concurrency: usize) -> Row {
    let mode = if concurrency == 1 { ", ordered" } else { "" };
    let benchmark =
        format!("drain throughput, {DRAIN_HOOKS} queued hooks, concurrency {concurrency}{mode}");
    spigot.set_state(SpigotState::Draining).await;
    let drained = drain_all(spigot).await;
    spigot.jenkins.clear();
    if drained.delivered != DRAIN_HOOKS as u64 || drained.stopped != Some(StopReason::QueueEmpty) {
        let reason = format!(
            "delivered {} of {DRAIN_HOOKS}, stopped: {:?} {}",
            drained.delivered,
            drained.stopped,
            drained.detail.unwrap_or_default()
        );
        return Row::failed(benchmark, report::NO_TARGET, &reason);
    }
    let seconds = drained.elapsed.as_secs_f64();
    Row::info(
        benchmark,
        format!(
            // The drain ends with one empty long-poll receive (1 s): it is part of what
            // an invocation costs, so it stays in.
            "{:.0} hooks/s ({DRAIN_HOOKS} in {seconds:.2} s, incl. the final 1 s empty-queue poll)",
            DRAIN_HOOKS as f64 / seconds
        ),
    )
}
