//! UDP as every driver of the engine uses it (the Rust API's tokio driver and the napi
//! shell's libuv one): a non-blocking socket with large kernel buffers, and sends through
//! quinn-udp (GSO where the kernel has it) split where one send would not carry it all.

use std::io;
use std::net::SocketAddr;

use quinn_udp::Transmit;
use socket2::{Domain, Protocol, Socket, Type};

use crate::quic::{send_size, SOCKET_BUFFER};

/// A non-blocking UDP socket bound to `addr` (port 0: any free port). An IPv6 socket is
/// `dual_stack` (it reaches IPv4 hosts too) or IPv6 only.
pub fn bind(addr: SocketAddr, dual_stack: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(!dual_stack)?;
    }
    // Best effort: a smaller buffer still works, only with more loss under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Sends a datagram, or a GSO batch of `segment`-byte packets, to `to` with `send_one`, in
/// as many sends as it needs. On a full socket, `Err(sent)`: the bytes that went (whole
/// packets); the caller keeps the rest for when the socket has room. Other errors are
/// loss, which QUIC recovers from like any other.
pub fn send(
    to: SocketAddr,
    data: &[u8],
    segment: Option<usize>,
    mut send_one: impl FnMut(&Transmit<'_>) -> io::Result<()>,
) -> Result<(), usize> {
    let mut sent = 0;
    for contents in data.chunks(send_size(data.len(), segment)) {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: segment.filter(|s| *s < contents.len()),
            src_ip: None,
        };
        match send_one(&transmit) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(sent),
            _ => sent += contents.len(),
        }
    }
    Ok(())
}
