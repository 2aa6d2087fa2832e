//! What the fuzz targets share: reading an input as the Lambda runtime reads an event,
//! the promises every API answer keeps, and cutting an input into parts.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use spigot_common::apigw::Answer;

/// An API Gateway event as the Lambda runtime reads the invocation's JSON
/// (lambda_runtime deserializes through serde_path_to_error): `None` when the runtime
/// would refuse it before the function sees it.
pub fn api_event(data: &[u8]) -> Option<ApiGatewayProxyRequest> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(data)).ok()
}

/// Bytes of an answer's JSON body: a short reason of ours, never an echo of the input.
pub const MAX_ANSWER_BYTES: usize = 1024;

/// An answer decided before any I/O: a status the sender can act on and a small JSON
/// body naming the problem (or the ignored event).
pub fn check_answer(answer: &Answer, statuses: std::ops::RangeInclusive<u16>) {
    assert!(
        statuses.contains(&answer.status),
        "status {}",
        answer.status
    );
    let body = answer.body.to_string();
    assert!(
        body.len() <= MAX_ANSWER_BYTES,
        "a {}-byte answer: {}…",
        body.len(),
        &body[..body.floor_char_boundary(200)]
    );
    if answer.status >= 400 {
        assert!(answer.body["error"].is_string(), "no error named: {body}");
    }
}

/// Takes the first byte of `data` (0 when empty).
pub fn take_byte(data: &mut &[u8]) -> u8 {
    match data.split_first() {
        Some((&first, rest)) => {
            *data = rest;
            first
        }
        None => 0,
    }
}

/// Takes a little-endian u16 off the front of `data` (missing bytes are 0).
pub fn take_u16(data: &mut &[u8]) -> u16 {
    u16::from(take_byte(data)) | (u16::from(take_byte(data)) << 8)
}
