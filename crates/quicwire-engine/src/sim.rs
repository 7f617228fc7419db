//! Engines on a simulated network with a virtual clock: real QUIC, real TLS 1.3, no sockets
//! and no waiting. Datagrams cross links with seeded loss, duplication, delay and jitter
//! (which reorders them); time jumps straight to the next delivery or deadline, so a test
//! of a 30-second timeout takes microseconds, and the same seed gives the same run.
//!
//! ```no_run
//! # use quicwire_engine::sim::{Link, Network};
//! # fn demo(client: quicwire_engine::Engine, server: quicwire_engine::Engine) {
//! let mut net = Network::new(7).with_link(Link { loss: 0.02, ..Link::default() });
//! let c = net.add("127.0.0.1:40000".parse().unwrap(), client);
//! let s = net.add("127.0.0.1:4433".parse().unwrap(), server);
//! // ... call net.engine(c).connect(net.now(), ...), then:
//! net.run_until(std::time::Duration::from_secs(5), |net| net.events(s).len() > 0);
//! # }
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;

use bytes::BytesMut;
use web_time::{Duration, Instant};

use crate::{Engine, Event};

/// How datagrams fare between two hosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// One-way delay.
    pub delay: Duration,
    /// Up to this much more delay, at random per datagram (so datagrams overtake).
    pub jitter: Duration,
    /// The chance a datagram is lost (0 to 1).
    pub loss: f64,
    /// The chance a datagram arrives twice.
    pub duplicate: f64,
}

impl Link {
    /// What becomes of one datagram: the delays after which it arrives, none when it is
    /// lost, two when it is duplicated.
    pub fn fate(&self, dice: &mut Dice) -> Vec<Duration> {
        if dice.chance(self.loss) {
            return Vec::new();
        }
        let copies = if dice.chance(self.duplicate) { 2 } else { 1 };
        (0..copies)
            .map(|_| self.delay + self.jitter.mul_f64(dice.unit()))
            .collect()
    }
}

impl Default for Link {
    /// A clean link with 1 ms of delay each way.
    fn default() -> Self {
        Link {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// A host on the network.
pub type Host = usize;

/// Counts of what the network did with datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
}

impl Traffic {
    /// Counts a datagram's fate (see [`Link::fate`]).
    pub fn count(&mut self, delays: &[Duration]) {
        match delays.len() {
            0 => self.lost += 1,
            1 => {}
            _ => self.duplicated += 1,
        }
    }
}

struct Node<E> {
    addr: SocketAddr,
    engine: E,
    events: Vec<Event>,
}

/// A datagram on its way: when it lands, and an order among those landing together.
type Flight = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

/// Engines joined by simulated links, on one virtual clock. A host is an [`Engine`], or
/// anything that holds one (`abi::JsEngine`, whose events are its own to take).
pub struct Network<E: AsMut<Engine> = Engine> {
    now: Instant,
    dice: Dice,
    link: Link,
    /// Links that differ from `link`, by (from, to).
    links: HashMap<(Host, Host), Link>,
    nodes: Vec<Node<E>>,
    flights: BinaryHeap<Flight>,
    next_flight: u64,
    traffic: Traffic,
    tunnels: Vec<Tunnel>,
}

/// A second path between two hosts, as a stream tunnel is (see `quicwire_core::Carrier`):
/// `a` reaches `b` at `b_at`, and `b` sees `a` at `a_at`.
#[derive(Debug, Clone, Copy)]
struct Tunnel {
    a: Host,
    b_at: SocketAddr,
    b: Host,
    a_at: SocketAddr,
    link: Link,
}

impl Tunnel {
    /// Where a datagram from `from` to `to` lands through this tunnel, and whom it is from.
    fn route(&self, from: Host, to: SocketAddr) -> Option<(Host, SocketAddr)> {
        if from == self.a && to == self.b_at {
            Some((self.b, self.a_at))
        } else if from == self.b && to == self.a_at {
            Some((self.a, self.b_at))
        } else {
            None
        }
    }
}

impl<E: AsMut<Engine>> std::fmt::Debug for Network<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("hosts", &self.nodes.len())
            .field("in_flight", &self.flights.len())
            .field("traffic", &self.traffic)
            .finish()
    }
}

impl<E: AsMut<Engine>> Network<E> {
    /// An empty network whose randomness comes from `seed`.
    pub fn new(seed: u64) -> Network<E> {
        Network {
            now: Instant::now(),
            dice: Dice::new(seed),
            link: Link::default(),
            links: HashMap::new(),
            nodes: Vec::new(),
            flights: BinaryHeap::new(),
            next_flight: 0,
            traffic: Traffic::default(),
            tunnels: Vec::new(),
        }
    }

    /// Every link fares like `link` (unless set apart with [`Self::set_link`]).
    pub fn with_link(mut self, link: Link) -> Network<E> {
        self.link = link;
        self
    }

