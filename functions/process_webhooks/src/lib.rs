//! process_webhooks: a webhook arrives through API Gateway; it goes to the target at once
//! while the spigot is ON, and into the queue while it is OFF or DRAINING or when the
//! target cannot take it. It is never answered 2xx unless delivered or stored.
//!
//! Whoever calls the endpoint may hold one validly signed request, and a signature
//! covers only the body: the path, method and query are pinned by the configured routes
//! (`spigot_common::target_routes`), never taken from the request, and nothing of
//! Jenkins' answer or of our internals goes back to the caller.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use bytes::Bytes;
use serde_json::json;
use spigot_common::apigw::{header, json_response, query_pairs, raw_body, Answer};
use spigot_common::buffer::{Claim, WebhookBuffer};
use spigot_common::config::ConfigError;
use spigot_common::envelope::Envelope;
use spigot_common::github::{
    is_kept_header, is_valid_delivery_id, verify_signature, DELIVERY_HEADER, EVENT_HEADER,
    SIGNATURE_256_HEADER,
};
use spigot_common::gitlab::{hook_token_matches, is_kept_hook_header, HOOK_TOKEN_HEADER};
use spigot_common::jenkins::{Delivery, JenkinsTarget, OutgoingRequest};
use spigot_common::secrets::{GithubSecrets, Secret};
use spigot_common::state::{SpigotState, STATE_VARIABLE};
use spigot_common::target_routes::{TargetRoute, TargetRoutes, Verify};
use spigot_common::telemetry::{catalogue::process_webhooks as metric, Metric, Metrics};

/// Everything the handler needs, built once per cold start.
pub struct Deps {
    pub buffer: WebhookBuffer,
    pub target: JenkinsTarget,
    pub routes: TargetRoutes,
    pub senders: Senders,
}

/// How senders are checked: the secrets of each kind, and whether a route whose kind has
/// none takes requests unchecked (`ALLOW_UNSIGNED=true`).
#[derive(Debug, Clone, Default)]
pub struct Senders {
    pub github_secrets: Vec<Secret>,
    pub gitlab_tokens: Vec<Secret>,
    pub allow_unsigned: bool,
}

impl Senders {
    pub fn new(secrets: GithubSecrets, allow_unsigned: bool) -> Self {
        Self {
            github_secrets: secrets.webhook_secrets,
            gitlab_tokens: secrets.gitlab_tokens,
            allow_unsigned,
        }
    }

    fn secrets(&self, verify: Verify) -> &[Secret] {
        match verify {
            Verify::GithubSignature => &self.github_secrets,
            Verify::GitlabToken => &self.gitlab_tokens,
        }
    }

    /// The cold-start check: no secrets of any kind refuses to start unless
    /// `ALLOW_UNSIGNED=true`. Returns what to warn about: the routes that take unchecked
    /// requests, or that refuse every request for want of a secret.
    pub fn check(&self, routes: &TargetRoutes) -> Result<Vec<String>, ConfigError> {
        let public: Vec<&TargetRoute> = routes.iter().filter(|r| !r.internal).collect();
        let unverifiable: Vec<&&TargetRoute> = public
            .iter()
            .filter(|r| self.secrets(r.verify).is_empty())
            .collect();
        if !self.allow_unsigned && unverifiable.len() == public.len() {
            return Err(ConfigError::Invalid {
                name: "ALLOW_UNSIGNED",
                reason: "no webhook secret is configured (github.json webhook_secrets / \
                         gitlab_tokens, or GITHUB_WEBHOOK_SECRETS / GITLAB_WEBHOOK_TOKENS): \
                         every request would reach Jenkins unchecked. Configure a secret, or \
                         set ALLOW_UNSIGNED=true to accept unsigned requests on purpose"
                    .into(),
            });
        }
        Ok(unverifiable
            .iter()
            .map(|route| {
                if self.allow_unsigned {
                    format!(
                        "ALLOW_UNSIGNED=true: route {} ({}) takes requests without checking their sender",
                        route.name,
                        route.display_path()
                    )
                } else {
                    format!(
                        "route {} ({}) refuses every request: no {} is configured",
                        route.name,
                        route.display_path(),
                        secret_kind(route.verify)
                    )
                }
            })
            .collect())
    }

    /// Whether the request's sender is who the route expects; `Err` is the 401's text.
    fn verify(
        &self,
        route: &TargetRoute,
        request: &ApiGatewayProxyRequest,
        body: &[u8],
    ) -> Result<(), String> {
        let secrets = self.secrets(route.verify);
        if secrets.is_empty() {
            return if self.allow_unsigned {
                Ok(())
            } else {
                Err(format!(
                    "this endpoint needs {} and none is configured",
                    secret_kind(route.verify)
                ))
            };
        }
        match route.verify {
            Verify::GithubSignature => {
                verify_signature(body, header(request, SIGNATURE_256_HEADER), secrets)
                    .map_err(|e| e.to_string())
            }
            Verify::GitlabToken => match header(request, HOOK_TOKEN_HEADER) {
                None => Err("X-Gitlab-Token is missing".into()),
                Some(token) if hook_token_matches(token, secrets) => Ok(()),
                Some(_) => Err("X-Gitlab-Token does not match".into()),
            },
        }
    }
}

