//! The client side of authentication (spec, "Authentication"): which methods HELLO offers, what
//! HELLO.Details.authextra carries for them, and the AUTHENTICATE answer to each CHALLENGE.
//!
//! The answers are byte-compatible with Autobahn's and agree with the router's checks in
//! `switchboard-router`'s `auth::wampcra` and `auth::cryptosign`: WAMP-CRA signs the challenge
//! text with HMAC-SHA256 (salted secrets first go through PBKDF2 and base64, as Autobahn's
//! `derive_key`), Cryptosign signs the 32 challenge bytes with Ed25519 and sends the signature
//! followed by the challenge, in hex.

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{Ed25519KeyPair, KeyPair};
use ring::{hmac, pbkdf2};
use switchboard_proto::{Dict, Value};

use crate::Error;

/// Autobahn's defaults for a salted WAMP-CRA secret when the challenge leaves them out.
const DEFAULT_PBKDF2_ITERATIONS: u64 = 1000;
const DEFAULT_PBKDF2_KEYLEN: u64 = 32;

/// One way to authenticate. HELLO offers the methods in the order given; the router picks the
/// first it accepts.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `anonymous`: no credential.
    Anonymous,
    /// `ticket`: a shared secret (or a token) sent as is.
    Ticket(String),
    /// `wampcra`: challenge-response with a shared secret.
    WampCra {
        /// The secret (before salting, when the router salts it).
        secret: String,
    },
    /// `cryptosign`: Ed25519 challenge-response.
    Cryptosign {
        /// The Ed25519 private key as its 32-byte seed.
        secret_key: [u8; 32],
    },
    /// `tls`: the client certificate of the TLS connection (put it into the rustls
    /// `ClientConfig` of [`ConnectOptions`](crate::ConnectOptions)).
    Tls,
}

impl Credential {
    /// The method's name in HELLO.Details.authmethods.
    pub fn method(&self) -> &'static str {
        match self {
            Credential::Anonymous => "anonymous",
            Credential::Ticket(_) => "ticket",
            Credential::WampCra { .. } => "wampcra",
            Credential::Cryptosign { .. } => "cryptosign",
            Credential::Tls => "tls",
        }
    }
}

/// Secrets stay out of logs: only the method is shown.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential::{}(..)", self.method())
    }
}

/// HELLO.Details.authmethods: the credentials' methods in order, each once.
pub(crate) fn authmethods(credentials: &[Credential]) -> Vec<Value> {
    let mut methods: Vec<&str> = Vec::new();
    for c in credentials {
        if !methods.contains(&c.method()) {
            methods.push(c.method());
        }
    }
    methods.into_iter().map(Value::from).collect()
}

/// What the credentials add to HELLO.Details.authextra: the Cryptosign public key (spec,
/// "WAMP-Cryptosign": `authextra.pubkey`, hex).
pub(crate) fn authextra(credentials: &[Credential], authextra: &Dict) -> Result<Dict, Error> {
    let mut extra = authextra.clone();
    if let Some(seed) = credentials.iter().find_map(|c| match c {
        Credential::Cryptosign { secret_key } => Some(secret_key),
        _ => None,
    }) {
        let pair = key_pair(seed)?;
        extra.insert(
            "pubkey".into(),
            hex::encode(pair.public_key().as_ref()).into(),
        );
    }
    Ok(extra)
}

/// The AUTHENTICATE signature answering a CHALLENGE for `method` with `extra`.
pub(crate) fn answer(
    credentials: &[Credential],
    method: &str,
    extra: &Dict,
) -> Result<String, Error> {
    let credential = credentials
        .iter()
        .find(|c| c.method() == method)
        .ok_or_else(|| {
            Error::Authentication(format!(
                "the router asked for {method}, which this client did not offer"
            ))
        })?;
    match credential {
        Credential::Ticket(ticket) => Ok(ticket.clone()),
        Credential::WampCra { secret } => wampcra_signature(secret, extra),
        Credential::Cryptosign { secret_key } => cryptosign_signature(secret_key, extra),
        Credential::Anonymous | Credential::Tls => Err(Error::Authentication(format!(
            "the router sent a CHALLENGE for {method}, which has none"
        ))),
    }
}

