//! Drives one engine (a client or a server) from Node's event loop, on the JS thread: the
//! loop's epoll says when a UDP socket is readable, a loop timer follows the engine's next
//! deadline, and the facade is called once per wake-up with what arrived. A request thus
//! goes from the socket to the application and its answer back to the socket without
//! leaving the thread: no hand-off between threads on the way.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};

use bytes::BytesMut;
use napi::bindgen_prelude::{ArrayBuffer, Float64Array, Float64ArraySlice, Function};
use napi::Env;
use quicwire_core::quic::MAX_UDP_PAYLOAD;
use quicwire_core::udp;
use quicwire_core::{Carrier, Error, ErrorCode};
use quicwire_engine::abi::{JsEngine, LARGE_BODY};
use quicwire_engine::Instant;
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};

use crate::uv::{JsCallback, Poll, RawSocket, Ready, Timer};

/// Datagrams taken per receive call, and receive calls per wake-up before the loop gets a
/// turn (it calls again while the socket stays readable).
const RECV_SLOTS: usize = 8;
const RECV_ROUNDS: usize = 32;

thread_local! {
    /// One receive buffer for every driver: they all run on this (the JS) thread, one at a
    /// time, and a buffer per engine would cost each client half a MiB.
    static RECV_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Where a batch's words and bytes are put together before V8 copies them.
    static EVENTS_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Datagrams for peers the facade reaches over a stream instead of UDP (`Carrier::Tcp`),
/// for it to take (`take_carried`): `data` back to back, `lens[i]` bytes each, to `addrs[i]`.
#[derive(Default)]
pub struct Carried {
    pub data: Vec<u8>,
    pub lens: Vec<u32>,
    pub addrs: Vec<String>,
}

/// A bound socket and its poll.
struct Endpoint {
    /// First, so it is dropped (and leaves the loop) before the socket closes.
    poll: Poll,
    socket: std::net::UdpSocket,
    state: UdpSocketState,
    v6: bool,
    /// A datagram (or the rest of a GSO batch) the kernel had no room for yet.
    blocked: Option<Blocked>,
}

struct Blocked {
    to: SocketAddr,
    data: Vec<u8>,
    segment: Option<usize>,
}

impl Endpoint {
    /// Sends a datagram or GSO batch, split where it exceeds one UDP send. On a full socket
    /// it keeps what did not go and watches for room.
    fn send(&mut self, to: SocketAddr, data: &[u8], segment: Option<usize>) -> bool {
        let (state, socket) = (&self.state, &self.socket);
        let sent = udp::send(to, data, segment, |transmit| {
            state.send(UdpSockRef::from(socket), transmit)
        });
        match sent {
            Ok(()) => true,
            Err(sent) => {
                self.blocked = Some(Blocked {
                    to,
                    data: data[sent..].to_vec(),
                    segment,
                });
                self.poll.watch(true);
                false
            }
        }
    }

    /// Sends what waited for room; true when nothing waits any more.
    fn unblock(&mut self) -> bool {
        let Some(b) = self.blocked.take() else {
            return true;
        };
        let done = self.send(b.to, &b.data, b.segment);
        if done {
            self.poll.watch(false);
        }
        done
    }
}

/// An engine with its sockets (one per address family), timer and facade callback.
pub struct Driver {
    pub engine: RefCell<JsEngine>,
    endpoints: RefCell<Vec<Endpoint>>,
    timer: RefCell<Option<Timer>>,
    notify: RefCell<Option<Rc<JsCallback>>>,
    carried: RefCell<Carried>,
    /// Told when datagrams for stream tunnels wait after a loop callback (`carry`).
    on_carried: RefCell<Option<Rc<JsCallback>>>,
}

impl Driver {
    pub fn new(engine: JsEngine) -> Rc<Driver> {
        Rc::new(Driver {
            engine: RefCell::new(engine),
            endpoints: RefCell::new(Vec::new()),
            timer: RefCell::new(None),
            notify: RefCell::new(None),
            carried: RefCell::default(),
            on_carried: RefCell::new(None),
        })
    }

    /// Binds `host:port` (port 0: any free one) and starts reading it; `notify` is called
    /// after datagrams or a timer moved the engine, with its events (`take_events`) or null.
    /// Returns the bound port.
    pub fn bind(
        self: &Rc<Self>,
        env: &Env,
        host: &str,
        port: u16,
        notify: Function<Option<Float64Array>, ()>,
    ) -> Result<u16, Error> {
        let socket = open(host, port)?;
        self.adopt(env, socket, notify)
    }

    /// Starts reading a socket bound elsewhere (a worker's, see `udp::bind_workers`), as
    /// [`Self::bind`] does its own. Returns its port.
    pub fn adopt(
        self: &Rc<Self>,
        env: &Env,
        socket: std::net::UdpSocket,
        notify: Function<Option<Float64Array>, ()>,
    ) -> Result<u16, Error> {
        let (endpoint, bound) = self.endpoint(env, socket, self.endpoints.borrow().len())?;
        if self.timer.borrow().is_none() {
            let weak = Rc::downgrade(self);
            let timer = Timer::new(env, move || with(&weak, Driver::on_timer))?;
            *self.timer.borrow_mut() = Some(timer);
        }
        if self.notify.borrow().is_none() {
            let callback = JsCallback::new(env, notify)?;
            *self.notify.borrow_mut() = Some(Rc::new(callback));
        }
        self.endpoints.borrow_mut().push(endpoint);
        Ok(bound)
    }

    /// Moves the engine's traffic to new sockets (new ports) on the same addresses, as
    /// after a network change: QUIC migrates its connections. What the old sockets still
    /// held is lost, and QUIC sends it again.
    pub fn rebind(self: &Rc<Self>, env: &Env) -> Result<(), Error> {
        let count = self.endpoints.borrow().len();
        for index in 0..count {
            let ip = self.endpoints.borrow()[index].socket.local_addr();
            let ip = ip.map_err(|e| Error::new(ErrorCode::Io, format!("cannot rebind: {e}")))?;
            let socket = open(&ip.ip().to_string(), 0)?;
            let (endpoint, _) = self.endpoint(env, socket, index)?;
            // The old socket leaves the loop (its poll first) and closes here.
            self.endpoints.borrow_mut()[index] = endpoint;
        }
        Ok(())
    }

    /// `socket` as endpoint `index`, read by the loop; its bound port.
    fn endpoint(
        self: &Rc<Self>,
        env: &Env,
        socket: std::net::UdpSocket,
        index: usize,
    ) -> Result<(Endpoint, u16), Error> {
        let io = |what: &str, e: io::Error| {
            Error::new(ErrorCode::Io, format!("cannot {what} UDP socket: {e}"))
        };
        let state = UdpSocketState::new(UdpSockRef::from(&socket)).map_err(|e| io("set up", e))?;
        let local = socket.local_addr().map_err(|e| io("read", e))?;
        let weak = Rc::downgrade(self);
        let raw = raw_socket(&socket);
        let poll = Poll::new(env, raw, move |ready| {
            with(&weak, |d| d.on_ready(index, ready))
        })?;
        let endpoint = Endpoint {
            poll,
            socket,
            state,
            v6: local.is_ipv6(),
            blocked: None,
        };
        Ok((endpoint, local.port()))
    }

    /// From now on `on_carried` is called when datagrams for stream tunnels wait after the
    /// loop moved the engine (after a JS call, the facade takes them itself).
    pub fn carry(
        &self,
        env: &Env,
        on_carried: Function<Option<Float64Array>, ()>,
    ) -> Result<(), Error> {
        *self.on_carried.borrow_mut() = Some(Rc::new(JsCallback::new(env, on_carried)?));
        Ok(())
    }

    /// Datagrams that came through stream tunnels (see [`JsEngine::receive`]); whether to
    /// send before the facade gets the events.
    pub fn carry_in(&self, data: &[u8], lens: &[u32], addrs: &[String]) -> bool {
        self.engine
            .borrow_mut()
            .receive(Instant::now(), data, lens, addrs)
    }

    /// Whether datagrams wait for stream tunnels.
    pub fn has_carried(&self) -> bool {
        !self.carried.borrow().lens.is_empty()
    }

    /// The datagrams waiting for stream tunnels, if any.
    pub fn take_carried(&self) -> Option<Carried> {
        self.has_carried()
            .then(|| std::mem::take(&mut *self.carried.borrow_mut()))
    }

    /// Events since the last call, seven numbers each, or None when there are none. Their
    /// bytes, when small, follow the words in the same ArrayBuffer (`words.buffer` from
    /// `words.byteLength` on): one allocation per batch. Large ones wait in the engine
    /// (`take_event_data`). Copied into V8's heap: for a few words that is cheaper than an
    /// external buffer, which V8 tracks and finalizes.
    pub fn take_events<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<Option<Float64ArraySlice<'env>>> {
        let mut engine = self.engine.borrow_mut();
        let Some((words, data)) = engine.take_events() else {
            return Ok(None);
        };
        if data.len() >= LARGE_BODY {
            return Float64ArraySlice::copy_from(env, words).map(Some);
        }
        let buffer = EVENTS_BUF.with_borrow_mut(|buf| {
            buf.clear();
            buf.extend(words.iter().flat_map(|w| w.to_ne_bytes()));
            buf.extend_from_slice(data);
            ArrayBuffer::copy_from(env, &buf[..])
        })?;
        Float64ArraySlice::from_arraybuffer(&buffer, 0, words.len()).map(Some)
    }

    /// Sends everything the engine has ready and sets the timer to its next deadline; whether
    /// events wait. Called after every engine call.
    pub fn flush(&self) -> bool {
        let mut endpoints = self.endpoints.borrow_mut();
        let mut js = self.engine.borrow_mut();
        let has_events = js.has_events();
        let engine = js.engine_mut();
        let now = Instant::now();
        // While a socket is full, the rest waits for it to have room (`on_ready`).
        if endpoints.iter_mut().all(Endpoint::unblock) {
            let segments = endpoints
                .iter()
                .map(|e| e.state.max_gso_segments())
                .min()
                .unwrap_or(1);
            let mut carried = self.carried.borrow_mut();
            engine.poll_transmits(now, segments, |data, to, segment| {
                if Carrier::of(&to) == Carrier::Tcp {
                    for datagram in data.chunks(segment.unwrap_or(data.len()).max(1)) {
                        carried.data.extend_from_slice(datagram);
                        carried.lens.push(datagram.len() as u32);
                        carried.addrs.push(to.to_string());
                    }
                    return true;
                }
                match endpoints.iter_mut().find(|e| e.v6 == to.is_ipv6()) {
                    Some(e) => e.send(to, data, segment),
                    None => true, // No socket of that family: a datagram lost.
                }
            });
        }
        if let Some(timer) = self.timer.borrow().as_ref() {
            match engine.next_timeout() {
                Some(t) => {
                    let wait = t.saturating_duration_since(now);
                    timer.start(wait.as_nanos().div_ceil(1_000_000) as u64)
                }
                None => timer.stop(),
            }
        }
        has_events || engine.has_events()
    }

    /// Stops reading and timing; the sockets close once libuv lets go of them.
    pub fn shutdown(&self) {
        self.endpoints.borrow_mut().clear();
        self.timer.borrow_mut().take();
        self.notify.borrow_mut().take();
        self.on_carried.borrow_mut().take();
    }

    // The facade runs before the socket is flushed unless the engine asks for its ACKs
    // first (`Engine::receive`): what the application answers at once (its microtasks run
    // inside `notify`) then leaves with them.
    fn on_ready(&self, index: usize, ready: Ready) {
        if ready.writable {
            self.flush();
        }
        if ready.readable {
            if self.receive(index) {
                self.flush();
            }
            self.notify();
            self.flush();
        }
        self.tell_carrier();
    }

    fn on_timer(&self) {
        self.engine
            .borrow_mut()
            .engine_mut()
            .on_timeout(Instant::now());
        self.notify();
        self.flush();
        self.tell_carrier();
    }

    /// After a loop callback: datagrams for stream tunnels wait, and the facade is told.
    fn tell_carrier(&self) {
        if !self.has_carried() {
            return;
        }
        let told = self.on_carried.borrow().clone();
        if let Some(t) = told {
            t.call(|_| Ok(None));
        }
    }

    /// Reads what the socket holds (a bounded amount) and feeds it to the engine at once;
    /// whether to send the ACKs before the facade runs (`Engine::receive`).
    fn receive(&self, index: usize) -> bool {
        let endpoints = self.endpoints.borrow();
        let Some(endpoint) = endpoints.get(index) else {
            return false;
        };
        let slot = MAX_UDP_PAYLOAD as usize;
        let mut datagrams = Vec::new();
        RECV_BUF.with_borrow_mut(|buf| {
            buf.resize(slot * RECV_SLOTS, 0);
            for _ in 0..RECV_ROUNDS {
                let mut metas = [RecvMeta::default(); RECV_SLOTS];
                let mut slices: Vec<IoSliceMut<'_>> =
                    buf.chunks_mut(slot).map(IoSliceMut::new).collect();
                let socket = UdpSockRef::from(&endpoint.socket);
                let n = match endpoint.state.recv(socket, &mut slices, &mut metas) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP errors and the like: the next read goes on.
                    Err(_) => continue,
                };
                for (meta, data) in metas.iter().zip(slices.iter()).take(n) {
                    for d in data[..meta.len].chunks(meta.stride.max(1)) {
                        datagrams.push((meta.addr, BytesMut::from(d)));
                    }
                }
                if n < RECV_SLOTS {
                    break;
                }
            }
        });
        !datagrams.is_empty()
            && self
                .engine
                .borrow_mut()
                .engine_mut()
                .receive(Instant::now(), datagrams)
    }

    /// Hands the facade the engine's events (or null: it still checks on graceful closes).
    fn notify(&self) {
        // Not borrowed while it runs: the facade calls back into the engine from it.
        let notify = self.notify.borrow().clone();
        if let Some(n) = notify {
            n.call(|env| self.take_events(env));
        }
    }
}

