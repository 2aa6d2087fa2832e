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
    /// The blueprint the action belongs to, when the message says (legacy messages name
    /// actions per blueprint: routes may be keyed `blueprint/action`).
    pub blueprint: Option<String>,
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
    #[error("no run id (context.runId, port_context.runId, run.id, runId)")]
    NoRunId,
    #[error("run id {0:?} is not a Port run id")]
    BadRunId(String),
    #[error(
        "the message names no action: add \"action\": \"{{{{ .action.identifier }}}}\" to the action's Kafka payload"
    )]
    NoAction,
    #[error("the run's status is {0}, not TRIGGERED")]
    NotTriggered(String),
    /// A run of another invocation method (a port-agent WEBHOOK run, GitHub, ...) seen on
    /// the topic: its own consumer handles it.
    #[error("the run's invocation method is {0}, not KAFKA")]
    NotKafka(String),
    #[error("the run's inputs ({0}) are not an object of input names to values")]
    BadInputs(&'static str),
}

/// A record that is not a run request this function can start, and the run it names
/// when one can be read: that run is told why instead of being left in progress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct Unusable {
    pub run_id: Option<String>,
    pub problem: MessageError,
}

impl MessageError {
    /// Whether the run this message names is ours to end: not when it belongs to another
    /// consumer or only reports on a run.
    pub fn ends_the_run(&self) -> bool {
        matches!(self, MessageError::NoAction | MessageError::BadInputs(_))
    }

    /// A short status label for the run in Port.
    pub fn status_label(&self) -> &'static str {
        match self {
            MessageError::NoAction => "Not started: no action in the message",
            MessageError::BadInputs(_) => "Not started: inputs unreadable",
            _ => "Not started",
        }
    }
}

/// Where the run id may be (`reference/port-api.md` §5, and port-docs' v2 convention
/// `port_context.runId` / `port_context.run_id`), first match wins.
const RUN_ID_PATHS: [&[&str]; 8] = [
    &["context", "runId"],
    &["port_context", "runId"],
    &["port_context", "run_id"],
    &["run", "id"],
    &["runId"],
    &["run_id"],
    &["portRunId"],
    &["payload", "context", "runId"],
];

/// Where the inputs may be, first present wins.
const INPUT_PATHS: [&[&str]; 4] = [
    &["payload", "properties"],
    &["inputs"],
    &["properties"],
    &["payload", "inputs"],
];

/// Reads a record's value.
pub fn decode(value: &[u8]) -> Result<RunRequest, Unusable> {
    let message: Value = serde_json::from_slice(value).map_err(|e| Unusable {
        run_id: None,
        problem: MessageError::NotJson(e.to_string()),
    })?;
    parse(&message)
}

fn at<'v>(message: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(message, |node, key| node.get(key))
}

