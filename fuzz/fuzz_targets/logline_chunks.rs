//! The log-line parser (`spigot_common::logline::check`): the same lines however the log
//! is cut into chunks, memory bounded by the caps, output linear in the input. The input:
//! a line-cap byte, a cut count, the cuts (u16 each), then the log.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spigot_common::logline::check::same_lines_in_chunks_and_bounded;
use spigot_common::logline::DEFAULT_MAX_LINE_BYTES;
use spigot_fuzz::{take_byte, take_u16};

/// Small caps reach the long-line paths with short inputs.
const CAPS: [usize; 4] = [DEFAULT_MAX_LINE_BYTES, 16, 100, 1000];

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let cap = CAPS[usize::from(take_byte(&mut data)) % CAPS.len()];
    let cuts: Vec<usize> = (0..take_byte(&mut data) % 9)
        .map(|_| usize::from(take_u16(&mut data)))
        .collect();
    same_lines_in_chunks_and_bounded(data, &cuts, cap);
});
