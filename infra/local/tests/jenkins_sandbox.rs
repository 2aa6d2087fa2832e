//! The sandbox Jenkins answers like the GitHub plugin endpoint, records what it got, and
//! goes through its outage modes on demand.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use spigot_local::jenkins::{JenkinsMode, SandboxJenkins, SandboxJenkinsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn sha256_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn sha1_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn start(config: SandboxJenkinsConfig) -> SandboxJenkins {
    SandboxJenkins::start(config).await.unwrap()
}

/// POSTs `body` to `/github-webhook/` as a `push` with the given Content-Type.
async fn post_push(
    jenkins: &SandboxJenkins,
    content_type: Option<&str>,
    body: &'static [u8],
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}/github-webhook/", jenkins.url()))
        .header("X-GitHub-Event", "push")
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn exact_json_content_type_is_delivered_byte_for_byte() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    // Not valid UTF-8 at the end: the record must still hold the exact bytes.
    let body: &[u8] = b"{\"ref\":\"refs/heads/main\",\"msg\":\"caf\xc3\xa9 \xff\"}";
    let response = client()
        .post(format!("{}/github-webhook/?x=1", jenkins.url()))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "d-1")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-jenkins"));
    assert_eq!(response.bytes().await.unwrap(), "");
    let deliveries = jenkins.deliveries();
    assert_eq!(deliveries.len(), 1);
    let delivery = &deliveries[0];
    assert_eq!(delivery.method, "POST");
    assert_eq!(delivery.path, "/github-webhook/");
    assert_eq!(delivery.query.as_deref(), Some("x=1"));
    assert_eq!(delivery.body, body);
    assert_eq!(delivery.header("x-github-delivery"), Some("d-1"));
    assert_eq!(delivery.header("CONTENT-TYPE"), Some("application/json"));
    assert_eq!(delivery.status, 200);
    assert_eq!(delivery.signature_valid, None);
}

#[tokio::test]
async fn any_other_content_type_reads_as_no_payload() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    for content_type in [
        Some("application/json; charset=UTF-8"),
        Some("application/json;charset=utf-8"),
        Some("Application/JSON"),
        Some("text/plain"),
        None,
    ] {
        let response = post_push(&jenkins, content_type, b"{}").await;
        assert_eq!(response.status(), 400, "{content_type:?}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("Hook should contain payload"));
    }
    // A blank body is no payload either.
    assert_eq!(
        post_push(&jenkins, Some("application/json"), b" \n")
            .await
            .status(),
        400
    );

    assert!(jenkins.deliveries().is_empty());
    let requests = jenkins.requests();
    assert_eq!(requests.len(), 6);
    assert!(requests.iter().all(|request| request.status == 400));
}

#[tokio::test]
async fn form_encoded_hook_carries_its_json_in_the_payload_field() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        post_push(&jenkins, Some(form), b"payload=%7B%22zen%22%3A%22x%22%7D")
            .await
            .status(),
        200
    );
    assert_eq!(
        post_push(&jenkins, Some(form), b"other=%7B%7D")
            .await
            .status(),
        400
    );
    assert_eq!(
        post_push(&jenkins, Some(form), b"payload=+&payload=%7B%7D")
            .await
            .status(),
        400,
        "only the first payload field counts"
    );
}

#[tokio::test]
async fn event_header_must_name_an_event_the_plugin_knows() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    let post = |event: Option<&'static str>| {
        let mut request = client()
            .post(format!("{}/github-webhook/", jenkins.url()))
            .header("Content-Type", "application/json")
            .body("{}");
        if let Some(event) = event {
            request = request.header("X-GitHub-Event", event);
        }
        request.send()
    };

    for event in [
        "push",
        "pull_request",
        "Ping",
        "check_suite",
        "workflow_run",
    ] {
        assert_eq!(post(Some(event)).await.unwrap().status(), 200, "{event}");
    }
    for event in [None, Some("merge_group"), Some("pushed"), Some("")] {
        let response = post(event).await.unwrap();
        assert_eq!(response.status(), 400, "{event:?}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("Hook should contain event type"));
    }
}

