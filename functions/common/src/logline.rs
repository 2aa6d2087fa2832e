//! CI console logs, parsed line by line as they stream in: GitLab job traces now, Jenkins
//! console logs later. Facts: `reference/gitlab-api.md` §5–§8.
//!
//! What a line goes through, in this order:
//! 1. the per-line timestamp header of `FF_TIMESTAMPS` (`2024-05-01T10:00:00.123456Z 01O `,
//!    32 bytes): time, stream id and stdout/stderr are taken off, and a `+` line is
//!    appended to the line before it (the runner splits lines after a `\r` flush and at
//!    8 KiB);
//! 2. section markers (`\e[0Ksection_start:TIME:NAME[OPTIONS]\r\e[0K`, `section_end`) are
//!    taken out before anything reads `\r`, since they contain one;
//! 3. carriage returns: the last non-empty `\r`-separated segment is the line (progress
//!    bars keep their final state; a CRLF ending leaves the text as it is);
//! 4. escape sequences (SGR colours, erase-line, cursor moves, OSC titles) are removed;
//! 5. the bytes are read as UTF-8, invalid sequences replaced;
//! 6. a line longer than the cap is cut (on a character boundary) and flagged.
//!
//! Memory stays bounded whatever the input: a line without an end is compacted (markers
//! taken out, carriage returns applied) as it grows, and cut once even its last segment is
//! too long.

use std::borrow::Cow;

/// A stream of the runner: its id (`00` runner, `01` script, `0f`+ services) and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub id: u8,
    pub stderr: bool,
}

/// A section open at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Unix seconds of its start marker.
    pub started_at: u64,
    /// The marker's options, e.g. `collapsed=true`.
    pub options: Option<String>,
}

/// A section marker on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionEvent {
    Start,
    End { duration_secs: u64 },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// 1-based.
    pub number: u64,
    /// Byte offset of the line's first byte in the raw log.
    pub offset: u64,
    pub message: &'a str,
    /// The line's own time from the timestamp header (RFC 3339, microseconds, UTC).
    pub timestamp: Option<&'a str>,
    pub stream: Option<Stream>,
    /// The sections the line is in, outermost first. A line that ends a section is still
    /// in it.
    pub sections: &'a [Section],
    pub section_event: Option<SectionEvent>,
    /// The line was longer than the cap and was cut.
    pub truncated: bool,
    /// The runner's "Job's log exceeded limit of N bytes." line: the log is incomplete.
    pub log_limit_exceeded: bool,
}

/// Length of the timestamp header.
const HEADER_LEN: usize = 32;
const ERASE_LINE: &[u8] = b"\x1b[0K";
const MARKER_PREFIX: &[u8] = b"\x1b[0Ksection_";
const LOG_LIMIT_PREFIX: &str = "Job's log exceeded limit of ";

/// Default cap of a line, in bytes of message.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024;

/// The streaming parser: [`LineParser::feed`] chunks as they arrive, then
/// [`LineParser::finish`].
pub struct LineParser {
    max_line_bytes: usize,
    /// Bytes of the current physical line not yet ended by `\n`.
    partial: Vec<u8>,
    /// Raw offset of `partial`'s first byte.
    partial_offset: u64,
    /// Total bytes fed.
    consumed: u64,
    /// The logical line being built (timestamp continuations append to it).
    current: Option<Pending>,
    sections: Vec<Section>,
    lines: u64,
    /// Scratch for the message of the line being emitted.
    scratch: Vec<u8>,
    /// The start of the current physical line was folded into `current` already: what
    /// follows has no header of its own.
    continuing_partial: bool,
}

