//! The engine as JavaScript drives it, the same for the napi and the wasm shell: numbers
//! and byte buffers in batches, since every call across the boundary costs more than the
//! work of one message.
//!
//! - Options travel as positional numbers ([`TRANSPORT_OPTIONS`], [`SERVER_OPTIONS`]; NaN
//!   keeps the default).
//! - Ops travel as [`OP_WORDS`] numbers each, `[op, connection, id, length, extra]`, with
//!   their bodies back to back in one data buffer ([`JsEngine::write`]).
//! - Events travel as [`EVENT_WORDS`] numbers each, `[kind, connection, b, c, d, offset,
//!   length]`: a body is `data[offset..offset + length]`, or, where the offset is negative,
//!   the batch's `-offset`-th large body, handed over on its own ([`JsEngine::take_events`]).
//! - Errors travel as a code (its index in [`ERROR_CODES`] inside batches, its name on a
//!   thrown error) and a message.
//!
//! `ts/layout.ts` is generated from these definitions (a test here fails when it is out of
//! date), so the facade and the engine cannot disagree on a number.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use quicwire_core::tls::{self, ClientTls, ServerTls};
use quicwire_core::{
    CongestionControl, Encoding, Error, ErrorCode, PoolKey, ServerLimits, TransportConfig,
};
use web_time::{Duration, Instant};

use crate::config::{ClientConfig, ServerConfig, WebTransportConfig};
use crate::event::{Event, Receipt};
use crate::outbox::{Outbox, SendOptions};
use crate::session::RequestOptions;
use crate::stats::EngineStats;
use crate::web::WebCommand;
use crate::{ConnId, Engine};

pub use crate::outbox::LARGE_BODY;

pub const OP_WORDS: usize = 6;
pub const EVENT_WORDS: usize = 7;

/// Op codes: `[op, connection, id, length, extra, priority]`.
pub mod op {
    /// priority = its lane, extra = [`UNCONFIRMED`] or 0; body = the message.
    pub const MESSAGE: u32 = 1;
    /// id = request id (unique among the caller's requests in flight on the connection),
    /// extra = timeout ms (0: the default), priority = its stream's; body = the request.
    pub const REQUEST: u32 = 2;
    /// id = request handle; body = the answer.
    pub const RESPOND: u32 = 3;
    /// id = request handle, extra = error code number; body = the error text.
    pub const RESPOND_ERROR: u32 = 4;
    /// body = an unreliable datagram.
    pub const DATAGRAM: u32 = 5;
    /// A REQUEST the application says is safe to repeat: it may go as 0-RTT data.
    pub const IDEMPOTENT_REQUEST: u32 = 6;
    /// A MESSAGE the application says is safe to repeat.
    pub const IDEMPOTENT_MESSAGE: u32 = 7;
    /// id = a request id: its caller stopped waiting. Its stream is reset, and nothing more
    /// is reported of it.
    pub const CANCEL: u32 = 8;
    /// body = the trace context of the REQUEST (or IDEMPOTENT_REQUEST) op right after it.
    pub const TRACE: u32 = 9;
    /// A MESSAGE's `extra` when its sender does not wait for the peer's ACK
    /// ([`crate::SendOptions::unconfirmed`]).
    pub const UNCONFIRMED: f64 = 1.0;
    /// Their names in `ts/layout.ts`.
    pub(crate) const NAMES: [(&str, u32); 9] = [
        ("Message", MESSAGE),
        ("Request", REQUEST),
        ("Respond", RESPOND),
        ("RespondError", RESPOND_ERROR),
        ("Datagram", DATAGRAM),
        ("IdempotentRequest", IDEMPOTENT_REQUEST),
        ("IdempotentMessage", IDEMPOTENT_MESSAGE),
        ("Cancel", CANCEL),
        ("Trace", TRACE),
    ];
}

/// Event kinds: `[kind, connection, b, c, d, offset, length]`.
pub mod event {
    /// b = owner (0 here; the facade fills in its client or server), c = the largest
    /// datagram this side may send, d = peer maxMessageSize; data = "encoding peer carrier"
    /// (carrier: udp or tcp).
    pub const CONNECTION: f64 = 1.0;
    /// c = 1 when it came as 0-RTT data; data = body.
    pub const MESSAGE: f64 = 2.0;
    /// b = request handle (unique on its connection), c = 1 when it came as 0-RTT data;
    /// data = body.
    pub const REQUEST: f64 = 3.0;
    /// b = request id; data = body.
    pub const RESPONSE: f64 = 4.0;
    /// b = request id, c = error code number; data = text.
    pub const REQUEST_FAILED: f64 = 5.0;
    /// b = messages of the lane delivered so far, c = the lane (its send priority).
    pub const ACKED: f64 = 6.0;
    /// c = error code number; data = reason.
    pub const CLOSED: f64 = 7.0;
    /// b = channel stream, c = its messages handed over so far: the facade acknowledges
    /// them once the application has them.
    pub const RECEIPT: f64 = 8.0;
    /// data = an unreliable datagram.
    pub const DATAGRAM: f64 = 9.0;
    /// b = owner (as for CONNECTION); data = a TLS key log line.
    pub const KEY_LOG: f64 = 10.0;
    /// b = owner (as for CONNECTION); data = qlog records (JSON-SEQ).
    pub const QLOG: f64 = 11.0;
    /// b = request handle; data = the trace context of the REQUEST event right after it.
    pub const TRACE: f64 = 12.0;
    /// b = request handle: its requester stopped waiting before it was answered.
    pub const REQUEST_CANCELLED: f64 = 13.0;
    /// Their names in `ts/layout.ts`.
    pub(crate) const NAMES: [(&str, f64); 13] = [
        ("Connection", CONNECTION),
        ("Message", MESSAGE),
        ("Request", REQUEST),
        ("Response", RESPONSE),
        ("RequestFailed", REQUEST_FAILED),
        ("Acked", ACKED),
        ("Closed", CLOSED),
        ("Receipt", RECEIPT),
        ("Datagram", DATAGRAM),
        ("KeyLog", KEY_LOG),
        ("Qlog", QLOG),
        ("Trace", TRACE),
        ("RequestCancelled", REQUEST_CANCELLED),
    ];
}

