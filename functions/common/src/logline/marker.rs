//! The grammar of one section marker, as GitLab reads it (gitlabhq/gitlabhq
//! lib/gitlab/regex.rb, `build_trace_section_regex`):
//! `section_(start|end):DIGITS:NAME` + optional `[k=v, k=v]` + `\r\e[0K`, where a name is
//! `[a-zA-Z0-9_.-]+` and an option word `\w+`. Nothing before `section_` is part of it:
//! the runner writes no prefix (gitlab-org/gitlab-runner helpers/build_section.go), user
//! scripts often `\e[0K`, which is just an escape of the text before the marker.
//!
//! The regex never needs to back up (digits, name and option words are each followed by a
//! byte they cannot contain), so one pass decides; a marker cut by the end of the bytes
//! read so far is [`Parsed::Incomplete`], and the caller holds it until more comes.

use super::{MAX_SECTION_MARKER_BYTES, MAX_SECTION_NAME_BYTES};

pub(super) const PREFIX: &[u8] = b"section_";
const TERMINATOR: &[u8] = b"\r\x1b[0K";

/// A marker's parts, borrowed from the bytes it was read from (ASCII by its grammar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker<'a> {
    pub start: bool,
    /// Saturates: GitLab takes any run of digits.
    pub time: u64,
    /// At most [`MAX_SECTION_NAME_BYTES`].
    pub name: &'a [u8],
    pub name_truncated: bool,
    /// Kept for a start; an end's options mean nothing to GitLab either.
    pub options: Option<&'a [u8]>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed<'a> {
    /// A marker and the bytes it took.
    Marker(Marker<'a>, usize),
    /// The bytes end before the marker does.
    Incomplete,
    NotMarker,
    /// Still a marker after [`MAX_SECTION_MARKER_BYTES`]: read as text.
    TooLong,
}

/// The marker at the start of `bytes`, which starts with `s`.
pub(super) fn parse(bytes: &[u8]) -> Parsed<'_> {
    let view = &bytes[..bytes.len().min(MAX_SECTION_MARKER_BYTES)];
    match parse_within(view) {
        Parsed::Incomplete if bytes.len() > MAX_SECTION_MARKER_BYTES => Parsed::TooLong,
        parsed => parsed,
    }
}

fn parse_within(bytes: &[u8]) -> Parsed<'_> {
    let mut at = 0;
    if let Err(parsed) = literal(bytes, &mut at, PREFIX) {
        return parsed;
    }
    let start = match bytes.get(at) {
        None => return Parsed::Incomplete,
        Some(b's') => true,
        Some(b'e') => false,
        Some(_) => return Parsed::NotMarker,
    };
    let kind: &[u8] = if start { b"start:" } else { b"end:" };
    if let Err(parsed) = literal(bytes, &mut at, kind) {
        return parsed;
    }
    let digits = run(bytes, at, |b| b.is_ascii_digit());
    let time = bytes[at..at + digits].iter().fold(0u64, |time, digit| {
        time.saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    at += digits;
    match bytes.get(at) {
        None => return Parsed::Incomplete,
        Some(b':') if digits > 0 => at += 1,
        Some(_) => return Parsed::NotMarker,
    }
    let name_len = run(bytes, at, is_name_byte);
    let name = &bytes[at..at + name_len];
    at += name_len;
    match bytes.get(at) {
        None => return Parsed::Incomplete,
        Some(_) if name_len == 0 => return Parsed::NotMarker,
        Some(_) => {}
    }
    let mut options = None;
    if bytes[at] == b'[' {
        match options_len(&bytes[at..]) {
            Ok(len) => {
                options = Some(&bytes[at + 1..at + len - 1]);
                at += len;
            }
            Err(parsed) => return parsed,
        }
    }
    if let Err(parsed) = literal(bytes, &mut at, TERMINATOR) {
        return parsed;
    }
    let kept = &name[..name.len().min(MAX_SECTION_NAME_BYTES)];
    let marker = Marker {
        start,
        time,
        name: kept,
        name_truncated: name.len() > kept.len(),
        options: options.filter(|_| start),
    };
    Parsed::Marker(marker, at)
}

/// `[a-zA-Z0-9_.-]`.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Ruby's `\w` on bytes: `[a-zA-Z0-9_]`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn run(bytes: &[u8], from: usize, class: impl Fn(u8) -> bool) -> usize {
    bytes[from..].iter().take_while(|b| class(**b)).count()
}

/// Matches `expected` at `*at` and moves past it.
fn literal(bytes: &[u8], at: &mut usize, expected: &[u8]) -> Result<(), Parsed<'static>> {
    let available = &bytes[*at..];
    let n = available.len().min(expected.len());
    if available[..n] != expected[..n] {
        return Err(Parsed::NotMarker);
    }
    if n < expected.len() {
        return Err(Parsed::Incomplete);
    }
    *at += n;
    Ok(())
}

