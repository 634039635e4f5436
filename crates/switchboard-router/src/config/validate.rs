//! The checks the types cannot express: versions, URIs, duplicate names, roles that transports
//! refer to, endpoints used twice, and files that must exist (static directories, TLS material).
//! Every problem is collected; nothing stops at the first.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use switchboard_proto::{Uri, UriMatch};

use super::{
    AuthConfig, AuthKind, ConfigError, EndpointConfig, NodeConfig, TransportConfig, WebPathConfig,
    WebSocketOptions, WebSocketPathConfig, WorkerConfig, effective_match,
};

/// Runs every check; relative paths resolve against `base`.
pub(super) fn validate(config: &NodeConfig, base: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(v) = config.version
        && v != 2
    {
        push(
            &mut errors,
            "version".into(),
            format!("unsupported: config version {v} (expected 2)"),
        );
    }
    if config.workers.is_empty() {
        push(
            &mut errors,
            "workers".into(),
            "expected at least one worker of type `router`".into(),
        );
    }
    let mut endpoints: HashMap<String, String> = HashMap::new();
    for (w, WorkerConfig::Router(worker)) in config.workers.iter().enumerate() {
        let mut realm_names = HashSet::new();
        let mut roles_defined = HashSet::new();
        for (r, realm) in worker.realms.iter().enumerate() {
            let at = format!("workers[{w}].realms[{r}]");
            if Uri::parse_loose(&realm.name, UriMatch::Exact).is_err() {
                push(
                    &mut errors,
                    format!("{at}.name"),
                    format!("`{}` is not a valid realm URI", realm.name),
                );
            }
            if !realm_names.insert(realm.name.clone()) {
                push(
                    &mut errors,
                    format!("{at}.name"),
                    format!("realm `{}` is defined twice", realm.name),
                );
            }
            if let Some(store) = &realm.store {
                for (h, entry) in store.event_history.iter().enumerate() {
                    let policy = entry.match_policy.map_or(UriMatch::Exact, UriMatch::from);
                    if Uri::parse_loose(&entry.uri, policy).is_err() {
                        push(
                            &mut errors,
                            format!("{at}.store.event-history[{h}].uri"),
                            format!(
                                "`{}` is not a valid URI pattern for match `{}`",
                                entry.uri,
                                policy.as_str()
                            ),
                        );
                    }
                }
            }
            let mut role_names = HashSet::new();
            for (i, role) in realm.roles.iter().enumerate() {
                roles_defined.insert(role.name.clone());
                if !role_names.insert(role.name.clone()) {
                    push(
                        &mut errors,
                        format!("{at}.roles[{i}].name"),
                        format!("role `{}` is defined twice in this realm", role.name),
                    );
                }
                if let Some(authorizer) = &role.authorizer {
                    if !role.permissions.is_empty() {
                        push(
                            &mut errors,
                            format!("{at}.roles[{i}]"),
                            "a role has either `permissions` or an `authorizer`, not both".into(),
                        );
                    }
                    if Uri::parse_loose(authorizer, UriMatch::Exact).is_err() {
                        push(
                            &mut errors,
                            format!("{at}.roles[{i}].authorizer"),
                            format!("`{authorizer}` is not a valid procedure URI"),
                        );
                    }
                }
                for (p, perm) in role.permissions.iter().enumerate() {
                    let policy = effective_match(perm);
                    let uri = perm.uri.strip_suffix('*').unwrap_or(&perm.uri);
                    if Uri::parse_loose(uri, policy).is_err() {
                        push(
                            &mut errors,
                            format!("{at}.roles[{i}].permissions[{p}].uri"),
                            format!(
                                "`{}` is not a valid URI pattern for match `{}`",
                                perm.uri,
                                policy.as_str()
                            ),
                        );
                    }
                }
            }
        }
        for (t, transport) in worker.transports.iter().enumerate() {
            let at = format!("workers[{w}].transports[{t}]");
            check_endpoint(
                transport.endpoint(),
                &format!("{at}.endpoint"),
                base,
                &mut endpoints,
                &mut errors,
            );
            if let Some(limit) = transport.auth_rate_limit()
                && (limit.failures == 0 || limit.window == 0)
            {
                errors.push(ConfigError::at(
                    format!("{at}.auth_rate_limit"),
                    "`failures` and `window` must both be at least 1",
                ));
            }
            // Each endpoint's auth, and whether it is a WebSocket endpoint with cookie tracking.
            let mut auths: Vec<(String, &AuthConfig, Endpoint)> = Vec::new();
            let mut websockets: Vec<(String, &WebSocketOptions)> = Vec::new();
            match transport {
                TransportConfig::Universal(u) => {
                    if u.rawsocket.is_none() && u.websocket.is_empty() && u.web.is_none() {
                        errors.push(ConfigError::at(
                            at.clone(),
                            "a universal transport needs at least one of `rawsocket`, `websocket`, `web`",
                        ));
                    }
                    if let Some(a) = u.rawsocket.as_ref().and_then(|r| r.auth.as_ref()) {
                        auths.push((format!("{at}.rawsocket.auth"), a, Endpoint::RawSocket));
                    }
                    for (path, WebSocketPathConfig::WebSocket(ws)) in &u.websocket {
                        websockets.push((format!("{at}.websocket.{path}"), ws));
                    }
                    if let Some(web) = &u.web {
                        check_web_paths(
                            &web.paths,
                            &format!("{at}.web.paths"),
                            base,
                            &mut websockets,
                            &mut errors,
                        );
                        let clash: Vec<&String> = web
                            .paths
                            .keys()
                            .filter(|p| u.websocket.contains_key(*p))
                            .collect();
                        for p in clash {
                            errors.push(ConfigError::at(
                                format!("{at}.web.paths.{p}"),
                                format!("path `{p}` is also a `websocket` path of this transport"),
                            ));
                        }
                    }
                }
                TransportConfig::WebSocket(ws) => {
                    if let Some(a) = &ws.auth {
                        let kind = Endpoint::WebSocket {
                            cookies: ws.cookie.is_some(),
                        };
                        auths.push((format!("{at}.auth"), a, kind));
                    }
                    check_websocket_options(&ws.websocket(), &at, &mut errors);
                }
                TransportConfig::RawSocket(rs) => {
                    if let Some(a) = &rs.auth {
                        auths.push((format!("{at}.auth"), a, Endpoint::RawSocket));
                    }
                    if rs.max_message_size.is_some_and(|m| m < 512) {
                        errors.push(ConfigError::at(
                            format!("{at}.max_message_size"),
                            "must be at least 512 bytes",
                        ));
                    }
                }
                TransportConfig::Web(web) => {
                    check_web_paths(
                        &web.paths,
                        &format!("{at}.paths"),
                        base,
                        &mut websockets,
                        &mut errors,
                    );
                }
            }
            for (path, ws) in websockets {
                if let Some(a) = &ws.auth {
                    let kind = Endpoint::WebSocket {
                        cookies: ws.cookie.is_some(),
                    };
                    auths.push((format!("{path}.auth"), a, kind));
                }
                check_websocket_options(ws, &path, &mut errors);
            }
            let known = Known {
                roles: &roles_defined,
                realms: &realm_names,
                base,
                client_certificates: transport
                    .endpoint()
                    .tls()
                    .is_some_and(|t| !t.ca_certificates.is_empty()),
            };
            for (path, auth, kind) in auths {
                check_auth(&path, auth, kind, &known, &mut errors);
            }
        }
    }
    errors
}

