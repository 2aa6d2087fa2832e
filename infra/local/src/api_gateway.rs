//! What API Gateway (REST API, Lambda proxy integration) does between an HTTP client and
//! a function: match the request to a route of the template, build the proxy event (with
//! the stage's variables, read live), and turn the function's answer into HTTP, with
//! API Gateway's own answers where it gives them:
//! - no route or method: 403 `{"message":"Missing Authentication Token"}` (REST APIs
//!   answer that, not 404);
//! - a body above 10 MB: 413;
//! - a function error or a malformed answer: 502 `{"message":"Internal server error"}`;
//! - no answer within 29 s: 504 `{"message":"Endpoint request timed out"}`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::resources::LocalResources;
use crate::template::{EventSource, FunctionSpec, Template, ACCOUNT};

/// API Gateway's payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// REST API integration timeout.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

/// One route: an API's stage, a resource path, a method, and the function behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub api_id: String,
    pub stage: String,
    /// The resource path as the template writes it, e.g. `/webhook/{proxy+}`.
    pub resource: String,
    /// `ANY` or an HTTP method.
    pub method: String,
    /// The function's binary name.
    pub function: String,
    pub binary_media_types: Vec<String>,
}

/// A request matched to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    pub route: &'a Route,
    /// The path below the stage, e.g. `/webhook/a/b`.
    pub path: String,
    pub path_parameters: BTreeMap<String, String>,
}

