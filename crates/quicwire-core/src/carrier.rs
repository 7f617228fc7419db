//! What carries a connection's QUIC datagrams: UDP, or a stream tunnel (TCP) where UDP is
//! blocked. Shells name each tunnel by an address in 100::/64, the discard-only prefix of
//! RFC 6666 that no real peer has, so the engine needs no notion of tunnels and every shell
//! tells them apart the same way.

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Carrier {
    #[default]
    Udp,
    Tcp,
    /// A browser's WebTransport session (its QUIC is the browser's own).
    WebTransport,
}

impl Carrier {
    /// The carrier of datagrams to and from `addr`.
    pub fn of(addr: &SocketAddr) -> Carrier {
        match addr {
            SocketAddr::V6(a) if a.ip().segments()[..4] == [0x100, 0, 0, 0] => Carrier::Tcp,
            _ => Carrier::Udp,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Udp => "udp",
            Carrier::Tcp => "tcp",
            Carrier::WebTransport => "webtransport",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnels_are_told_apart_by_their_prefix() {
        let of = |a: &str| Carrier::of(&a.parse().unwrap());
        assert_eq!(of("[100::1:0]:1"), Carrier::Tcp);
        assert_eq!(of("[100::ffff:ffff]:1"), Carrier::Tcp);
        assert_eq!(of("[100:0:0:1::1]:1"), Carrier::Udp);
        assert_eq!(of("[::1]:4433"), Carrier::Udp);
        assert_eq!(of("127.0.0.1:4433"), Carrier::Udp);
    }
}
