//! Section markers as real traces spell them, and the lines GitLab's job log page makes of
//! them (gitlabhq/gitlabhq spec/lib/gitlab/ci/ansi2json_spec.rb, "with section markers").

use super::*;

/// (message, section path, event) of each line.
fn view(lines: &[Seen]) -> Vec<(&str, String, Option<SectionEvent>)> {
    lines
        .iter()
        .map(|l| (l.message.as_str(), l.path(), l.event))
        .collect()
}

fn line(
    message: &str,
    path: &str,
    event: Option<SectionEvent>,
) -> (String, String, Option<SectionEvent>) {
    (message.to_owned(), path.to_owned(), event)
}

fn owned(
    view: Vec<(&str, String, Option<SectionEvent>)>,
) -> Vec<(String, String, Option<SectionEvent>)> {
    view.into_iter()
        .map(|(m, p, e)| (m.to_owned(), p, e))
        .collect()
}

const START: Option<SectionEvent> = Some(SectionEvent::Start);
fn end(duration_secs: u64) -> Option<SectionEvent> {
    Some(SectionEvent::End { duration_secs })
}

/// Physical lines behind `FF_TIMESTAMPS` headers, one second apart from 10:00:00, each
/// with its stream and `' '` or `'+'` (gitlab-org/gitlab-runner
/// common/buildlogger/internal/timestamper/timestamper.go).
fn stamped(lines: &[(&str, &[u8])]) -> Vec<u8> {
    let mut log = Vec::new();
    for (second, (stream, payload)) in lines.iter().enumerate() {
        log.extend_from_slice(format!("2024-05-01T10:00:{second:02}.000000Z {stream}").as_bytes());
        log.extend_from_slice(payload);
        log.push(b'\n');
    }
    log
}

fn time(second: usize) -> Option<String> {
    Some(format!("2024-05-01T10:00:{second:02}.000000Z"))
}

#[test]
fn the_runners_own_marker_has_no_prefix_and_its_header_follows_on_the_same_line() {
    // helpers/build_section.go writes "section_start:%v:%s\r" + ANSI_CLEAR with no newline;
    // common/build.go then Println()s the stage's description, which
    // common/buildlogger/internal/tee.go prefixes with ANSI_CLEAR.
    let log = b"section_start:1714557600:get_sources\r\x1b[0K\x1b[0K\x1b[36;1mGetting source from Git repository\x1b[0;m\x1b[0;m\n\
        Fetching changes\n\
        section_end:1714557603:get_sources\r\x1b[0K\n\
        after\n";
    assert_eq!(
        owned(view(&parse(log))),
        [
            line("Getting source from Git repository", "get_sources", START),
            line("Fetching changes", "get_sources", None),
            line("", "get_sources", end(3)),
            line("after", "", None),
        ]
    );
}

#[test]
fn the_documented_user_spelling_and_other_escapes_before_a_marker() {
    // The docs' `echo -e "\e[0Ksection_start:…"`, and a tool that resets colours first.
    for prefix in [&b"\x1b[0K"[..], b"\x1b[0m", b"\x1b[0;m\x1b[0K", b""] {
        let mut log = Vec::new();
        for (marker, text) in [
            (&b"section_start:10:build"[..], &b"Building"[..]),
            (b"", b"compiling"),
            (b"section_end:12:build", b""),
        ] {
            if !marker.is_empty() {
                log.extend_from_slice(prefix);
                log.extend_from_slice(marker);
                log.extend_from_slice(b"\r\x1b[0K");
            }
            log.extend_from_slice(text);
            log.push(b'\n');
        }
        assert_eq!(
            owned(view(&parse(&log))),
            [
                line("Building", "build", START),
                line("compiling", "build", None),
                line("", "build", end(2)),
            ],
            "prefix {prefix:?}"
        );
    }
}

#[test]
fn an_end_and_the_next_start_on_one_raw_line_are_a_footer_and_a_header() {
    let log = b"section_start:1:get_sources\r\x1b[0Kfetch\n\
        section_end:4:get_sources\r\x1b[0Ksection_start:4:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage of the job script\x1b[0;m\x1b[0;m\n\
        $ make\n";
    let lines = parse(log);
    assert_eq!(
        owned(view(&lines)),
        [
            line("fetch", "get_sources", START),
            line("", "get_sources", end(3)),
            line(
                "Executing \"step_script\" stage of the job script",
                "step_script",
                START
            ),
            line("$ make", "step_script", None),
        ]
    );
    // Offsets as the page's: a footer at its end marker, a header at its start marker.
    let second = 38;
    assert_eq!(lines[1].offset, second);
    assert_eq!(
        lines[2].offset,
        second + b"section_end:4:get_sources\r\x1b[0K".len() as u64
    );
}

