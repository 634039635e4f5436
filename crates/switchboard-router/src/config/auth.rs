//! Authentication sections of an endpoint (`auth`: anonymous, ticket, WAMP-CRA, WAMP-SCRAM,
//! cryptosign, TLS client certificates, cookies) with their principals, cookie tracking and a
//! transport's failure rate limit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Authentication methods of a WebSocket or RawSocket endpoint, as Crossbar's `auth`. Without an
/// `auth` section an endpoint admits anonymous sessions with role `anonymous`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Anonymous authentication.
    #[serde(default)]
    pub anonymous: Option<AnonymousAuthConfig>,
    /// Ticket (a shared secret or a JWT sent in the clear, over TLS).
    #[serde(default)]
    pub ticket: Option<TicketAuthConfig>,
    /// WAMP-CRA challenge-response.
    #[serde(default)]
    pub wampcra: Option<MethodAuthConfig<WampCraPrincipal>>,
    /// WAMP-SCRAM.
    #[serde(default)]
    pub scram: Option<MethodAuthConfig<ScramPrincipal>>,
    /// WAMP-Cryptosign (Ed25519 keys).
    #[serde(default)]
    pub cryptosign: Option<MethodAuthConfig<CryptosignPrincipal>>,
    /// TLS client certificates.
    #[serde(default)]
    pub tls: Option<MethodAuthConfig<TlsPrincipal>>,
    /// Cookies of earlier authenticated WebSocket connections (the endpoint's `cookie` section says
    /// how cookies are kept).
    #[serde(default)]
    pub cookie: Option<CookieAuthConfig>,
}

/// `auth.anonymous`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousAuthConfig {
    /// Only `static` is supported.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// The role anonymous sessions get.
    #[serde(default)]
    pub role: Option<String>,
}

/// How principals are found.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// In the config (`principals`, or `users` as Crossbar's WAMP-CRA section calls them).
    Static,
    /// By calling an `authenticator` procedure.
    Dynamic,
    /// The ticket is a JWT of an identity provider (ticket only).
    Jwt,
}

impl AuthKind {
    /// The name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Static => "static",
            AuthKind::Dynamic => "dynamic",
            AuthKind::Jwt => "jwt",
        }
    }
}

/// A method's section: static principals by authid, or a dynamic authenticator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
pub struct MethodAuthConfig<P> {
    /// `static` or `dynamic`.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// Principals by authid.
    #[serde(default, alias = "users")]
    pub principals: BTreeMap<String, P>,
    /// The procedure a dynamic method calls.
    #[serde(default)]
    pub authenticator: Option<String>,
    /// The realm the authenticator is registered on; the realm the client joins when absent.
    #[serde(rename = "authenticator-realm", default)]
    pub authenticator_realm: Option<String>,
}

/// `auth.ticket`: static principals, a dynamic authenticator, or JWTs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketAuthConfig {
    /// `static`, `dynamic` or `jwt`.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// Principals by authid (`static`).
    #[serde(default, alias = "users")]
    pub principals: BTreeMap<String, TicketPrincipal>,
    /// The procedure a dynamic method calls.
    #[serde(default)]
    pub authenticator: Option<String>,
    /// The realm the authenticator is registered on; the realm the client joins when absent.
    #[serde(rename = "authenticator-realm", default)]
    pub authenticator_realm: Option<String>,
    /// The identity provider's public keys, a JWKS file (`jwt`); relative to the node directory.
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// The required `iss` claim (`jwt`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The required `aud` claim (`jwt`).
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim that becomes the authid (`jwt`; default `sub`).
    #[serde(default)]
    pub authid_claim: Option<String>,
    /// The claim whose value is the role (`jwt`; default `role`).
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf` (`jwt`; default 0).
    #[serde(default)]
    pub leeway: Option<u64>,
}

/// A ticket principal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketPrincipal {
    /// The ticket.
    pub ticket: String,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A WAMP-CRA principal; salted when `salt` is given (then `iterations` and `keylen` too).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraPrincipal {
    /// The secret (for a salted principal, the password the key is derived from).
    pub secret: String,
    /// The role it grants.
    pub role: String,
    /// PBKDF2 salt.
    #[serde(default)]
    pub salt: Option<String>,
    /// PBKDF2 iterations (default 1000, as Autobahn's).
    #[serde(default)]
    pub iterations: Option<u32>,
    /// Derived key length (default 32, as Autobahn's).
    #[serde(default)]
    pub keylen: Option<usize>,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A WAMP-SCRAM principal: the stored credential, never the password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramPrincipal {
    /// `argon2id-13` or `pbkdf2`.
    pub kdf: String,
    /// KDF iterations (Argon2id time cost).
    pub iterations: u32,
    /// Argon2id memory cost in KiB (`argon2id-13` only).
    #[serde(default)]
    pub memory: Option<u32>,
    /// The salt, hex (sent to the client in base64, as Crossbar does).
    pub salt: String,
    /// StoredKey, hex.
    #[serde(rename = "stored-key")]
    pub stored_key: String,
    /// ServerKey, hex.
    #[serde(rename = "server-key")]
    pub server_key: String,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A WAMP-Cryptosign principal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptosignPrincipal {
    /// Ed25519 public keys (64 hex digits each) that authenticate as this principal.
    pub authorized_keys: Vec<String>,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A TLS client certificate principal: matched by `certificate-sha1`, or when that is absent by the
/// certificate's subject CN being the principal's authid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPrincipal {
    /// SHA-1 fingerprint of the DER certificate, colon-separated hex (as Crossbar's).
    #[serde(rename = "certificate-sha1", default)]
    pub certificate_sha1: Option<String>,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// `auth.cookie`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CookieAuthConfig {
    /// Accepted for symmetry with the other methods; only `static` is meaningful.
    #[serde(rename = "type", default)]
    pub kind: Option<AuthKind>,
}

/// A WebSocket endpoint's `cookie` section: connections get a cookie that remembers how they
/// authenticated (Crossbar's cookie tracking).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// Cookie name (default `cbtid`).
    #[serde(default)]
    pub name: Option<String>,
    /// Random characters in a cookie value (default 24).
    #[serde(default)]
    pub length: Option<usize>,
    /// Seconds a cookie lives (default 864000, ten days).
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Where cookies are kept (default memory).
    #[serde(default)]
    pub store: Option<CookieStoreConfig>,
}

/// `cookie.store`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieStoreConfig {
    /// `memory` or `file`.
    #[serde(rename = "type")]
    pub kind: CookieStoreKind,
    /// The file (`file`); relative to the node directory.
    #[serde(default)]
    pub filename: Option<PathBuf>,
}

/// Cookie store kinds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CookieStoreKind {
    /// Gone when the router stops.
    Memory,
    /// Kept in a file, one JSON line per cookie, so cookies survive restarts.
    File,
}

/// A transport's `auth_rate_limit`: after `failures` failed authentications from one IP address
/// within `window` seconds, further attempts from it are denied until the window has passed.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRateLimitConfig {
    /// Failures allowed per window.
    pub failures: u32,
    /// The window, in seconds.
    pub window: u64,
}
