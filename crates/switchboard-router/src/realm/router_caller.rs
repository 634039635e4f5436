//! Calls the router makes itself: dynamic authenticators and authorizers are ordinary procedures
//! that components register, and the router calls them through a session of its own on the realm.
//!
//! That session is an in-process session like any other (the node joins it at start with the
//! built-in `trusted` role, hidden from the meta API), and the router calls through the same client
//! API components use, so its calls are authorized, routed and cleaned up as anyone's.

use std::time::Duration;

use switchboard_client::{Args, CallOptions, Error, Session};
use switchboard_proto::{Value, errors};

use super::Realm;

/// The authid of the router's own sessions.
pub const ROUTER_AUTHID: &str = "switchboard";

/// Why a router call produced no result.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFailure {
    /// The procedure could not be reached or did not answer: not registered, its callee left, or
    /// the call timed out.
    Unavailable(String),
    /// The callee answered with an ERROR.
    Error {
        /// The error URI.
        uri: String,
        /// The first positional argument, as text, when there is one.
        message: Option<String>,
    },
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Unavailable(why) => write!(f, "{why}"),
            CallFailure::Error { uri, message } => match message {
                Some(m) => write!(f, "{uri}: {m}"),
                None => write!(f, "{uri}"),
            },
        }
    }
}

/// The errors the dealer raises itself, which mean the procedure could not answer, not that it
/// answered no.
const UNAVAILABLE: [&str; 4] = [
    errors::NO_SUCH_PROCEDURE,
    errors::CANCELED,
    errors::TIMEOUT,
    errors::NOT_AUTHORIZED,
];

impl Realm {
    /// Gives the realm the router's own caller session (the node does, at start).
    pub fn set_router_caller(&self, session: Session) {
        if self.caller.set(session).is_err() {
            tracing::warn!(realm = self.name(), "the router's caller was already set");
        }
    }

    /// Calls `procedure` on this realm as the router itself (dynamic authenticators and
    /// authorizers), waiting at most `timeout` (the dealer also cancels the call then). Returns
    /// the result's first positional argument (`Null` when there is none).
    pub async fn router_call(
        &self,
        procedure: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, CallFailure> {
        // A realm a template just created gets its caller a moment after its first session
        // asked for it; a configured realm has it before any listener accepts.
        if self.caller.get().is_none() && self.linger().is_some() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while self.caller.get().is_none() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let Some(caller) = self.caller.get() else {
            return Err(CallFailure::Unavailable(format!(
                "the router's caller session of realm {} is not running",
                self.name()
            )));
        };
        let options = CallOptions::default().with_timeout(timeout);
        let call = caller.call_with(procedure, Args::positional(args), options);
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(result)) => Ok(result.args.into_iter().next().unwrap_or(Value::Null)),
            Ok(Err(Error::Wamp { uri, args, .. })) => {
                let message = args.into_iter().next().map(|v| match v {
                    Value::Str(s) => s,
                    other => format!("{other:?}"),
                });
                if UNAVAILABLE.contains(&uri.as_str()) {
                    Err(CallFailure::Unavailable(match message {
                        Some(m) => format!("{uri}: {m}"),
                        None => uri,
                    }))
                } else {
                    Err(CallFailure::Error { uri, message })
                }
            }
            Ok(Err(other)) => Err(CallFailure::Unavailable(other.to_string())),
            Err(_) => Err(CallFailure::Unavailable(format!(
                "{procedure} did not answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}
