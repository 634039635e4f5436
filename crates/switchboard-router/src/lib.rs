//! The Switchboard WAMP router.
//!
//! Data flow: [`listener`] accepts a connection and picks its transport (from
//! `switchboard-transport`), or [`embed`] joins a session living in the router's process over an
//! in-memory one; [`session`] runs one task per peer, from HELLO to GOODBYE, the same code for
//! both; a session routes its own PUBLISH through its [`realm`]'s broker and its own CALL through
//! the realm's dealer, queueing encoded messages straight into the receivers' outboxes ([`peer`]).
//! [`node`] starts and stops all of it from a [`config`]. ARCHITECTURE.md has the whole picture
//! and the layers: each module imports only from the ones below it.

pub mod auth;
pub mod config;
mod delivery;
pub mod embed;
pub mod http_bridge;
pub mod listener;
mod locks;
pub mod matcher;
pub mod node;
pub mod ops;
pub mod peer;
pub mod realm;
pub mod session;
pub mod tls;
pub mod web;

pub use config::LoadedConfig;
pub use node::{RunningNode, start};
/// The PostgreSQL bridge the node runs for `postgresql` components.
pub use switchboard_postgres as postgres;
