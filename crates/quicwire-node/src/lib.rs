//! napi-rs shell over the `quicwire` crate: handles, types and error mapping only.
//!
//! The facade crosses this boundary once per tick in each direction: `write` takes every
//! message, request and response queued in JS as one buffer plus an op list, and
//! `takeEvents` returns everything received since the last call (see `inbox`).

// napi value types (Buffer, typed arrays) have no Debug; the objects holding them cannot either.
#![allow(missing_debug_implementations)]

mod inbox;
mod options;
mod runtime;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use napi::bindgen_prelude::{within_runtime_if_available, Buffer, Float64Array};
use napi::Status;
use napi_derive::napi;
use quicwire::{
    Client, Connection, ConnectionStats, Error, ErrorCode, Handler, IncomingRequest, Receipt,
    Server,
};

pub use options::{ClientOptions, ServerOptions, TransportOptions};
use quicwire::core::batch::{self, event as kind};

/// The one place a quicwire error becomes a JS error: `"<CODE>: <message>"`, which the
/// facade turns into a `QuicwireError` with that code.
fn js_error(e: Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, batch::error_text(&e))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn code_index(code: ErrorCode) -> f64 {
    f64::from(code as u16)
}

static CONNECTIONS: Mutex<Option<HashMap<u64, Connection>>> = Mutex::new(None);
static REQUESTS: Mutex<Option<HashMap<u32, IncomingRequest>>> = Mutex::new(None);
static CLIENTS: Mutex<Option<HashMap<u32, Client>>> = Mutex::new(None);
static SERVERS: Mutex<Option<HashMap<u32, Server>>> = Mutex::new(None);
static NEXT_HANDLE: AtomicU32 = AtomicU32::new(1);

fn with_map<K: std::hash::Hash + Eq, V, R>(
    m: &Mutex<Option<HashMap<K, V>>>,
    f: impl FnOnce(&mut HashMap<K, V>) -> R,
) -> R {
    f(lock(m).get_or_insert_with(HashMap::new))
}

fn connection(id: f64) -> Result<Connection, Error> {
    with_map(&CONNECTIONS, |m| m.get(&(id as u64)).cloned())
        .ok_or_else(|| Error::closed(format!("connection {id} is closed")))
}

/// Forwards runtime callbacks into the inbox.
struct NodeHandler {
    /// The client or server handle these connections belong to.
    owner: u32,
}

impl Handler for NodeHandler {
    fn on_connection(&self, conn: &Connection) {
        with_map(&CONNECTIONS, |m| m.insert(conn.id(), conn.clone()));
        let text = format!("{} {}", conn.encoding().as_str(), conn.peer());
        let words = [
            kind::CONNECTION,
            conn.id() as f64,
            f64::from(self.owner),
            0.0,
            conn.peer_max_message_size() as f64,
        ];
        inbox::push_one(words, text);
    }

    fn on_messages(&self, conn: &Connection, messages: Vec<Bytes>, receipt: Receipt) {
        let id = conn.id() as f64;
        inbox::push(
            messages
                .into_iter()
                .map(|m| ([kind::MESSAGE, id, 0.0, 0.0, 0.0], m)),
            Some((conn.clone(), receipt)),
        );
    }

    fn on_request(&self, request: IncomingRequest) {
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        let words = [
            kind::REQUEST,
            request.connection().id() as f64,
            f64::from(handle),
            0.0,
            0.0,
        ];
        let body = request.body().clone();
        with_map(&REQUESTS, |m| m.insert(handle, request));
        inbox::push_one(words, body);
    }

    fn on_acked(&self, conn: &Connection, delivered: u64) {
        inbox::push_one(
            [kind::ACKED, conn.id() as f64, delivered as f64, 0.0, 0.0],
            Bytes::new(),
        );
    }

    fn on_closed(&self, conn: &Connection, reason: &Error) {
        with_map(&CONNECTIONS, |m| m.remove(&conn.id()));
        let words = [
            kind::CLOSED,
            conn.id() as f64,
            0.0,
            code_index(reason.code),
            0.0,
        ];
        inbox::push_one(words, reason.message.clone());
    }
}

/// Error codes indexed by the numbers events carry.
#[napi]
pub fn error_codes() -> Vec<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// Registers the function Rust calls (once per batch) when events are waiting.
#[napi]
pub fn start_events(notify: inbox::Notify) {
    inbox::set_notify(notify);
}

/// Everything received since the last call, or nothing.
#[napi]
pub fn take_events() -> Option<inbox::EventBatch> {
    inbox::take()
}

#[napi(object)]
pub struct WriteFailure {
    /// Index of the failed op.
    pub op: u32,
    pub error: String,
}

/// Starts `work` on this (JS) thread: see [`quicwire::eagerly`].
fn eagerly(work: impl Future<Output = ()> + Send + 'static) {
    within_runtime_if_available(|| quicwire::eagerly(work));
}