/// The positional transport options, in order. `congestionControl` travels as its index in
/// [`CongestionControl::ALL`] (`CONGESTION_CONTROLLERS` in `ts/layout.ts`).
pub const TRANSPORT_OPTIONS: [&str; 12] = [
    "maxMessageSize",
    "maxConcurrentStreams",
    "idleTimeoutMs",
    "connectTimeoutMs",
    "requestTimeoutMs",
    "maxConnections",
    "keepAliveMs",
    "sendBufferHigh",
    "congestionControl",
    "keyLog",
    "qlog",
    "earlyData",
];

/// The positional server options, in order (`validateAddresses` as 0 or 1; `worker`, the
/// server's index among workers sharing its port, see `ServerConfig::worker`).
pub const SERVER_OPTIONS: [&str; 4] = [
    "maxConnections",
    "maxConnectionsPerIp",
    "validateAddresses",
    "worker",
];

/// Error codes by their number.
pub fn error_codes() -> Vec<&'static str> {
    ErrorCode::ALL.iter().map(|c| c.as_str()).collect()
}

/// An error code's number (its index in [`error_codes`]).
pub fn code_number(code: ErrorCode) -> u32 {
    code as u32
}

fn option(values: &[f64], i: usize) -> Option<f64> {
    values.get(i).copied().filter(|v| v.is_finite())
}

fn clamp_u32(v: f64) -> u32 {
    v.clamp(0.0, f64::from(u32::MAX)) as u32
}