#[test]
fn markers_in_the_middle_of_text_split_it_as_gitlabs_page_does() {
    // The cases of ansi2json_spec.rb "with section markers", with their lines.
    let s = "section_start:1568678400:prepare-script\r\x1b[0K";
    let e = "section_end:1568678463:prepare-script\r\x1b[0K";
    let ns = "section_start:1568678400:nested\r\x1b[0K";
    let ne = "section_end:1568678402:nested\r\x1b[0K";
    let p = "prepare-script";
    let pn = "prepare-script/nested";
    let case = |log: String| owned(view(&parse(log.as_bytes())));
    assert_eq!(
        case(format!("Hello{s}world!")),
        [line("Hello", "", None), line("world!", p, START)]
    );
    assert_eq!(
        case(format!("{s}Hello{e}world")),
        [
            line("Hello", p, START),
            line("", p, end(63)),
            line("world", "", None)
        ]
    );
    assert_eq!(
        case(format!("Hello {e}world")),
        [line("Hello world", "", None)],
        "an end without its start is dropped"
    );
    assert_eq!(
        case(format!("Hello{s}foo{ns}bar{ne}baz{e}world")),
        [
            line("Hello", "", None),
            line("foo", p, START),
            line("bar", pn, START),
            line("", pn, end(2)),
            line("baz", p, None),
            line("", p, end(63)),
            line("world", "", None),
        ]
    );
    assert_eq!(
        case(format!("{s}section_end:1:2<div>hello</div>{e}")),
        [
            line("section_end:1:2<div>hello</div>", p, START),
            line("", p, end(63))
        ],
        "what only looks like a marker is text"
    );
    // Name characters are GitLab's: `$` makes it text, which the \r then clears.
    assert_eq!(
        case("section_start:1:my_$ection\r\x1b[0Khello".into()),
        [line("hello", "", None)]
    );
    // An empty header followed by another marker is no line (the page drops it).
    assert_eq!(case(format!("{s}{ns}bar\n")), [line("bar", pn, START)]);
}

#[test]
fn marker_only_and_blank_lines_still_give_one_line_each() {
    let log = b"section_start:1:a\r\x1b[0K\n\
        \n\
        section_start:2:b\r\x1b[0Ksection_end:3:b\r\x1b[0K\n\
        section_end:9:a\r\x1b[0K\n";
    assert_eq!(
        owned(view(&parse(log))),
        [
            line("", "a", START),
            line("", "a", None),
            line("", "a/b", end(1)),
            line("", "a", end(8)),
        ]
    );
}

#[test]
fn script_step_sections_keep_their_options() {
    // FF_SCRIPT_SECTIONS (shells/bash.go SectionStart): no prefix, options, the command as
    // the header.
    let log = b"section_start:1714557605:section_script_step_0[hide_duration=true,collapsed=true]\r\x1b[0K\x1b[32;1m$ cargo build\x1b[0;m\n\
        compiled\n\
        section_end:1714557650:section_script_step_0\r\x1b[0K\n";
    let lines = parse(log);
    assert_eq!(lines[0].message, "$ cargo build");
    assert_eq!(
        lines[0].options.as_deref(),
        Some("hide_duration=true,collapsed=true")
    );
    assert_eq!(
        lines[1].options.as_deref(),
        Some("hide_duration=true,collapsed=true")
    );
    assert_eq!(lines[2].event, end(45));
}

