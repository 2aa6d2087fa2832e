//! The bulk API answer reader (`spigot_common::search::check`): one result per item, and
//! what it keeps of the server's text bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spigot_common::search::check::bulk_answer(data);
});
