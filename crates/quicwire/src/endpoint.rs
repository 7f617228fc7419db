//! The tokio driver of one engine (a client's or a server's), as quinn drives quinn-proto:
//! one task moves datagrams between the engine and its UDP sockets, runs its timer, and
//! turns its events into resolved futures and handler calls. Calls from the application
//! take the engine's lock, make their call and wake the task, so what many tasks start at
//! once leaves in as few datagrams as fit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quicwire_core::quic::MAX_UDP_PAYLOAD;
use quicwire_core::sync::lock;
use quicwire_core::{Carrier, Error, ErrorCode, PoolKey, Result};
use quicwire_engine::{ConnId, ConnectionInfo, Engine, Event, Receipt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::connection::{Connection, Handler, Incoming, IncomingRequest, RequestOptions};
use crate::socket::{Network, Socket};
use crate::tunnel::{Inbound, Transport, Tunnels};
use crate::udp::RECV_SLOTS;

/// How long a closing endpoint lets its CONNECTION_CLOSE datagrams go out.
const CLOSE_LINGER: Duration = Duration::from_millis(50);

/// Datagrams read per wake-up before the engine gets them and the loop turns.
const RECV_ROUNDS: usize = 32;

/// A connection's state shared by its handles and the driver.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub id: ConnId,
    pub info: ConnectionInfo,
    pub remote: SocketAddr,
    /// Messages the peer acknowledged, per lane (priority, count): sends wait on it.
    pub acked: watch::Sender<Vec<(i32, u64)>>,
    pub closed: OnceLock<Error>,
    pub closed_notify: Notify,
}

/// What the driver and the application's calls share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// A call moved the engine: the driver has datagrams to send or a deadline to follow.
    wake: Notify,
    /// The driver finished a turn (graceful closes wait on it).
    turned: Notify,
    handler: Arc<dyn Handler>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// A server's TCP listener (`listen_tcp`), stopped when the endpoint closes.
    tcp: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct State {
    pub engine: Engine,
    /// Where its sockets bind.
    network: Network,
    /// Sockets by address family (IPv4, IPv6), bound on first use by a client.
    sockets: [Option<Arc<Socket>>; 2],
    /// Negotiated connections, until they close.
    pub conns: HashMap<ConnId, Arc<ConnState>>,
    /// `connect` calls waiting for a handshake.
    pub dialing: HashMap<ConnId, Vec<oneshot::Sender<Result<Arc<ConnState>>>>>,
    /// Requests waiting for their answer, by connection and request id.
    requests: HashMap<(ConnId, u64), oneshot::Sender<Result<Bytes>>>,
    next_request: u64,
    /// The endpoint is closing: the driver stops once its connections are gone.
    closing: bool,
    /// How a client reaches servers.
    pub transport: Transport,
    /// QUIC over TCP: the tunnels, and the one each connection runs on.
    tunnels: Tunnels,
    tunnel_of: HashMap<ConnId, SocketAddr>,
}

/// The application's hold on an endpoint; when the last one goes, the endpoint closes.
pub(crate) struct Endpoint {
    pub shared: Arc<Shared>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").finish_non_exhaustive()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.close_all("endpoint dropped");
    }
}

/// The time, on tokio's clock: a test that pauses it runs the engine on virtual time.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Endpoint {
    /// Starts driving `engine` on the current tokio runtime, with `socket` if given (a
    /// server's; a client binds one per address family when it first dials).
    pub fn start(
        engine: Engine,
        network: Network,
        socket: Option<Socket>,
        handler: Arc<dyn Handler>,
    ) -> Arc<Endpoint> {
        let mut sockets = [None, None];
        if let Some(socket) = socket {
            let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
            sockets[usize::from(v6)] = Some(Arc::new(socket));
        }
        let (inbound, tunneled) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                engine,
                network,
                sockets,
                conns: HashMap::new(),
                dialing: HashMap::new(),
                requests: HashMap::new(),
                next_request: 1,
                closing: false,
                transport: Transport::Udp,
                tunnels: Tunnels::new(inbound),
                tunnel_of: HashMap::new(),
            }),
            wake: Notify::new(),
            turned: Notify::new(),
            handler,
            task: Mutex::new(None),
            tcp: Mutex::new(None),
        });
        let endpoint = Arc::new(Endpoint {
            shared: shared.clone(),
        });
        let task = tokio::spawn(drive(shared.clone(), Arc::downgrade(&endpoint), tunneled));
        *lock(&shared.task) = Some(task);
        endpoint
    }
}