/// The runner's trace of one job without `FF_TIMESTAMPS`, in the runner's own bytes:
/// "Running with" and the stage descriptions by Println (common/build.go,
/// common/buildlogger/internal/tee.go: `\e[0K` before, `\e[0;m` after), the runner's
/// sections with no prefix and nothing between an end and the next start
/// (helpers/build_section.go), a script step section with options (shells/bash.go), user
/// sections nested in the docs' spelling and after another tool's `\e[0m`, an end after
/// text on the same line, and "Job succeeded" (Infoln: bold green) on the last end's line.
const RUNNER_TRACE: &[u8] = b"\x1b[0KRunning with gitlab-runner 17.5.0 (abc12345)\x1b[0;m\n\
    \x1b[0K  on docker-runner-1 xYz12AbC, system ID: s_0123456789ab\x1b[0;m\n\
    section_start:1714557600:prepare_executor\r\x1b[0K\x1b[0K\x1b[36;1mPreparing the \"docker\" executor\x1b[0;m\x1b[0;m\n\
    \x1b[0KUsing Docker executor with image rust:1.85 ...\x1b[0;m\n\
    section_end:1714557602:prepare_executor\r\x1b[0Ksection_start:1714557602:get_sources\r\x1b[0K\x1b[0K\x1b[36;1mGetting source from Git repository\x1b[0;m\x1b[0;m\n\
    Fetching changes with git depth set to 20...\n\
    section_end:1714557605:get_sources\r\x1b[0Ksection_start:1714557605:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage of the job script\x1b[0;m\x1b[0;m\n\
    section_start:1714557605:section_script_step_0[hide_duration=true,collapsed=true]\r\x1b[0K\x1b[32;1m$ cargo build\x1b[0;m\n\
    \x1b[32;1m   Compiling\x1b[0m spigot v0.1.0\n\
    section_end:1714557650:section_script_step_0\r\x1b[0K\n\
    \x1b[0Ksection_start:1714557650:tests[collapsed=true]\r\x1b[0KRunning tests\n\
    \x1b[0Ksection_start:1714557651:unit\r\x1b[0KUnit tests\n\
    test a ... ok\n\
    \x1b[0Ksection_end:1714557655:unit\r\x1b[0K\n\
    \x1b[0msection_start:1714557655:lint\r\x1b[0K\x1b[0mLinting\n\
    lint ok\x1b[0msection_end:1714557656:lint\r\x1b[0K\n\
    \x1b[0Ksection_end:1714557660:tests\r\x1b[0K\n\
    section_end:1714557661:step_script\r\x1b[0Ksection_start:1714557661:cleanup_file_variables\r\x1b[0K\x1b[0K\x1b[36;1mCleaning up project directory and file based variables\x1b[0;m\x1b[0;m\n\
    section_end:1714557662:cleanup_file_variables\r\x1b[0K\x1b[32;1mJob succeeded\x1b[0;m\n";

fn runner_trace_lines() -> Vec<(String, String, Option<SectionEvent>)> {
    let script = "step_script/section_script_step_0";
    vec![
        line("Running with gitlab-runner 17.5.0 (abc12345)", "", None),
        line(
            "  on docker-runner-1 xYz12AbC, system ID: s_0123456789ab",
            "",
            None,
        ),
        line(
            "Preparing the \"docker\" executor",
            "prepare_executor",
            START,
        ),
        line(
            "Using Docker executor with image rust:1.85 ...",
            "prepare_executor",
            None,
        ),
        line("", "prepare_executor", end(2)),
        line("Getting source from Git repository", "get_sources", START),
        line(
            "Fetching changes with git depth set to 20...",
            "get_sources",
            None,
        ),
        line("", "get_sources", end(3)),
        line(
            "Executing \"step_script\" stage of the job script",
            "step_script",
            START,
        ),
        line("$ cargo build", script, START),
        line("   Compiling spigot v0.1.0", script, None),
        line("", script, end(45)),
        line("Running tests", "step_script/tests", START),
        line("Unit tests", "step_script/tests/unit", START),
        line("test a ... ok", "step_script/tests/unit", None),
        line("", "step_script/tests/unit", end(4)),
        line("Linting", "step_script/tests/lint", START),
        line("lint ok", "step_script/tests/lint", None),
        line("", "step_script/tests/lint", end(1)),
        line("", "step_script/tests", end(10)),
        line("", "step_script", end(56)),
        line(
            "Cleaning up project directory and file based variables",
            "cleanup_file_variables",
            START,
        ),
        line("", "cleanup_file_variables", end(1)),
        line("Job succeeded", "", None),
    ]
}

#[test]
fn a_runner_trace_mixing_every_spelling() {
    let lines = parse(RUNNER_TRACE);
    assert_eq!(owned(view(&lines)), runner_trace_lines());
    assert_eq!(lines.len(), 24);
    assert!(lines
        .iter()
        .all(|l| !l.depth_exceeded && !l.name_truncated && !l.markers_ignored));
    assert_eq!(lines[12].options.as_deref(), Some("collapsed=true"));
    assert_eq!(
        lines.iter().map(|l| l.number).collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );
}