/// Carries out a batch of ops (layout in `quicwire_core::batch`); returns the failed ones.
#[napi(catch_unwind)]
pub fn write(data: Buffer, ops: Float64Array) -> Vec<WriteFailure> {
    let mut failures = Vec::new();
    let mut fail = |op: usize, e: &Error| {
        failures.push(WriteFailure {
            op: op as u32,
            error: batch::error_text(e),
        })
    };
    let mut messages = batch::Messages::default();
    for op in batch::ops(&data, &ops) {
        let op = match op {
            Ok(op) => op,
            Err((i, e)) => {
                fail(i, &e);
                break;
            }
        };
        let (i, target, id, body) = (op.index, op.target, op.id, op.body);
        match op.code {
            batch::op::MESSAGE => {
                let added = connection(target)
                    .and_then(|conn| messages.add(&op, conn.peer_max_message_size()));
                if let Err(e) = added {
                    fail(i, &e);
                }
            }
            batch::op::REQUEST => match connection(target) {
                Ok(conn) => {
                    let body = Bytes::copy_from_slice(body);
                    let timeout = (op.extra > 0.0).then(|| Duration::from_millis(op.extra as u64));
                    eagerly(async move {
                        let answer = match timeout {
                            Some(t) => conn.request_with_timeout(&body, t).await,
                            None => conn.request(&body).await,
                        };
                        let cid = conn.id() as f64;
                        match answer {
                            Ok(reply) => {
                                inbox::push_one([kind::RESPONSE, cid, id, 0.0, 0.0], reply)
                            }
                            Err(e) => inbox::push_one(
                                [kind::REQUEST_FAILED, cid, id, code_index(e.code), 0.0],
                                e.message,
                            ),
                        }
                    });
                }
                Err(e) => inbox::push_one(
                    [kind::REQUEST_FAILED, target, id, code_index(e.code), 0.0],
                    e.message,
                ),
            },
            batch::op::RESPOND | batch::op::RESPOND_ERROR => {
                let Some(request) = with_map(&REQUESTS, |m| m.remove(&(target as u32))) else {
                    fail(
                        i,
                        &Error::invalid_argument("this request was already answered"),
                    );
                    continue;
                };
                let answer = if op.code == batch::op::RESPOND {
                    Ok(Bytes::copy_from_slice(body))
                } else {
                    let code = ErrorCode::from_wire(op.extra as u64);
                    Err(Error::new(code, String::from_utf8_lossy(body).into_owned()))
                };
                eagerly(async move {
                    let _ = match &answer {
                        Ok(b) => request.respond(Ok(b)).await,
                        Err(e) => request.respond(Err(e.clone())).await,
                    };
                });
            }
            other => fail(
                i,
                &Error::new(ErrorCode::Internal, format!("unknown op {other}")),
            ),
        }
    }
    for group in messages {
        let count = group.ops.len() as u64;
        let queued = connection(group.target)
            .and_then(|conn| conn.enqueue_frames(group.frames.freeze(), count, group.bytes));
        if let Err(e) = queued {
            for i in group.ops {
                fail(i, &e);
            }
        }
    }
    failures
}

#[napi(object)]
pub struct ConnectionInfo {
    pub id: f64,
    pub encoding: String,
    pub peer: String,
    pub peer_max_message_size: f64,
}

fn info(conn: &Connection) -> ConnectionInfo {
    ConnectionInfo {
        id: conn.id() as f64,
        encoding: conn.encoding().as_str().to_string(),
        peer: conn.peer().to_string(),
        peer_max_message_size: conn.peer_max_message_size() as f64,
    }
}

/// Creates a pooled client; returns its handle.
#[napi(catch_unwind)]
pub fn create_client(options: ClientOptions) -> napi::Result<u32> {
    let config = options::client_config(&options).map_err(js_error)?;
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let handler = Arc::new(NodeHandler { owner: handle });
    let client = within_runtime_if_available(|| Client::new(config, handler)).map_err(js_error)?;
    with_map(&CLIENTS, |m| m.insert(handle, client));
    Ok(handle)
}

fn client(handle: u32) -> napi::Result<Client> {
    with_map(&CLIENTS, |m| m.get(&handle).cloned())
        .ok_or_else(|| js_error(Error::closed("the transport is closed")))
}

#[napi]
pub async fn connect(client_handle: u32, host: String, port: u32) -> napi::Result<ConnectionInfo> {
    let client = client(client_handle)?;
    let key = quicwire::PoolKey::new(&host, i64::from(port)).map_err(js_error)?;
    let conn = client.connect_key(&key).await.map_err(js_error)?;
    // The handler registered it; register again in case it was evicted and re-dialed.
    with_map(&CONNECTIONS, |m| {
        m.entry(conn.id()).or_insert_with(|| conn.clone()).clone()
    });
    Ok(info(&conn))
}

/// Closes one connection (client or server side); a pool forgets it at once.
#[napi]
pub fn disconnect(connection_id: f64) {
    let Ok(conn) = connection(connection_id) else {
        return;
    };
    let clients: Vec<Client> = with_map(&CLIENTS, |m| m.values().cloned().collect());
    for c in clients {
        c.disconnect(&conn);
    }
    conn.close(quicwire::app_code::NO_ERROR, "disconnect");
}