impl Shared {
    /// Runs `f` on the engine with the time, then wakes the driver to act on it.
    pub fn call<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let out = self.update(f);
        self.wake.notify_one();
        out
    }

    /// Runs `f` on the engine with the time, for what moves no connection (a pool
    /// checkout): the driver has nothing to do after it.
    pub fn update<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        f(&mut lock(&self.state), now())
    }

    /// Reads the engine without moving it.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&lock(&self.state))
    }

    /// The socket for `addr`'s family, bound on first use.
    pub fn socket_for(&self, addr: SocketAddr) -> Result<()> {
        let mut state = lock(&self.state);
        if state.closing {
            return Err(Error::closed("the client is closed"));
        }
        let family = usize::from(addr.is_ipv6());
        if state.sockets[family].is_none() {
            state.sockets[family] = Some(Arc::new(bind_any(&state.network, addr.is_ipv6())?));
            drop(state);
            self.wake.notify_one(); // the driver reads the new socket too
        }
        Ok(())
    }

    /// Moves a client's traffic to new sockets (new local ports), as after a network
    /// change: its connections carry on over the new path once the server has validated
    /// it (QUIC connection migration). Datagrams still in the old sockets are lost, and
    /// QUIC sends them again.
    pub fn rebind(&self) -> Result<()> {
        let mut state = lock(&self.state);
        if state.closing {
            return Err(Error::closed("the client is closed"));
        }
        for v6 in [false, true] {
            if state.sockets[usize::from(v6)].is_some() {
                let socket = bind_any(&state.network, v6)?;
                state.sockets[usize::from(v6)] = Some(Arc::new(socket));
            }
        }
        drop(state);
        self.wake.notify_one(); // the driver reads the new sockets
        Ok(())
    }

    /// Dials `key` the client's way (`Transport`): `udp` is what it resolved to (not needed
    /// over TCP alone). `then` gets the connection's id under the same lock (so no event
    /// about it can come between).
    pub fn dial<T>(
        &self,
        key: &PoolKey,
        udp: Option<SocketAddr>,
        then: impl FnOnce(&mut State, ConnId) -> T,
    ) -> Result<T> {
        self.call(|st, now| {
            let transport = st.transport;
            let tunnel = match transport {
                Transport::Udp => None,
                _ => Some(st.tunnels.dial(key.host().to_string(), key.port())),
            };
            let any = || Error::new(ErrorCode::Io, format!("{key} resolves to no address"));
            let id = match (transport, tunnel) {
                (Transport::Auto(after), Some(t)) => {
                    st.engine
                        .connect_racing(now, key, udp.ok_or_else(any)?, t, after)
                }
                (_, Some(t)) => st.engine.connect(now, key, t),
                (_, None) => st.engine.connect(now, key, udp.ok_or_else(any)?),
            };
            let id = match id {
                Ok(id) => id,
                Err(e) => {
                    if let Some(t) = tunnel {
                        st.tunnels.end(&t);
                    }
                    return Err(e);
                }
            };
            if let Some(t) = tunnel {
                // A pooled connection (or a handshake under way) serves instead.
                let known = st.conns.contains_key(&id)
                    || st.dialing.contains_key(&id)
                    || st.tunnel_of.contains_key(&id);
                if known {
                    st.tunnels.end(&t);
                } else {
                    st.tunnel_of.insert(id, t);
                }
            }
            Ok(then(st, id))
        })
    }

    /// Also takes QUIC over TCP on `addr` (a server's address, the same port number), from
    /// clients behind a UDP block.
    pub async fn listen_tcp(self: &Arc<Self>, addr: SocketAddr) -> Result<()> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::new(ErrorCode::Io, format!("cannot listen on TCP {addr}: {e}")))?;
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                shared.accept_tunnel(stream, from);
            }
        });
        if let Some(old) = lock(&self.tcp).replace(task) {
            old.abort();
        }
        Ok(())
    }

    fn accept_tunnel(&self, stream: TcpStream, from: SocketAddr) {
        let mut state = lock(&self.state);
        if !state.closing {
            state.tunnels.accept(stream, from);
        }
    }

    /// Sends request `body` on connection `conn` and waits for its answer. A dropped future
    /// gives the request up (its stream is reset).
    pub async fn request(
        self: &Arc<Self>,
        conn: ConnId,
        body: Bytes,
        options: RequestOptions,
    ) -> Result<Bytes> {
        let (tx, rx) = oneshot::channel();
        let id = self.call(|state, now| {
            let id = state.next_request;
            state.next_request += 1;
            state.engine.request(now, conn, id, body, options)?;
            state.requests.insert((conn, id), tx);
            Ok::<_, Error>(id)
        })?;
        let mut pending = PendingRequest {
            shared: self,
            key: Some((conn, id)),
        };
        let answer = rx
            .await
            .unwrap_or_else(|_| Err(Error::closed(format!("connection {conn} is closed"))));
        pending.key = None;
        answer
    }

    /// Closes every connection and stops the driver once they are gone.
    pub fn close_all(&self, reason: &str) {
        self.call(|state, now| {
            state.closing = true;
            state.engine.close_all(now, reason);
        });
    }

    /// Closes the endpoint and waits (a little) for its closes to go out and its sockets to
    /// be released.
    pub async fn close(&self, reason: &str) {
        if let Some(tcp) = lock(&self.tcp).take() {
            tcp.abort();
        }
        self.close_all(reason);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }

    /// Waits until `done` holds of the engine, rechecking after each turn of the driver.
    pub async fn until(&self, done: impl Fn(&State) -> bool) {
        loop {
            let turned = self.turned.notified();
            if self.read(&done) {
                return;
            }
            turned.await;
        }
    }
}

