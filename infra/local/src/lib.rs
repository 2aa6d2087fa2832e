//! The local stack: everything spigot talks to, running on one machine with no AWS
//! account and no Docker. Tests and `make demo` build on these pieces.
//!
//! - [`aws_emulator`]: a moto server (SQS, S3, API Gateway, ...) from the project venv.
//! - [`spigot_resources`]: the queue, DLQ, bucket and REST API stage that template.yaml
//!   declares, created on the emulator.
//! - [`jenkins`]: a sandbox Jenkins that answers like the GitHub plugin endpoint and
//!   records every request, with switchable outages.
//! - [`runtime_api`]: a Lambda Runtime API emulator that runs the real function binaries.
//! - [`venv`]: where the project's Python tools live.

pub mod api_gateway;
pub mod aws_emulator;
pub mod demo;
pub mod front_door;
pub mod functions;
pub mod gitlab;
mod http_server;
pub mod jenkins;
pub mod kafka;
pub mod net;
pub mod port;
pub mod process;
pub mod resources;
pub mod runtime_api;
pub mod schedules;
pub mod search_proxy;
pub mod search_server;
pub mod spigot_resources;
pub mod sqs_event_source;
pub mod stack;
pub mod template;
pub mod venv;
