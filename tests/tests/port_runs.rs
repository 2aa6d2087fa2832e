//! port_runner and log_tailer against moto, the sandbox Jenkins and the sandbox Port: a
//! click becomes one Jenkins build whose console log reaches the Port run line for line
//! while it is written, across handoffs and a crash, and every way a run can go wrong
//! ends it with a status and a message that says why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use log_tailer::answer::CUT_MARK;
use log_tailer::tail::Tailed;
use port_runner::routes::Unrouted;
use serde_json::{json, Value};
use spigot_common::search::{SearchAuth, SearchClient};
use spigot_local::jenkins::{BuildScript, SandboxJob};
use spigot_local::port::{RateLimitReset, SandboxRun};
use spigot_local::stack::{EXAMPLE_ACTION, EXAMPLE_JOB};
use spigot_tests::port::{
    big_log_lines, checkpoint, cleaned_lines, envelope, example_inputs, numbered_lines,
    tailed_messages, PortWorld, FLAKY_ACTION, FLAKY_JOB, LONG_ACTION, LONG_JOB, LONG_LINES,
    MISSING_ACTION, QUEUED_ACTION, QUEUED_JOB, STUCK_ACTION, STUCK_JOB,
};

/// The lines log_tailer posted, in order, one entry per line.
fn posted_lines(run: &SandboxRun) -> Vec<String> {
    split_lines(&tailed_messages(run))
}

fn split_lines(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.split('\n').map(str::to_owned))
        .collect()
}

/// The build's console log as Port should show it, line by line.
async fn jenkins_lines(world: &PortWorld, job: &str, number: u64) -> Vec<String> {
    cleaned_lines(&world.console_text(job, number).await)
}

