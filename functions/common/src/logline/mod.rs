//! CI console logs, parsed line by line as they stream in: GitLab job traces now, Jenkins
//! console logs later. Facts: `reference/gitlab-api.md` §5–§8.
//!
//! What the bytes go through, in this order:
//! 1. physical lines end at `\n`. The per-line timestamp header of `FF_TIMESTAMPS`
//!    (`2024-05-01T10:00:00.123456Z 01O `, 32 bytes) is taken off, and a `+` line is joined
//!    to the one before it (the runner splits lines after a write with a `\r` and at
//!    8 KiB: gitlab-org/gitlab-runner common/buildlogger/internal/timestamper/timestamper.go).
//!    A physical line with its continuations is a *logical line*: what GitLab reads as one
//!    (gitlabhq/gitlabhq lib/gitlab/ci/ansi2json/converter.rb joins them before anything
//!    else, so a marker may span a `+`);
//! 2. section markers (`section_start:TIME:NAME[OPTIONS]\r\e[0K`, `section_end:…`) are
//!    found anywhere in a logical line, with or without an escape before them, before
//!    anything reads `\r`, since they contain one (grammar: `marker.rs`);
//! 3. the markers cut the logical line into lines as GitLab's job log page shows them
//!    (converter.rb, and its spec spec/lib/gitlab/ci/ansi2json_spec.rb):
//!    - the text before the first marker is a line of its own, outside the section;
//!    - a start marker opens its section; the text after it is the section's header line
//!      (`section_event = Start`);
//!    - an end marker of an open section gives an empty footer line still in the section,
//!      with its duration (`section_event = End`), and the text after it is a line outside;
//!    - an end marker of a section that is not open is dropped and the text goes on (GitLab
//!      ignores it too);
//!    - a stretch without visible text is no line, except that every logical line gives at
//!      least one (its last stretch), so that blank and marker-only lines are documents too
//!      (GitLab's page drops those).
//!
//!    So the runner's `section_end:T:a\r\e[0Ksection_start:T:b\r\e[0K\e[0K\e[36;1mHeader` is
//!    two lines: the footer of `a` (path `…/a`, empty, its duration), then `Header` (path
//!    `…/b`, `Start`). A line carries the timestamp header in force where it begins;
//! 4. carriage returns: the last non-empty `\r`-separated stretch is the text (progress
//!    bars keep their final state; a CRLF ending leaves the text as it is);
//! 5. escape sequences (SGR colours, erase-line, cursor moves, OSC titles) are removed;
//! 6. the bytes are read as UTF-8, invalid sequences replaced;
//! 7. a line longer than the cap is cut (on a character boundary) and flagged.
//!
//! Bounded memory and output, whatever the input, and the same lines however the input is
//! cut into chunks: every step reads the bytes as a stream and keeps at most a few caps'
//! worth of them ([`LineParser::buffered_bytes`]); nothing is decided by where a chunk
//! ends. The caps on sections, which real logs stay far below (names are
//! `[a-zA-Z0-9_.-]+` by GitLab's regex, a runner's are under 30 bytes, real nesting is a
//! handful deep), and what happens past them:
//! - [`MAX_SECTION_DEPTH`]: a section started while that many are open is not opened. Its
//!   lines keep the outer path and are flagged `section_depth_exceeded`. An end marker that
//!   names no open section then closes the innermost unopened one (nesting is assumed); one
//!   that names an open section closes it and everything inside, unopened ones too.
//! - [`MAX_SECTION_NAME_BYTES`]: a longer name is cut to it, in start and end markers
//!   alike (so they still match), and the lines in that section are flagged
//!   `section_name_truncated`.
//! - [`MAX_SECTION_MARKER_BYTES`]: something that still reads as a marker after that many
//!   bytes (a name or options running on) is text, and its line is flagged
//!   `section_markers_ignored`.
//! - [`MAX_SECTION_MARKERS_PER_LINE`]: markers past that many on one logical line are taken
//!   out of the text but open or close nothing, and the line is flagged
//!   `section_markers_ignored`.
//!
//! So a line's sections hold at most `MAX_SECTION_DEPTH × MAX_SECTION_NAME_BYTES` bytes of
//! names (and the innermost's options, within a marker's cap), a logical line gives at
//! most `2 × MAX_SECTION_MARKERS_PER_LINE + 1` lines, and the output stays linear in the
//! input.
//!
//! An end closes the inner sections left open with it (a stack; GitLab's page keeps them
//! open, which leaves later lines in a section that has ended).

