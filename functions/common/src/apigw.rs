//! API Gateway REST proxy events: reading the request, answering with JSON.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use http::header::{HeaderValue, CONTENT_TYPE};
use serde_json::Value;

/// A header's value as text; `None` when absent or not visible ASCII/UTF-8.
pub fn header<'a>(request: &'a ApiGatewayProxyRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the event says the body is base64 but it is not valid base64")]
    BadBase64,
}

/// The raw body bytes, decoding base64 when the event says so.
pub fn raw_body(request: &ApiGatewayProxyRequest) -> Result<Vec<u8>, BodyError> {
    match &request.body {
        None => Ok(Vec::new()),
        Some(body) if request.is_base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| BodyError::BadBase64),
        Some(body) => Ok(body.as_bytes().to_vec()),
    }
}

/// Query pairs, decoded, sorted so the envelope is stable: every value of a repeated
/// name from the multi-value map, else the single-value map.
///
/// `QueryMap::iter` indexes the first value of every name and panics on a name mapped
/// to an empty list (query_map 0.7, `values[0]`), which API Gateway never sends but a
/// direct invoke can; the map is read through its serde form instead, where an empty
/// list is just no pairs.
pub fn query_pairs(request: &ApiGatewayProxyRequest) -> Vec<(String, String)> {
    let source = if request.multi_value_query_string_parameters.is_empty() {
        &request.query_string_parameters
    } else {
        &request.multi_value_query_string_parameters
    };
    let mut pairs = Vec::new();
    if let Ok(Value::Object(map)) = serde_json::to_value(source) {
        for (name, values) in map {
            let values = match values {
                Value::Array(values) => values,
                one => vec![one],
            };
            for value in values {
                if let Value::String(value) = value {
                    pairs.push((name.clone(), value));
                }
            }
        }
    }
    pairs.sort();
    pairs
}

pub fn json_response(status: u16, body: Value) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// An answer decided before any I/O (a refusal, or an event acknowledged and ignored),
/// made a response at the edge; small, unlike the response itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// A 4xx/5xx whose JSON body names the problem.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            body: serde_json::json!({ "error": message.into() }),
        }
    }

    pub fn into_response(self) -> ApiGatewayProxyResponse {
        json_response(self.status, self.body)
    }
}

/// A 4xx/5xx answer whose JSON body names the problem.
pub fn error_response(status: u16, message: impl Into<String>) -> ApiGatewayProxyResponse {
    json_response(status, serde_json::json!({ "error": message.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Option<&str>, base64: bool) -> ApiGatewayProxyRequest {
        let mut r = ApiGatewayProxyRequest::default();
        r.body = body.map(str::to_string);
        r.is_base64_encoded = base64;
        r
    }

    #[test]
    fn decodes_bodies() {
        assert_eq!(raw_body(&request(Some("{}"), false)).unwrap(), b"{}");
        assert_eq!(raw_body(&request(Some("e30="), true)).unwrap(), b"{}");
        assert_eq!(
            raw_body(&request(Some("%%%"), true)),
            Err(BodyError::BadBase64)
        );
        assert_eq!(raw_body(&request(None, false)).unwrap(), b"");
    }

    #[test]
    fn queries_are_read_without_indexing_what_the_event_did_not_promise() {
        use std::collections::HashMap;
        let mut r = ApiGatewayProxyRequest::default();
        r.multi_value_query_string_parameters = HashMap::from([
            ("empty".to_string(), Vec::<String>::new()),
            ("token".to_string(), vec!["b".to_string(), "a".to_string()]),
        ])
        .into();
        assert_eq!(
            query_pairs(&r),
            [
                ("token".to_string(), "a".to_string()),
                ("token".to_string(), "b".to_string())
            ]
        );
        let mut single = ApiGatewayProxyRequest::default();
        single.query_string_parameters =
            HashMap::from([("job_id".to_string(), "7".to_string())]).into();
        assert_eq!(
            query_pairs(&single),
            [("job_id".to_string(), "7".to_string())]
        );
        assert!(query_pairs(&ApiGatewayProxyRequest::default()).is_empty());
    }

    #[test]
    fn error_bodies_are_json() {
        let response = error_response(400, "bad");
        assert_eq!(response.status_code, 400);
        let Some(Body::Text(text)) = response.body else {
            panic!("text body expected")
        };
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["error"],
            "bad"
        );
    }
}
