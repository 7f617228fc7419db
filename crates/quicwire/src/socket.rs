//! The UDP socket under each endpoint.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

/// Kernel buffer asked for each way (Linux caps it at net.core.rmem_max / wmem_max). One
/// server socket takes every client's packets: with the 208 KiB default, a burst such as
/// thousands of clients closing at once overflowed it, and each dropped packet then waited
/// for a QUIC retransmission.
const SOCKET_BUFFER: usize = 8 << 20;

/// An endpoint on a fresh socket bound to `addr` (dual-stack when it is IPv6), serving when
/// given a server config.
pub fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() && server.is_none() {
        // A client's wildcard socket reaches IPv4 hosts too; a server binds what it was told.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer still works, only with more loss under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket.into(),
        Arc::new(quinn::TokioRuntime),
    )
}
