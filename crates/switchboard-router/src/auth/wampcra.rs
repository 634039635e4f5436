//! WAMP-CRA (spec, "WAMP Challenge-Response Authentication"): the challenge text, salted keys and
//! signature checks.
//!
//! Everything here is byte-compatible with Autobahn's `AuthWampCra` client (`derive_key`,
//! `compute_wcs`) and with the challenge text Crossbar.io sends. `WampCra` is the method: it
//! resolves HELLO's principal, derives its key and writes the challenge text; its `Pending`
//! checks the signature.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hmac, pbkdf2};
use serde::Serialize;
use subtle::ConstantTimeEq;
use switchboard_proto::{Dict, errors};

use super::dynamic::Answer;
use super::principals::{Found, Principal, Principals};
use super::{Authenticated, Context, Denied, denied};
use crate::config::{AuthKind, MethodAuthConfig, WampCraPrincipal};

/// The WAMP-CRA method of an endpoint.
#[derive(Debug)]
pub(super) struct WampCra {
    principals: Principals<WampCraPrincipal>,
    /// The keys of salted static principals, derived once at load (PBKDF2 is slow on purpose;
    /// doing it per HELLO would hand clients a cheap way to burn CPU).
    derived_keys: HashMap<String, Vec<u8>>,
}

impl WampCra {
    /// The `wampcra` section.
    pub(super) fn from_config(cfg: &MethodAuthConfig<WampCraPrincipal>) -> Self {
        let derived_keys = match cfg.kind {
            AuthKind::Static => cfg
                .principals
                .iter()
                .filter_map(|(authid, p)| {
                    let salting = salting(p)?;
                    Some((authid.clone(), signing_key(&p.secret, Some(&salting))))
                })
                .collect(),
            _ => HashMap::new(),
        };
        Self {
            principals: Principals::from_config(cfg),
            derived_keys,
        }
    }

    /// Resolves HELLO's principal; the CHALLENGE extra (the challenge text, and the PBKDF2
    /// parameters of a salted secret) and the exchange waiting for the signature.
    pub(super) async fn start(&self, ctx: &Context<'_>) -> Result<(Dict, Pending), Denied> {
        let authid = ctx.required_authid("wampcra")?;
        let found = self
            .principals
            .resolve(ctx, |map| ctx.by_authid(map, "wampcra"))
            .await?;
        let principal = &found.principal;
        let salting = salting(principal);
        let key = match self.derived_keys.get(authid) {
            // Static salted keys are derived once, when the config is loaded.
            Some(key) if found.is_static() => key.clone(),
            _ if salting.is_some() => {
                // PBKDF2 takes as long as the authenticator asked for: not on a runtime thread.
                let (secret, salting) = (principal.secret.clone(), salting.clone());
                tokio::task::spawn_blocking(move || signing_key(&secret, salting.as_ref()))
                    .await
                    .map_err(|_| {
                        Denied::new(errors::AUTHENTICATION_FAILED, "deriving the key failed")
                    })?
            }
            _ => signing_key(&principal.secret, None),
        };
        let text = challenge_text(authid, &principal.role, found.provider, ctx.session.0);
        let mut extra = Dict::new();
        extra.insert("challenge".into(), text.as_str().into());
        if let Some(s) = &salting {
            extra.insert("salt".into(), s.salt.as_str().into());
            extra.insert("iterations".into(), u64::from(s.iterations).into());
            extra.insert("keylen".into(), (s.keylen as u64).into());
        }
        let pending = Pending {
            key,
            challenge: text,
            found: found.without_principal(),
        };
        Ok((extra, pending))
    }
}

/// A WAMP-CRA exchange waiting for AUTHENTICATE. (No `Debug`: it holds the key.)
pub(super) struct Pending {
    key: Vec<u8>,
    challenge: String,
    found: Found<()>,
}

impl Pending {
    /// Checks AUTHENTICATE's signature of the challenge text.
    pub(super) fn authenticate(self, signature: &str) -> Result<Authenticated, Denied> {
        if !verify(&self.key, &self.challenge, signature) {
            return Err(denied("invalid signature"));
        }
        self.found.into_identity()
    }
}

