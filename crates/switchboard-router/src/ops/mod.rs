//! What an operator asks a running node over HTTP: whether it lives and is ready ([`health`]),
//! and its counters in the Prometheus text format ([`metrics`]). Both read the node's state
//! (the realms and their counters, [`NodeStatus`]); neither changes it.

pub mod health;
pub mod metrics;

pub use health::NodeStatus;
