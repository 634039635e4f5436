//! The JSON value to the typed config, reporting every type-level problem rather than serde's first:
//! each problem's section is cut out and the rest parsed again, and paths are translated back to
//! the file's indices.

use serde_json::Value;

use super::syntax::{Positions, parse_jsonc, parse_yaml, substitute_env};
use super::tagged::{join_path, path_string, split_embedded};
use super::{ConfigError, ConfigErrors, NodeConfig};

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

/// The most type-level problems reported for one file; each one found costs a re-parse.
const MAX_TYPE_ERRORS: usize = 50;

/// The outcome of parsing: the typed config (when the types could be read at all), every problem
/// found, and where nodes are.
pub(super) struct Parsed {
    pub(super) config: Option<NodeConfig>,
    /// The document as read, `${VAR}`s substituted (what a reload compares).
    pub(super) raw: serde_json::Value,
    pub(super) errors: Vec<ConfigError>,
    pub(super) positions: Positions,
    /// Whether a broken realm had to be left out, so cross-references to its roles prove nothing.
    pub(super) realm_left_out: bool,
    /// List elements cut out, in the indices of the moment they were cut.
    pub(super) cut_elements: Vec<String>,
}

/// Parses config text. serde stops at the first problem; to report them all, each problem's
/// section is cut out of the value (an unknown key, or the list element that holds a bad value)
/// and the rest parsed again, until it parses or nothing can be cut.
pub(super) fn parse_document(
    text: &str,
    yaml: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Parsed {
    let mut parsed = Parsed {
        config: None,
        raw: serde_json::Value::Null,
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
    parsed.raw = value.clone();
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
pub(super) fn original_path(path: &str, cut_elements: &[String]) -> String {
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
pub(super) fn parse_text(
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