#[napi(object)]
pub struct ConnectionStatsJs {
    pub peer: String,
    pub messages_out: f64,
    pub messages_in: f64,
    pub requests_out: f64,
    pub requests_in: f64,
    pub bytes_out: f64,
    pub bytes_in: f64,
    pub streams_open: f64,
    pub rtt_ms: f64,
    pub lost_packets: f64,
    pub udp_tx: f64,
    pub udp_rx: f64,
}

fn stats_js(s: &ConnectionStats) -> ConnectionStatsJs {
    ConnectionStatsJs {
        peer: s.peer.clone(),
        messages_out: s.messages_out as f64,
        messages_in: s.messages_in as f64,
        requests_out: s.requests_out as f64,
        requests_in: s.requests_in as f64,
        bytes_out: s.bytes_out as f64,
        bytes_in: s.bytes_in as f64,
        streams_open: s.streams_open as f64,
        rtt_ms: s.rtt_ms,
        lost_packets: s.lost_packets as f64,
        udp_tx: s.udp_tx as f64,
        udp_rx: s.udp_rx as f64,
    }
}

#[napi(object)]
pub struct PoolStatsJs {
    pub active: f64,
    pub idle: f64,
    pub created: f64,
    pub reused: f64,
    pub evicted: f64,
    pub failed: f64,
    pub totals: ConnectionStatsJs,
    pub connections: Vec<ConnectionStatsJs>,
}

#[napi]
pub fn pool_stats(client_handle: u32) -> napi::Result<PoolStatsJs> {
    let s = client(client_handle)?.stats();
    Ok(PoolStatsJs {
        active: s.active as f64,
        idle: s.idle as f64,
        created: s.created as f64,
        reused: s.reused as f64,
        evicted: s.evicted as f64,
        failed: s.failed as f64,
        totals: stats_js(&s.totals),
        connections: s.connections.iter().map(stats_js).collect(),
    })
}

#[napi]
pub async fn close_client(client_handle: u32) -> napi::Result<()> {
    let client = with_map(&CLIENTS, |m| m.remove(&client_handle));
    if let Some(c) = client {
        c.close().await;
    }
    Ok(())
}

#[napi(object)]
pub struct ServerInfo {
    pub id: u32,
    pub host: String,
    pub port: u32,
}

/// Binds and starts a server.
#[napi(catch_unwind)]
pub fn listen(options: ServerOptions) -> napi::Result<ServerInfo> {
    let config = options::server_config(&options).map_err(js_error)?;
    let ip: IpAddr = options.host.parse().map_err(|_| {
        js_error(Error::invalid_argument(format!(
            "host must be an IP address to listen on (e.g. 127.0.0.1 or ::1), got {:?}",
            options.host
        )))
    })?;
    let port =
        quicwire::core::config::validate_port(i64::from(options.port), true).map_err(js_error)?;
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let server = within_runtime_if_available(|| {
        Server::bind(
            SocketAddr::new(ip, port),
            config,
            Arc::new(NodeHandler { owner: handle }),
        )
    })
    .map_err(js_error)?;
    let addr = server.local_addr();
    with_map(&SERVERS, |m| m.insert(handle, server));
    Ok(ServerInfo {
        id: handle,
        host: addr.ip().to_string(),
        port: u32::from(addr.port()),
    })
}

#[napi(object)]
pub struct ServerStatsJs {
    pub connections: f64,
    pub accepted: f64,
    pub rejected: f64,
    pub refused: f64,
    pub totals: ConnectionStatsJs,
}

#[napi]
pub fn server_stats(server_handle: u32) -> napi::Result<ServerStatsJs> {
    let server = with_map(&SERVERS, |m| m.get(&server_handle).cloned())
        .ok_or_else(|| js_error(Error::closed("server is closed")))?;
    let s = server.stats();
    Ok(ServerStatsJs {
        connections: s.connections as f64,
        accepted: s.accepted as f64,
        rejected: s.rejected as f64,
        refused: s.refused as f64,
        totals: stats_js(&s.totals),
    })
}

#[napi]
pub async fn close_server(server_handle: u32, graceful: bool, timeout_ms: f64) -> napi::Result<()> {
    let server = with_map(&SERVERS, |m| m.remove(&server_handle));
    if let Some(s) = server {
        s.close(graceful, Duration::from_millis(timeout_ms as u64))
            .await;
    }
    Ok(())
}

#[napi(object)]
pub struct DevCert {
    pub cert: String,
    pub key: String,
}

#[napi(catch_unwind)]
pub fn generate_dev_cert(names: Vec<String>) -> napi::Result<DevCert> {
    let c = quicwire::generate_dev_cert(&names).map_err(js_error)?;
    Ok(DevCert {
        cert: c.cert,
        key: c.key,
    })
}

/// Panics on purpose, so tests can show a Rust panic reaches JS as an error and Node lives.
#[napi(catch_unwind)]
pub fn debug_panic() {
    panic!("debug_panic called");
}
