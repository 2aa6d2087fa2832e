//! A run request from Port's Kafka topic, in either of its shapes
//! (`reference/port-api.md` §5): the legacy agent envelope (`action`, `context.runId`,
//! `payload.properties`) or a v2 custom payload, which is whatever the action's template
//! makes of the trigger data (`run.id`, `action.identifier`, `inputs`, ...).

use serde_json::{Map, Value};
use spigot_common::port_run::valid_run_id;

/// What a run asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub run_id: String,
    pub action: String,
    pub inputs: Map<String, Value>,
    /// The entity the action was run on, when it has one.
    pub entity: Option<String>,
    /// Who ran it (email, else user id).
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the record value is not JSON: {0}")]
    NotJson(String),
    #[error("no run id (context.runId, run.id, runId)")]
    NoRunId,
    #[error("run id {0:?} is not a Port run id")]
    BadRunId(String),
    #[error("no action identifier (action, action.identifier, context.action)")]
    NoAction,
    #[error("the run's status is {0}, not TRIGGERED")]
    NotTriggered(String),
}

/// Reads a record's value.
pub fn decode(value: &[u8]) -> Result<RunRequest, MessageError> {
    let message: Value =
        serde_json::from_slice(value).map_err(|e| MessageError::NotJson(e.to_string()))?;
    parse(&message)
}

/// Reads a run request from either shape; the first place that has a field wins.
pub fn parse(message: &Value) -> Result<RunRequest, MessageError> {
    let text = |paths: &[&[&str]]| {
        paths.iter().find_map(|path| {
            let mut node = message;
            for key in *path {
                node = node.get(key)?;
            }
            match node {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        })
    };
    // The legacy envelope says what happened to the run; only a trigger starts one.
    if let Some(status) = message.get("status").and_then(Value::as_str) {
        if message.get("resourceType").and_then(Value::as_str) == Some("run")
            && status != "TRIGGERED"
        {
            return Err(MessageError::NotTriggered(status.to_owned()));
        }
    }
    let run_id = text(&[
        &["context", "runId"],
        &["run", "id"],
        &["runId"],
        &["run_id"],
        &["portRunId"],
        &["payload", "context", "runId"],
    ])
    .ok_or(MessageError::NoRunId)?;
    if !valid_run_id(&run_id) {
        return Err(MessageError::BadRunId(run_id));
    }
    let action = text(&[
        &["action"],
        &["action", "identifier"],
        &["context", "action"],
        &["payload", "action", "identifier"],
        &["actionIdentifier"],
        &["action_identifier"],
    ])
    .ok_or(MessageError::NoAction)?;
    let inputs = [
        &["payload", "properties"][..],
        &["inputs"],
        &["properties"],
        &["payload", "inputs"],
    ]
    .iter()
    .find_map(|path| {
        let mut node = message;
        for key in *path {
            node = node.get(key)?;
        }
        node.as_object().cloned()
    })
    .unwrap_or_default();
    Ok(RunRequest {
        run_id,
        action,
        inputs,
        entity: text(&[
            &["context", "entity"],
            &["entity", "identifier"],
            &["entity"],
            &["payload", "entity", "identifier"],
        ]),
        user: text(&[
            &["trigger", "by", "user", "email"],
            &["trigger", "by", "userId"],
            &["context", "by", "user", "email"],
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(value: &Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    #[test]
    fn the_legacy_envelope_and_v2_payloads_read_alike() {
        let legacy = json!({
            "action": "deploy_microservice_kafka", "resourceType": "run", "status": "TRIGGERED",
            "trigger": {"by": {"orgId": "org_1", "userId": "u_1", "user": {"email": "ana@example.com"}}, "origin": "UI", "at": "2026-11-22T10:00:00Z"},
            "context": {"entity": null, "blueprint": "service", "runId": "r_AbC123"},
            "payload": {"entity": null, "action": {"invocationMethod": {"type": "KAFKA"}}, "properties": {"serviceName": "my-service", "version": "1.2.3"}},
        });
        let v2 = json!({
            "run": {"id": "r_AbC123"},
            "action": {"identifier": "deploy_microservice_kafka", "blueprint": "service"},
            "inputs": {"serviceName": "my-service", "version": "1.2.3"},
            "trigger": {"by": {"user": {"email": "ana@example.com"}}},
        });
        let guide = json!({"action": "deploy_microservice_kafka", "context": {"runId": "r_AbC123"}, "payload": {"properties": {"serviceName": "my-service", "version": "1.2.3"}}});
        let a = decode(&bytes(&legacy)).unwrap();
        let b = decode(&bytes(&v2)).unwrap();
        let c = decode(&bytes(&guide)).unwrap();
        assert_eq!(
            (a.run_id.as_str(), a.action.as_str()),
            ("r_AbC123", "deploy_microservice_kafka")
        );
        assert_eq!(a.inputs["serviceName"], "my-service");
        assert_eq!(a.user.as_deref(), Some("ana@example.com"));
        assert_eq!(
            (b.run_id.as_str(), b.action.as_str()),
            (a.run_id.as_str(), a.action.as_str())
        );
        assert_eq!(b.inputs, a.inputs);
        assert_eq!(c.inputs, a.inputs);
    }

    #[test]
    fn records_that_are_not_run_requests_say_why() {
        assert!(matches!(decode(b"{oops"), Err(MessageError::NotJson(_))));
        assert_eq!(parse(&json!({"action": "x"})), Err(MessageError::NoRunId));
        assert_eq!(
            parse(&json!({"run": {"id": "r_1"}})),
            Err(MessageError::NoAction)
        );
        assert_eq!(
            parse(&json!({"run": {"id": "../etc"}, "action": "x"})),
            Err(MessageError::BadRunId("../etc".into()))
        );
        assert_eq!(
            parse(
                &json!({"resourceType": "run", "status": "SUCCESS", "action": "x", "context": {"runId": "r_1"}})
            ),
            Err(MessageError::NotTriggered("SUCCESS".into()))
        );
    }
}