impl Principal for WampCraPrincipal {
    const METHOD: &'static str = "wampcra";

    fn role(&self) -> &str {
        &self.role
    }

    fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// `secret` and `role`, and for a salted secret `salt`, `iterations` and `keylen`.
    fn from_answer(answer: &Answer) -> Result<Self, Denied> {
        let number = |name: &str| answer.field_u64(name);
        Ok(WampCraPrincipal {
            secret: answer.required_str("secret")?,
            role: answer.required_str("role")?,
            salt: answer.field_str("salt").map(str::to_owned),
            iterations: number("iterations").and_then(|n| u32::try_from(n).ok()),
            keylen: number("keylen").and_then(|n| usize::try_from(n).ok()),
            realm: answer.field_str("realm").map(str::to_owned),
        })
    }
}

/// The PBKDF2 parameters of a salted WAMP-CRA principal (Autobahn's defaults where absent).
fn salting(p: &WampCraPrincipal) -> Option<Salting> {
    p.salt.as_ref().map(|salt| Salting {
        salt: salt.clone(),
        iterations: p.iterations.unwrap_or(1000),
        keylen: p.keylen.unwrap_or(32),
    })
}

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

/// The challenge object. A struct rather than a `serde_json::Map` so the keys come out in Crossbar's
/// order (the client signs the text as received, so the order is cosmetic, but it keeps traces
/// comparable).
#[derive(Serialize)]
struct Challenge<'a> {
    authid: &'a str,
    authrole: &'a str,
    authmethod: &'static str,
    authprovider: &'a str,
    session: u64,
    nonce: String,
    timestamp: String,
}

/// The challenge text: a JSON object as Crossbar writes it (authid, authrole, authmethod, authprovider,
/// session, a fresh random nonce, timestamp).
pub fn challenge_text(authid: &str, authrole: &str, authprovider: &str, session: u64) -> String {
    // 48 random bytes give a 64 character nonce, the length of Crossbar's `util.newid(64)`.
    let nonce = BASE64.encode(random_bytes::<48>());
    // A clock before 1970 is a broken host, not a reason to refuse logins: the timestamp is
    // informational (nothing checks it), so the epoch stands in.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let challenge = Challenge {
        authid,
        authrole,
        authmethod: "wampcra",
        authprovider,
        session,
        nonce,
        timestamp: iso8601_utc(since_epoch),
    };
    // Serializing a struct of strings and an integer cannot fail; the fallback only exists so that
    // this function has no panic path.
    serde_json::to_string(&challenge).unwrap_or_default()
}

/// The key a client signs with: the secret's bytes, or for a salted secret the base64 text of
/// PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen), as Autobahn's `derive_key`.
pub fn signing_key(secret: &str, salting: Option<&Salting>) -> Vec<u8> {
    let Some(salting) = salting else {
        return secret.as_bytes().to_vec();
    };
    let Some(iterations) = NonZeroU32::new(salting.iterations) else {
        return unusable_key();
    };
    if salting.keylen == 0 {
        // An empty derived key would be base64 "", i.e. HMAC with an empty key, which anybody can
        // compute: fail closed instead.
        return unusable_key();
    }
    let mut derived = vec![0u8; salting.keylen];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salting.salt.as_bytes(),
        secret.as_bytes(),
        &mut derived,
    );
    // Autobahn: `binascii.b2a_base64(key).strip()`, standard alphabet with padding, no newline; the
    // client then uses that text's ASCII bytes as the HMAC key.
    BASE64.encode(derived).into_bytes()
}

/// base64(HMAC-SHA256(key, challenge)), as Autobahn's `compute_wcs`.
pub fn sign(key: &[u8], challenge: &str) -> String {
    BASE64.encode(hmac_sha256(key, challenge))
}

/// Whether `signature` is the right one, compared in constant time.
pub fn verify(key: &[u8], challenge: &str, signature: &str) -> bool {
    let Ok(given) = BASE64.decode(signature) else {
        return false;
    };
    let expected = hmac_sha256(key, challenge);
    // `ct_eq` on slices of different lengths is false without looking at the contents; the length
    // of an HMAC-SHA256 is public anyway.
    expected.as_ref().ct_eq(&given).into()
}

