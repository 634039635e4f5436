//! What can go wrong: [`Error`] for the client's own operations, [`CallError`] for what a
//! procedure handler answers with, and [`CloseReason`] for why a session ended.

use std::fmt;

use switchboard_proto::{Dict, Message, MessageType, Payload, Value};
use switchboard_transport::TransportError;

use crate::Args;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting or the transport failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The socket could not be opened.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// The router refused the session (ABORT during the opening handshake).
    #[error("aborted: {reason} {details:?}")]
    Aborted {
        /// ABORT reason URI.
        reason: String,
        /// ABORT details.
        details: Dict,
    },
    /// The router (or the callee, through it) answered a request with ERROR.
    #[error("WAMP error {uri}: {args:?} {kwargs:?}")]
    Wamp {
        /// Error URI.
        uri: String,
        /// Error arguments.
        args: Vec<Value>,
        /// Error keyword arguments.
        kwargs: Dict,
    },
    /// The session is closed (or closed before the request was answered).
    #[error("session closed")]
    Closed,
    /// The peer sent something we could not understand, or a message could not be encoded.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The router asked for an authentication this client cannot give (a method it was given no
    /// credential for, or a challenge it cannot answer).
    #[error("authentication: {0}")]
    Authentication(String),
    /// The options cannot be used (a TLS server name that is not a name, a secret key of the
    /// wrong shape).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl Error {
    /// The WAMP error URI, for ERROR answers.
    pub fn uri(&self) -> Option<&str> {
        match self {
            Error::Wamp { uri, .. } => Some(uri),
            _ => None,
        }
    }

    /// The error of an ERROR message's URI and payload.
    pub(crate) fn from_wamp(uri: String, payload: &Payload) -> Self {
        // An ERROR whose payload does not decode still carries the URI, which is what matters.
        let a = Args::from_payload(payload).unwrap_or_default();
        Error::Wamp {
            uri,
            args: a.args,
            kwargs: a.kwargs,
        }
    }
}

/// The error a procedure handler answers with: ERROR to the caller with this URI and payload
/// (spec, "Calling and Invocations").
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// The error URI, e.g. `com.example.error.not_found` or `wamp.error.invalid_argument`.
    pub uri: String,
    /// Error arguments.
    pub args: Vec<Value>,
    /// Error keyword arguments.
    pub kwargs: Dict,
}

impl CallError {
    /// An error with `uri` and no payload.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            args: Vec::new(),
            kwargs: Dict::new(),
        }
    }

    /// The same error, carrying `args`.
    pub fn with_args(self, args: Args) -> Self {
        Self {
            args: args.args,
            kwargs: args.kwargs,
            ..self
        }
    }

    /// The ERROR answering INVOCATION `request` in serializer `s`.
    pub(crate) fn into_message(self, request: u64, s: switchboard_proto::Serializer) -> Message {
        let uri = self.uri;
        match Args::new(self.args, self.kwargs).into_payload(s) {
            Ok(payload) => Message::Error {
                request_type: MessageType::Invocation.code(),
                request,
                details: Dict::new(),
                error: uri,
                payload,
            },
            Err(_) => Message::error(
                MessageType::Invocation,
                request,
                switchboard_proto::errors::INVALID_ARGUMENT,
            ),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.uri, self.args)
    }
}

impl std::error::Error for CallError {}

/// Why a session ended, as [`Session::closed`](crate::Session::closed) reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// We left: [`Session::leave`](crate::Session::leave), or every handle of the session was
    /// dropped.
    Left,
    /// The router closed the session with GOODBYE (a kill through the meta API, a shutdown); the
    /// client answered `wamp.close.goodbye_and_out`.
    Goodbye {
        /// The router's reason URI.
        reason: String,
        /// GOODBYE.Details.
        details: Dict,
    },
    /// The router ended the session with ABORT.
    Aborted {
        /// The router's reason URI.
        reason: String,
        /// ABORT.Details.
        details: Dict,
    },
    /// The connection dropped (or failed) without a GOODBYE or ABORT.
    ConnectionLost(String),
    /// A procedure handler panicked: the session was ended (the transport closed) so that the
    /// panic cannot leave it half-working.
    HandlerPanicked {
        /// The procedure the panicking handler was registered for.
        procedure: String,
        /// The panic message, when it was a string.
        message: String,
    },
    /// The router broke the protocol; the client sent ABORT `wamp.error.protocol_violation`.
    ProtocolViolation(String),
}

impl CloseReason {
    /// The router's reason URI, when the router closed the session with GOODBYE or ABORT.
    pub fn router_reason(&self) -> Option<&str> {
        match self {
            CloseReason::Goodbye { reason, .. } | CloseReason::Aborted { reason, .. } => {
                Some(reason)
            }
            _ => None,
        }
    }

    /// The router's GOODBYE or ABORT details, when it closed the session.
    pub fn router_details(&self) -> Option<&Dict> {
        match self {
            CloseReason::Goodbye { details, .. } | CloseReason::Aborted { details, .. } => {
                Some(details)
            }
            _ => None,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Left => write!(f, "left"),
            CloseReason::Goodbye { reason, .. } => write!(f, "router said GOODBYE {reason}"),
            CloseReason::Aborted { reason, .. } => write!(f, "router sent ABORT {reason}"),
            CloseReason::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            CloseReason::HandlerPanicked { procedure, message } => {
                write!(f, "the handler of {procedure} panicked: {message}")
            }
            CloseReason::ProtocolViolation(why) => write!(f, "router broke the protocol: {why}"),
        }
    }
}
