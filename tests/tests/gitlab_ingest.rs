//! gitlab_ingest against moto, the search server (behind the fault proxy) and the sandbox
//! GitLab: a job becomes exactly one document per line and a byte-identical archive,
//! replays add nothing, busy search servers are waited for, refused documents fail the
//! message without losing the rest, unfinished jobs come back later, and bad requests get
//! clear answers.

use http::Method;
use serde_json::{json, Value};
use spigot_local::gitlab::{SandboxJob, Trace, TraceShape};
use spigot_tests::gitlab::{failures, gitlab_request, job_hook, GitlabWorld, HOOK_SECRET, PREFIX};

fn shape(bytes: u64) -> TraceShape {
    TraceShape {
        bytes,
        ..TraceShape::default()
    }
}

/// Queues `job` through a Job Hook and hands the message to the ingest; the batch answer.
async fn hook_and_ingest(world: &GitlabWorld, job: &SandboxJob) -> (Value, Value) {
    let answer = world.invoke(job_hook(&world.gitlab.job_hook(job))).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let batch = world.receive().await;
    assert_eq!(
        batch["Records"].as_array().unwrap().len(),
        1,
        "one message queued"
    );
    let response = world.invoke(batch.clone()).await;
    (batch, response)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_becomes_one_document_per_line_and_a_byte_identical_archive() {
    let world = GitlabWorld::start().await;
    let trace = shape(400_000);
    let job = SandboxJob::finished(5, 101, "build", "success", trace.clone());
    world.gitlab.add_job(job.clone());
    let (_, response) = hook_and_ingest(&world, &job).await;
    assert!(failures(&response).is_empty(), "{response}");

    let lines = trace.count_lines();
    assert!(lines > 4000, "{lines}");
    assert_eq!(
        world.documents(101).await,
        lines,
        "one document per line, none twice"
    );
    world.assert_indexed_as_shown(101, &trace).await;
    assert_eq!(
        world.archived("gitlab/5/101.log").await,
        trace.bytes(),
        "the raw log, byte for byte"
    );

    // Dated by the job, with its fields, sections and the line's own time.
    let hit = world
        .search
        .search(
            &format!("{PREFIX}-2026.11.22"),
            &json!({"query": {"term": {"event.sequence": 5}}, "size": 1}),
        )
        .await
        .unwrap();
    let doc = &hit["hits"]["hits"][0]["_source"];
    assert_eq!(doc["ci"]["project"]["path"], "ci/project-5");
    assert_eq!(doc["ci"]["job"]["name"], "build");
    assert_eq!(doc["ci"]["job"]["status"], "success");
    assert_eq!(doc["cicd"]["pipeline"]["task"]["run"]["id"], "101");
    assert_eq!(
        doc["log"]["file"]["path"],
        format!("s3://{}/gitlab/5/101.log", world.archive_bucket)
    );
    assert!(doc["@timestamp"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-22T"));
    assert!(
        !doc["message"].as_str().unwrap().contains('\x1b'),
        "no escapes: {doc}"
    );
    let in_step_script = world
        .search
        .count(
            &format!("{PREFIX}-*"),
            &json!({"term": {"ci.section.name": "step_script"}}),
        )
        .await
        .unwrap();
    assert!(in_step_script > 0);

    // The token went in a header only, and every request carried it.
    let requests = world.gitlab.requests();
    assert!(
        requests.iter().all(|r| r.authorized && r.query.is_none()),
        "{requests:?}"
    );
    let bulk_sizes = world.proxy.bulk_sizes();
    assert!(bulk_sizes
        .iter()
        .all(|size| *size <= spigot_common::search::MAX_BULK_BYTES));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_twice_gives_the_same_documents() {
    let world = GitlabWorld::start().await;
    let trace = shape(100_000);
    let job = SandboxJob::finished(
        5,
        102,
        "test",
        "failed",
        TraceShape {
            failed: true,
            ..trace.clone()
        },
    );
    world.gitlab.add_job(job.clone());
    let (batch, response) = hook_and_ingest(&world, &job).await;
    assert!(failures(&response).is_empty(), "{response}");
    let first = world.documents(102).await;
    // Lambda hands the same message again (a crash after indexing, say).
    let again = world.invoke(batch).await;
    assert!(failures(&again).is_empty(), "{again}");
    assert_eq!(world.documents(102).await, first);
    assert_eq!(first, job_lines(&job));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_in_the_script_is_found_under_step_script() {
    let world = GitlabWorld::start().await;
    // The script fails inside its user sections and leaves them open, as a real one does.
    let trace = TraceShape {
        failed: true,
        ..shape(80_000)
    };
    let job = SandboxJob::finished(5, 107, "test", "failed", trace.clone());
    world.gitlab.add_job(job.clone());
    let (_, response) = hook_and_ingest(&world, &job).await;
    assert!(failures(&response).is_empty(), "{response}");
    world.assert_indexed_as_shown(107, &trace).await;

    // The failing test's line, read back by its text.
    let expected = trace.expected_lines();
    let failed_at = expected
        .iter()
        .position(|l| l.text == "test tests::case_that_fails ... FAILED")
        .expect("the trace has the failure") as u64
        + 1;
    let doc = world.line(107, failed_at).await;
    assert_eq!(doc["message"], "test tests::case_that_fails ... FAILED");
    let path = doc["ci"]["section"]["path"].as_str().unwrap();
    assert!(
        path.starts_with("step_script/"),
        "under step_script and a user section: {path}"
    );
    assert_eq!(path, expected[failed_at as usize - 1].path);
    // Nothing after the script's start is left in an earlier section.
    let in_earlier_sections = world
        .search
        .count(
            &format!("{PREFIX}-*"),
            &json!({"bool": {"filter": [
                {"term": {"ci.job.id": "107"}},
                {"terms": {"ci.section.name": ["prepare_executor", "prepare_script", "get_sources", "restore_cache"]}},
            ]}}),
        )
        .await
        .unwrap();
    assert_eq!(
        in_earlier_sections, 12,
        "the four stages before step_script: a header, a line and a footer each"
    );
    // The runner's verdict comes last, outside every section.
    let last = expected.last().unwrap();
    assert_eq!(
        (last.text.as_str(), last.path.as_str()),
        ("ERROR: Job failed: exit code 1", "")
    );
}

fn job_lines(job: &SandboxJob) -> u64 {
    match &job.trace {
        Trace::Generated(shape) => shape.count_lines(),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_search_server_is_waited_for() {
    let world = GitlabWorld::start().await;
    let job = SandboxJob::finished(6, 103, "build", "success", shape(150_000));
    world.gitlab.add_job(job.clone());
    // Two whole requests refused, then 40 items answered 429 inside 200 answers.
    world.proxy.reject_bulk_requests(429, 2);
    world
        .proxy
        .fail_bulk_items(429, "es_rejected_execution_exception", 40);
    let (_, response) = hook_and_ingest(&world, &job).await;
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(
        world.documents(103).await,
        job_lines(&job),
        "every line, once"
    );
    world.assert_indexed_as_shown(103, &shape(150_000)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_refused_for_good_fail_the_message_and_lose_nothing_else() {
    let world = GitlabWorld::start().await;
    let job = SandboxJob::finished(6, 104, "build", "success", shape(60_000));
    world.gitlab.add_job(job.clone());
    world
        .proxy
        .fail_bulk_items(400, "mapper_parsing_exception", 3);
    let (batch, response) = hook_and_ingest(&world, &job).await;
    let message_id = batch["Records"][0]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(failures(&response), [message_id], "the message comes back");
    let lines = job_lines(&job);
    assert_eq!(world.documents(104).await, lines - 3, "the rest is indexed");
    // When it comes back, only the missing three are added.
    let again = world.invoke(batch).await;
    assert!(failures(&again).is_empty(), "{again}");
    assert_eq!(world.documents(104).await, lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_still_running_comes_back_later() {
    let world = GitlabWorld::start().await;
    let mut job = SandboxJob::finished(7, 105, "deploy", "success", shape(20_000));
    // after_script calls in while the job runs; it finishes after two more reads.
    job.status = "running".into();
    job.finishes_after_reads = Some(1);
    world.gitlab.add_job(job.clone());
    let answer = world
        .invoke(gitlab_request(
            Method::GET,
            &[("x-gitlab-token", HOOK_SECRET)],
            &[
                ("project_id", "7"),
                ("job_id", "105"),
                ("job_name", "deploy"),
                ("project_name", "ops/deploy"),
                ("runner_id", "3"),
            ],
            None,
        ))
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let batch = world.receive().await;
    let message_id = batch["Records"][0]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = world.invoke(batch.clone()).await;
    assert_eq!(failures(&response), [message_id]);
    assert_eq!(
        world.documents(105).await,
        0,
        "nothing read from a running job"
    );
    // Hidden for 30 s now: a receive finds nothing.
    assert!(
        world.receive().await["Records"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the message is delayed"
    );
    // Delivered again (its receipt still valid): the job has finished by now.
    let response = world.invoke(batch).await;
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(world.documents(105).await, job_lines(&job));
    let doc = world
        .search
        .search(
            &format!("{PREFIX}-*"),
            &json!({"query": {"term": {"ci.job.id": "105"}}, "size": 1}),
        )
        .await
        .unwrap();
    assert_eq!(
        doc["hits"]["hits"][0]["_source"]["ci"]["project"]["path"],
        "ops/deploy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_jobs_fail_and_jobs_without_a_log_are_empty() {
    let world = GitlabWorld::start().await;
    let hook = |job_id: u64| json!({"object_kind": "build", "project_id": 8, "build_id": job_id, "build_status": "success"});
    world.invoke(job_hook(&hook(404))).await;
    let batch = world.receive().await;
    let response = world.invoke(batch).await;
    assert_eq!(
        failures(&response).len(),
        1,
        "a job GitLab does not know fails"
    );

    let mut job = SandboxJob::finished(8, 106, "noop", "success", shape(1));
    job.trace = Trace::Missing;
    world.gitlab.add_job(job.clone());
    let (_, response) = hook_and_ingest(&world, &job).await;
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(world.documents(106).await, 0);
    assert!(world.archived("gitlab/8/106.log").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_4xx_answers_and_ignored_events_2xx() {
    let world = GitlabWorld::start().await;
    let finished =
        json!({"object_kind": "build", "project_id": 1, "build_id": 2, "build_status": "success"});
    let post = |headers: &[(&str, &str)], body: &Value| {
        gitlab_request(Method::POST, headers, &[], Some(body))
    };
    let cases: Vec<(&str, Value, i64, &str)> = vec![
        (
            "no token",
            post(&[("x-gitlab-event", "Job Hook")], &finished),
            401,
            "missing",
        ),
        (
            "wrong token",
            post(
                &[("x-gitlab-event", "Job Hook"), ("x-gitlab-token", "nope")],
                &finished,
            ),
            401,
            "does not match",
        ),
        (
            "push event",
            post(
                &[
                    ("x-gitlab-event", "Push Hook"),
                    ("x-gitlab-token", HOOK_SECRET),
                ],
                &finished,
            ),
            200,
            "ignored",
        ),
        (
            "running job",
            job_hook(
                &json!({"object_kind": "build", "project_id": 1, "build_id": 2, "build_status": "running"}),
            ),
            200,
            "ignored",
        ),
        (
            "no build id",
            job_hook(&json!({"project_id": 1, "build_status": "success"})),
            400,
            "build_id",
        ),
        (
            "not JSON",
            post(
                &[
                    ("x-gitlab-event", "Job Hook"),
                    ("x-gitlab-token", HOOK_SECRET),
                ],
                &json!("x"),
            ),
            400,
            "build_id",
        ),
        (
            "token in the URL",
            gitlab_request(
                Method::GET,
                &[],
                &[
                    ("project_id", "1"),
                    ("job_id", "2"),
                    ("gitlab_token", "glpat-x"),
                ],
                None,
            ),
            400,
            "access logs",
        ),
        (
            "no job id",
            gitlab_request(
                Method::GET,
                &[],
                &[("project_id", "1"), ("token", HOOK_SECRET)],
                None,
            ),
            400,
            "job_id",
        ),
        (
            "PUT",
            gitlab_request(Method::PUT, &[("x-gitlab-token", HOOK_SECRET)], &[], None),
            405,
            "POST",
        ),
    ];
    for (name, request, status, says) in cases {
        let answer = world.invoke(request).await;
        assert_eq!(answer["statusCode"], status, "{name}: {answer}");
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        let text = body.to_string();
        assert!(text.contains(says), "{name}: {text}");
    }
    let queued = world.receive().await;
    assert!(
        queued["Records"].as_array().unwrap().is_empty(),
        "nothing was queued"
    );

    // A request that could not be queued is a 503, never a 2xx.
    let mut broken = GitlabWorld::start().await;
    broken.deps.intake.queue_url = format!("{}/123456789012/no-such-queue", broken.moto.endpoint());
    let answer = broken.invoke(job_hook(&finished)).await;
    assert_eq!(answer["statusCode"], 503, "{answer}");
}
