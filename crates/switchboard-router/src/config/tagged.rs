//! `type`-tagged config sections (workers, transports, endpoints, web paths): the `tagged!` macro
//! that dispatches them without losing the path of an error inside, and the path bookkeeping it
//! shares with the parser.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Dispatches a `"type"`-tagged config section to the struct of its variant, keeping error paths.
///
/// serde's own internally tagged enums buffer the section and lose the path of errors inside it;
/// this reads the section as a map, takes `type`, and deserializes the rest with its own path
/// tracking, embedding the inner path in the error for the parser to join.
macro_rules! tagged {
    ($ty:ident, $what:literal, { $($tag:literal => $variant:ident($inner:ty)),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
                let tag = $crate::config::tagged::take_tag::<D::Error>(&mut map)?;
                match tag.as_str() {
                    $($tag => $crate::config::tagged::nested::<$inner, D::Error>(map).map($ty::$variant),)+
                    other => Err($crate::config::tagged::unsupported_tag::<D::Error>($what, other)),
                }
            }
        }
    };
}

/// Marks an error message that carries the path of a nested section: `MARK path MARK message`.
const PATH_MARK: char = '\u{1}';

/// Takes the `type` key of a tagged section.
pub(super) fn take_tag<E: serde::de::Error>(map: &mut Map<String, Value>) -> Result<String, E> {
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
pub(super) fn nested<T: DeserializeOwned, E: serde::de::Error>(
    map: Map<String, Value>,
) -> Result<T, E> {
    serde_path_to_error::deserialize(Value::Object(map))
        .map_err(|e| E::custom(embed(&path_string(e.path()), &e.into_inner().to_string())))
}

/// The error for a `type` value we do not implement.
pub(super) fn unsupported_tag<E: serde::de::Error>(what: &str, tag: &str) -> E {
    // The types Switchboard will not build, with the reason and what to do instead.
    let why = match (what, tag) {
        ("web path", "wsgi" | "cgi" | "resource") => {
            ": it runs Python (or CGI) code inside Crossbar's worker process, and Switchboard's \
             router runs no Python; run the application as a guest worker (its own HTTP server) \
             and put a `reverseproxy` path in front of it"
        }
        _ => "",
    };
    E::custom(embed(
        "type",
        &format!("unsupported: {what} type `{tag}`{why}"),
    ))
}

pub(super) fn path_string(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." { String::new() } else { s }
}

pub(super) fn join_path(outer: &str, inner: &str) -> String {
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
pub(super) fn split_embedded(message: &str) -> (String, &str) {
    if let Some(rest) = message.strip_prefix(PATH_MARK)
        && let Some((path, text)) = rest.split_once(PATH_MARK)
    {
        return (path.to_owned(), text);
    }
    (String::new(), message)
}