fn secret_kind(verify: Verify) -> &'static str {
    match verify {
        Verify::GithubSignature => "webhook secret (X-Hub-Signature-256)",
        Verify::GitlabToken => "GitLab token (X-Gitlab-Token)",
    }
}

/// The headers a route passes on and stores.
fn kept_headers(route: &TargetRoute, request: &ApiGatewayProxyRequest) -> Vec<(String, String)> {
    let keep = |name: &str| match route.verify {
        Verify::GithubSignature => is_kept_header(name),
        Verify::GitlabToken => is_kept_hook_header(name),
    };
    request
        .headers
        .iter()
        .filter(|(name, _)| keep(name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A request that passed every check that needs no I/O: its route, its sender, its
/// shape. What [`handle_request`] then delivers or stores.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub route: &'a TargetRoute,
    pub method: String,
    /// The Jenkins path the route resolved.
    pub path: String,
    /// The query pairs the route passes on.
    pub query: Vec<(String, String)>,
    /// The headers the route keeps.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delivery_id: Option<String>,
    pub event: String,
    pub state: SpigotState,
}

/// Reads and checks a request without any I/O: the route, the body, the sender, the
/// delivery id, the state. `Err` is the answer for a request that goes no further.
pub fn read_request<'a>(
    routes: &'a TargetRoutes,
    senders: &Senders,
    request: &ApiGatewayProxyRequest,
) -> Result<Incoming<'a>, Answer> {
    let method = request.http_method.as_str().to_string();
    let resolved = routes
        .for_request(
            &method,
            request.path_parameters.get("proxy").map(String::as_str),
        )
        .map_err(|err| {
            tracing::warn!(method, problem = %err, "refused a request no route takes");
            Answer::error(err.status(), err.to_string())
        })?;
    let route = resolved.route;
    // Bytes: the forward and the envelope share one copy of a body of up to 10 MB.
    let body = Bytes::from(raw_body(request).map_err(|err| Answer::error(400, err.to_string()))?);
    if method == "POST" && body.is_empty() {
        return Err(Answer::error(
            400,
            "the request has no body; a webhook POST needs one",
        ));
    }
    senders.verify(route, request, &body).map_err(|problem| {
        tracing::warn!(route = %route.name, problem, "refused a request whose sender is not verified");
        Answer::error(401, problem)
    })?;
    let delivery_id = header(request, DELIVERY_HEADER).map(str::to_string);
    if delivery_id
        .as_deref()
        .is_some_and(|id| !is_valid_delivery_id(id))
    {
        return Err(Answer::error(
            400,
            "X-GitHub-Delivery must be 1-128 letters, digits, '-', '_' or '.'",
        ));
    }
    let state = SpigotState::from_variable(
        request
            .stage_variables
            .get(STATE_VARIABLE)
            .map(String::as_str),
    )
    .unwrap_or_else(|problem| {
        tracing::error!("{problem}");
        SpigotState::Off
    });
    Ok(Incoming {
        route,
        query: route.filter_query(&query_pairs(request)),
        headers: kept_headers(route, request),
        path: resolved.target_path,
        method,
        body,
        delivery_id,
        event: header(request, EVENT_HEADER).unwrap_or("-").to_string(),
        state,
    })
}

/// How long a claim holds when the invocation's deadline is not known (tests): the
/// function's timeout in template.yaml.
pub const DEFAULT_CLAIM: std::time::Duration = std::time::Duration::from_secs(15);

/// Handles a request whose invocation ends by `deadline_ms` (epoch ms, from the runtime;
/// `None`: [`DEFAULT_CLAIM`] from now). The delivery id's claim holds until then.
pub async fn handle_request_until(
    deps: &Deps,
    request: ApiGatewayProxyRequest,
    deadline_ms: Option<u64>,
) -> ApiGatewayProxyResponse {
    let claim_until = deadline_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| (d + DEFAULT_CLAIM).as_millis() as u64)
    });
    let (outcome, answer) = handle(deps, request, claim_until).await;
    outcome_metrics(outcome).emit();
    answer
}

/// What became of one request, counted in the function's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Queued,
    Duplicate,
    Rejected,
    TargetRefused,
    NotStored,
}

/// One EMF record per request: 1 for its outcome, 0 for the others, so every series
/// has a point whenever a webhook arrives.
fn outcome_metrics(outcome: Outcome) -> Metrics {
    let all: [(Outcome, Metric); 6] = [
        (Outcome::Delivered, metric::DELIVERED),
        (Outcome::Queued, metric::QUEUED),
        (Outcome::Duplicate, metric::DUPLICATES),
        (Outcome::Rejected, metric::REJECTED),
        (Outcome::TargetRefused, metric::TARGET_REFUSED),
        (Outcome::NotStored, metric::NOT_STORED),
    ];
    all.into_iter()
        .fold(Metrics::new("process_webhooks"), |metrics, (o, m)| {
            metrics.put(m, u64::from(o == outcome))
        })
}