#[test]
fn the_same_job_with_ff_timestamps_from_a_current_runner() {
    // Since gitlab-runner fe5799edb a write with a \r is one entry, ended by a newline,
    // and the stream's next write is its `+` continuation: a marker's header and an end's
    // next start join it again.
    let log = stamped(&[
        ("00O ", b"\x1b[0KRunning with gitlab-runner 17.5.0 (abc12345)\x1b[0;m"),
        ("00O ", b"\x1b[0K  on docker-runner-1 xYz12AbC, system ID: s_0123456789ab\x1b[0;m"),
        ("00O ", b"section_start:1714557600:prepare_executor\r\x1b[0K"),
        ("00O+", b"\x1b[0K\x1b[36;1mPreparing the \"docker\" executor\x1b[0;m\x1b[0;m"),
        ("00O ", b"\x1b[0KUsing Docker executor with image rust:1.85 ...\x1b[0;m"),
        ("00O ", b"section_end:1714557602:prepare_executor\r\x1b[0K"),
        ("00O+", b"section_start:1714557602:get_sources\r\x1b[0K"),
        ("00O+", b"\x1b[0K\x1b[36;1mGetting source from Git repository\x1b[0;m\x1b[0;m"),
        ("01O ", b"Fetching changes with git depth set to 20..."),
        ("00O ", b"section_end:1714557605:get_sources\r\x1b[0K"),
        ("00O+", b"section_start:1714557605:step_script\r\x1b[0K"),
        ("00O+", b"\x1b[0K\x1b[36;1mExecuting \"step_script\" stage of the job script\x1b[0;m\x1b[0;m"),
        ("01O ", b"section_start:1714557605:section_script_step_0[hide_duration=true,collapsed=true]\r\x1b[0K\x1b[32;1m$ cargo build\x1b[0;m"),
        ("01O ", b"\x1b[32;1m   Compiling\x1b[0m spigot v0.1.0"),
        ("01O ", b"section_end:1714557650:section_script_step_0\r\x1b[0K"),
        ("01O ", b"\x1b[0Ksection_start:1714557650:tests[collapsed=true]\r\x1b[0KRunning tests"),
        ("01O ", b"\x1b[0Ksection_start:1714557651:unit\r\x1b[0KUnit tests"),
        ("01O ", b"test a ... ok"),
        ("01O ", b"\x1b[0Ksection_end:1714557655:unit\r\x1b[0K"),
        ("01O ", b"\x1b[0msection_start:1714557655:lint\r\x1b[0K\x1b[0mLinting"),
        ("01O ", b"lint ok\x1b[0msection_end:1714557656:lint\r\x1b[0K"),
        ("01O ", b"\x1b[0Ksection_end:1714557660:tests\r\x1b[0K"),
        ("00O ", b"section_end:1714557661:step_script\r\x1b[0K"),
        ("00O+", b"section_start:1714557661:cleanup_file_variables\r\x1b[0K"),
        ("00O+", b"\x1b[0K\x1b[36;1mCleaning up project directory and file based variables\x1b[0;m\x1b[0;m"),
        ("00O ", b"section_end:1714557662:cleanup_file_variables\r\x1b[0K"),
        // A new logger (common/build.go setTraceStatus): not a continuation.
        ("00O ", b"\x1b[32;1mJob succeeded\x1b[0;m"),
    ]);
    let lines = parse(&log);
    assert_eq!(owned(view(&lines)), runner_trace_lines());
    // Each line has the time of the physical line it begins on: a header the start
    // marker's, a footer its end marker's.
    let times: Vec<Option<String>> = lines.iter().map(|l| l.timestamp.clone()).collect();
    let expected: Vec<Option<String>> = [
        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 20, 21, 22, 23, 25, 26,
    ]
    .into_iter()
    .map(time)
    .collect();
    assert_eq!(times, expected);
    assert_eq!(
        lines[7].stream,
        Some(Stream {
            id: 0,
            stderr: false
        })
    );
    assert_eq!(
        lines[6].stream,
        Some(Stream {
            id: 1,
            stderr: false
        })
    );
}

#[test]
fn the_same_job_with_ff_timestamps_from_an_older_runner() {
    // Before fe5799edb the timestamper cut such a write after its last \r, so the marker's
    // `\e[0K` began the next `+` entry (timestamper.go's comment on why that changed). The
    // joined line has the same bytes, so the same lines come out.
    let log = stamped(&[
        ("00O ", b"section_start:1714557600:prepare_executor\r"),
        (
            "00O+",
            b"\x1b[0K\x1b[0K\x1b[36;1mPreparing the \"docker\" executor\x1b[0;m\x1b[0;m",
        ),
        (
            "00O ",
            b"\x1b[0KUsing Docker executor with image rust:1.85 ...\x1b[0;m",
        ),
        ("00O ", b"section_end:1714557602:prepare_executor\r"),
        ("00O+", b"\x1b[0Ksection_start:1714557602:get_sources\r"),
        (
            "00O+",
            b"\x1b[0K\x1b[0K\x1b[36;1mGetting source from Git repository\x1b[0;m\x1b[0;m",
        ),
        ("01O ", b"Fetching changes with git depth set to 20..."),
    ]);
    let lines = parse(&log);
    assert_eq!(owned(view(&lines)), runner_trace_lines()[2..7].to_vec());
    // A line begun by a marker has the time of the physical line the marker begins on.
    let times: Vec<Option<String>> = lines.iter().map(|l| l.timestamp.clone()).collect();
    assert_eq!(times, [time(0), time(2), time(3), time(4), time(6)]);
}
