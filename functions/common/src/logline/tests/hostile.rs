//! Hostile logs: the caps on sections, and memory and output that stay bounded (issue
//! 15 §3).

use super::*;

fn start(time: u64, name: &str) -> String {
    format!("section_start:{time}:{name}\r\x1b[0K")
}

fn end(time: u64, name: &str) -> String {
    format!("section_end:{time}:{name}\r\x1b[0K")
}

#[test]
fn sections_deeper_than_the_cap_are_not_opened_and_their_lines_are_flagged() {
    let names: Vec<String> = (0..MAX_SECTION_DEPTH + 4)
        .map(|i| format!("s{i}"))
        .collect();
    let mut log = String::new();
    for (i, name) in names.iter().enumerate() {
        log += &format!("{}h{i}\n", start(i as u64, name));
    }
    log += "inside\n";
    for name in names.iter().rev() {
        log += &format!("{}\n", end(100, name));
    }
    log += "after\n";
    let lines = parse(log.as_bytes());
    let deepest = names[..MAX_SECTION_DEPTH].join("/");
    for (i, line) in lines[..MAX_SECTION_DEPTH].iter().enumerate() {
        assert_eq!(line.message, format!("h{i}"));
        assert_eq!(line.path(), names[..=i].join("/"));
        assert_eq!(
            (line.event, line.depth_exceeded),
            (Some(SectionEvent::Start), false)
        );
    }
    // Started past the cap: text in the deepest open section, flagged.
    for (i, line) in lines[MAX_SECTION_DEPTH..MAX_SECTION_DEPTH + 4]
        .iter()
        .enumerate()
    {
        assert_eq!(line.message, format!("h{}", MAX_SECTION_DEPTH + i));
        assert_eq!(
            (line.path(), line.event, line.depth_exceeded),
            (deepest.clone(), None, true)
        );
    }
    let inside = &lines[MAX_SECTION_DEPTH + 4];
    assert_eq!(
        (inside.message.as_str(), inside.depth_exceeded),
        ("inside", true)
    );
    // Their ends close them innermost first: still flagged, no footer.
    let unopened_ends = &lines[MAX_SECTION_DEPTH + 5..MAX_SECTION_DEPTH + 9];
    assert!(unopened_ends.iter().all(|l| l.message.is_empty()
        && l.event.is_none()
        && l.depth_exceeded
        && l.path() == deepest));
    // Then the open ones end with footers, unflagged.
    let footers = &lines[MAX_SECTION_DEPTH + 9..2 * MAX_SECTION_DEPTH + 9];
    assert!(footers
        .iter()
        .all(|l| matches!(l.event, Some(SectionEvent::End { .. })) && !l.depth_exceeded));
    assert_eq!(footers[0].path(), deepest);
    assert_eq!(footers[MAX_SECTION_DEPTH - 1].path(), "s0");
    let after = lines.last().unwrap();
    assert_eq!(
        (after.message.as_str(), after.path(), after.depth_exceeded),
        ("after", String::new(), false)
    );
    assert_eq!(lines.len(), 2 * MAX_SECTION_DEPTH + 10);

    // An end of an open section closes the unopened ones inside it too.
    let mut log = String::new();
    for (i, name) in names.iter().enumerate() {
        log += &format!("{}\n", start(i as u64, name));
    }
    log += &format!("{}\nafter\n", end(50, "s0"));
    let lines = parse(log.as_bytes());
    let footer = &lines[names.len()];
    assert_eq!(footer.event, Some(SectionEvent::End { duration_secs: 50 }));
    assert!(footer.depth_exceeded, "the footer is still inside them");
    let after = &lines[names.len() + 1];
    assert_eq!((after.path(), after.depth_exceeded), (String::new(), false));
}

#[test]
fn a_name_longer_than_the_cap_is_cut_and_its_lines_flagged() {
    let name = format!("{}-tail", "n".repeat(MAX_SECTION_NAME_BYTES));
    let log = format!(
        "{}header\ninside\n{}after\n",
        start(1, &name),
        end(3, &name)
    );
    let lines = parse(log.as_bytes());
    let cut = &name[..MAX_SECTION_NAME_BYTES];
    let view: Vec<(&str, String, bool)> = lines
        .iter()
        .map(|l| (l.message.as_str(), l.path(), l.name_truncated))
        .collect();
    assert_eq!(
        view,
        [
            ("header", cut.to_owned(), true),
            ("inside", cut.to_owned(), true),
            ("", cut.to_owned(), true),
            ("after", String::new(), false),
        ]
    );
    assert_eq!(
        lines[2].event,
        Some(SectionEvent::End { duration_secs: 2 }),
        "the cut end matches"
    );
}