/// [`handle_request_until`] with the deadline unknown.
pub async fn handle_request(
    deps: &Deps,
    request: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    handle_request_until(deps, request, None).await
}

async fn handle(
    deps: &Deps,
    request: ApiGatewayProxyRequest,
    claim_until: u64,
) -> (Outcome, ApiGatewayProxyResponse) {
    let incoming = match read_request(&deps.routes, &deps.senders, &request) {
        Ok(incoming) => incoming,
        Err(answer) => return (Outcome::Rejected, answer.into_response()),
    };
    let Incoming {
        route,
        method,
        path,
        query,
        headers,
        body,
        delivery_id,
        event,
        state,
    } = incoming;
    let request_id = request.request_context.request_id.as_deref();
    let delivery = delivery_id.as_deref().unwrap_or("");
    if let Some(id) = &delivery_id {
        match deps.buffer.claim_delivery(id, claim_until).await {
            Claim::Duplicate => {
                tracing::info!(delivery = %id, event, "duplicate delivery dropped");
                return (
                    Outcome::Duplicate,
                    json_response(200, json!({ "status": "duplicate", "delivery": id })),
                );
            }
            Claim::InProgress => {
                tracing::info!(delivery = %id, event, "delivery being handled by another request");
                return (
                    Outcome::Duplicate,
                    json_response(
                        409,
                        json!({
                            "error": "this delivery is being handled by another request; redeliver it if that one fails",
                            "delivery": id,
                        }),
                    ),
                );
            }
            Claim::First | Claim::Unknown => {}
        }
    }

    let queue_reason = if state == SpigotState::On {
        let outgoing = OutgoingRequest {
            method: &method,
            path: &path,
            query: &query,
            headers: &headers,
            body: body.clone(),
            with_credentials: route.credentials,
        };
        match deps.target.forward(&outgoing).await {
            Delivery::Accepted { status } => {
                tracing::info!(delivery, event, route = %route.name, status, "delivered");
                if let Some(id) = &delivery_id {
                    deps.buffer.complete_delivery(id).await;
                }
                return (
                    Outcome::Delivered,
                    json_response(
                        200,
                        json!({ "status": "delivered", "target_status": status }),
                    ),
                );
            }
            Delivery::Rejected { status, body } => {
                // Jenkins' own words stay in our log: they may say more than a sender
                // should learn.
                tracing::warn!(delivery, event, route = %route.name, status, target_body = %body, "target refused the request");
                // A corrected redelivery must not be taken for a duplicate.
                if let Some(id) = &delivery_id {
                    deps.buffer.release_delivery(id).await;
                }
                return (
                    Outcome::TargetRefused,
                    json_response(
                        status,
                        json!({
                            "error": format!("the target refused the request with {status}"),
                            "target_status": status,
                        }),
                    ),
                );
            }
            Delivery::Unavailable { reason, .. } => reason,
        }
    } else {
        format!("spigot is {state}")
    };

    let envelope = Envelope::new(method, path, query, headers, &body).through(&route.name);
    match deps.buffer.enqueue(envelope).await {
        Ok(envelope) => {
            tracing::info!(delivery, event, route = %route.name, id = %envelope.id, state = %state, reason = %queue_reason, "queued");
            if let Some(id) = &delivery_id {
                deps.buffer.complete_delivery(id).await;
            }
            (
                Outcome::Queued,
                json_response(
                    202,
                    json!({
                        "status": "queued",
                        "id": envelope.id,
                        "state": state,
                        "reason": queue_reason,
                    }),
                ),
            )
        }
        Err(err) => {
            tracing::error!(delivery, event, request_id = request_id.unwrap_or(""), error = %err, "request neither delivered nor stored");
            if let Some(id) = &delivery_id {
                deps.buffer.release_delivery(id).await;
            }
            (
                Outcome::NotStored,
                json_response(
                    503,
                    json!({
                        "error": "the request could not be stored; send it again later",
                        "request_id": request_id,
                    }),
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spigot_common::telemetry::{catalogue, emf_metrics};

    #[test]
    fn a_request_counts_once_under_its_outcome_and_zero_under_the_others() {
        let line = outcome_metrics(Outcome::Queued).to_json().to_string();
        let metrics = emf_metrics(&line).expect("an EMF record");
        assert_eq!(metrics.len(), catalogue::of("process_webhooks").count());
        for metric in &metrics {
            let expected = if metric.name == "Queued" { 1.0 } else { 0.0 };
            assert_eq!(metric.value, expected, "{}", metric.name);
        }
    }
}
