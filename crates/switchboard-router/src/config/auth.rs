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
    /// `static` (the role below), `dynamic` (an authenticator decides) or `function`.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// The role anonymous sessions get (`static`).
    #[serde(default)]
    pub role: Option<String>,
    /// The authid every anonymous session gets (`static`; by default each gets its own).
    #[serde(default)]
    pub authid: Option<String>,
    /// Accepted as Crossbar accepts it, without effect: an anonymous session joins the realm its
    /// HELLO names.
    #[serde(default)]
    pub realm: Option<String>,
    /// The procedure a dynamic method calls.
    #[serde(default)]
    pub authenticator: Option<String>,
    /// The realm the authenticator is registered on; the realm the client joins when absent.
    #[serde(rename = "authenticator-realm", default)]
    pub authenticator_realm: Option<String>,
    /// Crossbar's role for the session that calls the authenticator (accepted with a warning:
    /// the router calls authenticators from its own trusted session).
    #[serde(rename = "authenticator-role", default)]
    pub authenticator_role: Option<String>,
    /// `function`: the Python function (`module.function`) that creates the authenticator.
    #[serde(default)]
    pub create: Option<String>,
    /// `function`: what `create` is given as its `config`.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `function`: Crossbar passes its worker controller to `create` (accepted with a warning:
    /// Switchboard passes `None`).
    #[serde(default)]
    pub expose_controller: Option<bool>,
}

/// The keys every method section has for `dynamic` and `function` (each section declares them
/// itself: serde's `flatten` would lose the refusal of unknown keys).
#[derive(Debug, Clone, Copy)]
pub struct DynamicAuthConfig<'a> {
    /// The section's `type`.
    pub kind: AuthKind,
    /// `authenticator`.
    pub authenticator: Option<&'a String>,
    /// `authenticator-realm`.
    pub authenticator_realm: Option<&'a String>,
    /// `authenticator-role`.
    pub authenticator_role: Option<&'a String>,
    /// `create`.
    pub create: Option<&'a String>,
    /// `config`.
    pub config: Option<&'a serde_json::Value>,
    /// `expose_controller`.
    pub expose_controller: Option<bool>,
}

macro_rules! dynamic_keys {
    ($($t:ty),*) => {$(
        impl $t {
            /// The section's `dynamic` and `function` keys.
            pub fn dynamic(&self) -> DynamicAuthConfig<'_> {
                DynamicAuthConfig {
                    kind: self.kind,
                    authenticator: self.authenticator.as_ref(),
                    authenticator_realm: self.authenticator_realm.as_ref(),
                    authenticator_role: self.authenticator_role.as_ref(),
                    create: self.create.as_ref(),
                    config: self.config.as_ref(),
                    expose_controller: self.expose_controller,
                }
            }
        }
    )*};
}
dynamic_keys!(AnonymousAuthConfig, TicketAuthConfig);

impl<P> MethodAuthConfig<P> {
    /// The section's `dynamic` and `function` keys.
    pub fn dynamic(&self) -> DynamicAuthConfig<'_> {
        DynamicAuthConfig {
            kind: self.kind,
            authenticator: self.authenticator.as_ref(),
            authenticator_realm: self.authenticator_realm.as_ref(),
            authenticator_role: self.authenticator_role.as_ref(),
            create: self.create.as_ref(),
            config: self.config.as_ref(),
            expose_controller: self.expose_controller,
        }
    }
}

/// A `function` authenticator: a Python function that creates `authenticate(realm, authid,
/// details)`, run by the node in a helper process and reached through a procedure of its own
/// (Crossbar's `"type": "function"`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionAuthenticator {
    /// `module.function`, importable from the router worker's `options.pythonpath`.
    pub create: String,
    /// Given to `create` as its `config`.
    pub config: serde_json::Value,
}

impl FunctionAuthenticator {
    /// The procedure the node registers for it, on every realm: named after what it runs, so the
    /// same function with the same config is one authenticator wherever it is configured.
    pub fn procedure(&self) -> String {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::hash::DefaultHasher::new();
        self.create.hash(&mut hasher);
        self.config.to_string().hash(&mut hasher);
        format!(
            "switchboard.authenticator.function.{:016x}",
            hasher.finish()
        )
    }
}

impl DynamicAuthConfig<'_> {
    /// The procedure the section calls: its `authenticator` when dynamic, the function's
    /// procedure when `function`.
    pub fn procedure(&self) -> Option<String> {
        match self.kind {
            AuthKind::Dynamic => self.authenticator.cloned(),
            AuthKind::Function => self.function().map(|f| f.procedure()),
            AuthKind::Static | AuthKind::Jwt => None,
        }
    }

    /// The function of a `function` section.
    pub fn function(&self) -> Option<FunctionAuthenticator> {
        match (self.kind, self.create) {
            (AuthKind::Function, Some(create)) => Some(FunctionAuthenticator {
                create: create.clone(),
                config: self.config.cloned().unwrap_or(serde_json::Value::Null),
            }),
            _ => None,
        }
    }
}

impl AuthConfig {
    /// The `dynamic` and `function` keys of each method section present, by method name.
    pub fn dynamic_sections(&self) -> Vec<(&'static str, DynamicAuthConfig<'_>)> {
        let mut sections = Vec::new();
        if let Some(a) = &self.anonymous {
            sections.push(("anonymous", a.dynamic()));
        }
        if let Some(t) = &self.ticket {
            sections.push(("ticket", t.dynamic()));
        }
        if let Some(m) = &self.wampcra {
            sections.push(("wampcra", m.dynamic()));
        }
        if let Some(m) = &self.scram {
            sections.push(("scram", m.dynamic()));
        }
        if let Some(m) = &self.cryptosign {
            sections.push(("cryptosign", m.dynamic()));
        }
        if let Some(m) = &self.tls {
            sections.push(("tls", m.dynamic()));
        }
        sections
    }
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
    /// A Python function decides (Crossbar's in-process authenticator functions).
    Function,
}

impl AuthKind {
    /// The name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Static => "static",
            AuthKind::Dynamic => "dynamic",
            AuthKind::Jwt => "jwt",
            AuthKind::Function => "function",
        }
    }
}

/// A method's section: static principals by authid, or a dynamic authenticator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
pub struct MethodAuthConfig<P> {
    /// `static`, `dynamic` or `function`.
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
    /// Crossbar's role for the session that calls the authenticator (accepted with a warning:
    /// the router calls authenticators from its own trusted session).
    #[serde(rename = "authenticator-role", default)]
    pub authenticator_role: Option<String>,
    /// `function`: the Python function (`module.function`) that creates the authenticator.
    #[serde(default)]
    pub create: Option<String>,
    /// `function`: what `create` is given as its `config`.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `function`: Crossbar passes its worker controller to `create` (accepted with a warning:
    /// Switchboard passes `None`).
    #[serde(default)]
    pub expose_controller: Option<bool>,
}

/// `auth.ticket`: static principals, a dynamic authenticator, or JWTs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketAuthConfig {
    /// `static`, `dynamic`, `function` or `jwt`.
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
    /// Crossbar's role for the session that calls the authenticator (accepted with a warning:
    /// the router calls authenticators from its own trusted session).
    #[serde(rename = "authenticator-role", default)]
    pub authenticator_role: Option<String>,
    /// `function`: the Python function (`module.function`) that creates the authenticator.
    #[serde(default)]
    pub create: Option<String>,
    /// `function`: what `create` is given as its `config`.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `function`: Crossbar passes its worker controller to `create` (accepted with a warning:
    /// Switchboard passes `None`).
    #[serde(default)]
    pub expose_controller: Option<bool>,
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
