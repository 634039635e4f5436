//! The one WAMP client of Switchboard: router links, bridges, in-process components, the
//! router's own caller and external Rust programs all plug into a router through it.
//!
//! # Shape
//!
//! - [`Session::connect`] opens TCP or a Unix socket, optionally TLS, then WebSocket or RawSocket
//!   in any serializer (`connect.rs`), and joins; [`Session::join`] joins over any open
//!   [`Transport`](switchboard_transport::Transport), such as an in-memory one.
//! - Joining (`join.rs`) sends HELLO with the client's roles and features and answers the
//!   router's CHALLENGE with the [`Credential`]s given (`auth.rs`: ticket, WAMP-CRA, Cryptosign,
//!   TLS client certificates).
//! - A [`Session`] is a cheap `Clone` handle (`session.rs`). One background task per session
//!   (`driver.rs`) owns the transport; the handles talk to it over a bounded channel. No channel
//!   in this crate is unbounded.
//! - Procedure handlers are async ([`Session::register`]); their futures are polled inside the
//!   session's task (`invocation.rs`), can send progressive results, are dropped on INTERRUPT,
//!   and a panicking handler ends only its own session ([`CloseReason::HandlerPanicked`]).
//! - Subscriptions are bounded streams ([`Subscription`]): a consumer that lags loses the oldest
//!   events and is told how many ([`Lagged`]); the session never waits for it (the policy is
//!   spelled out on [`SubscribeOptions`]). Progressive results of a [`CallHandle`] are buffered
//!   the same way (`queue.rs`).
//! - [`Session::closed`] says why a session ended ([`CloseReason`]).
//!
//! Options map one to one to the spec's option names (`options.rs`).

mod args;
mod auth;
mod call;
mod command;
mod connect;
mod driver;
mod error;
mod invocation;
mod join;
mod options;
mod queue;
mod session;
mod subscription;

pub use args::Args;
pub use auth::Credential;
pub use call::CallHandle;
pub use connect::{ConnectOptions, Endpoint, TransportKind};
pub use error::{CallError, CloseReason, Error};
pub use invocation::{HandlerResult, Invocation};
pub use join::JoinOptions;
pub use options::{
    CallOptions, CancelMode, DEFAULT_PROGRESS_CAPACITY, DEFAULT_SUBSCRIPTION_CAPACITY,
    InvokePolicy, PublishOptions, RegisterOptions, SubscribeOptions, UriMatch,
};
pub use queue::Lagged;
pub use session::Session;
pub use subscription::{Event, EventFeed, Subscription};