/// Transport options from their positional numbers ([`TRANSPORT_OPTIONS`]).
pub fn transport_options(values: &[f64]) -> Result<TransportConfig, Error> {
    let d = TransportConfig::default();
    let get = |i: usize, default: u64| option(values, i).map_or(default, |v| v.max(0.0) as u64);
    let cfg = TransportConfig {
        max_message_size: get(0, d.max_message_size),
        max_concurrent_streams: option(values, 1).map_or(d.max_concurrent_streams, clamp_u32),
        idle_timeout_ms: get(2, d.idle_timeout_ms),
        connect_timeout_ms: get(3, d.connect_timeout_ms),
        request_timeout_ms: get(4, d.request_timeout_ms),
        max_connections: option(values, 5).map_or(d.max_connections, clamp_u32),
        keep_alive_ms: get(6, d.keep_alive_ms),
        send_buffer_high: get(7, d.send_buffer_high),
        congestion_control: match option(values, 8) {
            None => d.congestion_control,
            Some(v) => *CongestionControl::ALL.get(v as usize).ok_or_else(|| {
                Error::invalid_argument(format!("congestionControl number {v} is unknown"))
            })?,
        },
        key_log: option(values, 9).is_some_and(|v| v != 0.0),
        qlog: option(values, 10).is_some_and(|v| v != 0.0),
        early_data: option(values, 11).is_some_and(|v| v != 0.0),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// A server's admission settings from their positional numbers ([`SERVER_OPTIONS`]).
pub fn server_options(values: &[f64]) -> Result<ServerLimits, Error> {
    let d = ServerLimits::default();
    let limits = ServerLimits {
        max_connections: option(values, 0).map_or(d.max_connections, clamp_u32),
        max_connections_per_ip: option(values, 1).map_or(d.max_connections_per_ip, clamp_u32),
        validate_addresses: option(values, 2).map_or(d.validate_addresses, |v| v != 0.0),
    };
    limits.validate()?;
    Ok(limits)
}

/// A server's worker index from its positional options ([`SERVER_OPTIONS`]), if it has one.
pub fn worker_option(values: &[f64]) -> Result<Option<u8>, Error> {
    option(values, 3)
        .map(|v| {
            u8::try_from(v as i64)
                .ok()
                .filter(|_| v.fract() == 0.0)
                .ok_or_else(|| {
                    Error::invalid_argument(format!("worker must be between 0 and 255, got {v}"))
                })
        })
        .transpose()
}

fn encodings(names: &[String], default: &[Encoding]) -> Result<Vec<Encoding>, Error> {
    if names.is_empty() {
        return Ok(default.to_vec());
    }
    names.iter().map(|n| Encoding::parse(n)).collect()
}

/// Checks `host:port` with the pool's rules and returns its key (`host:port`).
/// A development certificate for `names` (see `tls::generate_dev_cert`), valid from a
/// minute ago (for clocks a little behind) for `valid_days` if given.
pub fn dev_cert(names: &[String], valid_days: Option<f64>) -> Result<tls::DevCert, Error> {
    let validity = match valid_days {
        None => None,
        Some(days) if days.fract() == 0.0 && (1.0..=3650.0).contains(&days) => {
            let now = web_time::SystemTime::now()
                .duration_since(web_time::SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            Some(tls::Validity {
                from_unix: now - 60,
                days: days as u32,
            })
        }
        Some(days) => {
            return Err(Error::invalid_argument(format!(
                "validDays must be a whole number of days from 1 to 3650, got {days}"
            )))
        }
    };
    tls::generate_dev_cert(names, validity)
}

pub fn pool_key(host: &str, port: f64) -> Result<String, Error> {
    PoolKey::new(host, port as i64).map(|k| k.to_string())
}

/// One op of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// Position in the batch (failures name it).
    pub index: usize,
    pub code: u32,
    pub target: f64,
    pub id: f64,
    pub body: &'a [u8],
    pub extra: f64,
    /// Send priority (higher first); 0 by default.
    pub priority: i32,
}

/// The ops of a batch, in order; an op whose body overruns `data` ends it with an error.
pub fn ops<'a>(
    data: &'a [u8],
    words: &'a [f64],
) -> impl Iterator<Item = Result<Op<'a>, (usize, Error)>> + 'a {
    let mut offset = 0usize;
    let mut broken = false;
    words
        .chunks_exact(OP_WORDS)
        .enumerate()
        .map_while(move |(index, w)| {
            if broken {
                return None;
            }
            let len = w[3] as usize;
            let Some(body) = offset
                .checked_add(len)
                .and_then(|end| data.get(offset..end))
            else {
                broken = true;
                return Some(Err((
                    index,
                    Error::new(ErrorCode::Internal, "op list overruns its data"),
                )));
            };
            offset += len;
            Some(Ok(Op {
                index,
                code: w[0] as u32,
                target: w[1],
                id: w[2],
                body,
                extra: w[4],
                priority: w[5].clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32,
            }))
        })
}

/// The pool key of `host:port` under `tag` (0: the shared connection, see
/// [`PoolKey::with_tag`]).
fn tagged_key(host: &str, port: f64, tag: f64) -> Result<PoolKey, Error> {
    Ok(PoolKey::new(host, port as i64)?.with_tag(tag as u32))
}

/// The kinds of [`WebCommand`] as [`JsEngine::web_commands`] numbers them.
pub const WEB_COMMANDS: [&str; 9] = [
    "Connect", "Open", "Write", "Finish", "Reset", "Stop", "Priority", "Datagram", "Close",
];

/// What a [`WebCommand`] carries besides numbers.
#[derive(Debug)]
pub enum WebPayload<'a> {
    None,
    Bytes(&'a Bytes),
    Text(&'a str),
}

/// One [`WebCommand`] as numbers for JavaScript (see [`JsEngine::web_commands`]).
#[derive(Debug)]
pub struct WebCommandParts<'a> {
    pub kind: u8,
    pub conn: f64,
    pub stream: f64,
    /// `Open`: 1 for a bidirectional stream; `Reset`, `Stop`, `Close`: the code;
    /// `Priority`: the priority.
    pub number: f64,
    pub payload: WebPayload<'a>,
}

/// An op of a `write` that failed, by its index in the batch.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    pub op: u32,
    pub error: Error,
}

/// Failed ops as the shells hand them over: their indices, code numbers and messages.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Failures {
    pub ops: Vec<u32>,
    pub codes: Vec<u32>,
    pub messages: Vec<String>,
}

impl Failures {
    /// None when no op failed.
    pub fn of(failed: Vec<WriteFailure>) -> Option<Failures> {
        if failed.is_empty() {
            return None;
        }
        let mut out = Failures::default();
        for f in failed {
            out.ops.push(f.op);
            out.codes.push(code_number(f.error.code));
            out.messages.push(f.error.message);
        }
        Some(out)
    }
}

/// One event batch's numbers and bytes.
#[derive(Debug, Default)]
struct Batch {
    words: Vec<f64>,
    data: Vec<u8>,
    bodies: Vec<Bytes>,
}

impl Batch {
    fn clear(&mut self) {
        self.words.clear();
        self.data.clear();
        self.bodies.clear();
    }

    fn push(&mut self, kind: f64, conn: ConnId, [b, c, d]: [f64; 3], body: Bytes) {
        let len = body.len() as f64;
        let offset = if body.len() >= LARGE_BODY {
            self.bodies.push(body);
            -(self.bodies.len() as f64)
        } else {
            self.data.extend_from_slice(&body);
            (self.data.len() - body.len()) as f64
        };
        self.words
            .extend_from_slice(&[kind, conn.to_f64(), b, c, d, offset, len]);
    }