#[cfg(any(test, feature = "fuzzing"))]
pub mod check;
mod marker;
#[cfg(test)]
mod tests;
mod text;

use marker::{Marker, Parsed};
use text::TextCleaner;

/// A stream of the runner: its id (`00` runner, `01` script, `0f`+ services) and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub id: u8,
    pub stderr: bool,
}

/// A section open at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// At most [`MAX_SECTION_NAME_BYTES`].
    pub name: String,
    /// The marker's name was longer and was cut.
    pub name_truncated: bool,
    /// The time of its start marker (Unix seconds from the runner).
    pub started_at: u64,
    /// The marker's options, e.g. `collapsed=true`.
    pub options: Option<String>,
}

/// The section marker that begins a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionEvent {
    /// The section's header line: the text after its start marker.
    Start,
    /// The section's footer: an empty line after its end marker.
    End { duration_secs: u64 },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// 1-based.
    pub number: u64,
    /// Byte offset in the raw log where the line begins: its physical line's first byte,
    /// or for a line begun by a section marker (a header, a footer) the marker's first
    /// byte, and for the text after an end marker the byte after it.
    pub offset: u64,
    pub message: &'a str,
    /// The line's own time from the timestamp header (RFC 3339, microseconds, UTC).
    pub timestamp: Option<&'a str>,
    pub stream: Option<Stream>,
    /// The sections the line is in, outermost first. A section's footer is still in it.
    pub sections: &'a [Section],
    pub section_event: Option<SectionEvent>,
    /// The line was longer than the cap and was cut.
    pub truncated: bool,
    /// The runner's "Job's log exceeded limit of N bytes." line: the log is incomplete.
    pub log_limit_exceeded: bool,
    /// The line is inside sections nested deeper than [`MAX_SECTION_DEPTH`], which
    /// `sections` leaves out.
    pub section_depth_exceeded: bool,
    /// A section of `sections` had its name cut at [`MAX_SECTION_NAME_BYTES`].
    pub section_name_truncated: bool,
    /// Section markers on the line were not applied: past
    /// [`MAX_SECTION_MARKERS_PER_LINE`], or longer than [`MAX_SECTION_MARKER_BYTES`].
    pub section_markers_ignored: bool,
}

/// Length of the timestamp header.
const HEADER_LEN: usize = 32;
const LOG_LIMIT_PREFIX: &str = "Job's log exceeded limit of ";

/// Default cap of a line, in bytes of message.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024;
/// Sections open at once.
pub const MAX_SECTION_DEPTH: usize = 16;
/// Bytes of a section's name.
pub const MAX_SECTION_NAME_BYTES: usize = 128;
/// Bytes of one section marker, from `section_` to its `\r\e[0K`.
pub const MAX_SECTION_MARKER_BYTES: usize = 512;
/// Section markers applied per logical line.
pub const MAX_SECTION_MARKERS_PER_LINE: usize = 64;

/// The streaming parser: [`LineParser::feed`] chunks as they arrive, then
/// [`LineParser::finish`].
pub struct LineParser {
    max_line_bytes: usize,
    /// Total bytes fed.
    consumed: u64,
    lines: u64,
    /// The next byte begins a physical line.
    at_line_start: bool,
    /// The first bytes of a physical line that a chunk ended in before its header could
    /// be read.
    line_head: Vec<u8>,
    line_head_offset: u64,
    logical: Option<LogicalLine>,
    /// The stretch of the logical line since its last marker.
    part: Part,
    text: TextCleaner,
    /// Bytes that may begin a marker, held until that is known.
    candidate: Vec<u8>,
    /// Where each piece of `candidate` came from: a candidate may span a `+` continuation.
    candidate_pieces: Vec<Piece>,
    prefix_finder: memchr::memmem::Finder<'static>,
    sections: Vec<Section>,
    /// Sections started past [`MAX_SECTION_DEPTH`] and not ended yet.
    unopened_sections: usize,
    /// A section of `sections` has a cut name.
    open_name_truncated: bool,
}

/// The timestamp header of a physical line.
#[derive(Debug, Clone, Copy)]
struct Header {
    time: [u8; 27],
    stream: Stream,
    continuation: bool,
}