/// A logical line still open to `+` continuations.
struct Pending {
    offset: u64,
    /// Payload bytes (markers still in, unless compacted out).
    content: Vec<u8>,
    timestamp: Option<[u8; 27]>,
    stream: Option<Stream>,
    /// Markers already taken out by compaction.
    markers: Vec<Marker>,
    truncated: bool,
    /// Past the cap with no `\r` since: further bytes are dropped.
    dropping: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    start: bool,
    time: u64,
    name: String,
    options: Option<String>,
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
        LineParser {
            max_line_bytes: max_line_bytes.max(16),
            partial: Vec::new(),
            partial_offset: 0,
            consumed: 0,
            current: None,
            sections: Vec::new(),
            lines: 0,
            scratch: Vec::new(),
            continuing_partial: false,
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

    /// Parses `chunk`; `emit` sees every line completed by it.
    pub fn feed(&mut self, chunk: &[u8], emit: &mut impl FnMut(&LogLine<'_>)) {
        let chunk_offset = self.consumed;
        self.consumed += chunk.len() as u64;
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[start..newline];
            let line_offset = chunk_offset + start as u64;
            if self.partial.is_empty() {
                self.physical_line(piece, line_offset, emit);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(piece);
                let offset = self.partial_offset;
                self.physical_line(&line, offset, emit);
                line.clear();
                self.partial = line;
            }
            start = newline + 1;
        }
        let rest = &chunk[start..];
        if !rest.is_empty() {
            if self.partial.is_empty() {
                self.partial_offset = chunk_offset + start as u64;
            }
            self.partial.extend_from_slice(rest);
            // A line with no end in sight: fold it into the logical line now, so that
            // memory stays bounded.
            if self.partial.len() > self.compact_threshold() {
                self.absorb_partial(emit);
            }
        }
    }

    /// Ends the log: emits the last line.
    pub fn finish(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let offset = self.partial_offset;
            self.physical_line(&line, offset, emit);
        }
        self.emit_current(emit);
    }

    fn compact_threshold(&self) -> usize {
        self.max_line_bytes * 4
    }

    /// Moves the unterminated physical line into the logical line being built.
    fn absorb_partial(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        let partial = std::mem::take(&mut self.partial);
        let offset = self.partial_offset;
        self.append_physical(&partial, offset, emit);
        self.continuing_partial = true;
        self.partial_offset = self.consumed;
    }

