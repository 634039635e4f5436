//! Cookie authentication (Crossbar's cookie tracking): a WebSocket connection that authenticated
//! once gets a cookie, and later connections presenting it join as the same principal without a
//! new challenge.
//!
//! The WebSocket upgrade response sets a cookie with a fresh random id unless the request carried
//! one the jar knows. Only cookies whose connection authenticated are stored, so unauthenticated
//! connections cost nothing, and an id a client made up (or was planted with) is never accepted:
//! it is replaced by a new one. The `file` store appends one JSON line per authenticated cookie
//! (mode 0600: the ids are bearer credentials) and reads the file back at start, so cookies survive
//! restarts; expired cookies are dropped on load and on use.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use switchboard_proto::Dict;

use super::Authenticated;
use crate::config::{CookieConfig, CookieStoreKind};
use crate::locks::lock;

/// Crossbar's default cookie name.
pub const DEFAULT_NAME: &str = "cbtid";
/// Random characters in a cookie id by default.
pub const DEFAULT_LENGTH: usize = 24;
/// Cookie lifetime by default: ten days, as Crossbar's.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(864_000);

/// What a cookie remembers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Remembered {
    id: String,
    /// Seconds since the Unix epoch when the cookie was remembered; it expires `max_age` later.
    created: u64,
    realm: String,
    authid: String,
    authrole: String,
    /// The method the connection first authenticated with.
    authmethod: String,
}

/// The cookies of one WebSocket endpoint.
#[derive(Debug)]
pub struct CookieJar {
    name: String,
    length: usize,
    max_age: Duration,
    file: Option<PathBuf>,
    known: Mutex<HashMap<String, Remembered>>,
    /// How many cookies may be remembered before expired ones are swept out (doubling, so the
    /// sweeps stay amortized constant per login).
    sweep_at: AtomicUsize,
}

/// The first sweep of expired cookies happens at this many remembered cookies.
const FIRST_SWEEP_AT: usize = 10_000;