struct LogicalLine {
    timestamped: bool,
    /// The header of its latest physical line: a line begun by a marker takes it.
    time: Option<[u8; 27]>,
    stream: Option<Stream>,
    markers: usize,
    /// A line of it was emitted.
    emitted: bool,
}

/// Bytes of a held candidate from one physical line.
#[derive(Debug, Clone, Copy)]
struct Piece {
    /// Index in the candidate.
    at: usize,
    /// Offset in the raw log.
    offset: u64,
    /// The timestamp header of its physical line.
    time: Option<[u8; 27]>,
    stream: Option<Stream>,
}

/// Where a marker begins: the line it starts takes its offset and header.
#[derive(Debug, Clone, Copy)]
struct Position {
    offset: u64,
    time: Option<[u8; 27]>,
    stream: Option<Stream>,
}

/// What the line being built will carry besides its text.
#[derive(Debug, Clone, Default)]
struct Part {
    offset: u64,
    timestamp: Option<[u8; 27]>,
    stream: Option<Stream>,
    event: Option<SectionEvent>,
    depth_exceeded: bool,
    markers_ignored: bool,
}

/// The messages of a whole text's lines (CRLF, carriage-return redraws and ANSI
/// cleaned), as a reader should see them.
pub fn clean_lines(text: &[u8]) -> Vec<String> {
    let mut parser = LineParser::default();
    let mut lines = Vec::new();
    let mut take = |line: &LogLine<'_>| lines.push(line.message.to_owned());
    parser.feed(text, &mut take);
    parser.finish(&mut take);
    lines
}

impl Default for LineParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE_BYTES)
    }
}

impl LineParser {
    pub fn new(max_line_bytes: usize) -> Self {
        let max_line_bytes = max_line_bytes.max(16);
        LineParser {
            max_line_bytes,
            consumed: 0,
            lines: 0,
            at_line_start: true,
            line_head: Vec::new(),
            line_head_offset: 0,
            logical: None,
            part: Part::default(),
            text: TextCleaner::new(max_line_bytes),
            candidate: Vec::new(),
            candidate_pieces: Vec::new(),
            prefix_finder: memchr::memmem::Finder::new(marker::PREFIX),
            sections: Vec::new(),
            unopened_sections: 0,
            open_name_truncated: false,
        }
    }