#[tokio::test]
async fn webhook_endpoint_requires_post() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    let response = client()
        .get(format!("{}/github-webhook/", jenkins.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Method POST required"));
    assert_eq!(jenkins.requests()[0].status, 405);
    assert!(jenkins.deliveries().is_empty());
}

#[tokio::test]
async fn signature_must_match_one_of_the_secrets() {
    let jenkins = start(SandboxJenkinsConfig {
        webhook_secrets: vec!["old-secret".into(), "new-secret".into()],
        ..Default::default()
    })
    .await;
    let body: &[u8] = br#"{"zen":"Keep it logically awesome."}"#;
    let post = |header: &'static str, signature: String| {
        client()
            .post(format!("{}/github-webhook/", jenkins.url()))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "ping")
            .header(header, signature)
            .body(body)
            .send()
    };

    let sha256 = "X-Hub-Signature-256";
    let sha1 = "X-Hub-Signature";
    let accepted = [
        (sha256, sha256_signature("new-secret", body)),
        (sha256, sha256_signature("old-secret", body)),
        (sha1, sha1_signature("old-secret", body)),
    ];
    for (header, signature) in accepted {
        assert_eq!(post(header, signature).await.unwrap().status(), 200);
    }
    let refused = [
        (sha256, sha256_signature("wrong-secret", body)),
        (sha256, sha256_signature("new-secret", b"{}")),
        (sha256, sha256_signature("new-secret", body).to_uppercase()),
        (sha256, "sha256=".into()),
        (sha1, sha256_signature("new-secret", body)),
        ("X-Unrelated", sha256_signature("new-secret", body)),
    ];
    for (header, signature) in refused {
        let response = post(header, signature.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{header}: {signature}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("No valid signature found"));
    }

    let validity: Vec<_> = jenkins
        .requests()
        .iter()
        .map(|request| request.signature_valid)
        .collect();
    assert_eq!(validity[..3], [Some(true); 3]);
    assert_eq!(validity[3..], [Some(false); 6]);
    assert_eq!(jenkins.deliveries().len(), 3);
}

#[tokio::test]
async fn generic_endpoints_accept_any_post_but_report_the_signature() {
    let jenkins = start(SandboxJenkinsConfig {
        webhook_secrets: vec!["s".into()],
        ..Default::default()
    })
    .await;
    let body: &[u8] = b"\x00\x01 any bytes \xfe";
    let response = client()
        .post(format!(
            "{}/generic-webhook-trigger/invoke?token=abc",
            jenkins.url()
        ))
        .header("Content-Type", "application/json; charset=UTF-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"ok"}"#);
    let response = client()
        .post(format!("{}/project/foo", jenkins.url()))
        .header("X-Hub-Signature-256", sha256_signature("s", b"x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let deliveries = jenkins.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].path, "/generic-webhook-trigger/invoke");
    assert_eq!(deliveries[0].query.as_deref(), Some("token=abc"));
    assert_eq!(deliveries[0].body, body);
    assert_eq!(deliveries[0].signature_valid, Some(false));
    assert_eq!(deliveries[1].signature_valid, Some(true));
}

#[tokio::test]
async fn login_answers_and_unknown_pages_do_not() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    let get = |path: &str| client().get(format!("{}{path}", jenkins.url())).send();
    assert_eq!(get("/login").await.unwrap().status(), 200);
    assert_eq!(get("/project/foo").await.unwrap().status(), 404);
    assert_eq!(get("/").await.unwrap().status(), 404);
    assert_eq!(jenkins.requests().len(), 3);
    assert!(jenkins.deliveries().is_empty());

    jenkins.clear();
    assert!(jenkins.requests().is_empty());
}

#[tokio::test]
async fn configured_credentials_are_required_as_basic_auth() {
    let jenkins = start(SandboxJenkinsConfig {
        credentials: Some(("spigot".into(), "api-token".into())),
        ..Default::default()
    })
    .await;
    let login = format!("{}/login", jenkins.url());

    let anonymous = client().get(&login).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = client()
        .get(&login)
        .basic_auth("spigot", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client()
        .post(format!("{}/github-webhook/", jenkins.url()))
        .basic_auth("spigot", Some("api-token"))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "push")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(jenkins.deliveries().len(), 1);
}

#[tokio::test]
async fn status_mode_answers_every_request_with_that_status() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    jenkins.set_mode(JenkinsMode::Status(503)).await.unwrap();

    let login = client()
        .get(format!("{}/login", jenkins.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 503);
    assert_eq!(
        post_push(&jenkins, Some("application/json"), b"{}")
            .await
            .status(),
        503
    );
    assert_eq!(
        jenkins
            .requests()
            .iter()
            .map(|request| request.status)
            .collect::<Vec<_>>(),
        [503, 503]
    );
    assert!(jenkins.deliveries().is_empty());

    jenkins.set_mode(JenkinsMode::Up).await.unwrap();
    assert_eq!(
        post_push(&jenkins, Some("application/json"), b"{}")
            .await
            .status(),
        200
    );
    assert!(jenkins.set_mode(JenkinsMode::Status(42)).await.is_err());
}

/// Sends one keep-alive request on `stream` and reads the status line of the answer.
async fn keep_alive_request(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /login HTTP/1.1\r\nHost: jenkins\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0; 1024];
    let read = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn unreachable_closes_the_port_and_up_reopens_the_same_one() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    let url = jenkins.url();
    let addr = url.trim_start_matches("http://").to_owned();
    let mut kept_alive = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(keep_alive_request(&mut kept_alive).await, "HTTP/1.1 200 OK");

    for _ in 0..3 {
        jenkins.set_mode(JenkinsMode::Unreachable).await.unwrap();
        let refused = TcpStream::connect(&addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let error = client()
            .get(format!("{url}/login"))
            .send()
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error:?}");

        jenkins.set_mode(JenkinsMode::Up).await.unwrap();
        let login = client().get(format!("{url}/login")).send().await.unwrap();
        assert_eq!(login.status(), 200);
    }

    // The connection opened before the outage was closed by it.
    let mut rest = Vec::new();
    let closed = kept_alive.read_to_end(&mut rest).await;
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "{closed:?} {rest:?}"
    );
    assert_eq!(jenkins.url(), url);
    assert_eq!(jenkins.requests().len(), 4);
}

