//! Credentials files of the wrong shape, read through S3 on moto: the error names the
//! file, the field and what was expected, and no secret of the file reaches an error, a
//! log line, or what a function's binary prints when its cold start fails.
//!
//! The binaries come from `cargo build --workspace --bins` (`make test` runs it first).

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use spigot_common::gitlab::GitlabSecrets;
use spigot_common::port::PortCredentials;
use spigot_common::search::SearchCredentials;
use spigot_common::secrets::{
    read_json, JenkinsCredentials, JenkinsSecrets, SecretsError, SpigotSecrets,
};
use spigot_local::aws_emulator::{MotoServer, REGION};
use spigot_tests::logs::CapturedLogs;

/// A wrong-shaped document, the secrets it holds and the start of the error it gives.
struct Case {
    key: &'static str,
    document: &'static str,
    secrets: &'static [&'static str],
    error: &'static str,
}

const BUCKET: &str = "credentials";

fn cases() -> Vec<Case> {
    vec![
        Case {
            key: "github.json",
            document: r#"{"webhook_secrets": "gh-whsec-1a2b3c"}"#,
            secrets: &["gh-whsec-1a2b3c"],
            error: "s3://credentials/github.json: webhook_secrets: expected a sequence, found a string",
        },
        Case {
            key: "github.json",
            document: r#"{"webhook_secrets": ["gh-whsec-current", 4242424242, "gh-whsec-next"]}"#,
            secrets: &["gh-whsec-current", "4242424242", "gh-whsec-next"],
            error: "s3://credentials/github.json: webhook_secrets[1]: expected a string, found a number",
        },
        Case {
            key: "github.json",
            document: r#"{"webhook_secrets": [{"value": "gh-whsec-in-object"}]}"#,
            secrets: &["gh-whsec-in-object"],
            error: "s3://credentials/github.json: webhook_secrets[0]: expected a string, found an object",
        },
        Case {
            key: "github.json",
            document: r#"{"webhook_secrets": ["gh-whsec-trailing",]}"#,
            secrets: &["gh-whsec-trailing"],
            error: "s3://credentials/github.json: not JSON: trailing comma at line 1 column 42",
        },
        Case {
            key: "github.json",
            document: r#"{"webhook_secrets": ["ok"], "gitlab_tokens": "gl-token-as-string"}"#,
            secrets: &["gl-token-as-string"],
            error: "s3://credentials/github.json: gitlab_tokens: expected a sequence, found a string",
        },
        Case {
            key: "github.json",
            document: "\"gh-whsec-top-level\"",
            secrets: &["gh-whsec-top-level"],
            error: "s3://credentials/github.json: the top level: expected struct GithubSecrets, found a string",
        },
        Case {
            key: "jenkins.json",
            document: r#"{"username": "ci", "api_token": 11f2d3e4a5b6c7d8}"#,
            secrets: &["11f2d3e4a5b6c7d8"],
            error: "s3://credentials/jenkins.json: not JSON: expected `,` or `}` at line 1 column 35",
        },
        Case {
            key: "jenkins.json",
            document: r#"{"username": "ci", "api_token": 1123581321345589}"#,
            secrets: &["1123581321345589"],
            error: "s3://credentials/jenkins.json: api_token: expected a string, found a number",
        },
        Case {
            key: "jenkins.json",
            document: r#"{"username": "ci", "api_token": {"token": "jk-obj-token"}}"#,
            secrets: &["jk-obj-token"],
            error: "s3://credentials/jenkins.json: api_token: expected a string, found an object",
        },
        Case {
            key: "jenkins.json",
            document: r#"{"servers": {"main": {"username": "ci", "api_token": ["jk-list-token"]}}}"#,
            secrets: &["jk-list-token"],
            error: "s3://credentials/jenkins.json: servers.main.api_token: expected a string, found an array",
        },
        Case {
            key: "jenkins.json",
            document: r#"{"servers": {"main": {"user": "ci", "api_token": "jk-typo-token"}}}"#,
            secrets: &["jk-typo-token"],
            error: "s3://credentials/jenkins.json: servers.main: missing field `username`",
        },
        Case {
            key: "gitlab.json",
            document: r#"{"token": 987654321987, "webhook_secret": "gl-hook-secret"}"#,
            secrets: &["987654321987", "gl-hook-secret"],
            error: "s3://credentials/gitlab.json: token: expected a string, found a number",
        },
        Case {
            key: "gitlab.json",
            document: r#"{"token": "glpat-abcdefghij", "webhook_secret": ["gl-hook-in-list"]}"#,
            secrets: &["glpat-abcdefghij", "gl-hook-in-list"],
            error: "s3://credentials/gitlab.json: webhook_secret: expected a string, found an array",
        },
        Case {
            key: "search.json",
            document: r#"{"username": "ingest", "password": {"plain": "search-pw-obj"}}"#,
            secrets: &["search-pw-obj"],
            error: "s3://credentials/search.json: password: expected a string, found an object",
        },
        Case {
            key: "search.json",
            document: r#"{"password": "search-pw-alone"}"#,
            secrets: &["search-pw-alone"],
            error: "s3://credentials/search.json: the top level: missing field `username`",
        },
        Case {
            key: "port.json",
            document: r#"{"client_id": "port-id", "client_secret": 31337313373133}"#,
            secrets: &["31337313373133"],
            error: "s3://credentials/port.json: client_secret: expected a string, found a number",
        },
        Case {
            key: "port.json",
            document: r#"{"client_id": "port-id", "client_secret": "port-secret-unterminated}"#,
            secrets: &["port-secret-unterminated"],
            error: "s3://credentials/port.json: not JSON: EOF while parsing a string",
        },
    ]
}

