//! The HTTP bridge's web paths, Crossbar's keys: `publisher` (an HTTP POST publishes an event),
//! `caller` (an HTTP POST calls a procedure) and `webhook` (any HTTP POST becomes an event on one
//! topic), each with the realm and role of the session that acts for the requests, and the
//! request checks of `options`.

use serde::Deserialize;

/// `{"type": "publisher" | "caller" | "webhook", "realm", "role", "options"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpBridgePathConfig {
    /// The realm the bridge's session joins.
    pub realm: String,
    /// The role it joins with: its permissions bound what requests may publish or call.
    pub role: String,
    /// Request checks (and, for a webhook, its topic and answers).
    #[serde(default)]
    pub options: HttpBridgeOptions,
}

/// A bridge path's `options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpBridgeOptions {
    /// Signed requests: the key a request names (with `secret`).
    #[serde(default)]
    pub key: Option<String>,
    /// Signed requests: the secret the HMAC-SHA256 signature is computed with (with `key`).
    #[serde(default)]
    pub secret: Option<String>,
    /// The largest body accepted, in bytes (0 or absent: Switchboard's cap of 16 MiB).
    #[serde(default)]
    pub post_body_limit: Option<u64>,
    /// How far a request's `timestamp` may be from now, in seconds (Crossbar's default: 300; 0:
    /// any).
    #[serde(default)]
    pub timestamp_delta_limit: Option<u64>,
    /// Client addresses accepted: addresses and networks (`10.0.0.0/8`, `192.168.1.0/255.255.255.0`).
    #[serde(default)]
    pub require_ip: Option<Vec<String>>,
    /// Only requests over TLS.
    #[serde(default)]
    pub require_tls: Option<bool>,
    /// Accepted with a warning: the node has one log level.
    #[serde(default)]
    pub debug: Option<bool>,
    /// Webhook: the topic requests are published to.
    #[serde(default)]
    pub topic: Option<String>,
    /// Webhook: the body of the answer to a request that was published (default `OK`).
    #[serde(default)]
    pub success_response: Option<String>,
    /// Webhook: the body of the answer to one that was not (default `NOT OK`).
    #[serde(default)]
    pub error_response: Option<String>,
    /// GitHub's webhook secret: requests must carry its `X-Hub-Signature`.
    #[serde(default)]
    pub github_secret: Option<String>,
}

/// What a bridge path does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpBridgeKind {
    /// `publisher`.
    Publisher,
    /// `caller`.
    Caller,
    /// `webhook`.
    Webhook,
}

impl HttpBridgeKind {
    /// The path type's name.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpBridgeKind::Publisher => "publisher",
            HttpBridgeKind::Caller => "caller",
            HttpBridgeKind::Webhook => "webhook",
        }
    }
}

/// An address or network of `require_ip`: `10.1.2.3`, `10.0.0.0/8`, `192.168.1.0/255.255.255.0`
/// or the IPv6 forms (as Python's `ip_network`, which Crossbar uses, without its strictness about
/// host bits: `192.168.1.1/24` is the network 192.168.1.0/24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses one entry of `require_ip`.
    pub fn parse(text: &str) -> Result<Self, String> {
        use std::net::IpAddr;
        let bad = || {
            format!(
                "expected an IP address or network (`10.0.0.0/8`, `192.168.1.0/255.255.255.0`); got {text:?}"
            )
        };
        let (addr, mask) = match text.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match mask.map(str::trim) {
            None => bits,
            Some(m) => match m.parse::<u8>() {
                Ok(p) if p <= bits => p,
                Ok(_) => return Err(bad()),
                // A netmask (IPv4 only): contiguous ones, then zeros.
                Err(_) => match m.parse::<std::net::Ipv4Addr>() {
                    Ok(mask) if addr.is_ipv4() => {
                        let m = u32::from(mask);
                        if m.leading_ones() + m.trailing_zeros() != 32 {
                            return Err(bad());
                        }
                        m.leading_ones() as u8
                    }
                    _ => return Err(bad()),
                },
            },
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IpNetwork;

    #[test]
    fn require_ip_takes_addresses_prefixes_and_netmasks() {
        let ip = |s: &str| s.parse().expect("ip");
        let net = IpNetwork::parse("192.168.1.1/255.255.255.0").expect("netmask");
        assert!(net.contains(ip("192.168.1.77")) && !net.contains(ip("192.168.2.1")));
        let one = IpNetwork::parse("127.0.0.1").expect("address");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(one.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped IPv6");
        let v6 = IpNetwork::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains(ip("2001:db8::1")) && !v6.contains(ip("2001:db9::1")));
        let all = IpNetwork::parse("0.0.0.0/0").expect("all");
        assert!(all.contains(ip("8.8.8.8")));
        for bad in [
            "localhost",
            "10.0.0.0/33",
            "10.0.0.0/255.0.255.0",
            "::1/255.255.255.0",
            "",
        ] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad}");
        }
    }
}
