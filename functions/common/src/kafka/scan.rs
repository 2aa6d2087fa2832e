//! The fast reading of a Kafka event: the JSON Lambda writes (objects of known keys,
//! strings without escapes, integers, empty header lists) read in one pass over text that
//! serde_json has already checked is JSON. Anything else — an escape, a float, a number
//! given as a string, headers, a shape the lenient reader calls odd — gives up, and the
//! whole event is read by [`lenient`](super::lenient) instead, which defines what every
//! event means; the tests hold the two to the same records on every event they try.
//!
//! Why: reading each record's fields through serde visitors (and lambda_runtime's
//! `serde_path_to_error` around them) cost four times serde_json's own pass over the
//! text, and a batch is thousands of records.

use std::collections::BTreeMap;

use super::{decode_base64, Group, KafkaEvent, Piece, Pieces, RawRecord, Slot};

/// The event, or `None` when it is not the usual shape.
pub(super) fn event(text: &str) -> Option<KafkaEvent> {
    let mut scan = Scan {
        json: text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut event = KafkaEvent::default();
    // The values are most of the text, and decode to three quarters of their length:
    // room for them at once, not copied as the buffer grows.
    event.pieces.bytes.reserve(text.len() / 4 * 3);
    scan.open(b'{')?;
    scan.members(|scan, key| {
        if key == "records" {
            event.groups = groups(scan, &mut event.pieces)?;
            Some(())
        } else {
            scan.skip_value()
        }
    })?;
    Some(event)
}

fn groups(scan: &mut Scan<'_>, pieces: &mut Pieces) -> Option<BTreeMap<String, Group>> {
    let mut groups = BTreeMap::new();
    scan.open(b'{')?;
    scan.members(|scan, key| {
        let mut records = Vec::new();
        scan.open(b'[')?;
        if !scan.close(b']') {
            loop {
                // Read in place: a record is large to move.
                records.push(Slot::Record(RawRecord::default()));
                if let Some(Slot::Record(slot)) = records.last_mut() {
                    record(scan, pieces, slot)?;
                }
                if !scan.next(b']')? {
                    break;
                }
            }
        }
        groups.insert(key.to_owned(), Group::Records(records));
        Some(())
    })?;
    Some(groups)
}

fn record(scan: &mut Scan<'_>, pieces: &mut Pieces, record: &mut RawRecord) -> Option<()> {
    scan.open(b'{')?;
    scan.members(|scan, key| {
        match key {
            "topic" => {
                record.topic = match scan.text_or_null()? {
                    Some(topic) => {
                        let start = pieces.text.len();
                        pieces.text.push_str(topic);
                        Piece::At(start..pieces.text.len())
                    }
                    None => Piece::Null,
                }
            }
            "partition" => record.partition = scan.integer_or_null()?,
            "offset" => record.offset = scan.integer_or_null()?,
            "timestamp" => record.timestamp = scan.integer_or_null()?,
            "value" => record.value = base64(scan, pieces)?,
            "key" => record.key = base64(scan, pieces)?,
            "headers" => {
                // Headers are rare: only the empty list is read here.
                scan.open(b'[')?;
                if !scan.close(b']') {
                    return None;
                }
                record.headers = Vec::new();
            }
            _ => scan.skip_value()?,
        }
        Some(())
    })
}

fn base64(scan: &mut Scan<'_>, pieces: &mut Pieces) -> Option<Piece> {
    Some(match scan.text_or_null()? {
        Some(text) => decode_base64(text, &mut pieces.bytes),
        None => Piece::Null,
    })
}

/// A position in JSON text known to be valid.
struct Scan<'t> {
    json: &'t str,
    /// `json`'s bytes.
    bytes: &'t [u8],
    at: usize,
}

impl<'t> Scan<'t> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.bytes.get(self.at) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    /// Steps over `byte`, the next one but for white space, or gives up.
    fn open(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Steps over `byte` when it comes next.
    fn close(&mut self, byte: u8) -> bool {
        self.open(byte).is_some()
    }

    /// After a member or element: `true` on a comma (another follows), `false` on the
    /// closing `end`.
    fn next(&mut self, end: u8) -> Option<bool> {
        let byte = self.peek()?;
        self.at += 1;
        match byte {
            b',' => Some(true),
            byte if byte == end => Some(false),
            _ => None,
        }
    }

    /// Each member of the object just opened: its key, then `value` reads the value.
    fn members(
        &mut self,
        mut value: impl FnMut(&mut Scan<'t>, &'t str) -> Option<()>,
    ) -> Option<()> {
        if self.close(b'}') {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.open(b':')?;
            value(self, key)?;
            if !self.next(b'}')? {
                return Some(());
            }
        }
    }

    /// A string without escapes.
    fn text(&mut self) -> Option<&'t str> {
        self.quoted(|rest| memchr::memchr2(b'"', b'\\', rest))
    }

    /// A key: a string without escapes, short (memchr's vector search costs more than
    /// it saves on a few bytes).
    fn key(&mut self) -> Option<&'t str> {
        self.quoted(|rest| rest.iter().position(|&b| b == b'"' || b == b'\\'))
    }

    /// A string without escapes; `quote_or_escape` finds the first `"` or `\`.
    fn quoted(&mut self, quote_or_escape: impl Fn(&[u8]) -> Option<usize>) -> Option<&'t str> {
        self.open(b'"')?;
        let start = self.at;
        let rest = &self.bytes[start..];
        let end = quote_or_escape(rest)?;
        if rest[end] != b'"' {
            return None;
        }
        self.at += end + 1;
        // Between two quotes (ASCII) of a str: whole characters, no check needed.
        self.json.get(start..start + end)
    }

    /// A string without escapes, or `null` (`None`).
    fn text_or_null(&mut self) -> Option<Option<&'t str>> {
        if self.null() {
            return Some(None);
        }
        self.text().map(Some)
    }

    /// An integer of at most 18 digits (always an `i64`), or `null` (`None`).
    fn integer_or_null(&mut self) -> Option<Option<i64>> {
        if self.null() {
            return Some(None);
        }
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let digits = self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 18 {
            return None;
        }
        let mut number: i64 = 0;
        for &digit in &self.bytes[self.at..self.at + digits] {
            number = number * 10 + i64::from(digit - b'0');
        }
        self.at += digits;
        // A fraction or an exponent: a float, which the lenient reader decides about; so
        // is `-0`, which serde_json reads as a float too.
        if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) || (negative && number == 0)
        {
            return None;
        }
        Some(Some(if negative { -number } else { number }))
    }

    fn null(&mut self) -> bool {
        let null = self.peek() == Some(b'n') && self.bytes[self.at..].starts_with(b"null");
        if null {
            self.at += 4;
        }
        null
    }

    /// Steps over any value.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' | b':' if depth > 0 => self.at += 1,
                // A number, `true`, `false` or `null`: up to what follows it.
                _ => {
                    let rest = &self.bytes[self.at..];
                    self.at += rest
                        .iter()
                        .position(|b| {
                            matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                        })
                        .unwrap_or(rest.len());
                }
            }
            if depth == 0 {
                return Some(());
            }
        }
    }

    /// Steps over a string, escapes and all.
    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            // Past the end only in text that is not JSON: give up, never panic.
            let rest = self.bytes.get(self.at..)?;
            let at = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[at] == b'"' {
                self.at += at + 1;
                return Some(());
            }
            // A backslash and the character it escapes.
            self.at += at + 2;
        }
    }
}
