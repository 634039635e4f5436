//! The node configuration: Crossbar.io's node config format (version 2), as typed serde structs.
//! This is the router's ground floor: parsed and validated data only, importing nothing from the
//! layers above; building what the data describes (TLS acceptors, authentication, listeners) is
//! the node's preparation step (`node::prepare`).
//!
//! The types mirror the file. Every struct rejects unknown fields, so a key we do not support yet is
//! an error that names it instead of being silently ignored; `type`-tagged sections (workers,
//! transports, endpoints, web paths) are dispatched by `tagged!` so that errors inside them keep
//! their full path. Loading reads JSON with comments or YAML and attaches file, line and column to
//! every error; validation checks what the types cannot see (cross-references, clashing
//! endpoints) and reports every problem at once. `switchboard check` and `switchboard start` run
//! exactly the same code: `node::prepare_dir`.
//!
//! One module per part of the file: [`NodeConfig`] and its workers (`node`), realms and roles
//! (`realm`), guest workers (`guest`), transports and web paths (`transport`), the HTTP bridge's
//! paths (`http_bridge`), where they listen (`endpoint`), what their
//! WAMP endpoints speak (`protocol`) and how they authenticate (`auth`).

// First: the modules after it use its `tagged!` macro.
#[macro_use]
mod tagged;

mod auth;
mod cluster;
mod component;
mod default;
mod endpoint;
mod error;
mod guest;
mod http_bridge;
mod link;
mod load;
mod node;
mod parse;
mod protocol;
mod realm;
mod syntax;
mod transport;
mod validate;

pub use auth::*;
pub use cluster::*;
pub use component::*;
pub use default::*;
pub use endpoint::*;
pub use error::*;
pub use guest::*;
pub use http_bridge::*;
pub use link::*;
pub use load::*;
pub use node::*;
pub use protocol::*;
pub use realm::*;
pub use transport::*;
