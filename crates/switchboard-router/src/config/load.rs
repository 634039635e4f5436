//! Reading a config file: JSON with comments and trailing commas (jsonc-parser) or YAML
//! (serde-saphyr) into a JSON value with the line and column of every node, `${VAR}`
//! substitution, then the typed structs through serde_path_to_error so that every error names its
//! path, and finally [`validate`](super::validate).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{DEFAULT_CONFIG_JSON, NodeConfig};

/// Dispatches a `"type"`-tagged config section to the struct of its variant, keeping error paths.
///
/// serde's own internally tagged enums buffer the section and lose the path of errors inside it;
/// this reads the section as a map, takes `type`, and deserializes the rest with its own path
/// tracking, embedding the inner path in the error for [`LoadedConfig`] to join.
macro_rules! tagged {
    ($ty:ident, $what:literal, { $($tag:literal => $variant:ident($inner:ty)),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
                let tag = $crate::config::load::take_tag::<D::Error>(&mut map)?;
                match tag.as_str() {
                    $($tag => $crate::config::load::nested::<$inner, D::Error>(map).map($ty::$variant),)+
                    other => Err($crate::config::load::unsupported_tag::<D::Error>($what, other)),
                }
            }
        }
    };
}

/// Marks an error message that carries the path of a nested section: `MARK path MARK message`.
const PATH_MARK: char = '\u{1}';

/// Takes the `type` key of a tagged section.
#[doc(hidden)]
pub fn take_tag<E: serde::de::Error>(map: &mut Map<String, Value>) -> Result<String, E> {
    match map.remove("type") {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(E::custom(embed(
            "type",
            &format!("invalid type: {other}, expected a string"),
        ))),
        None => Err(E::missing_field("type")),
    }
}

/// Deserializes the rest of a tagged section, embedding the path of any error inside it.
#[doc(hidden)]
pub fn nested<T: DeserializeOwned, E: serde::de::Error>(map: Map<String, Value>) -> Result<T, E> {
    serde_path_to_error::deserialize(Value::Object(map))
        .map_err(|e| E::custom(embed(&path_string(e.path()), &e.into_inner().to_string())))
}

/// The error for a `type` value we do not implement.
#[doc(hidden)]
pub fn unsupported_tag<E: serde::de::Error>(what: &str, tag: &str) -> E {
    E::custom(embed("type", &format!("unsupported: {what} type `{tag}`")))
}

fn path_string(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." { String::new() } else { s }
}

fn join_path(outer: &str, inner: &str) -> String {
    match (outer.is_empty(), inner.is_empty()) {
        (_, true) => outer.to_owned(),
        (true, false) => inner.to_owned(),
        (false, false) if inner.starts_with('[') => format!("{outer}{inner}"),
        (false, false) => format!("{outer}.{inner}"),
    }
}

/// Prefixes `message` with `path`, joining with a path the message already carries.
fn embed(path: &str, message: &str) -> String {
    let (inner, text) = split_embedded(message);
    format!("{PATH_MARK}{}{PATH_MARK}{text}", join_path(path, &inner))
}

/// Splits an embedded path off a message: `(path, text)`.
fn split_embedded(message: &str) -> (String, &str) {
    if let Some(rest) = message.strip_prefix(PATH_MARK)
        && let Some((path, text)) = rest.split_once(PATH_MARK)
    {
        return (path.to_owned(), text);
    }
    (String::new(), message)
}

/// Rewrites serde's wording where ours is clearer for a config author.
fn reword(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // "unknown field `x`, expected one of `a`, `b`" -> "unsupported: `x` (supported here: `a`, `b`)"
        return match rest.split_once(", expected ") {
            Some((field, expected)) => {
                let expected = expected.trim_start_matches("one of ");
                format!("unsupported: {field} (supported here: {expected})")
            }
            None => format!(
                "unsupported: {}",
                rest.trim_end_matches(", there are no fields")
            ),
        };
    }
    message.to_owned()
}

/// A configuration problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, if the config came from one.
    pub file: Option<PathBuf>,
    /// 1-based line and column in the file, where known.
    pub position: Option<(usize, usize)>,
    /// Where in the config (`workers[0].realms[1].name`); empty for syntax errors.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`, without file or position yet.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: None,
            position: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((line, column)) = self.position {
                write!(f, ":{line}:{column}")?;
            }
            write!(f, ": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Line and column of config nodes, by path.
#[derive(Debug, Default)]
struct Positions(HashMap<String, (usize, usize)>);

impl Positions {
    /// The position of `path`, or of its closest ancestor that has one.
    fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.0.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// Converts a byte offset to a 1-based (line, column), counting characters.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses JSON with comments and trailing commas, recording positions.
fn parse_jsonc(text: &str) -> Result<(Value, Positions), ConfigError> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        ..Default::default()
    };
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &options).map_err(|e| {
        ConfigError {
            file: None,
            position: Some((e.line_display(), e.column_display())),
            path: String::new(),
            message: format!("invalid JSON: {}", e.kind()),
        }
    })?;
    let mut positions = Positions::default();
    let value = match parsed.value {
        Some(v) => ast_to_value(text, &v, "", &mut positions)?,
        None => Value::Object(Map::new()),
    };
    Ok((value, positions))
}

