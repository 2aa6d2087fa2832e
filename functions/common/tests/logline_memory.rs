//! The log-line parser's memory as the allocator sees it, not as the parser reports it
//! (issue 15 §3: 135 MB live while `buffered_bytes` said 8 KiB). Its own test binary: the
//! counting allocator sees this one test only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use spigot_common::logline::{
    LineParser, LogLine, DEFAULT_MAX_LINE_BYTES, MAX_SECTION_DEPTH, MAX_SECTION_MARKER_BYTES,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes live above what was live before, while `log` is fed in 64 KiB chunks
/// (the input itself is allocated before).
fn peak_while_parsing(log: &[u8]) -> usize {
    let mut parser = LineParser::default();
    let mut lines = 0u64;
    let mut emit = |_: &LogLine<'_>| lines += 1;
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    for chunk in log.chunks(64 * 1024) {
        parser.feed(chunk, &mut emit);
    }
    parser.finish(&mut emit);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    drop(parser);
    assert!(lines > 0);
    peak
}

#[test]
fn hostile_logs_keep_memory_bounded() {
    // Two stretches of text of the cap (each Vec may have doubled past it), a marker, the
    // open sections; the slack covers the vectors' growth and the sections' structs.
    let bound = 4 * (DEFAULT_MAX_LINE_BYTES + 4)
        + 64 * MAX_SECTION_MARKER_BYTES
        + 4 * MAX_SECTION_DEPTH * MAX_SECTION_MARKER_BYTES;
    let flood = "section_start:1:a\r\x1b[0Ksection_end:2:a\r\x1b[0K".repeat(1 << 20);
    let nested = "section_start:1:nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\r\x1b[0K"
        .repeat(1 << 16);
    let endless = "x".repeat(32 << 20);
    let huge_names = format!("section_start:1:{}\r\x1b[0Kheader\n", "n".repeat(60_000)).repeat(256);
    for (kind, log) in [
        ("marker flood without a newline", flood),
        ("nested starts without a newline", nested),
        ("one 32 MiB line", endless),
        ("huge names", huge_names),
    ] {
        let peak = peak_while_parsing(log.as_bytes());
        assert!(
            peak <= bound,
            "{kind}: {peak} bytes live at most, over {bound} ({} MiB of input)",
            log.len() >> 20
        );
    }
}
