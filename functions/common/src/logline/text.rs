//! The visible text of a line, built as its bytes stream in: carriage returns keep the
//! last segment that has any text (progress bars end in their final state; a trailing
//! `\r` clears nothing), escape sequences are dropped (GitLab's page keeps only their
//! colours: gitlabhq/gitlabhq lib/gitlab/ci/ansi2json/converter.rb), and each segment
//! keeps at most a few bytes more than the line cap, so that memory is bounded and the
//! cut message is the same as if everything had been kept.

use std::borrow::Cow;

/// Where in an escape sequence the last byte left us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Just after `\e`.
    Start,
    /// `\e[`: parameters and intermediates (0x20–0x3f), then one final byte (0x40–0x7e).
    Csi,
    /// `\e]` up to BEL or `\e\`.
    Osc,
    /// `\e` inside an OSC: `\` ends it.
    OscMaybeEnd,
    /// `\e` then intermediates (0x20–0x2f), then any one final byte.
    Intermediates,
}

pub(super) struct TextCleaner {
    /// Bytes kept per segment: the line cap + 4, enough to cut the lossy UTF-8 message on
    /// the same character as the whole segment would be (a character is at most 4 bytes).
    keep: usize,
    segment: Vec<u8>,
    /// The last segment before a `\r` that had text.
    last: Vec<u8>,
    escape: Escape,
}

impl TextCleaner {
    pub(super) fn new(max_line_bytes: usize) -> Self {
        TextCleaner {
            keep: max_line_bytes + 4,
            segment: Vec::new(),
            last: Vec::new(),
            escape: Escape::None,
        }
    }

    /// Bytes held.
    pub(super) fn held(&self) -> usize {
        self.segment.len() + self.last.len()
    }

    /// The message would not be empty.
    pub(super) fn has_text(&self) -> bool {
        !self.segment.is_empty() || !self.last.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.segment.clear();
        self.last.clear();
        self.escape = Escape::None;
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            if self.escape == Escape::None {
                match memchr::memchr2(b'\r', 0x1b, &bytes[i..]) {
                    None => {
                        self.keep_text(&bytes[i..]);
                        return;
                    }
                    Some(n) => {
                        self.keep_text(&bytes[i..i + n]);
                        i += n;
                        if bytes[i] == b'\r' {
                            self.carriage_return();
                        } else {
                            self.escape = Escape::Start;
                        }
                        i += 1;
                    }
                }
                continue;
            }
            let b = bytes[i];
            if b == b'\r' {
                // A carriage return ends any escape and is read as itself.
                self.escape = Escape::None;
                continue;
            }
            let (next, consumed) = match self.escape {
                Escape::Start => match b {
                    b'[' => (Escape::Csi, true),
                    b']' => (Escape::Osc, true),
                    0x20..=0x2f => (Escape::Intermediates, true),
                    _ => (Escape::None, true),
                },
                Escape::Csi => match b {
                    0x20..=0x3f => (Escape::Csi, true),
                    0x40..=0x7e => (Escape::None, true),
                    // Not part of the sequence: read again as text.
                    _ => (Escape::None, false),
                },
                Escape::Osc => match b {
                    0x07 => (Escape::None, true),
                    0x1b => (Escape::OscMaybeEnd, true),
                    _ => (Escape::Osc, true),
                },
                Escape::OscMaybeEnd if b == b'\\' => (Escape::None, true),
                Escape::OscMaybeEnd => (Escape::Osc, false),
                Escape::Intermediates => match b {
                    0x20..=0x2f => (Escape::Intermediates, true),
                    _ => (Escape::None, true),
                },
                // Handled above; reading the byte again there is always right.
                Escape::None => (Escape::None, false),
            };
            self.escape = next;
            i += usize::from(consumed);
        }
    }

    fn keep_text(&mut self, text: &[u8]) {
        let room = self.keep - self.segment.len();
        self.segment
            .extend_from_slice(&text[..text.len().min(room)]);
    }

    fn carriage_return(&mut self) {
        if !self.segment.is_empty() {
            std::mem::swap(&mut self.segment, &mut self.last);
            self.segment.clear();
        }
    }

    /// The message so far, cut to `max` bytes on a character boundary, and whether it was
    /// cut.
    pub(super) fn message(&self, max: usize) -> (Cow<'_, str>, bool) {
        let bytes = if self.segment.is_empty() {
            &self.last
        } else {
            &self.segment
        };
        let text = String::from_utf8_lossy(bytes);
        if text.len() <= max {
            return (text, false);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = match text {
            Cow::Borrowed(text) => Cow::Borrowed(&text[..end]),
            Cow::Owned(mut text) => {
                text.truncate(end);
                Cow::Owned(text)
            }
        };
        (cut, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(input: &[u8]) -> String {
        let mut cleaner = TextCleaner::new(1024);
        cleaner.push(input);
        let whole = cleaner.message(1024).0.into_owned();
        let mut bytewise = TextCleaner::new(1024);
        for b in input {
            bytewise.push(std::slice::from_ref(b));
        }
        assert_eq!(bytewise.message(1024).0, whole, "byte by byte");
        whole
    }

    #[test]
    fn carriage_returns_keep_the_last_segment_with_text() {
        assert_eq!(clean(b"10%\r50%\r100%"), "100%");
        assert_eq!(clean(b"100%\r\r"), "100%");
        assert_eq!(clean(b"old\r\x1b[2Knew"), "new");
        assert_eq!(clean(b"only\r\x1b[2K"), "only");
        assert_eq!(clean(b""), "");
    }

    #[test]
    fn escapes_are_dropped_and_a_carriage_return_ends_them() {
        assert_eq!(
            clean(b"\x1b[32;1mgreen\x1b[0;m and \x1b[1A\x1b[Kmoved\x1b]0;title\x07!\x1b(B"),
            "green and moved!"
        );
        assert_eq!(clean(b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"), "link");
        assert_eq!(clean(b"text\x1b"), "text");
        // A CSI cut by a byte outside it leaves that byte as text.
        assert_eq!(clean(b"\x1b[12\x01x"), "\x01x");
        // An OSC without its end runs to the carriage return.
        assert_eq!(clean(b"kept\r\x1b]0;never ends\rnext"), "next");
        assert_eq!(
            clean(b"a\x1b\x1b[0K"),
            "a[0K",
            "the second \\e is the first's final byte"
        );
    }

    #[test]
    fn a_long_segment_is_cut_as_if_it_were_whole() {
        let mut cleaner = TextCleaner::new(21);
        cleaner.push("é".repeat(40).as_bytes());
        assert_eq!(cleaner.held(), 25);
        assert_eq!(cleaner.message(21), (Cow::Borrowed(&*"é".repeat(10)), true));
        let mut short = TextCleaner::new(21);
        short.push(b"short");
        assert_eq!(short.message(21), (Cow::Borrowed("short"), false));
    }
}