fn ast_to_value(
    text: &str,
    node: &jsonc_parser::ast::Value<'_>,
    path: &str,
    positions: &mut Positions,
) -> Result<Value, ConfigError> {
    use jsonc_parser::ast::Value as Ast;
    Ok(match node {
        Ast::NullKeyword(_) => Value::Null,
        Ast::BooleanLit(b) => Value::Bool(b.value),
        Ast::StringLit(s) => Value::String(s.value.to_string()),
        Ast::NumberLit(n) => {
            let number: serde_json::Number = n.value.parse().map_err(|_| ConfigError {
                file: None,
                position: Some(line_column(text, n.range.start)),
                path: path.to_owned(),
                message: format!("invalid number {}", n.value),
            })?;
            Value::Number(number)
        }
        Ast::Array(a) => {
            let mut out = Vec::with_capacity(a.elements.len());
            for (i, element) in a.elements.iter().enumerate() {
                let p = format!("{path}[{i}]");
                positions
                    .0
                    .insert(p.clone(), line_column(text, element_start(element)));
                out.push(ast_to_value(text, element, &p, positions)?);
            }
            Value::Array(out)
        }
        Ast::Object(o) => {
            let mut out = Map::new();
            for prop in &o.properties {
                let key = prop.name.as_str();
                let p = join_path(path, key);
                positions
                    .0
                    .insert(p.clone(), line_column(text, prop.range.start));
                let value = ast_to_value(text, &prop.value, &p, positions)?;
                out.insert(key.to_owned(), value);
            }
            Value::Object(out)
        }
    })
}

fn element_start(node: &jsonc_parser::ast::Value<'_>) -> usize {
    use jsonc_parser::ast::Value as Ast;
    match node {
        Ast::NullKeyword(n) => n.range.start,
        Ast::BooleanLit(n) => n.range.start,
        Ast::StringLit(n) => n.range.start,
        Ast::NumberLit(n) => n.range.start,
        Ast::Array(n) => n.range.start,
        Ast::Object(n) => n.range.start,
    }
}

/// Parses YAML into the same JSON value; positions are known only for syntax errors.
fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        let message = e.to_string();
        ConfigError {
            file: None,
            position: yaml_position(&message),
            path: String::new(),
            message: format!("invalid YAML: {message}"),
        }
    })
}