/// WAMP-CRA (spec, "WAMP Challenge-Response Authentication"): base64(HMAC-SHA256(key,
/// challenge)), where the key is the secret, or for a salted secret the base64 text of
/// PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen).
fn wampcra_signature(secret: &str, extra: &Dict) -> Result<String, Error> {
    let challenge = extra
        .get("challenge")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Authentication("the WAMP-CRA challenge has no text".into()))?;
    let key = match extra.get("salt") {
        None | Some(Value::Null) => secret.as_bytes().to_vec(),
        Some(Value::Str(salt)) => {
            let number = |name: &str, default: u64| match extra.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_u64().ok_or_else(|| {
                    Error::Authentication(format!("the WAMP-CRA {name} is not a number"))
                }),
            };
            let iterations = number("iterations", DEFAULT_PBKDF2_ITERATIONS)?;
            let keylen = number("keylen", DEFAULT_PBKDF2_KEYLEN)?;
            derive_key(secret, salt, iterations, keylen)?
        }
        Some(_) => {
            return Err(Error::Authentication(
                "the WAMP-CRA salt is not a string".into(),
            ));
        }
    };
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        challenge.as_bytes(),
    );
    Ok(BASE64.encode(tag.as_ref()))
}

/// Autobahn's `derive_key`: the base64 text (standard alphabet, padded) of the PBKDF2 key, whose
/// ASCII bytes are the HMAC key.
fn derive_key(secret: &str, salt: &str, iterations: u64, keylen: u64) -> Result<Vec<u8>, Error> {
    let iterations = u32::try_from(iterations)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| Error::Authentication("unusable WAMP-CRA iterations".into()))?;
    // A generous bound: a router cannot make the client allocate without limit.
    let keylen = usize::try_from(keylen)
        .ok()
        .filter(|n| (1..=1024).contains(n))
        .ok_or_else(|| Error::Authentication("unusable WAMP-CRA keylen".into()))?;
    let mut derived = vec![0u8; keylen];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt.as_bytes(),
        secret.as_bytes(),
        &mut derived,
    );
    Ok(BASE64.encode(derived).into_bytes())
}

/// WAMP-Cryptosign (spec, "WAMP-Cryptosign"): hex(Ed25519 signature of the challenge bytes ++
/// the challenge bytes). Channel binding is not offered, so a challenge that asks for it cannot
/// be answered.
fn cryptosign_signature(seed: &[u8; 32], extra: &Dict) -> Result<String, Error> {
    if extra
        .get("channel_binding")
        .is_some_and(|v| *v != Value::Null)
    {
        return Err(Error::Authentication(
            "the Cryptosign challenge asks for channel binding, which this client does not offer"
                .into(),
        ));
    }
    let challenge = extra
        .get("challenge")
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .filter(|c| c.len() == 32)
        .ok_or_else(|| {
            Error::Authentication("the Cryptosign challenge is not 32 bytes in hex".into())
        })?;
    let signature = key_pair(seed)?.sign(&challenge);
    Ok(format!(
        "{}{}",
        hex::encode(signature.as_ref()),
        hex::encode(&challenge)
    ))
}

