//! Reading a Jenkins `progressiveText` answer: its headers
//! (`spigot_common::jenkins::builds::progress_headers`), then its body in network chunks
//! of any size into the Port posts of its new lines (`log_tailer::answer`). Whatever the
//! answer: every post fits Port's limit, the lines are the body's lines after those
//! posted before, once each and in order, however the body is chunked, and what is held
//! stays bounded. The input: X-Text-Size and X-More-Data (a length byte and the bytes
//! each), lines posted before, a flush-size byte, chunk sizes (a count, then a byte
//! each), then the body.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use log_tailer::answer::{port_line, AnswerPosts, CUT_MARK};
use spigot_common::jenkins::builds::progress_headers;
use spigot_common::logline::check::held_bound;
use spigot_common::logline::{LineParser, DEFAULT_MAX_LINE_BYTES};
use spigot_common::port::MAX_BODY_BYTES;
use spigot_fuzz::take_byte;

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut headers = HeaderMap::new();
    for name in ["x-text-size", "x-more-data"] {
        let len = usize::from(take_byte(&mut data)).min(data.len());
        let (value, rest) = data.split_at(len);
        data = rest;
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    match progress_headers(&headers) {
        Ok((next, _more)) => {
            let size = headers["x-text-size"].to_str().expect("read, so text");
            assert_eq!(size.trim().parse::<u64>().ok(), Some(next));
        }
        Err(error) => assert!(error.to_string().len() < 200, "{error}"),
    }
    let posted_before = u64::from(take_byte(&mut data) % 8);
    // From a line a post to the default 512 KiB.
    let flush_bytes = 1usize << (take_byte(&mut data) % 20);
    let chunk_sizes: Vec<usize> = (0..take_byte(&mut data) % 16)
        .map(|_| usize::from(take_byte(&mut data)) + 1)
        .collect();
    let body = data;

    let mut answer = AnswerPosts::new(posted_before, flush_bytes);
    let mut posted = Vec::new();
    let mut take_posts = |answer: &mut AnswerPosts, last: bool| {
        let mut posts: Vec<_> = std::iter::from_fn(|| answer.take_full()).collect();
        if last {
            posts.extend(answer.take_last());
        }
        for post in posts {
            let json = serde_json::to_string(&post.message()).expect("a string");
            assert!(
                json.len() <= post.json_size() + 2,
                "measured {}, is {}",
                post.json_size(),
                json.len()
            );
            assert!(
                post.lines.len() == 1 || post.json_size() <= answer.limit(),
                "{} lines in {} bytes",
                post.lines.len(),
                post.json_size()
            );
            assert!(json.len() < MAX_BODY_BYTES, "{} bytes", json.len());
            posted.extend(post.lines);
        }
    };
    let mut rest = body;
    let mut sizes = chunk_sizes.iter().cycle();
    while !rest.is_empty() {
        let size = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
        let (chunk, after) = rest.split_at(size);
        rest = after;
        answer.feed(Some(chunk));
        // The parser's line, the post gathering, and this chunk's lines (3 bytes a byte
        // at most, U+FFFD, and a cut mark a line) in full posts.
        let bound = 2 * held_bound(DEFAULT_MAX_LINE_BYTES)
            + answer.limit()
            + (chunk.len() + 1) * (3 + CUT_MARK.len());
        assert!(answer.held_bytes() <= bound, "{} held", answer.held_bytes());
        take_posts(&mut answer, false);
    }
    answer.feed(None);
    take_posts(&mut answer, true);

    // The body's lines read whole, after those posted before.
    let mut parser = LineParser::default();
    let mut expected = Vec::new();
    parser.feed(body, &mut |line| expected.push(port_line(line)));
    parser.finish(&mut |line| expected.push(port_line(line)));
    assert_eq!(answer.lines_read(), expected.len() as u64);
    let skip = (posted_before as usize).min(expected.len());
    assert_eq!(posted, expected[skip..]);
});