/// serde-saphyr writes positions as "line N column M"; pick them out for our uniform format.
fn yaml_position(message: &str) -> Option<(usize, usize)> {
    let after = |word: &str| -> Option<usize> {
        let i = message.find(word)? + word.len();
        message[i..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((after("line")?, after("column")?))
}

/// Replaces string values that are exactly `${NAME}` or `$NAME` with the environment variable
/// NAME, as Crossbar does. A variable that is not set is an error at that path.
fn substitute_env(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match value {
        Value::String(s) => {
            let name = s
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .or_else(|| s.strip_prefix('$'));
            let Some(name) = name.filter(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) else {
                return;
            };
            match env(name) {
                Some(v) => *value = Value::String(v),
                None => errors.push(ConfigError::at(
                    path,
                    format!("environment variable `{name}` is not set"),
                )),
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                substitute_env(v, &format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                substitute_env(v, &join_path(path, k), env, errors);
            }
        }
        _ => {}
    }
}

/// A parsed config and where its relative paths resolve.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed config.
    pub config: NodeConfig,
    /// The config file, if any.
    pub file: Option<PathBuf>,
    /// The directory relative paths in the config resolve against: the config file's own.
    pub base_dir: PathBuf,
}

/// The file names `from_dir` looks for, in order (Crossbar's node directory last).
const CANDIDATES: [&str; 6] = [
    "config.json",
    "config.yaml",
    "config.yml",
    ".crossbar/config.json",
    ".crossbar/config.yaml",
    ".crossbar/config.yml",
];

impl LoadedConfig {
    /// The built-in default configuration.
    pub fn builtin() -> Self {
        // A unit test checks that the constant parses and validates.
        let config = parse_text(DEFAULT_CONFIG_JSON, false, &|_| None)
            .map(|(c, _)| c)
            .expect("the built-in default config is valid");
        Self {
            config,
            file: None,
            base_dir: PathBuf::from("."),
        }
    }

    /// Loads the config of a node directory: `config.json`, `config.yaml`/`.yml`, or the same under
    /// `.crossbar/` (a Crossbar node directory). `None` when there is none.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>, ConfigErrors> {
        for name in CANDIDATES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Self::from_file(&candidate).map(Some);
            }
        }
        Ok(None)
    }

    /// Loads and validates one config file, reading `${VAR}`s from the process environment.
    pub fn from_file(file: &Path) -> Result<Self, ConfigErrors> {
        Self::from_file_with_env(file, &|name| std::env::var(name).ok())
    }

    /// Loads and validates one config file with the given environment lookup. Every problem is
    /// reported: those the types find and, on what could be read, those validation finds.
    pub fn from_file_with_env(
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let with_file = |mut e: ConfigError| {
            e.file = Some(file.to_path_buf());
            e
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            ConfigErrors(vec![with_file(ConfigError::at(
                "",
                format!("cannot read: {e}"),
            ))])
        })?;
        let yaml = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let parsed = parse_document(&text, yaml, env);
        let base_dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut errors = parsed.errors;
        // Validation runs on what could be read (a syntax error leaves nothing to validate).
        let Some(config) = parsed.config else {
            return Err(ConfigErrors(errors.into_iter().map(with_file).collect()));
        };
        let mut validation = super::validate::validate(&config, &base_dir);
        // A broken realm was left out, so "role not defined" may only mean it was in there.
        if parsed.realm_left_out {
            validation.retain(|e| !e.message.contains("is not defined in any realm"));
        }
        for mut e in validation {
            // Validation saw the config with broken elements cut out: give its paths (and a path
            // quoted in its message) the file's indices again.
            e.path = original_path(&e.path, &parsed.cut_elements);
            if let Some((text, other)) = e.message.split_once(" is already used by ") {
                e.message = format!(
                    "{text} is already used by {}",
                    original_path(other, &parsed.cut_elements)
                );
            }
            e.position = parsed.positions.find(&e.path);
            errors.push(e);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors.into_iter().map(with_file).collect()));
        }
        Ok(Self {
            config,
            file: Some(file.to_path_buf()),
            base_dir,
        })
    }

    /// Runs the cross-reference and file checks (also part of `from_file`).
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let errors = super::validate::validate(&self.config, &self.base_dir);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// The most type-level problems reported for one file; each one found costs a re-parse.
const MAX_TYPE_ERRORS: usize = 50;

/// The outcome of parsing: the typed config (when the types could be read at all), every problem
/// found, and where nodes are.
struct Parsed {
    config: Option<NodeConfig>,
    errors: Vec<ConfigError>,
    positions: Positions,
    /// Whether a broken realm had to be left out, so cross-references to its roles prove nothing.
    realm_left_out: bool,
    /// List elements cut out, in the indices of the moment they were cut.
    cut_elements: Vec<String>,
}

/// Parses config text. serde stops at the first problem; to report them all, each problem's
/// section is cut out of the value (an unknown key, or the list element that holds a bad value)
/// and the rest parsed again, until it parses or nothing can be cut.
fn parse_document(text: &str, yaml: bool, env: &dyn Fn(&str) -> Option<String>) -> Parsed {
    let mut parsed = Parsed {
        config: None,
        errors: Vec::new(),
        positions: Positions::default(),
        realm_left_out: false,
        cut_elements: Vec::new(),
    };
    let mut value = match if yaml {
        parse_yaml(text).map(|v| (v, Positions::default()))
    } else {
        parse_jsonc(text)
    } {
        Ok((value, positions)) => {
            parsed.positions = positions;
            value
        }
        Err(e) => {
            parsed.errors.push(e);
            return parsed;
        }
    };
    substitute_env(&mut value, "", env, &mut parsed.errors);
    while parsed.errors.len() < MAX_TYPE_ERRORS {
        match serde_path_to_error::deserialize::<_, NodeConfig>(value.clone()) {
            Ok(config) => {
                parsed.config = Some(config);
                break;
            }
            Err(e) => {
                let outer = path_string(e.path());
                let message = e.into_inner().to_string();
                let (inner, text) = split_embedded(&message);
                let path = join_path(&outer, &inner);
                let cut = if text.starts_with("unknown field") {
                    path.clone()
                } else {
                    enclosing_element(&path)
                };
                parsed.errors.push(ConfigError::at(
                    original_path(&path, &parsed.cut_elements),
                    reword(text),
                ));
                parsed.realm_left_out |= cut.contains("realms[");
                if cut.is_empty() || !remove_path(&mut value, &cut) {
                    break;
                }
                if cut.ends_with(']') {
                    parsed.cut_elements.push(cut);
                }
            }
        }
    }
    for e in &mut parsed.errors {
        e.position = e.position.or_else(|| parsed.positions.find(&e.path));
    }
    parsed
}

