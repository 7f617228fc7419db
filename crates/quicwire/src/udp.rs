//! The UDP socket under an endpoint: quinn-udp on a tokio socket, for GSO and GRO (many
//! packets per system call) where the kernel has them.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quicwire_core::quic::MAX_UDP_PAYLOAD;
use quicwire_core::udp;
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;

/// Datagram slots per receive call.
pub const RECV_SLOTS: usize = 8;

/// A bound, non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
}

impl UdpSocket {
    /// Binds `addr` (port 0: any free port). A client's wildcard IPv6 socket also reaches
    /// IPv4 hosts; a server's binds exactly what it was told. Must be called within a
    /// tokio runtime.
    pub fn bind(addr: SocketAddr, dual_stack: bool) -> io::Result<UdpSocket> {
        let std = udp::bind(addr, dual_stack)?;
        let state = UdpSocketState::new(UdpSockRef::from(&std))?;
        Ok(UdpSocket {
            socket: tokio::net::UdpSocket::from_std(std)?,
            state,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Packets one send may carry (GSO), 1 without it.
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends a datagram, or a GSO batch of `segment`-byte packets, in as many sends as it
    /// needs. On a full socket, `Err(sent)`: the bytes that went (whole packets); the
    /// caller keeps the rest for when the socket has room.
    pub fn try_send(
        &self,
        to: SocketAddr,
        data: &[u8],
        segment: Option<usize>,
    ) -> Result<(), usize> {
        udp::send(to, data, segment, |transmit| {
            self.socket.try_io(Interest::WRITABLE, || {
                self.state.send(UdpSockRef::from(&self.socket), transmit)
            })
        })
    }

    /// Waits until the socket may take a send again.
    pub async fn writable(&self) -> io::Result<()> {
        self.socket.writable().await
    }

    /// Waits until the socket has datagrams.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what the socket holds into `buf` (RECV_SLOTS slots of the largest datagram),
    /// handing each datagram to `got`; false once it holds nothing more.
    pub fn try_recv(&self, buf: &mut [u8], mut got: impl FnMut(SocketAddr, &[u8])) -> bool {
        let mut metas = [RecvMeta::default(); RECV_SLOTS];
        let mut slices: Vec<IoSliceMut<'_>> = buf
            .chunks_mut(usize::from(MAX_UDP_PAYLOAD))
            .map(IoSliceMut::new)
            .collect();
        let result = self.socket.try_io(Interest::READABLE, || {
            let socket = UdpSockRef::from(&self.socket);
            self.state.recv(socket, &mut slices, &mut metas)
        });
        let n = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // ICMP errors and the like: the next read goes on.
            Err(_) => return true,
        };
        for (meta, data) in metas.iter().zip(slices.iter()).take(n) {
            for d in data[..meta.len].chunks(meta.stride.max(1)) {
                got(meta.addr, d);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Ten 9000-byte packets in one GSO batch (88 KiB, too much for one send) all arrive,
    /// in order.
    #[tokio::test]
    async fn oversized_gso_batches_go_out_in_pieces() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let segment = if sender.max_gso_segments() >= 10 {
            Some(9000)
        } else {
            None // No GSO on this kernel: each packet its own send.
        };
        let packet = 9000;
        let contents: Vec<u8> = (0..10 * packet).map(|i| (i / packet) as u8).collect();
        let to = receiver.local_addr().unwrap();
        let mut at = 0;
        while at < contents.len() {
            let end = if segment.is_some() {
                contents.len()
            } else {
                at + packet
            };
            match sender.try_send(to, &contents[at..end], segment) {
                Ok(()) => at = end,
                Err(sent) => {
                    at += sent;
                    sender.writable().await.unwrap();
                }
            }
        }
        let mut buf = vec![0u8; 65_536];
        for i in 0..10u8 {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(n, packet);
            assert!(buf[..n].iter().all(|b| *b == i), "packet {i} out of order");
        }
    }
}