    /// Datagrams from `from` to `to` fare like `link`.
    pub fn set_link(&mut self, from: Host, to: Host, link: Link) {
        self.links.insert((from, to), link);
    }

    /// A second path between `a` and `b`, whose datagrams fare like `link`: `a` reaches `b`
    /// at `b_at`, and `b` sees it at `a_at` (addresses of a stream tunnel, in 100::/64).
    pub fn tunnel(&mut self, a: Host, b_at: SocketAddr, b: Host, a_at: SocketAddr, link: Link) {
        self.tunnels.push(Tunnel {
            a,
            b_at,
            b,
            a_at,
            link,
        });
    }

    /// Puts an engine on the network at `addr`. Make it with [`Self::now`] as its time.
    pub fn add(&mut self, addr: SocketAddr, engine: E) -> Host {
        self.nodes.push(Node {
            addr,
            engine,
            events: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn addr(&self, host: Host) -> SocketAddr {
        self.nodes[host].addr
    }

    /// A host's engine, to call into (with [`Self::now`] as the time).
    pub fn engine(&mut self, host: Host) -> &mut E {
        &mut self.nodes[host].engine
    }

    /// The events a host's engine reported so far and nobody took.
    pub fn events(&mut self, host: Host) -> &mut Vec<Event> {
        let node = &mut self.nodes[host];
        while let Some(e) = node.engine.as_mut().poll_event() {
            node.events.push(e);
        }
        &mut node.events
    }

    /// What the network did with datagrams so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Moves the network on to its next instant (the next landing datagram or engine
    /// deadline) and lets everything due happen; false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.transmit();
        let Some(next) = self.next_instant() else {
            return false;
        };
        self.now = self.now.max(next);
        self.land();
        for node in &mut self.nodes {
            let engine = node.engine.as_mut();
            if engine.next_timeout().is_some_and(|t| t <= self.now) {
                engine.on_timeout(self.now);
            }
        }
        self.transmit();
        true
    }

    /// Steps until `done` holds, at most `limit` of virtual time from now; whether it held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Network<E>) -> bool,
    ) -> bool {
        let end = self.now + limit;
        loop {
            self.transmit();
            if done(self) {
                return true;
            }
            if self.now >= end || !self.step() {
                return done(self);
            }
        }
    }

    /// Lets `d` of virtual time pass, with everything that happens in it.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.transmit();
            match self.next_instant() {
                Some(next) if next <= end => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// When something next happens: a datagram lands or an engine's deadline comes.
    fn next_instant(&mut self) -> Option<Instant> {
        let landing = self.flights.peek().map(|Reverse(f)| f.0);
        let deadline = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.engine.as_mut().next_timeout())
            .min();
        landing.into_iter().chain(deadline).min()
    }

    /// Takes what every engine has to send and puts it on the links.
    fn transmit(&mut self) {
        let now = self.now;
        let mut sent = Vec::new();
        for (from, node) in self.nodes.iter_mut().enumerate() {
            node.engine.as_mut().poll_transmits(now, 1, |data, to, _| {
                sent.push((from, to, data.to_vec()));
                true
            });
        }
        for (from, to, data) in sent {
            self.traffic.sent += 1;
            let tunneled = self
                .tunnels
                .iter()
                .find_map(|t| Some((t.route(from, to)?, t.link)));
            let (dest, source, link) = match tunneled {
                Some(((dest, source), link)) => (dest, source, link),
                None => {
                    let Some(dest) = self.nodes.iter().position(|n| n.addr == to) else {
                        self.traffic.lost += 1; // Nobody there.
                        continue;
                    };
                    let link = self.links.get(&(from, dest)).copied().unwrap_or(self.link);
                    (dest, self.nodes[from].addr, link)
                }
            };
            let delays = link.fate(&mut self.dice);
            self.traffic.count(&delays);
            for delay in delays {
                let at = now + delay;
                self.next_flight += 1;
                self.flights
                    .push(Reverse((at, self.next_flight, dest, source, data.clone())));
            }
        }
    }

    /// Hands every datagram due to its host, each host's in one call.
    fn land(&mut self) {
        let mut arriving: Vec<Vec<(SocketAddr, BytesMut)>> = vec![Vec::new(); self.nodes.len()];
        while let Some(Reverse(f)) = self.flights.peek() {
            if f.0 > self.now {
                break;
            }
            let Some(Reverse((_, _, dest, from, data))) = self.flights.pop() else {
                break;
            };
            arriving[dest].push((from, BytesMut::from(&data[..])));
            self.traffic.delivered += 1;
        }
        for (node, datagrams) in self.nodes.iter_mut().zip(arriving) {
            if !datagrams.is_empty() {
                node.engine.as_mut().receive(self.now, datagrams);
            }
        }
    }
}

impl AsMut<Engine> for Engine {
    fn as_mut(&mut self) -> &mut Engine {
        self
    }
}

/// A link's randomness: a small seeded generator (SplitMix64), so the same seed gives the
/// same losses.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}
