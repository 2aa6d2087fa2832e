//! The same lines however the log is cut into chunks (issue 15 §3): where HTTP chunks
//! split a trace is chance, and nothing may depend on it.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

fn cut_at(log: &[u8], cuts: &[usize]) -> Vec<Seen> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(log.len())).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for point in points {
        chunks.push(&log[from..point]);
        from = point;
    }
    chunks.push(&log[from..]);
    parse_chunks_owned(&chunks)
}

fn parse_chunks_owned(chunks: &[&[u8]]) -> Vec<Seen> {
    parse_chunks(chunks, DEFAULT_MAX_LINE_BYTES)
}

#[test]
fn a_long_line_redrawn_after_a_carriage_return_is_its_last_state_in_any_chunks() {
    // The case of the issue: it was 16,384 stale `a`s flagged truncated in 255-byte chunks.
    let mut log = vec![b'a'; 65_789];
    log.extend_from_slice(b"\rfinal");
    let whole = parse_chunks(&[&log], DEFAULT_MAX_LINE_BYTES);
    assert_eq!(whole.len(), 1);
    assert_eq!(
        (whole[0].message.as_str(), whole[0].truncated),
        ("final", false)
    );
    for size in [255, 256, 4096, 65_536, 65_789, 65_790] {
        let chunks: Vec<&[u8]> = log.chunks(size).collect();
        assert_eq!(parse_chunks_owned(&chunks), whole, "{size}-byte chunks");
    }
    // Cut right after the \r, and right before it.
    assert_eq!(cut_at(&log, &[65_789]), whole);
    assert_eq!(cut_at(&log, &[65_790]), whole);
}

#[test]
fn a_marker_cut_anywhere_is_still_a_marker() {
    let log = b"text section_end:1:a\r\x1b[0Ksection_start:2:b[collapsed=true]\r\x1b[0Kheader\n";
    let whole = parse_chunks(
        &[b"section_start:0:a\r\x1b[0K\n", log],
        DEFAULT_MAX_LINE_BYTES,
    );
    assert_eq!(whole.len(), 4);
    for cut in 0..=log.len() {
        let chunks = [
            &b"section_start:0:a\r\x1b[0K\n"[..],
            &log[..cut],
            &log[cut..],
        ];
        assert_eq!(parse_chunks_owned(&chunks), whole, "cut at {cut}");
    }
}

/// A piece of a hostile or ordinary log, with lengths around `max` (the line cap) and the
/// marker caps.
fn piece(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let run = (
        prop::sample::select(vec![b'a', b's', b' ', 0xc3, 0xa9, 0xff]),
        prop_oneof![
            0..8usize,
            (max - 2)..(max + 6),
            (4 * max - 2)..(4 * max + 2)
        ],
    )
        .prop_map(|(byte, len)| vec![byte; len]);
    let fixed = prop::sample::select(vec![
        &b"\r"[..],
        b"\n",
        b"\r\n",
        b"\x1b[0K",
        b"\x1b[32;1m",
        b"\x1b[0;m",
        b"\x1b]0;title\x07",
        b"\x1b]8;;x\x1b\\",
        b"\x1b",
        b"\x1b[",
        b"\x1b]",
        b"\x1b(B",
        b"s",
        b"sec",
        b"section_",
        b"section_start:",
        b"caf\xc3\xa9",
        b"\xe2\x82",
        b"Job's log exceeded limit of 4194304 bytes.",
    ])
    .prop_map(<[u8]>::to_vec);
    let name = prop_oneof![
        prop::sample::select(vec!["a", "b", "step_script", "a.B-c_9"]).prop_map(str::to_owned),
        ((MAX_SECTION_NAME_BYTES - 2)..(MAX_SECTION_NAME_BYTES + 3)).prop_map(|n| "n".repeat(n)),
        ((MAX_SECTION_MARKER_BYTES - 30)..(MAX_SECTION_MARKER_BYTES + 3))
            .prop_map(|n| "n".repeat(n)),
    ];
    let marker = (
        prop::sample::select(vec!["", "\x1b[0K", "\x1b[0m"]),
        any::<bool>(),
        0u64..100,
        name,
        prop::sample::select(vec!["", "[collapsed=true]", "[a=b, c=d]", "[bad]"]),
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(|(prefix, start, time, name, options, cut, whole)| {
            let kind = if start { "start" } else { "end" };
            let marker =
                format!("{prefix}section_{kind}:{time}:{name}{options}\r\x1b[0K").into_bytes();
            if whole {
                marker
            } else {
                // A marker broken off anywhere.
                marker[..cut.index(marker.len() + 1)].to_vec()
            }
        });
    let header = (
        0u8..60,
        prop::sample::select(vec!["00O ", "01E ", "00O+", "01O+"]),
    )
        .prop_map(|(second, tail)| {
            format!("\n2024-05-01T10:00:{:02}.000000Z {tail}", second % 60).into_bytes()
        });
    prop_oneof![3 => run, 3 => fixed, 3 => marker, 1 => header]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_logs_give_the_same_lines_in_any_chunks(
        (max, pieces, cuts) in (16usize..48).prop_flat_map(|max| (
            Just(max),
            prop::collection::vec(piece(max), 0..48),
            prop::collection::vec(any::<Index>(), 1..12),
        ))
    ) {
        let log = pieces.concat();
        let whole = parse_chunks(&[&log], max);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(log.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for point in points {
            chunks.push(&log[from..point]);
            from = point;
        }
        chunks.push(&log[from..]);
        prop_assert_eq!(parse_chunks(&chunks, max), whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Lines around the default cap and far past it, as long lines really come.
    #[test]
    fn long_lines_give_the_same_lines_in_any_chunks(
        pieces in prop::collection::vec(
            prop_oneof![
                4 => piece(DEFAULT_MAX_LINE_BYTES),
                1 => ((4 * DEFAULT_MAX_LINE_BYTES - 8)..(4 * DEFAULT_MAX_LINE_BYTES + 8))
                    .prop_map(|n| vec![b'a'; n]),
            ],
            0..16,
        ),
        cuts in prop::collection::vec(any::<Index>(), 1..24),
    ) {
        let log = pieces.concat();
        let whole = parse_chunks(&[&log], DEFAULT_MAX_LINE_BYTES);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(log.len() + 1)).collect();
        prop_assert_eq!(cut_at(&log, &cuts), whole);
    }
}
