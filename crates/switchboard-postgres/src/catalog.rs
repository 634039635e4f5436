//! Which SQL functions become which procedures: the functions of the configured schemas (each
//! under its URI prefix) and the configured `procedures`, read from `pg_proc`, with what a call
//! needs to know of each (argument names and types, defaults, variadic, what it returns).

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::GenericClient;

use crate::config::{CalleeConfig, ProcedureConfig, ResultShape, RoleMode};

/// A function as the bridge calls it.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// `"schema"."name"`, quoted.
    pub qualified: String,
    /// `schema.name`, for logs.
    pub display: String,
    /// The input parameters, in order.
    pub params: Vec<Param>,
    /// How many of the last parameters have defaults.
    pub defaults: usize,
    /// Whether the last parameter is VARIADIC.
    pub variadic: bool,
    /// Whether it returns SETOF.
    pub returns_set: bool,
    /// Its return type (`format_type`): `void`, `bytea`, `integer`, ...
    pub returns: String,
    /// STABLE or IMMUTABLE: runs read-only unless configured otherwise.
    pub read_only: bool,
    /// `(args jsonb, kwargs jsonb[, details jsonb])`: takes WAMP's payload as it is.
    pub raw: bool,
    /// The configured result shape.
    pub shape: Option<ResultShape>,
    /// The configured timeout, in milliseconds.
    pub timeout: Option<u64>,
}

/// One input parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its type (`format_type`), an array type for a VARIADIC parameter.
    pub ty: String,
}

/// What `pg_proc` says of a function.
const FUNCTION_COLUMNS: &str = "
    SELECT p.oid::int8, n.nspname::text, p.proname::text, p.proretset,
           p.provolatile::text, format_type(p.prorettype, NULL),
           coalesce(p.proargnames, '{}'::text[]),
           coalesce(p.proargmodes::text[], '{}'::text[]),
           array(SELECT format_type(t, NULL)
                 FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, i) ORDER BY i),
           p.pronargdefaults::int4, p.provariadic <> 0
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace";

/// A row of [`FUNCTION_COLUMNS`].
#[derive(Clone)]
struct Row {
    schema: String,
    name: String,
    retset: bool,
    volatility: String,
    returns: String,
    argnames: Vec<String>,
    argmodes: Vec<String>,
    argtypes: Vec<String>,
    defaults: i32,
    variadic: bool,
}

fn row(r: &tokio_postgres::Row) -> Row {
    Row {
        schema: r.get(1),
        name: r.get(2),
        retset: r.get(3),
        volatility: r.get(4),
        returns: r.get(5),
        argnames: r.get(6),
        argmodes: r.get(7),
        argtypes: r.get(8),
        defaults: r.get(9),
        variadic: r.get(10),
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Row {
    /// The function, or why it cannot be called through WAMP.
    fn function(self) -> Result<Function, String> {
        let display = format!("{}.{}", self.schema, self.name);
        // proargnames lists every argument (OUT ones too) where proargmodes is set; the input
        // ones are those of mode i (in), b (inout) and v (variadic).
        let input_names: Vec<Option<String>> = if self.argmodes.is_empty() {
            (0..self.argtypes.len())
                .map(|i| self.argnames.get(i).filter(|n| !n.is_empty()).cloned())
                .collect()
        } else {
            self.argmodes
                .iter()
                .enumerate()
                .filter(|(_, m)| matches!(m.as_str(), "i" | "b" | "v"))
                .map(|(i, _)| self.argnames.get(i).filter(|n| !n.is_empty()).cloned())
                .collect()
        };
        let mut params = Vec::new();
        for (i, ty) in self.argtypes.iter().enumerate() {
            let Some(name) = input_names.get(i).cloned().flatten() else {
                return Err(format!(
                    "{display}: parameter {} has no name (WAMP arguments bind by name)",
                    i + 1
                ));
            };
            params.push(Param {
                name,
                ty: ty.clone(),
            });
        }
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        let raw = matches!(
            names.as_slice(),
            ["args", "kwargs"] | ["args", "kwargs", "details"]
        ) && params.iter().all(|p| p.ty == "jsonb");
        Ok(Function {
            qualified: format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name)),
            display,
            params,
            defaults: usize::try_from(self.defaults).unwrap_or(0),
            variadic: self.variadic,
            returns_set: self.retset,
            returns: self.returns,
            read_only: self.volatility != "v",
            raw,
            shape: None,
            timeout: None,
        })
    }
}

