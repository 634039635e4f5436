//! The Switchboard WAMP router.
//!
//! Data flow: [`listener`] accepts a connection and picks its transport (from
//! `switchboard-transport`); [`session`] runs one task per peer, from HELLO to GOODBYE; a session
//! routes its own PUBLISH through its [`realm`]'s [`broker`] and its own CALL through the
//! [`dealer`], queueing encoded messages straight into the receivers' outboxes. [`node`] starts and
//! stops all of it from a [`config`]. See ARCHITECTURE.md for the whole picture.

pub mod auth;
pub mod config;
mod delivery;
pub mod listener;
mod locks;
pub mod matcher;
pub mod node;
pub mod peer;
pub mod realm;
pub mod router_call;
pub mod session;
pub mod tls;
pub mod web;

pub use config::LoadedConfig;
pub use node::{RunningNode, start};
