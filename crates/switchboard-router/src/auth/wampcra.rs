//! WAMP-CRA (spec, "WAMP Challenge-Response Authentication"): the challenge text, salted keys and
//! signature checks. INTERFACE STUB: bodies are being written.

/// PBKDF2 parameters of a salted WAMP-CRA secret (Crossbar's `salt`, `iterations`, `keylen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salting {
    /// The salt, used as its UTF-8 bytes.
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// Derived key length in bytes.
    pub keylen: usize,
}

/// The challenge text: a JSON object as Crossbar writes it (authid, authrole, authmethod, authprovider,
/// session, a fresh random nonce, timestamp).
pub fn challenge_text(authid: &str, authrole: &str, authprovider: &str, session: u64) -> String {
    let _ = (authid, authrole, authprovider, session);
    unimplemented!()
}

/// The key a client signs with: the secret's bytes, or for a salted secret the base64 text of
/// PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen), as Autobahn's `derive_key`.
pub fn signing_key(secret: &str, salting: Option<&Salting>) -> Vec<u8> {
    let _ = (secret, salting);
    unimplemented!()
}

/// base64(HMAC-SHA256(key, challenge)), as Autobahn's `compute_wcs`.
pub fn sign(key: &[u8], challenge: &str) -> String {
    let _ = (key, challenge);
    unimplemented!()
}

/// Whether `signature` is the right one, compared in constant time.
pub fn verify(key: &[u8], challenge: &str, signature: &str) -> bool {
    let _ = (key, challenge, signature);
    unimplemented!()
}