/// Waits for a checkpoint to become visible on the tail queue again.
async fn redelivered(world: &PortWorld, within: Duration) -> SqsEvent {
    let give_up = Instant::now() + within;
    loop {
        let event = world.receive_checkpoints(Some(30)).await;
        if !event.records.is_empty() {
            return event;
        }
        assert!(Instant::now() < give_up, "the checkpoint never came back");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_action_runs_a_build_whose_log_reaches_the_port_run_live() {
    let world = PortWorld::start().await;
    let run_id = "r_example1";
    let summary = world
        .run_port_runner(&world.click(run_id, EXAMPLE_ACTION, example_inputs("my-service")))
        .await;
    assert_eq!((summary.records, summary.started), (1, 1), "{summary:?}");

    // One build, with the action's inputs as its parameters.
    let builds = world.jenkins.builds_of(EXAMPLE_JOB);
    assert_eq!(builds.len(), 1, "one build");
    let parameters: Vec<(&str, &str)> = builds[0]
        .parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for expected in [
        ("SERVICE_NAME", "my-service"),
        ("VERSION", "1.2.3"),
        ("ENVIRONMENT", "dev"),
        ("CHANGE_REASON", "JIRA-42 hotfix"),
        ("PORT_RUN_ID", run_id),
    ] {
        assert!(
            parameters.contains(&expected),
            "{expected:?} in {parameters:?}"
        );
    }

    // The run is linked to the build and opens with the route's intro.
    let run = world.run(run_id);
    assert_eq!(run.status, "IN_PROGRESS");
    assert_eq!(run.status_label.as_deref(), Some("Running #1"), "{run:?}");
    assert_eq!(run.external_run_id.as_deref(), Some("1"));
    let build_url = format!("{}/job/deploy/job/microservice/1/", world.jenkins.url());
    assert_eq!(run.link, std::slice::from_ref(&build_url));
    assert_eq!(run.logs.len(), 1, "port_runner's opening message only");
    let opening = &run.logs[0].0;
    assert!(
        opening.starts_with("Deploying my-service v1.2.3 to dev…\n"),
        "{opening}"
    );
    assert!(
        opening.ends_with(&format!(
            "Jenkins build #1 of deploy » microservice started: {build_url}"
        )),
        "{opening}"
    );
    let handed = world.receive_checkpoints(Some(0)).await;
    assert_eq!(handed.records.len(), 1, "one checkpoint on the tail queue");
    let handed = checkpoint(&handed);
    assert_eq!(
        (handed.run_id.as_str(), handed.offset, handed.handoffs),
        (run_id, 0, 0)
    );

    // Tailing while the build writes: Port shows lines before the build is over.
    let done = AtomicBool::new(false);
    let tail = async {
        let invocations = world.tail_until_idle(Duration::from_secs(60)).await;
        done.store(true, Ordering::SeqCst);
        invocations
    };
    let watch = async {
        let mut seen_live = false;
        while !done.load(Ordering::SeqCst) {
            let building = world.jenkins.builds_of(EXAMPLE_JOB)[0].building;
            if building && world.run(run_id).logs.len() > 1 {
                seen_live = true;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        seen_live
    };
    let (invocations, seen_live) = tokio::join!(tail, watch);
    assert_eq!(invocations, 1, "one invocation follows a short build");
    assert!(
        seen_live,
        "log lines reached Port while the build was running"
    );

    let run = world.run(run_id);
    assert_eq!(run.status, "SUCCESS", "{run:?}");
    let label = run.status_label.clone().unwrap_or_default();
    assert!(label.starts_with("Build SUCCESS ("), "{label}");
    let expected = jenkins_lines(&world, EXAMPLE_JOB, 1).await;
    assert_eq!(expected.len(), 14, "the start line, the job's 12, Finished");
    assert_eq!(
        expected[1],
        format!("Deploying my-service 1.2.3 to dev (Port run {run_id})")
    );
    assert_eq!(
        posted_lines(&run),
        expected,
        "every line once, in order, cleaned"
    );
    assert!(
        run.logs.len() > 3,
        "posted as it came, not in one piece: {} messages",
        run.logs.len()
    );
    let closing = &run.logs.last().unwrap().0;
    assert!(
        closing.contains("Finished: SUCCESS (build #1 took"),
        "{closing}"
    );

    // The entity, tied to the run; the archive, byte for byte, and linked.
    assert_eq!(run.entities.len(), 1, "{:?}", run.entities);
    let (blueprint, entity) = &run.entities[0];
    assert_eq!(blueprint, "deployment");
    assert_eq!(entity["identifier"], "my-service-dev");
    assert_eq!(entity["properties"]["version"], "1.2.3");
    assert_eq!(entity["properties"]["changeReason"], "JIRA-42 hotfix");
    let key = "jenkins/sandbox/deploy/microservice/1.log";
    assert_eq!(
        world.archived(key).await,
        world.console_text(EXAMPLE_JOB, 1).await,
        "the archive is the console log, byte for byte"
    );
    assert_eq!(run.link.len(), 2, "{:?}", run.link);
    assert_eq!(run.link[0], build_url);
    assert!(run.link[1].contains(key), "{:?}", run.link);
    assert!(run
        .summary
        .as_deref()
        .is_some_and(|s| s.starts_with("Jenkins build #1 of deploy » microservice: SUCCESS")));

    assert_eq!(world.tail_queue_depth().await, 0, "nothing left to tail");
    assert_eq!(
        world.port.tokens_issued(),
        2,
        "one token per function, reused"
    );
    let refused: Vec<_> = world
        .port
        .requests()
        .into_iter()
        .filter(|r| r.status >= 400)
        .collect();
    assert!(refused.is_empty(), "Port refused nothing: {refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_that_outlives_three_invocations_and_a_crash_reaches_port_whole() {
    let world = PortWorld::start().await;
    let run_id = "r_long";
    let summary = world
        .run_port_runner(&world.click(run_id, LONG_ACTION, json!({})))
        .await;
    assert_eq!(summary.started, 1, "{summary:?}");

    // Invocations 1 and 2 may tail for one second each: both hand on.
    for handoffs in 0..2 {
        let event = world.receive_checkpoints(None).await;
        assert_eq!(event.records.len(), 1);
        assert_eq!(checkpoint(&event).handoffs, handoffs);
        let response = world.run_log_tailer(event, Duration::from_secs(1)).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(world.tail_queue_depth().await, 1, "handed on");
    }

    // Invocation 3 dies just after Port took a post, before Port's answer: the post is in
    // the run but not in the saved progress. Its message comes back after 2 s.
    let event = world.receive_checkpoints(Some(2)).await;
    assert_eq!(checkpoint(&event).handoffs, 2);
    let before = world.run(run_id).logs.len();
    world.port.answer_next_log_late(Duration::from_secs(5));
    let crashed = tokio::select! {
        _ = world.run_log_tailer(event, Duration::from_secs(30)) => false,
        _ = async {
            while world.run(run_id).logs.len() == before {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => true,
    };
    assert!(crashed, "the invocation was cut off mid-post");
    assert!(
        world.jenkins.builds_of(LONG_JOB)[0].building,
        "the build is still running after three invocations"
    );

    let event = redelivered(&world, Duration::from_secs(10)).await;
    assert_eq!(
        checkpoint(&event).handoffs,
        2,
        "the crashed invocation's checkpoint, again"
    );
    let response = world.run_log_tailer(event, Duration::from_secs(1)).await;
    assert!(response.batch_item_failures.is_empty());
    let later = world.tail_until_idle(Duration::from_secs(1)).await;
    assert!(later >= 1, "the build needed more invocations: {later}");

    let run = world.run(run_id);
    assert_eq!(run.status, "SUCCESS", "{run:?}");
    let expected = jenkins_lines(&world, LONG_JOB, 1).await;
    assert_eq!(expected.len(), LONG_LINES + 2, "start, steps, Finished");
    assert_eq!(
        expected[1],
        format!("step 0001 of {LONG_LINES}: compiling module_1")
    );
    // The post Port took during the crash is the one repeat: without it the run's log is
    // the Jenkins log, and it starts the post that followed it.
    let messages = tailed_messages(&run);
    let crashed_post = before - 1;
    let mut without = messages.clone();
    let repeated = without.remove(crashed_post);
    assert_eq!(
        split_lines(&without),
        expected,
        "apart from the one repeated post, every line once, in order"
    );
    let repeated: Vec<&str> = repeated.split('\n').collect();
    let next: Vec<&str> = messages[crashed_post + 1].split('\n').collect();
    assert!(
        next.starts_with(&repeated),
        "the post after the crash repeats the crashed one: {repeated:?} / {next:?}"
    );
    assert_eq!(
        posted_lines(&run).len(),
        expected.len() + repeated.len(),
        "nothing else repeated"
    );
    assert_eq!(
        world.archived("jenkins/sandbox/release/long/1.log").await,
        world.console_text(LONG_JOB, 1).await
    );
    assert_eq!(world.tail_queue_depth().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_record_starts_one_build_and_bad_records_are_skipped_alone() {
    let world = PortWorld::start().await;
    let first = world.click("r_once", EXAMPLE_ACTION, example_inputs("billing"));
    for delivery in 1..=3 {
        let summary = world.run_port_runner(&first).await;
        let expected = if delivery == 1 { (1, 0) } else { (0, 1) };
        assert_eq!(
            (summary.started, summary.duplicates),
            expected,
            "delivery {delivery}: {summary:?}"
        );
    }
    // One batch carrying the same run twice.
    world.port.create_run("r_twice", EXAMPLE_ACTION);
    let twice =
        Bytes::from(envelope("r_twice", EXAMPLE_ACTION, example_inputs("search")).to_string());
    let summary = world
        .run_port_runner(&world.kafka_batch(&[twice.clone(), twice]))
        .await;
    assert_eq!(
        (summary.records, summary.started, summary.duplicates),
        (2, 1, 1),
        "{summary:?}"
    );

    // Records that are no run request are counted and skipped; the good one starts.
    world.port.create_run("r_between", EXAMPLE_ACTION);
    let summary = world
        .run_port_runner(&world.kafka_batch(&[
            Bytes::from_static(b"\xff\xfe not json"),
            Bytes::from(json!({"action": EXAMPLE_ACTION, "payload": {}}).to_string()),
            Bytes::from(
                envelope("r_between", EXAMPLE_ACTION, example_inputs("ledger")).to_string(),
            ),
        ]))
        .await;
    assert_eq!(
        (summary.records, summary.rejected, summary.started),
        (3, 2, 1),
        "{summary:?}"
    );

    let builds = world.jenkins.builds_of(EXAMPLE_JOB);
    let runs: Vec<&str> = builds
        .iter()
        .flat_map(|b| b.parameters.iter())
        .filter(|(k, _)| k == "PORT_RUN_ID")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        runs,
        ["r_once", "r_twice", "r_between"],
        "one build per run"
    );
    assert_eq!(world.tail_queue_depth().await, 3, "one checkpoint per run");
    for run_id in ["r_once", "r_twice", "r_between"] {
        assert_eq!(
            world.run(run_id).logs.len(),
            1,
            "{run_id}: one opening message"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_action_is_left_alone_or_failed_as_configured() {
    let mut world = PortWorld::start().await;
    // A shared topic: another consumer owns the actions we have no route for.
    world.runner.routes.unrouted = Unrouted::Skip;
    let summary = world
        .run_port_runner(&world.click("r_other", "delete_everything", json!({})))
        .await;
    assert_eq!((summary.skipped, summary.started), (1, 0), "{summary:?}");
    assert!(
        world.port.requests().is_empty(),
        "another consumer's run is not touched"
    );
    assert_eq!(world.run("r_other").status, "IN_PROGRESS");
    assert!(world.jenkins.builds_of(EXAMPLE_JOB).is_empty());

    // The default: a Kafka run nobody takes would stay in progress forever.
    world.runner.routes.unrouted = Unrouted::default();
    assert_eq!(world.runner.routes.unrouted, Unrouted::Fail);
    let summary = world
        .run_port_runner(&world.click("r_unrouted", "delete_everything", json!({})))
        .await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    let run = world.run("r_unrouted");
    assert_eq!(run.status, "FAILURE");
    assert_eq!(run.status_label.as_deref(), Some("Not started"));
    assert_eq!(
        run.log_text(),
        "No Jenkins job is set up for action delete_everything: add a route for it to routes.json."
    );
    assert_eq!(world.tail_queue_depth().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_job_fails_the_run_with_what_to_fix() {
    let world = PortWorld::start().await;
    let event = world.click("r_missing", MISSING_ACTION, json!({}));
    let summary = world.run_port_runner(&event).await;
    assert_eq!((summary.failed, summary.started), (1, 0), "{summary:?}");
    let run = world.run("r_missing");
    assert_eq!(run.status, "FAILURE");
    assert_eq!(run.status_label.as_deref(), Some("Not started"));
    let text = run.log_text();
    assert!(
        text.starts_with("Jenkins has no job deploy » nope on Jenkins sandbox (")
            && text.ends_with("check the job path of this action's route."),
        "{text}"
    );
    assert_eq!(world.tail_queue_depth().await, 0, "nothing to tail");

    // Delivered again: the run has ended, Port hears nothing more.
    let calls = world.port.requests().len();
    let summary = world.run_port_runner(&event).await;
    assert_eq!(summary.duplicates, 1, "{summary:?}");
    assert_eq!(world.port.requests().len(), calls);
    assert_eq!(world.run("r_missing").logs.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_cancelled_in_the_queue_fails_the_run() {
    let world = PortWorld::start().await;
    let run_id = "r_queued";
    let summary = world
        .run_port_runner(&world.click(run_id, QUEUED_ACTION, json!({})))
        .await;
    assert_eq!(summary.started, 1, "{summary:?}");
    assert_eq!(
        world.run(run_id).status_label.as_deref(),
        Some("Queued in Jenkins")
    );

    // The first invocation finds it still waiting and says why.
    let event = world.receive_checkpoints(None).await;
    let queue_url = checkpoint(&event).queue_url.expect("a queue item");
    assert!(checkpoint(&event).build.is_none());
    world
        .run_log_tailer(event, Duration::from_millis(500))
        .await;
    assert_eq!(
        world.run(run_id).status_label.as_deref(),
        Some("Queued: In the quiet period.")
    );

    let id: u64 = queue_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("the queue item's id");
    assert!(world.jenkins.cancel_queue_item(id));
    assert_eq!(world.tail_until_idle(Duration::from_secs(5)).await, 1);
    let run = world.run(run_id);
    assert_eq!(run.status, "FAILURE");
    assert_eq!(run.status_label.as_deref(), Some("Cancelled in queue"));
    assert_eq!(
        run.logs.last().unwrap().0,
        "The build was cancelled while waiting in the Jenkins queue."
    );
    assert!(world.jenkins.builds_of(QUEUED_JOB).is_empty());
    assert_eq!(world.tail_queue_depth().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unstable_build_fails_the_run_with_its_result_in_the_label() {
    let world = PortWorld::start().await;
    let run_id = "r_flaky";
    world
        .run_port_runner(&world.click(run_id, FLAKY_ACTION, json!({})))
        .await;
    assert_eq!(world.tail_until_idle(Duration::from_secs(30)).await, 1);
    let run = world.run(run_id);
    assert_eq!(run.status, "FAILURE");
    let label = run.status_label.clone().unwrap_or_default();
    assert!(label.starts_with("Build UNSTABLE ("), "{label}");
    assert!(run
        .logs
        .last()
        .unwrap()
        .0
        .starts_with("Finished: UNSTABLE (build #1 took"));
    assert_eq!(
        posted_lines(&run),
        jenkins_lines(&world, FLAKY_JOB, 1).await
    );
    assert_eq!(
        world.jenkins.builds_of(FLAKY_JOB)[0].result.as_deref(),
        Some("UNSTABLE")
    );
}

/// Port's 429s say when to come back in `x-ratelimit-reset`, as seconds to wait or as
/// an epoch time depending on the docs' version: both are waited out for as long as they
/// say (an epoch time read as seconds would wait the whole cap), nothing lost or repeated.
async fn rate_limits_are_waited_out(form: RateLimitReset) {
    let world = PortWorld::start().await;
    world.port.set_ratelimit_reset(form);
    let run_id = "r_busy_port";
    let event = world.click(run_id, EXAMPLE_ACTION, example_inputs("my-service"));
    // The next three API calls (port_runner's first) are answered 429, reset in 1 s.
    world.port.fail_next(429, 3);
    let summary = world.run_port_runner(&event).await;
    assert_eq!(summary.started, 1, "{summary:?}");
    assert_eq!(world.tail_until_idle(Duration::from_secs(60)).await, 1);

    let run = world.run(run_id);
    assert_eq!(run.status, "SUCCESS", "{run:?}");
    assert_eq!(
        posted_lines(&run),
        jenkins_lines(&world, EXAMPLE_JOB, 1).await
    );
    let requests = world.port.requests();
    let limited: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].status == 429)
        .collect();
    assert_eq!(limited.len(), 3, "{requests:?}");
    for &i in &limited {
        let retry = requests[i + 1..]
            .iter()
            .find(|r| r.path == requests[i].path)
            .expect("the call is made again");
        let waited = retry.at.duration_since(requests[i].at);
        // An epoch second "now + 1" is between 0 and 1 s away.
        let least = match form {
            RateLimitReset::Delay => Duration::from_millis(900),
            RateLimitReset::EpochTime => Duration::ZERO,
        };
        assert!(
            waited >= least && waited < Duration::from_secs(5),
            "{form:?}: waited {waited:?} before {} again",
            retry.path
        );
    }
    assert_eq!(
        world.port.tokens_issued(),
        2,
        "tokens reused, not renewed per call"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn port_rate_limits_given_as_a_delay_are_waited_out() {
    rate_limits_are_waited_out(RateLimitReset::Delay).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_rate_limits_given_as_an_epoch_time_are_waited_out() {
    rate_limits_are_waited_out(RateLimitReset::EpochTime).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_aborts_a_build_past_its_limit_and_fails_the_run() {
    let world = PortWorld::start().await;
    let run_id = "r_stuck";
    world
        .run_port_runner(&world.click(run_id, STUCK_ACTION, json!({})))
        .await;
    let invocations = world.tail_until_idle(Duration::from_secs(1)).await;
    assert!(
        invocations >= 2,
        "handed on before the limit: {invocations}"
    );

    let run = world.run(run_id);
    assert_eq!(run.status, "FAILURE");
    assert_eq!(run.status_label.as_deref(), Some("Timed out after 3s"));
    assert_eq!(
        run.logs.last().unwrap().0,
        "Timed out after 3s, the limit of this action. The build #1 was aborted."
    );
    let build = &world.jenkins.builds_of(STUCK_JOB)[0];
    assert_eq!(build.result.as_deref(), Some("ABORTED"));
    let posted = posted_lines(&run);
    let written = jenkins_lines(&world, STUCK_JOB, 1).await;
    assert!(
        posted.len() > 10 && written.starts_with(&posted),
        "what was posted is the log up to the abort: {} of {} lines",
        posted.len(),
        written.len()
    );
    assert_eq!(world.tail_queue_depth().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_that_asks_gets_its_build_log_indexed_one_document_per_line() {
    let search_server = spigot_local::search_server::SearchServer::start(0)
        .await
        .expect("the search server starts");
    let search = SearchClient::new(search_server.url(), SearchAuth::None).unwrap();
    let mut world = PortWorld::start().await;
    world.tailer.search = Some(search.clone());
    world
        .runner
        .routes
        .routes
        .get_mut(EXAMPLE_ACTION)
        .expect("the example route")
        .index_log = true;
    let run_id = "r_indexed";
    world
        .run_port_runner(&world.click(run_id, EXAMPLE_ACTION, example_inputs("my-service")))
        .await;
    assert_eq!(world.tail_until_idle(Duration::from_secs(60)).await, 1);
    assert_eq!(world.run(run_id).status, "SUCCESS");

    let expected = jenkins_lines(&world, EXAMPLE_JOB, 1).await;
    search.refresh("ci-logs-*").await.unwrap();
    let query = json!({"bool": {"filter": [
        {"term": {"ci.source": "jenkins"}},
        {"term": {"ci.job.id": "1"}},
        {"term": {"event.dataset": "jenkins.build_log"}},
    ]}});
    assert_eq!(
        search.count("ci-logs-*", &query).await.unwrap(),
        expected.len() as u64,
        "one document per line"
    );
    let hits = search
        .search(
            "ci-logs-*",
            &json!({"query": {"term": {"event.sequence": 2}}, "size": 1}),
        )
        .await
        .unwrap();
    let doc = &hits["hits"]["hits"][0]["_source"];
    assert_eq!(doc["message"], expected[1], "{doc}");
    assert_eq!(doc["ci"]["job"]["status"], "SUCCESS", "{doc}");
    assert_eq!(
        doc["log"]["file"]["path"],
        format!(
            "s3://{}/jenkins/sandbox/deploy/microservice/1.log",
            world.archive_bucket
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_item_gone_before_the_tail_looks_is_found_again_by_its_run_id() {
    let mut world = PortWorld::start().await;
    // port_runner hands on the queue item without waiting for the build, and Jenkins
    // forgets queue items as soon as they have left the queue (5 minutes in real life).
    world.runner.build_number_wait = Duration::ZERO;
    world.jenkins.set_queue_ttl(Duration::ZERO);
    let run_id = "r_expired";
    world
        .run_port_runner(&world.click(run_id, FLAKY_ACTION, json!({})))
        .await;
    let event = world.receive_checkpoints(None).await;
    let handed = checkpoint(&event);
    assert!(handed.build.is_none(), "only the queue item was known");
    let queue_url = handed.queue_url.clone().expect("a queue item");
    // Wait until the item has left the queue and is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reqwest::get(format!("{queue_url}api/json"))
        .await
        .unwrap()
        .status()
        != 404
    {
        assert!(Instant::now() < deadline, "the queue item never went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let response = world.run_log_tailer(event, Duration::from_secs(30)).await;
    assert!(response.batch_item_failures.is_empty());
    let run = world.run(run_id);
    assert_eq!(run.status, "FAILURE", "UNSTABLE: {run:?}");
    assert!(run.link.iter().any(|l| l.ends_with("/job/qa/job/flaky/1/")));
    assert_eq!(
        posted_lines(&run),
        jenkins_lines(&world, FLAKY_JOB, 1).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_far_larger_than_a_post_is_read_in_bounded_pieces_and_reaches_port_whole() {
    let mut world = PortWorld::start().await;
    let flush = 64 * 1024;
    world.tailer.flush_bytes = flush;
    world.add_written_job("big_log", "big/log", big_log_lines());
    let run_id = "r_big_log";
    let summary = world
        .run_port_runner(&world.click(run_id, "big_log", json!({})))
        .await;
    assert_eq!(summary.started, 1, "{summary:?}");

    let report = world
        .tail_once(Duration::from_secs(600))
        .await
        .expect("a checkpoint");
    assert_eq!(report.tailed, Tailed::Finished, "{report:?}");
    let raw = world.console_text("big/log", 1).await;
    assert!(raw.len() > 48 * 1024 * 1024, "{} bytes", raw.len());
    // What a read holds: one network chunk, the parser's line, one post being gathered.
    let bound = flush + 1024 * 1024;
    assert!(
        report.peak_held_bytes <= bound && raw.len() > 40 * bound,
        "held {} bytes of a {}-byte answer",
        report.peak_held_bytes,
        raw.len()
    );

    let run = world.run(run_id);
    assert_eq!(run.status, "SUCCESS", "{}", run.status);
    let mut expected = cleaned_lines(&raw);
    assert_eq!(expected.len(), 1 + 300_001 + 1, "start, lines, Finished");
    let cut = &mut expected[150_001];
    assert_eq!(cut.len(), 16 * 1024, "the long line, at the parser's cap");
    cut.push_str(CUT_MARK);
    let messages = tailed_messages(&run);
    assert_eq!(messages.len() as u64, report.posts);
    assert!(report.posts > 400, "{} posts", report.posts);
    for message in &messages {
        assert!(
            json!({ "message": message }).to_string().len() <= flush + 64,
            "a post over FLUSH_BYTES"
        );
    }
    assert!(
        split_lines(&messages) == expected,
        "every line once, in order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_a_long_answer_repeats_one_post_and_later_reads_resume_from_the_same_start() {
    let mut world = PortWorld::start().await;
    world.tailer.flush_bytes = 64 * 1024;
    world.add_written_job("long_answer", "big/answer", numbered_lines(0, 20_000));
    let run_id = "r_long_answer";
    world
        .run_port_runner(&world.click(run_id, "long_answer", json!({})))
        .await;

    // The invocation dies six posts into the answer, just after Port took a post and
    // before the progress says so. Its message comes back after 2 s.
    let event = world.receive_checkpoints(Some(2)).await;
    let crashed = tokio::select! {
        _ = world.run_log_tailer(event, Duration::from_secs(60)) => false,
        _ = async {
            while world.run(run_id).logs.len() < 7 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            world.port.answer_next_log_late(Duration::from_secs(5));
            while world.port.late_log_answer_pending() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => true,
    };
    assert!(crashed, "the invocation was cut off mid-answer");
    let saved = world.tailer.state.progress(run_id).await.unwrap().unwrap();
    assert_eq!(saved.offset, 0, "still in the first answer");
    assert!(saved.lines_posted > 0);

    // Then invocations whose time is up at once: each asks from the same start, skips
    // what is posted, makes one post and hands on, until the answer is posted.
    let mut lines_posted = vec![saved.lines_posted];
    let mut event = redelivered(&world, Duration::from_secs(10)).await;
    loop {
        assert_eq!(checkpoint(&event).offset, 0, "the answer's start");
        let response = world.run_log_tailer(event, Duration::ZERO).await;
        assert!(response.batch_item_failures.is_empty());
        let progress = world.tailer.state.progress(run_id).await.unwrap().unwrap();
        if progress.finished {
            break;
        }
        assert!(
            progress.lines_posted > *lines_posted.last().unwrap(),
            "each invocation moves on: {lines_posted:?}, then {}",
            progress.lines_posted
        );
        lines_posted.push(progress.lines_posted);
        assert!(lines_posted.len() < 60, "the tail never ends");
        event = world.receive_checkpoints(None).await;
        assert_eq!(event.records.len(), 1, "handed on");
    }
    assert!(
        lines_posted.len() >= 10,
        "handed on mid-answer: {lines_posted:?}"
    );

    let run = world.run(run_id);
    assert_eq!(run.status, "SUCCESS", "{}", run.status);
    let expected = jenkins_lines(&world, "big/answer", 1).await;
    assert_eq!(expected.len(), 20_002);
    let messages = tailed_messages(&run);
    let repeats: Vec<usize> = (1..messages.len())
        .filter(|&i| messages[i] == messages[i - 1])
        .collect();
    assert_eq!(repeats.len(), 1, "one post repeated: {repeats:?}");
    let mut without = messages.clone();
    without.remove(repeats[0]);
    assert!(
        split_lines(&without) == expected,
        "apart from the repeated post, every line once, in order"
    );
    assert_eq!(world.tail_queue_depth().await, 0);
}

/// Port's own messages on the topic (port-agent's fixtures and Port's docs, in
/// functions/port_runner/tests/fixtures): the Kafka runs a route takes are built, Kafka
/// runs that cannot be used are ended FAILURE saying why, other consumers' runs are
/// skipped untouched, and no run of ours is left in progress.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_messages_are_built_ended_or_left_to_their_consumer() {
    let mut world = PortWorld::start().await;
    world.port.adopt_unknown_runs(true);
    let quick = |path: &str| {
        SandboxJob::new(
            path,
            &["PORT_RUN_ID"],
            BuildScript {
                lines: vec![format!("{path} done")],
                line_interval: Duration::ZERO,
                result: "SUCCESS".into(),
            },
        )
    };
    // A legacy message names its action per blueprint: the blueprint route wins.
    world.add_route("vm/create_vm", quick("vm-create"));
    world.add_route("Microservice_scaffold_a_microservice", quick("scaffold"));
    let fixtures: Value = serde_json::from_str(
        &std::fs::read_to_string(
            spigot_tests::workspace_root()
                .join("functions/port_runner/tests/fixtures/port-kafka-examples.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let values: Vec<Bytes> = fixtures["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Bytes::from(e["message"].to_string()))
        .collect();
    let summary = world.run_port_runner(&world.kafka_batch(&values)).await;
    assert_eq!(
        (
            summary.records,
            summary.started,
            summary.failed,
            summary.other_invocation,
            summary.rejected
        ),
        (9, 2, 3, 4, 0),
        "{summary:?}"
    );
    assert_eq!(world.jenkins.builds_of("vm-create").len(), 1);
    assert_eq!(world.jenkins.builds_of("scaffold").len(), 1);
    assert_eq!(world.tail_until_idle(Duration::from_secs(60)).await, 2);
    for run_id in ["r_docsLambdaGuide1", "r_docsTriggerData1"] {
        assert_eq!(world.run(run_id).status, "SUCCESS", "{run_id}");
    }
    for run_id in ["r_docsPortCtx0001", "r_docsSpreadCtx01"] {
        let run = world.run(run_id);
        assert_eq!(run.status, "FAILURE", "{run_id}");
        assert_eq!(
            run.status_label.as_deref(),
            Some("Not started: no action in the message")
        );
        assert!(
            run.log_text().contains(".action.identifier"),
            "{run_id}: {}",
            run.log_text()
        );
    }
    // No route for `deploy` (the default is to say so, not to leave the run hanging).
    let unrouted = world.run("run_123");
    assert_eq!(unrouted.status, "FAILURE");
    assert!(unrouted
        .log_text()
        .contains("No Jenkins job is set up for action deploy"));
    // port-agent's WEBHOOK runs: nothing was sent about them.
    for run_id in [
        "r_jE5FhDURh4Uen2Qr",
        "wfnr_abc123",
        "r_HardNzG6kzc9vWOQ",
        "r_789",
    ] {
        assert!(
            world
                .port
                .requests()
                .iter()
                .all(|r| !r.path.contains(run_id)),
            "{run_id} is another consumer's"
        );
    }
}

/// A run ended elsewhere while its build still runs: a user stopped it in Port (its log
/// posts get 422) or Port no longer knows it (404). The tail stops for good — no retries
/// into the DLQ — and aborts the build when the route says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_ended_in_port_is_no_longer_followed_and_its_build_aborted_if_asked() {
    let mut world = PortWorld::start().await;
    world
        .runner
        .routes
        .routes
        .get_mut(LONG_ACTION)
        .expect("the long route")
        .abort_when_run_ends = true;
    world
        .run_port_runner(&world.click("r_stopped", LONG_ACTION, json!({})))
        .await;
    // The first invocation posts some of the log, then hands on.
    world
        .tail_once(Duration::from_secs(1))
        .await
        .expect("a checkpoint");
    assert!(!world.run("r_stopped").logs.is_empty());
    world.port.stop_run("r_stopped");
    assert_eq!(world.tail_until_idle(Duration::from_secs(20)).await, 1);
    let run = world.run("r_stopped");
    assert_eq!(
        run.status_label.as_deref(),
        Some("Stopped by user"),
        "left as the user ended it"
    );
    let build = &world.jenkins.builds_of(LONG_JOB)[0];
    assert_eq!(build.result.as_deref(), Some("ABORTED"), "{build:?}");
    assert_eq!(world.tail_queue_depth().await, 0, "no checkpoint retried");

    // Port forgot the next run; its route does not ask for an abort.
    world
        .runner
        .routes
        .routes
        .get_mut(LONG_ACTION)
        .unwrap()
        .abort_when_run_ends = false;
    world
        .run_port_runner(&world.click("r_forgotten", LONG_ACTION, json!({})))
        .await;
    world
        .tail_once(Duration::from_secs(1))
        .await
        .expect("a checkpoint");
    world.port.forget_run("r_forgotten");
    assert_eq!(world.tail_until_idle(Duration::from_secs(20)).await, 1);
    let second = &world.jenkins.builds_of(LONG_JOB)[1];
    assert_ne!(second.result.as_deref(), Some("ABORTED"), "{second:?}");
    assert_eq!(world.tail_queue_depth().await, 0);
    let refused: Vec<u16> = world
        .port
        .requests()
        .iter()
        .filter(|r| r.path.contains("r_forgotten") || r.path.contains("r_stopped"))
        .map(|r| r.status)
        .filter(|s| *s >= 400)
        .collect();
    assert_eq!(refused, [422, 404], "each said once, never retried");
}
