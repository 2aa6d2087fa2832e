//! Timeline documents written by hand, held to serde_json byte for byte
//! (`aliecs_ingest::timeline::check`), on whatever the topic's decoder reads. The input
//! is messages of a batch: a topic byte, a length byte, the value; the detector list's
//! JSON remembered from one document to the next, as a batch remembers it.
#![no_main]

use aliecs_ingest::decode::decode;
use aliecs_ingest::timeline::check::same_json;
use aliecs_ingest::timeline::DetectorsJson;
use libfuzzer_sys::fuzz_target;
use spigot_fuzz::take_byte;

/// One topic of each kind `decode` tells apart (`reference/aliecs-kafka.md` §7).
const TOPICS: [&str; 10] = [
    "aliecs.env_state.RUNNING",
    "aliecs.env_leave_state.RUNNING",
    "aliecs.env_list.RUNNING",
    "aliecs.start_activity",
    "aliecs.run",
    "aliecs.environment",
    "aliecs.core",
    "aliecs.task",
    "aliecs.integrated_service.dcs",
    "aliecs.env_state.CONFIGURED",
];

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut memo = DetectorsJson::default();
    while !data.is_empty() {
        let topic = TOPICS[usize::from(take_byte(&mut data)) % TOPICS.len()];
        // 255: the rest of the input.
        let len = match take_byte(&mut data) {
            255 => data.len(),
            len => usize::from(len).min(data.len()),
        };
        let (value, rest) = data.split_at(len);
        data = rest;
        if let Ok(message) = decode(topic, value) {
            same_json(topic, &message, &mut memo);
        }
    }
});
