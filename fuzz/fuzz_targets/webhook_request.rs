//! process_webhooks' API Gateway event handling (`read_request`: the route, the body, the
//! sender, the delivery id, the state), on any event a direct invoke could send. Each
//! event is tried as it is and again validly signed, as an attacker holding one signed
//! request could send it: whatever the path, method, query or headers, the request is
//! refused with a small 4xx, or resolves to a route's own target that the drain would
//! replay through the same route.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use process_webhooks::{read_request, Senders};
use spigot_common::apigw::raw_body;
use spigot_common::github::{sign, SIGNATURE_256_HEADER};
use spigot_common::gitlab::HOOK_TOKEN_HEADER;
use spigot_common::secrets::Secret;
use spigot_common::target_routes::{check_remainder, TargetRoutes, DEFAULT_ROOT_TARGET};
use spigot_fuzz::{api_event, check_answer};

static ROUTES: LazyLock<TargetRoutes> =
    LazyLock::new(|| TargetRoutes::defaults(DEFAULT_ROOT_TARGET).expect("the default routes"));
static SECRET: LazyLock<Secret> = LazyLock::new(|| Secret::new("fuzz-webhook-secret"));
static TOKEN: LazyLock<Secret> = LazyLock::new(|| Secret::new("fuzz-gitlab-token"));
static SENDERS: LazyLock<Senders> = LazyLock::new(|| Senders {
    github_secrets: vec![SECRET.clone()],
    gitlab_tokens: vec![TOKEN.clone()],
    allow_unsigned: false,
});

fuzz_target!(|data: &[u8]| {
    let Some(mut request) = api_event(data) else {
        return;
    };
    check(&request);
    // The same request from a sender holding the secrets.
    if let Ok(body) = raw_body(&request) {
        let headers = &mut request.headers;
        headers.insert(
            SIGNATURE_256_HEADER,
            sign(&body, &SECRET).parse().expect("hex is a header value"),
        );
        headers.insert(
            HOOK_TOKEN_HEADER,
            TOKEN.expose().parse().expect("a header value"),
        );
        check(&request);
    }
});

fn check(request: &aws_lambda_events::apigw::ApiGatewayProxyRequest) {
    match read_request(&ROUTES, &SENDERS, request) {
        Err(answer) => check_answer(&answer, 400..=499),
        Ok(incoming) => {
            let route = incoming.route;
            let replayed = ROUTES
                .for_replay(&incoming.method, &incoming.path)
                .unwrap_or_else(|e| panic!("the drain would refuse {}: {e}", incoming.path));
            assert_eq!(replayed.name, route.name, "replayed through another route");
            assert!(route.methods.contains(&incoming.method));
            let relative = incoming.path.trim_start_matches('/');
            assert_eq!(check_remainder(relative), Ok(()), "{}", incoming.path);
            for (name, _) in &incoming.query {
                assert!(route.query.contains(name), "query {name} passed on");
            }
        }
    }
}
