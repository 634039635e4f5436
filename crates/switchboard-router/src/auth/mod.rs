//! Authentication: which method a HELLO gets, the method's challenge, and the identity it yields.

pub mod cryptosign;
pub mod jwt;
pub mod scram;
pub mod wampcra;

/// TLS channel binding data a challenge can be tied to (spec, "Channel Binding").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The binding type as named on the wire: only `tls-server-end-point` (RFC 5929) is possible
    /// with rustls, which does not expose `tls-unique`.
    pub kind: &'static str,
    /// The binding data: for `tls-server-end-point`, SHA-256 of the server's leaf certificate.
    pub data: Vec<u8>,
}
