//! One `progressiveText` answer's body, a piece at a time, into the Port posts that carry
//! its new lines: the lines earlier invocations posted are skipped, the rest gathered in
//! order into posts whose message stays under the limit as JSON. No I/O: [`crate::tail`]
//! sends the posts and saves the progress after each.
//!
//! What it holds is the parser's unfinished line (cut at its cap), the post being
//! gathered and the full posts of one piece not sent yet: bounded by the piece, the caps
//! and the limit, whatever the log ([`AnswerPosts::held_bytes`]).

use std::collections::VecDeque;

use spigot_common::logline::{LineParser, LogLine};
use spigot_common::port::MAX_BODY_BYTES;

/// Ends a line longer than the parser's cap, which keeps its start only.
pub const CUT_MARK: &str = " … [line cut: longer than 16 KiB]";

/// Lines gathered for one post.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Post {
    pub lines: Vec<String>,
    /// The message's size as JSON text, each line with its joining newline.
    size: usize,
    /// The lines' own bytes.
    bytes: usize,
}

impl Post {
    /// Whether a line of `size` still fits; the first line always does.
    fn fits(&self, size: usize, limit: usize) -> bool {
        self.lines.is_empty() || self.size + size <= limit
    }

    fn push(&mut self, line: String, size: usize) {
        self.size += size;
        self.bytes += line.len();
        self.lines.push(line);
    }

    /// The run's log message: the lines, one per line.
    pub fn message(&self) -> String {
        self.lines.join("\n")
    }

    /// The message's size as JSON text, as measured while gathering.
    pub fn json_size(&self) -> usize {
        self.size
    }
}

/// The posts of one answer, gathered as its body is read.
pub struct AnswerPosts {
    parser: LineParser,
    /// Lines of the answer read so far.
    seen: u64,
    /// Lines of the answer that earlier invocations posted.
    posted_before: u64,
    limit: usize,
    post: Post,
    /// Posts that are full, in order, not taken yet.
    full: VecDeque<Post>,
}

impl AnswerPosts {
    /// An answer of which `posted_before` lines are posted already; posts stay under
    /// `flush_bytes` of JSON (and under Port's limit whatever that says).
    pub fn new(posted_before: u64, flush_bytes: usize) -> Self {
        AnswerPosts {
            parser: LineParser::default(),
            seen: 0,
            posted_before,
            limit: post_limit(flush_bytes),
            post: Post::default(),
            full: VecDeque::new(),
        }
    }

    /// Reads the body's next piece; `None` is its end.
    pub fn feed(&mut self, piece: Option<&[u8]>) {
        let mut fresh = Vec::new();
        let mut take = |line: &LogLine<'_>| {
            self.seen += 1;
            if self.seen > self.posted_before {
                fresh.push(port_line(line));
            }
        };
        match piece {
            Some(bytes) => self.parser.feed(bytes, &mut take),
            None => self.parser.finish(&mut take),
        }
        for line in fresh {
            let size = post_size(&line);
            if !self.post.fits(size, self.limit) {
                self.full.push_back(std::mem::take(&mut self.post));
            }
            self.post.push(line, size);
        }
    }

    /// The next full post, to be sent now.
    pub fn take_full(&mut self) -> Option<Post> {
        self.full.pop_front()
    }

    /// The post still gathering, if it has lines: the last one once the body has ended.
    pub fn take_last(&mut self) -> Option<Post> {
        (!self.post.lines.is_empty()).then(|| std::mem::take(&mut self.post))
    }

    /// Lines of the answer read so far, posted before or not.
    pub fn lines_read(&self) -> u64 {
        self.seen
    }

    /// Bytes held: the parser's unfinished line and the posts not taken.
    pub fn held_bytes(&self) -> usize {
        self.parser.buffered_bytes()
            + self.post.bytes
            + self.full.iter().map(|p| p.bytes).sum::<usize>()
    }

    /// The most a post's JSON may be.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// A post's message stays under `flush_bytes` as JSON, and under Port's limit.
