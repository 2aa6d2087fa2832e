//! The promises of [`LineParser`] as checks, shared by the unit tests and the fuzz targets
//! (`fuzz/`): the same lines however the log is cut into chunks, memory bounded by the
//! caps, output linear in the input. Each check panics on a broken promise.

use super::*;

/// What the parser may hold at most with a line cap of `max_line_bytes`: two stretches of
/// text of the cap, a marker (and where its pieces came from: at most one a byte), a
/// header, the open sections' names and options.
pub fn held_bound(max_line_bytes: usize) -> usize {
    2 * (max_line_bytes.max(16) + 4)
        + MAX_SECTION_MARKER_BYTES * (1 + std::mem::size_of::<Piece>())
        + 32
        + MAX_SECTION_DEPTH * MAX_SECTION_MARKER_BYTES
}

/// Output bytes a line may carry per input byte: its path's names and a marker's worth of
/// options (a line per input byte at most), and a message of at most 3 bytes per input
/// byte (U+FFFD).
pub const OUTPUT_PER_INPUT_BYTE: usize =
    3 + MAX_SECTION_DEPTH * MAX_SECTION_NAME_BYTES + MAX_SECTION_MARKER_BYTES;

/// The bytes of output a line stands for: its message, its sections' names and the
/// innermost's options, as a document carries them.
pub fn output_bytes(line: &LogLine<'_>) -> usize {
    line.message.len()
        + line.sections.iter().map(|s| s.name.len()).sum::<usize>()
        + line
            .sections
            .last()
            .and_then(|s| s.options.as_ref())
            .map_or(0, String::len)
}

/// What a parse gave: every line in full, and what it cost.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Each line's `Debug` text: every field of it.
    pub lines: Vec<String>,
    pub output_bytes: usize,
    /// The most [`LineParser::buffered_bytes`] was after a chunk.
    pub peak_held: usize,
}

/// Parses `chunks` one after the other with a line cap of `max_line_bytes`.
pub fn parse_chunks(chunks: &[&[u8]], max_line_bytes: usize) -> Parsed {
    let mut parser = LineParser::new(max_line_bytes);
    let mut parsed = Parsed::default();
    let mut lines = Vec::new();
    let mut output = 0;
    let mut emit = |line: &LogLine<'_>| {
        output += output_bytes(line);
        lines.push(format!("{line:?}"));
    };
    for chunk in chunks {
        parser.feed(chunk, &mut emit);
        parsed.peak_held = parsed.peak_held.max(parser.buffered_bytes());
    }
    parser.finish(&mut emit);
    assert_eq!(parser.lines(), lines.len() as u64, "lines counted");
    assert_eq!(
        parser.bytes(),
        chunks.iter().map(|c| c.len() as u64).sum::<u64>(),
        "bytes counted"
    );
    parsed.lines = lines;
    parsed.output_bytes = output;
    parsed
}

/// `log` cut at `cuts` (offsets, in any order, clamped to the log) reads as the whole log
/// does, both within the bounds. The lines of the whole log.
pub fn same_lines_in_chunks_and_bounded(
    log: &[u8],
    cuts: &[usize],
    max_line_bytes: usize,
) -> Vec<String> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(log.len())).collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut from = 0;
    for point in points {
        chunks.push(&log[from..point]);
        from = point;
    }
    chunks.push(&log[from..]);
    let whole = parse_chunks(&[log], max_line_bytes);
    let cut = parse_chunks(&chunks, max_line_bytes);
    assert_eq!(cut.lines, whole.lines, "cut at {cuts:?}");
    for parsed in [&whole, &cut] {
        assert!(
            parsed.peak_held <= held_bound(max_line_bytes),
            "held {} bytes",
            parsed.peak_held
        );
        assert!(
            parsed.output_bytes <= OUTPUT_PER_INPUT_BYTE * (log.len() + 1),
            "{} bytes out of {} in",
            parsed.output_bytes,
            log.len()
        );
        assert!(
            parsed.lines.len() <= log.len() + 1,
            "{} lines out of {} bytes",
            parsed.lines.len(),
            log.len()
        );
    }
    whole.lines
}
