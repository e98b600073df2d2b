//! lookout: one self-hosted daemon and CLI that detects, pages and recovers.
//!
//! The pure core ([`model`], [`rule`], [`alert`]) does no I/O and reads no clock; probes,
//! store, notifiers, API and CLI live at the edges. See `docs/ARCHITECTURE.md`.
#![warn(missing_docs)]

pub mod action;
pub mod alert;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod drill;
pub mod escalation;
pub mod http;
pub mod lint;
pub mod matrix;
pub mod model;
pub mod notify;
pub mod probe;
pub mod replay;
pub mod rule;
pub mod store;