    fn push_event(&mut self, e: Event) {
        let code = |e: &Error| f64::from(code_number(e.code));
        match e {
            Event::Connected { conn, info } => {
                let label = format!(
                    "{} {} {}",
                    info.encoding.as_str(),
                    info.peer,
                    info.carrier.as_str()
                );
                let limit = info.peer_max_message_size as f64;
                let datagrams = info.max_datagram_size as f64;
                self.push(
                    event::CONNECTION,
                    conn,
                    [0.0, datagrams, limit],
                    label.into(),
                );
            }
            Event::Message { conn, body, early } => {
                let words = [0.0, f64::from(u8::from(early)), 0.0];
                self.push(event::MESSAGE, conn, words, body)
            }
            Event::Datagram { conn, body } => self.push(event::DATAGRAM, conn, [0.0; 3], body),
            Event::KeyLog { conn, line } => {
                self.push(event::KEY_LOG, conn, [0.0; 3], line.into_bytes().into())
            }
            Event::Qlog { conn, records } => self.push(event::QLOG, conn, [0.0; 3], records),
            Event::Receipt { conn, receipt } => {
                let words = [receipt.stream as f64, receipt.delivered as f64, 0.0];
                self.push(event::RECEIPT, conn, words, Bytes::new());
            }
            Event::Request {
                conn,
                handle,
                body,
                early,
                trace,
            } => {
                if let Some(context) = trace {
                    self.push(event::TRACE, conn, [handle as f64, 0.0, 0.0], context);
                }
                let words = [handle as f64, f64::from(u8::from(early)), 0.0];
                self.push(event::REQUEST, conn, words, body)
            }
            Event::Response { conn, id, body } => {
                self.push(event::RESPONSE, conn, [id as f64, 0.0, 0.0], body)
            }
            Event::RequestFailed { conn, id, error } => {
                let words = [id as f64, code(&error), 0.0];
                self.push(event::REQUEST_FAILED, conn, words, error.message.into());
            }
            Event::RequestCancelled { conn, handle } => {
                let words = [handle as f64, 0.0, 0.0];
                self.push(event::REQUEST_CANCELLED, conn, words, Bytes::new());
            }
            Event::Acked {
                conn,
                priority,
                delivered,
            } => {
                let words = [delivered as f64, f64::from(priority), 0.0];
                self.push(event::ACKED, conn, words, Bytes::new());
            }
            Event::Closed { conn, error } => {
                let words = [0.0, code(&error), 0.0];
                self.push(event::CLOSED, conn, words, error.message.into());
            }
        }
    }
}

/// An engine with its event batches, as a shell holds it.
#[derive(Debug)]
pub struct JsEngine {
    engine: Engine,
    /// Events gathered, not handed out yet.
    events: Batch,
    /// The batch `take_events` handed out last: its data and bodies wait here for the shell.
    handed: Batch,
}

impl JsEngine {
    /// A client that trusts `ca` (PEM), or anything when `insecure`, offering `encodings`
    /// (preferred first; none: msgpack).
    pub fn client(
        now: Instant,
        ca: Option<String>,
        insecure: bool,
        encodings_offered: &[String],
        options: &[f64],
    ) -> Result<JsEngine, Error> {
        let config = ClientConfig {
            transport: transport_options(options)?,
            tls: ClientTls { ca, insecure },
            encodings: encodings(encodings_offered, &[Encoding::Msgpack])?,
            system_roots: Vec::new(),
        };
        Engine::client(&config, now).map(JsEngine::new)
    }

    /// A server with this certificate chain and key (PEM), accepting `encodings` (none:
    /// all), and WebTransport sessions when `webtransport` is given: its path, then the
    /// origins of the pages allowed (none: any).
    pub fn server(
        now: Instant,
        cert: String,
        key: String,
        encodings_accepted: &[String],
        options: &[f64],
        admission: &[f64],
        webtransport: Option<Vec<String>>,
    ) -> Result<JsEngine, Error> {
        let config = ServerConfig {
            transport: transport_options(options)?,
            tls: ServerTls { cert, key },
            encodings: encodings(encodings_accepted, &Encoding::ALL)?,
            limits: server_options(admission)?,
            worker: worker_option(admission)?,
            webtransport: webtransport.map(|mut list| {
                let path = if list.is_empty() {
                    String::new()
                } else {
                    list.remove(0)
                };
                WebTransportConfig {
                    path,
                    origins: list,
                }
            }),
        };
        Engine::server(&config, now).map(JsEngine::new)
    }

    fn new(engine: Engine) -> JsEngine {
        JsEngine {
            engine,
            events: Batch::default(),
            handed: Batch::default(),
        }
    }

    /// The engine, for the calls that need no translation (datagrams, timers, closing).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Datagrams a shell received, as JS hands them over: `data` back to back, `lens[i]`
    /// bytes each, from `addrs[i]` ("ip:port"); see [`Engine::receive`]. A datagram with an
    /// address that does not parse ends the batch.
    pub fn receive(&mut self, now: Instant, data: &[u8], lens: &[u32], addrs: &[String]) -> bool {
        let mut offset = 0usize;
        let datagrams = lens.iter().zip(addrs).map_while(|(len, addr)| {
            let end = offset + *len as usize;
            let datagram = data.get(offset..end)?;
            offset = end;
            Some((addr.parse::<SocketAddr>().ok()?, BytesMut::from(datagram)))
        });
        self.engine.receive(now, datagrams)
    }

