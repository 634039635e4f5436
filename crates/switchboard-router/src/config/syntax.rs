//! Config text to a JSON value: JSON with comments and trailing commas (jsonc-parser) with the line
//! and column of every node, or YAML (serde-saphyr); then `${VAR}` substitution.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ConfigError;
use super::tagged::join_path;

/// Line and column of config nodes, by path.
#[derive(Debug, Clone, Default)]
pub(super) struct Positions(HashMap<String, (usize, usize)>);

impl Positions {
    /// The position of `path`, or of its closest ancestor that has one.
    pub(super) fn find(&self, path: &str) -> Option<(usize, usize)> {
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
pub(super) fn parse_jsonc(text: &str) -> Result<(Value, Positions), ConfigError> {
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
pub(super) fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
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
pub(super) fn substitute_env(
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
