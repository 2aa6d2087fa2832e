//! gitlab_ingest's intake (`/gitlab`: a Job Hook POST or the after_script GET), on any
//! event a direct invoke could send, as it is and again with the valid token: a job to
//! read, or a small answer (2xx for what is ignored, since GitLab disables a hook that
//! answers 4xx too often; 4xx for what is refused).
#![no_main]

use std::sync::LazyLock;

use gitlab_ingest::intake::{read_request, TOKEN_HEADER};
use libfuzzer_sys::fuzz_target;
use spigot_common::secrets::Secret;
use spigot_fuzz::{api_event, check_answer};

static TOKEN: LazyLock<Secret> = LazyLock::new(|| Secret::new("fuzz-gitlab-token"));

fuzz_target!(|data: &[u8]| {
    let Some(mut request) = api_event(data) else {
        return;
    };
    check(&request);
    request.headers.insert(
        TOKEN_HEADER,
        TOKEN.expose().parse().expect("a header value"),
    );
    check(&request);
});

fn check(request: &aws_lambda_events::apigw::ApiGatewayProxyRequest) {
    match read_request(Some(&TOKEN), request) {
        Err(answer) => check_answer(&answer, 200..=499),
        Ok(job) => {
            assert!(matches!(job.source, "job_hook" | "after_script"));
            if let Some(path) = &job.project_path {
                assert!(!path.is_empty());
            }
        }
    }
}