/// Translates a path in the current (cut) value back to the file's indices: every element cut
/// earlier from the same list, at or before an index, shifted the elements behind it down by one.
fn original_path(path: &str, cut_elements: &[String]) -> String {
    let mut path = path.to_owned();
    for cut in cut_elements.iter().rev() {
        let Some(open) = cut.rfind('[') else { continue };
        let (list, index) = (&cut[..=open], &cut[open + 1..cut.len() - 1]);
        let Ok(cut_index) = index.parse::<usize>() else {
            continue;
        };
        let Some(rest) = path.strip_prefix(list) else {
            continue;
        };
        let Some(close) = rest.find(']') else {
            continue;
        };
        let Ok(i) = rest[..close].parse::<usize>() else {
            continue;
        };
        if i >= cut_index {
            path = format!("{list}{}{}", i + 1, &rest[close..]);
        }
    }
    path
}

/// The path of the innermost list element containing `path` (the transport, realm, role or
/// permission a bad value sits in), or `path` itself when it is in no list.
fn enclosing_element(path: &str) -> String {
    match path.rfind(']') {
        Some(end) => path[..=end].to_owned(),
        None => path.to_owned(),
    }
}

/// Removes the node at `path` (`a.b[2].c` syntax) from `value`; whether it was there.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, indices) = part
            .split_once('[')
            .map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            segments.push(Err(key));
        }
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            match index.trim_end_matches(']').parse::<usize>() {
                Ok(i) => segments.push(Ok(i)),
                Err(_) => return false,
            }
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match segment {
            Ok(i) => node.as_array_mut().and_then(|a| a.get_mut(*i)),
            Err(k) => node.as_object_mut().and_then(|o| o.get_mut(*k)),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Ok(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        (Err(k), Value::Object(o)) => o.remove(*k).is_some(),
        _ => false,
    }
}

