//! What an operator asks a running node over HTTP: whether it lives and is ready ([`health`]),
//! its counters in the Prometheus text format ([`metrics`]), and the live web console's page
//! ([`console`], which then talks to the management API over WAMP). None of them changes the
//! node. [`log`] holds the process's log level for the management API, [`limits`] raises its
//! open-files limit at start-up.

pub mod console;
pub mod health;
pub mod limits;
pub mod log;
pub mod metrics;

pub use health::NodeStatus;
