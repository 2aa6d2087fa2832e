//! The parser's tests: the basics here; GitLab runner traces in `runner.rs`; the caps
//! and hostile logs in `hostile.rs`; chunk invariance in `chunking.rs`.

use super::*;

mod chunking;
mod hostile;
mod runner;

#[test]
fn a_console_log_is_cleaned_line_by_line() {
    let read = b"Started by user ana\r\n\x1b[32mok\x1b[0m\r\n10%\r100%\r\nFinished: SUCCESS";
    assert_eq!(
        clean_lines(read),
        ["Started by user ana", "ok", "100%", "Finished: SUCCESS"]
    );
    assert!(clean_lines(b"").is_empty());
}

/// What a test looks at in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    number: u64,
    offset: u64,
    message: String,
    timestamp: Option<String>,
    stream: Option<Stream>,
    sections: Vec<String>,
    event: Option<SectionEvent>,
    /// The innermost section's.
    options: Option<String>,
    truncated: bool,
    log_limit: bool,
    depth_exceeded: bool,
    name_truncated: bool,
    markers_ignored: bool,
}

impl Seen {
    fn of(line: &LogLine<'_>) -> Self {
        Seen {
            number: line.number,
            offset: line.offset,
            message: line.message.to_owned(),
            timestamp: line.timestamp.map(str::to_owned),
            stream: line.stream,
            sections: line.sections.iter().map(|s| s.name.clone()).collect(),
            event: line.section_event,
            options: line.sections.last().and_then(|s| s.options.clone()),
            truncated: line.truncated,
            log_limit: line.log_limit_exceeded,
            depth_exceeded: line.section_depth_exceeded,
            name_truncated: line.section_name_truncated,
            markers_ignored: line.section_markers_ignored,
        }
    }

    /// The section path as a document shows it.
    fn path(&self) -> String {
        self.sections.join("/")
    }
}

fn parse_chunks(chunks: &[&[u8]], max: usize) -> Vec<Seen> {
    let mut parser = LineParser::new(max);
    let mut seen = Vec::new();
    let mut emit = |line: &LogLine<'_>| seen.push(Seen::of(line));
    for chunk in chunks {
        parser.feed(chunk, &mut emit);
    }
    parser.finish(&mut emit);
    seen
}

fn parse(log: &[u8]) -> Vec<Seen> {
    let whole = parse_chunks(&[log], DEFAULT_MAX_LINE_BYTES);
    // Any split of the input gives the same lines.
    let bytes: Vec<&[u8]> = log.chunks(1).collect();
    assert_eq!(
        parse_chunks(&bytes, DEFAULT_MAX_LINE_BYTES),
        whole,
        "byte by byte"
    );
    let sevens: Vec<&[u8]> = log.chunks(7).collect();
    assert_eq!(
        parse_chunks(&sevens, DEFAULT_MAX_LINE_BYTES),
        whole,
        "by 7 bytes"
    );
    whole
}

fn messages(log: &[u8]) -> Vec<String> {
    parse(log).into_iter().map(|s| s.message).collect()
}

#[test]
fn plain_lines_carry_their_numbers_and_byte_offsets() {
    let lines = parse(b"first\nsecond line\n\nlast without newline");
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.number, l.offset, l.message.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, 0, "first"),
            (2, 6, "second line"),
            (3, 18, ""),
            (4, 19, "last without newline")
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l.timestamp.is_none() && l.sections.is_empty()));
    assert!(parse(b"").is_empty());
}

#[test]
fn crlf_endings_and_carriage_returns_keep_the_last_text() {
    assert_eq!(messages(b"windows\r\nline\r\n"), ["windows", "line"]);
    assert_eq!(messages(b"10%\r50%\r100%\ndone\n"), ["100%", "done"]);
    // A trailing \r clears nothing: the last segment with text wins.
    assert_eq!(messages(b"100%\r\r\n"), ["100%"]);
    // An erase-line after the \r is not text.
    assert_eq!(messages(b"old\r\x1b[2Knew\n"), ["new"]);
    assert_eq!(messages(b"only\r\x1b[2K\n"), ["only"]);
}