#[tokio::test]
async fn slow_mode_answers_late_and_still_takes_what_the_caller_gave_up_on() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    let delay = Duration::from_millis(400);
    jenkins.set_mode(JenkinsMode::Slow(delay)).await.unwrap();

    let started = Instant::now();
    let login = client()
        .get(format!("{}/login", jenkins.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(started.elapsed() >= delay);

    // A caller with a shorter timeout gives up, but Jenkins has the hook.
    let impatient = client()
        .post(format!("{}/github-webhook/", jenkins.url()))
        .timeout(Duration::from_millis(100))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "push")
        .body("{\"n\":1}")
        .send()
        .await
        .unwrap_err();
    assert!(impatient.is_timeout(), "{impatient:?}");
    // A request that arrives later but is answered first is still listed after it.
    jenkins.set_mode(JenkinsMode::Up).await.unwrap();
    assert_eq!(
        post_push(&jenkins, Some("application/json"), b"{\"n\":2}")
            .await
            .status(),
        200
    );
    tokio::time::sleep(delay).await;

    let bodies: Vec<_> = jenkins
        .deliveries()
        .into_iter()
        .map(|delivery| delivery.body)
        .collect();
    assert_eq!(bodies, ["{\"n\":1}", "{\"n\":2}"]);
}

#[tokio::test]
async fn fail_next_fails_that_many_posts_then_recovers() {
    let jenkins = start(SandboxJenkinsConfig::default()).await;
    jenkins.fail_next(500, 2).unwrap();

    let statuses = async || {
        post_push(&jenkins, Some("application/json"), b"{}")
            .await
            .status()
    };
    assert_eq!(statuses().await, 500);
    let login = client()
        .get(format!("{}/login", jenkins.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "only POSTs are failed");
    assert_eq!(statuses().await, 500);
    assert_eq!(statuses().await, 200);
    assert_eq!(jenkins.deliveries().len(), 1);

    jenkins.fail_next(429, 5).unwrap();
    jenkins.fail_next(429, 0).unwrap();
    assert_eq!(statuses().await, 200);
    assert!(jenkins.fail_next(1000, 1).is_err());
}