/// Reads a run request from either shape; the first place that has a field wins.
pub fn parse(message: &Value) -> Result<RunRequest, Unusable> {
    let text = |paths: &[&[&str]]| {
        paths.iter().find_map(|path| match at(message, path)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let unusable = |run_id: Option<&String>, problem| Unusable {
        run_id: run_id.cloned(),
        problem,
    };
    // The legacy envelope says what happened to the run; only a trigger starts one.
    if let Some(status) = message.get("status").and_then(Value::as_str) {
        if message.get("resourceType").and_then(Value::as_str) == Some("run")
            && status != "TRIGGERED"
        {
            return Err(unusable(
                None,
                MessageError::NotTriggered(status.to_owned()),
            ));
        }
    }
    let run_id = text(&RUN_ID_PATHS).ok_or(unusable(None, MessageError::NoRunId))?;
    if !valid_run_id(&run_id) {
        return Err(unusable(None, MessageError::BadRunId(run_id)));
    }
    // A run of another invocation method is another consumer's (port-agent reads the
    // same topic and takes `agent: true` WEBHOOK runs: port-labs/port-agent
    // app/streamers/kafka/kafka_streamer.py).
    if let Some(method) = text(&[
        &["payload", "action", "invocationMethod", "type"],
        &["action", "invocationMethod", "type"],
        &["invocationMethod", "type"],
    ]) {
        if !method.eq_ignore_ascii_case("KAFKA") {
            return Err(unusable(Some(&run_id), MessageError::NotKafka(method)));
        }
    }
    let action = text(&[
        &["action"],
        &["action", "identifier"],
        &["context", "action"],
        &["port_context", "action"],
        &["payload", "action", "identifier"],
        &["actionIdentifier"],
        &["action_identifier"],
    ])
    .ok_or(unusable(Some(&run_id), MessageError::NoAction))?;
    let inputs = match INPUT_PATHS.iter().find_map(|path| at(message, path)) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(inputs)) => inputs.clone(),
        Some(_) => {
            let path = INPUT_PATHS
                .iter()
                .find(|path| at(message, path).is_some())
                .map_or("inputs", |path| path[path.len() - 1]);
            return Err(unusable(Some(&run_id), MessageError::BadInputs(path)));
        }
    };
    Ok(RunRequest {
        run_id,
        action,
        blueprint: text(&[
            &["context", "blueprint"],
            &["port_context", "blueprint"],
            &["action", "blueprint"],
            &["payload", "action", "blueprint"],
        ]),
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

    /// Port's own messages (port-agent's test fixtures and Port's docs, rendered), each
    /// read as what it is: ours to start, ours to end with the reason, or another
    /// consumer's. The sources are named in the fixture file.
    #[test]
    fn the_real_messages_read_as_what_they_are() {
        let fixtures: Value =
            serde_json::from_str(include_str!("../tests/fixtures/port-kafka-examples.json"))
                .unwrap();
        type Read = Result<(String, String, Option<String>), (Option<String>, MessageError)>;
        let read: Vec<(String, Read)> = fixtures["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|example| {
                let name = example["name"].as_str().unwrap().to_owned();
                let outcome = parse(&example["message"])
                    .map(|r| (r.run_id, r.action, r.blueprint))
                    .map_err(|e| (e.run_id, e.problem));
                (name, outcome)
            })
            .collect();
        let webhook = |run: &str| {
            Err((
                Some(run.to_owned()),
                MessageError::NotKafka("WEBHOOK".into()),
            ))
        };
        let no_action = |run: &str| Err((Some(run.to_owned()), MessageError::NoAction));
        let start = |run: &str, action: &str, blueprint: Option<&str>| {
            Ok((
                run.to_owned(),
                action.to_owned(),
                blueprint.map(str::to_owned),
            ))
        };
        let expected = [
            ("agent_legacy_run_message", webhook("r_jE5FhDURh4Uen2Qr")),
            ("agent_workflow_node_run", webhook("wfnr_abc123")),
            (
                "agent_polling_run_body",
                start("run_123", "deploy", Some("microservice")),
            ),
            ("docs_agent_incoming_event", webhook("r_HardNzG6kzc9vWOQ")),
            ("docs_agent_decryption_example", webhook("r_789")),
            (
                "docs_lambda_guide_kafka_payload",
                start("r_docsLambdaGuide1", "create_vm", Some("vm")),
            ),
            (
                "docs_v2_payload_port_context_run_id",
                no_action("r_docsPortCtx0001"),
            ),
            (
                "docs_v2_payload_whole_trigger_data",
                start(
                    "r_docsTriggerData1",
                    "Microservice_scaffold_a_microservice",
                    Some("Microservice"),
                ),
            ),
            (
                "docs_v2_payload_spread_inputs_port_context",
                no_action("r_docsSpreadCtx01"),
            ),
        ];
        assert_eq!(read.len(), expected.len());
        for ((name, outcome), (want_name, want)) in read.iter().zip(expected) {
            assert_eq!(name, want_name);
            assert_eq!(outcome, &want, "{name}");
        }
        let guide = parse(&fixtures["examples"][5]["message"]).unwrap();
        assert_eq!(guide.inputs["title"], "my-vm");
        assert_eq!(guide.inputs["cpu"], 2);
    }

    #[test]
    fn records_that_are_not_run_requests_say_why() {
        let problem = |message: &Value| parse(message).map_err(|e| (e.run_id, e.problem));
        assert!(matches!(
            decode(b"{oops").map_err(|e| e.problem),
            Err(MessageError::NotJson(_))
        ));
        assert_eq!(
            problem(&json!({"action": "x"})),
            Err((None, MessageError::NoRunId))
        );
        assert_eq!(
            problem(&json!({"run": {"id": "r_1"}})),
            Err((Some("r_1".into()), MessageError::NoAction))
        );
        assert_eq!(
            problem(&json!({"run": {"id": "../etc"}, "action": "x"})),
            Err((None, MessageError::BadRunId("../etc".into())))
        );
        assert_eq!(
            problem(
                &json!({"resourceType": "run", "status": "SUCCESS", "action": "x", "context": {"runId": "r_1"}})
            ),
            Err((None, MessageError::NotTriggered("SUCCESS".into())))
        );
        assert_eq!(
            problem(&json!({"action": "x", "run": {"id": "r_1"}, "inputs": "serviceName=a"})),
            Err((Some("r_1".into()), MessageError::BadInputs("inputs")))
        );
        assert_eq!(
            problem(&json!({"action": "x", "context": {"runId": "r_1"},
                "payload": {"action": {"invocationMethod": {"type": "WEBHOOK", "agent": true}}}})),
            Err((Some("r_1".into()), MessageError::NotKafka("WEBHOOK".into())))
        );
        assert!(MessageError::NoAction.ends_the_run());
        assert!(!MessageError::NotKafka("WEBHOOK".into()).ends_the_run());
    }
}
