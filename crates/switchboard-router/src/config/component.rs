//! Application components a router worker hosts (Crossbar's `components` of a router worker):
//! Python classes, each run by the node in a supervised Python process that joins the router.

use serde::Deserialize;

/// A component of a router worker.
#[derive(Debug, Clone)]
pub enum ComponentConfig {
    /// A Python class deriving from Autobahn's `ApplicationSession` (asyncio or Twisted).
    Class(ClassComponentConfig),
}

tagged!(ComponentConfig, "component", {
    "class" => Class(ClassComponentConfig),
});

/// `{"type": "class"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassComponentConfig {
    /// Component id (default `component001`, ... by position).
    #[serde(default)]
    pub id: Option<String>,
    /// The class, `package.module.Class`, importable from the worker's `options.pythonpath`.
    pub classname: String,
    /// The realm it joins (one of this router worker's realms).
    pub realm: String,
    /// The role it joins with (default `anonymous`); it must be a role of the realm.
    #[serde(default)]
    pub role: Option<String>,
    /// Handed to the component as `config.extra`.
    #[serde(default)]
    pub extra: Option<serde_json::Value>,
    /// Crossbar's references to other components: accepted, unused.
    #[serde(default)]
    pub references: Option<serde_json::Value>,
}

impl ClassComponentConfig {
    /// The role the component joins with.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("anonymous")
    }
}

/// The prefixes of Crossbar's own built-in components, which are not Python classes to import.
pub const CROSSBAR_BUILTIN_COMPONENTS: &[&str] = &["crossbar.bridge.", "crossbar.adapter."];
