//! WAMP-SCRAM (spec, "WAMP-SCRAM"): the server side of the exchange with a stored credential.
//! INTERFACE STUB: bodies are being written.

use switchboard_proto::Dict;

use super::ChannelBinding;

/// The key derivation function of a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kdf {
    /// `argon2id-13` with its memory cost in KiB.
    Argon2id13 {
        /// Memory cost (KiB).
        memory: u32,
    },
    /// `pbkdf2` (PBKDF2-HMAC-SHA256).
    Pbkdf2,
}

/// A stored SCRAM credential (Crossbar's principal: kdf, iterations, memory, salt, stored-key,
/// server-key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The KDF.
    pub kdf: Kdf,
    /// KDF iterations (time cost for Argon2id).
    pub iterations: u32,
    /// The salt, exactly as configured; it goes to the client as is.
    pub salt: String,
    /// StoredKey = SHA-256(ClientKey).
    pub stored_key: Vec<u8>,
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// One exchange in progress: made when HELLO arrives, finished by AUTHENTICATE.
#[derive(Debug)]
pub struct ScramExchange {}

impl ScramExchange {
    /// Starts an exchange for `authid` whose HELLO carried `client_nonce` (authextra `nonce`). Returns
    /// the exchange and the CHALLENGE extra (nonce, kdf, salt, iterations, memory, channel_binding).
    pub fn start(
        authid: &str,
        client_nonce: &str,
        credential: ScramCredential,
        channel_binding: Option<ChannelBinding>,
    ) -> (Self, Dict) {
        let _ = (authid, client_nonce, credential, channel_binding);
        unimplemented!()
    }

    /// Checks AUTHENTICATE (its signature is the base64 ClientProof; `extra` may carry the channel
    /// binding data). On success returns the base64 ServerSignature for WELCOME's authextra
    /// `scram_server_signature`.
    pub fn finish(&self, signature: &str, extra: &Dict) -> Result<String, String> {
        let _ = (signature, extra);
        unimplemented!()
    }
}