    /// The pooled connection to `host:port` (under `tag`, 0 for the shared one, see
    /// [`PoolKey::with_tag`]), or a new handshake with `addr` ("ip:port"); its id, as a
    /// number.
    pub fn connect(
        &mut self,
        now: Instant,
        host: &str,
        port: f64,
        addr: &str,
        tag: f64,
    ) -> Result<f64, Error> {
        let key = tagged_key(host, port, tag)?;
        let remote: SocketAddr = addr.parse().map_err(|_| {
            Error::invalid_argument(format!("invalid address {addr:?}: expected ip:port"))
        })?;
        self.engine.connect(now, &key, remote).map(ConnId::to_f64)
    }

    /// Like `connect`, racing a second handshake with `fallback` when the first is not done
    /// `after_ms` in (see [`Engine::connect_racing`]).
    #[allow(clippy::too_many_arguments)] // the positional call the shells make
    pub fn connect_racing(
        &mut self,
        now: Instant,
        host: &str,
        port: f64,
        addr: &str,
        fallback: &str,
        after_ms: f64,
        tag: f64,
    ) -> Result<f64, Error> {
        let key = tagged_key(host, port, tag)?;
        let parse = |a: &str| {
            a.parse::<SocketAddr>().map_err(|_| {
                Error::invalid_argument(format!("invalid address {a:?}: expected ip:port"))
            })
        };
        let after = Duration::from_millis(after_ms.max(0.0) as u64);
        self.engine
            .connect_racing(now, &key, parse(addr)?, parse(fallback)?, after)
            .map(ConnId::to_f64)
    }

    /// The pooled connection to `host:port` (under `tag`), or a new one over a browser's
    /// WebTransport session to `url` (see [`Engine::connect_web`]); its id.
    pub fn connect_web(
        &mut self,
        now: Instant,
        host: &str,
        port: f64,
        url: &str,
        tag: f64,
    ) -> Result<f64, Error> {
        let key = tagged_key(host, port, tag)?;
        self.engine.connect_web(now, &key, url).map(ConnId::to_f64)
    }

