//! What every spigot function shares. Modules are named after the outside system or the
//! idea they hold, not after a layer.

pub mod apigw;
pub mod archive;
pub mod aws;
pub mod buffer;
pub mod config;
pub mod drain;
pub mod envelope;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod jenkins;
pub mod json_shape;
pub mod kafka;
pub mod lambda;
pub mod log_copy;
pub mod log_index;
pub mod logline;
pub mod port;
pub mod port_run;
pub mod search;
pub mod secrets;
pub mod state;
pub mod target_routes;
pub mod telemetry;
pub mod text;