fn hmac_sha256(key: &[u8], message: &str) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, message.as_bytes())
}

/// For Salting parameters no client can derive a key from (0 iterations or a 0-byte key): a random key
/// nobody knows, so that such a configuration rejects every login instead of accepting a guessable
/// key. Configuration validation should catch these before they get here.
fn unusable_key() -> Vec<u8> {
    BASE64.encode(random_bytes::<32>()).into_bytes()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // ring's SystemRandom only fails where the OS has no random source (getrandom missing);
        // carrying on with predictable nonces would make challenges replayable, so stop here.
        panic!("the operating system's random number generator is unavailable");
    }
    bytes
}

/// `2026-11-25T02:47:37.395Z`: UTC, milliseconds, as Autobahn's `utcnow()` and Crossbar write it.
fn iso8601_utc(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// restricted to non-negative days, which is all `SystemTime` since the epoch gives us).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of the (March-based) year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year, [0, 365]
    let mp = (5 * doy + 2) / 153; // March-based month, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use switchboard_proto::Value;

    use super::*;
    use crate::auth::testing::{Hello, SESSION, endpoint, expect_challenge, expect_denied};

    /// A challenge as Crossbar sends it; the expected values below come from Autobahn 26.10.2
    /// (`derive_key`, `compute_wcs`) and were cross-checked with Python's hashlib/hmac.
    const CHALLENGE: &str = r#"{"authid":"peter","authrole":"user","authmethod":"wampcra","authprovider":"static","session":3251278072152162,"nonce":"abc","timestamp":"2026-11-25T02:47:37.395Z"}"#;

    #[test]
    fn unsalted_matches_autobahn() {
        let key = signing_key("secret1", None);
        assert_eq!(key, b"secret1");
        let sig = sign(&key, CHALLENGE);
        assert_eq!(sig, "RTB7rDYDYUvbX7pkGS7aE8Icvs13AwKyrxt3P+JbxDw=");
        assert!(verify(&key, CHALLENGE, &sig));
    }

    #[test]
    fn salted_matches_autobahn() {
        let salting = Salting {
            salt: "salt123".into(),
            iterations: 100,
            keylen: 32,
        };
        let key = signing_key("secret1", Some(&salting));
        assert_eq!(key, b"prq7+YkJ1/KlW1X0YczMH8E8z7oCXX/N/ixnRmOLK48=");
        let sig = sign(&key, CHALLENGE);
        assert_eq!(sig, "sFsjFmqsbHVAdkA0qIpbSA9HUhu1ay8UrbPgLItzi7I=");
        assert!(verify(&key, CHALLENGE, &sig));
    }

    #[test]
    fn salted_non_ascii_and_short_key_match_autobahn() {
        let salting = Salting {
            salt: "sälz".into(),
            iterations: 1000,
            keylen: 16,
        };
        let key = signing_key("sécret✓", Some(&salting));
        assert_eq!(key, b"Wtic0fLuFl90Mar7FoVtpw==");
        assert!(verify(
            &key,
            CHALLENGE,
            "FDMkowRkM8WEoRJM0GUTH2gTw42SxfyGWYItxHYiDUo="
        ));
    }

    #[test]
    fn wrong_signatures_fail() {
        let key = signing_key("secret1", None);
        // Signed with another secret.
        assert!(!verify(&key, CHALLENGE, &sign(b"secret2", CHALLENGE)));
        // Signed over another challenge.
        assert!(!verify(&key, CHALLENGE, &sign(&key, "{}")));
        // The unsalted signature does not pass for the salted key.
        let salting = Salting {
            salt: "salt123".into(),
            iterations: 100,
            keylen: 32,
        };
        let salted = signing_key("secret1", Some(&salting));
        assert!(!verify(
            &salted,
            CHALLENGE,
            "RTB7rDYDYUvbX7pkGS7aE8Icvs13AwKyrxt3P+JbxDw="
        ));
    }

    #[test]
    fn garbage_fails() {
        let key = signing_key("secret1", None);
        for sig in [
            "",
            "not base64 !!",
            "RTB7rDYDYUvbX7pkGS7aE8Icvs13AwKyrxt3P+JbxDw", // padding missing
            "RTB7rDYDYUvbX7pkGS7aE8Icvs13AwKyrxt3P+Jb",    // truncated
            "RTB7rDYDYUvbX7pkGS7aE8Icvs13AwKyrxt3P+JbxDwA=", // one byte too many
            "\u{0}RTB7",
        ] {
            assert!(!verify(&key, CHALLENGE, sig), "{sig:?}");
        }
    }

    #[test]
    fn degenerate_salting_fails_closed() {
        for salting in [
            Salting {
                salt: "s".into(),
                iterations: 0,
                keylen: 32,
            },
            Salting {
                salt: "s".into(),
                iterations: 10,
                keylen: 0,
            },
        ] {
            let key = signing_key("secret1", Some(&salting));
            assert!(!key.is_empty());
            assert!(!verify(&key, CHALLENGE, &sign(b"", CHALLENGE)));
            assert!(!verify(&key, CHALLENGE, &sign(b"secret1", CHALLENGE)));
        }
    }

    #[test]
    fn challenge_text_is_crossbar_shaped_json() {
        let text = challenge_text("peter \"q\"", "user", "static", 42);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = value.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut expected = vec![
            "authid",
            "authmethod",
            "authprovider",
            "authrole",
            "nonce",
            "session",
            "timestamp",
        ];
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(obj["authid"], "peter \"q\"");
        assert_eq!(obj["authrole"], "user");
        assert_eq!(obj["authmethod"], "wampcra");
        assert_eq!(obj["authprovider"], "static");
        assert_eq!(obj["session"], 42);
        let nonce = obj["nonce"].as_str().unwrap();
        assert_eq!(BASE64.decode(nonce).unwrap().len(), 48);
        let ts = obj["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-25T02:47:37.395Z".len());
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.');
        assert!(ts > "2025-");
        // Fresh nonce every time.
        assert_ne!(text, challenge_text("peter \"q\"", "user", "static", 42));
        // Autobahn signs the text as received; the round trip works.
        let key = signing_key("pw", None);
        assert!(verify(&key, &text, &sign(&key, &text)));
    }

    #[test]
    fn timestamps() {
        let at = |secs: u64, millis: u64| {
            iso8601_utc(Duration::from_secs(secs) + Duration::from_millis(millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        // Values checked with Python's datetime.utcfromtimestamp.
        assert_eq!(at(1_795_574_857, 395), "2026-11-25T02:47:37.395Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
    }

    const PRINCIPALS: &str = r#"{"wampcra": {"type": "static", "principals": {
        "peter": {"secret": "secret1", "role": "user"},
        "salty": {"secret": "secret2", "role": "user", "salt": "salt123", "iterations": 100,
                  "keylen": 16, "realm": "realm2"},
        "plain-salt": {"secret": "secret3", "role": "user", "salt": "s"}}}}"#;

    /// The client's side, from the CHALLENGE extra, as Autobahn's `derive_key` and `compute_wcs`
    /// do it: the key is the secret, or for a salted one the base64 text of PBKDF2-HMAC-SHA256;
    /// the signature is base64(HMAC-SHA256(key, challenge)).
    fn autobahn_signature(secret: &str, extra: &Dict) -> String {
        let challenge = extra["challenge"].as_str().unwrap();
        let key = match extra.get("salt") {
            None => secret.as_bytes().to_vec(),
            Some(salt) => {
                let iterations = u32::try_from(extra["iterations"].as_u64().unwrap()).unwrap();
                let keylen = usize::try_from(extra["keylen"].as_u64().unwrap()).unwrap();
                let mut derived = vec![0u8; keylen];
                pbkdf2::derive(
                    pbkdf2::PBKDF2_HMAC_SHA256,
                    NonZeroU32::new(iterations).unwrap(),
                    salt.as_str().unwrap().as_bytes(),
                    secret.as_bytes(),
                    &mut derived,
                );
                BASE64.encode(derived).into_bytes()
            }
        };
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            challenge.as_bytes(),
        );
        BASE64.encode(tag)
    }

    #[tokio::test]
    async fn an_unsalted_secret_signs_crossbars_challenge() {
        let auth = endpoint(PRINCIPALS);
        let hello = Hello::new(&["wampcra"]).authid("peter");
        let (pending, extra) = expect_challenge(&auth, hello, "wampcra").await;
        let keys: Vec<&str> = extra.keys().map(String::as_str).collect();
        assert_eq!(keys, ["challenge"]);
        let text: serde_json::Value =
            serde_json::from_str(extra["challenge"].as_str().unwrap()).unwrap();
        assert_eq!(text["authid"], "peter");
        assert_eq!(text["authrole"], "user");
        assert_eq!(text["authprovider"], "static");
        assert_eq!(text["session"], SESSION.0);
        let signature = autobahn_signature("secret1", &extra);
        let who = pending
            .authenticate(&signature, &Dict::new())
            .await
            .unwrap();
        assert_eq!(
            (who.authid.as_str(), who.authrole.as_str()),
            ("peter", "user")
        );
        assert_eq!((who.authmethod, who.authprovider), ("wampcra", "static"));
        assert_eq!(who.realm, None);
    }

    #[tokio::test]
    async fn a_salted_secret_sends_its_pbkdf2_parameters() {
        let auth = endpoint(PRINCIPALS);
        let hello = Hello::new(&["wampcra"]).authid("salty");
        let (pending, extra) = expect_challenge(&auth, hello, "wampcra").await;
        assert_eq!(extra["salt"], Value::from("salt123"));
        assert_eq!(extra["iterations"], Value::UInt(100));
        assert_eq!(extra["keylen"], Value::UInt(16));
        let signature = autobahn_signature("secret2", &extra);
        let who = pending
            .authenticate(&signature, &Dict::new())
            .await
            .unwrap();
        assert_eq!(who.authid, "salty");
        assert_eq!(who.realm.as_deref(), Some("realm2"));
        // Autobahn's defaults when the config gives only a salt.
        let hello = Hello::new(&["wampcra"]).authid("plain-salt");
        let (pending, extra) = expect_challenge(&auth, hello, "wampcra").await;
        assert_eq!(extra["iterations"], Value::UInt(1000));
        assert_eq!(extra["keylen"], Value::UInt(32));
        let signature = autobahn_signature("secret3", &extra);
        assert!(pending.authenticate(&signature, &Dict::new()).await.is_ok());
    }

    #[tokio::test]
    async fn a_signature_with_another_secret_is_denied() {
        let auth = endpoint(PRINCIPALS);
        for (authid, wrong) in [("peter", "secret2"), ("salty", "secret1")] {
            let hello = Hello::new(&["wampcra"]).authid(authid);
            let (pending, extra) = expect_challenge(&auth, hello, "wampcra").await;
            let signature = autobahn_signature(wrong, &extra);
            let denied = pending
                .authenticate(&signature, &Dict::new())
                .await
                .unwrap_err();
            assert_eq!(denied.reason, errors::AUTHENTICATION_DENIED);
            assert_eq!(denied.message, "invalid signature");
        }
    }

    #[tokio::test]
    async fn an_unknown_or_missing_authid_gets_no_challenge() {
        let auth = endpoint(PRINCIPALS);
        let denied = expect_denied(&auth, Hello::new(&["wampcra"]).authid("paul")).await;
        assert_eq!(denied.reason, errors::NO_SUCH_PRINCIPAL);
        assert_eq!(denied.message, r#"no wampcra principal "paul""#);
        let denied = expect_denied(&auth, Hello::new(&["wampcra"])).await;
        assert_eq!(denied.reason, errors::NO_SUCH_PRINCIPAL);
        assert_eq!(
            denied.message,
            "wampcra authentication needs HELLO.Details.authid"
        );
    }
}
