//! The alarms and the dashboard of template.yaml (issue 17), held to the rest of the
//! template and to the metric catalogue, in every shape a deploy can take (Port and
//! AliECS each in or out):
//! - every queue that is a DLQ has a DLQ alarm; every queue with a DLQ an age alarm whose
//!   threshold is its retry horizon (VisibilityTimeout x maxReceiveCount) when a function
//!   receives from it, or `SpigotMaxMessageAgeSeconds` (the spigot's own queue);
//! - every function an errors and a throttles alarm; every function with a Kafka event
//!   source an `OffsetLag` alarm at `KafkaMaxOffsetLag`;
//! - every alarm a description with a first command, and the notification of
//!   `AlarmEmail`, `AlarmTopicArn` or nobody;
//! - the dashboard shows only metrics some function emits (`telemetry::catalogue`, with
//!   its namespace and dimension) and every one of them, plus the errors, throttles and
//!   durations of every function and the depth of every queue.
//!
//! A function or queue added later without its alarms fails here. Each check is also run
//! on a broken copy of the template, so a check that cannot fail would show.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use spigot_common::telemetry::{catalogue, FUNCTION_DIMENSION, NAMESPACE};
use spigot_local::template::{Physical, Resolver, Template};

/// A shape of deploy: which optional flows are in.
#[derive(Debug, Clone, Copy)]
struct Shape {
    port: bool,
    aliecs: bool,
}

const SHAPES: [Shape; 4] = [
    Shape {
        port: false,
        aliecs: false,
    },
    Shape {
        port: true,
        aliecs: false,
    },
    Shape {
        port: false,
        aliecs: true,
    },
    Shape {
        port: true,
        aliecs: true,
    },
];

/// Parameters as a deploy of `shape` gives them: defaults, the optional flows switched
/// on by their parameters, and `extra` on top.
fn parameters(
    template: &Template,
    shape: Shape,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut parameters: HashMap<String, String> = template
        .parameters()
        .into_iter()
        .map(|(name, default)| (name, default.unwrap_or_else(|| "required-value".into())))
        .collect();
    if shape.port {
        parameters.insert("PortOrgId".into(), "org_test".into());
    }
    if shape.aliecs {
        parameters.insert("AliecsKafkaBootstrapServers".into(), "broker:9092".into());
    }
    for (name, value) in extra {
        parameters.insert((*name).into(), (*value).into());
    }
    parameters
}

/// The template as deployed in `shape`, and a resolver that knows every resource it
/// has (and no other): a reference to a resource left out fails to resolve.
fn deployed(template: &Template, shape: Shape, extra: &[(&str, &str)]) -> (Template, Resolver) {
    let mut resolver = Resolver {
        stack_name: "spigot".into(),
        parameters: parameters(template, shape, extra),
        resources: HashMap::new(),
        conditions: template.conditions(),
    };
    let enabled = template
        .enabled(&resolver)
        .expect("the conditions evaluate");
    for (id, _) in enabled.root()["Resources"].as_object().expect("resources") {
        resolver.resources.insert(
            id.clone(),
            Physical::new(format!("{id}-physical"))
                .with("Arn", format!("arn:aws:test:::{id}"))
                .with("QueueName", format!("{id}-name")),
        );
    }
    (enabled, resolver)
}

/// The resource a template value names (`Ref X`, `GetAtt X.Attr`).
fn referenced(value: &Value) -> Option<String> {
    if let Some(name) = value.get("Ref").and_then(Value::as_str) {
        return Some(name.to_owned());
    }
    match value.get("Fn::GetAtt")? {
        Value::String(dotted) => dotted.split_once('.').map(|(r, _)| r.to_owned()),
        Value::Array(parts) => parts.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// One alarm, as the checks read it.
#[derive(Debug)]
struct Alarm {
    id: String,
    namespace: String,
    metric: String,
    /// Dimension name and the resource its value names.
    dimensions: Vec<(String, Option<String>)>,
    threshold: Value,
    comparison: String,
    description: String,
}

fn alarms(template: &Template) -> Vec<Alarm> {
    template
        .resources_of_type("AWS::CloudWatch::Alarm")
        .map(|(id, resource)| {
            let p = &resource["Properties"];
            let text = |key: &str| p[key].as_str().unwrap_or_default().to_owned();
            Alarm {
                id: id.clone(),
                namespace: text("Namespace"),
                metric: text("MetricName"),
                dimensions: p["Dimensions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        (
                            d["Name"].as_str().unwrap_or_default().to_owned(),
                            referenced(&d["Value"]),
                        )
                    })
                    .collect(),
                threshold: p["Threshold"].clone(),
                comparison: text("ComparisonOperator"),
                // `!Sub` text: the template's own words, before substitution.
                description: match &p["AlarmDescription"] {
                    Value::String(s) => s.clone(),
                    other => other["Fn::Sub"].as_str().unwrap_or_default().to_owned(),
                },
            }
        })
        .collect()
}

