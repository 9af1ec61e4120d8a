//! Where the server may connect on a platform's behalf (webhooks): public unicast addresses, and
//! the private networks the operator lists in `webhook_allowed_networks`.
//!
//! A URL's host is checked as the `url` crate (WHATWG) normalises it, so every IPv4 notation
//! (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) is the address it means; IPv6 forms that carry
//! an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4
//! `2002::/16`) are judged by that IPv4 address. A host name is checked on every address it
//! resolves to, at registration and again by [`Resolver`] at each connection (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Networks given as CIDR (`10.0.0.0/8`, `fd00::/8`) or bare addresses.
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<(IpAddr, u8)>);

impl Networks {
    /// Parses the list; the first entry that is not a network is the error.
    pub fn parse(list: &[String]) -> Result<Networks, String> {
        list.iter()
            .map(|s| parse_net(s).ok_or_else(|| s.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(Networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, len)| in_net(ip, canonical(*net), *len))
    }
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The IPv4 address an IPv6 address stands for, if it carries one; otherwise the address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    // IPv4-compatible (deprecated, ::a.b.c.d, but not :: and ::1) and NAT64 well-known prefix.
    if (s[..6] == [0; 6] && u32::from(low) > 1) || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(low);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    ip
}

/// Why an address may not be reached; None for a public unicast address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let net = |a: [u8; 4], len: u8| in_net(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(a)), len);
    Some(match () {
        _ if ip.is_unspecified() || o[0] == 0 => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if net([100, 64, 0, 0], 10) => "carrier-grade NAT",
        // 169.254.169.254 (cloud metadata) is in here.
        _ if ip.is_link_local() => "link-local",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_broadcast() || o[0] >= 240 => "reserved",
        _ if net([192, 0, 0, 0], 24) => "IETF protocol assignments",
        _ if ip.is_documentation() => "documentation",
        _ if net([198, 18, 0, 0], 15) => "benchmarking",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match () {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_multicast() => "multicast",
        // fc00::/7, with fd00:ec2::254 (cloud metadata) in it.
        _ if first & 0xfe00 == 0xfc00 => "unique-local",
        _ if first & 0xffc0 == 0xfe80 => "link-local",
        _ if first & 0xffc0 == 0xfec0 => "site-local",
        _ if first == 0x2001 && ip.segments()[1] == 0x0db8 => "documentation",
        _ if ip.segments()[..4] == [0x100, 0, 0, 0] => "discard",
        _ => return None,
    })
}

/// The egress policy: public addresses, plus the operator's allowed networks.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allowed: Networks,
}

impl Policy {
    /// None when `ip` may be reached, else the reason.
    pub fn refuse(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allowed.contains(ip) {
            return None;
        }
        forbidden(ip)
    }

    /// Checks a URL's host: an IP literal at once, a name on each address it resolves to.
    /// A name that does not resolve passes (the receiver may not exist yet): the connection-time
    /// check still applies.
    pub async fn check_url(&self, url: &reqwest::Url) -> Result<(), &'static str> {
        match url.host() {
            None => Err("no host"),
            Some(url::Host::Ipv4(v4)) => self.refuse(IpAddr::V4(v4)).map_or(Ok(()), Err),
            Some(url::Host::Ipv6(v6)) => self.refuse(IpAddr::V6(v6)).map_or(Ok(()), Err),
            Some(url::Host::Domain(name)) => {
                // RFC 6761: localhost names are loopback whatever a resolver says.
                let bare = name.trim_end_matches('.').to_ascii_lowercase();
                if bare == "localhost" || bare.ends_with(".localhost") {
                    return Err("loopback");
                }
                let port = url.port_or_known_default().unwrap_or(443);
                let Ok(addrs) = tokio::net::lookup_host((name, port)).await else {
                    return Ok(());
                };
                for a in addrs {
                    if let Some(why) = self.refuse(a.ip()) {
                        return Err(why);
                    }
                }
                Ok(())
            }
        }
    }
}

/// The resolver of the webhook client: the system's, with every forbidden address removed, so
/// that a name that resolves to a private address at connection time (DNS rebinding) fails.
pub struct Resolver {
    pub policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.refuse(a.ip()).is_none())
                .collect();
            if kept.is_empty() {
                tracing::info!("webhook host resolves only to forbidden addresses");
                return Err("the webhook host resolves only to forbidden addresses".into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let cases = [
            ("127.0.0.1", Some("loopback")),
            ("127.255.0.9", Some("loopback")),
            ("10.0.0.1", Some("private")),
            ("172.16.5.4", Some("private")),
            ("172.32.0.1", None),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("carrier-grade NAT")),
            ("100.100.100.200", Some("carrier-grade NAT")),
            ("169.254.169.254", Some("link-local")),
            ("224.0.0.1", Some("multicast")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("255.255.255.255", Some("reserved")),
            ("192.0.2.7", Some("documentation")),
            ("198.18.0.1", Some("benchmarking")),
            ("93.184.216.34", None),
            ("8.8.8.8", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("::127.0.0.1", Some("loopback")),
            ("64:ff9b::10.0.0.1", Some("private")),
            ("2002:7f00:1::", Some("loopback")),
            ("fd00:ec2::254", Some("unique-local")),
            ("fc00::1", Some("unique-local")),
            ("fe80::1", Some("link-local")),
            ("ff02::1", Some("multicast")),
            ("2001:db8::1", Some("documentation")),
            ("2606:4700:4700::1111", None),
            ("::ffff:8.8.8.8", None),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().expect(ip);
            assert_eq!(forbidden(ip), want, "{ip}");
        }
    }

    #[test]
    fn notations_are_normalised_by_the_url_parser() {
        let p = Policy::default();
        for url in [
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://0x7f.1/",
            "https://127.0.0.1./",
            "https://[::ffff:7f00:1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[0:0:0:0:0:ffff:a9fe:a9fe]/",
            "https://0251.0376.0251.0376/",
            "https://[::1]:8443/",
        ] {
            let u = reqwest::Url::parse(url).expect(url);
            let ip = match u.host() {
                Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
                Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
                other => panic!("{url}: {other:?}"),
            };
            assert!(p.refuse(ip).is_some(), "{url} -> {ip}");
        }
    }

    #[test]
    fn allowed_networks_open_private_ranges_only() {
        let nets = Networks::parse(&["127.0.0.1/32".into(), "fd00::/8".into(), "10.1.2.3".into()])
            .expect("nets");
        let p = Policy { allowed: nets };
        assert_eq!(p.refuse("127.0.0.1".parse().expect("ip")), None);
        assert_eq!(p.refuse("::ffff:127.0.0.1".parse().expect("ip")), None);
        assert_eq!(p.refuse("127.0.0.2".parse().expect("ip")), Some("loopback"));
        assert_eq!(p.refuse("fd12::1".parse().expect("ip")), None);
        assert_eq!(p.refuse("10.1.2.3".parse().expect("ip")), None);
        assert_eq!(p.refuse("10.1.2.4".parse().expect("ip")), Some("private"));
        assert!(Networks::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(Networks::parse(&["nonsense".into()]).is_err());
    }
}