/// What validation needs of every principal type: the role it grants and the realm it joins.
trait Principal {
    fn role(&self) -> &String;
    fn realm(&self) -> Option<&String>;
}

macro_rules! principal {
    ($($t:ty),*) => {$(
        impl Principal for $t {
            fn role(&self) -> &String {
                &self.role
            }
            fn realm(&self) -> Option<&String> {
                self.realm.as_ref()
            }
        }
    )*};
}
principal!(
    super::WampCraPrincipal,
    super::ScramPrincipal,
    super::CryptosignPrincipal,
    super::TlsPrincipal
);

/// (authid, role, realm) of each principal of a method section.
fn principals_of<P: Principal>(
    c: &super::MethodAuthConfig<P>,
) -> Vec<(&String, &String, Option<&String>)> {
    c.principals
        .iter()
        .map(|(authid, p)| (authid, p.role(), p.realm()))
        .collect()
}

/// What kind of endpoint an `auth` section belongs to.
#[derive(Clone, Copy)]
enum Endpoint {
    RawSocket,
    WebSocket { cookies: bool },
}

/// What an `auth` section may refer to.
struct Known<'a> {
    roles: &'a HashSet<String>,
    realms: &'a HashSet<String>,
    base: &'a Path,
    /// Whether the transport's TLS asks for client certificates (has `ca_certificates`).
    client_certificates: bool,
}

