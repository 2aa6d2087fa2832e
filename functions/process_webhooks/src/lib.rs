//! process_webhooks: a webhook arrives through API Gateway; it goes to the target at once
//! while the spigot is ON, and into the queue while it is OFF or DRAINING or when the
//! target cannot take it. It is never answered 2xx unless delivered or stored.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use bytes::Bytes;
use serde_json::json;
use spigot_common::apigw::{error_response, header, json_response, query_pairs, raw_body};
use spigot_common::buffer::{Claim, WebhookBuffer};
use spigot_common::envelope::Envelope;
use spigot_common::github::{
    is_kept_header, is_valid_delivery_id, verify_signature, DELIVERY_HEADER, EVENT_HEADER,
    SIGNATURE_256_HEADER,
};
use spigot_common::jenkins::{Delivery, JenkinsTarget, OutgoingRequest};
use spigot_common::secrets::Secret;
use spigot_common::state::{SpigotState, STATE_VARIABLE};

/// Everything the handler needs, built once per cold start.
pub struct Deps {
    pub buffer: WebhookBuffer,
    pub target: JenkinsTarget,
    /// Empty: signatures are not checked.
    pub webhook_secrets: Vec<Secret>,
}

pub async fn handle_request(
    deps: &Deps,
    request: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    // Bytes: the forward and the envelope share one copy of a body of up to 10 MB.
    let body = match raw_body(&request) {
        Ok(body) => Bytes::from(body),
        Err(err) => return error_response(400, err.to_string()),
    };
    let method = request.http_method.as_str().to_string();
    if method == "POST" && body.is_empty() {
        return error_response(400, "the request has no body; a webhook POST needs one");
    }
    if !deps.webhook_secrets.is_empty() {
        if let Err(err) = verify_signature(
            &body,
            header(&request, SIGNATURE_256_HEADER),
            &deps.webhook_secrets,
        ) {
            tracing::warn!(problem = %err, "refused a request with a bad signature");
            return error_response(401, err.to_string());
        }
    }

    let delivery_id = header(&request, DELIVERY_HEADER).map(str::to_string);
    let event = header(&request, EVENT_HEADER).unwrap_or("-").to_string();
    if let Some(id) = &delivery_id {
        if !is_valid_delivery_id(id) {
            return error_response(
                400,
                "X-GitHub-Delivery must be 1-128 letters, digits, '-', '_' or '.'",
            );
        }
        if deps.buffer.claim_delivery(id).await == Claim::Duplicate {
            tracing::info!(delivery = %id, event, "duplicate delivery dropped");
            return json_response(200, json!({ "status": "duplicate", "delivery": id }));
        }
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

    let path = deps
        .target
        .path_for(request.path_parameters.get("proxy").map(String::as_str));
    let query = query_pairs(&request);
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| is_kept_header(name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();

    let queue_reason = if state == SpigotState::On {
        let outgoing = OutgoingRequest {
            method: &method,
            path: &path,
            query: &query,
            headers: &headers,
            body: body.clone(),
        };
        match deps.target.forward(&outgoing).await {
            Delivery::Accepted { status } => {
                tracing::info!(delivery = ?delivery_id, event, status, "delivered");
                return json_response(
                    200,
                    json!({ "status": "delivered", "target_status": status }),
                );
            }
            Delivery::Rejected { status, body } => {
                tracing::warn!(delivery = ?delivery_id, event, status, "target refused the request");
                // A corrected redelivery must not be taken for a duplicate.
                if let Some(id) = &delivery_id {
                    deps.buffer.release_delivery(id).await;
                }
                return json_response(
                    status,
                    json!({
                        "error": format!("the target refused the request with {status}"),
                        "target_status": status,
                        "target_body": body,
                    }),
                );
            }
            Delivery::Unavailable { reason, .. } => reason,
        }
    } else {
        format!("spigot is {state}")
    };

    let envelope = Envelope::new(method, path, query, headers, &body);
    match deps.buffer.enqueue(envelope).await {
        Ok(envelope) => {
            tracing::info!(delivery = ?delivery_id, event, id = %envelope.id, state = %state, reason = %queue_reason, "queued");
            json_response(
                202,
                json!({
                    "status": "queued",
                    "id": envelope.id,
                    "state": state,
                    "reason": queue_reason,
                }),
            )
        }
        Err(err) => {
            tracing::error!(delivery = ?delivery_id, event, error = %err, "request neither delivered nor stored");
            if let Some(id) = &delivery_id {
                deps.buffer.release_delivery(id).await;
            }
            error_response(503, format!("the request could not be stored: {err}"))
        }
    }
}
