//! Sans-I/O WAMP v2: the message set of the Basic and Advanced Profiles, ids, URIs, the dynamic
//! [`Value`] type and the three serializers (JSON, MessagePack, CBOR).
//!
//! Nothing here does I/O or knows about tokio: transports hand this crate whole messages as bytes
//! ([`codec::decode`]) and get bytes back ([`codec::encode`]). Application payloads (`Arguments`,
//! `ArgumentsKw`) are never materialised on the way through: they stay as the exact bytes the sender
//! wrote ([`RawValue`]) and are only transcoded when a receiver speaks another serializer.

pub mod codec;
pub mod errors;
pub mod ids;
pub mod message;
pub mod options;
pub mod uri;
pub mod value;

pub use codec::{DecodeError, EncodeError, RawValue, Serializer};
pub use ids::{Id, MAX_ID};
pub use message::{Message, MessageType, Payload};
pub use uri::{Uri, UriError, UriMatch};
pub use value::{Dict, Value};