/// Checks one endpoint's `auth` section: roles and realms exist, dynamic methods name an
/// authenticator, keys and credentials are well-formed, files load, and each method can work on
/// this endpoint.
fn check_auth(
    at: &str,
    auth: &AuthConfig,
    endpoint: Endpoint,
    known: &Known,
    errors: &mut Vec<ConfigError>,
) {
    let role = |errors: &mut Vec<ConfigError>, path: String, role: &str| {
        if !known.roles.contains(role) {
            errors.push(ConfigError::at(
                path,
                format!("role `{role}` is not defined in any realm"),
            ));
        }
    };
    let realm = |errors: &mut Vec<ConfigError>, path: String, realm: Option<&String>| {
        if let Some(r) = realm
            && !known.realms.contains(r)
        {
            errors.push(ConfigError::at(path, format!("realm `{r}` is not defined")));
        }
    };
    // The parts every method section has: its type, authenticator and principals' role/realm.
    let method = |errors: &mut Vec<ConfigError>,
                  name: &str,
                  kind: AuthKind,
                  authenticator: Option<&String>,
                  authenticator_realm: Option<&String>,
                  principals: Vec<(&String, &String, Option<&String>)>| {
        let path = format!("{at}.{name}");
        match (kind, authenticator) {
            (AuthKind::Dynamic, None) => errors.push(ConfigError::at(
                format!("{path}.authenticator"),
                "a dynamic method needs the procedure URI of its `authenticator`",
            )),
            (AuthKind::Dynamic, Some(uri)) => {
                if Uri::parse_loose(uri, UriMatch::Exact).is_err() {
                    errors.push(ConfigError::at(
                        format!("{path}.authenticator"),
                        format!("`{uri}` is not a valid procedure URI"),
                    ));
                }
                realm(
                    errors,
                    format!("{path}.authenticator-realm"),
                    authenticator_realm,
                );
            }
            (AuthKind::Jwt, _) if name != "ticket" => errors.push(ConfigError::at(
                format!("{path}.type"),
                "type `jwt` exists for `ticket` only (expected `static` or `dynamic`)",
            )),
            (_, Some(_)) => errors.push(ConfigError::at(
                format!("{path}.authenticator"),
                format!(
                    "an authenticator is only used by type `dynamic`, not `{}`",
                    kind.as_str()
                ),
            )),
            _ => {}
        }
        for (authid, r, principal_realm) in principals {
            role(errors, format!("{path}.principals.{authid}.role"), r);
            realm(
                errors,
                format!("{path}.principals.{authid}.realm"),
                principal_realm,
            );
        }
    };
    if let Some(anon) = &auth.anonymous {
        if anon.kind != AuthKind::Static {
            errors.push(ConfigError::at(
                format!("{at}.anonymous.type"),
                "anonymous authentication is `static` only",
            ));
        }
        role(
            errors,
            format!("{at}.anonymous.role"),
            anon.role.as_deref().unwrap_or("anonymous"),
        );
    }
    if let Some(t) = &auth.ticket {
        let principals = t
            .principals
            .iter()
            .map(|(a, p)| (a, &p.role, p.realm.as_ref()));
        method(
            errors,
            "ticket",
            t.kind,
            t.authenticator.as_ref(),
            t.authenticator_realm.as_ref(),
            principals.collect(),
        );
        if t.kind == AuthKind::Jwt {
            match &t.jwks {
                None => errors.push(ConfigError::at(
                    format!("{at}.ticket.jwks"),
                    "type `jwt` needs `jwks`, the identity provider's public keys (a JWKS file)",
                )),
                Some(file) => {
                    if let Err(e) = crate::auth::jwt::JwtValidator::from_jwks_file(
                        &known.base.join(file),
                        t.issuer.clone(),
                        t.audience.clone(),
                        t.leeway.unwrap_or(0),
                    ) {
                        errors.push(ConfigError::at(format!("{at}.ticket.jwks"), e));
                    }
                }
            }
        } else if t.jwks.is_some() || t.issuer.is_some() || t.audience.is_some() {
            errors.push(ConfigError::at(
                format!("{at}.ticket"),
                "`jwks`, `issuer` and `audience` are only used by type `jwt`",
            ));
        }
    }
    if let Some(c) = &auth.wampcra {
        method(
            errors,
            "wampcra",
            c.kind,
            c.authenticator.as_ref(),
            c.authenticator_realm.as_ref(),
            principals_of(c),
        );
    }
    if let Some(c) = &auth.scram {
        method(
            errors,
            "scram",
            c.kind,
            c.authenticator.as_ref(),
            c.authenticator_realm.as_ref(),
            principals_of(c),
        );
        for (authid, p) in &c.principals {
            if let Err(e) = crate::auth::scram_credential(p) {
                errors.push(ConfigError::at(
                    format!("{at}.scram.principals.{authid}"),
                    e,
                ));
            }
        }
    }
    if let Some(c) = &auth.cryptosign {
        method(
            errors,
            "cryptosign",
            c.kind,
            c.authenticator.as_ref(),
            c.authenticator_realm.as_ref(),
            principals_of(c),
        );
        for (authid, p) in &c.principals {
            for (k, key) in p.authorized_keys.iter().enumerate() {
                if crate::auth::cryptosign::parse_public_key(key).is_none() {
                    errors.push(ConfigError::at(
                        format!("{at}.cryptosign.principals.{authid}.authorized_keys[{k}]"),
                        "expected an Ed25519 public key: 64 hex digits",
                    ));
                }
            }
        }
    }
    if let Some(c) = &auth.tls {
        method(
            errors,
            "tls",
            c.kind,
            c.authenticator.as_ref(),
            c.authenticator_realm.as_ref(),
            principals_of(c),
        );
        if !known.client_certificates {
            errors.push(ConfigError::at(
                format!("{at}.tls"),
                "TLS client certificate authentication needs the transport's endpoint `tls` to \
                 have `ca_certificates` (the CAs client certificates are verified against)",
            ));
        }
    }
    if auth.cookie.is_some() && !matches!(endpoint, Endpoint::WebSocket { cookies: true }) {
        errors.push(ConfigError::at(
            format!("{at}.cookie"),
            "cookie authentication needs a WebSocket endpoint with a `cookie` section",
        ));
    }
}

