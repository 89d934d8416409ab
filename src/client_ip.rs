//! Who the client is, network-wise: the peer address, or, behind trusted load balancers,
//! the last address in `X-Forwarded-For` that none of them added.
//!
//! `X-Forwarded-For` is a list each proxy appends to, so only its right end is trustworthy:
//! walk it from the right past every trusted proxy and take the first address that is not
//! one (the leftmost entries are whatever the client chose to send). With no trusted
//! proxies, the header is ignored. This keys failed-login throttling and the audit log.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Parses `trusted_proxies` entries (`"10.0.0.0/8"` or a bare `"127.0.0.1"`); `Err` names
/// the first one that is neither.
pub fn parse_trusted(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| e.to_owned())
        })
        .collect()
}

/// The client's address for a request that arrived from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An unparsable hop ends the walk: nothing left of it can be attributed.
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_may_name_the_client() {
        let trusted = parse_trusted(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        // Directly connected: the header is the client's own claim, ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers(&["1.2.3.4"]), &trusted),
            ip("203.0.113.9")
        );
        // Through the balancer: the last hop it added.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&["203.0.113.9"]), &trusted),
            ip("203.0.113.9")
        );
        // A spoofed left end is skipped: the balancer appended the real address on the right.
        let spoofed = headers(&["6.6.6.6, 203.0.113.9"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        // Two trusted hops, and the header split over several lines.
        let chained = headers(&["198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &chained, &trusted),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last good address.
        let garbage = headers(&["nonsense, 10.0.0.5"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &garbage, &trusted),
            ip("10.0.0.5")
        );
        // No header: the peer.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // Nobody trusted: always the peer.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&["1.2.3.4"]), &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            parse_trusted(&["10.0.0.0/33".into()]),
            Err("10.0.0.0/33".into())
        );
        assert_eq!(parse_trusted(&["::1".into()]).unwrap().len(), 1);
    }
}