/// `[\w+=\w+(, ?\w+=\w+)*]` at the start of `bytes`: its length with the brackets.
fn options_len(bytes: &[u8]) -> Result<usize, Parsed<'static>> {
    let mut at = 1;
    loop {
        for separator in [b'=', 0] {
            let len = run(bytes, at, is_word_byte);
            at += len;
            match bytes.get(at) {
                None => return Err(Parsed::Incomplete),
                Some(_) if len == 0 => return Err(Parsed::NotMarker),
                Some(&b) if separator == b'=' => {
                    if b != b'=' {
                        return Err(Parsed::NotMarker);
                    }
                    at += 1;
                }
                Some(_) => {}
            }
        }
        match bytes[at] {
            b']' => return Ok(at + 1),
            b',' => {
                at += 1;
                if bytes.get(at) == Some(&b' ') {
                    at += 1;
                }
            }
            _ => return Err(Parsed::NotMarker),
        }
    }
}

/// How many bytes at the end of `bytes` could begin a marker (a proper prefix of
/// `section_`): they wait for what follows.
pub(super) fn partial_prefix_len(bytes: &[u8]) -> usize {
    let longest = bytes.len().min(PREFIX.len() - 1);
    (1..=longest)
        .rev()
        .find(|&n| bytes[bytes.len() - n..] == PREFIX[..n])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(bytes: &[u8]) -> (Marker<'_>, usize) {
        match parse(bytes) {
            Parsed::Marker(marker, len) => (marker, len),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn markers_as_gitlab_reads_them() {
        let (start, len) = marker(b"section_start:1700000000:get_sources\r\x1b[0Kheader");
        assert_eq!(len, 41);
        assert_eq!(
            start,
            Marker {
                start: true,
                time: 1_700_000_000,
                name: b"get_sources",
                name_truncated: false,
                options: None,
            }
        );
        let (with_options, _) =
            marker(b"section_start:1:a.B-c_9[hide_duration=true, collapsed=true,x=1]\r\x1b[0K");
        assert_eq!(with_options.name, b"a.B-c_9");
        assert_eq!(
            with_options.options,
            Some(&b"hide_duration=true, collapsed=true,x=1"[..])
        );
        // The regex is shared by both kinds: an end may carry options, which mean nothing.
        let (end, len) = marker(b"section_end:99:x[collapsed=true]\r\x1b[0K");
        assert_eq!(
            (end.start, end.time, end.options, len),
            (false, 99, None, 37)
        );
        // GitLab's own spec uses millisecond times; a run of digits too long saturates.
        assert_eq!(
            marker(b"section_end:1600445393032:n\r\x1b[0K").0.time,
            1_600_445_393_032
        );
        assert_eq!(
            marker(b"section_end:99999999999999999999999:n\r\x1b[0K")
                .0
                .time,
            u64::MAX
        );
    }

    #[test]
    fn anything_else_is_not_a_marker() {
        for text in [
            &b"section_middle:1:x\r\x1b[0K"[..],
            b"section_start::x\r\x1b[0K",
            b"section_start:x:bad\r\x1b[0K",
            b"section_start:1:\r\x1b[0K",
            b"section_start:1:my_$ection\r\x1b[0K",
            b"section_start:1:x\r\x1b[0m",
            b"section_start:1:x\n",
            b"section_start:1:x[bad option]\r\x1b[0K",
            b"section_start:1:x[ a=b]\r\x1b[0K",
            b"section_start:1:x[a=b,]\r\x1b[0K",
            b"section_start:1:x[a]\r\x1b[0K",
            b"section_start:1:x[]\r\x1b[0K",
        ] {
            assert_eq!(
                parse(text),
                Parsed::NotMarker,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn a_marker_cut_short_waits_and_a_marker_too_long_is_text() {
        let whole = b"section_start:1700000000:build[collapsed=true]\r\x1b[0K";
        for end in 1..whole.len() {
            assert_eq!(parse(&whole[..end]), Parsed::Incomplete, "cut at {end}");
        }
        let name = "n".repeat(MAX_SECTION_NAME_BYTES + 1);
        let text = format!("section_end:1:{name}\r\x1b[0K");
        let (long, _) = marker(text.as_bytes());
        assert_eq!(long.name, &name.as_bytes()[..MAX_SECTION_NAME_BYTES]);
        assert!(long.name_truncated);
        let huge = format!(
            "section_start:1:{}\r\x1b[0K",
            "n".repeat(MAX_SECTION_MARKER_BYTES)
        );
        assert_eq!(parse(huge.as_bytes()), Parsed::TooLong);
        assert_eq!(
            parse(&huge.as_bytes()[..MAX_SECTION_MARKER_BYTES]),
            Parsed::Incomplete
        );
    }

    #[test]
    fn the_tail_that_could_begin_a_marker() {
        assert_eq!(partial_prefix_len(b"tests"), 1);
        assert_eq!(partial_prefix_len(b"a section"), 7);
        assert_eq!(
            partial_prefix_len(b"section_"),
            0,
            "a whole prefix is found by search"
        );
        assert_eq!(partial_prefix_len(b"sex"), 0);
        assert_eq!(partial_prefix_len(b""), 0);
    }
}
