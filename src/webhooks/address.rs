//! Which addresses a callback may connect to: public unicast only, unless the host is opened in
//! `[callbacks] private_hosts`. The check runs on the URL at request time (IP literals) and on
//! every address a name resolves to at connect time (the resolver below is the one reqwest
//! connects with), so a name that resolves to 127.0.0.1 or to the metadata service at
//! 169.254.169.254, first or after a rebinding, gets no connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is a public unicast address (not loopback, private, link-local, shared,
/// multicast, broadcast, documentation, benchmarking, reserved or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (RFC 6598), IETF protocol assignments, benchmarking, reserved.
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        // NAT64 (64:ff9b::/96) and IPv4-compatible forms hide an IPv4 address.
        || (segments[0] == 0x0064 && segments[1] == 0xff9b)
        || segments[..6] == [0; 6])
}

/// Hosts opened for non-public addresses, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateHosts(Arc<Vec<String>>);

impl PrivateHosts {
    pub fn new(hosts: &[String]) -> Self {
        Self(Arc::new(
            hosts
                .iter()
                .map(|h| h.trim().trim_matches(['[', ']']).to_ascii_lowercase())
                .collect(),
        ))
    }

    pub fn contains(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']);
        self.0.iter().any(|open| open.eq_ignore_ascii_case(host))
    }
}

/// The resolver callbacks connect through: the system's, minus every non-public address of a
/// host that is not opened.
pub struct PublicResolver {
    pub open: PrivateHosts,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let open = self.open.contains(name.as_str());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved =
                tokio::task::spawn_blocking(move || (host.as_str(), 0).to_socket_addrs()).await??;
            let addrs: Vec<SocketAddr> = resolved
                .filter(|addr| open || is_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the callback host resolves to no public address".into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_is_public() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            let ip: IpAddr = blocked.parse().expect("an address");
            assert!(!is_public(ip), "{blocked}");
        }
        for open in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = open.parse().expect("an address");
            assert!(is_public(ip), "{open}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_gets_no_address_unless_opened() {
        let closed = PublicResolver {
            open: PrivateHosts::default(),
        };
        let name = || "localhost".parse::<Name>().expect("a name");
        assert!(closed.resolve(name()).await.is_err());
        let opened = PublicResolver {
            open: PrivateHosts::new(&["LOCALHOST".to_owned()]),
        };
        let addrs: Vec<SocketAddr> = opened.resolve(name()).await.expect("resolves").collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