#[test]
fn a_marker_longer_than_its_cap_is_text_and_flagged() {
    let name = "n".repeat(MAX_SECTION_MARKER_BYTES);
    let log = format!(
        "{}header\ninside\n{}\nafter\n",
        start(1, &name),
        end(2, &name)
    );
    let lines = parse(log.as_bytes());
    let view: Vec<(&str, String, bool)> = lines
        .iter()
        .map(|l| (l.message.as_str(), l.path(), l.markers_ignored))
        .collect();
    // Text: its `\r` ends the stretch that holds it, as for any other text.
    let end_text = format!("section_end:2:{name}");
    assert_eq!(
        view,
        [
            ("header", String::new(), true),
            ("inside", String::new(), false),
            (end_text.as_str(), String::new(), true),
            ("after", String::new(), false),
        ]
    );
}

#[test]
fn markers_past_the_cap_of_a_line_are_dropped_and_the_line_flagged() {
    let pairs = MAX_SECTION_MARKERS_PER_LINE; // twice the markers applied
    let log = format!(
        "{}\n",
        format!("{}x{}", start(1, "a"), end(2, "a")).repeat(pairs)
    );
    let lines = parse(log.as_bytes());
    let applied = MAX_SECTION_MARKERS_PER_LINE / 2;
    assert_eq!(lines.len(), 2 * applied + 1);
    for pair in lines[..2 * applied].chunks(2) {
        assert_eq!(
            (pair[0].message.as_str(), pair[0].event),
            ("x", Some(SectionEvent::Start))
        );
        assert_eq!(
            (pair[1].message.as_str(), pair[1].event),
            ("", Some(SectionEvent::End { duration_secs: 1 }))
        );
        assert!(!pair[0].markers_ignored && !pair[1].markers_ignored);
    }
    // The rest: out of the text, applied to nothing.
    let rest = lines.last().unwrap();
    assert_eq!(rest.message, "x".repeat(pairs - applied));
    assert_eq!((rest.path(), rest.markers_ignored), (String::new(), true));
    // The next line counts again.
    let next = parse(format!("{log}{}y\n", start(3, "b")).as_bytes());
    assert_eq!(next.last().unwrap().path(), "b");
    assert!(!next.last().unwrap().markers_ignored);
}

/// Feeds `log` in 64 KiB chunks: (lines, peak of `buffered_bytes`, bytes of output).
fn measure(log: &[u8]) -> (u64, usize, usize) {
    let chunks: Vec<&[u8]> = log.chunks(64 * 1024).collect();
    let parsed = super::super::check::parse_chunks(&chunks, DEFAULT_MAX_LINE_BYTES);
    (
        parsed.lines.len() as u64,
        parsed.peak_held,
        parsed.output_bytes,
    )
}

fn held_bound() -> usize {
    super::super::check::held_bound(DEFAULT_MAX_LINE_BYTES)
}

/// Hostile logs of about `size` bytes, by kind.
fn hostile_logs(size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let long_name = "n".repeat(MAX_SECTION_NAME_BYTES);
    let repeat = |unit: String| unit.repeat(size / unit.len() + 1).into_bytes();
    let nested_then_blank = |name: &str| {
        let mut log = String::new();
        for i in 0..MAX_SECTION_DEPTH {
            log += &start(1, &format!("{name}{i}"));
            log.push('\n');
        }
        let mut log = log.into_bytes();
        log.resize(log.len() + size, b'\n');
        log
    };
    // As many options as fit in a marker with a name of the cap.
    let budget = MAX_SECTION_MARKER_BYTES
        - "section_start:1:".len()
        - MAX_SECTION_NAME_BYTES
        - "\r\x1b[0K".len()
        - "x=y]".len();
    let mut options = String::from("[");
    while options.len() + "option=value,".len() <= budget {
        options += "option=value,";
    }
    options += "x=y]";
    vec![
        // Every line opens one more section and prints a line inside.
        ("deep nesting", {
            let mut log = String::new();
            let mut i = 0;
            while log.len() < size {
                log += &format!("{}\nx\n", start(1, &format!("{long_name}{i}")));
                i += 1;
            }
            log.into_bytes()
        }),
        (
            "blank lines under the deepest path",
            nested_then_blank(&long_name[..MAX_SECTION_NAME_BYTES - 2]),
        ),
        (
            "huge names",
            repeat(format!("{}h\nline\n", start(1, &"n".repeat(60_000)))),
        ),
        (
            "marker flood, no newline",
            repeat(format!("{}{}", start(1, "a"), end(2, "a"))),
        ),
        ("nested floods, no newline", repeat(start(1, &long_name))),
        (
            "marker-only lines",
            repeat(format!("{}\n", start(1, &long_name))),
        ),
        (
            "long options",
            repeat(format!("section_start:1:{long_name}{options}\r\x1b[0Kh\n")),
        ),
        (
            "unmatched ends",
            repeat(format!("{}\n", end(1, &long_name))),
        ),
    ]
}

