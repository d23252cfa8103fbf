//! The client's address behind reverse proxies. Behind a proxy every connection comes from the
//! proxy's address, so a limit per address (failed logins, connections) would lump every client
//! together: 20 failures anywhere would lock everybody out. The proxies named by the operator
//! (`serve --trusted-proxy`) are believed about the client's address in their header
//! (`X-Forwarded-For` by default, or RFC 7239's `Forwarded`); nobody else is.
//!
//! Invariants: a request from an address that is not a trusted proxy is that address's,
//! whatever its headers say; through trusted proxies the client is the rightmost address in the
//! header that is not itself a trusted proxy (the left part is whatever the client wrote); a
//! header that is missing, too long or does not read as addresses leaves the proxy's own address
//! (a stricter count, never a made-up one).

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Longest header read (a forged header cannot make the server parse megabytes).
const MAX_HEADER: usize = 4096;

/// The address of the client a request came from, through trusted proxies (the listener puts
/// it on each request beside axum's `ConnectInfo`, which stays the connection's own peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// A header name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an HTTP header name (letters, digits and - only, as X-Forwarded-For)")]
pub struct BadHeaderName(String);

/// The reverse proxies believed about a client's address, and the header they say it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: HeaderName,
}

impl TrustedProxies {
    /// No proxy is trusted: every request is its connection's peer's.
    pub const NONE: TrustedProxies = TrustedProxies {
        nets: Vec::new(),
        header: HeaderName::from_static("x-forwarded-for"),
    };

    /// The proxies in `nets` (single addresses are /32 or /128), saying the client's address in
    /// the header named `header` (`X-Forwarded-For` style, a comma-separated list, or
    /// `Forwarded`, RFC 7239).
    pub fn new(nets: Vec<IpNet>, header: &str) -> Result<Self, BadHeaderName> {
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| BadHeaderName(header.chars().take(40).collect()))?;
        Ok(TrustedProxies { nets, header })
    }

    /// A trusted proxy as written (`serve --trusted-proxy`): a network (10.0.0.0/8), or one
    /// address (as its /32 or /128).
    pub fn parse_net(text: &str) -> Result<IpNet, String> {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                format!("{text:?} is neither an address (10.0.0.5, ::1) nor a network (10.0.0.0/8)")
            })
    }

    /// Whether `address` is a trusted proxy.
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.nets.iter().any(|net| net.contains(&address))
    }

    /// The client's address of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops = Vec::new();
        let mut length = 0;
        for value in headers.get_all(&self.header) {
            length += value.len();
            let Ok(text) = value.to_str() else {
                return peer;
            };
            if length > MAX_HEADER {
                return peer;
            }
            for hop in text.split(',') {
                match self.hop(hop) {
                    Some(address) => hops.push(address),
                    None => hops.clear(),
                }
            }
        }
        // Right to left, past the trusted proxies; an unreadable entry ends the trust (it
        // cleared what came before it).
        hops.iter()
            .rev()
            .find(|a| !self.trusts(**a))
            .copied()
            .or_else(|| hops.first().copied())
            .unwrap_or(peer)
    }

    /// One entry of the header: an address (a port and IPv6 brackets allowed), or in
    /// `Forwarded` the `for=` parameter of an element.
    fn hop(&self, hop: &str) -> Option<IpAddr> {
        let hop = hop.trim();
        let text = if self.header == "forwarded" {
            hop.split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .map(|(_, value)| value.trim().trim_matches('"'))?
        } else {
            hop
        };
        let address = text
            .parse::<IpAddr>()
            .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
            .or_else(|_| text.trim_start_matches('[').trim_end_matches(']').parse())
            .ok()?;
        Some(canonical(address))
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::NONE
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) as
/// the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_only_to_its_right() {
        let proxies = TrustedProxies::new(
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
            ],
            "X-Forwarded-For",
        )
        .unwrap();
        let xff = |v: &[&str]| headers("x-forwarded-for", v);
        // Not a proxy: its header is nobody's word.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &xff(&["1.2.3.4"])),
            ip("203.0.113.9")
        );
        // Through one proxy, then two (the inner one trusted too).
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&["198.51.100.1"])),
            ip("198.51.100.1")
        );
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&["198.51.100.1, 10.1.2.3"])),
            ip("198.51.100.1")
        );
        // What the client wrote at the left is passed over; two header lines read as one list.
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&["6.6.6.6, 198.51.100.1"])),
            ip("198.51.100.1")
        );
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&["6.6.6.6", "198.51.100.1"])),
            ip("198.51.100.1")
        );
        // Ports, brackets and mapped addresses.
        assert_eq!(
            proxies.client(ip("::ffff:192.0.2.7"), &xff(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&["198.51.100.1:5000"])),
            ip("198.51.100.1")
        );
        // Missing, unreadable or huge: the proxy's own address.
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &HeaderMap::new()),
            ip("192.0.2.7")
        );
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&["6.6.6.6, bogus"])),
            ip("192.0.2.7")
        );
        let long = format!("{}198.51.100.1", "1.1.1.1, ".repeat(600));
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&[&long])),
            ip("192.0.2.7")
        );
        // Only proxies in the header: the first of them.
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &xff(&["10.9.9.9"])),
            ip("10.9.9.9")
        );
        // Nothing trusted: never believed.
        assert_eq!(
            TrustedProxies::NONE.client(ip("192.0.2.7"), &xff(&["1.2.3.4"])),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn forwarded_is_read_by_its_for_parameter() {
        let proxies =
            TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()], "Forwarded").unwrap();
        let h = headers(
            "forwarded",
            &["for=6.6.6.6;proto=http, for=\"[2001:db8:cafe::17]:4711\";by=127.0.0.1"],
        );
        assert_eq!(proxies.client(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
    }
}
