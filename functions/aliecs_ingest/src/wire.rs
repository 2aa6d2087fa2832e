//! Protobuf bytes built by hand from the reference's field layout
//! (`reference/aliecs-kafka.md` §1, §4), independent of prost's encoder: what the
//! tests feed the decoder, so that they check it against the reference, not against
//! itself.

pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A varint field.
pub fn int(field: u64, value: u64) -> Vec<u8> {
    let mut out = varint(field << 3);
    out.extend(varint(value));
    out
}

/// A length-delimited field (string, bytes, message).
pub fn len(field: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = varint((field << 3) | 2);
    out.extend(varint(bytes.len() as u64));
    out.extend_from_slice(bytes);
    out
}

pub fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

pub const ENV: &str = "2oDvieFrVTi";
pub const T0: u64 = 1_763_805_600_000;

/// kafka.EnvInfo.
pub fn env_info(run: Option<u64>, state: &str, detectors: &[&str], entered: u64) -> Vec<u8> {
    let mut parts = vec![len(1, ENV.as_bytes())];
    if let Some(run) = run {
        parts.push(int(2, run));
        parts.push(len(3, b"PHYSICS"));
    }
    parts.push(len(4, state.as_bytes()));
    for d in detectors {
        parts.push(len(5, d.as_bytes()));
    }
    parts.push(int(6, entered));
    cat(&parts)
}

/// kafka.NewStateNotification.
pub fn notification(env_info: &[u8], timestamp: u64) -> Vec<u8> {
    cat(&[len(1, env_info), int(2, timestamp)])
}

/// events.Event carrying an Ev_RunEvent (oneof field 16).
pub fn run_event(
    ms: u64,
    run: u64,
    transition: &str,
    status: u64,
    state: &str,
    user: &str,
) -> Vec<u8> {
    let user = len(3, user.as_bytes());
    let payload = cat(&[
        len(1, ENV.as_bytes()),
        int(2, run),
        len(3, state.as_bytes()),
        len(5, transition.as_bytes()),
        int(6, status),
        len(8, &user),
    ]);
    cat(&[
        int(1, ms),
        int(2, ms * 1_000_000 + 123_456),
        len(16, &payload),
    ])
}

/// kafka.ActiveRunsList of the given kafka.EnvInfo messages.
pub fn active_runs(env_infos: &[Vec<u8>], timestamp: u64) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = env_infos.iter().map(|env| len(1, env)).collect();
    parts.push(int(2, timestamp));
    cat(&parts)
}