/// A UDP socket on `host:port`, an IP literal (the facade checks: no name lookup may block
/// the loop here).
fn open(host: &str, port: u16) -> Result<std::net::UdpSocket, Error> {
    udp::bind(address(host, port)?, false)
        .map_err(|e| Error::new(ErrorCode::Io, format!("cannot bind UDP {host}:{port}: {e}")))
}

/// `host:port` as a socket address, where `host` is an IP literal (brackets allowed).
pub fn address(host: &str, port: u16) -> Result<SocketAddr, Error> {
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            Error::invalid_argument(format!("cannot bind UDP {host}:{port}: not an IP address"))
        })?;
    Ok(SocketAddr::new(ip, port))
}

/// Runs `f` on the driver if it is still there.
fn with(weak: &Weak<Driver>, f: impl FnOnce(&Driver)) {
    if let Some(driver) = weak.upgrade() {
        f(&driver);
    }
}

#[cfg(unix)]
fn raw_socket(socket: &std::net::UdpSocket) -> RawSocket {
    std::os::fd::AsRawFd::as_raw_fd(socket)
}

#[cfg(windows)]
fn raw_socket(socket: &std::net::UdpSocket) -> RawSocket {
    std::os::windows::io::AsRawSocket::as_raw_socket(socket)
}
