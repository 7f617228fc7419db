//! Where an endpoint's datagrams go: UDP sockets (quinn-udp), or a [`MemoryNetwork`] in
//! tests. The driver sees one socket type either way.

use std::io;
use std::net::SocketAddr;

use crate::memory::{MemoryNetwork, MemorySocket};
use crate::udp::UdpSocket;

/// The network an endpoint binds its sockets on.
#[derive(Debug, Clone)]
pub(crate) enum Network {
    Udp,
    Memory(MemoryNetwork),
}

impl Network {
    /// A socket bound to `addr` (port 0: any free port); see [`UdpSocket::bind`].
    pub fn bind(&self, addr: SocketAddr, dual_stack: bool) -> io::Result<Socket> {
        match self {
            Network::Udp => UdpSocket::bind(addr, dual_stack).map(Socket::Udp),
            Network::Memory(net) => net.bind(addr).map(Socket::Memory),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Socket {
    Udp(UdpSocket),
    Memory(MemorySocket),
}

impl Socket {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Socket::Udp(s) => s.local_addr(),
            Socket::Memory(s) => Ok(s.local_addr()),
        }
    }

    /// Packets one send may carry (GSO), 1 without it.
    pub fn max_gso_segments(&self) -> usize {
        match self {
            Socket::Udp(s) => s.max_gso_segments(),
            Socket::Memory(_) => 1,
        }
    }

    /// See [`UdpSocket::try_send`]; a memory socket is never full.
    pub fn try_send(
        &self,
        to: SocketAddr,
        data: &[u8],
        segment: Option<usize>,
    ) -> Result<(), usize> {
        match self {
            Socket::Udp(s) => s.try_send(to, data, segment),
            Socket::Memory(s) => {
                s.send(to, data);
                Ok(())
            }
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Socket::Udp(s) => s.writable().await,
            Socket::Memory(_) => Ok(()),
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Udp(s) => s.readable().await,
            Socket::Memory(s) => {
                s.readable().await;
                Ok(())
            }
        }
    }

    /// See [`UdpSocket::try_recv`].
    pub fn try_recv(&self, buf: &mut [u8], got: impl FnMut(SocketAddr, &[u8])) -> bool {
        match self {
            Socket::Udp(s) => s.try_recv(buf, got),
            Socket::Memory(s) => {
                s.recv(got);
                false
            }
        }
    }
}
