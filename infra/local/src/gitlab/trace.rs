//! Generated GitLab job traces of any size, streamed in chunks and never held whole, written
//! the way gitlab-runner writes them (read in gitlabhq/gitlab-runner at d79f3e7b; the
//! corrected `reference/gitlab-api.md` §5–§8 agrees):
//! - the runner's own sections (common/build.go: `prepare_executor`, `prepare_script`,
//!   `get_sources`, `restore_cache`, `step_script`, `upload_artifacts_on_success`,
//!   `cleanup_file_variables`, in that order; a stage with nothing to do writes none) are
//!   `section_start:<ts>:<name>\r\e[0K` with no newline and no escape before it
//!   (helpers/build_section.go, `SendRawLog`), followed on the same raw line by the stage's
//!   description, which `Println` prefixes with `\e[0K` and ends with `\e[0;m`
//!   (common/buildlogger/internal/tee.go); the end marker is written the same way, so the
//!   next start (or the final "Job succeeded") shares its raw line;
//! - user sections inside `step_script` in the documented prefixed form
//!   (`\e[0Ksection_start:<ts>:<name>[collapsed=true]\r\e[0K<header>`), nested; a script
//!   that fails leaves its open sections unclosed;
//! - with `FF_TIMESTAMPS` every physical line has the 32-byte header, and a write holding a
//!   `\r` but no `\n` (a marker, a progress bar frame) is a physical line of its own whose
//!   next write on that stream continues with `+`
//!   (common/buildlogger/internal/timestamper/timestamper.go); the runner's "Job succeeded"
//!   comes through a new logger, so it never continues a marker's line (common/build.go
//!   `setTraceStatus`);
//! - the log limit cuts the output at exactly N bytes, mid-line, and appends its message
//!   without timestamp headers, since it sits below the timestamper
//!   (helpers/trace/buffer.go `limitWriter`); nothing is written after it.
//!
//! Beside the bytes, the generator knows what GitLab's job log page shows for each line
//! (section path, text, a footer's duration): [`TraceShape::expected_lines`], recorded as
//! the generator writes, never by parsing the bytes.

use bytes::Bytes;

/// How a generated trace looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceShape {
    /// The log grows to about this size before it ends.
    pub bytes: u64,
    pub seed: u64,
    pub timestamps: bool,
    /// Nested user sections inside `step_script`.
    pub nested_sections: bool,
    /// Colours in the script's own output (the runner's lines always have theirs).
    pub colours: bool,
    pub progress_bars: bool,
    /// Now and then a line of 20 KiB.
    pub long_lines: bool,
    /// The runner's output limit cuts the log where it reaches `bytes`.
    pub log_limit: bool,
    /// The script fails (inside a user section, if there are any) and the job with it.
    pub failed: bool,
    /// Pad output lines to about this many bytes (0: natural lengths, ~50 bytes), like
    /// a job that prints large JSON documents or minified assets.
    pub line_bytes: usize,
}

impl Default for TraceShape {
    fn default() -> Self {
        TraceShape {
            bytes: 64 * 1024,
            seed: 1,
            timestamps: true,
            nested_sections: true,
            colours: true,
            progress_bars: true,
            long_lines: false,
            log_limit: false,
            failed: false,
            line_bytes: 0,
        }
    }
}

/// A line as GitLab's job log page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedLine {
    /// The sections the line is in, outermost first, joined by `/` ("" outside any).
    pub path: String,
    /// The visible text: no escapes, a progress bar's last frame.
    pub text: String,
    /// A section's footer (the line of its end marker): how long the section took.
    pub duration_s: Option<u64>,
}

impl TraceShape {
    /// The number of lines in the trace, as written.
    pub fn count_lines(&self) -> u64 {
        let mut generator = TraceGenerator::new(self.clone());
        while generator.next().is_some() {}
        generator.lines
    }