/// The procedures to register: URI -> function. Problems (an overloaded name, a function that
/// cannot be called, a configured function that does not exist) are logged and leave that
/// procedure out.
pub async fn discover(
    client: &impl GenericClient,
    config: &CalleeConfig,
) -> Result<BTreeMap<String, Function>, tokio_postgres::Error> {
    let mut found = BTreeMap::new();
    let schemas: Vec<String> = config.schemas.iter().map(|s| s.schema.clone()).collect();
    if !schemas.is_empty() {
        // With a role map, only what one of the mapped roles may execute.
        let roles: Option<Vec<String>> = (config.roles.mode == RoleMode::Map).then(|| {
            config
                .roles
                .map
                .values()
                .chain(config.roles.default.iter())
                .cloned()
                .collect()
        });
        let sql = format!(
            "{FUNCTION_COLUMNS}
             WHERE n.nspname = ANY($1) AND p.prokind = 'f'
               AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
               AND ($2::text[] IS NULL OR EXISTS (
                   SELECT 1 FROM unnest($2::text[]) AS r(name)
                   JOIN pg_roles pr ON pr.rolname = r.name
                   WHERE has_function_privilege(pr.oid, p.oid, 'EXECUTE')))
             ORDER BY n.nspname, p.proname"
        );
        let rows = client.query(&sql, &[&schemas, &roles]).await?;
        let mut by_name: HashMap<(String, String), Vec<Row>> = HashMap::new();
        for r in &rows {
            let r = row(r);
            by_name
                .entry((r.schema.clone(), r.name.clone()))
                .or_default()
                .push(r);
        }
        for schema in &config.schemas {
            let mut names: Vec<&(String, String)> = by_name
                .keys()
                .filter(|(s, _)| *s == schema.schema)
                .collect();
            names.sort();
            for key in names {
                let overloads = &by_name[key];
                let uri = format!("{}{}", schema.prefix, key.1);
                if overloads.len() > 1 {
                    tracing::warn!(
                        function = %format!("{}.{}", key.0, key.1),
                        "overloaded: not registered (name one signature in `procedures`, \
                         as \"{}.{}(type, ...)\")",
                        key.0,
                        key.1
                    );
                    continue;
                }
                match overloads[0].clone().function() {
                    Ok(f) => {
                        found.insert(uri, f);
                    }
                    Err(why) => tracing::warn!("not registered: {why}"),
                }
            }
        }
    }
    for p in &config.procedures {
        match explicit(client, p).await? {
            Ok(f) => {
                found.insert(p.uri.clone(), f);
            }
            Err(why) => tracing::warn!(procedure = %p.uri, "not registered: {why}"),
        }
    }
    Ok(found)
}

/// A configured `procedures` entry: its function by name (one of that name) or by signature.
async fn explicit(
    client: &impl GenericClient,
    p: &ProcedureConfig,
) -> Result<Result<Function, String>, tokio_postgres::Error> {
    // Looked up in the catalog rather than through to_regproc(): resolving a name needs USAGE
    // on its schema, which the bridge's login role may well not have (its mapped roles do).
    let Some((schema, name, types)) = split_signature(&p.function) else {
        return Ok(Err(format!(
            "`{}` is not `schema.name` or `schema.name(type, ...)`",
            p.function
        )));
    };
    let oids = client
        .query(
            "SELECT p.oid::int8 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = $1 AND p.proname = $2 AND p.prokind = 'f'
               AND ($3::text[] IS NULL OR (
                   p.pronargs = cardinality($3::text[])
                   AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS u(t) WHERE to_regtype(t) IS NULL)
                   AND array_to_string(p.proargtypes::oid[], ',') =
                       array_to_string(ARRAY(SELECT to_regtype(t)::oid
                                             FROM unnest($3::text[]) WITH ORDINALITY AS u(t, i)
                                             ORDER BY i), ',')))",
            &[&schema, &name, &types],
        )
        .await?;
    let oid: i64 = match oids.as_slice() {
        [one] => one.get(0),
        [] => return Ok(Err(format!("no function `{}`", p.function))),
        _ => {
            return Ok(Err(format!(
                "`{}` is overloaded: give its argument types, as `{}(type, ...)`",
                p.function, p.function
            )));
        }
    };
    let sql = format!("{FUNCTION_COLUMNS} WHERE p.oid = $1::int8::oid");
    let r = row(&client.query_one(&sql, &[&oid]).await?);
    Ok(r.function().map(|mut f| {
        f.shape = p.result;
        f.timeout = p.timeout;
        if let Some(read_only) = p.read_only {
            f.read_only = read_only;
        }
        f
    }))
}

/// `schema.name` or `schema.name(type, ...)` (a name without schema is in `public`): the schema,
/// the name and the argument types where given.
fn split_signature(function: &str) -> Option<(String, String, Option<Vec<String>>)> {
    let (name, types) = match function.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.trim_end().strip_suffix(')')?;
            // Commas inside a type's own parentheses (`numeric(10,2)`) do not split it.
            let mut types = Vec::new();
            let (mut depth, mut current) = (0usize, String::new());
            for ch in inner.chars() {
                match ch {
                    '(' => depth += 1,
                    ')' => depth = depth.checked_sub(1)?,
                    ',' if depth == 0 => {
                        types.push(std::mem::take(&mut current).trim().to_owned());
                        continue;
                    }
                    _ => {}
                }
                current.push(ch);
            }
            if depth != 0 {
                return None;
            }
            if !current.trim().is_empty() || !types.is_empty() {
                types.push(current.trim().to_owned());
            }
            if types.iter().any(String::is_empty) {
                return None;
            }
            (name.trim(), Some(types))
        }
        None => (function.trim(), None),
    };
    let (schema, name) = name.split_once('.').unwrap_or(("public", name));
    if schema.is_empty() || name.is_empty() {
        return None;
    }
    Some((schema.to_owned(), name.to_owned(), types))
}

#[cfg(test)]
mod tests {
    use super::split_signature;

    #[test]
    fn function_names_split_into_schema_name_and_types() {
        assert_eq!(
            split_signature("api.f(int, text)"),
            Some((
                "api".into(),
                "f".into(),
                Some(vec!["int".into(), "text".into()])
            ))
        );
        assert_eq!(
            split_signature("api.f()"),
            Some(("api".into(), "f".into(), Some(vec![])))
        );
        assert_eq!(
            split_signature("api.g(numeric(10,2), text)"),
            Some((
                "api".into(),
                "g".into(),
                Some(vec!["numeric(10,2)".into(), "text".into()])
            ))
        );
        assert_eq!(split_signature("api.f(int,)"), None);
        assert_eq!(
            split_signature("f"),
            Some(("public".into(), "f".into(), None))
        );
        assert_eq!(split_signature("api.f(int"), None);
        assert_eq!(split_signature(".f"), None);
    }
}