/// Every error a caller can print of `error`: its text, its Debug, and the
/// configuration error it becomes in a cold start.
fn printed(error: SecretsError) -> Vec<String> {
    let text = error.to_string();
    let debug = format!("{error:?}");
    let config = spigot_common::config::ConfigError::from(error);
    vec![text, debug, config.to_string(), format!("{config:?}")]
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .expect("put the document");
}

/// Reads `key` as the types its readers read it as; the errors, the first one the
/// reader that the case is about.
async fn read_as_its_types(s3: &aws_sdk_s3::Client, key: &str) -> Vec<SecretsError> {
    match key {
        "github.json" => SpigotSecrets::from_bucket(s3, BUCKET)
            .await
            .err()
            .into_iter()
            .collect(),
        // port_runner's and log_tailer's named servers, and process_webhooks' single user.
        "jenkins.json" => [
            read_json::<JenkinsSecrets>(s3, BUCKET, key).await.err(),
            read_json::<JenkinsCredentials>(s3, BUCKET, key).await.err(),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "gitlab.json" => read_json::<GitlabSecrets>(s3, BUCKET, key)
            .await
            .err()
            .into_iter()
            .collect(),
        "search.json" => read_json::<SearchCredentials>(s3, BUCKET, key)
            .await
            .err()
            .into_iter()
            .collect(),
        "port.json" => read_json::<PortCredentials>(s3, BUCKET, key)
            .await
            .err()
            .into_iter()
            .collect(),
        other => panic!("no reader for {other}"),
    }
}

#[tokio::test]
async fn wrong_shapes_are_named_without_their_secrets_in_errors_or_logs() {
    let moto = MotoServer::start().await.expect("moto starts");
    let sdk = moto.sdk_config().await;
    let s3 = spigot_common::aws::s3_client(&sdk);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    put(&s3, BUCKET, "github.json", r#"{"webhook_secrets": ["ok"]}"#).await;

    let (logs, _logging) = CapturedLogs::start_at(tracing::Level::TRACE);

    let cases = cases();
    for case in &cases {
        put(&s3, BUCKET, case.key, case.document).await;
        let errors = read_as_its_types(&s3, case.key).await;
        assert!(!errors.is_empty(), "{} reads: {}", case.key, case.document);
        let printed: Vec<String> = errors.into_iter().flat_map(printed).collect();
        assert!(
            printed[0].starts_with(case.error),
            "{}\n  got: {}\n want: {}",
            case.document,
            printed[0],
            case.error
        );
        for text in &printed {
            for secret in case.secrets {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        if case.key == "github.json" {
            put(&s3, BUCKET, "github.json", r#"{"webhook_secrets": ["ok"]}"#).await;
        } else {
            s3.delete_object()
                .bucket(BUCKET)
                .key(case.key)
                .send()
                .await
                .unwrap();
        }
    }

    // The routes (routes.json, or ROUTES inline) go through the same reader: a server
    // URL may carry credentials.
    for (routes, secret, expected) in [
        (
            r#"{"servers": {"main": ["https://ci:jk-url-token@jenkins"]}, "routes": {}}"#,
            "jk-url-token",
            "servers.main: expected a string, found an array",
        ),
        (
            r#"{"servers": {}, "unrouted": "route-secret-word", "routes": {}}"#,
            "route-secret-word",
            "unrouted: expected one of `skip`, `fail`, found another string",
        ),
    ] {
        let error = port_runner::routes::Routes::parse(routes).unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains(secret), "{text}");
    }

    // The logs of every read above (the SDK's own lines, down to TRACE) hold no secret.
    let logged = logs.text();
    assert!(
        logged.contains("GetObject"),
        "the reads were logged: {logged}"
    );
    for case in &cases {
        for secret in case.secrets {
            assert!(!logged.contains(secret), "{secret} logged: {logged}");
        }
    }
}

/// What a function binary printed before it stopped, and whether it failed.
async fn cold_start(function: &str, env: &[(&str, String)]) -> (bool, String) {
    let binary = spigot_local::functions::debug_binary(function).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "trace")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("the cold start ends")
    .expect("the function runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (!output.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_start_that_fails_on_a_credentials_file_prints_no_secret() {
    let moto = MotoServer::start().await.expect("moto starts");
    let sdk = moto.sdk_config().await;
    let s3 = spigot_common::aws::s3_client(&sdk);
    let aws = |bucket: &str| {
        vec![
            ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("CREDENTIALS_BUCKET", bucket.to_owned()),
            ("TARGET_URL", "http://127.0.0.1:9".to_owned()),
            ("SEARCH_URL", "http://127.0.0.1:9".to_owned()),
            ("SEARCH_AUTH", "basic".to_owned()),
            ("GITLAB_URL", "http://127.0.0.1:9".to_owned()),
        ]
    };
    // (function, the file its cold start reads first, broken, its secret, the error)
    let runs = [
        (
            "process_webhooks",
            "github.json",
            r#"{"webhook_secrets": "pw-gh-secret"}"#,
            "pw-gh-secret",
            "s3://cold-process-webhooks/github.json: webhook_secrets: expected a sequence, found a string",
        ),
        (
            "send_from_queue",
            "jenkins.json",
            r#"{"username": "ci", "api_token": 777000777000777}"#,
            "777000777000777",
            "s3://cold-send-from-queue/jenkins.json: api_token: expected a string, found a number",
        ),
        (
            "gitlab_ingest",
            "gitlab.json",
            r#"{"token": {"glpat": "gl-cold-token"}}"#,
            "gl-cold-token",
            "s3://cold-gitlab-ingest/gitlab.json: token: expected a string, found an object",
        ),
        (
            "port_runner",
            "routes.json",
            r#"{"servers": {"main": "https://ci:pr-cold-token@jenkins"}, "routes": [1]}"#,
            "pr-cold-token",
            "routes: expected a map, found an array",
        ),
        (
            "log_tailer",
            "jenkins.json",
            r#"{"servers": {"main": {"username": "ci", "api_token": 5550001112223}}}"#,
            "5550001112223",
            "s3://cold-log-tailer/jenkins.json: servers.main.api_token: expected a string, found a number",
        ),
        (
            "aliecs_ingest",
            "search.json",
            r#"{"username": "ingest", "password": ["al-cold-password"]}"#,
            "al-cold-password",
            "s3://cold-aliecs-ingest/search.json: password: expected a string, found an array",
        ),
    ];
    for (function, key, document, secret, expected) in runs {
        let bucket = format!("cold-{}", function.replace('_', "-"));
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        if key != "github.json" {
            put(
                &s3,
                &bucket,
                "github.json",
                r#"{"webhook_secrets": ["ok"]}"#,
            )
            .await;
        }
        put(&s3, &bucket, key, document).await;
        let (failed, printed) = cold_start(function, &aws(&bucket)).await;
        assert!(failed, "{function} started with a broken {key}: {printed}");
        assert!(printed.contains(expected), "{function}: {printed}");
        assert!(
            !printed.contains(secret),
            "{function} printed {secret}: {printed}"
        );
    }

    // Secrets from the environment (no credentials bucket) are not printed either when
    // the cold start fails for another reason.
    let mut env = aws("unused");
    env.retain(|(name, _)| *name != "CREDENTIALS_BUCKET" && *name != "TARGET_URL");
    env.extend([
        (
            "GITHUB_WEBHOOK_SECRETS",
            "env-gh-secret-1,env-gh-secret-2".to_owned(),
        ),
        ("JENKINS_USERNAME", "ci".to_owned()),
        ("JENKINS_API_TOKEN", "env-jenkins-token".to_owned()),
    ]);
    let (failed, printed) = cold_start("process_webhooks", &env).await;
    assert!(
        failed && printed.contains("Error: missing required setting"),
        "{printed}"
    );
    for secret in ["env-gh-secret-1", "env-gh-secret-2", "env-jenkins-token"] {
        assert!(!printed.contains(secret), "{printed}");
    }
}