/// Parses config text into the typed config and the positions of its nodes, failing on any
/// problem (used for the built-in config and in tests).
fn parse_text(
    text: &str,
    yaml: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(NodeConfig, Positions), ConfigErrors> {
    let parsed = parse_document(text, yaml, env);
    match parsed.config {
        Some(config) if parsed.errors.is_empty() => Ok((config, parsed.positions)),
        _ => Err(ConfigErrors(parsed.errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, ConfigErrors> {
        parse_text(text, false, &|name| {
            (name == "PORT").then(|| "9000".to_owned())
        })
        .map(|(c, _)| c)
    }

    fn only_error(text: &str) -> ConfigError {
        let ConfigErrors(mut errors) = parse(text).expect_err("invalid");
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    #[test]
    fn builtin_default_parses_and_validates() {
        let loaded = LoadedConfig::builtin();
        assert!(loaded.validate().is_ok());
    }

    #[test]
    fn comments_and_trailing_commas_are_accepted() {
        let cfg =
            parse("{ // node\n \"version\": 2, /* none */ \"workers\": [],\n}").expect("valid");
        assert_eq!(cfg.version, Some(2));
    }

    #[test]
    fn unknown_key_inside_a_tagged_section_is_unsupported_with_full_path_and_line() {
        let e = only_error("{\"workers\": [\n {\"type\": \"router\",\n  \"components\": []}]}");
        assert_eq!(e.path, "workers[0].components");
        assert!(
            e.message.starts_with("unsupported: `components`"),
            "{}",
            e.message
        );
        assert_eq!(e.position, Some((3, 3)));
    }

    #[test]
    fn unsupported_type_points_at_the_type_key() {
        let e = only_error(r#"{"workers": [{"type": "container"}]}"#);
        assert_eq!(e.path, "workers[0].type");
        assert_eq!(e.message, "unsupported: worker type `container`");
    }

    #[test]
    fn errors_deep_inside_nested_tagged_sections_keep_their_path() {
        let e = only_error(
            r#"{"workers": [{"type": "router", "transports": [
               {"type": "web", "endpoint": {"type": "tcp", "port": "abc"}, "paths": {}}]}]}"#,
        );
        assert_eq!(e.path, "workers[0].transports[0].endpoint.port");
        assert!(e.message.contains("expected u16"), "{}", e.message);
    }

    #[test]
    fn env_vars_are_substituted_and_missing_ones_named() {
        let cfg = parse(r#"{"controller": {"id": "${PORT}"}}"#).expect("valid");
        assert_eq!(cfg.controller.and_then(|c| c.id).as_deref(), Some("9000"));
        let e = only_error(r#"{"controller": {"id": "$NOPE"}}"#);
        assert_eq!(e.path, "controller.id");
        assert_eq!(e.message, "environment variable `NOPE` is not set");
    }

    #[test]
    fn every_type_error_is_reported_not_just_the_first() {
        let ConfigErrors(errors) = parse(
            r#"{"version": 2, "workers": [{"type": "router", "components": [],
                "realms": [{"roles": []}, {"name": "ok", "roles": [{"name": "r", "permissions": [{"uri": "", "match": "glob"}]}]}],
                "transports": [{"type": "mqtt"}, {"type": "rawsocket", "endpoint": {"type": "tcp", "port": "x"}}]}]}"#,
        )
        .expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "workers[0].components",
                "workers[0].realms[0]",
                "workers[0].realms[1].roles[0].permissions[0].match",
                "workers[0].transports[0].type",
                "workers[0].transports[1].endpoint.port",
            ],
            "{errors:?}"
        );
    }

    fn validation_errors(text: &str) -> Vec<(String, String)> {
        let cfg = parse(text).expect("parses");
        super::super::validate::validate(&cfg, Path::new("."))
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect()
    }

    #[test]
    fn each_endpoint_of_a_transport_has_its_own_anonymous_role() {
        let errors = validation_errors(
            r#"{"workers": [{"type": "router", "realms": [{"name": "r", "roles": [{"name": "a"}, {"name": "b"}]}],
                "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": 0},
                  "rawsocket": {"auth": {"anonymous": {"type": "static", "role": "a"}}},
                  "websocket": {"ws": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "b"}}}}}]}]}"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn auth_sections_are_checked_against_roles_methods_and_endpoints() {
        let errors = validation_errors(
            r#"{"workers": [{"type": "router",
                "realms": [{"name": "r", "roles": [{"name": "user"},
                    {"name": "both", "authorizer": "com.example.authorize", "permissions": [{"uri": "x"}]}]}],
                "transports": [{"type": "rawsocket", "endpoint": {"type": "tcp", "port": 0},
                  "auth": {
                    "ticket": {"type": "static", "principals": {"joe": {"ticket": "t", "role": "nobody"}}},
                    "wampcra": {"type": "dynamic"},
                    "scram": {"type": "static", "principals": {"al": {"kdf": "md5", "iterations": 1, "salt": "s",
                        "stored-key": "00", "server-key": "zz", "role": "user"}}},
                    "cryptosign": {"type": "jwt", "principals": {"c": {"authorized_keys": ["abc"], "role": "user"}}},
                    "tls": {"type": "static", "principals": {}},
                    "cookie": {}
                  }}]}]}"#,
        );
        let at = "workers[0].transports[0].auth";
        let expect = [
            (
                "workers[0].realms[0].roles[1]".to_owned(),
                "either `permissions` or an `authorizer`",
            ),
            (
                format!("{at}.ticket.principals.joe.role"),
                "role `nobody` is not defined",
            ),
            (
                format!("{at}.wampcra.authenticator"),
                "needs the procedure URI",
            ),
            (format!("{at}.scram.principals.al"), "unknown kdf"),
            (
                format!("{at}.cryptosign.type"),
                "`jwt` exists for `ticket` only",
            ),
            (
                format!("{at}.cryptosign.principals.c.authorized_keys[0]"),
                "64 hex digits",
            ),
            (format!("{at}.tls"), "ca_certificates"),
            (
                format!("{at}.cookie"),
                "WebSocket endpoint with a `cookie` section",
            ),
        ];
        for (path, text) in expect {
            assert!(
                errors.iter().any(|(p, m)| *p == path && m.contains(text)),
                "no error at {path} saying {text:?}: {errors:?}"
            );
        }
        assert_eq!(errors.len(), 8, "{errors:?}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = only_error("{\n \"version\": 2,\n \"workers\": [}\n");
        assert_eq!(e.position.map(|p| p.0), Some(3));
    }

    #[test]
    fn yaml_configs_load_like_json() {
        let (cfg, _) = parse_text(
            "version: 2\nworkers:\n  - type: router\n    realms:\n      - name: realm1\n",
            true,
            &|_| None,
        )
        .expect("valid yaml");
        assert_eq!(cfg.workers.len(), 1);
    }
}