    /// What the page is to do for its WebTransport sessions, each as (kind, connection,
    /// stream, number, bytes or text) in the order [`WEB_COMMANDS`] names the kinds.
    pub fn web_commands(&mut self, now: Instant, mut each: impl FnMut(WebCommandParts<'_>)) {
        self.engine.poll_web(now, |id, command| {
            let conn = id.to_f64();
            let parts = match &command {
                WebCommand::Connect { url } => (0, 0, 0.0, WebPayload::Text(url)),
                WebCommand::Open { stream, bidi } => {
                    (1, *stream, f64::from(u8::from(*bidi)), WebPayload::None)
                }
                WebCommand::Write { stream, data } => (2, *stream, 0.0, WebPayload::Bytes(data)),
                WebCommand::Finish { stream } => (3, *stream, 0.0, WebPayload::None),
                WebCommand::Reset { stream, code } => {
                    (4, *stream, f64::from(*code), WebPayload::None)
                }
                WebCommand::Stop { stream, code } => {
                    (5, *stream, f64::from(*code), WebPayload::None)
                }
                WebCommand::Priority { stream, priority } => {
                    (6, *stream, f64::from(*priority), WebPayload::None)
                }
                WebCommand::Datagram { data } => (7, 0, 0.0, WebPayload::Bytes(data)),
                WebCommand::Close { code, reason } => {
                    (8, 0, f64::from(*code), WebPayload::Text(reason))
                }
            };
            let (kind, stream, number, payload) = parts;
            each(WebCommandParts {
                kind,
                conn,
                stream: stream as f64,
                number,
                payload,
            });
        });
    }

    /// Runs `f` on the engine for connection `id` (a number of no connection: nothing).
    pub fn on_web<T>(&mut self, id: f64, f: impl FnOnce(&mut Engine, ConnId) -> T) -> Option<T> {
        ConnId::from_f64(id).map(|id| f(&mut self.engine, id))
    }

    /// Closes connection `id` (an id of no open connection: nothing), for `reason` if given.
    pub fn disconnect(&mut self, now: Instant, id: f64, reason: Option<&str>) {
        if let Some(id) = ConnId::from_f64(id) {
            self.engine.close(now, id, reason.unwrap_or("disconnect"));
        }
    }

    /// Acknowledges RECEIPT events the application has dealt with: (connection, stream,
    /// delivered) triples.
    pub fn acknowledge(&mut self, now: Instant, receipts: &[f64]) {
        for r in receipts.chunks_exact(3) {
            if let Some(id) = ConnId::from_f64(r[0]) {
                let receipt = Receipt {
                    stream: r[1] as u64,
                    delivered: r[2] as u64,
                    early: false,
                };
                self.engine.acknowledge(now, id, receipt);
            }
        }
    }

    /// Carries out a batch of ops; returns the failed ones. Each connection's messages are
    /// sent in one outbox, after the batch's other ops.
    pub fn write(
        &mut self,
        now: Instant,
        data: &[u8],
        ops: &[f64],
        shared: impl Fn(&[u8]) -> Option<Bytes>,
    ) -> Vec<WriteFailure> {
        let mut failures = Vec::new();
        let mut fail = |op: usize, error: Error| {
            failures.push(WriteFailure {
                op: op as u32,
                error,
            })
        };
        // Each connection's messages, per lane: its outbox (or why it has none), and their ops.
        type Lane = (f64, i32);
        let mut outboxes: Vec<(Lane, Result<Outbox, Error>, Vec<usize>)> = Vec::new();
        let engine = &mut self.engine;
        // A TRACE op's context, for the request op right after it.
        let mut trace: Option<Bytes> = None;
        for op in self::ops(data, ops) {
            let op = match op {
                Ok(op) => op,
                Err((i, e)) => {
                    fail(i, e);
                    break;
                }
            };
            let conn = ConnId::from_f64(op.target)
                .ok_or_else(|| Error::closed(format!("connection {} is closed", op.target)));
            let result = match op.code {
                op::MESSAGE | op::IDEMPOTENT_MESSAGE => {
                    let options = SendOptions {
                        priority: op.priority,
                        idempotent: op.code == op::IDEMPOTENT_MESSAGE,
                        unconfirmed: op.extra == op::UNCONFIRMED,
                    };
                    let lane = (op.target, op.priority);
                    let mut found = outboxes.iter().position(|o| o.0 == lane);
                    // Messages safe to repeat followed by one that is not: those go now (as
                    // 0-RTT data, maybe), the rest in an outbox of their own after them.
                    if let Some(at) = found.filter(|&at| {
                        !options.idempotent
                            && matches!(&outboxes[at].1, Ok(o) if o.options.idempotent && !o.is_empty())
                    }) {
                        let (_, earlier, indices) = outboxes.remove(at);
                        if let (Ok(c), Ok(mut earlier)) = (conn.clone(), earlier) {
                            if let Err(e) = engine.send(now, c, &mut earlier) {
                                for i in indices {
                                    fail(i, e.clone());
                                }
                            }
                        }
                        found = None;
                    }
                    let at = match found {
                        Some(at) => at,
                        None => {
                            let outbox = conn.clone().and_then(|c| engine.outbox(c, options));
                            outboxes.push((lane, outbox, Vec::new()));
                            outboxes.len() - 1
                        }
                    };
                    let (_, outbox, indices) = &mut outboxes[at];
                    let pushed = match outbox {
                        Ok(outbox) => {
                            // One outbox per lane keeps the lane's order: it goes as 0-RTT
                            // data only if every message in it may.
                            outbox.options.idempotent &= options.idempotent;
                            outbox.options.unconfirmed = options.unconfirmed;
                            outbox.push_shared(op.body, &shared)
                        }
                        Err(e) => Err(e.clone()),
                    };
                    if pushed.is_ok() {
                        indices.push(op.index);
                    }
                    pushed
                }
                op::TRACE => {
                    trace = Some(Bytes::copy_from_slice(op.body));
                    continue;
                }
                op::REQUEST | op::IDEMPOTENT_REQUEST => conn.and_then(|c| {
                    let options = RequestOptions {
                        timeout: (op.extra > 0.0).then(|| Duration::from_millis(op.extra as u64)),
                        priority: op.priority,
                        idempotent: op.code == op::IDEMPOTENT_REQUEST,
                        trace: trace.take(),
                    };
                    let body = Bytes::copy_from_slice(op.body);
                    engine.request(now, c, op.id as u64, body, options)
                }),
                op::DATAGRAM => conn.and_then(|c| engine.send_datagram(now, c, op.body)),
                op::CANCEL => conn.map(|c| engine.cancel_request(now, c, op.id as u64)),
                op::RESPOND | op::RESPOND_ERROR => conn.and_then(|c| {
                    let answer = if op.code == op::RESPOND {
                        Ok(op.body)
                    } else {
                        let code = ErrorCode::from_wire(op.extra as u64);
                        let text = String::from_utf8_lossy(op.body).into_owned();
                        Err(Error::new(code, text))
                    };
                    engine.respond(now, c, op.id as u64, answer)
                }),
                other => Err(Error::new(
                    ErrorCode::Internal,
                    format!("unknown op {other}"),
                )),
            };
            // A context is for the op right after its TRACE only.
            trace = None;
            if let Err(e) = result {
                fail(op.index, e);
            }
        }
        for ((target, _), outbox, indices) in outboxes {
            let (Some(conn), Ok(mut outbox)) = (ConnId::from_f64(target), outbox) else {
                continue; // Its ops failed already.
            };
            if outbox.is_empty() {
                continue;
            }
            if let Err(e) = engine.send(now, conn, &mut outbox) {
                for i in indices {
                    fail(i, e.clone());
                }
            }
        }
        failures
    }

    /// Events since the last call, [`EVENT_WORDS`] numbers each, and their bytes; None when
    /// there are none. Large bodies (`take_event_bodies`) stay here until the next call.
    pub fn take_events(&mut self) -> Option<(&[f64], &[u8])> {
        self.gather();
        if self.events.words.is_empty() {
            // Nothing new: the last batch's bytes and bodies are gone all the same, so a
            // shell that asks for them now gets nothing rather than the old batch again.
            self.handed.clear();
            return None;
        }
        // The two batches swap buffers, so neither is allocated anew (unless the shell took
        // the bytes or bodies away).
        std::mem::swap(&mut self.events, &mut self.handed);
        self.events.clear();
        Some((&self.handed.words, &self.handed.data))
    }

    /// Whether `take_events` has events to hand out.
    pub fn has_events(&mut self) -> bool {
        !self.events.words.is_empty() || self.engine.has_events()
    }

    fn gather(&mut self) {
        while let Some(e) = self.engine.poll_event() {
            self.events.push_event(e);
        }
    }

    /// The bytes of the batch `take_events` returned last, for a shell that keeps them
    /// rather than copying them (large ones).
    pub fn take_event_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.handed.data)
    }

    /// The large bodies of the batch `take_events` returned last.
    pub fn take_event_bodies(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.handed.bodies)
    }

    /// Copies the large bodies of the batch `take_events` returned last, one after another
    /// in event order, into a buffer of `room` bytes (`copy(at, body)` writes one), and
    /// lets go of them: for a shell whose JS reuses one buffer for them rather than taking
    /// a new one per body. Returns the bytes they take; when that is more than `room`,
    /// nothing was copied and they stay.
    pub fn copy_event_bodies(&mut self, room: usize, mut copy: impl FnMut(usize, &[u8])) -> usize {
        let bodies = &mut self.handed.bodies;
        let need = bodies.iter().map(Bytes::len).sum();
        if need <= room {
            let mut at = 0;
            for body in bodies.drain(..) {
                copy(at, &body);
                at += body.len();
            }
        }
        need
    }

    /// Pool, admission and traffic figures as JSON (the facade's shapes).
    pub fn stats_json(&self) -> String {
        stats_json(&self.engine.stats())
    }
}