/// The alarms on `metric` of `namespace` whose `dimension` names `resource`.
fn alarms_on<'a>(
    alarms: &'a [Alarm],
    namespace: &'a str,
    metric: &'a str,
    dimension: &'a str,
    resource: &'a str,
) -> impl Iterator<Item = &'a Alarm> + 'a {
    alarms.iter().filter(move |a| {
        a.namespace == namespace
            && a.metric == metric
            && a.dimensions == [(dimension.to_owned(), Some(resource.to_owned()))]
    })
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// What is wrong with the alarms of `template` deployed in `shape` (empty: nothing).
fn alarm_problems(template: &Template, shape: Shape) -> Vec<String> {
    let (template, _) = deployed(template, shape, &[]);
    let alarms = alarms(&template);
    let mut problems = Vec::new();
    let resources = template.root()["Resources"].as_object().expect("resources");

    for alarm in &alarms {
        for (name, resource) in &alarm.dimensions {
            match resource {
                Some(r) if resources.contains_key(r) => {}
                _ => problems.push(format!(
                    "{}: dimension {name} names {resource:?}, which is not deployed",
                    alarm.id
                )),
            }
        }
        if !(alarm.description.contains("toggle_spigot ") || alarm.description.contains("aws ")) {
            problems.push(format!(
                "{}: the description gives no first command",
                alarm.id
            ));
        }
        let p = &resources[&alarm.id]["Properties"];
        if p.get("AlarmActions").is_none() || p.get("OKActions").is_none() {
            problems.push(format!("{}: notifies nobody it could notify", alarm.id));
        }
    }

    // Who receives from which queue (SQS event sources).
    let functions = template.functions().expect("the functions read");
    let received: BTreeSet<String> = functions
        .iter()
        .flat_map(|f| &f.events)
        .filter_map(|e| match &e.source {
            spigot_local::template::EventSource::Sqs { queue, .. } => referenced(queue),
            _ => None,
        })
        .collect();
    for queue in template.queues() {
        let Some(policy) = queue.properties.get("RedrivePolicy") else {
            continue;
        };
        let Some(dlq) = referenced(&policy["deadLetterTargetArn"]) else {
            problems.push(format!(
                "{}: the DLQ is not a resource of the stack",
                queue.logical_id
            ));
            continue;
        };
        let dlq_alarms: Vec<_> = alarms_on(
            &alarms,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            &dlq,
        )
        .collect();
        if !dlq_alarms
            .iter()
            .any(|a| number(&a.threshold) == Some(0.0) && a.comparison == "GreaterThanThreshold")
        {
            problems.push(format!("{dlq}: no alarm on any message in the DLQ"));
        }
        let horizon = if received.contains(&queue.logical_id) {
            let visibility = queue.properties.get("VisibilityTimeout").and_then(number);
            let receives = policy.get("maxReceiveCount").and_then(number);
            match (visibility, receives) {
                (Some(v), Some(r)) => Value::from(v * r),
                _ => {
                    problems.push(format!(
                        "{}: no VisibilityTimeout or maxReceiveCount",
                        queue.logical_id
                    ));
                    continue;
                }
            }
        } else {
            serde_json::json!({"Ref": "SpigotMaxMessageAgeSeconds"})
        };
        let age: Vec<_> = alarms_on(
            &alarms,
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            &queue.logical_id,
        )
        .collect();
        let matches = |a: &&Alarm| match (number(&a.threshold), number(&horizon)) {
            (Some(t), Some(h)) => t == h,
            _ => a.threshold == horizon,
        };
        if !age.iter().any(matches) {
            problems.push(format!(
                "{}: no alarm on its oldest message older than {horizon} (has {:?})",
                queue.logical_id,
                age.iter().map(|a| &a.threshold).collect::<Vec<_>>()
            ));
        }
    }

    for function in &functions {
        for metric in ["Errors", "Throttles"] {
            if alarms_on(
                &alarms,
                "AWS/Lambda",
                metric,
                "FunctionName",
                &function.logical_id,
            )
            .next()
            .is_none()
            {
                problems.push(format!("{}: no {metric} alarm", function.logical_id));
            }
        }
        let kafka = function
            .events
            .iter()
            .any(|e| matches!(e.source, spigot_local::template::EventSource::Kafka { .. }));
        if kafka
            && !alarms_on(
                &alarms,
                "AWS/Lambda",
                "OffsetLag",
                "FunctionName",
                &function.logical_id,
            )
            .any(|a| a.threshold == serde_json::json!({"Ref": "KafkaMaxOffsetLag"}))
        {
            problems.push(format!(
                "{}: no OffsetLag alarm at KafkaMaxOffsetLag",
                function.logical_id
            ));
        }
    }
    problems
}

/// An alarm's actions as deployed: `None` when left out (notify nobody).
fn actions(resolver: &Resolver, value: &Value) -> Option<Vec<String>> {
    if let Some(parts) = value.get("Fn::If").and_then(Value::as_array) {
        let condition = parts[0].as_str().expect("If names a condition");
        let branch = if resolver
            .condition(condition)
            .expect("the condition evaluates")
        {
            &parts[1]
        } else {
            &parts[2]
        };
        return actions(resolver, branch);
    }
    if value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
        return None;
    }
    let items = value.as_array().expect("actions are a list");
    Some(
        items
            .iter()
            .map(|item| resolver.resolve_required(item).expect("an action resolves"))
            .collect(),
    )
}

