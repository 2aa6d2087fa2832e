//! The spigot is not a door into Jenkins: an attacker holding one validly signed
//! delivery (GitHub's signature covers the body only) reaches nothing but the configured
//! routes — not by path, method, query or an escape spelling, not while the spigot is
//! OFF, and not through a drain after the route is gone. Each refusal is checked on the
//! sandbox Jenkins' request log: nothing arrived.

use std::time::Duration;

use process_webhooks::Senders;
use spigot_common::drain::{DrainOptions, Drainer};
use spigot_common::github::sign;
use spigot_common::secrets::Secret;
use spigot_common::state::SpigotState;
use spigot_common::target_routes::TargetRoutes;
use spigot_tests::{delivery_id, push_payload, Options, Spigot, Webhook, SECRET};

/// The one signed delivery the attacker holds, sent to `remainder` with `query`.
fn replayed(remainder: &str, query: &[(&str, &str)]) -> Webhook {
    let mut webhook = Webhook::github("push", &delivery_id(1), &push_payload(1, 200));
    webhook.proxy_path(remainder, query);
    webhook
}

#[tokio::test]
async fn a_signed_delivery_replayed_to_the_script_console_reaches_nothing() {
    let spigot = Spigot::start(Options::default()).await;
    for state in [SpigotState::On, SpigotState::Off] {
        spigot.set_state(state).await;
        for (remainder, query) in [
            ("scriptText", vec![("script", "println 'pwned'")]),
            ("script", vec![]),
            ("job/deploy/buildWithParameters", vec![("ENV", "prod")]),
            ("computer/agent-1/doDelete", vec![]),
            ("github-webhook", vec![]),
        ] {
            let response = spigot.send(replayed(remainder, &query).build()).await;
            assert_eq!(
                response.status(),
                404,
                "{state} {remainder}: {}",
                response.json()
            );
            let error = response.json()["error"].as_str().unwrap().to_owned();
            assert!(error.contains("no route takes"), "{error}");
            assert!(!error.contains("pwned"), "the query is not echoed: {error}");
        }
        // A method no route takes, on a route that exists.
        let mut put = Webhook::github("push", &delivery_id(2), &push_payload(2, 200));
        put.request.http_method = http::Method::PUT;
        let response = spigot.send(put.build()).await;
        assert_eq!(response.status(), 405, "{}", response.json());
    }
    assert_eq!(spigot.jenkins.requests(), [], "Jenkins received nothing");
    assert_eq!(spigot.depth().await.total(), 0, "nothing was queued");
    assert!(
        spigot.s3_keys("deliveries/").await.is_empty(),
        "a refused request claims no delivery id (its redelivery must not be a duplicate)"
    );
}

#[tokio::test]
async fn no_escape_spelling_leaves_the_gitlab_route() {
    let spigot = Spigot::start(Options {
        gitlab_tokens: vec!["gl-token".into()],
        ..Options::default()
    })
    .await;
    let escapes = [
        "project/../scriptText",
        "project/x/../../scriptText",
        "project/%2e%2e/scriptText",
        "project/%2E%2e/scriptText",
        "project/.%2e/scriptText",
        "project/x%2f..%2fscriptText",
        "project/x%2F..%2FscriptText",
        "project/x%5c..%5cscriptText",
        "project/x\\..\\scriptText",
        "project//scriptText",
        "project/x@evil.example",
        "project/x%40evil.example",
        "project/x?script=1",
        "project/x%3fscript=1",
        "project/x#y",
        "project/x%23y",
        "project/http://evil.example/scriptText",
        "project/x;..;/scriptText",
        "project/x%252e%252e/scriptText",
    ];
    for state in [SpigotState::On, SpigotState::Off] {
        spigot.set_state(state).await;
        for remainder in escapes {
            let mut hook = replayed(remainder, &[]);
            hook.header("x-gitlab-token", "gl-token");
            let response = spigot.send(hook.build()).await;
            assert_eq!(
                response.status(),
                400,
                "{state} {remainder}: {}",
                response.json()
            );
            assert!(
                response.json()["error"].as_str().unwrap().contains("holds"),
                "{remainder}: {}",
                response.json()
            );
        }
    }
    assert_eq!(spigot.jenkins.requests(), [], "Jenkins received nothing");
    assert_eq!(spigot.depth().await.total(), 0, "nothing was queued");
}

