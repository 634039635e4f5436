//! Where a transport listens: a TCP port or a Unix socket, with or without TLS.

use std::path::PathBuf;

use serde::Deserialize;

/// Where a transport listens.
#[derive(Debug, Clone)]
pub enum EndpointConfig {
    /// A TCP port.
    Tcp(TcpEndpointConfig),
    /// A Unix domain socket.
    Unix(UnixEndpointConfig),
}

tagged!(EndpointConfig, "endpoint", {
    "tcp" => Tcp(TcpEndpointConfig),
    "unix" => Unix(UnixEndpointConfig),
});

impl std::fmt::Display for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = if self.tls().is_some() { " (TLS)" } else { "" };
        match self {
            EndpointConfig::Tcp(t) => {
                write!(
                    f,
                    "tcp:{}:{}{tls}",
                    t.interface.as_deref().unwrap_or("0.0.0.0"),
                    t.port
                )
            }
            EndpointConfig::Unix(u) => write!(f, "unix:{}{tls}", u.path.display()),
        }
    }
}

impl EndpointConfig {
    /// The endpoint's TLS settings, if it uses TLS.
    pub fn tls(&self) -> Option<&TlsConfig> {
        match self {
            EndpointConfig::Tcp(t) => t.tls.as_ref(),
            EndpointConfig::Unix(u) => u.tls.as_ref(),
        }
    }
}

/// `{"type": "tcp"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpEndpointConfig {
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Address to bind; all IPv4 interfaces when absent.
    #[serde(default)]
    pub interface: Option<String>,
    /// Listen backlog.
    #[serde(default)]
    pub backlog: Option<u32>,
    /// SO_REUSEPORT, so several processes can share the port.
    #[serde(default)]
    pub shared: bool,
    /// IP version (4 or 6).
    #[serde(default)]
    pub version: Option<u8>,
    /// TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `{"type": "unix"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixEndpointConfig {
    /// Socket path; relative paths resolve against the config's directory.
    pub path: PathBuf,
    /// Listen backlog.
    #[serde(default)]
    pub backlog: Option<u32>,
    /// TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// An endpoint's TLS section (Crossbar's keys). Files are PEM, relative to the config's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The private key.
    pub key: PathBuf,
    /// The server certificate.
    pub certificate: PathBuf,
    /// Intermediate certificates sent after the server certificate.
    #[serde(default)]
    pub chain_certificates: Vec<PathBuf>,
    /// CA certificates (for client certificates; with authentication `tls`).
    #[serde(default)]
    pub ca_certificates: Vec<PathBuf>,
    /// OpenSSL-style cipher list for TLS 1.2 (TLS 1.3 suites are always on).
    #[serde(default)]
    pub ciphers: Option<String>,
    /// Diffie-Hellman parameters: accepted for compatibility; rustls uses only ECDHE key exchange.
    #[serde(default)]
    pub dhparam: Option<PathBuf>,
}