/// Every route of the template, bound to the local APIs.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    pub fn from_template(
        template: &Template,
        functions: &[FunctionSpec],
        resources: &LocalResources,
    ) -> anyhow::Result<Routes> {
        let media_types: HashMap<String, Vec<String>> = template
            .apis()
            .into_iter()
            .map(|api| (api.logical_id, api.binary_media_types))
            .collect();
        let mut routes = Vec::new();
        for function in functions {
            for event in &function.events {
                if let EventSource::Api { api, path, method } = &event.source {
                    let local = resources.api(api)?;
                    routes.push(Route {
                        api_id: local.id.clone(),
                        stage: local.stage.clone(),
                        resource: path.clone(),
                        method: method.clone(),
                        function: function.binary.clone(),
                        binary_media_types: media_types.get(api).cloned().unwrap_or_default(),
                    });
                }
            }
        }
        Ok(Routes { routes })
    }

    pub fn all(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` on `full_path` (`/{stage}/...`): literal segments beat
    /// `{param}`, which beats `{proxy+}`; an exact method beats `ANY`.
    pub fn find(&self, method: &Method, full_path: &str) -> Option<Matched<'_>> {
        let trimmed = full_path.trim_start_matches('/');
        let (stage, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        let path = format!("/{rest}");
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        self.routes
            .iter()
            .filter(|route| route.stage == stage)
            .filter(|route| route.method == "ANY" || route.method == method.as_str())
            .filter_map(|route| {
                let (score, parameters) = match_resource(&route.resource, &segments)?;
                let method_score = u32::from(route.method != "ANY");
                Some(((score, method_score), route, parameters))
            })
            .max_by_key(|(score, _, _)| *score)
            .map(|(_, route, path_parameters)| Matched {
                route,
                path: path.clone(),
                path_parameters,
            })
    }
}

/// Matches request segments against a resource path; the score ranks literal segments
/// highest, then parameters, then a greedy `{proxy+}`.
fn match_resource(resource: &str, segments: &[&str]) -> Option<(u32, BTreeMap<String, String>)> {
    let parts: Vec<&str> = resource.split('/').filter(|s| !s.is_empty()).collect();
    let mut parameters = BTreeMap::new();
    let mut score = 0u32;
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            // Greedy: takes the rest, at least one segment.
            if i >= segments.len() {
                return None;
            }
            parameters.insert(name.to_owned(), segments[i..].join("/"));
            return Some((score * 4, parameters));
        }
        let segment = segments.get(i)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            parameters.insert(name.to_owned(), percent_decode(segment));
            score = score * 4 + 2;
        } else if part == segment {
            score = score * 4 + 3;
        } else {
            return None;
        }
    }
    (parts.len() == segments.len()).then_some((score * 4 + 1, parameters))
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// An HTTP request as the front door received it.
pub struct HttpRequest<'a> {
    pub method: &'a Method,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub source_ip: String,
    pub host: String,
}

/// The Lambda proxy event for a matched request.
pub fn proxy_event(
    matched: &Matched<'_>,
    request: &HttpRequest<'_>,
    stage_variables: &HashMap<String, String>,
    request_id: &str,
) -> Value {
    let route = matched.route;
    let mut headers = Map::new();
    let mut multi_headers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(name.as_str().to_owned(), Value::String(value.clone()));
        multi_headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(Value::String(value));
    }
    let mut query = Map::new();
    let mut multi_query: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(request.query.unwrap_or("").as_bytes()) {
        query.insert(name.to_string(), Value::String(value.to_string()));
        multi_query
            .entry(name.into_owned())
            .or_default()
            .push(Value::String(value.into_owned()));
    }
    let content_type = request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let binary = route
        .binary_media_types
        .iter()
        .any(|t| media_type_matches(t, content_type));
    // Without a binary media type API Gateway passes the body as text; bytes that are not
    // UTF-8 go base64 here rather than mangled, so they reach the function intact.
    let (body, is_base64) = if request.body.is_empty() {
        (Value::Null, false)
    } else {
        match (binary, std::str::from_utf8(request.body)) {
            (false, Ok(text)) => (Value::String(text.to_owned()), false),
            _ => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(request.body)),
                true,
            ),
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let or_null = |map: Map<String, Value>| {
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    };
    let multi = |map: BTreeMap<String, Vec<Value>>| {
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map.into_iter().map(|(k, v)| (k, Value::Array(v))).collect())
        }
    };
    json!({
        "resource": route.resource,
        "path": matched.path,
        "httpMethod": request.method.as_str(),
        "headers": or_null(headers),
        "multiValueHeaders": multi(multi_headers),
        "queryStringParameters": or_null(query),
        "multiValueQueryStringParameters": multi(multi_query),
        "pathParameters": or_null(matched.path_parameters.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
        "stageVariables": or_null(stage_variables.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": route.api_id,
            "resourcePath": route.resource,
            "httpMethod": request.method.as_str(),
            "path": format!("/{}{}", route.stage, matched.path),
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTimeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
            "stage": route.stage,
            "domainName": request.host,
            "identity": {
                "sourceIp": request.source_ip,
                "userAgent": request.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()),
            },
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// `application/json` matches `application/json`, `application/*` and `*/*`.
fn media_type_matches(pattern: &str, content_type: &str) -> bool {
    let content_type = content_type.split(';').next().unwrap_or("").trim();
    match pattern.split_once('/') {
        Some(("*", "*")) => true,
        Some((kind, "*")) => content_type.split('/').next() == Some(kind),
        _ => pattern.eq_ignore_ascii_case(content_type),
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpAnswer {
    /// One of API Gateway's own JSON answers.
    pub fn gateway(status: StatusCode, message: &str) -> HttpAnswer {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-errortype", HeaderValue::from_static("local"));
        HttpAnswer {
            status,
            headers,
            body: Bytes::from(json!({ "message": message }).to_string()),
        }
    }

    pub fn missing_route() -> HttpAnswer {
        Self::gateway(StatusCode::FORBIDDEN, "Missing Authentication Token")
    }

    pub fn internal_error() -> HttpAnswer {
        Self::gateway(StatusCode::BAD_GATEWAY, "Internal server error")
    }

    pub fn timed_out() -> HttpAnswer {
        Self::gateway(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out")
    }

    pub fn too_large() -> HttpAnswer {
        Self::gateway(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("HTTP content length exceeded {MAX_BODY_BYTES} bytes."),
        )
    }
}

/// The function's proxy answer as HTTP; a malformed answer is API Gateway's 502.
pub fn http_answer(function_response: &[u8]) -> HttpAnswer {
    try_http_answer(function_response).unwrap_or_else(|problem| {
        tracing::warn!(problem, "malformed Lambda proxy response");
        HttpAnswer::internal_error()
    })
}

fn try_http_answer(function_response: &[u8]) -> Result<HttpAnswer, String> {
    let response: Value = serde_json::from_slice(function_response).map_err(|e| e.to_string())?;
    let status = response["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("no valid statusCode")?;
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &Value| -> Result<(), String> {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        headers.append(
            name,
            HeaderValue::from_str(&text).map_err(|e| e.to_string())?,
        );
        Ok(())
    };
    if let Some(single) = response["headers"].as_object() {
        for (name, value) in single {
            add(name, value)?;
        }
    }
    if let Some(multi) = response["multiValueHeaders"].as_object() {
        for (name, values) in multi {
            for value in values
                .as_array()
                .ok_or("multiValueHeaders values are lists")?
            {
                add(name, value)?;
            }
        }
    }
    let body = match &response["body"] {
        Value::Null => Bytes::new(),
        Value::String(text) if response["isBase64Encoded"] == true => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| e.to_string())?,
        ),
        Value::String(text) => Bytes::from(text.clone()),
        _ => return Err("body is not a string".into()),
    };
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let route = |resource: &str, method: &str, function: &str| Route {
            api_id: "api".into(),
            stage: "prod".into(),
            resource: resource.into(),
            method: method.into(),
            function: function.into(),
            binary_media_types: vec![],
        };
        Routes {
            routes: vec![
                route("/webhook", "ANY", "hooks"),
                route("/webhook/{proxy+}", "ANY", "proxy"),
                route("/webhook/special", "POST", "special"),
                route("/items/{id}", "GET", "item"),
            ],
        }
    }

    #[test]
    fn literal_beats_parameter_beats_greedy_and_the_stage_is_required() {
        let routes = routes();
        let find = |method: Method, path: &str| {
            routes
                .find(&method, path)
                .map(|m| (m.route.function.clone(), m.path_parameters, m.path))
        };
        assert_eq!(find(Method::POST, "/prod/webhook").unwrap().0, "hooks");
        let (function, parameters, path) = find(Method::POST, "/prod/webhook/a/b%20c").unwrap();
        assert_eq!(function, "proxy");
        assert_eq!(parameters["proxy"], "a/b%20c");
        assert_eq!(path, "/webhook/a/b%20c");
        assert_eq!(
            find(Method::POST, "/prod/webhook/special").unwrap().0,
            "special"
        );
        assert_eq!(
            find(Method::GET, "/prod/webhook/special").unwrap().0,
            "proxy"
        );
        let (function, parameters, _) = find(Method::GET, "/prod/items/a%2Fb").unwrap();
        assert_eq!(
            (function.as_str(), parameters["id"].as_str()),
            ("item", "a/b")
        );
        assert!(
            find(Method::POST, "/prod/items/1").is_none(),
            "method not routed"
        );
        assert!(find(Method::POST, "/webhook").is_none(), "no stage");
        assert!(find(Method::POST, "/dev/webhook").is_none(), "other stage");
        assert!(find(Method::POST, "/prod/other").is_none());
    }

    #[test]
    fn the_event_has_the_proxy_shape_and_binary_bodies_go_base64() {
        let routes = routes();
        let matched = routes.find(&Method::POST, "/prod/webhook/x").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("1"));
        headers.append("x-multi", HeaderValue::from_static("2"));
        let body = Bytes::from_static(b"{\"a\":1}");
        let request = HttpRequest {
            method: &Method::POST,
            query: Some("a=1&a=2&b=x%20y"),
            headers: &headers,
            body: &body,
            source_ip: "127.0.0.1".into(),
            host: "127.0.0.1:1".into(),
        };
        let variables = HashMap::from([("spigot_state".to_owned(), "OFF".to_owned())]);
        let event = proxy_event(&matched, &request, &variables, "req-1");
        let parsed: aws_lambda_events::apigw::ApiGatewayProxyRequest =
            serde_json::from_value(event.clone()).expect("the typed event reads it");
        assert_eq!(parsed.http_method, Method::POST);
        assert_eq!(parsed.path.as_deref(), Some("/webhook/x"));
        assert_eq!(parsed.resource.as_deref(), Some("/webhook/{proxy+}"));
        assert_eq!(parsed.path_parameters["proxy"], "x");
        assert_eq!(parsed.stage_variables["spigot_state"], "OFF");
        assert_eq!(parsed.body.as_deref(), Some("{\"a\":1}"));
        assert!(!parsed.is_base64_encoded);
        assert_eq!(event["multiValueHeaders"]["x-multi"], json!(["1", "2"]));
        assert_eq!(
            event["multiValueQueryStringParameters"]["a"],
            json!(["1", "2"])
        );
        assert_eq!(event["queryStringParameters"]["b"], "x y");
        assert_eq!(event["requestContext"]["path"], "/prod/webhook/x");

        let binary = Bytes::from_static(&[0xff, 0xfe, 0x00]);
        let request = HttpRequest {
            body: &binary,
            ..request
        };
        let event = proxy_event(&matched, &request, &HashMap::new(), "req-2");
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "//4A");
        assert_eq!(event["stageVariables"], Value::Null);
    }

    #[test]
    fn answers_map_to_http_and_bad_ones_to_502() {
        let answer = http_answer(
            br#"{"statusCode":202,"headers":{"content-type":"application/json"},"multiValueHeaders":{"set-cookie":["a","b"]},"body":"{}"}"#,
        );
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        assert_eq!(answer.body, "{}");
        assert_eq!(answer.headers.get_all("set-cookie").iter().count(), 2);
        let binary = http_answer(br#"{"statusCode":200,"body":"AAE=","isBase64Encoded":true}"#);
        assert_eq!(binary.body.as_ref(), &[0, 1]);
        for bad in [
            &b"not json"[..],
            br#"{"body":"x"}"#,
            br#"{"statusCode":99}"#,
        ] {
            assert_eq!(http_answer(bad).status, StatusCode::BAD_GATEWAY);
        }
    }
}
