//! What every spigot function shares. Modules are named after the outside system or the
//! idea they hold, not after a layer.

pub mod apigw;
pub mod aws;
pub mod buffer;
pub mod config;
pub mod drain;
pub mod envelope;
pub mod github;
pub mod http;
pub mod jenkins;
pub mod secrets;
pub mod state;
pub mod telemetry;
pub mod text;
