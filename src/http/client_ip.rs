//! Where a request comes from: the connection's address, or, when that is a trusted proxy,
//! the address the proxies recorded in the client-IP header (`X-Forwarded-For` form: a comma
//! list, nearest hop last). Only trusted hops are believed: the walk goes from the connection
//! back through the header and stops at the first address that is not a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::ratelimit::canonical;

/// The proxies whose header is believed, and the header's name.
#[derive(Debug, Clone)]
pub struct ClientIp {
    pub trusted: Vec<IpNet>,
    pub header: HeaderName,
}

/// A request's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client's address as far as trusted hops tell.
    pub ip: IpAddr,
    /// Every hop was a trusted proxy: the request is the proxies' own (internal), not an end
    /// user's, and no per-address limit applies to it.
    pub internal: bool,
}

impl ClientIp {
    /// Loopback and private ranges: the hosts next to the daemon (as Rails' default).
    pub fn default_trusted() -> Vec<IpNet> {
        [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ]
        .iter()
        .map(|net| net.parse().expect("the default ranges are valid CIDR"))
        .collect()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The origin of a request that came over a connection from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Origin {
        let mut current = canonical(peer);
        if !self.trusts(current) {
            return Origin {
                ip: current,
                internal: false,
            };
        }
        // Several header lines are one list in order (RFC 9110 5.3); the last is nearest.
        // Split as bytes: a proxy appends its hop to whatever the client sent, so a byte that
        // is not ASCII in the client's part must not spoil the proxies' parts.
        for value in headers.get_all(&self.header).iter().rev() {
            for hop in value.as_bytes().rsplit(|&b| b == b',') {
                let Some(ip) = parse_hop(hop) else {
                    // A trusted proxy writes well-formed entries: what cannot be read was
                    // written by the client. The request counts under the last trusted hop,
                    // limited like an end user's (never internal: garbage must not buy a way
                    // around the per-address budget).
                    return Origin {
                        ip: current,
                        internal: false,
                    };
                };
                current = ip;
                if !self.trusts(ip) {
                    return Origin {
                        ip,
                        internal: false,
                    };
                }
            }
        }
        // Every hop was a trusted proxy.
        Origin {
            ip: current,
            internal: true,
        }
    }
}

/// One entry: `192.0.2.1`, `2001:db8::1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`, optionally
/// quoted.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim().trim_matches('"');
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn client_ip(trusted: &[&str]) -> ClientIp {
        ClientIp {
            trusted: trusted.iter().map(|n| n.parse().expect("net")).collect(),
            header: HeaderName::from_static("x-forwarded-for"),
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_its_header_says() {
        let edge = client_ip(&["10.0.0.0/8"]);
        let origin = edge.resolve(ip("203.0.113.9"), &headers(&["198.51.100.1"]));
        assert_eq!(
            origin,
            Origin {
                ip: ip("203.0.113.9"),
                internal: false
            }
        );
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop() {
        let edge = client_ip(&["10.0.0.0/8"]);
        // The client forged the first entry; the proxies appended the real one.
        let origin = edge.resolve(
            ip("10.0.0.2"),
            &headers(&["1.2.3.4, 198.51.100.7", "10.0.0.1:8080"]),
        );
        assert_eq!(origin.ip, ip("198.51.100.7"));
        assert!(!origin.internal);
        let v6 = edge.resolve(ip("::ffff:10.0.0.2"), &headers(&["[2001:db8::5]:443"]));
        assert_eq!(v6.ip, ip("2001:db8::5"));
    }

    #[test]
    fn a_proxys_own_request_is_internal_and_garbage_is_limited_not_internal() {
        let edge = client_ip(&["10.0.0.0/8", "127.0.0.1/32"]);
        assert!(edge.resolve(ip("127.0.0.1"), &HeaderMap::new()).internal);
        assert!(
            edge.resolve(ip("10.1.1.1"), &headers(&["10.2.2.2"]))
                .internal
        );
        let garbled = edge.resolve(ip("10.1.1.1"), &headers(&["198.51.100.7, not-an-ip"]));
        assert_eq!(garbled.ip, ip("10.1.1.1"));
        assert!(
            !garbled.internal,
            "garbage must not switch the per-address limit off"
        );
        // A byte that is not ASCII in the client's part spoils only that part.
        let mut map = HeaderMap::new();
        map.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.8, 10.0.0.1").expect("value"),
        );
        let origin = edge.resolve(ip("10.0.0.2"), &map);
        assert_eq!(origin.ip, ip("198.51.100.8"));
        assert!(!origin.internal);
        assert!(
            !ClientIp::default_trusted().is_empty()
                && client_ip(&[]).resolve(ip("127.0.0.1"), &headers(&["10.0.0.1"]))
                    == Origin {
                        ip: ip("127.0.0.1"),
                        internal: false
                    }
        );
    }
}
