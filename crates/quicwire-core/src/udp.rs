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

/// Most workers one UDP port can be shared by: a connection ID's first byte names its
/// worker (see [`bind_workers`]).
pub const MAX_WORKERS: usize = 256;

/// `count` non-blocking sockets on `addr`, one per worker, in one `SO_REUSEPORT` group
/// whose routing program sends each packet to the worker that owns its connection: a
/// short-header packet to the socket its destination connection ID's first byte names
/// (the engine of worker `i` starts its IDs with `i`, see `ServerConfig::worker`), a
/// long-header one (a handshake) by the kernel's hash of its addresses, which keeps a
/// handshake on one worker. A connection that migrates to a new address thus still reaches
/// its worker. Socket `i` is the group's index `i` as long as none of them closes.
#[cfg(target_os = "linux")]
pub fn bind_workers(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    if !(1..=MAX_WORKERS).contains(&count) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("workers must be between 1 and {MAX_WORKERS}, got {count}"),
        ));
    }
    let mut addr = addr;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        socket.set_nonblocking(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        // Port 0 picked a port: the others join the group on the same one.
        if let Some(bound) = socket.local_addr()?.as_socket() {
            addr = bound;
        }
        sockets.push(std::net::UdpSocket::from(socket));
    }
    if let Some(first) = sockets.first() {
        route_by_connection_id(first)?;
    }
    Ok(sockets)
}

/// Attaches the group's routing program (classic BPF: it sees the UDP payload, and an
/// index it returns past the group's end means "hash the addresses").
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn route_by_connection_id(socket: &std::net::UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let op = |code: u32, jt: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf: 0,
        k,
    };
    let mut program = [
        // A = first byte; a long header (0x80 set) goes by hash.
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0),
        op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 2, 0x80),
        // A short header's connection ID starts at byte 1: its first byte is the worker.
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 1),
        op(libc::BPF_RET | libc::BPF_A, 0, 0),
        op(libc::BPF_RET | libc::BPF_K, 0, u32::MAX),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, both alive for the call; the kernel copies the
    // program and reads no more than `len` instructions.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sharing a port between workers needs Linux's `SO_REUSEPORT` routing programs.
#[cfg(not(target_os = "linux"))]
pub fn bind_workers(_addr: SocketAddr, _count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "sharing a UDP port between workers needs Linux (SO_REUSEPORT with a routing program)",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Which of `sockets` got a datagram (each is read once, waiting a moment).
    fn receiver(sockets: &[std::net::UdpSocket]) -> Option<usize> {
        std::thread::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 64];
        sockets.iter().position(|s| s.recv_from(&mut buf).is_ok())
    }

    #[test]
    fn the_group_routes_short_headers_by_their_connection_ids_first_byte() {
        let sockets = bind_workers("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let to = sockets[0].local_addr().unwrap();
        assert!(sockets.iter().all(|s| s.local_addr().unwrap() == to));
        for from_port in 0..8 {
            // From several source ports, so the kernel's own hash would scatter them.
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for worker in [3u8, 0, 2, 1] {
                client
                    .send_to(&[0x40, worker, 9, 9, 9, 9, 9, 9, 9], to)
                    .unwrap();
                assert_eq!(
                    receiver(&sockets),
                    Some(worker as usize),
                    "port {from_port}"
                );
            }
        }
    }

    #[test]
    fn long_headers_from_one_address_stay_on_one_socket() {
        let sockets = bind_workers("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let to = sockets[0].local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(&[0xc0, 0, 0, 0, 1, 8, 3], to).unwrap();
        let first = receiver(&sockets);
        assert!(first.is_some());
        for _ in 0..4 {
            client.send_to(&[0xc0, 0, 0, 0, 1, 8, 1], to).unwrap();
            assert_eq!(receiver(&sockets), first);
        }
    }

    #[test]
    fn a_group_has_one_to_256_workers() {
        let addr = "127.0.0.1:0".parse().unwrap();
        assert!(bind_workers(addr, 0).is_err());
        assert!(bind_workers(addr, MAX_WORKERS + 1).is_err());
    }
}