    /// Every line of the trace as GitLab's job log page shows it, in order.
    pub fn expected_lines(&self) -> Vec<ExpectedLine> {
        let mut generator = TraceGenerator::new(self.clone());
        generator.expected = Some(Vec::new());
        while generator.next().is_some() {}
        generator.expected.unwrap_or_default()
    }

    /// The size of the trace in bytes, counted as it is generated.
    pub fn bytes_len(&self) -> u64 {
        TraceGenerator::new(self.clone())
            .map(|chunk| chunk.len() as u64)
            .sum()
    }

    /// The whole trace (for small ones, in tests).
    pub fn bytes(&self) -> Vec<u8> {
        TraceGenerator::new(self.clone())
            .flat_map(|chunk| chunk.to_vec())
            .collect()
    }
}

/// Chunk size of the stream.
const CHUNK_BYTES: usize = 64 * 1024;
/// 2026-11-22T10:00:00Z: when generated jobs start.
const START_UNIX: u64 = 1_795_341_600;
/// helpers/ansi_colors.go.
const BOLD_CYAN: &str = "\x1b[36;1m";
const BOLD_GREEN: &str = "\x1b[32;1m";
const BOLD_RED: &str = "\x1b[31;1m";
const BOLD_YELLOW: &str = "\x1b[33;1m";
const RESET: &str = "\x1b[0;m";
const CLEAR: &str = "\x1b[0K";
/// The stages between prepare_executor and step_script: name, description
/// (`GetStageDescription`), and a line their script prints.
const STAGES_BEFORE_SCRIPT: [(&str, &str, &str); 3] = [
    (
        "prepare_script",
        "Preparing environment",
        "Running on runner-xyz12abc-project-5-concurrent-0 via docker-host-1...",
    ),
    (
        "get_sources",
        "Getting source from Git repository",
        "Fetching changes with git depth set to 20...",
    ),
    (
        "restore_cache",
        "Restoring cache",
        "Checking cache for default-protected...",
    ),
];
/// User section names by depth, so that no section nests in one of its own name.
const USER_SECTIONS: [[&str; 2]; 3] = [
    ["build", "compile"],
    ["unit_tests", "lint"],
    ["package", "report"],
];
const CRATES: [&str; 8] = [
    "serde",
    "tokio",
    "hyper",
    "rustls",
    "aws-sdk-s3",
    "regex",
    "clap",
    "prost",
];

/// A writer of the runner: stream id and stdout or stderr, each with its own timestamper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// `00O`: the runner and executor (common/buildlogger/build_logger.go
    /// `StreamExecutorLevel = 0`).
    Runner,
    /// `01O`: the job script's stdout (`StreamWorkLevel = 1`, `Stdout`; common/build.go
    /// `StepRunnerStream(buildlogger.StreamWorkLevel, buildlogger.Stdout)`).
    Script,
    /// `01E`: the job script's stderr (the same stream number, `Stderr`).
    ScriptErr,
}