#[test]
fn escape_sequences_are_removed() {
    assert_eq!(
        messages(b"\x1b[32;1mgreen\x1b[0;m and \x1b[1A\x1b[Kmoved\x1b]0;title\x07!\x1b(B\n"),
        ["green and moved!"]
    );
    assert_eq!(
        messages(b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n"),
        ["link"]
    );
    // A lone escape at the end does not eat the line.
    assert_eq!(messages(b"text\x1b"), ["text"]);
}

#[test]
fn invalid_utf8_is_replaced() {
    assert_eq!(
        messages(b"caf\xc3\xa9 \xff\xfe ok\n"),
        ["café \u{fffd}\u{fffd} ok"]
    );
}

#[test]
fn sections_nest_and_end_with_their_duration() {
    let log = b"before\n\
        \x1b[0Ksection_start:1700000000:build[collapsed=true]\r\x1b[0K\x1b[36;1mBuilding\x1b[0;m\n\
        compiling\n\
        \x1b[0Ksection_start:1700000005:tests\r\x1b[0KTesting\n\
        test ok\n\
        \x1b[0Ksection_end:1700000009:tests\r\x1b[0K\n\
        \x1b[0Ksection_end:1700000030:build\r\x1b[0K\n\
        after\n";
    let lines = parse(log);
    let view: Vec<(&str, Vec<&str>, Option<SectionEvent>)> = lines
        .iter()
        .map(|l| {
            (
                l.message.as_str(),
                l.sections.iter().map(String::as_str).collect(),
                l.event,
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("before", vec![], None),
            ("Building", vec!["build"], Some(SectionEvent::Start)),
            ("compiling", vec!["build"], None),
            ("Testing", vec!["build", "tests"], Some(SectionEvent::Start)),
            ("test ok", vec!["build", "tests"], None),
            (
                "",
                vec!["build", "tests"],
                Some(SectionEvent::End { duration_secs: 4 })
            ),
            (
                "",
                vec!["build"],
                Some(SectionEvent::End { duration_secs: 30 })
            ),
            ("after", vec![], None),
        ]
    );
    let mut parser = LineParser::default();
    let mut options = None;
    parser.feed(log, &mut |line: &LogLine<'_>| {
        if line.message == "Building" {
            options = line.sections[0].options.clone();
        }
    });
    assert_eq!(options.as_deref(), Some("collapsed=true"));
}

#[test]
fn an_end_closes_inner_sections_left_open_and_malformed_markers_are_text() {
    let log = b"\x1b[0Ksection_start:10:outer\r\x1b[0K\n\
        \x1b[0Ksection_start:11:inner\r\x1b[0K\n\
        \x1b[0Ksection_end:20:outer\r\x1b[0K\n\
        \x1b[0Ksection_start:x:bad\r\x1b[0Kvisible\n\
        \x1b[0Ksection_start:1:opt[bad option]\r\x1b[0Kalso visible\n";
    let lines = parse(log);
    assert_eq!(
        lines[2].event,
        Some(SectionEvent::End { duration_secs: 10 })
    );
    assert_eq!(lines[2].sections, ["outer", "inner"]);
    assert!(lines[3].sections.is_empty());
    assert_eq!(lines[3].message, "visible");
    assert_eq!(lines[4].message, "also visible");
    assert_eq!(lines[4].event, None);
}

#[test]
fn timestamp_headers_give_time_and_stream_and_join_continuations() {
    let log = b"2024-05-01T10:00:00.000001Z 00O Running with gitlab-runner\n\
        2024-05-01T10:00:01.500000Z 01E warning: x\n\
        2024-05-01T10:00:02.000000Z 01O 10%\r\n\
        2024-05-01T10:00:03.000000Z 01O+50%\r\n\
        2024-05-01T10:00:04.000000Z 01O+100%\n\
        2024-05-01T10:00:05.000000Z 01O \x1b[0Ksection_start:1714557605:step_script\r\x1b[0KExecuting\n\
        2024-05-01T10:00:06.000000Z 01O long part one \n\
        2024-05-01T10:00:06.100000Z 01O+and part two\n\
        2024-05-01T10:00:07.000000Z 01O \x1b[0Ksection_end:1714557607:step_script\r\x1b[0K\n";
    let lines = parse(log);
    let view: Vec<(&str, &str, Option<Stream>)> = lines
        .iter()
        .map(|l| {
            (
                l.message.as_str(),
                l.timestamp.as_deref().unwrap(),
                l.stream,
            )
        })
        .collect();
    let out = |id| Some(Stream { id, stderr: false });
    assert_eq!(
        view,
        [
            (
                "Running with gitlab-runner",
                "2024-05-01T10:00:00.000001Z",
                out(0)
            ),
            (
                "warning: x",
                "2024-05-01T10:00:01.500000Z",
                Some(Stream {
                    id: 1,
                    stderr: true
                })
            ),
            ("100%", "2024-05-01T10:00:02.000000Z", out(1)),
            ("Executing", "2024-05-01T10:00:05.000000Z", out(1)),
            (
                "long part one and part two",
                "2024-05-01T10:00:06.000000Z",
                out(1)
            ),
            ("", "2024-05-01T10:00:07.000000Z", out(1)),
        ]
    );
    assert_eq!(
        lines[2].offset,
        59 + 43,
        "a joined line starts where its first part does"
    );
    assert_eq!(lines[5].event, Some(SectionEvent::End { duration_secs: 2 }));
    // Text that only looks like a header is text.
    assert_eq!(
        messages(b"2024-05-01 10:00:00 plain\n"),
        ["2024-05-01 10:00:00 plain"]
    );
}

#[test]
fn long_lines_are_cut_on_a_character_boundary_and_flagged() {
    let mut log = "é".repeat(40).into_bytes();
    log.push(b'\n');
    let lines = parse_chunks(&[&log], 21);
    assert_eq!(lines[0].message, "é".repeat(10));
    assert!(lines[0].truncated);
    let short = parse_chunks(&[b"short\n"], 21);
    assert!(!short[0].truncated);
}

#[test]
fn an_endless_line_keeps_memory_bounded() {
    let mut parser = LineParser::new(1024);
    let mut lines = Vec::new();
    let mut emit = |line: &LogLine<'_>| {
        lines.push((line.message.len(), line.truncated, line.message.to_owned()))
    };
    // 20 MiB of progress updates without a newline, then a final state.
    let chunk = b"downloading 42%\r".repeat(4096);
    let mut peak = 0;
    for _ in 0..320 {
        parser.feed(&chunk, &mut emit);
        peak = peak.max(parser.buffered_bytes());
    }
    parser.feed(b"downloaded\n", &mut emit);
    // 20 MiB of one segment without any break.
    let blob = vec![b'x'; 64 * 1024];
    for _ in 0..320 {
        parser.feed(&blob, &mut emit);
        peak = peak.max(parser.buffered_bytes());
    }
    parser.finish(&mut emit);
    assert!(peak <= 1024 * 4 + 64 * 1024 + 1, "held {peak} bytes");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], (10, false, "downloaded".to_owned()));
    assert_eq!((lines[1].0, lines[1].1), (1024, true));
}

#[test]
fn the_runners_log_limit_line_is_flagged() {
    let log = b"last output\n\n\x1b[33;1mJob's log exceeded limit of 4194304 bytes.\x1b[0;m\n\
        \x1b[33;1mJob execution will continue but no more output will be collected.\x1b[0;m\n";
    let lines = parse(log);
    assert_eq!(lines.iter().filter(|l| l.log_limit).count(), 1);
    assert_eq!(
        lines[2].message,
        "Job's log exceeded limit of 4194304 bytes."
    );
    assert!(lines[2].log_limit);
}