    fn physical_line(&mut self, line: &[u8], offset: u64, emit: &mut impl FnMut(&LogLine<'_>)) {
        self.append_physical(line, offset, emit);
        self.continuing_partial = false;
        // Without timestamps every physical line is a line of its own; with them, a `+`
        // line may still follow.
        if self.current.as_ref().is_some_and(|c| c.timestamp.is_none()) {
            self.emit_current(emit);
        }
    }

    /// Reads the header (unless this continues a physical line already begun) and
    /// appends the payload to the logical line it belongs to.
    fn append_physical(&mut self, bytes: &[u8], offset: u64, emit: &mut impl FnMut(&LogLine<'_>)) {
        let (header, payload) = if self.continuing_partial {
            (Header::Continuation, bytes)
        } else {
            split_header(bytes)
        };
        self.start_or_continue(header, offset, emit);
        let threshold = self.compact_threshold();
        let cap = self.max_line_bytes;
        let current = self.current.as_mut().expect("started above");
        append_payload(current, payload, threshold, cap);
    }

    /// Starts a new logical line for `header`, emitting the previous one, or keeps
    /// appending for a continuation.
    fn start_or_continue(
        &mut self,
        header: Header,
        offset: u64,
        emit: &mut impl FnMut(&LogLine<'_>),
    ) {
        match header {
            Header::Continuation
            | Header::Timestamp {
                continuation: true, ..
            } if self.current.is_some() => {}
            _ => {
                self.emit_current(emit);
                let (timestamp, stream) = match header {
                    Header::Timestamp { time, stream, .. } => (Some(time), Some(stream)),
                    _ => (None, None),
                };
                self.current = Some(Pending {
                    offset,
                    content: Vec::new(),
                    timestamp,
                    stream,
                    markers: Vec::new(),
                    truncated: false,
                    dropping: false,
                });
            }
        }
    }

    fn emit_current(&mut self, emit: &mut impl FnMut(&LogLine<'_>)) {
        let Some(mut pending) = self.current.take() else {
            return;
        };
        let mut markers = std::mem::take(&mut pending.markers);
        take_markers(&mut pending.content, &mut markers);
        clean_line(&pending.content, &mut self.scratch);
        let mut truncated = pending.truncated;
        let mut message = String::from_utf8_lossy(&self.scratch);
        if message.len() > self.max_line_bytes {
            let mut end = self.max_line_bytes;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message = Cow::Owned(message[..end].to_owned());
            truncated = true;
        }

        let mut event = None;
        let mut ended = None;
        for marker in markers {
            if marker.start {
                self.sections.push(Section {
                    name: marker.name,
                    started_at: marker.time,
                    options: marker.options,
                });
                event = Some(SectionEvent::Start);
            } else if let Some(index) = self.sections.iter().rposition(|s| s.name == marker.name) {
                let duration_secs = marker.time.saturating_sub(self.sections[index].started_at);
                // Inner sections left open end with it.
                ended = Some(index);
                event = Some(SectionEvent::End { duration_secs });
            }
        }
        self.lines += 1;
        let timestamp = pending
            .timestamp
            .as_ref()
            .and_then(|t| std::str::from_utf8(t).ok());
        let log_limit_exceeded =
            message.starts_with(LOG_LIMIT_PREFIX) && message.trim_end().ends_with("bytes.");
        emit(&LogLine {
            number: self.lines,
            offset: pending.offset,
            message: &message,
            timestamp,
            stream: pending.stream,
            sections: &self.sections,
            section_event: event,
            truncated,
            log_limit_exceeded,
        });
        if let Some(index) = ended {
            self.sections.truncate(index);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Header {
    None,
    /// The rest of a physical line whose start was absorbed earlier.
    Continuation,
    Timestamp {
        time: [u8; 27],
        stream: Stream,
        continuation: bool,
    },
}

/// The timestamp header and the payload after it, when the line has one.
fn split_header(line: &[u8]) -> (Header, &[u8]) {
    if line.len() >= HEADER_LEN && is_header(&line[..HEADER_LEN]) {
        let mut time = [0u8; 27];
        time.copy_from_slice(&line[..27]);
        let id = (hex_value(line[28]) << 4) | hex_value(line[29]);
        let header = Header::Timestamp {
            time,
            stream: Stream {
                id,
                stderr: line[30] == b'E',
            },
            continuation: line[31] == b'+',
        };
        (header, &line[HEADER_LEN..])
    } else {
        (Header::None, line)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ XX[OE][ +]`.
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
        _ => b - b'a' + 10,
    }
}

/// Appends payload bytes to a logical line, compacting when it grows past `threshold`.
fn append_payload(line: &mut Pending, payload: &[u8], threshold: usize, cap: usize) {
    let mut payload = payload;
    if line.dropping {
        // Past the cap: only a carriage return starts something worth keeping.
        match memchr::memrchr(b'\r', payload) {
            Some(cr) => {
                line.dropping = false;
                payload = &payload[cr..];
            }
            None => return,
        }
    }
    line.content.extend_from_slice(payload);
    if line.content.len() > threshold {
        take_markers(&mut line.content, &mut line.markers);
        keep_last_segment(&mut line.content);
        if line.content.len() > threshold {
            line.content.truncate(cap + 1);
            line.truncated = true;
            line.dropping = true;
        }
    }
}

/// Takes the section markers out of `content`, in order.
fn take_markers(content: &mut Vec<u8>, markers: &mut Vec<Marker>) {
    if memchr::memmem::find(content, MARKER_PREFIX).is_none() {
        return;
    }
    let mut out = Vec::with_capacity(content.len());
    let mut rest = &content[..];
    while let Some(at) = memchr::memmem::find(rest, MARKER_PREFIX) {
        out.extend_from_slice(&rest[..at]);
        match parse_marker(&rest[at..]) {
            Some((marker, len)) => {
                markers.push(marker);
                rest = &rest[at + len..];
            }
            None => {
                out.extend_from_slice(&rest[at..at + MARKER_PREFIX.len()]);
                rest = &rest[at + MARKER_PREFIX.len()..];
            }
        }
    }
    out.extend_from_slice(rest);
    *content = out;
}

/// `\e[0Ksection_(start|end):DIGITS:NAME([k=v, ...])?\r\e[0K` at the start of `bytes`:
/// the marker and its length.
fn parse_marker(bytes: &[u8]) -> Option<(Marker, usize)> {
    let rest = bytes.strip_prefix(MARKER_PREFIX)?;
    let (start, rest) = if let Some(r) = rest.strip_prefix(b"start:") {
        (true, r)
    } else {
        (false, rest.strip_prefix(b"end:")?)
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let time: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(b":")?;
    let name_len = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    if name_len == 0 {
        return None;
    }
    let name = String::from_utf8(rest[..name_len].to_vec()).ok()?;
    let mut rest = &rest[name_len..];
    let mut options = None;
    if start && rest.first() == Some(&b'[') {
        let close = memchr::memchr(b']', rest)?;
        let inner = &rest[1..close];
        let valid = !inner.is_empty()
            && inner.split(|b| *b == b',').all(|pair| {
                let pair = pair.strip_prefix(b" ").unwrap_or(pair);
                let mut kv = pair.splitn(2, |b| *b == b'=');
                let word = |w: Option<&[u8]>| {
                    w.is_some_and(|w| {
                        !w.is_empty() && w.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    })
                };
                word(kv.next()) && word(kv.next())
            });
        if !valid {
            return None;
        }
        options = Some(String::from_utf8(inner.to_vec()).ok()?);
        rest = &rest[close + 1..];
    }
    let rest = rest.strip_prefix(b"\r")?;
    rest.strip_prefix(ERASE_LINE)?;
    let len = bytes.len() - rest.len() + ERASE_LINE.len();
    Some((
        Marker {
            start,
            time,
            name,
            options,
        },
        len,
    ))
}

/// Keeps the last non-empty `\r`-separated segment (with its leading `\r`, so that what is
/// appended later still reads as a segment of its own).
fn keep_last_segment(content: &mut Vec<u8>) {
    let mut end = content.len();
    while let Some(cr) = memchr::memrchr(b'\r', &content[..end]) {
        if cr + 1 < end {
            content.drain(..cr);
            return;
        }
        end = cr;
    }
}

/// The visible text of a line: the last carriage-return segment with any text, without
/// escape sequences. Writes into `out`.
fn clean_line(content: &[u8], out: &mut Vec<u8>) {
    out.clear();
    // Fast path: nothing to interpret.
    if memchr::memchr2(b'\r', 0x1b, content).is_none() {
        out.extend_from_slice(content);
        return;
    }
    for segment in content.rsplit(|b| *b == b'\r') {
        out.clear();
        strip_escapes(segment, out);
        if !out.is_empty() {
            return;
        }
    }
}

/// Copies `input` to `out` without escape sequences: CSI (`\e[...X`), OSC (`\e]...` to
/// BEL or `\e\`), and two- or three-byte escapes.
fn strip_escapes(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(found) = memchr::memchr(0x1b, &input[i..]) {
        out.extend_from_slice(&input[i..i + found]);
        i += found + 1;
        match input.get(i) {
            Some(b'[') => {
                i += 1;
                // Parameters and intermediates, then one final byte.
                while i < input.len() && (0x20..=0x3f).contains(&input[i]) {
                    i += 1;
                }
                if i < input.len() && (0x40..=0x7e).contains(&input[i]) {
                    i += 1;
                }
            }
            Some(b']') => {
                i += 1;
                while i < input.len() {
                    if input[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if input[i] == 0x1b && input.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => {
                while i < input.len() && (0x20..=0x2f).contains(&input[i]) {
                    i += 1;
                }
                if i < input.len() {
                    i += 1;
                }
            }
            None => {}
        }
    }
    out.extend_from_slice(&input[i..]);
}

impl LineParser {
    /// Bytes held for lines not yet emitted: stays bounded by the line cap.
    pub fn buffered_bytes(&self) -> usize {
        self.partial.len() + self.current.as_ref().map_or(0, |c| c.content.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        truncated: bool,
        log_limit: bool,
    }

    fn parse_chunks(chunks: &[&[u8]], max: usize) -> Vec<Seen> {
        let mut parser = LineParser::new(max);
        let mut seen = Vec::new();
        let mut emit = |line: &LogLine<'_>| {
            seen.push(Seen {
                number: line.number,
                offset: line.offset,
                message: line.message.to_owned(),
                timestamp: line.timestamp.map(str::to_owned),
                stream: line.stream,
                sections: line.sections.iter().map(|s| s.name.clone()).collect(),
                event: line.section_event,
                truncated: line.truncated,
                log_limit: line.log_limit_exceeded,
            })
        };
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
}
