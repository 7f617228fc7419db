//! QUIC carried over TCP, for networks that block UDP (docs/PROTOCOL.md, section 1a): each
//! datagram is a frame on a TCP stream, its length (2 bytes, big-endian) then its bytes. The
//! engine knows each tunnel by an address in 100::/64 (`quicwire_core::Carrier`): the driver
//! hands what the engine sends there to the tunnel's writer task, and each tunnel's reader
//! task hands what arrives to the driver.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Frames a tunnel holds for its writer; past them, datagrams are dropped, as a full UDP
/// socket would, and QUIC sends them again at its own pace.
const QUEUE: usize = 4096;

/// How long an accepted tunnel may go without carrying a QUIC connection.
pub(crate) const UNBOUND: Duration = Duration::from_secs(10);

/// What the tunnels tell the driver.
pub(crate) enum Inbound {
    Datagram(SocketAddr, BytesMut),
    /// The tunnel closed, or never opened: its connection is cut off.
    Lost(SocketAddr),
    /// An accepted tunnel's time to carry a connection is up.
    Unbound(SocketAddr),
}

/// How a client reaches servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// QUIC over UDP.
    #[default]
    Udp,
    /// QUIC over TCP, to a server that listens there too (`Server::listen_tcp`).
    Tcp,
    /// UDP, and TCP racing it when UDP has not finished the handshake after this long
    /// (happy eyeballs); the first to finish is the connection.
    Auto(Duration),
}

/// An endpoint's tunnels, by their address in the engine.
pub(crate) struct Tunnels {
    writers: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    inbound: mpsc::UnboundedSender<Inbound>,
    next: u32,
    /// Per client address (accepted tunnels): the port its next tunnel tries.
    ports: HashMap<Ipv6Addr, u16>,
}

impl Tunnels {
    pub fn new(inbound: mpsc::UnboundedSender<Inbound>) -> Tunnels {
        Tunnels {
            writers: HashMap::new(),
            inbound,
            next: 0,
            ports: HashMap::new(),
        }
    }

    /// A tunnel to `host:port`, opened when the engine first sends there (with `Auto`, only
    /// if UDP has not won by then); its address.
    pub fn dial(&mut self, host: String, port: u16) -> SocketAddr {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        let ip = Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 1 + (n >> 16) as u16, n as u16);
        let addr = SocketAddr::new(ip.into(), 1);
        let (tx, mut rx) = mpsc::channel(QUEUE);
        self.writers.insert(addr, tx);
        let inbound = self.inbound.clone();
        tokio::spawn(async move {
            let Some(first) = rx.recv().await else {
                return; // never used
            };
            match TcpStream::connect((host.as_str(), port)).await {
                Ok(stream) => carry(stream, addr, Some(first), rx, inbound).await,
                Err(_) => {
                    let _ = inbound.send(Inbound::Lost(addr));
                }
            }
        });
        addr
    }

    /// Takes an accepted stream as a tunnel. Its address carries the client's IP address
    /// (IPv4 whole, IPv6 by its /64), so the server's per-IP limit holds over TCP too.
    pub fn accept(&mut self, stream: TcpStream, from: SocketAddr) {
        let [a, b, c, d] = match from.ip().to_canonical() {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                [
                    0,
                    0xffff,
                    u16::from_be_bytes([o[0], o[1]]),
                    u16::from_be_bytes([o[2], o[3]]),
                ]
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                [s[0], s[1], s[2], s[3]]
            }
        };
        let ip = Ipv6Addr::new(0x100, 0, 0, 0, a, b, c, d);
        let mut addr = None;
        for _ in 0..u16::MAX {
            let port = self.ports.get(&ip).copied().unwrap_or(1);
            self.ports.insert(ip, port.checked_add(1).unwrap_or(1));
            let candidate = SocketAddr::new(ip.into(), port);
            if !self.writers.contains_key(&candidate) {
                addr = Some(candidate);
                break;
            }
        }
        let Some(addr) = addr else {
            return; // 65,535 tunnels from one address: no more
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        self.writers.insert(addr, tx);
        let inbound = self.inbound.clone();
        tokio::spawn(carry(stream, addr, None, rx, inbound.clone()));
        tokio::spawn(async move {
            tokio::time::sleep(UNBOUND).await;
            let _ = inbound.send(Inbound::Unbound(addr));
        });
    }

    /// A datagram (or a GSO batch of them, `segment` bytes each) for the tunnel at `to`.
    pub fn send(&self, to: SocketAddr, data: &[u8], segment: Option<usize>) {
        let Some(tx) = self.writers.get(&to) else {
            return;
        };
        for datagram in data.chunks(segment.unwrap_or(data.len()).max(1)) {
            let mut frame = BytesMut::with_capacity(2 + datagram.len());
            frame.put_u16(datagram.len() as u16);
            frame.put_slice(datagram);
            let _ = tx.try_send(frame.freeze());
        }
    }

    /// Closes the tunnel at `addr` once what it holds is written.
    pub fn end(&mut self, addr: &SocketAddr) {
        self.writers.remove(addr);
    }

    pub fn clear(&mut self) {
        self.writers.clear();
    }
}

/// Moves frames between a tunnel's stream and the driver until either side is done.
async fn carry(
    stream: TcpStream,
    addr: SocketAddr,
    first: Option<Bytes>,
    mut frames: mpsc::Receiver<Bytes>,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut len = [0u8; 2];
        while read.read_exact(&mut len).await.is_ok() {
            let mut datagram = BytesMut::zeroed(usize::from(u16::from_be_bytes(len)));
            if read.read_exact(&mut datagram).await.is_err() {
                break;
            }
            if inbound.send(Inbound::Datagram(addr, datagram)).is_err() {
                return;
            }
        }
        let _ = inbound.send(Inbound::Lost(addr));
    });
    if let Some(frame) = first {
        if write.write_all(&frame).await.is_err() {
            return;
        }
    }
    while let Some(frame) = frames.recv().await {
        if write.write_all(&frame).await.is_err() {
            break;
        }
    }
    // Ended here: the peer sees the stream close, and the reader stops when it does.
    let _ = write.shutdown().await;
    drop(reader);
}
