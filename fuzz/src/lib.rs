//! What the fuzz targets share: decoding a message the way the router does, and a runtime for the
//! targets that drive a transport.

use bytes::Bytes;
use switchboard_proto::{Serializer, codec};

/// Decodes `data` as one message in `serializer`; what decodes must encode again, and what that
/// encodes must decode again (the router re-encodes what it routes). Panics only on a bug.
pub fn decode_and_reencode(serializer: Serializer, data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(msg) = codec::decode(serializer, &bytes) else {
        return;
    };
    for target in Serializer::ALL {
        // A payload may not convert to another serializer (a CBOR tag has no JSON form); that is
        // an error, never a panic.
        if let Ok(encoded) = codec::encode(target, &msg) {
            codec::decode(target, &encoded).unwrap_or_else(|e| {
                panic!("{serializer:?} -> {target:?}: our own encoding does not decode: {e}")
            });
        }
    }
}

/// A single-threaded runtime for one fuzz input.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}
