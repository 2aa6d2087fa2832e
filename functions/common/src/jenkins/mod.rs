//! Jenkins as the webhook target: forwarding a request, probing that Jenkins answers,
//! and telling "the request is wrong" apart from "Jenkins is not able right now".

pub mod builds;

use std::time::Duration;

use bytes::Bytes;

use crate::config::{ConfigError, TargetConfig};
use crate::secrets::JenkinsCredentials;
use crate::text::truncate;

/// How the target took a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx or 3xx: done.
    Accepted { status: u16 },
    /// The request itself is wrong: sending it again cannot help.
    Rejected { status: u16, body: String },
    /// May be the target's state (down, restarting, overloaded, misconfigured): keep the
    /// request and try later.
    Unavailable { reason: String, status: Option<u16> },
}

/// Status codes that say the request itself is wrong. Everything else that is not a
/// success may be the target's state: a restarting Jenkins answers 404 or 503, a
/// credentials mix-up 401/403, so those requests are kept, not refused.
const REQUEST_IS_WRONG: [u16; 5] = [400, 405, 413, 415, 422];

pub fn classify(status: u16, body: impl FnOnce() -> String) -> Delivery {
    match status {
        200..=399 => Delivery::Accepted { status },
        s if REQUEST_IS_WRONG.contains(&s) => Delivery::Rejected {
            status,
            body: body(),
        },
        _ => Delivery::Unavailable {
            reason: format!("target answered {status}"),
            status: Some(status),
        },
    }
}

/// One HTTP request to send to the target, on a path a route allowed.
#[derive(Debug, Clone)]
pub struct OutgoingRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: Bytes,
    /// The route says the Jenkins credentials go with it.
    pub with_credentials: bool,
}

/// Longest part of a refusal's body kept for the sender and the DLQ attributes.
const MAX_ERROR_BODY: usize = 2048;

#[derive(Clone)]
pub struct JenkinsTarget {
    client: reqwest::Client,
    config: TargetConfig,
    credentials: Option<JenkinsCredentials>,
}

impl JenkinsTarget {
    pub fn new(
        config: TargetConfig,
        credentials: Option<JenkinsCredentials>,
    ) -> Result<Self, ConfigError> {
        let builder = crate::http::client_builder()?
            // A redirect is an answer; following it would re-send the body elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(3)));
        Ok(Self {
            client: crate::http::build(builder, "TARGET_URL")?,
            config,
            credentials,
        })
    }

    pub fn config(&self) -> &TargetConfig {
        &self.config
    }

    /// Sends the request with its headers and body bytes untouched, within the timeout.
    pub async fn forward(&self, request: &OutgoingRequest<'_>) -> Delivery {
        let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
            return Delivery::Rejected {
                status: 405,
                body: format!("method {:?} cannot be sent", request.method),
            };
        };
        let Some(url) = self.url_for(request.path) else {
            return Delivery::Rejected {
                status: 400,
                body: "the path does not stay below the target URL".into(),
            };
        };
        let mut builder = self.client.request(method, url);
        if !request.query.is_empty() {
            builder = builder.query(request.query);
        }
        for (name, value) in request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if request.with_credentials {
            if let Some(creds) = &self.credentials {
                builder = builder.basic_auth(&creds.username, Some(creds.api_token.expose()));
            }
        }
        match builder.body(request.body.clone()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match classify(status, String::new) {
                    Delivery::Rejected { .. } => {
                        let text = response.text().await.unwrap_or_default();
                        Delivery::Rejected {
                            status,
                            body: truncate(&text, MAX_ERROR_BODY),
                        }
                    }
                    other => other,
                }
            }
            Err(err) => Delivery::Unavailable {
                reason: describe_transport_error(&err),
                status: None,
            },
        }
    }

    /// The URL of `path` on the target, only when parsing it changed nothing: the routes
    /// already refuse what could climb out (dot segments, encoded slashes, `@`, ...);
    /// this holds the line should one of them be wrong.
    fn url_for(&self, path: &str) -> Option<reqwest::Url> {
        if !path.starts_with('/') {
            return None;
        }
        let joined = format!("{}{path}", self.config.url);
        let url = reqwest::Url::parse(&joined).ok()?;
        let base = reqwest::Url::parse(&self.config.url).ok()?;
        let same_origin = url.origin() == base.origin() && url.username().is_empty();
        let expected_path = format!("{}{path}", base.path().trim_end_matches('/'));
        (same_origin
            && url.path() == expected_path
            && url.query().is_none()
            && url.fragment().is_none())
        .then_some(url)
    }

    /// Does the target answer? A GET on the health path with the same credentials as the
    /// replays: wrong credentials (401) count as down, so a drain does not burn receive
    /// counts on requests that would all be refused.
    pub async fn probe(&self) -> Result<u16, String> {
        let url = format!("{}{}", self.config.url, self.config.health_path);
        let mut builder = self.client.get(&url);
        if let Some(creds) = &self.credentials {
            builder = builder.basic_auth(&creds.username, Some(creds.api_token.expose()));
        }
        match builder.send().await {
            Ok(response) if response.status().as_u16() < 400 => Ok(response.status().as_u16()),
            Ok(response) => Err(format!("target answered {}", response.status().as_u16())),
            Err(err) => Err(describe_transport_error(&err)),
        }
    }
}

/// Says what went wrong, without the URL (its query may hold a trigger token).
fn describe_transport_error(err: &reqwest::Error) -> String {
    format!("target {}", crate::http::describe_error(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_would_change_on_parsing_is_not_sent() {
        let target = |url: &str| {
            JenkinsTarget::new(
                TargetConfig {
                    url: url.into(),
                    health_path: "/login".into(),
                    timeout: Duration::from_secs(1),
                },
                None,
            )
            .unwrap()
        };
        let prefixed = target("https://jenkins.example.com/ci");
        assert_eq!(
            prefixed.url_for("/project/a%20b").unwrap().as_str(),
            "https://jenkins.example.com/ci/project/a%20b"
        );
        for escape in [
            "/../x",
            "/a/%2e%2e/x",
            "/a?x=1",
            "/a#x",
            "/a b",
            "@evil.example/x",
        ] {
            assert_eq!(prefixed.url_for(escape), None, "{escape}");
        }
        let root = target("http://127.0.0.1:8080");
        assert!(root.url_for("/github-webhook/").is_some());
        assert_eq!(root.url_for(":9/x"), None);
        assert_eq!(root.url_for("@evil.example/x"), None);
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(
            classify(200, String::new),
            Delivery::Accepted { status: 200 }
        );
        assert_eq!(
            classify(302, String::new),
            Delivery::Accepted { status: 302 }
        );
        for wrong in [400, 405, 413, 415, 422] {
            assert!(
                matches!(classify(wrong, String::new), Delivery::Rejected { .. }),
                "{wrong}"
            );
        }
        for state in [401, 403, 404, 408, 409, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(state, String::new), Delivery::Unavailable { status: Some(s), .. } if s == state),
                "{state}"
            );
        }
    }
}