#[test]
fn output_stays_linear_in_the_input_and_memory_bounded_for_hostile_logs() {
    // Per line at most the path's names and a marker's worth of options, and lines are
    // at most one per input byte; messages are at most 3 bytes per input byte (U+FFFD).
    let per_byte = super::super::check::OUTPUT_PER_INPUT_BYTE;
    let sizes = [32 * 1024, 128 * 1024, 512 * 1024, 2 * 1024 * 1024];
    let mut ratios: Vec<(&str, Vec<f64>)> = Vec::new();
    for size in sizes {
        for (kind, log) in hostile_logs(size) {
            let (lines, peak, output) = measure(&log);
            assert!(
                output <= per_byte * log.len() + per_byte,
                "{kind}: {output} bytes out of {} in",
                log.len()
            );
            assert!(peak <= held_bound(), "{kind}: held {peak} bytes");
            assert!(lines <= log.len() as u64 + 1, "{kind}: {lines} lines");
            let ratio = output as f64 / log.len() as f64;
            match ratios.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, of_kind)) => of_kind.push(ratio),
                None => ratios.push((kind, vec![ratio])),
            }
        }
    }
    assert_eq!(ratios.len(), 8);
    for (kind, of_kind) in ratios {
        // Linear: the output per input byte does not grow with the input (quadratic output
        // would grow 64 times from the first size to the last).
        let (first, last) = (of_kind[0], of_kind[sizes.len() - 1]);
        assert!(
            last <= first * 1.25 + 1.0,
            "{kind}: {of_kind:?} output bytes per input byte"
        );
    }
    // The long options are options, not text.
    let (kind, log) = &hostile_logs(1)[6];
    assert_eq!(*kind, "long options");
    let lines = parse(&log[..log.iter().position(|b| *b == b'\n').unwrap_or(0) + 1]);
    assert!(
        lines[0].options.as_ref().is_some_and(|o| o.len() > 300),
        "{:?}",
        lines[0]
    );
}

#[test]
fn the_logs_of_issue_15_stay_small() {
    // 5,000 nested starts, then 20,000 lines: 238 MB of documents before.
    let mut log = String::new();
    for i in 0..5_000 {
        log += &format!("{}\n", start(1, &format!("s{i}")));
    }
    log += &"a line\n".repeat(20_000);
    let (lines, _, output) = measure(log.as_bytes());
    assert_eq!(lines, 25_000);
    assert!(output < 2_000_000, "{output} bytes");

    // 16 sections with 60,000-byte names: 1 MB per document before. Markers that long are
    // text.
    let mut log = String::new();
    for i in 0..16 {
        log += &format!("{}h\n", start(1, &format!("{i}{}", "n".repeat(60_000))));
    }
    log += &"a line\n".repeat(1000);
    let (lines, _, output) = measure(log.as_bytes());
    assert_eq!(lines, 1016);
    assert_eq!(output, 16 + 6 * 1000, "only the messages");

    // 32 MiB of back-to-back markers with no newline: 135 MB live before.
    let mut parser = LineParser::default();
    let mut lines = 0;
    let mut emit = |_: &LogLine<'_>| lines += 1;
    let unit = format!("{}{}", start(1, "a"), end(2, "a")).repeat(1024);
    let mut peak = 0;
    while parser.bytes() < 32 << 20 {
        parser.feed(unit.as_bytes(), &mut emit);
        peak = peak.max(parser.buffered_bytes());
    }
    parser.finish(&mut emit);
    assert!(peak <= held_bound(), "held {peak} bytes");
    // The footers of the markers applied (their empty headers are no lines).
    assert_eq!(lines, MAX_SECTION_MARKERS_PER_LINE as u64 / 2);
}
