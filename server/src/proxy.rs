//! Behind a reverse proxy: whose `X-Forwarded-For` is believed
//! (`WICK_TRUSTED_PROXIES`). A request from a trusted proxy is taken to come
//! from the address the proxy names; from anyone else, from the peer itself,
//! whatever the headers claim. Everything that looks at a client's address
//! (sign-in throttling, the audit log) reads it after this.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::ServerState;

/// The trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct Proxies(Vec<IpNet>);

impl Proxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: walking `X-Forwarded-For` from the right (the
    /// hop nearest to us), past the trusted proxies, to the first address
    /// that is not one. A peer that is not trusted is the client.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if !self.trusts(peer) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            // A malformed entry ends the walk: nothing left of it is believed.
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// Puts the client's address where the peer's was, for whatever reads it.
pub async fn client_address(
    State(state): State<ServerState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let client = state.proxies.client(peer.ip(), request.headers());
        if client != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> Proxies {
        Proxies::new(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let p = proxies(&["127.0.0.1/32"]);
        assert_eq!(
            p.client(ip("127.0.0.1"), &forwarded("203.0.113.7")),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["127.0.0.1/32"]);
        assert_eq!(
            p.client(ip("198.51.100.9"), &forwarded("203.0.113.7")),
            ip("198.51.100.9")
        );
        assert_eq!(
            proxies(&[]).client(ip("127.0.0.1"), &forwarded("1.2.3.4")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn what_the_client_wrote_before_the_proxy_is_not_believed() {
        // The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the
        // address it saw. Only the proxy's entry is believed.
        let p = proxies(&["10.0.0.0/8"]);
        let headers = forwarded("1.2.3.4, 203.0.113.7, 10.0.0.2");
        assert_eq!(p.client(ip("10.0.0.1"), &headers), ip("203.0.113.7"));
    }

    #[test]
    fn a_malformed_entry_stops_the_walk() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client(ip("10.0.0.1"), &forwarded("203.0.113.7, junk")),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_ipv4_peer_on_an_ipv6_socket_is_matched() {
        let p = proxies(&["127.0.0.1/32"]);
        assert!(p.trusts(ip("::ffff:127.0.0.1")));
    }
}