pub fn post_limit(flush_bytes: usize) -> usize {
    flush_bytes.min(MAX_BODY_BYTES - 1024)
}

/// The line as JSON text, plus the joining newline (`\n`, two bytes escaped).
fn post_size(line: &str) -> usize {
    serde_json::to_string(line).map_or(line.len() * 6, |s| s.len() - 2) + 2
}

/// The line as the run shows it; a line longer than the parser's cap says it was cut.
pub fn port_line(line: &LogLine<'_>) -> String {
    if line.truncated {
        format!("{}{CUT_MARK}", line.message)
    } else {
        line.message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spigot_common::logline::DEFAULT_MAX_LINE_BYTES;

    /// Every post of `body` read in `piece`-byte pieces, `posted_before` lines skipped.
    fn posts(body: &[u8], piece: usize, posted_before: u64, flush_bytes: usize) -> Vec<Post> {
        let mut answer = AnswerPosts::new(posted_before, flush_bytes);
        let mut posts = Vec::new();
        for chunk in body.chunks(piece.max(1)) {
            answer.feed(Some(chunk));
            posts.extend(std::iter::from_fn(|| answer.take_full()));
        }
        answer.feed(None);
        posts.extend(std::iter::from_fn(|| answer.take_full()));
        posts.extend(answer.take_last());
        posts
    }

    fn lines(posts: &[Post]) -> Vec<String> {
        posts.iter().flat_map(|p| p.lines.clone()).collect()
    }

    #[test]
    fn posts_stay_under_the_limit_and_keep_the_order() {
        let lines_in: Vec<String> = (0..1000)
            .map(|i| format!("line {i:04} {}", "x".repeat(100)))
            .collect();
        let body = lines_in.join("\n");
        for piece in [1, 100, 4096, body.len()] {
            let gathered = posts(body.as_bytes(), piece, 0, 10 * 1024);
            assert!(gathered.len() > 10);
            assert_eq!(lines(&gathered), lines_in, "every line, once, in order");
            for post in &gathered {
                let json = serde_json::json!({"message": post.message()}).to_string();
                assert!(json.len() <= 10 * 1024 + 64, "{}", json.len());
            }
        }
        // Lines that escape heavily are measured as JSON.
        let quotes = vec!["\"".repeat(100); 100].join("\n");
        for post in posts(quotes.as_bytes(), 64, 0, 4096) {
            let json = serde_json::to_string(&post.message()).unwrap();
            assert!(json.len() <= 4096 + 2, "{}", json.len());
        }
        assert!(posts(b"", 64, 0, 4096).is_empty());
        // Port's own limit holds whatever FLUSH_BYTES says.
        assert_eq!(post_limit(usize::MAX), MAX_BODY_BYTES - 1024);
    }

    #[test]
    fn lines_posted_before_are_skipped() {
        let body = b"a\nb\nc\nd\n";
        let all = lines(&posts(body, 3, 0, 4096));
        assert_eq!(all, ["a", "b", "c", "d"]);
        assert_eq!(lines(&posts(body, 3, 2, 4096)), ["c", "d"]);
        assert!(posts(body, 3, 4, 4096).is_empty());
        let mut answer = AnswerPosts::new(9, 4096);
        answer.feed(Some(body));
        answer.feed(None);
        assert_eq!((answer.lines_read(), answer.take_last()), (4, None));
    }

    #[test]
    fn a_line_past_the_cap_says_it_was_cut() {
        assert_eq!(DEFAULT_MAX_LINE_BYTES, 16 * 1024, "as CUT_MARK says");
        let long = format!("{}\nshort\n", "y".repeat(DEFAULT_MAX_LINE_BYTES * 3));
        let gathered = lines(&posts(long.as_bytes(), 1000, 0, 1 << 20));
        assert_eq!(
            gathered,
            [
                format!("{}{CUT_MARK}", "y".repeat(DEFAULT_MAX_LINE_BYTES)),
                "short".to_owned()
            ]
        );
    }
}