impl AsMut<Engine> for JsEngine {
    fn as_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

fn connection_json(s: &quicwire_core::ConnectionStats, idle: Option<bool>) -> String {
    let idle = idle.map_or(String::new(), |i| format!("\"idle\":{i},"));
    format!(
        concat!(
            "{{{}\"peer\":{:?},\"messagesOut\":{},\"messagesIn\":{},\"requestsOut\":{},",
            "\"requestsIn\":{},\"bytesOut\":{},\"bytesIn\":{},\"streamsOpen\":{},",
            "\"rttMs\":{},\"minRttMs\":{},\"lostPackets\":{},\"lostBytes\":{},\"udpTx\":{},",
            "\"udpRx\":{},\"cwnd\":{},\"congestionEvents\":{},\"mtu\":{},\"congestionControl\":\"{}\",",
            "\"datagramsOut\":{},\"datagramsIn\":{},\"datagramsDropped\":{},\"datagramsLost\":{},",
            "\"maxDatagramSize\":{},\"zeroRttAccepted\":{},\"zeroRttRejected\":{},\"carrier\":\"{}\"}}"
        ),
        idle,
        s.peer,
        s.messages_out,
        s.messages_in,
        s.requests_out,
        s.requests_in,
        s.bytes_out,
        s.bytes_in,
        s.streams_open,
        s.rtt_ms,
        s.min_rtt_ms,
        s.lost_packets,
        s.lost_bytes,
        s.udp_tx,
        s.udp_rx,
        s.cwnd,
        s.congestion_events,
        s.mtu,
        s.congestion_control.as_str(),
        s.datagrams_out,
        s.datagrams_in,
        s.datagrams_dropped,
        s.datagrams_lost,
        s.max_datagram_size,
        s.zero_rtt_accepted,
        s.zero_rtt_rejected,
        s.carrier.as_str(),
    )
}

fn stats_json(s: &EngineStats) -> String {
    let mut totals = quicwire_core::ConnectionStats::default();
    let mut conns = Vec::with_capacity(s.connections.len());
    for c in &s.connections {
        totals.accumulate(&c.stats);
        conns.push(connection_json(&c.stats, Some(c.idle)));
    }
    format!(
        concat!(
            "{{\"created\":{},\"reused\":{},\"evicted\":{},\"failed\":{},\"accepted\":{},",
            "\"rejected\":{},\"refused\":{},\"retried\":{},\"totals\":{},\"ended\":{},",
            "\"connections\":[{}]}}"
        ),
        s.pool.created,
        s.pool.reused,
        s.pool.evicted,
        s.pool.failed,
        s.accepted,
        s.rejected,
        s.refused,
        s.retried,
        connection_json(&totals, None),
        connection_json(&s.ended, None),
        conns.join(",")
    )
}

/// `ts/layout.ts`: these definitions for the facade.
pub fn typescript_layout() -> String {
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("  '{n}',\n"))
            .collect::<String>()
    };
    let mut out = String::from(
        "// Generated from crates/quicwire-engine/src/abi.rs by its tests: do not edit. After a\n\
         // change there, `QUICWIRE_BLESS=1 cargo test -p quicwire-engine` writes it anew.\n\n",
    );
    out += &format!(
        "export const OP_WORDS = {OP_WORDS};\nexport const EVENT_WORDS = {EVENT_WORDS};\n"
    );
    out += &format!(
        "/** Bodies of this many bytes and more travel in buffers of their own. */\nexport const LARGE_BODY = {LARGE_BODY};\n\n"
    );
    out +=
        "/** Op codes (`[op, connection, id, length, extra, priority]`). */\nexport const Op = {\n";
    for (name, n) in op::NAMES {
        out += &format!("  {name}: {n},\n");
    }
    out += &format!(
        "}} as const;\n/** A message op's `extra`: its sender does not wait for the peer's ACK. */\nexport const UNCONFIRMED = {};\n\n",
        op::UNCONFIRMED
    );
    out += "/** Event kinds (`[kind, connection, b, c, d, offset, length]`). */\nexport const Event = {\n";
    for (name, n) in event::NAMES {
        out += &format!("  {name}: {n},\n");
    }
    out += "} as const;\n\n/** Error codes by their number. */\nexport const ERROR_CODES = [\n";
    out += &quoted(&error_codes());
    out += "] as const;\nexport type ErrorCode = (typeof ERROR_CODES)[number];\n\n";
    out +=
        "/** The positional transport options, in order. */\nexport const TRANSPORT_OPTIONS = [\n";
    out += &quoted(&TRANSPORT_OPTIONS);
    out += "] as const;\n\n/** The positional server options, in order. */\nexport const SERVER_OPTIONS = [\n";
    out += &quoted(&SERVER_OPTIONS);
    out += "] as const;\n\n/** Congestion controllers, by their number in `congestionControl`. */\nexport const CONGESTION_CONTROLLERS = [\n";
    let controllers: Vec<_> = CongestionControl::ALL.iter().map(|c| c.as_str()).collect();
    out += &quoted(&controllers);
    out += "] as const;\n\n/** What a page does for its WebTransport sessions (`[kind, connection, stream, number, payload]`). */\nexport const WebCommand = {\n";
    for (n, name) in WEB_COMMANDS.iter().enumerate() {
        out += &format!("  {name}: {n},\n");
    }
    out += "} as const;\n";
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn splits_bodies_and_stops_at_an_overrun() {
        let data = b"abcdef";
        let words = [
            1.0, 7.0, 0.0, 2.0, 0.0, 0.0, // a message
            2.0, 7.0, 9.0, 4.0, 5.0, -3.0, // a request at priority -3
            1.0, 7.0, 0.0, 99.0, 0.0, 0.0, // a body past the data
        ];
        let got: Vec<_> = ops(data, &words).collect();
        assert_eq!(got.len(), 3);
        let a = got[0].as_ref().unwrap();
        assert_eq!((a.code, a.body), (op::MESSAGE, &b"ab"[..]));
        let b = got[1].as_ref().unwrap();
        assert_eq!(
            (b.code, b.id, b.body, b.extra, b.priority),
            (op::REQUEST, 9.0, &b"cdef"[..], 5.0, -3)
        );
        assert_eq!(got[2].as_ref().unwrap_err().0, 2);
    }

    #[test]
    fn options_by_position_with_nan_for_defaults() {
        let d = TransportConfig::default();
        let mut values = [f64::NAN; 11];
        values[0] = 2048.0;
        values[7] = 4096.0;
        let cfg = transport_options(&values).unwrap();
        assert_eq!((cfg.max_message_size, cfg.send_buffer_high), (2048, 4096));
        assert_eq!(cfg.keep_alive_ms, d.keep_alive_ms);
        values[7] = 10.0;
        let e = transport_options(&values).unwrap_err();
        assert!(e.message.contains("sendBufferHigh"), "{e}");
        values[7] = f64::NAN;
        values[8] = 2.0;
        let cfg = transport_options(&values).unwrap();
        assert_eq!(cfg.congestion_control, CongestionControl::Bbr);
        values[8] = 3.0;
        let e = transport_options(&values).unwrap_err();
        assert!(e.message.contains("congestionControl"), "{e}");
        let limits = server_options(&[f64::NAN, 3.0, 1.0]).unwrap();
        assert_eq!(limits.max_connections_per_ip, 3);
        assert!(limits.validate_addresses);
    }

    #[test]
    fn code_numbers_are_indices_of_the_names() {
        let names = error_codes();
        for code in ErrorCode::ALL {
            assert_eq!(names[code_number(code) as usize], code.as_str());
        }
    }

    /// The facade's copy of the layout is this module's, generated; QUICWIRE_BLESS=1
    /// writes it anew.
    #[test]
    fn typescript_layout_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ts/layout.ts");
        let want = typescript_layout();
        if std::env::var_os("QUICWIRE_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "ts/layout.ts is out of date: run QUICWIRE_BLESS=1 cargo test -p quicwire-engine"
        );
    }
}