    /// Lines emitted so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.consumed
    }

    /// Bytes held for lines not yet emitted: the text of the line being built, a marker
    /// not yet complete (and where its pieces came from), a header not yet read, the open
    /// sections' names and options. Bounded by the caps, whatever the input.
    pub fn buffered_bytes(&self) -> usize {
        let sections: usize = self
            .sections
            .iter()
            .map(|s| s.name.len() + s.options.as_ref().map_or(0, String::len))
            .sum();
        self.line_head.len()
            + self.candidate.len()
            + self.candidate_pieces.len() * std::mem::size_of::<Piece>()
            + self.text.held()
            + sections
    }

    /// Parses `chunk`; `emit` sees every line completed by it.
    pub fn feed(&mut self, chunk: &[u8], emit: &mut impl FnMut(&LogLine<'_>)) {
        let chunk_offset = self.consumed;
        self.consumed += chunk.len() as u64;
        let mut at = 0;
        while at < chunk.len() {
            let rest = &chunk[at..];
            let offset = chunk_offset + at as u64;
            if self.at_line_start {
                at += self.line_start(rest, offset, emit);
                continue;
            }
            match memchr::memchr(b'\n', rest) {
                Some(newline) => {
                    self.payload(&rest[..newline], offset, emit);
                    self.end_physical_line(emit);
                    at += newline + 1;
                }
                None => {
                    self.payload(rest, offset, emit);
                    at = chunk.len();
                }
            }
        }
    }

    /// Ends the log: emits the last line.
    pub fn finish(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        if !self.line_head.is_empty() {
            // A last line shorter than a header.
            let head = std::mem::take(&mut self.line_head);
            self.begin_physical_line(None, self.line_head_offset, emit);
            self.payload(&head, self.line_head_offset, emit);
        }
        self.end_logical_line(emit);
        self.at_line_start = true;
    }

    /// Reads the timestamp header at the start of a physical line (`rest` begins it, or
    /// goes on with it when the chunk before ended in its first bytes): the bytes taken.
    fn line_start(
        &mut self,
        rest: &[u8],
        offset: u64,
        emit: &mut impl FnMut(&LogLine<'_>),
    ) -> usize {
        let wanted = HEADER_LEN - self.line_head.len();
        let window = &rest[..rest.len().min(wanted)];
        let newline = memchr::memchr(b'\n', window);
        if newline.is_none() && window.len() < wanted {
            if self.line_head.is_empty() {
                self.line_head_offset = offset;
            }
            self.line_head.extend_from_slice(window);
            return window.len();
        }
        self.at_line_start = false;
        if self.line_head.is_empty() {
            let header = match newline {
                None => read_header(window),
                Some(_) => None,
            };
            self.begin_physical_line(header, offset, emit);
            return if header.is_some() { HEADER_LEN } else { 0 };
        }
        let taken = newline.unwrap_or(window.len());
        self.line_head.extend_from_slice(&window[..taken]);
        let mut head = std::mem::take(&mut self.line_head);
        let head_offset = self.line_head_offset;
        let header = read_header(&head);
        self.begin_physical_line(header, head_offset, emit);
        if header.is_none() {
            self.payload(&head, head_offset, emit);
        }
        head.clear();
        self.line_head = head;
        taken
    }

    /// A physical line begins: it continues the logical line (a `+` header) or starts
    /// the next one.
    fn begin_physical_line(
        &mut self,
        header: Option<Header>,
        offset: u64,
        emit: &mut impl FnMut(&LogLine<'_>),
    ) {
        if let (Some(header), Some(logical)) = (header, self.logical.as_mut()) {
            if header.continuation {
                logical.time = Some(header.time);
                logical.stream = Some(header.stream);
                return;
            }
        }
        self.end_logical_line(emit);
        let (time, stream) = (header.map(|h| h.time), header.map(|h| h.stream));
        self.logical = Some(LogicalLine {
            timestamped: header.is_some(),
            time,
            stream,
            markers: 0,
            emitted: false,
        });
        self.part = Part {
            offset,
            timestamp: time,
            stream,
            event: None,
            depth_exceeded: self.unopened_sections > 0,
            markers_ignored: false,
        };
    }

    /// Without timestamps every physical line is a logical line of its own; with them, a
    /// `+` line may still follow.
    fn end_physical_line(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        self.at_line_start = true;
        if self.logical.as_ref().is_some_and(|l| !l.timestamped) {
            self.end_logical_line(emit);
        }
    }

    fn end_logical_line(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        if self.logical.is_none() {
            return;
        }
        // Nothing more can complete a marker: what is held is text.
        while !self.candidate.is_empty() {
            self.reject_candidate(emit);
        }
        self.close_part(true, emit);
        self.logical = None;
    }

    /// Payload bytes of the logical line, at `offset` in the raw log.
    fn payload(&mut self, mut bytes: &[u8], mut offset: u64, emit: &mut impl FnMut(&LogLine<'_>)) {
        while !self.candidate.is_empty() {
            if bytes.is_empty() {
                return;
            }
            let held = self.candidate.len();
            // One byte past the cap is enough to know a marker is too long.
            let taken = bytes
                .len()
                .min(MAX_SECTION_MARKER_BYTES + 1 - held.min(MAX_SECTION_MARKER_BYTES));
            // Out of `self` while a marker borrows it.
            let mut candidate = std::mem::take(&mut self.candidate);
            candidate.extend_from_slice(&bytes[..taken]);
            match marker::parse(&candidate) {
                Parsed::Incomplete => {
                    candidate.truncate(held);
                    self.candidate = candidate;
                    self.hold(&bytes[..taken], offset);
                    return;
                }
                Parsed::Marker(marker, len) => {
                    let used = len.saturating_sub(held);
                    let start = self.candidate_pieces.first().map_or_else(
                        || self.position(offset),
                        |p| Position {
                            offset: p.offset,
                            time: p.time,
                            stream: p.stream,
                        },
                    );
                    self.candidate_pieces.clear();
                    self.apply_marker(marker, start, offset + used as u64, emit);
                    candidate.clear();
                    self.candidate = candidate;
                    bytes = &bytes[used.min(bytes.len())..];
                    offset += used as u64;
                }
                parsed => {
                    self.part.markers_ignored |= parsed == Parsed::TooLong;
                    candidate.truncate(held);
                    self.candidate = candidate;
                    self.reject_candidate(emit);
                }
            }
        }
        self.scan(bytes, offset, emit);
    }

    /// Finds the markers in `bytes`; the text between them goes to the line being built.
    fn scan(&mut self, mut bytes: &[u8], mut offset: u64, emit: &mut impl FnMut(&LogLine<'_>)) {
        loop {
            let Some(at) = self.prefix_finder.find(bytes) else {
                // The end may begin a marker that the next bytes complete.
                let text_len = bytes.len() - marker::partial_prefix_len(bytes);
                self.text.push(&bytes[..text_len]);
                self.hold(&bytes[text_len..], offset + text_len as u64);
                return;
            };
            self.text.push(&bytes[..at]);
            let rest = &bytes[at..];
            let rest_offset = offset + at as u64;
            match marker::parse(rest) {
                Parsed::Marker(marker, len) => {
                    let end = rest_offset + len as u64;
                    let start = self.position(rest_offset);
                    self.apply_marker(marker, start, end, emit);
                    bytes = &rest[len..];
                    offset = end;
                }
                Parsed::Incomplete => {
                    self.hold(rest, rest_offset);
                    return;
                }
                parsed => {
                    self.part.markers_ignored |= parsed == Parsed::TooLong;
                    self.text.push(&rest[..1]);
                    bytes = &rest[1..];
                    offset = rest_offset + 1;
                }
            }
        }
    }

    fn hold(&mut self, bytes: &[u8], offset: u64) {
        if !bytes.is_empty() {
            let Position { time, stream, .. } = self.position(offset);
            self.candidate_pieces.push(Piece {
                at: self.candidate.len(),
                offset,
                time,
                stream,
            });
            self.candidate.extend_from_slice(bytes);
        }
    }

    /// `offset` with the header of the physical line being read.
    fn position(&self, offset: u64) -> Position {
        let (time, stream) = self
            .logical
            .as_ref()
            .map_or((None, None), |l| (l.time, l.stream));
        Position {
            offset,
            time,
            stream,
        }
    }

    /// The held bytes are no marker: the first is text, the others are read again (a
    /// marker may begin among them). No marker can end among them (its `\r\e[0K` would
    /// have ended or broken the held one), so only a new candidate's start is read there,
    /// with the header of the physical line each piece came from.
    fn reject_candidate(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        let mut candidate = std::mem::take(&mut self.candidate);
        let mut pieces = std::mem::take(&mut self.candidate_pieces);
        self.text.push(&candidate[..1.min(candidate.len())]);
        let in_force = self.position(0);
        for (i, piece) in pieces.iter().enumerate() {
            let end = pieces.get(i + 1).map_or(candidate.len(), |next| next.at);
            let from = piece.at.max(1);
            if from < end {
                self.set_header(piece.time, piece.stream);
                self.payload(
                    &candidate[from..end],
                    piece.offset + (from - piece.at) as u64,
                    emit,
                );
            }
        }
        self.set_header(in_force.time, in_force.stream);
        if self.candidate.is_empty() {
            // Kept for the next candidate: a line ending in `s` makes one.
            candidate.clear();
            pieces.clear();
            self.candidate = candidate;
            self.candidate_pieces = pieces;
        }
    }

    fn set_header(&mut self, time: Option<[u8; 27]>, stream: Option<Stream>) {
        if let Some(logical) = self.logical.as_mut() {
            logical.time = time;
            logical.stream = stream;
        }
    }

    /// A complete marker from `start` to `end` in the raw log.
    fn apply_marker(
        &mut self,
        marker: Marker<'_>,
        start: Position,
        end: u64,
        emit: &mut impl FnMut(&LogLine<'_>),
    ) {
        let Some(logical) = self.logical.as_mut() else {
            return;
        };
        logical.markers += 1;
        if logical.markers > MAX_SECTION_MARKERS_PER_LINE {
            self.part.markers_ignored = true;
            return;
        }
        let (time, stream) = (logical.time, logical.stream);
        // A header or footer begins where its marker does; the text after an end marker
        // where that ends.
        let part_at = |at: Position, event| Part {
            offset: at.offset,
            timestamp: at.time,
            stream: at.stream,
            event,
            depth_exceeded: false,
            markers_ignored: false,
        };
        let after = Position {
            offset: end,
            time,
            stream,
        };
        if marker.start {
            if self.sections.len() >= MAX_SECTION_DEPTH {
                self.unopened_sections += 1;
                self.part.depth_exceeded = true;
                return;
            }
            self.close_part(false, emit);
            self.open_name_truncated |= marker.name_truncated;
            // ASCII by the marker's grammar.
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            self.sections.push(Section {
                name: text(marker.name),
                name_truncated: marker.name_truncated,
                started_at: marker.time,
                options: marker.options.map(text),
            });
            self.part = part_at(start, Some(SectionEvent::Start));
            return;
        }
        match self
            .sections
            .iter()
            .rposition(|s| s.name.as_bytes() == marker.name)
        {
            Some(index) => {
                self.close_part(false, emit);
                let duration_secs = marker.time.saturating_sub(self.sections[index].started_at);
                self.part = Part {
                    depth_exceeded: self.unopened_sections > 0,
                    ..part_at(start, Some(SectionEvent::End { duration_secs }))
                };
                self.emit_line(emit);
                self.sections.truncate(index);
                self.unopened_sections = 0;
                self.open_name_truncated = self.sections.iter().any(|s| s.name_truncated);
                self.part = part_at(after, None);
            }
            None if self.unopened_sections > 0 => {
                self.unopened_sections -= 1;
                self.part.depth_exceeded = true;
            }
            None => {}
        }
    }

    /// Ends the stretch being built: a line if it has text, or if it ends a logical line
    /// that gave none yet.
    fn close_part(&mut self, line_end: bool, emit: &mut impl FnMut(&LogLine<'_>)) {
        let first = self.logical.as_ref().is_some_and(|l| !l.emitted);
        if self.text.has_text() || (line_end && first) {
            self.emit_line(emit);
        }
        self.text.clear();
    }

    /// Emits the line of `part` with the text built so far.
    fn emit_line(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        let (message, truncated) = self.text.message(self.max_line_bytes);
        self.lines += 1;
        if let Some(logical) = self.logical.as_mut() {
            logical.emitted = true;
        }
        let part = &self.part;
        let log_limit_exceeded =
            message.starts_with(LOG_LIMIT_PREFIX) && message.trim_end().ends_with("bytes.");
        emit(&LogLine {
            number: self.lines,
            offset: part.offset,
            message: &message,
            timestamp: part
                .timestamp
                .as_ref()
                .and_then(|t| std::str::from_utf8(t).ok()),
            stream: part.stream,
            sections: &self.sections,
            section_event: part.event,
            truncated,
            log_limit_exceeded,
            section_depth_exceeded: part.depth_exceeded,
            section_name_truncated: self.open_name_truncated,
            section_markers_ignored: part.markers_ignored,
        });
    }
}

/// The timestamp header `bytes` begins with, if it is one.
fn read_header(bytes: &[u8]) -> Option<Header> {
    let h = bytes.get(..HEADER_LEN)?;
    if !is_header(h) {
        return None;
    }
    let mut time = [0u8; 27];
    time.copy_from_slice(&h[..27]);
    Some(Header {
        time,
        stream: Stream {
            id: (hex_value(h[28]) << 4) | hex_value(h[29]),
            stderr: h[30] == b'E',
        },
        continuation: h[31] == b'+',
    })
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ XX[OE][ +]` (gitlabhq/gitlabhq lib/gitlab/ci/trace/stream.rb,
/// `TIMESTAMP_HEADER_REGEX`).
fn is_header(h: &[u8]) -> bool {
    const DIGITS: [usize; 20] = [
        0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25,
    ];
    DIGITS.iter().all(|&i| h[i].is_ascii_digit())
        && h[4] == b'-'
        && h[7] == b'-'
        && h[10] == b'T'
        && h[13] == b':'
        && h[16] == b':'
        && h[19] == b'.'
        && h[26] == b'Z'
        && h[27] == b' '
        && is_lower_hex(h[28])
        && is_lower_hex(h[29])
        && (h[30] == b'O' || h[30] == b'E')
        && (h[31] == b' ' || h[31] == b'+')
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => b.wrapping_sub(b'a').wrapping_add(10),
    }
}