fn check_endpoint(
    endpoint: &EndpointConfig,
    at: &str,
    base: &Path,
    used: &mut HashMap<String, String>,
    errors: &mut Vec<ConfigError>,
) {
    let (key, key_path) = match endpoint {
        EndpointConfig::Tcp(t) => {
            if let Some(v) = t.version
                && v != 4
                && v != 6
            {
                errors.push(ConfigError::at(
                    format!("{at}.version"),
                    format!("expected 4 or 6, got {v}"),
                ));
            }
            if let Some(i) = &t.interface
                && i.parse::<std::net::IpAddr>().is_err()
            {
                errors.push(ConfigError::at(
                    format!("{at}.interface"),
                    format!("`{i}` is not an IP address"),
                ));
            }
            let key = (t.port != 0).then(|| {
                format!(
                    "tcp:{}:{}",
                    t.interface.as_deref().unwrap_or("0.0.0.0"),
                    t.port
                )
            });
            (key, format!("{at}.port"))
        }
        EndpointConfig::Unix(u) => (
            Some(format!("unix:{}", base.join(&u.path).display())),
            format!("{at}.path"),
        ),
    };
    if let Some(key) = key {
        if let Some(first) = used.get(&key) {
            let transport = first.trim_end_matches(".endpoint");
            errors.push(ConfigError::at(
                key_path,
                format!("{key} is already used by {transport}"),
            ));
        } else {
            used.insert(key, at.to_owned());
        }
    }
    if let Some(tls) = endpoint.tls()
        && let Err(problems) = crate::tls::server_config(tls, base)
    {
        for p in problems {
            errors.push(ConfigError::at(format!("{at}.tls.{}", p.field), p.message));
        }
    }
}

