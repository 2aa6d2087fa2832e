//! The AliECS protobuf types, generated at build time from `proto/` (see build.rs).
#![allow(clippy::all, missing_docs)]

/// The legacy Kafka plugin's messages (`package kafka`).
pub mod kafka {
    include!(concat!(env!("OUT_DIR"), "/kafka.rs"));
}

/// The event model (`package events`).
pub mod events {
    include!(concat!(env!("OUT_DIR"), "/events.rs"));
}

/// Types the event model shares (`package common`).
pub mod common {
    include!(concat!(env!("OUT_DIR"), "/common.rs"));
}
