//! A datagram network in memory, for tests of code that uses [`Client`] and [`Server`]:
//! sockets bind addresses in one table, and datagrams cross links that lose, duplicate,
//! delay and reorder them by a seed ([`Link`]). Delays run on tokio's clock, and so does
//! the engine: under `#[tokio::test(start_paused = true)]` a 30-second timeout passes
//! without waiting, and a seed gives the same run.
//!
//! [`Client`]: crate::Client
//! [`Server`]: crate::Server

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use quicwire_core::sync::lock;
use quicwire_engine::sim::{Dice, Link, Traffic};
use tokio::sync::Notify;

/// Port 0 binds one of the dynamic ports (49152-65535), in turn, as an OS would.
const DYNAMIC_FIRST: u16 = 49152;

/// Engines' datagrams in memory. Cheap to clone: clones are the same network.
#[derive(Clone, Debug)]
pub struct MemoryNetwork(Arc<Mutex<Net>>);

#[derive(Debug)]
struct Net {
    sockets: HashMap<SocketAddr, Weak<Inbox>>,
    next_port: u16,
    link: Link,
    dice: Dice,
    traffic: Traffic,
}

/// What a memory socket received and not read yet.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    datagrams: Mutex<VecDeque<(SocketAddr, Vec<u8>)>>,
    arrived: Notify,
}

impl MemoryNetwork {
    /// An empty network whose randomness comes from `seed`, on clean links.
    pub fn new(seed: u64) -> MemoryNetwork {
        MemoryNetwork(Arc::new(Mutex::new(Net {
            sockets: HashMap::new(),
            next_port: 0,
            link: Link::default(),
            dice: Dice::new(seed),
            traffic: Traffic::default(),
        })))
    }

    /// How datagrams fare from now on.
    pub fn set_link(&self, link: Link) {
        lock(&self.0).link = link;
    }

    /// What the network did with datagrams so far.
    pub fn traffic(&self) -> Traffic {
        lock(&self.0).traffic
    }

    /// Binds `addr` (port 0: a free dynamic port). An unspecified address binds every
    /// address of its family, and sends from its loopback address.
    pub(crate) fn bind(&self, addr: SocketAddr) -> io::Result<MemorySocket> {
        let mut net = lock(&self.0);
        net.sockets.retain(|_, inbox| inbox.strong_count() > 0);
        let mut addr = addr;
        if addr.port() == 0 {
            let free = (0..=u16::MAX - DYNAMIC_FIRST)
                .map(|i| DYNAMIC_FIRST + (net.next_port + i) % (u16::MAX - DYNAMIC_FIRST + 1))
                .find(|p| !net.sockets.contains_key(&SocketAddr::new(addr.ip(), *p)))
                .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port"))?;
            net.next_port = free - DYNAMIC_FIRST + 1;
            addr.set_port(free);
        } else if net.sockets.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is bound"),
            ));
        }
        let inbox = Arc::new(Inbox::default());
        net.sockets.insert(addr, Arc::downgrade(&inbox));
        let from = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
            }
            _ => addr,
        };
        Ok(MemorySocket {
            net: self.clone(),
            addr,
            from,
            inbox,
        })
    }

    /// Puts a datagram on the link: it arrives after the link's delay, or not at all.
    fn send(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let (inbox, delays) = {
            let mut net = lock(&self.0);
            net.traffic.sent += 1;
            let wildcard = SocketAddr::new(
                match to {
                    SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
                },
                to.port(),
            );
            let inbox = [to, wildcard]
                .iter()
                .find_map(|a| net.sockets.get(a).and_then(Weak::upgrade));
            let Some(inbox) = inbox else {
                net.traffic.lost += 1; // Nobody there.
                return;
            };
            let link = net.link;
            let delays = link.fate(&mut net.dice);
            net.traffic.count(&delays);
            net.traffic.delivered += delays.len() as u64;
            (inbox, delays)
        };
        for delay in delays {
            let (inbox, datagram) = (inbox.clone(), (from, data.to_vec()));
            if delay.is_zero() {
                inbox.deliver(datagram);
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    inbox.deliver(datagram);
                });
            }
        }
    }
}

impl Inbox {
    fn deliver(&self, datagram: (SocketAddr, Vec<u8>)) {
        lock(&self.datagrams).push_back(datagram);
        self.arrived.notify_one();
    }
}

/// A socket bound on a [`MemoryNetwork`]; unbound when dropped.
#[derive(Debug)]
pub(crate) struct MemorySocket {
    net: MemoryNetwork,
    addr: SocketAddr,
    /// The address datagrams come from (the loopback one for a wildcard socket).
    from: SocketAddr,
    inbox: Arc<Inbox>,
}

impl MemorySocket {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `data` to `to` (whole: the engine gives a memory socket no GSO batches).
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        self.net.send(self.from, to, data);
    }

    /// Waits until datagrams wait here.
    pub async fn readable(&self) {
        loop {
            let arrived = self.inbox.arrived.notified();
            if !lock(&self.inbox.datagrams).is_empty() {
                return;
            }
            arrived.await;
        }
    }

    /// Hands every datagram waiting to `got`.
    pub fn recv(&self, mut got: impl FnMut(SocketAddr, &[u8])) {
        let datagrams = std::mem::take(&mut *lock(&self.inbox.datagrams));
        for (from, data) in datagrams {
            got(from, &data);
        }
    }
}

impl Drop for MemorySocket {
    fn drop(&mut self) {
        lock(&self.net.0).sockets.remove(&self.addr);
    }
}