fn check_web_paths<'a>(
    paths: &'a std::collections::BTreeMap<String, WebPathConfig>,
    at: &str,
    base: &Path,
    websockets: &mut Vec<(String, &'a WebSocketOptions)>,
    errors: &mut Vec<ConfigError>,
) {
    for (name, path) in paths {
        let here = format!("{at}.{name}");
        if name != "/" && (name.is_empty() || name.contains('/')) {
            errors.push(ConfigError::at(
                here.clone(),
                format!("path `{name}` must be `/` or a single path segment without `/`"),
            ));
        }
        match path {
            WebPathConfig::Static(s) => {
                let dir = base.join(&s.directory);
                match std::fs::read_dir(&dir) {
                    Ok(_) => {}
                    Err(e) => errors.push(ConfigError::at(
                        format!("{here}.directory"),
                        format!("cannot read `{}`: {e}", s.directory.display()),
                    )),
                }
            }
            WebPathConfig::WebSocket(ws) => websockets.push((here, ws)),
            WebPathConfig::Redirect(r) => {
                if r.url.is_empty() {
                    errors.push(ConfigError::at(
                        format!("{here}.url"),
                        "expected a URL to redirect to",
                    ));
                }
            }
            WebPathConfig::NodeInfo(_) => {}
        }
    }
}

fn check_websocket_options(ws: &WebSocketOptions, at: &str, errors: &mut Vec<ConfigError>) {
    if ws.serializers.as_ref().is_some_and(Vec::is_empty) {
        errors.push(ConfigError::at(
            format!("{at}.serializers"),
            "expected at least one serializer",
        ));
    }
    let o = &ws.options;
    if let Some(size) = o.auto_ping_size
        && !(4..=125).contains(&size)
    {
        errors.push(ConfigError::at(
            format!("{at}.options.auto_ping_size"),
            format!("expected 4 to 125 bytes, got {size}"),
        ));
    }
    if let Some(deflate) = o.compression.as_ref().and_then(|c| c.deflate.as_ref()) {
        for (name, bits) in [
            ("max_window_bits", deflate.max_window_bits),
            ("request_max_window_bits", deflate.request_max_window_bits),
        ] {
            if let Some(b) = bits
                && !(9..=15).contains(&b)
            {
                errors.push(ConfigError::at(
                    format!("{at}.options.compression.deflate.{name}"),
                    format!("expected 9 to 15, got {b} (zlib cannot use a window of 8 bits)"),
                ));
            }
        }
    }
    if o.max_message_size == Some(0) {
        errors.push(ConfigError::at(
            format!("{at}.options.max_message_size"),
            "must be greater than 0",
        ));
    }
}

fn push(errors: &mut Vec<ConfigError>, path: String, message: String) {
    errors.push(ConfigError::at(path, message));
}