impl CookieJar {
    /// A jar from an endpoint's `cookie` section; the file store is read now.
    pub fn from_config(cfg: &CookieConfig, base_dir: &Path) -> Result<Self, String> {
        let file = match &cfg.store {
            Some(store) if store.kind == CookieStoreKind::File => {
                let name = store
                    .filename
                    .as_ref()
                    .ok_or("a file cookie store needs `filename`")?;
                Some(base_dir.join(name))
            }
            _ => None,
        };
        let jar = Self {
            name: cfg.name.clone().unwrap_or_else(|| DEFAULT_NAME.into()),
            length: cfg.length.unwrap_or(DEFAULT_LENGTH).clamp(16, 256),
            max_age: cfg
                .max_age
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_MAX_AGE),
            file,
            known: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(FIRST_SWEEP_AT),
        };
        if let Some(path) = &jar.file {
            jar.load(path)?;
        }
        Ok(jar)
    }

    fn load(&self, path: &Path) -> Result<(), String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cookie store {}: {e}", path.display())),
        };
        let now = unix_now();
        let mut known = lock(&self.known);
        let mut lines = 0usize;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            lines += 1;
            // A torn last line (the router was killed mid-write) is skipped, not fatal. The first
            // binding of an id is the one that counts.
            if let Ok(r) = serde_json::from_str::<Remembered>(line)
                && !self.expired(&r, now)
                && !known.contains_key(&r.id)
            {
                known.insert(r.id.clone(), r);
            }
        }
        // The file only grows while the router runs: start each run from the live cookies.
        if known.len() < lines {
            let mut live = Vec::new();
            for r in known.values() {
                live.extend(serde_json::to_vec(r).map_err(|e| e.to_string())?);
                live.push(b'\n');
            }
            write_private(path, &live)
                .map_err(|e| format!("cookie store {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn expired(&self, r: &Remembered, now: u64) -> bool {
        now.saturating_sub(r.created) >= self.max_age.as_secs()
    }

    /// The connection's cookie id: the one the request presented if the jar knows it, else a new
    /// one, with the `Set-Cookie` value to send for a new one.
    ///
    /// The cookie is `HttpOnly` and `SameSite=Lax` (a page of another site cannot make a browser
    /// send it with a WebSocket request), and `Secure` on TLS connections.
    pub fn for_request(&self, headers: &hyper::HeaderMap, tls: bool) -> (String, Option<String>) {
        if let Some(id) = self.presented(headers)
            && self.is_known(&id)
        {
            return (id, None);
        }
        let id = self.new_id();
        let set_cookie = format!(
            "{}={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.name,
            id,
            self.max_age.as_secs(),
            if tls { "; Secure" } else { "" }
        );
        (id, Some(set_cookie))
    }

    /// The value of this jar's cookie in the request's `Cookie` headers.
    fn presented(&self, headers: &hyper::HeaderMap) -> Option<String> {
        headers
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.trim_matches('"').to_owned())
    }

    fn is_known(&self, id: &str) -> bool {
        let now = unix_now();
        let mut known = lock(&self.known);
        match known.get(id) {
            Some(r) if self.expired(r, now) => {
                known.remove(id);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn new_id(&self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bytes = vec![0u8; self.length];
        // The system RNG failing means no secure id can be made; an all-zero id would be guessable,
        // so this is the one place a failure must not be papered over.
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random number generator failed");
        bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect()
    }

    /// The identity cookie `id` authenticates on `realm`, if it does.
    pub fn authenticated(&self, id: &str, realm: &str) -> Option<Authenticated> {
        if !self.is_known(id) {
            return None;
        }
        let known = lock(&self.known);
        let r = known.get(id).filter(|r| r.realm == realm)?;
        let mut authextra = Dict::new();
        authextra.insert("cookie_authmethod".into(), r.authmethod.as_str().into());
        Some(Authenticated {
            authid: r.authid.clone(),
            authrole: r.authrole.clone(),
            authmethod: "cookie",
            authprovider: "cookie",
            authextra,
            realm: None,
        })
    }

    /// Remembers that the connection with cookie `id` authenticated as `who` on `realm`.
    pub fn remember(&self, id: &str, realm: &str, who: &Authenticated) {
        if who.authmethod == "cookie" || who.authmethod == "anonymous" {
            // Nothing to remember: the cookie already stands for this identity, and anonymous
            // access needs no cookie.
            return;
        }
        let r = Remembered {
            id: id.to_owned(),
            created: unix_now(),
            realm: realm.to_owned(),
            authid: who.authid.clone(),
            authrole: who.authrole.clone(),
            authmethod: who.authmethod.to_owned(),
        };
        let mut known = lock(&self.known);
        if known.contains_key(id) {
            // An id stands for the identity it was first bound to, never another one.
            return;
        }
        if known.len() >= self.sweep_at.load(Ordering::Relaxed) {
            let now = unix_now();
            known.retain(|_, r| !self.expired(r, now));
            self.sweep_at
                .store((known.len() * 2).max(FIRST_SWEEP_AT), Ordering::Relaxed);
        }
        if let Some(path) = &self.file
            && let Err(e) = append_line(path, &r)
        {
            tracing::warn!("cookie store {}: {e}", path.display());
        }
        known.insert(r.id.clone(), r);
    }
}

/// Replaces the store with `content` (mode 0600), through a temporary file and a rename so a crash
/// leaves either the old or the new store.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn append_line(path: &Path, r: &Remembered) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&line)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::TrackingCookie;
    use crate::auth::testing::{Hello, endpoint, expect_welcome};
    use crate::config::CookieStoreConfig;

    fn who() -> Authenticated {
        Authenticated {
            authid: "joe".into(),
            authrole: "frontend".into(),
            authmethod: "ticket",
            authprovider: "static",
            authextra: Dict::new(),
            realm: None,
        }
    }

    fn headers(cookie: &str) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        h.insert(hyper::header::COOKIE, cookie.parse().unwrap());
        h
    }

    #[test]
    fn unknown_cookies_are_replaced_and_known_ones_authenticate() {
        let jar = CookieJar::from_config(&CookieConfig::default(), Path::new("/")).unwrap();
        let (planted, set) = jar.for_request(&headers("cbtid=made-up-by-someone"), false);
        assert_ne!(planted, "made-up-by-someone");
        let set = set.unwrap();
        assert_eq!(
            set,
            format!("cbtid={planted}; Max-Age=864000; HttpOnly; SameSite=Lax")
        );
        assert!(jar.authenticated(&planted, "realm1").is_none());
        jar.remember(&planted, "realm1", &who());
        let (again, set) = jar.for_request(&headers(&format!("other=1; cbtid={planted}")), true);
        assert_eq!((again.as_str(), set), (planted.as_str(), None));
        let joined = jar.authenticated(&planted, "realm1").unwrap();
        assert_eq!(
            (joined.authid.as_str(), joined.authmethod),
            ("joe", "cookie")
        );
        assert!(jar.authenticated(&planted, "realm2").is_none());
    }

    #[test]
    fn a_remembered_cookie_is_never_bound_to_another_identity() {
        let jar = CookieJar::from_config(&CookieConfig::default(), Path::new("/")).unwrap();
        let (id, _) = jar.for_request(&hyper::HeaderMap::new(), false);
        jar.remember(&id, "realm1", &who());
        let victim = Authenticated {
            authid: "victim".into(),
            ..who()
        };
        jar.remember(&id, "realm1", &victim);
        assert_eq!(jar.authenticated(&id, "realm1").unwrap().authid, "joe");
    }

    #[test]
    fn the_file_store_survives_a_restart_and_expiry_applies() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CookieConfig {
            store: Some(CookieStoreConfig {
                kind: CookieStoreKind::File,
                filename: Some("cookies.dat".into()),
            }),
            ..CookieConfig::default()
        };
        let jar = CookieJar::from_config(&cfg, dir.path()).unwrap();
        let (id, set) = jar.for_request(&hyper::HeaderMap::new(), true);
        assert!(set.is_some_and(|s| s.ends_with("; Secure")));
        jar.remember(&id, "realm1", &who());
        let reloaded = CookieJar::from_config(&cfg, dir.path()).unwrap();
        assert!(reloaded.authenticated(&id, "realm1").is_some());
        let expired = CookieJar::from_config(
            &CookieConfig {
                max_age: Some(0),
                ..cfg
            },
            dir.path(),
        )
        .unwrap();
        assert!(expired.authenticated(&id, "realm1").is_none());
    }

    #[tokio::test]
    async fn a_remembered_cookie_authenticates_on_its_realm_without_a_challenge() {
        let jar =
            Arc::new(CookieJar::from_config(&CookieConfig::default(), Path::new("/")).unwrap());
        jar.remember("known-id", "realm1", &who());
        let auth = endpoint(r#"{"anonymous": {"type": "static"}, "cookie": {}}"#);
        let with_cookie = |id: &str| {
            let cookie = TrackingCookie {
                jar: Arc::clone(&jar),
                id: id.into(),
                fresh: false,
            };
            Hello::new(&["cookie", "anonymous"]).conn(|c| c.cookie = Some(cookie))
        };
        let who = expect_welcome(&auth, with_cookie("known-id")).await;
        assert_eq!(
            (who.authid.as_str(), who.authrole.as_str()),
            ("joe", "frontend")
        );
        assert_eq!((who.authmethod, who.authprovider), ("cookie", "cookie"));
        assert_eq!(
            who.authextra
                .get("cookie_authmethod")
                .and_then(|v| v.as_str()),
            Some("ticket")
        );
        // An unknown cookie, or one for another realm, does not apply: the next method does.
        let who = expect_welcome(&auth, with_cookie("made-up")).await;
        assert_eq!(who.authmethod, "anonymous");
        let who = expect_welcome(&auth, with_cookie("known-id").realm("realm2")).await;
        assert_eq!(who.authmethod, "anonymous");
    }
}
