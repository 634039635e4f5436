//! The WAMP message set (Basic and Advanced Profiles) as one enum, with the spec's type codes.

use crate::codec::RawValue;
use crate::ids::Id;
use crate::value::Dict;

/// A message type code (spec, "Message Codes and Direction").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
#[allow(missing_docs)] // the variants are the spec's message names
pub enum MessageType {
    Hello = 1,
    Welcome = 2,
    Abort = 3,
    Challenge = 4,
    Authenticate = 5,
    Goodbye = 6,
    Error = 8,
    Publish = 16,
    Published = 17,
    Subscribe = 32,
    Subscribed = 33,
    Unsubscribe = 34,
    Unsubscribed = 35,
    Event = 36,
    Call = 48,
    Cancel = 49,
    Result = 50,
    Register = 64,
    Registered = 65,
    Unregister = 66,
    Unregistered = 67,
    Invocation = 68,
    Interrupt = 69,
    Yield = 70,
    /// Provisional (acknowledged event delivery); code 337 pending ratification.
    EventReceived = 337,
}

impl MessageType {
    /// The type for a wire code, if the code is one the spec defines.
    pub fn from_code(code: u64) -> Option<Self> {
        use MessageType::*;
        Some(match code {
            1 => Hello,
            2 => Welcome,
            3 => Abort,
            4 => Challenge,
            5 => Authenticate,
            6 => Goodbye,
            8 => Error,
            16 => Publish,
            17 => Published,
            32 => Subscribe,
            33 => Subscribed,
            34 => Unsubscribe,
            35 => Unsubscribed,
            36 => Event,
            48 => Call,
            49 => Cancel,
            50 => Result,
            64 => Register,
            65 => Registered,
            66 => Unregister,
            67 => Unregistered,
            68 => Invocation,
            69 => Interrupt,
            70 => Yield,
            337 => EventReceived,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The spec's name of the message, for logs and errors.
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Hello => "HELLO",
            Welcome => "WELCOME",
            Abort => "ABORT",
            Challenge => "CHALLENGE",
            Authenticate => "AUTHENTICATE",
            Goodbye => "GOODBYE",
            Error => "ERROR",
            Publish => "PUBLISH",
            Published => "PUBLISHED",
            Subscribe => "SUBSCRIBE",
            Subscribed => "SUBSCRIBED",
            Unsubscribe => "UNSUBSCRIBE",
            Unsubscribed => "UNSUBSCRIBED",
            Event => "EVENT",
            Call => "CALL",
            Cancel => "CANCEL",
            Result => "RESULT",
            Register => "REGISTER",
            Registered => "REGISTERED",
            Unregister => "UNREGISTER",
            Unregistered => "UNREGISTERED",
            Invocation => "INVOCATION",
            Interrupt => "INTERRUPT",
            Yield => "YIELD",
            EventReceived => "EVENT_RECEIVED",
        }
    }
}

/// The application payload of a message: `Arguments|list` and `ArgumentsKw|dict`, kept as the bytes
/// the sender wrote.
///
/// In payload passthru mode (an `enc_algo` or `ppt_scheme` option) `args` holds the single opaque
/// payload element instead of a list, and `kwargs` is absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload {
    /// `Arguments|list` (or the opaque payload in passthru mode).
    pub args: Option<RawValue>,
    /// `ArgumentsKw|dict`.
    pub kwargs: Option<RawValue>,
}

impl Payload {
    /// No payload at all.
    pub const EMPTY: Payload = Payload {
        args: None,
        kwargs: None,
    };

    /// Whether the message carries neither args nor kwargs.
    pub fn is_empty(&self) -> bool {
        self.args.is_none() && self.kwargs.is_none()
    }
}