fn key_pair(seed: &[u8; 32]) -> Result<Ed25519KeyPair, Error> {
    Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|e| Error::InvalidOptions(format!("not an Ed25519 seed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The challenge text and the expected answers below are the known-answer values the
    /// router's WAMP-CRA tests check (computed with Autobahn's `derive_key` and `compute_wcs`).
    const CHALLENGE: &str = r#"{"authid":"peter","authrole":"user","authmethod":"wampcra","authprovider":"static","session":3251278072152162,"nonce":"abc","timestamp":"2026-11-25T02:47:37.395Z"}"#;

    fn cra_extra(salting: Option<(&str, u64, u64)>) -> Dict {
        let mut d = Dict::new();
        d.insert("challenge".into(), CHALLENGE.into());
        if let Some((salt, iterations, keylen)) = salting {
            d.insert("salt".into(), salt.into());
            d.insert("iterations".into(), iterations.into());
            d.insert("keylen".into(), keylen.into());
        }
        d
    }

    fn cra(secret: &str) -> Vec<Credential> {
        vec![Credential::WampCra {
            secret: secret.into(),
        }]
    }

    #[test]
    fn wampcra_answers_match_autobahn() {
        assert_eq!(
            answer(&cra("secret1"), "wampcra", &cra_extra(None)).unwrap(),
            "RTB7rDYDYUvbX7pkGS7aE8Icvs13AwKyrxt3P+JbxDw="
        );
        assert_eq!(
            answer(
                &cra("secret1"),
                "wampcra",
                &cra_extra(Some(("salt123", 100, 32)))
            )
            .unwrap(),
            "sFsjFmqsbHVAdkA0qIpbSA9HUhu1ay8UrbPgLItzi7I="
        );
        assert_eq!(
            answer(
                &cra("sécret✓"),
                "wampcra",
                &cra_extra(Some(("sälz", 1000, 16)))
            )
            .unwrap(),
            "FDMkowRkM8WEoRJM0GUTH2gTw42SxfyGWYItxHYiDUo="
        );
        assert_eq!(
            derive_key("secret1", "salt123", 100, 32).unwrap(),
            b"prq7+YkJ1/KlW1X0YczMH8E8z7oCXX/N/ixnRmOLK48="
        );
    }

    #[test]
    fn unusable_salting_is_refused() {
        for (iterations, keylen) in [(0, 32), (10, 0), (10, 1 << 20)] {
            assert!(matches!(
                answer(
                    &cra("s"),
                    "wampcra",
                    &cra_extra(Some(("salt", iterations, keylen)))
                ),
                Err(Error::Authentication(_))
            ));
        }
    }

    /// The spec's WAMP-Cryptosign test vectors (without channel binding).
    #[test]
    fn cryptosign_answers_match_the_spec_test_vectors() {
        let vectors = [
            (
                "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
                "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
                "d4209ad10d5aff6bfbc009d7e924795de138a63515efc7afc6b01b7fe5201372190374886a70207b042294af5bd64ce725cd8dceb344e6d11c09d1aaaf4d660fb26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
            ),
        ];
        for (seed, challenge, expected) in vectors {
            let secret_key: [u8; 32] = hex::decode(seed).unwrap().try_into().unwrap();
            let credentials = [Credential::Cryptosign { secret_key }];
            let mut extra = Dict::new();
            extra.insert("challenge".into(), challenge.into());
            assert_eq!(
                answer(&credentials, "cryptosign", &extra).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn hello_offers_each_method_once_in_order_with_the_public_key() {
        let secret_key = [7u8; 32];
        let credentials = [
            Credential::Cryptosign { secret_key },
            Credential::Ticket("t".into()),
            Credential::Ticket("u".into()),
            Credential::Anonymous,
        ];
        assert_eq!(
            authmethods(&credentials),
            vec![
                Value::from("cryptosign"),
                "ticket".into(),
                "anonymous".into()
            ]
        );
        let extra = authextra(&credentials, &Dict::new()).unwrap();
        let pubkey = extra.get("pubkey").and_then(Value::as_str).unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&secret_key).unwrap();
        assert_eq!(pubkey, hex::encode(pair.public_key().as_ref()));
    }

    #[test]
    fn a_challenge_for_a_method_not_offered_is_refused() {
        let err = answer(
            &[Credential::Ticket("t".into())],
            "wampcra",
            &cra_extra(None),
        );
        assert!(matches!(err, Err(Error::Authentication(_))));
    }

    #[test]
    fn secrets_are_not_printed() {
        let shown = format!("{:?}", Credential::Ticket("hunter2".into()));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