#[tokio::test]
async fn queries_reach_jenkins_only_where_the_route_takes_them() {
    let spigot = Spigot::start(Options::default()).await;
    let generic = spigot
        .send(
            replayed(
                "generic-webhook-trigger/invoke",
                &[("token", "job-token"), ("script", "x")],
            )
            .build(),
        )
        .await;
    assert_eq!(generic.status(), 200, "{}", generic.json());
    let mut root = Webhook::github("push", &delivery_id(3), &push_payload(3, 200));
    root.request.query_string_parameters =
        std::collections::HashMap::from([("script".to_string(), "x".to_string())]).into();
    let github = spigot.send(root.build()).await;
    assert_eq!(github.status(), 200, "{}", github.json());

    let requests = spigot.jenkins.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].path, "/generic-webhook-trigger/invoke");
    assert_eq!(requests[0].query.as_deref(), Some("token=job-token"));
    assert_eq!(requests[1].path, "/github-webhook/");
    assert_eq!(requests[1].query, None);
}

#[tokio::test]
async fn jenkins_credentials_go_only_where_the_route_says() {
    let spigot = Spigot::start(Options {
        gitlab_tokens: vec!["gl-token".into()],
        jenkins_credentials: Some(("spigot".into(), "api-token-123".into())),
        ..Options::default()
    })
    .await;
    let github = spigot
        .send(Webhook::github("push", &delivery_id(1), &push_payload(1, 200)).build())
        .await;
    assert_eq!(github.status(), 200, "{}", github.json());

    let body = br#"{"object_kind":"push","ref":"refs/heads/main"}"#;
    let mut gitlab = Webhook::github("push", &delivery_id(2), body);
    gitlab.proxy_path("project/folder/my%20job", &[]);
    gitlab
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", "gl-token");
    let response = spigot.send(gitlab.build()).await;
    assert_eq!(response.status(), 200, "{}", response.json());

    let mut wrong = gitlab;
    wrong.header("x-gitlab-token", "guess");
    assert_eq!(spigot.send(wrong.build()).await.status(), 401);

    let requests = spigot.jenkins.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].path, "/github-webhook/");
    assert_eq!(
        requests[0].header("authorization"),
        None,
        "no credentials to the GitHub plugin"
    );
    assert_eq!(requests[1].path, "/project/folder/my%20job");
    assert!(requests[1]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));
    assert_eq!(requests[1].header("x-gitlab-event"), Some("Push Hook"));
    assert_eq!(
        requests[1].header("x-gitlab-token"),
        None,
        "GitLab's secret token is checked here, never passed on"
    );
    assert_eq!(requests[1].header("x-hub-signature-256"), None);
}

#[tokio::test]
async fn jenkins_words_never_reach_the_sender() {
    let spigot = Spigot::start(Options::default()).await;
    // The GitHub plugin's 400 for a Content-Type with a charset (its body names the problem).
    let mut webhook = Webhook::github("push", &delivery_id(1), &push_payload(1, 100));
    webhook.header("content-type", "application/json; charset=UTF-8");
    let response = spigot.send(webhook.build()).await;
    assert_eq!(response.status(), 400);
    let answer = response.json();
    assert_eq!(answer["target_status"], 400);
    assert_eq!(
        answer.as_object().unwrap().len(),
        2,
        "status and our reason only: {answer}"
    );
    // The sandbox answers as the plugin does: "Hook should contain payload".
    assert!(!answer.to_string().contains("payload"), "{answer}");
}

#[tokio::test]
async fn an_unsigned_request_is_refused_and_unsigned_needs_the_flag() {
    let spigot = Spigot::start(Options::default()).await;
    let mut unsigned = Webhook::github("push", &delivery_id(1), &push_payload(1, 100));
    unsigned.request.headers.remove("x-hub-signature-256");
    let response = spigot.send(unsigned.build()).await;
    assert_eq!(response.status(), 401, "{}", response.json());
    assert_eq!(spigot.jenkins.requests(), []);

    let routes = TargetRoutes::from_settings(None, None, None).unwrap();
    let none = Senders::default();
    let refused = none.check(&routes).unwrap_err().to_string();
    assert!(refused.contains("ALLOW_UNSIGNED"), "{refused}");
    let allowed = Senders {
        allow_unsigned: true,
        ..Senders::default()
    };
    let warnings = allowed.check(&routes).unwrap();
    assert_eq!(
        warnings.len(),
        4,
        "every public route warned about: {warnings:?}"
    );
    assert!(warnings.iter().all(|w| w.contains("ALLOW_UNSIGNED=true")));
    // GitHub secrets only: the GitLab route refuses everything, and says so at start.
    let github_only = Senders {
        github_secrets: vec![Secret::new(SECRET)],
        ..Senders::default()
    };
    let warnings = github_only.check(&routes).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("gitlab-plugin") && warnings[0].contains("refuses every request"));
}