/// One WAMP message. Field names follow the spec; URIs are kept as strings here and validated by the
/// router under the match policy that applies.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // fields are the spec's message elements
pub enum Message {
    Hello {
        realm: String,
        details: Dict,
    },
    Welcome {
        session: Id,
        details: Dict,
    },
    Abort {
        details: Dict,
        reason: String,
    },
    Challenge {
        method: String,
        extra: Dict,
    },
    Authenticate {
        signature: String,
        extra: Dict,
    },
    Goodbye {
        details: Dict,
        reason: String,
    },
    Error {
        request_type: u64,
        request: Id,
        details: Dict,
        error: String,
        payload: Payload,
    },
    Publish {
        request: Id,
        options: Dict,
        topic: String,
        payload: Payload,
    },
    Published {
        request: Id,
        publication: Id,
    },
    Subscribe {
        request: Id,
        options: Dict,
        topic: String,
    },
    Subscribed {
        request: Id,
        subscription: Id,
    },
    Unsubscribe {
        request: Id,
        subscription: Id,
    },
    /// `details` is present only on a router-initiated UNSUBSCRIBED (subscription revocation).
    Unsubscribed {
        request: Id,
        details: Option<Dict>,
    },
    Event {
        subscription: Id,
        publication: Id,
        details: Dict,
        payload: Payload,
    },
    EventReceived {
        publication: Id,
        details: Option<Dict>,
        payload: Payload,
    },
    Call {
        request: Id,
        options: Dict,
        procedure: String,
        payload: Payload,
    },
    Cancel {
        request: Id,
        options: Dict,
    },
    Result {
        request: Id,
        details: Dict,
        payload: Payload,
    },
    Register {
        request: Id,
        options: Dict,
        procedure: String,
    },
    Registered {
        request: Id,
        registration: Id,
    },
    Unregister {
        request: Id,
        registration: Id,
    },
    /// `details` is present only on a router-initiated UNREGISTERED (registration revocation).
    Unregistered {
        request: Id,
        details: Option<Dict>,
    },
    Invocation {
        request: Id,
        registration: Id,
        details: Dict,
        payload: Payload,
    },
    Interrupt {
        request: Id,
        options: Dict,
    },
    Yield {
        request: Id,
        options: Dict,
        payload: Payload,
    },
}

impl Message {
    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        use MessageType as T;
        match self {
            Message::Hello { .. } => T::Hello,
            Message::Welcome { .. } => T::Welcome,
            Message::Abort { .. } => T::Abort,
            Message::Challenge { .. } => T::Challenge,
            Message::Authenticate { .. } => T::Authenticate,
            Message::Goodbye { .. } => T::Goodbye,
            Message::Error { .. } => T::Error,
            Message::Publish { .. } => T::Publish,
            Message::Published { .. } => T::Published,
            Message::Subscribe { .. } => T::Subscribe,
            Message::Subscribed { .. } => T::Subscribed,
            Message::Unsubscribe { .. } => T::Unsubscribe,
            Message::Unsubscribed { .. } => T::Unsubscribed,
            Message::Event { .. } => T::Event,
            Message::EventReceived { .. } => T::EventReceived,
            Message::Call { .. } => T::Call,
            Message::Cancel { .. } => T::Cancel,
            Message::Result { .. } => T::Result,
            Message::Register { .. } => T::Register,
            Message::Registered { .. } => T::Registered,
            Message::Unregister { .. } => T::Unregister,
            Message::Unregistered { .. } => T::Unregistered,
            Message::Invocation { .. } => T::Invocation,
            Message::Interrupt { .. } => T::Interrupt,
            Message::Yield { .. } => T::Yield,
        }
    }

    /// An ABORT with a human-readable `message` in its details, as the spec suggests.
    pub fn abort(reason: &str, message: impl Into<String>) -> Message {
        let mut details = Dict::new();
        details.insert("message".into(), message.into().into());
        Message::Abort {
            details,
            reason: reason.to_owned(),
        }
    }

    /// A GOODBYE with the given reason and empty details.
    pub fn goodbye(reason: &str) -> Message {
        Message::Goodbye {
            details: Dict::new(),
            reason: reason.to_owned(),
        }
    }

    /// An ERROR answering `request` of type `request_type`, with no payload.
    pub fn error(request_type: MessageType, request: Id, error: &str) -> Message {
        Message::Error {
            request_type: request_type.code(),
            request,
            details: Dict::new(),
            error: error.to_owned(),
            payload: Payload::EMPTY,
        }
    }
}