#[test]
fn every_queue_function_and_kafka_source_has_its_alarms() {
    let template = Template::workspace().expect("template.yaml reads");
    for shape in SHAPES {
        let problems = alarm_problems(&template, shape);
        assert!(problems.is_empty(), "{shape:?}:\n{}", problems.join("\n"));
    }
    let (everything, _) = deployed(&template, SHAPES[3], &[]);
    // 3 DLQs, 3 queue ages, 6 x errors and throttles, 2 Kafka lags.
    assert_eq!(alarms(&everything).len(), 3 + 3 + 12 + 2);
}

/// Parameters given on top of a shape's.
type Extra<'a> = &'a [(&'a str, &'a str)];

#[test]
fn alarms_notify_the_alarm_email_topic_or_the_given_topic_or_nobody() {
    let template = Template::workspace().expect("template.yaml reads");
    let topic = "arn:aws:sns:eu-west-1:123456789012:ops";
    let cases: [(Extra, Option<Vec<String>>); 4] = [
        (&[], None),
        (
            &[("AlarmEmail", "ops@example.org")],
            Some(vec!["AlarmTopic-physical".into()]),
        ),
        (&[("AlarmTopicArn", topic)], Some(vec![topic.into()])),
        // The email's own topic wins (the parameter says so).
        (
            &[("AlarmEmail", "ops@example.org"), ("AlarmTopicArn", topic)],
            Some(vec!["AlarmTopic-physical".into()]),
        ),
    ];
    for (extra, expected) in cases {
        let (deployed, resolver) = deployed(&template, SHAPES[3], extra);
        let topics = deployed.resources_of_type("AWS::SNS::Topic").count();
        assert_eq!(
            topics,
            usize::from(extra.iter().any(|(k, _)| *k == "AlarmEmail")),
            "{extra:?}"
        );
        let mut seen = 0;
        for (id, alarm) in deployed.resources_of_type("AWS::CloudWatch::Alarm") {
            for key in ["AlarmActions", "OKActions"] {
                assert_eq!(
                    actions(&resolver, &alarm["Properties"][key]),
                    expected,
                    "{id} {key} {extra:?}"
                );
            }
            seen += 1;
        }
        assert_eq!(seen, 20, "{extra:?}");
    }
}

