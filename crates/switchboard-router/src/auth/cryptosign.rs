//! WAMP-Cryptosign (spec, "WAMP-Cryptosign"): Ed25519 challenge-response.
//! INTERFACE STUB: bodies are being written.

use super::ChannelBinding;

/// A public key from its 64 hex digits.
pub fn parse_public_key(hex_key: &str) -> Option<[u8; 32]> {
    let _ = hex_key;
    unimplemented!()
}

/// 32 fresh random bytes to sign.
pub fn new_challenge() -> [u8; 32] {
    unimplemented!()
}

/// Whether `signature_hex` (AUTHENTICATE.Signature) is `public_key`'s signature of the challenge (XORed
/// with the channel binding data when one is in use).
pub fn verify(
    public_key: &[u8; 32],
    challenge: &[u8; 32],
    channel_binding: Option<&ChannelBinding>,
    signature_hex: &str,
) -> bool {
    let _ = (public_key, challenge, channel_binding, signature_hex);
    unimplemented!()
}
