//! The legacy plugin's protobuf messages read in place, held to prost's decoding
//! (`aliecs_ingest::legacy::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    aliecs_ingest::legacy::check::agree(data);
});
