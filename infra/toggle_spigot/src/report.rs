//! Human output: what a command did, as short lines and aligned tables. (`--json`
//! serialises the same values instead.)

use spigot_common::drain::{DrainSummary, StopReason};
use spigot_common::state::SpigotState;

use crate::ops::{Depth, Listing, RedriveSummary, StateView, Status, Toggle};

/// Widest reason shown in the listing table (JSON has it whole).
const REASON_WIDTH: usize = 60;

/// `42s`, `5m 03s`, `2h 05m`, `3d 04h`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m {:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3_600, s % 3_600 / 60),
        s => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

pub fn depth(d: &Depth) -> String {
    format!(
        "{} (visible {}, in flight {}, delayed {})",
        d.total, d.visible, d.in_flight, d.delayed
    )
}

fn state(view: &StateView) -> String {
    match (&view.variable, &view.problem) {
        (Some(raw), None) => raw.clone(),
        (Some(raw), Some(_)) => format!("{raw:?} (unknown value: the functions treat it as OFF)"),
        (None, _) => "not set (the functions treat it as OFF)".into(),
    }
}

/// `key  value` lines with the values aligned.
fn rows(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

pub fn toggle(t: &Toggle) -> String {
    let target = format!("API {} stage {}", t.rest_api_id, t.stage);
    let mut out = if t.changed {
        format!(
            "{target}: spigot_state {} -> {}\n",
            state(&t.previous),
            t.state
        )
    } else {
        format!("{target}: spigot_state is already {}\n", t.state)
    };
    if let Some(backlog) = &t.backlog {
        out.push_str(&format!("queue: {}\n", depth(backlog)));
    }
    match t.state {
        SpigotState::Draining => out.push_str(
            "New webhooks queue behind the backlog; send_from_queue replays it and sets ON \
             once the queue is empty (`toggle_spigot drain` does the same from here).\n",
        ),
        SpigotState::On => out.push_str("Webhooks go to the target at once.\n"),
        SpigotState::Off => out.push_str("Webhooks are queued until the spigot is turned on.\n"),
    }
    out
}

pub fn status(s: &Status) -> String {
    let oldest = match s.oldest_message_age_secs {
        Some(secs) => format!("{} ({})", age(secs), s.oldest_message_age_note),
        None => format!("n/a ({})", s.oldest_message_age_note),
    };
    rows(&[
        ("api", format!("{} stage {}", s.rest_api_id, s.stage)),
        ("state", state(&s.state)),
        ("queue", depth(&s.queue.depth)),
        (
            "dlq",
            s.dlq
                .as_ref()
                .map_or("n/a (no DLQ URL configured)".into(), |d| depth(&d.depth)),
        ),
        ("oldest", oldest),
    ])
}

fn stop_reason(reason: Option<StopReason>) -> &'static str {
    match reason {
        Some(StopReason::Off) => "the spigot is OFF",
        Some(StopReason::TargetDown) => "the target did not answer the probe",
        Some(StopReason::TargetUnavailable) => "the target stopped accepting",
        Some(StopReason::QueueEmpty) => "the queue is empty",
        Some(StopReason::Deadline) => "out of time",
        Some(StopReason::Error) => "error",
        None => "unknown",
    }
}

pub fn drain(s: &DrainSummary) -> String {
    let mut lines = vec![
        (
            "state",
            if s.state == s.final_state {
                s.state.to_string()
            } else {
                format!("{} -> {}", s.state, s.final_state)
            },
        ),
        ("delivered", s.delivered.to_string()),
        ("poisoned", s.poisoned.to_string()),
        ("released", s.released.to_string()),
        (
            "remaining",
            s.remaining.map_or("unknown".into(), |r| r.to_string()),
        ),
        ("stopped", stop_reason(s.stopped).to_string()),
    ];
    if let Some(detail) = &s.detail {
        lines.push(("detail", detail.clone()));
    }
    let mut out = rows(&lines);
    if s.poisoned > 0 {
        out.push_str(
            "Refused requests are in the DLQ: `toggle_spigot redrive --dry-run` lists them.\n",
        );
    }
    out
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

pub fn listing(l: &Listing) -> String {
    let mut table: Vec<[String; 6]> = vec![[
        "MESSAGE".into(),
        "EVENT".into(),
        "DELIVERY".into(),
        "AGE".into(),
        "STATUS".into(),
        "REASON".into(),
    ]];
    let dash = || "-".to_string();
    for m in &l.messages {
        table.push([
            m.message_id.clone(),
            m.event.clone().unwrap_or_else(dash),
            m.delivery.clone().unwrap_or_else(dash),
            m.age_secs.map_or_else(dash, age),
            m.status.clone().unwrap_or_else(dash),
            one_line(
                m.reason.as_deref().or(m.problem.as_deref()).unwrap_or("-"),
                REASON_WIDTH,
            ),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!("DLQ {}\ndepth {}\n", l.dlq_url, depth(&l.dlq_depth));
    if l.messages.is_empty() {
        out.push_str("nothing to list\n");
    } else {
        for row in &table {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    if let Some(note) = &l.note {
        out.push_str(&format!("note: {note}\n"));
    }
    if !l.messages.is_empty() {
        out.push_str("Nothing was moved (dry run); the listed messages are visible again.\n");
    }
    out
}

pub fn redrive(s: &RedriveSummary) -> String {
    let mut lines = vec![
        ("moved", format!("{} of {}", s.moved, s.dlq_before.total)),
        ("from", s.dlq_url.clone()),
        ("to", s.queue_url.clone()),
        (
            "dlq now",
            s.dlq_after.as_ref().map_or("unknown".into(), depth),
        ),
    ];
    if let Some(error) = &s.error {
        lines.push(("stopped", error.clone()));
    }
    let mut out = rows(&lines);
    if s.moved > 0 {
        out.push_str(
            "The next drain replays them (send_from_queue on its schedule while the spigot is \
             not OFF, or `toggle_spigot drain`).\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(63), "1m 03s");
        assert_eq!(age(2 * 3600 + 5 * 60 + 9), "2h 05m");
        assert_eq!(age(3 * 86_400 + 4 * 3600), "3d 04h");
    }

    #[test]
    fn long_reasons_are_cut_to_one_line() {
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(
            one_line(&"x".repeat(70), 60),
            format!("{}…", "x".repeat(60))
        );
    }
}