/// A request in flight; dropped before its answer, it gives the request up.
struct PendingRequest<'a> {
    shared: &'a Arc<Shared>,
    key: Option<(ConnId, u64)>,
}

impl Drop for PendingRequest<'_> {
    fn drop(&mut self) {
        if let Some((conn, id)) = self.key.take() {
            self.shared.call(|state, now| {
                state.requests.remove(&(conn, id));
                state.engine.cancel_request(now, conn, id);
            });
        }
    }
}

/// A datagram (or the rest of a GSO batch) the socket had no room for yet.
struct Blocked {
    socket: Arc<Socket>,
    to: SocketAddr,
    data: Vec<u8>,
    segment: Option<usize>,
}

/// A socket on any address of the family, on a free port.
fn bind_any(network: &Network, v6: bool) -> Result<Socket> {
    let any: SocketAddr = if v6 {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    network.bind(any, true).map_err(|e| {
        Error::new(
            ErrorCode::Io,
            format!("cannot bind a UDP socket on {any}: {e}"),
        )
    })
}

/// The driver task: until the endpoint closes, sends what the engine has, dispatches its
/// events, and waits for datagrams, its deadline or a call.
async fn drive(
    shared: Arc<Shared>,
    endpoint: Weak<Endpoint>,
    mut tunneled: mpsc::UnboundedReceiver<Inbound>,
) {
    let mut buf = vec![0u8; usize::from(MAX_UDP_PAYLOAD) * RECV_SLOTS];
    let mut blocked: Option<Blocked> = None;
    loop {
        let (deadline, sockets, actions, done) = {
            let mut state = lock(&shared.state);
            if blocked.is_none() {
                blocked = transmit(&mut state);
            }
            let actions = take_events(&mut state);
            let done = state.closing && state.engine.connection_count() == 0;
            let deadline = state.engine.next_timeout();
            (deadline, state.sockets.clone(), actions, done)
        };
        dispatch(&shared, &endpoint, actions);
        shared.turned.notify_waiters();
        if done {
            // Let the last CONNECTION_CLOSE datagrams leave.
            tokio::time::sleep(CLOSE_LINGER).await;
            let mut state = lock(&shared.state);
            transmit(&mut state);
            state.sockets = [None, None];
            state.tunnels.clear();
            return;
        }
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let readable = |i: usize| {
            let socket = sockets[i].clone();
            async move {
                match socket {
                    Some(s) => s.readable().await.map(|_| s),
                    None => std::future::pending().await,
                }
            }
        };
        let writable = async {
            match &blocked {
                Some(b) => b.socket.writable().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = sleep => {
                lock(&shared.state).engine.on_timeout(now());
            }
            Ok(socket) = readable(0) => receive(&shared, &socket, &mut buf),
            Ok(socket) = readable(1) => receive(&shared, &socket, &mut buf),
            Ok(()) = writable => {
                if let Some(b) = blocked.take() {
                    blocked = send_blocked(b);
                }
            }
            Some(first) = tunneled.recv() => carried(&shared, first, &mut tunneled),
        }
    }
}

/// Reads what `socket` holds (a bounded amount) and feeds it to the engine.
fn receive(shared: &Shared, socket: &Socket, buf: &mut [u8]) {
    let mut datagrams = Vec::new();
    for _ in 0..RECV_ROUNDS {
        let more = socket.try_recv(buf, |from, data| {
            datagrams.push((from, BytesMut::from(data)));
        });
        if !more {
            break;
        }
    }
    if !datagrams.is_empty() {
        let mut state = lock(&shared.state);
        if state.engine.receive(now(), datagrams) {
            // Traffic streaming in: its ACKs go before the application runs.
            transmit(&mut state);
        }
    }
}

/// What the tunnels have for the engine: datagrams (with any others already waiting), and
/// tunnels that closed or were never used.
fn carried(shared: &Shared, first: Inbound, more: &mut mpsc::UnboundedReceiver<Inbound>) {
    let mut state = lock(&shared.state);
    let mut datagrams = Vec::new();
    let mut next = Some(first);
    while let Some(inbound) = next.take().or_else(|| more.try_recv().ok()) {
        match inbound {
            Inbound::Datagram(from, datagram) => datagrams.push((from, datagram)),
            Inbound::Lost(addr) => {
                let Some(id) = state
                    .tunnel_of
                    .iter()
                    .find(|(_, t)| **t == addr)
                    .map(|(id, _)| *id)
                else {
                    state.tunnels.end(&addr);
                    continue;
                };
                // A race's tunnel, while UDP may still win it, is not the connection's.
                if matches!(state.transport, Transport::Auto(_)) && !state.conns.contains_key(&id) {
                    continue;
                }
                state.tunnel_of.remove(&id);
                state.tunnels.end(&addr);
                state
                    .engine
                    .close(now(), id, "the TCP connection carrying it closed");
            }
            Inbound::Unbound(addr) => {
                if !state.tunnel_of.values().any(|t| *t == addr) {
                    state.tunnels.end(&addr);
                }
            }
        }
    }
    if !datagrams.is_empty() && state.engine.receive(now(), datagrams) {
        transmit(&mut state);
    }
}

/// Sends what the engine has ready; what a full socket did not take comes back.
fn transmit(state: &mut State) -> Option<Blocked> {
    let sockets = state.sockets.clone();
    let segments = sockets
        .iter()
        .flatten()
        .map(|s| s.max_gso_segments())
        .min()
        .unwrap_or(1);
    let mut blocked = None;
    let tunnels = &state.tunnels;
    state
        .engine
        .poll_transmits(now(), segments, |data, to, segment| {
            if Carrier::of(&to) == Carrier::Tcp {
                tunnels.send(to, data, segment);
                return true;
            }
            let Some(socket) = &sockets[usize::from(to.is_ipv6())] else {
                return true; // No socket of that family: a datagram lost.
            };
            match socket.try_send(to, data, segment) {
                Ok(()) => true,
                Err(sent) => {
                    blocked = Some(Blocked {
                        socket: socket.clone(),
                        to,
                        data: data[sent..].to_vec(),
                        segment,
                    });
                    false
                }
            }
        });
    blocked
}

fn send_blocked(b: Blocked) -> Option<Blocked> {
    match b.socket.try_send(b.to, &b.data, b.segment) {
        Ok(()) => None,
        Err(sent) => Some(Blocked {
            data: b.data[sent..].to_vec(),
            ..b
        }),
    }
}

/// What the application hears of, once the engine's lock is released.
enum Action {
    Connected(Arc<ConnState>),
    Messages(Arc<ConnState>, Vec<Bytes>, Receipt),
    Datagram(Arc<ConnState>, Bytes),
    KeyLog(String),
    Qlog(ConnId, Bytes),
    Request(Arc<ConnState>, Incoming),
    Acked(Arc<ConnState>, i32, u64),
    Closed(Arc<ConnState>, Error),
}

/// Takes the engine's events: resolves what waits on them, and returns the handler's part.
fn take_events(state: &mut State) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut messages: Vec<Bytes> = Vec::new();
    while let Some(event) = state.engine.poll_event() {
        match event {
            Event::Connected { conn, info } => {
                let remote = state
                    .engine
                    .connection_state(conn)
                    .map(|s| s.remote)
                    .unwrap_or_else(|| (std::net::Ipv4Addr::UNSPECIFIED, 0).into());
                let c = Arc::new(ConnState {
                    id: conn,
                    info,
                    remote,
                    acked: watch::Sender::new(Vec::new()),
                    closed: OnceLock::new(),
                    closed_notify: Notify::new(),
                });
                state.conns.insert(conn, c.clone());
                if Carrier::of(&remote) == Carrier::Tcp {
                    state.tunnel_of.insert(conn, remote);
                } else if let Some(tunnel) = state.tunnel_of.remove(&conn) {
                    state.tunnels.end(&tunnel); // UDP won the race
                }
                for w in state.dialing.remove(&conn).unwrap_or_default() {
                    let _ = w.send(Ok(c.clone()));
                }
                actions.push(Action::Connected(c));
            }
            Event::Message { body, .. } => messages.push(body),
            Event::KeyLog { line, .. } => actions.push(Action::KeyLog(line)),
            Event::Qlog { conn, records } => actions.push(Action::Qlog(conn, records)),
            Event::Datagram { conn, body } => {
                if let Some(c) = state.conns.get(&conn) {
                    actions.push(Action::Datagram(c.clone(), body));
                }
            }
            Event::Receipt { conn, receipt } => {
                let batch = std::mem::take(&mut messages);
                if let Some(c) = state.conns.get(&conn) {
                    actions.push(Action::Messages(c.clone(), batch, receipt));
                }
            }
            Event::Request {
                conn,
                handle,
                body,
                early,
                trace,
            } => {
                if let Some(c) = state.conns.get(&conn) {
                    let request = Incoming {
                        handle,
                        body,
                        early,
                        trace,
                    };
                    actions.push(Action::Request(c.clone(), request));
                }
            }
            Event::Response { conn, id, body } => {
                if let Some(tx) = state.requests.remove(&(conn, id)) {
                    let _ = tx.send(Ok(body));
                }
            }
            Event::RequestFailed { conn, id, error } => {
                if let Some(tx) = state.requests.remove(&(conn, id)) {
                    let _ = tx.send(Err(error));
                }
            }
            // A handler here learns it when its answer cannot go (`respond` fails with
            // ERR_STREAM_RESET); the JS facade tells its handlers sooner (`info.signal`).
            Event::RequestCancelled { .. } => {}
            Event::Acked {
                conn,
                priority,
                delivered,
            } => {
                if let Some(c) = state.conns.get(&conn) {
                    c.acked.send_modify(|lanes| {
                        match lanes.iter_mut().find(|(p, _)| *p == priority) {
                            Some(lane) => lane.1 = delivered,
                            None => lanes.push((priority, delivered)),
                        }
                    });
                    actions.push(Action::Acked(c.clone(), priority, delivered));
                }
            }
            Event::Closed { conn, error } => {
                if let Some(tunnel) = state.tunnel_of.remove(&conn) {
                    state.tunnels.end(&tunnel);
                }
                for w in state.dialing.remove(&conn).unwrap_or_default() {
                    let _ = w.send(Err(error.clone()));
                }
                state.requests.retain(|(c, _), _| *c != conn);
                if let Some(c) = state.conns.remove(&conn) {
                    if c.closed.set(error.clone()).is_ok() {
                        c.closed_notify.notify_waiters();
                    }
                    actions.push(Action::Closed(c, error));
                }
            }
        }
    }
    actions
}

/// Calls the handler for what happened (outside the engine's lock: it may call back).
fn dispatch(shared: &Arc<Shared>, endpoint: &Weak<Endpoint>, actions: Vec<Action>) {
    if actions.is_empty() {
        return;
    }
    let Some(endpoint) = endpoint.upgrade() else {
        return; // Closing: nobody listens any more.
    };
    let handler = shared.handler.clone();
    let conn = |c: Arc<ConnState>| Connection::new(c, endpoint.clone());
    for action in actions {
        match action {
            Action::Connected(c) => handler.on_connection(&conn(c)),
            Action::Messages(c, batch, receipt) => handler.on_messages(&conn(c), batch, receipt),
            Action::Datagram(c, body) => handler.on_datagram(&conn(c), body),
            Action::KeyLog(line) => handler.on_key_log(&line),
            Action::Qlog(id, records) => handler.on_qlog(id.get(), &records),
            Action::Request(c, request) => {
                handler.on_request(IncomingRequest::new(conn(c), request))
            }
            Action::Acked(c, priority, n) => handler.on_acked(&conn(c), priority, n),
            Action::Closed(c, error) => handler.on_closed(&conn(c), &error),
        }
    }
}
