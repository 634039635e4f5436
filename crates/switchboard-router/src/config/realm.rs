//! Realms and what is configured per realm: roles with their permissions (or a dynamic authorizer)
//! and the event store.

use serde::Deserialize;
use switchboard_proto::UriMatch;

/// A realm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmConfig {
    /// The realm's URI.
    pub name: String,
    /// Roles sessions may join with.
    #[serde(default)]
    pub roles: Vec<RoleConfig>,
    /// The realm's event store (event history).
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// Crossbar.io FX's router tracing (accepted with a warning: no effect).
    #[serde(default)]
    pub trace: Option<serde_json::Value>,
    /// Crossbar's router-to-router links of this realm.
    #[serde(default)]
    pub rlinks: Vec<super::RLinkConfig>,
    /// Switchboard's: this entry is a template, and `name` says which realm names it covers. A
    /// realm it covers is created with its roles and store when a client first joins that name,
    /// and removed once it has had no session for `linger` seconds.
    #[serde(default)]
    pub template: Option<RealmTemplateConfig>,
}

/// A realm template's `template` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmTemplateConfig {
    /// How `name` covers realm names: `exact` (that one name), `prefix` (names starting with
    /// it) or `any` (every name; write `name` as `*`).
    #[serde(rename = "match", default)]
    pub policy: TemplateMatch,
    /// Seconds a created realm stays after its last session left (default 0).
    #[serde(default)]
    pub linger: f64,
}

/// How a realm template's name covers realm names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateMatch {
    /// The template's name exactly.
    #[default]
    Exact,
    /// Names starting with the template's name.
    Prefix,
    /// Any name.
    Any,
}

impl RealmConfig {
    /// Whether this entry is a realm template rather than a realm.
    pub fn is_template(&self) -> bool {
        self.template.is_some()
    }

    /// How well this template covers realm `name`: `None` when it does not; a more specific
    /// template ranks higher (an exact name, then a longer prefix, then `any`).
    pub fn covers(&self, name: &str) -> Option<(u8, usize)> {
        let template = self.template.as_ref()?;
        match template.policy {
            TemplateMatch::Exact => (self.name == name).then_some((2, 0)),
            TemplateMatch::Prefix => name.starts_with(&self.name).then_some((1, self.name.len())),
            TemplateMatch::Any => Some((0, 0)),
        }
    }
}

/// A realm's `store`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Only `memory` so far.
    #[serde(rename = "type")]
    pub kind: StoreKind,
    /// Topics whose events are kept for `wamp.subscription.get_events`.
    #[serde(rename = "event-history", default)]
    pub event_history: Vec<EventHistoryConfig>,
    /// How many events an `event-history` entry without its own `limit` keeps (Crossbar's
    /// default: 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// How many events an `event-history` entry keeps when neither it nor its store says (Crossbar's
/// `GLOBAL_HISTORY_LIMIT`).
pub const DEFAULT_EVENT_HISTORY_LIMIT: usize = 100;

impl StoreConfig {
    /// How many events `entry` keeps: its own `limit`, else the store's, else 100.
    pub fn limit_of(&self, entry: &EventHistoryConfig) -> usize {
        entry
            .limit
            .or(self.limit)
            .unwrap_or(DEFAULT_EVENT_HISTORY_LIMIT)
    }
}

/// Kinds of event store.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Kept in memory; gone when the router stops.
    Memory,
}

/// One `event-history` entry: events on topics matching `uri`, the last `limit` of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHistoryConfig {
    /// Topic pattern.
    pub uri: String,
    /// How `uri` matches (exact by default).
    #[serde(rename = "match", default)]
    pub match_policy: Option<MatchPolicy>,
    /// How many events are kept (default: the store's `limit`).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A role and its permissions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Role name (the authrole).
    pub name: String,
    /// Permissions on URI patterns.
    #[serde(default)]
    pub permissions: Option<Vec<PermissionConfig>>,
    /// A procedure that decides every action of the role (a dynamic authorizer) instead of
    /// `permissions`.
    #[serde(default)]
    pub authorizer: Option<String>,
    /// For a role with neither `permissions` nor an `authorizer` (as in Crossbar): `true` allows
    /// every action on every URI, `false` (the default) none.
    #[serde(rename = "allow-by-default", default)]
    pub allow_by_default: Option<bool>,
    /// Switchboard's key: sessions of this role may be router links, i.e. send `forward_for` to
    /// act for the sessions of another router, and use the link protocol. An ordinary session
    /// that sends `forward_for` ends with a protocol violation.
    #[serde(default)]
    pub link: bool,
}

impl RoleConfig {
    /// The role's static permissions (none for a role without `permissions`).
    pub fn permissions(&self) -> &[PermissionConfig] {
        self.permissions.as_deref().unwrap_or_default()
    }

    /// Whether `allow-by-default` decides this role's actions: only when it has neither
    /// `permissions` nor an `authorizer`, as in Crossbar.
    pub fn allows_by_default(&self) -> bool {
        self.permissions.is_none()
            && self.authorizer.is_none()
            && self.allow_by_default == Some(true)
    }
}

/// One permission: which actions a role may take on URIs matching a pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    /// The URI pattern.
    pub uri: String,
    /// How `uri` matches (Crossbar's default: exact, or prefix for a pattern ending in `*`).
    #[serde(rename = "match", default)]
    pub match_policy: Option<MatchPolicy>,
    /// Allowed actions.
    #[serde(default)]
    pub allow: AllowConfig,
    /// Identity disclosure to receivers.
    #[serde(default)]
    pub disclose: DiscloseConfig,
    /// Whether the decision may be cached (static permissions always are).
    #[serde(default)]
    pub cache: Option<bool>,
}

/// The `match` values.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum MatchPolicy {
    Exact,
    Prefix,
    Wildcard,
}

impl From<MatchPolicy> for UriMatch {
    fn from(m: MatchPolicy) -> Self {
        match m {
            MatchPolicy::Exact => UriMatch::Exact,
            MatchPolicy::Prefix => UriMatch::Prefix,
            MatchPolicy::Wildcard => UriMatch::Wildcard,
        }
    }
}

/// The four actions of a permission.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct AllowConfig {
    #[serde(default)]
    pub call: bool,
    #[serde(default)]
    pub register: bool,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub subscribe: bool,
}

/// Identity disclosure settings of a permission: whether receivers learn who called or published.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DiscloseConfig {
    #[serde(default)]
    pub caller: bool,
    #[serde(default)]
    pub publisher: bool,
}

/// The match policy of a permission: explicit `match`, else Crossbar's legacy rule (a trailing `*`
/// or an empty URI means prefix), else exact.
pub fn effective_match(p: &PermissionConfig) -> UriMatch {
    match p.match_policy {
        Some(m) => m.into(),
        None if p.uri.ends_with('*') || p.uri.is_empty() => UriMatch::Prefix,
        None => UriMatch::Exact,
    }
}
