//! Generated GitLab job traces of any size, streamed in chunks and never held whole, with
//! what real traces have (`reference/gitlab-api.md` §5–§8): the runner's sections and
//! nested user sections, `FF_TIMESTAMPS` headers with `+` continuations, SGR colours,
//! progress bars redrawn with `\r`, stderr lines, very long lines, and optionally the
//! runner's "log exceeded limit" tail.
//!
//! Deterministic for a shape: [`TraceShape::count_lines`] says how many lines a reader
//! should find, counted as the generator writes them, not by parsing.

use std::io::Write as _;

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
    pub colours: bool,
    pub progress_bars: bool,
    /// Now and then a line of 20 KiB.
    pub long_lines: bool,
    /// End with the runner's "Job's log exceeded limit" lines.
    pub log_limit: bool,
    /// The last line says the job failed.
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

impl TraceShape {
    /// The number of lines in the trace, as written.
    pub fn count_lines(&self) -> u64 {
        let mut generator = TraceGenerator::new(self.clone());
        while generator.next().is_some() {}
        generator.lines
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
const STEPS: [&str; 4] = [
    "prepare_executor",
    "get_sources",
    "restore_cache",
    "download_artifacts",
];
const USER_SECTIONS: [&str; 4] = ["build", "unit_tests", "lint", "package"];
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

/// Iterator of trace chunks.
pub struct TraceGenerator {
    shape: TraceShape,
    rng: u64,
    out: Vec<u8>,
    written: u64,
    /// Lines written so far.
    pub lines: u64,
    /// Milliseconds since the job's start: every line moves time on.
    clock_ms: u64,
    phase: Phase,
    open_user_sections: Vec<&'static str>,
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
            clock_ms: 0,
            phase: Phase::Preamble,
            open_user_sections: Vec::new(),
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

    /// The timestamp header of a physical line.
    fn header(&mut self, stream: u8, stderr: bool, continuation: bool) {
        if !self.shape.timestamps {
            return;
        }
        let ms = self.clock_ms;
        let secs = START_UNIX + ms / 1000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let _ = write!(
            self.out,
            "2026-11-22T{h:02}:{m:02}:{s:02}.{:06}Z {stream:02x}{}{}",
            (ms % 1000) * 1000 + (self.lines % 1000),
            if stderr { 'E' } else { 'O' },
            if continuation { '+' } else { ' ' },
        );
    }

    /// One line of text.
    fn line(&mut self, stream: u8, stderr: bool, text: &str) {
        self.clock_ms += 7;
        self.header(stream, stderr, false);
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'\n');
        self.lines += 1;
    }

    fn section_start(&mut self, name: &str, title: &str, collapsed: bool) {
        let options = if collapsed { "[collapsed=true]" } else { "" };
        let colour = if self.shape.colours { "\x1b[36;1m" } else { "" };
        let reset = if self.shape.colours { "\x1b[0;m" } else { "" };
        let text = format!(
            "\x1b[0Ksection_start:{}:{name}{options}\r\x1b[0K{colour}{title}{reset}",
            self.now_secs()
        );
        self.line(0, false, &text);
    }

    fn section_end(&mut self, name: &str) {
        self.clock_ms += 1500;
        let text = format!("\x1b[0Ksection_end:{}:{name}\r\x1b[0K", self.now_secs());
        self.line(0, false, &text);
    }

    /// A progress bar redrawn in place: one line.
    fn progress(&mut self) {
        let steps = [10, 35, 60, 85, 100];
        self.clock_ms += 3;
        if self.shape.timestamps {
            // The runner flushes at every \r and continues with `+` lines.
            for (i, pct) in steps.iter().enumerate() {
                self.header(1, false, i > 0);
                let _ = write!(
                    self.out,
                    "Downloading artifacts {pct:>3}% [{:<20}]\r\n",
                    "#".repeat(pct / 5)
                );
            }
        } else {
            for pct in steps {
                let _ = write!(
                    self.out,
                    "Downloading artifacts {pct:>3}% [{:<20}]\r",
                    "#".repeat(pct / 5)
                );
            }
            self.out.push(b'\n');
        }
        self.lines += 1;
    }

    fn body_line(&mut self) {
        let r = self.random();
        let n = r >> 8;
        match r % 100 {
            0..=59 => {
                let krate = CRATES[(n % CRATES.len() as u64) as usize];
                let mut text = if self.shape.colours {
                    format!(
                        "\x1b[32;1m   Compiling\x1b[0m {krate} v1.{}.{} (registry)",
                        n % 40,
                        n % 7
                    )
                } else {
                    format!("   Compiling {krate} v1.{}.{} (registry)", n % 40, n % 7)
                };
                self.pad(&mut text);
                self.line(1, false, &text);
            }
            60..=79 => {
                let mut text = format!("test tests::case_{n:x} ... ok");
                self.pad(&mut text);
                self.line(1, false, &text);
            }
            80..=86 => {
                let text = format!(
                    "warning: unused variable `x{}` in src/lib.rs:{}",
                    n % 100,
                    n % 900
                );
                self.line(1, true, &text);
            }
            87..=90 if self.shape.progress_bars => self.progress(),
            91 if self.shape.long_lines => {
                let text = format!("payload={}", "x".repeat(20 * 1024));
                self.line(1, false, &text);
            }
            92..=94 if self.shape.nested_sections => {
                if self.open_user_sections.len() < 3 {
                    let name = USER_SECTIONS[self.open_user_sections.len() + (n % 2) as usize];
                    self.open_user_sections.push(name);
                    self.section_start(name, &format!("Running {name}"), n.is_multiple_of(3));
                } else {
                    self.close_user_section();
                }
            }
            95..=96 if self.shape.nested_sections && !self.open_user_sections.is_empty() => {
                self.close_user_section();
            }
            _ => self.line(1, false, ""),
        }
    }

    /// Pads an output line to `line_bytes`, as a line that carries a payload.
    fn pad(&self, text: &mut String) {
        if self.shape.line_bytes > text.len() + 9 {
            let pad = self.shape.line_bytes - text.len() - 9;
            text.push_str(" payload=");
            text.extend("0123456789abcdef".chars().cycle().take(pad));
        }
    }

    fn close_user_section(&mut self) {
        if let Some(name) = self.open_user_sections.pop() {
            self.section_end(name);
        }
    }

    /// Writes the next part of the log into `out`.
    fn step(&mut self) {
        match self.phase {
            Phase::Preamble => {
                self.line(0, false, "Running with gitlab-runner 17.5.0 (a1b2c3d4)");
                self.line(
                    0,
                    false,
                    "  on docker-runner-1 xYz12AbC, system ID: s_0123456789ab",
                );
                for step in STEPS {
                    self.section_start(step, &format!("Step {step}"), false);
                    self.line(0, false, &format!("Doing {step}"));
                    self.section_end(step);
                }
                self.section_start(
                    "step_script",
                    "Executing \"step_script\" stage of the job script",
                    false,
                );
                self.line(1, false, "$ cargo build --release && cargo test");
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
                while !self.open_user_sections.is_empty() {
                    self.close_user_section();
                }
                self.section_end("step_script");
                self.section_start(
                    "cleanup_file_variables",
                    "Cleaning up project directory and file based variables",
                    true,
                );
                self.section_end("cleanup_file_variables");
                if self.shape.log_limit {
                    let (on, off) = if self.shape.colours {
                        ("\x1b[33;1m", "\x1b[0;m")
                    } else {
                        ("", "")
                    };
                    let _ = write!(
                        self.out,
                        "\n{on}Job's log exceeded limit of 4194304 bytes.{off}\n{on}Job execution will continue but no more output will be collected.{off}\n"
                    );
                    self.lines += 3;
                } else if self.shape.failed {
                    let text = if self.shape.colours {
                        "\x1b[31;1mERROR: Job failed: exit code 1\x1b[0;m"
                    } else {
                        "ERROR: Job failed: exit code 1"
                    };
                    self.line(0, false, text);
                } else {
                    let text = if self.shape.colours {
                        "\x1b[32;1mJob succeeded\x1b[0;m"
                    } else {
                        "Job succeeded"
                    };
                    self.line(0, false, text);
                }
                self.phase = Phase::Done;
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
        assert!(text.contains("section_start:") && text.contains("section_end:"));
        assert!(
            text.contains("\x1b[32;1m") && text.contains("01O+"),
            "colours and continuations"
        );
        assert!(text.contains(" 01E "), "stderr lines");
        assert!(shape.count_lines() > 3000);
    }

    #[test]
    fn without_timestamps_progress_bars_share_one_physical_line() {
        let shape = TraceShape {
            timestamps: false,
            bytes: 50_000,
            ..TraceShape::default()
        };
        let bytes = shape.bytes();
        assert!(!String::from_utf8_lossy(&bytes).contains("01O"));
        let physical = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        assert_eq!(physical, shape.count_lines());
    }
}