impl Stream {
    fn header(self) -> &'static str {
        match self {
            Stream::Runner => "00O",
            Stream::Script => "01O",
            Stream::ScriptErr => "01E",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Iterator of trace chunks.
pub struct TraceGenerator {
    shape: TraceShape,
    rng: u64,
    out: Vec<u8>,
    written: u64,
    /// Lines written so far, as GitLab's page counts them.
    pub lines: u64,
    /// What each line shows, when asked for.
    expected: Option<Vec<ExpectedLine>>,
    /// Milliseconds since the job's start: every write moves time on.
    clock_ms: u64,
    phase: Phase,
    /// Open sections, outermost first, with the time of their start marker.
    sections: Vec<(&'static str, u64)>,
    /// How many of `sections` the script opened.
    user_sections: usize,
    /// Per stream: its next physical line continues the last one (`+`).
    continues: [bool; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preamble,
    Body,
    Closing,
    Done,
}

impl TraceGenerator {
    pub fn new(shape: TraceShape) -> Self {
        TraceGenerator {
            rng: shape.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            shape,
            out: Vec::with_capacity(CHUNK_BYTES * 2),
            written: 0,
            lines: 0,
            expected: None,
            clock_ms: 0,
            phase: Phase::Preamble,
            sections: Vec::new(),
            user_sections: 0,
            continues: [false; 3],
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: fast and deterministic.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn now_secs(&self) -> u64 {
        START_UNIX + self.clock_ms / 1000
    }

    /// Records a line GitLab's page shows, in the sections open now.
    fn expect(&mut self, text: &str, duration_s: Option<u64>) {
        self.lines += 1;
        if let Some(expected) = &mut self.expected {
            let path: Vec<&str> = self.sections.iter().map(|(name, _)| *name).collect();
            expected.push(ExpectedLine {
                path: path.join("/"),
                text: text.to_owned(),
                duration_s,
            });
        }
    }

    /// The timestamp header of a physical line of `stream`.
    fn header(&mut self, stream: Stream) {
        let continues = std::mem::take(&mut self.continues[stream.index()]);
        if !self.shape.timestamps {
            return;
        }
        let ms = self.clock_ms;
        let secs = START_UNIX + ms / 1000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let micros = (ms % 1000) * 1000 + (self.written + self.out.len() as u64) % 1000;
        self.out.extend_from_slice(
            format!(
                "2026-11-22T{h:02}:{m:02}:{s:02}.{micros:06}Z {}{}",
                stream.header(),
                if continues { '+' } else { ' ' }
            )
            .as_bytes(),
        );
    }

    /// One write of `stream`, as the timestamper splits it: a header before every line
    /// that ends in `\n`; a rest holding `\r` is a line of its own, continued by the next
    /// write. (Every write here ends in `\n` or holds a `\r`.)
    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        self.clock_ms += 7;
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.header(stream);
            self.out.extend_from_slice(&rest[..=end]);
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            self.header(stream);
            self.out.extend_from_slice(rest);
            if self.shape.timestamps {
                self.out.push(b'\n');
                self.continues[stream.index()] = true;
            }
        }
    }

    /// A line of the script: its text as written (escapes and all) and as shown.
    fn script_line(&mut self, stream: Stream, written: &str, shown: &str) {
        self.write(stream, format!("{written}\n").as_bytes());
        self.expect(shown, None);
    }

    /// A line the runner's shell script prints in bold green (shells/bash.go `Noticef`).
    fn notice(&mut self, text: &str) {
        self.script_line(Stream::Script, &format!("{BOLD_GREEN}{text}{RESET}"), text);
    }

    /// The runner's `Println`: `\e[0K` before, a reset after (tee.go).
    fn runner_line(&mut self, text: &str) {
        self.write(Stream::Runner, format!("{CLEAR}{text}{RESET}\n").as_bytes());
        self.expect(text, None);
    }

    /// `helpers.BuildSection`: the start marker, then the stage's description in cyan
    /// (common/build.go `executeStage`: `ANSI_BOLD_CYAN + GetStageDescription + ANSI_RESET`
    /// through `Println`, which adds its own `\e[0K` before and reset after: two resets).
    fn runner_section_start(&mut self, name: &'static str, description: &str) {
        let time = self.now_secs();
        let marker = format!("section_start:{time}:{name}\r{CLEAR}");
        self.write(Stream::Runner, marker.as_bytes());
        self.sections.push((name, time));
        self.write(
            Stream::Runner,
            format!("{CLEAR}{BOLD_CYAN}{description}{RESET}{RESET}\n").as_bytes(),
        );
        self.expect(description, None);
    }

    /// The runner's end marker: no newline, the next write shares its line.
    fn runner_section_end(&mut self, name: &'static str) {
        self.clock_ms += 1500;
        let time = self.now_secs();
        let marker = format!("section_end:{time}:{name}\r{CLEAR}");
        self.write(Stream::Runner, marker.as_bytes());
        self.end_section(name, time);
    }

    /// The footer of `name`, in the sections open now (inner ones left open by a failed
    /// script too), which then all close. GitLab's page keeps such inner sections open
    /// (gitlabhq lib/gitlab/ci/ansi2json/converter.rb, which leaves later lines in a
    /// section that has ended); the view here follows the ingest's documented rule instead
    /// (functions/common/src/logline/mod.rs: an end closes the inner sections left open).
    fn end_section(&mut self, name: &str, time: u64) {
        let Some(index) = self.sections.iter().rposition(|(open, _)| *open == name) else {
            return;
        };
        let duration = time - self.sections[index].1;
        self.expect("", Some(duration));
        // User sections are the innermost: they close first.
        let closed = self.sections.len() - index;
        self.user_sections = self.user_sections.saturating_sub(closed);
        self.sections.truncate(index);
    }

    /// A user section as the docs write it.
    fn user_section_start(&mut self, name: &'static str, collapsed: bool) {
        let options = if collapsed { "[collapsed=true]" } else { "" };
        let title = format!("Running {name}");
        let (on, off) = self.colour(BOLD_CYAN);
        let time = self.now_secs();
        let text =
            format!("{CLEAR}section_start:{time}:{name}{options}\r{CLEAR}{on}{title}{off}\n");
        self.write(Stream::Script, text.as_bytes());
        self.sections.push((name, time));
        self.user_sections += 1;
        self.expect(&title, None);
    }

    fn user_section_end(&mut self) {
        if self.user_sections == 0 {
            return;
        }
        let name = self.sections[self.sections.len() - 1].0;
        self.clock_ms += 1500;
        let time = self.now_secs();
        let text = format!("{CLEAR}section_end:{time}:{name}\r{CLEAR}\n");
        self.write(Stream::Script, text.as_bytes());
        self.end_section(name, time);
    }

    /// The escapes around a coloured part of the script's output, if it has colours.
    fn colour(&self, colour: &'static str) -> (&'static str, &'static str) {
        if self.shape.colours {
            (colour, "\x1b[0m")
        } else {
            ("", "")
        }
    }

    /// A progress bar redrawn in place, a write per frame: one line showing the last.
    fn progress(&mut self) {
        let mut last = String::new();
        for pct in [10, 35, 60, 85, 100] {
            last = format!(
                "Downloading artifacts {pct:>3}% [{:<20}]",
                "#".repeat(pct / 5)
            );
            self.write(Stream::Script, format!("{last}\r").as_bytes());
        }
        self.write(Stream::Script, b"\n");
        self.expect(&last, None);
    }

    fn body_line(&mut self) {
        let r = self.random();
        let n = r >> 8;
        match r % 100 {
            0..=59 => {
                let krate = CRATES[(n % CRATES.len() as u64) as usize];
                let shown = self.pad(format!(
                    "   Compiling {krate} v1.{}.{} (registry)",
                    n % 40,
                    n % 7
                ));
                let (on, off) = self.colour(BOLD_GREEN);
                let written = format!("{on}   Compiling{off}{}", &shown[12..]);
                self.script_line(Stream::Script, &written, &shown);
            }
            60..=79 => {
                let text = self.pad(format!("test tests::case_{n:x} ... ok"));
                self.script_line(Stream::Script, &text, &text);
            }
            80..=86 => {
                let text = format!(
                    "warning: unused variable `x{}` in src/lib.rs:{}",
                    n % 100,
                    n % 900
                );
                self.script_line(Stream::ScriptErr, &text, &text);
            }
            87..=90 if self.shape.progress_bars => self.progress(),
            91 if self.shape.long_lines => {
                let text = format!("payload={}", "x".repeat(20 * 1024));
                self.script_line(Stream::Script, &text, &text);
            }
            92..=94 if self.shape.nested_sections => {
                if self.user_sections < USER_SECTIONS.len() {
                    let name = USER_SECTIONS[self.user_sections][(n % 2) as usize];
                    self.user_section_start(name, n.is_multiple_of(3));
                } else {
                    self.user_section_end();
                }
            }
            95..=96 if self.shape.nested_sections => self.user_section_end(),
            _ => self.script_line(Stream::Script, "", ""),
        }
    }

    /// Pads an output line to `line_bytes`, as a line that carries a payload.
    fn pad(&self, mut text: String) -> String {
        if self.shape.line_bytes > text.len() + 9 {
            let pad = self.shape.line_bytes - text.len() - 9;
            text.push_str(" payload=");
            text.extend("0123456789abcdef".chars().cycle().take(pad));
        }
        text
    }

    /// The runner's output limit: a line cut short where the limit falls, then its message
    /// (buffer.go `writeLimitExceededMessage`); nothing after it reaches the log.
    fn cut_at_log_limit(&mut self) {
        let cut = "test tests::case_cut_off";
        self.header(Stream::Script);
        self.out.extend_from_slice(cut.as_bytes());
        let limit = self.written + self.out.len() as u64;
        self.out.extend_from_slice(
            format!(
                "\n{BOLD_YELLOW}Job's log exceeded limit of {limit} bytes.\n\
                 Job execution will continue but no more output will be collected.{RESET}\n"
            )
            .as_bytes(),
        );
        self.expect(cut, None);
        self.expect(&format!("Job's log exceeded limit of {limit} bytes."), None);
        self.expect(
            "Job execution will continue but no more output will be collected.",
            None,
        );
    }

    /// The script fails inside its innermost section (one is opened if it has them), and
    /// exits without closing any.
    fn script_fails(&mut self) {
        if self.shape.nested_sections && self.user_sections == 0 {
            self.user_section_start(USER_SECTIONS[0][0], false);
        }
        let failed = "test tests::case_that_fails ... FAILED";
        self.script_line(Stream::Script, failed, failed);
        let error = "error: test failed, to rerun pass `--lib`";
        let (on, off) = self.colour(BOLD_RED);
        self.script_line(Stream::ScriptErr, &format!("{on}{error}{off}"), error);
    }

    /// Writes the next part of the log into `out`.
    fn step(&mut self) {
        match self.phase {
            Phase::Preamble => {
                // common/build.go `printRunningWithHeader`, then the stages in order.
                self.runner_line("Running with gitlab-runner 17.5.0 (a1b2c3d4)");
                self.runner_line("  on docker-runner-1 xYz12AbC, system ID: s_0123456789ab");
                self.runner_section_start("prepare_executor", "Preparing the \"docker\" executor");
                self.runner_line("Using Docker executor with image rust:1.83 ...");
                self.runner_section_end("prepare_executor");
                for (name, description, notice) in STAGES_BEFORE_SCRIPT {
                    self.runner_section_start(name, description);
                    self.notice(notice);
                    self.runner_section_end(name);
                }
                self.runner_section_start(
                    "step_script",
                    "Executing \"step_script\" stage of the job script",
                );
                self.notice("$ cargo build --release && cargo test");
                self.phase = Phase::Body;
            }
            Phase::Body => {
                for _ in 0..64 {
                    self.body_line();
                }
                if self.written + self.out.len() as u64 >= self.shape.bytes {
                    self.phase = Phase::Closing;
                }
            }
            Phase::Closing => {
                self.phase = Phase::Done;
                if self.shape.log_limit {
                    self.cut_at_log_limit();
                    return;
                }
                if self.shape.failed {
                    self.script_fails();
                } else {
                    while self.user_sections > 0 {
                        self.user_section_end();
                    }
                }
                self.runner_section_end("step_script");
                if !self.shape.failed {
                    // Default `artifacts:when` is on_success (common/spec/spec.go
                    // `ArtifactWhenOnSuccess`, `when == ""`): nothing to upload on failure.
                    self.runner_section_start(
                        "upload_artifacts_on_success",
                        "Uploading artifacts for successful job",
                    );
                    self.notice("Uploading artifacts...");
                    self.runner_section_end("upload_artifacts_on_success");
                }
                self.runner_section_start(
                    "cleanup_file_variables",
                    "Cleaning up project directory and file based variables",
                );
                self.runner_section_end("cleanup_file_variables");
                // setTraceStatus: Infoln / SoftErrorln through a new logger.
                let (colour, status) = if self.shape.failed {
                    (BOLD_RED, "ERROR: Job failed: exit code 1")
                } else {
                    (BOLD_GREEN, "Job succeeded")
                };
                self.continues = [false; 3];
                self.write(
                    Stream::Runner,
                    format!("{colour}{status}{RESET}\n").as_bytes(),
                );
                self.expect(status, None);
            }
            Phase::Done => {}
        }
    }
}

impl Iterator for TraceGenerator {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        while self.out.len() < CHUNK_BYTES && self.phase != Phase::Done {
            self.step();
        }
        if self.out.is_empty() {
            return None;
        }
        let take = self.out.len().min(CHUNK_BYTES);
        let chunk = Bytes::copy_from_slice(&self.out[..take]);
        self.out.drain(..take);
        self.written += take as u64;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spigot_common::logline::{LineParser, SectionEvent, DEFAULT_MAX_LINE_BYTES};

    /// What our parser makes of `shape`'s trace, in the expected lines' terms.
    fn parsed(shape: &TraceShape) -> Vec<ExpectedLine> {
        let mut parser = LineParser::new(DEFAULT_MAX_LINE_BYTES);
        let mut lines = Vec::new();
        let mut emit = |line: &spigot_common::logline::LogLine<'_>| {
            let path: Vec<&str> = line.sections.iter().map(|s| s.name.as_str()).collect();
            lines.push(ExpectedLine {
                path: path.join("/"),
                text: line.message.to_owned(),
                duration_s: match line.section_event {
                    Some(SectionEvent::End { duration_secs }) => Some(duration_secs),
                    _ => None,
                },
            });
        };
        for chunk in TraceGenerator::new(shape.clone()) {
            parser.feed(&chunk, &mut emit);
        }
        parser.finish(&mut emit);
        lines
    }

    /// The first line where `actual` and `expected` differ, or a count that differs.
    fn first_difference(actual: &[ExpectedLine], expected: &[ExpectedLine]) -> Option<String> {
        actual
            .iter()
            .zip(expected)
            .position(|(a, e)| a != e)
            .map(|i| format!("line {}: {:?} != {:?}", i + 1, actual[i], expected[i]))
            .or_else(|| {
                (actual.len() != expected.len())
                    .then(|| format!("{} lines, expected {}", actual.len(), expected.len()))
            })
    }

    /// The index of the first raw line holding both `marker` and `name`.
    fn marker_line(raw_lines: &[&str], marker: &str, name: &str) -> usize {
        raw_lines
            .iter()
            .position(|l| l.contains(marker) && l.contains(name))
            .expect("the marker is written")
    }

    #[test]
    fn a_trace_has_the_size_asked_and_is_the_same_every_time() {
        let shape = TraceShape {
            bytes: 300_000,
            ..TraceShape::default()
        };
        let bytes = shape.bytes();
        assert!(
            bytes.len() as u64 >= 300_000 && bytes.len() < 400_000,
            "{}",
            bytes.len()
        );
        assert_eq!(bytes, shape.bytes());
        assert_ne!(
            bytes,
            TraceShape {
                seed: 2,
                ..shape.clone()
            }
            .bytes()
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("\x1b[32;1m") && text.contains(" 01O+Downloading"));
        assert!(text.contains(" 01E "), "stderr lines");
        assert!(shape.count_lines() > 3000);
        assert_eq!(shape.count_lines(), shape.expected_lines().len() as u64);
    }

    #[test]
    fn the_runner_writes_its_markers_bare_and_an_end_shares_a_line_with_the_next_start() {
        let shape = TraceShape {
            timestamps: false,
            bytes: 20_000,
            ..TraceShape::default()
        };
        let text = String::from_utf8(shape.bytes()).unwrap();
        let raw_lines: Vec<&str> = text.split('\n').collect();
        let start = raw_lines[marker_line(&raw_lines, "section_start:", ":prepare_executor")];
        assert!(
            start.starts_with("section_start:1795341600:prepare_executor\r\x1b[0K\x1b[0K\x1b[36;1mPreparing the \"docker\" executor"),
            "{start:?}"
        );
        assert!(
            raw_lines.iter().any(|l| l.starts_with("section_end:")
                && l.contains(":prepare_executor\r\x1b[0Ksection_start:")
                && l.contains(":prepare_script\r\x1b[0K\x1b[0K\x1b[36;1mPreparing environment")),
            "{text:?}"
        );
        assert!(
            raw_lines
                .iter()
                .any(|l| l.contains(":cleanup_file_variables\r\x1b[0K\x1b[32;1mJob succeeded")),
            "{text:?}"
        );
        // User sections: the documented form, inside step_script only.
        let user: Vec<&&str> = raw_lines
            .iter()
            .filter(|l| l.starts_with("\x1b[0Ksection_"))
            .collect();
        assert!(!user.is_empty());
        let expected = shape.expected_lines();
        let runner_sections: Vec<&str> = expected
            .iter()
            .filter(|l| l.duration_s.is_some() && !l.path.contains('/'))
            .map(|l| l.path.as_str())
            .collect();
        assert_eq!(
            runner_sections,
            [
                "prepare_executor",
                "prepare_script",
                "get_sources",
                "restore_cache",
                "step_script",
                "upload_artifacts_on_success",
                "cleanup_file_variables"
            ]
        );
        assert_eq!(
            expected.last().unwrap(),
            &ExpectedLine {
                path: String::new(),
                text: "Job succeeded".into(),
                duration_s: None
            }
        );
    }

    #[test]
    fn with_timestamps_a_marker_is_a_physical_line_continued_by_the_next_write() {
        let text = String::from_utf8(
            TraceShape {
                bytes: 2_000,
                ..TraceShape::default()
            }
            .bytes(),
        )
        .unwrap();
        let raw_lines: Vec<&str> = text.split('\n').collect();
        let end = marker_line(&raw_lines, "section_end:", ":prepare_executor");
        assert_eq!(
            &raw_lines[end][27..],
            " 00O section_end:1795341601:prepare_executor\r\x1b[0K"
        );
        assert!(raw_lines[end + 1][27..].starts_with(" 00O+section_start:"));
        assert!(raw_lines[end + 2][27..].starts_with(" 00O+\x1b[0K\x1b[36;1mPreparing environment"));
    }

    #[test]
    fn the_parser_sees_what_the_job_log_page_shows_in_every_shape() {
        for timestamps in [false, true] {
            for (failed, log_limit, long_lines) in [
                (false, false, false),
                (true, false, false),
                (false, true, false),
                (false, false, true),
            ] {
                let shape = TraceShape {
                    bytes: 120_000,
                    seed: 7,
                    timestamps,
                    failed,
                    log_limit,
                    long_lines,
                    ..TraceShape::default()
                };
                let mut expected = shape.expected_lines();
                // The ingest cuts lines at its cap: compare the long ones' start.
                for line in &mut expected {
                    line.text.truncate(DEFAULT_MAX_LINE_BYTES);
                }
                let actual = parsed(&shape);
                assert_eq!(first_difference(&actual, &expected), None, "{shape:?}");
            }
        }
    }
}