#[test]
fn a_template_missing_an_alarm_is_caught() {
    let template = Template::workspace().expect("template.yaml reads");
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut root = template.root().clone();
        change(&mut root);
        Template::from_json(root).expect("still a template")
    };
    let resources = |root: &mut Value| root["Resources"].as_object_mut().unwrap().clone();

    // A DLQ alarm forgotten.
    let without_dlq_alarm = broken(&|root| {
        root["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("IngestDeadLetterQueueAlarm");
    });
    let problems = alarm_problems(&without_dlq_alarm, SHAPES[0]);
    assert_eq!(
        problems,
        ["IngestDeadLetterQueue: no alarm on any message in the DLQ"]
    );

    // A function added without its alarms.
    let with_new_function = broken(&|root| {
        let copy = resources(root)["GitlabIngestFunction"].clone();
        root["Resources"]["NewFunction"] = copy;
    });
    let problems = alarm_problems(&with_new_function, SHAPES[0]);
    assert_eq!(
        problems,
        [
            "NewFunction: no Errors alarm",
            "NewFunction: no Throttles alarm"
        ]
    );

    // A retry horizon changed without its alarm.
    let longer_retries = broken(&|root| {
        root["Resources"]["IngestQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] =
            9.into();
    });
    let problems = alarm_problems(&longer_retries, SHAPES[0]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("IngestQueue: no alarm on its oldest message older than 48600"),
        "{problems:?}"
    );

    // An alarm of the Port flow deployed without it.
    let unconditional = broken(&|root| {
        root["Resources"]["TailDeadLetterQueueAlarm"]
            .as_object_mut()
            .unwrap()
            .remove("Condition");
    });
    let problems = alarm_problems(&unconditional, SHAPES[0]);
    assert_eq!(
        problems,
        ["TailDeadLetterQueueAlarm: dimension QueueName names Some(\"TailDeadLetterQueue\"), which is not deployed"]
    );
    assert!(alarm_problems(&unconditional, SHAPES[1]).is_empty());

    // A Kafka source without its lag alarm.
    let no_lag = broken(&|root| {
        root["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("AliecsIngestOffsetLagAlarm");
    });
    assert_eq!(
        alarm_problems(&no_lag, SHAPES[2]),
        ["AliecsIngestFunction: no OffsetLag alarm at KafkaMaxOffsetLag"]
    );
}

/// One metric a dashboard widget plots.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shown {
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
}

/// The dashboard's body as deployed in `shape`, read as JSON, and its metrics.
fn dashboard(template: &Template, shape: Shape) -> Result<(Value, Vec<Shown>), String> {
    let (deployed, resolver) = deployed(template, shape, &[]);
    let (_, dashboard) = deployed
        .resources_of_type("AWS::CloudWatch::Dashboard")
        .next()
        .ok_or("no dashboard")?;
    let text = resolver
        .resolve_required(&dashboard["Properties"]["DashboardBody"])
        .map_err(|e| format!("the body does not resolve: {e:#}"))?;
    let body: Value =
        serde_json::from_str(&text).map_err(|e| format!("the body is not JSON: {e}\n{text}"))?;
    let mut shown = Vec::new();
    for widget in body["widgets"].as_array().ok_or("no widgets")? {
        if widget["type"] != "metric" {
            continue;
        }
        let properties = &widget["properties"];
        if properties["region"] != "us-east-1" {
            return Err(format!("a widget without the stack's region: {widget}"));
        }
        for metric in properties["metrics"]
            .as_array()
            .ok_or("a metric widget without metrics")?
        {
            let parts: Vec<&str> = metric
                .as_array()
                .ok_or("a metric is not a list")?
                .iter()
                .take_while(|part| part.is_string())
                .map(|part| part.as_str().unwrap())
                .collect();
            if parts.len() < 2 || !parts.len().is_multiple_of(2) || parts.contains(&".") {
                return Err(format!(
                    "a metric spelled out in full is expected: {metric}"
                ));
            }
            shown.push(Shown {
                namespace: parts[0].into(),
                name: parts[1].into(),
                dimensions: parts[2..]
                    .chunks(2)
                    .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                    .collect(),
            });
        }
    }
    Ok((body, shown))
}

/// What is wrong with the dashboard of `template` deployed in `shape`.
fn dashboard_problems(template: &Template, shape: Shape) -> Vec<String> {
    let shown = match dashboard(template, shape) {
        Ok((_, shown)) => shown,
        Err(problem) => return vec![problem],
    };
    let (deployed, _) = deployed(template, shape, &[]);
    let functions = deployed.functions().expect("the functions read");
    let binaries: BTreeSet<&str> = functions.iter().map(|f| f.binary.as_str()).collect();
    let function_names: BTreeSet<String> = functions
        .iter()
        .map(|f| format!("{}-physical", f.logical_id))
        .collect();
    let queue_names: BTreeSet<String> = deployed
        .queues()
        .iter()
        .map(|q| format!("{}-name", q.logical_id))
        .collect();
    let mut problems = Vec::new();
    for metric in &shown {
        let one = |name: &str| metric.dimensions.len() == 1 && metric.dimensions[0].0 == name;
        let value = metric
            .dimensions
            .first()
            .map(|d| d.1.as_str())
            .unwrap_or("");
        let known = match metric.namespace.as_str() {
            NAMESPACE => {
                one(FUNCTION_DIMENSION)
                    && binaries.contains(value)
                    && catalogue::of(value).any(|m| m.name == metric.name)
            }
            "AWS/Lambda" => one("FunctionName") && function_names.contains(value),
            "AWS/SQS" => one("QueueName") && queue_names.contains(value),
            _ => false,
        };
        if !known {
            problems.push(format!("shows {metric:?}, which nothing deployed emits"));
        }
    }
    let has = |namespace: &str, name: &str, dimension: &str, value: &str| {
        shown.iter().any(|m| {
            m.namespace == namespace
                && m.name == name
                && m.dimensions == [(dimension.to_owned(), value.to_owned())]
        })
    };
    for function in &functions {
        for metric in catalogue::of(&function.binary) {
            if !has(NAMESPACE, metric.name, FUNCTION_DIMENSION, &function.binary) {
                problems.push(format!(
                    "does not show {} of {}",
                    metric.name, function.binary
                ));
            }
        }
        let name = format!("{}-physical", function.logical_id);
        for metric in ["Errors", "Throttles", "Duration"] {
            if !has("AWS/Lambda", metric, "FunctionName", &name) {
                problems.push(format!(
                    "does not show the {metric} of {}",
                    function.logical_id
                ));
            }
        }
    }
    for queue in &queue_names {
        if !has(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            queue,
        ) {
            problems.push(format!("does not show the depth of {queue}"));
        }
    }
    problems
}

#[test]
fn the_dashboard_shows_what_the_functions_emit_and_nothing_else() {
    let template = Template::workspace().expect("template.yaml reads");
    for shape in SHAPES {
        let problems = dashboard_problems(&template, shape);
        assert!(problems.is_empty(), "{shape:?}:\n{}", problems.join("\n"));
    }
    let (_, everything) = dashboard(&template, SHAPES[3]).expect("the dashboard reads");
    let (_, core) = dashboard(&template, SHAPES[0]).expect("the dashboard reads");
    let spigot = |shown: &[Shown]| shown.iter().filter(|m| m.namespace == NAMESPACE).count();
    assert_eq!(spigot(&everything), catalogue::ALL.len());
    assert_eq!(
        spigot(&core),
        ["process_webhooks", "send_from_queue", "gitlab_ingest"]
            .iter()
            .map(|f| catalogue::of(f).count())
            .sum::<usize>()
    );
    assert!(everything.iter().any(|m| m.name == "SpigotState"));
}

#[test]
fn a_dashboard_showing_what_nobody_emits_is_caught() {
    let template = Template::workspace().expect("template.yaml reads");
    let text = serde_json::to_string(template.root()).unwrap();
    assert_eq!(
        text.matches("LinesIndexed").count(),
        1,
        "only the dashboard names it"
    );
    let misspelt = Template::from_json(
        serde_json::from_str(&text.replace("LinesIndexed", "LinesIndexd")).unwrap(),
    )
    .unwrap();
    let mut problems = dashboard_problems(&misspelt, SHAPES[0]);
    problems.sort();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0], "does not show LinesIndexed of gitlab_ingest");
    assert!(problems[1].contains("LinesIndexd"), "{problems:?}");

    // A Port widget outside the Port condition cannot resolve without the Port flow.
    let mut root = template.root().clone();
    let parts = &mut root["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Join"][1];
    let port_part = parts
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|part| part["Fn::If"][0] == "HasPort")
        .expect("the Port widgets are under HasPort");
    port_part["Fn::If"][0] = "HasAliecs".into();
    let unconditional = Template::from_json(root).unwrap();
    let problems = dashboard_problems(&unconditional, SHAPES[2]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("the body does not resolve"),
        "{problems:?}"
    );
}
