//! The Kafka event reader: the fast reading held to the lenient one, and both to a walk
//! over serde_json's `Value` (`spigot_common::kafka::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spigot_common::kafka::check::readers_agree;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        readers_agree(text);
    }
});
