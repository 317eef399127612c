//! SSRF protection: which addresses a step may send requests to.
//!
//! Link-local addresses (which hold the cloud metadata services), unspecified, broadcast
//! and multicast addresses are always refused. Loopback, private, CGNAT and unique-local
//! addresses are refused unless the policy allows private targets. IPv6 forms that embed
//! an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` and NAT64
//! `64:ff9b::a.b.c.d`) are judged by the IPv4 address inside.
//!
//! Two checks together cover every connection the HTTP client makes:
//! [`TargetPolicy::check_url`] for URLs whose host is an IP literal (the client does not
//! resolve those) and for every redirect target, and [`GuardedResolver`] for host names,
//! which drops blocked addresses from DNS answers so a name cannot smuggle one in. The
//! client connects only to the addresses the resolver returned, so DNS rebinding between
//! check and connect is not possible.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// AWS's IPv6 instance metadata endpoint.
const AWS_IMDS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
/// Alibaba Cloud's metadata endpoint (inside the CGNAT range).
const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockedTarget {
    /// Refused whatever the policy says.
    #[error("target {ip} is {what} and is always refused")]
    Always { ip: IpAddr, what: &'static str },
    /// Refused because the policy does not allow private targets.
    #[error("target {ip} is {what}; private targets are not allowed")]
    Private { ip: IpAddr, what: &'static str },
    /// Every address a host name resolved to was refused.
    #[error("host `{host}` resolves only to refused addresses ({reason})")]
    Host {
        host: String,
        reason: Box<BlockedTarget>,
    },
    #[error("URL scheme `{0}` is not allowed; only http and https are")]
    Scheme(String),
    #[error("URL {0} has no host")]
    NoHost(String),
}

/// A DNS lookup that failed or found no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve host `{host}`: {reason}")]
pub struct DnsFailure {
    pub host: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Allow loopback, private (RFC 1918), CGNAT and unique-local targets.
    pub allow_private: bool,
}

enum Class {
    Public,
    Private(&'static str),
    Always(&'static str),
}

const METADATA: &str = "a link-local/cloud metadata address";

impl TargetPolicy {
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), BlockedTarget> {
        let class = match ip {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => classify_v6(v6),
        };
        match class {
            Class::Public => Ok(()),
            Class::Always(what) => Err(BlockedTarget::Always { ip, what }),
            Class::Private(_) if self.allow_private => Ok(()),
            Class::Private(what) => Err(BlockedTarget::Private { ip, what }),
        }
    }

    /// Checks the scheme, and the host when it is an IP literal; host names are checked
    /// when they are resolved (see [`GuardedResolver`]).
    pub fn check_url(&self, url: &Url) -> Result<(), BlockedTarget> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BlockedTarget::Scheme(url.scheme().to_owned()));
        }
        match url.host() {
            None => Err(BlockedTarget::NoHost(url.to_string())),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => Ok(()),
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() || ip == ALIBABA_METADATA {
        Class::Always(METADATA)
    } else if a == 0 {
        // 0.0.0.0/8, "this network": connecting to it reaches the local host.
        Class::Always("an unspecified address")
    } else if ip.is_broadcast() {
        Class::Always("a broadcast address")
    } else if ip.is_multicast() {
        Class::Always("a multicast address")
    } else if ip.is_loopback() {
        Class::Private("a loopback address")
    } else if ip.is_private() {
        Class::Private("a private address")
    } else if a == 100 && (b & 0xc0) == 64 {
        Class::Private("a shared (CGNAT) address")
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let segments = ip.segments();
    if ip == AWS_IMDS_V6 || (segments[0] & 0xffc0) == 0xfe80 {
        return Class::Always(METADATA);
    }
    if ip.is_unspecified() {
        return Class::Always("an unspecified address");
    }
    if ip.is_multicast() {
        return Class::Always("a multicast address");
    }
    if ip.is_loopback() {
        return Class::Private("a loopback address");
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    if (segments[0] & 0xfe00) == 0xfc00 {
        Class::Private("a unique-local address")
    } else if (segments[0] & 0xffc0) == 0xfec0 {
        Class::Private("a site-local address")
    } else {
        Class::Public
    }
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible or NAT64 (64:ff9b::/96) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let v4 = Ipv4Addr::from(((u32::from(s[6])) << 16) | u32::from(s[7]));
    match s[..6] {
        [0, 0, 0, 0, 0, 0] | [0x64, 0xff9b, 0, 0, 0, 0] => Some(v4),
        _ => None,
    }
}

/// A DNS resolver for the HTTP client that drops refused addresses from every answer and
/// fails, naming the host, when none is left.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: TargetPolicy,
}

impl GuardedResolver {
    pub fn new(policy: TargetPolicy) -> Self {
        GuardedResolver { policy }
    }

    /// Resolves `host` and keeps the addresses the policy allows (ports are 0).
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let found = tokio::net::lookup_host((host, 0)).await.map_err(|e| {
            ResolveError::Dns(DnsFailure {
                host: host.to_owned(),
                reason: e.to_string(),
            })
        })?;
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in found {
            match self.policy.check_ip(addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(reason) => {
                    tracing::debug!(host, %reason, "dropped a refused address from a DNS answer");
                    refused.get_or_insert(reason);
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(reason)) => Err(ResolveError::Blocked(BlockedTarget::Host {
                host: host.to_owned(),
                reason: Box::new(reason),
            })),
            (true, None) => Err(ResolveError::Dns(DnsFailure {
                host: host.to_owned(),
                reason: "no addresses found".to_owned(),
            })),
        }
    }
}

/// Why [`GuardedResolver::lookup`] returned no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Blocked(BlockedTarget),
    #[error(transparent)]
    Dns(DnsFailure),
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match resolver.lookup(&host).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                // Box the inner error itself so callers can downcast to it.
                Err(ResolveError::Blocked(blocked)) => Err(blocked.into()),
                Err(ResolveError::Dns(failure)) => Err(failure.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private: false,
    };
    const LENIENT: TargetPolicy = TargetPolicy {
        allow_private: true,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn assert_always_refused(text: &str) {
        for policy in [STRICT, LENIENT] {
            let err = policy.check_ip(ip(text)).unwrap_err();
            assert!(
                matches!(err, BlockedTarget::Always { .. }),
                "{text} with {policy:?}: {err}"
            );
            assert!(err.to_string().contains("always refused"), "{err}");
        }
    }

    fn assert_private(text: &str) {
        let err = STRICT.check_ip(ip(text)).unwrap_err();
        assert!(
            matches!(err, BlockedTarget::Private { .. }),
            "{text}: {err}"
        );
        assert!(
            err.to_string().contains("private targets are not allowed"),
            "{err}"
        );
        assert_eq!(LENIENT.check_ip(ip(text)), Ok(()), "{text}");
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for text in [
            "169.254.169.254",
            "169.254.0.1",
            "169.254.255.255",
            "100.100.100.200",
            "fe80::1",
            "febf:ffff::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "64:ff9b::169.254.169.254",
            "::169.254.169.254",
        ] {
            assert_always_refused(text);
        }
        assert_eq!(
            STRICT
                .check_ip(ip("169.254.169.254"))
                .unwrap_err()
                .to_string(),
            "target 169.254.169.254 is a link-local/cloud metadata address and is always refused"
        );
        assert_eq!(
            LENIENT
                .check_ip(ip("fd00:ec2::254"))
                .unwrap_err()
                .to_string(),
            "target fd00:ec2::254 is a link-local/cloud metadata address and is always refused"
        );
    }

    #[test]
    fn unspecified_broadcast_and_multicast_are_always_refused() {
        for text in [
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "::",
            "ff02::1",
            "ff05::1:3",
            "::ffff:0.0.0.0",
            "::ffff:224.0.0.1",
        ] {
            assert_always_refused(text);
        }
    }

    #[test]
    fn private_ranges_depend_on_the_policy() {
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::192.168.0.1",
        ] {
            assert_private(text);
        }
        assert_eq!(
            STRICT.check_ip(ip("10.0.0.1")).unwrap_err().to_string(),
            "target 10.0.0.1 is a private address; private targets are not allowed"
        );
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "2606:4700:4700::1111",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            for policy in [STRICT, LENIENT] {
                assert_eq!(policy.check_ip(ip(text)), Ok(()), "{text} {policy:?}");
            }
        }
    }

    #[test]
    fn check_url_checks_ip_literal_hosts_and_schemes() {
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(matches!(
            LENIENT.check_url(&url("http://169.254.169.254/latest/meta-data/")),
            Err(BlockedTarget::Always { .. })
        ));
        assert!(matches!(
            LENIENT.check_url(&url("http://[::ffff:169.254.169.254]/")),
            Err(BlockedTarget::Always { .. })
        ));
        assert!(matches!(
            LENIENT.check_url(&url("http://[fd00:ec2::254]/")),
            Err(BlockedTarget::Always { .. })
        ));
        // Other spellings of IPv4 literals are normalised by the URL parser first.
        assert!(matches!(
            LENIENT.check_url(&url("http://0xa9fea9fe/")),
            Err(BlockedTarget::Always { .. })
        ));
        assert!(matches!(
            STRICT.check_url(&url("http://2130706433:8080/")),
            Err(BlockedTarget::Private { .. })
        ));
        assert!(matches!(
            STRICT.check_url(&url("https://[::1]:8443/x")),
            Err(BlockedTarget::Private { .. })
        ));
        assert_eq!(LENIENT.check_url(&url("http://127.0.0.1:8080/x")), Ok(()));
        assert_eq!(STRICT.check_url(&url("https://8.8.8.8/")), Ok(()));
        // Names are left to the resolver.
        assert_eq!(STRICT.check_url(&url("http://localhost/")), Ok(()));
        assert_eq!(STRICT.check_url(&url("https://example.com/")), Ok(()));

        let err = LENIENT.check_url(&url("ftp://example.com/x")).unwrap_err();
        assert_eq!(err, BlockedTarget::Scheme("ftp".into()));
        assert!(err.to_string().contains("only http and https"));
        assert!(matches!(
            LENIENT.check_url(&url("file:///etc/passwd")),
            Err(BlockedTarget::Scheme(_))
        ));
    }

    #[tokio::test]
    async fn resolver_drops_refused_addresses() {
        let err = GuardedResolver::new(STRICT)
            .lookup("localhost")
            .await
            .unwrap_err();
        match &err {
            ResolveError::Blocked(BlockedTarget::Host { host, reason }) => {
                assert_eq!(host, "localhost");
                assert!(
                    matches!(**reason, BlockedTarget::Private { .. }),
                    "{reason}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("host `localhost` resolves only to refused addresses"),
            "{err}"
        );

        let addrs = GuardedResolver::new(LENIENT)
            .lookup("localhost")
            .await
            .unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");

        // IP-literal "names" go through the same filter.
        let err = GuardedResolver::new(LENIENT)
            .lookup("169.254.169.254")
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ResolveError::Blocked(BlockedTarget::Host { .. })
        ));
    }

    #[tokio::test]
    async fn resolver_reports_lookup_failures() {
        let err = GuardedResolver::new(LENIENT)
            .lookup("no-such-host.invalid")
            .await
            .unwrap_err();
        match err {
            ResolveError::Dns(failure) => assert_eq!(failure.host, "no-such-host.invalid"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
