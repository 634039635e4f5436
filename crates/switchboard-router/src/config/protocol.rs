//! What a WAMP endpoint speaks: the settings of a WebSocket or RawSocket endpoint, wherever it is
//! configured, and the serializers it offers.

use serde::Deserialize;
use switchboard_proto::Serializer;

use super::{AuthConfig, CookieConfig};

/// Settings of a WebSocket endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSocketOptions {
    /// Crossbar's per-endpoint debug logging: accepted with a warning (use `--loglevel debug`).
    #[serde(default)]
    pub debug: Option<bool>,
    /// Public URL (informational).
    #[serde(default)]
    pub url: Option<String>,
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Protocol options.
    #[serde(default)]
    pub options: WebSocketProtocolOptions,
    /// Authentication methods.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Cookie tracking.
    #[serde(default)]
    pub cookie: Option<CookieConfig>,
}

/// WebSocket protocol options (Crossbar's names; times in milliseconds).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSocketProtocolOptions {
    /// Largest accepted message, in bytes.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// permessage-deflate; accepted when the client offers it unless `compression` is present
    /// without `deflate`.
    #[serde(default)]
    pub compression: Option<CompressionConfig>,
    /// Refuse clients that offer no WebSocket subprotocol (Crossbar's key, true there by default).
    /// Absent or false: such a client speaks JSON, as plain WebSocket tools expect.
    #[serde(default)]
    pub require_websocket_subprotocol: Option<bool>,
    /// Milliseconds allowed for the opening handshake (the seed's `opening_timeout`).
    #[serde(default)]
    pub open_handshake_timeout: Option<u64>,
    /// Milliseconds between router-sent pings; 0 or absent disables them.
    #[serde(default)]
    pub auto_ping_interval: Option<u64>,
    /// Milliseconds to wait for the pong before dropping the connection.
    #[serde(default)]
    pub auto_ping_timeout: Option<u64>,
    /// Bytes of payload in each ping (4 to 125).
    #[serde(default)]
    pub auto_ping_size: Option<usize>,
    /// Whether the seed's `enable_compression` is on: an alias of `compression.deflate`.
    #[serde(default)]
    pub enable_compression: Option<bool>,
    /// Largest accepted frame, in bytes (a message may span several frames).
    #[serde(default)]
    pub max_frame_size: Option<usize>,
    /// Split outgoing messages into frames of at most this many bytes.
    #[serde(default)]
    pub auto_fragment_size: Option<usize>,
    /// Browser origins allowed to open the WebSocket (`*` wildcards); all when absent.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    /// Whether the origin `null` (file:// pages, sandboxed frames) is allowed.
    #[serde(default)]
    pub allow_null_origin: Option<bool>,
    /// Whether a plain HTTP GET on the WebSocket path gets a status page (default) or 404.
    #[serde(default)]
    pub enable_webstatus: Option<bool>,
    /// Drop the TCP connection instead of a closing handshake on failures: accepted; Switchboard
    /// always attempts the closing handshake, bounded by `close_handshake_timeout`.
    #[serde(default)]
    pub fail_by_drop: Option<bool>,
    /// Milliseconds allowed for a session's last words and the closing handshake.
    #[serde(default)]
    pub close_handshake_timeout: Option<u64>,
}

impl WebSocketProtocolOptions {
    /// Whether permessage-deflate is accepted.
    pub fn compression_enabled(&self) -> bool {
        match (&self.compression, self.enable_compression) {
            (_, Some(false)) => false,
            (Some(c), _) => c.deflate.is_some(),
            (None, _) => true,
        }
    }
}

/// `compression` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// permessage-deflate; present means enabled.
    #[serde(default)]
    pub deflate: Option<DeflateConfig>,
}

/// permessage-deflate parameters (RFC 7692), Crossbar's names.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeflateConfig {
    /// Ask the client not to keep its compression context between messages.
    #[serde(default)]
    pub request_no_context_takeover: bool,
    /// The window the client should compress with (9..15).
    #[serde(default)]
    pub request_max_window_bits: Option<u8>,
    /// Do not keep our compression context between messages.
    #[serde(default)]
    pub no_context_takeover: bool,
    /// Our compression window (9..15).
    #[serde(default)]
    pub max_window_bits: Option<u8>,
    /// zlib memory level (1..9); accepted for compatibility, zlib's default is used.
    #[serde(default)]
    pub memory_level: Option<u8>,
}

/// Settings of a RawSocket endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSocketOptions {
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Largest accepted message, in bytes (rounded down to a power of two by the handshake); the
    /// form Crossbar's documentation shows.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Protocol options; `options.max_message_size` is the form Crossbar itself reads.
    #[serde(default)]
    pub options: RawSocketProtocolOptions,
    /// Authentication methods.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl RawSocketOptions {
    /// The message size limit, from either place Crossbar users put it.
    pub fn max_message_bytes(&self) -> Option<usize> {
        self.max_message_size.or(self.options.max_message_size)
    }
}

/// RawSocket `options`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSocketProtocolOptions {
    /// Largest accepted message, in bytes.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Milliseconds between router-sent PINGs; 0 or absent disables them (Switchboard's key,
    /// named as WebSocket's).
    #[serde(default)]
    pub auto_ping_interval: Option<u64>,
    /// Milliseconds to wait for the PONG before dropping the connection.
    #[serde(default)]
    pub auto_ping_timeout: Option<u64>,
    /// Bytes of payload in each PING.
    #[serde(default)]
    pub auto_ping_size: Option<usize>,
}

/// A serializer name in a config.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum SerializerName {
    Json,
    Msgpack,
    Cbor,
}

impl From<SerializerName> for Serializer {
    fn from(s: SerializerName) -> Self {
        match s {
            SerializerName::Json => Serializer::Json,
            SerializerName::Msgpack => Serializer::MsgPack,
            SerializerName::Cbor => Serializer::Cbor,
        }
    }
}

/// Converts an optional serializer list; absent means all.
pub fn serializers(list: &Option<Vec<SerializerName>>) -> Vec<Serializer> {
    match list {
        Some(l) => l.iter().map(|s| Serializer::from(*s)).collect(),
        None => Serializer::ALL.to_vec(),
    }
}