/// The deployed binary, not the handler: without any secret it does not start, and with
/// `ALLOW_UNSIGNED=true` it starts and warns.
#[tokio::test]
async fn the_binary_refuses_to_start_without_secrets_unless_allowed() {
    // No secrets anywhere: the sandbox Jenkins takes unsigned hooks too.
    let spigot = Spigot::start(Options {
        webhook_secrets: Vec::new(),
        ..Options::default()
    })
    .await;
    let binary = spigot_local::functions::debug_binary("process_webhooks").unwrap();
    let env: Vec<(&str, String)> = spigot
        .function_env("")
        .into_iter()
        .filter(|(name, _)| *name != "GITHUB_WEBHOOK_SECRETS")
        .collect();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(&binary)
            .env_clear()
            .envs(env.clone())
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .output(),
    )
    .await
    .expect("the binary ends")
    .expect("the binary runs");
    assert!(!output.status.success(), "started without secrets");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("ALLOW_UNSIGNED"), "{said}");

    let api = spigot_local::runtime_api::RuntimeApi::start("process_webhooks")
        .await
        .unwrap();
    let mut command = tokio::process::Command::new(&binary);
    command
        .env_clear()
        .envs(env)
        .env("ALLOW_UNSIGNED", "true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    let mut process = api.spawn(command).unwrap();
    let mut unsigned = Webhook::github("push", &delivery_id(5), &push_payload(5, 100));
    unsigned.request.headers.remove("x-hub-signature-256");
    let mut event = serde_json::to_value(unsigned.build()).unwrap();
    event["stageVariables"] = serde_json::json!({"spigot_state": "ON"});
    let answer = process
        .invoke(&event, Duration::from_secs(30))
        .await
        .unwrap();
    let spigot_local::runtime_api::Outcome::Response(body) = answer.outcome else {
        panic!("the invocation failed");
    };
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(spigot.jenkins.deliveries().len(), 1);
    process.kill().await.unwrap();
}

#[tokio::test]
async fn a_drain_replays_only_what_a_route_still_takes() {
    let spigot = Spigot::start(Options::default()).await;
    spigot.set_state(SpigotState::Off).await;
    let github = spigot
        .send(Webhook::github("push", &delivery_id(1), &push_payload(1, 200)).build())
        .await;
    let generic = spigot
        .send({
            let mut hook = Webhook::github("push", &delivery_id(2), &push_payload(2, 200));
            hook.proxy_path("generic-webhook-trigger/invoke", &[("token", "t")]);
            hook.build()
        })
        .await;
    assert_eq!((github.status(), generic.status()), (202, 202));
    spigot.set_state(SpigotState::On).await;

    // Since then the operator removed the Generic Webhook Trigger route.
    let fewer =
        TargetRoutes::parse(r#"{"github": {"path": "/webhook", "target": "/github-webhook/"}}"#)
            .unwrap();
    let drainer = Drainer {
        stage: &spigot.sender.stage,
        buffer: &spigot.sender.buffer,
        target: &spigot.sender.target,
        routes: &fewer,
    };
    let summary = drainer.drain(&DrainOptions::default(), &|_| {}).await;
    assert_eq!((summary.delivered, summary.poisoned), (1, 1), "{summary:?}");
    let requests = spigot.jenkins.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.path != "/generic-webhook-trigger/invoke"),
        "{requests:?}"
    );
    assert_eq!(spigot.jenkins.deliveries().len(), 1);
    let letters = spigot.buffer().receive_dead_letters(10, 5).await.unwrap();
    assert_eq!(letters.len(), 1);
    let reason = &letters[0].attributes[spigot_common::buffer::REASON_ATTRIBUTE];
    assert!(
        reason.contains("no configured route takes it now"),
        "{reason}"
    );
    assert_eq!(
        letters[0].envelope.as_ref().unwrap().route.as_deref(),
        Some("generic-webhook-trigger")
    );
}

#[tokio::test]
async fn a_queued_request_on_no_route_never_reaches_jenkins() {
    // What a queue message could ask for if it was written by something else than our
    // functions (or before routes existed): the drain checks, not the writer.
    let spigot = Spigot::start(Options::default()).await;
    let body = push_payload(9, 100);
    let forged = spigot_common::envelope::Envelope::new(
        "POST",
        "/scriptText",
        vec![("script".into(), "println 1".into())],
        vec![(
            "x-hub-signature-256".into(),
            sign(&body, &Secret::new(SECRET)),
        )],
        &body,
    );
    spigot.buffer().enqueue(forged).await.unwrap();
    let summary = spigot.drain().await;
    assert_eq!((summary.delivered, summary.poisoned), (0, 1), "{summary:?}");
    assert_eq!(
        spigot
            .jenkins
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        0
    );
}
