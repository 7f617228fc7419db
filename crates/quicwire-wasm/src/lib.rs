//! quicwire's engine in WebAssembly: the wasm-bindgen shell over `quicwire-engine`.
//!
//! There are no sockets or clocks in here. JS feeds every datagram received in a tick with
//! one `receive` call, sends everything `transmits` returns, and calls `onTimeout` once the
//! deadline `nextDeadlineMs` gives has passed (ts/wasm.ts). Addresses cross as "ip:port"
//! strings, and the time as milliseconds on the caller's monotonic clock (`now`): the
//! page's own, or a manual one that tests move by hand.

// wasm-bindgen types hold JS-facing data; Debug would only add code size to the module.
#![allow(missing_debug_implementations)]

use quicwire_core::Error;
use quicwire_engine::abi::{self, Failures, JsEngine, WebPayload, LARGE_BODY};
use quicwire_engine::Instant;
use std::time::Duration;
use wasm_bindgen::prelude::*;

thread_local! {
    /// The instant JS time 0 stands for. Any will do: only differences matter.
    static EPOCH: Instant = Instant::now();
}

/// JS time (milliseconds on the caller's clock, never negative) as an engine instant.
fn at(now: f64) -> Instant {
    EPOCH.with(|e| *e + Duration::from_secs_f64(now.max(0.0) / 1000.0))
}

/// An engine instant as JS time.
fn ms(t: Instant) -> f64 {
    EPOCH.with(|e| t.saturating_duration_since(*e).as_secs_f64() * 1000.0)
}

/// The one place a quicwire error becomes a JS error: an Error with its `code`.
fn js_error(e: Error) -> JsValue {
    let error = js_sys::Error::new(&e.message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &e.code.as_str().into());
    error.into()
}

/// Checks `host:port` with the pool's rules and returns its key (`host:port`).
#[wasm_bindgen(js_name = poolKey)]
pub fn pool_key(host: &str, port: f64) -> Result<String, JsValue> {
    abi::pool_key(host, port).map_err(js_error)
}

/// A self-signed certificate for development (`cert`, `key` in PEM).
#[wasm_bindgen(getter_with_clone)]
pub struct DevCert {
    pub cert: String,
    pub key: String,
    /// SHA-256 of the certificate (DER) in hex, for `serverCertificateHashes`.
    pub hash: String,
}

#[wasm_bindgen(js_name = generateDevCert)]
pub fn generate_dev_cert(names: Vec<String>, valid_days: Option<f64>) -> Result<DevCert, JsValue> {
    let c = abi::dev_cert(&names, valid_days).map_err(js_error)?;
    Ok(DevCert {
        cert: c.cert,
        key: c.key,
        hash: c.hash,
    })
}

/// Ops of a `write` that failed: their indices, error code numbers and messages.
#[wasm_bindgen(getter_with_clone)]
pub struct WriteFailures {
    pub ops: Vec<u32>,
    pub codes: Vec<u32>,
    pub messages: Vec<String>,
}

/// Datagrams to send: `data` back to back, `lens[i]` bytes each, to `addrs[i]`.
#[wasm_bindgen(getter_with_clone)]
pub struct Transmits {
    pub data: Vec<u8>,
    pub lens: Vec<u32>,
    pub addrs: Vec<String>,
}

/// One QUIC endpoint (a client or a server) and its connections; see `quicwire_engine`.
#[wasm_bindgen]
pub struct Engine {
    inner: JsEngine,
}

#[wasm_bindgen]
impl Engine {
    /// A client endpoint that trusts `ca` (PEM), or anything when `insecure`, offering
    /// `encodings` (preferred first; empty: msgpack). `limits`: `transport_options`.
    pub fn client(
        now: f64,
        ca: Option<String>,
        insecure: bool,
        encodings: Vec<String>,
        limits: &[f64],
    ) -> Result<Engine, JsValue> {
        let inner = JsEngine::client(at(now), ca, insecure, &encodings, limits);
        Ok(Engine {
            inner: inner.map_err(js_error)?,
        })
    }

    /// A server endpoint with this certificate chain and key (PEM), accepting `encodings`
    /// (empty: all). `admission`: `server_options`.
    pub fn server(
        now: f64,
        cert: String,
        key: String,
        encodings: Vec<String>,
        limits: &[f64],
        admission: &[f64],
        web_transport: Option<Vec<String>>,
    ) -> Result<Engine, JsValue> {
        let inner = JsEngine::server(
            at(now),
            cert,
            key,
            &encodings,
            limits,
            admission,
            web_transport,
        );
        Ok(Engine {
            inner: inner.map_err(js_error)?,
        })
    }

    /// The pooled connection to `host:port` (under `tag`; 0: the shared one), or a new
    /// handshake with `addr` ("ip:port"); its id (see `quicwire_engine::ConnId`).
    pub fn connect(
        &mut self,
        now: f64,
        host: &str,
        port: f64,
        addr: &str,
        tag: f64,
    ) -> Result<f64, JsValue> {
        self.inner
            .connect(at(now), host, port, addr, tag)
            .map_err(js_error)
    }

    /// Like `connect`, racing a second handshake with `fallback` ("ip:port") when the first
    /// is not done `after_ms` in; the first to finish goes on under the id returned.
    #[wasm_bindgen(js_name = connectRacing)]
    #[allow(clippy::too_many_arguments)] // the positional call JS makes
    pub fn connect_racing(
        &mut self,
        now: f64,
        host: &str,
        port: f64,
        addr: &str,
        fallback: &str,
        after_ms: f64,
        tag: f64,
    ) -> Result<f64, JsValue> {
        self.inner
            .connect_racing(at(now), host, port, addr, fallback, after_ms, tag)
            .map_err(js_error)
    }

    /// The pooled connection to `host:port` (under `tag`), or a new one over a WebTransport
    /// session to `url` that the page opens when `webCommands` says so.
    #[wasm_bindgen(js_name = connectWeb)]
    pub fn connect_web(
        &mut self,
        now: f64,
        host: &str,
        port: f64,
        url: &str,
        tag: f64,
    ) -> Result<f64, JsValue> {
        self.inner
            .connect_web(at(now), host, port, url, tag)
            .map_err(js_error)
    }

    /// What the page is to do for its WebTransport sessions, in order: an array of
    /// `[kind, connection, stream, number, payload]` (kinds: `WebCommand` in ts/layout.ts;
    /// the payload a Uint8Array, a string or undefined).
    #[wasm_bindgen(js_name = webCommands)]
    pub fn web_commands(&mut self, now: f64) -> js_sys::Array {
        let out = js_sys::Array::new();
        self.inner.web_commands(at(now), |c| {
            let payload: JsValue = match c.payload {
                WebPayload::None => JsValue::UNDEFINED,
                WebPayload::Bytes(b) => js_sys::Uint8Array::from(&b[..]).into(),
                WebPayload::Text(t) => t.into(),
            };
            let entry = js_sys::Array::of5(
                &f64::from(c.kind).into(),
                &c.conn.into(),
                &c.stream.into(),
                &c.number.into(),
                &payload,
            );
            out.push(&entry);
        });
        out
    }

    /// The WebTransport session of `connection` is open; its datagrams carry at most
    /// `max_datagram` bytes.
    #[wasm_bindgen(js_name = webReady)]
    pub fn web_ready(&mut self, now: f64, connection: f64, max_datagram: f64) {
        let now = at(now);
        self.inner.on_web(connection, |e, id| {
            e.web_ready(now, id, max_datagram as usize)
        });
    }

    /// A new stream of the server's: the key the page names it by (-1: no such session).
    #[wasm_bindgen(js_name = webIncoming)]
    pub fn web_incoming(&mut self, now: f64, connection: f64, bidi: bool) -> f64 {
        let now = at(now);
        self.inner
            .on_web(connection, |e, id| e.web_incoming(now, id, bidi))
            .flatten()
            .map_or(-1.0, |key| key as f64)
    }

    #[wasm_bindgen(js_name = webData)]
    pub fn web_data(&mut self, now: f64, connection: f64, stream: f64, data: &[u8], fin: bool) {
        let now = at(now);
        self.inner.on_web(connection, |e, id| {
            e.web_data(now, id, stream as u64, data, fin)
        });
    }

    #[wasm_bindgen(js_name = webReset)]
    pub fn web_reset(&mut self, now: f64, connection: f64, stream: f64, code: f64) {
        let now = at(now);
        self.inner.on_web(connection, |e, id| {
            e.web_reset(now, id, stream as u64, code as u64)
        });
    }

    #[wasm_bindgen(js_name = webStopped)]
    pub fn web_stopped(&mut self, now: f64, connection: f64, stream: f64, code: f64) {
        let now = at(now);
        self.inner.on_web(connection, |e, id| {
            e.web_stopped(now, id, stream as u64, code as u64)
        });
    }

    #[wasm_bindgen(js_name = webDatagram)]
    pub fn web_datagram(&mut self, now: f64, connection: f64, data: &[u8]) {
        let now = at(now);
        self.inner
            .on_web(connection, |e, id| e.web_datagram(now, id, data));
    }

    /// The WebTransport session of `connection` ended, or never opened, for `reason`.
    #[wasm_bindgen(js_name = webClosed)]
    pub fn web_closed(&mut self, now: f64, connection: f64, reason: &str) {
        let now = at(now);
        self.inner
            .on_web(connection, |e, id| e.web_closed(now, id, reason));
    }

    /// Closes a connection (for `reason`, which its close error then says); an id of no
    /// open connection: nothing.
    pub fn disconnect(&mut self, now: f64, connection: f64, reason: Option<String>) {
        self.inner
            .disconnect(at(now), connection, reason.as_deref())
    }

    #[wasm_bindgen(js_name = goAway)]
    pub fn go_away(&mut self, now: f64) {
        self.inner.engine_mut().go_away(at(now))
    }

    pub fn serving(&self) -> u32 {
        self.inner.engine().serving() as u32
    }

    #[wasm_bindgen(js_name = closeAll)]
    pub fn close_all(&mut self, now: f64, reason: &str) {
        self.inner.engine_mut().close_all(at(now), reason)
    }

    pub fn stats(&self) -> String {
        self.inner.stats_json()
    }

    /// The datagrams received since the last call: `data` back to back, `lens[i]` bytes
    /// each, from `addrs[i]`. True: send (`transmits`) before the application gets the
    /// events (see `quicwire_engine::Engine::receive`).
    pub fn receive(&mut self, now: f64, data: &[u8], lens: &[u32], addrs: Vec<String>) -> bool {
        self.inner.receive(at(now), data, lens, &addrs)
    }

    /// Everything ready to send now, in one call.
    pub fn transmits(&mut self, now: f64) -> Transmits {
        let mut out = Transmits {
            data: Vec::new(),
            lens: Vec::new(),
            addrs: Vec::new(),
        };
        self.inner
            .engine_mut()
            .poll_transmits(at(now), 1, |datagram, to, _| {
                out.data.extend_from_slice(datagram);
                out.lens.push(datagram.len() as u32);
                out.addrs.push(to.to_string());
                true
            });
        out
    }

    /// When `onTimeout` is next due (JS time, as `now` is given), or -1 when no timer is
    /// armed.
    #[wasm_bindgen(js_name = nextDeadlineMs)]
    pub fn next_deadline_ms(&mut self) -> f64 {
        self.inner.engine_mut().next_timeout().map_or(-1.0, ms)
    }

    #[wasm_bindgen(js_name = onTimeout)]
    pub fn on_timeout(&mut self, now: f64) {
        self.inner.engine_mut().on_timeout(at(now))
    }

    /// (connection, stream, delivered) triples of RECEIPT events dealt with.
    pub fn acknowledge(&mut self, now: f64, receipts: &[f64]) {
        self.inner.acknowledge(at(now), receipts)
    }

    /// Events since the last call, seven numbers each, or nothing when there are none. Their
    /// bytes, when small, follow the words in the same ArrayBuffer (`words.buffer` from
    /// `words.byteLength` on), copied out of the module's memory once. Large ones wait in
    /// `takeEventData`, and large bodies (negative offsets) in `takeEventBodies`.
    #[wasm_bindgen(js_name = takeEvents)]
    pub fn take_events(&mut self) -> Option<js_sys::Float64Array> {
        let (words, data) = self.inner.take_events()?;
        if data.len() >= LARGE_BODY {
            return Some(js_sys::Float64Array::from(words));
        }
        let buffer = js_sys::ArrayBuffer::new((words.len() * 8 + data.len()) as u32);
        let view =
            js_sys::Float64Array::new_with_byte_offset_and_length(&buffer, 0, words.len() as u32);
        view.copy_from(words);
        js_sys::Uint8Array::new_with_byte_offset(&buffer, (words.len() * 8) as u32).copy_from(data);
        Some(view)
    }

    /// The bytes of the last batch when they were too large to travel with its words.
    #[wasm_bindgen(js_name = takeEventData)]
    pub fn take_event_data(&mut self) -> js_sys::Uint8Array {
        js_sys::Uint8Array::from(&self.inner.take_event_data()[..])
    }

    /// Each copied out of the module's memory once.
    #[wasm_bindgen(js_name = takeEventBodies)]
    pub fn take_event_bodies(&mut self) -> Vec<js_sys::Uint8Array> {
        self.inner
            .take_event_bodies()
            .iter()
            .map(|b| js_sys::Uint8Array::from(&b[..]))
            .collect()
    }

    /// Copies the large bodies into `into` (a buffer JS reuses), one after another, each
    /// out of the module's memory once; the bytes they take, more than `into` holds when
    /// they did not fit (then they stay for a bigger buffer or `takeEventBodies`).
    #[wasm_bindgen(js_name = copyEventBodies)]
    pub fn copy_event_bodies(&mut self, into: &js_sys::Uint8Array) -> u32 {
        let need = self
            .inner
            .copy_event_bodies(into.length() as usize, |at, body| {
                let at = at as u32;
                into.subarray(at, at + body.len() as u32).copy_from(body);
            });
        u32::try_from(need).unwrap_or(u32::MAX)
    }

    /// Carries out a batch of ops (messages, requests, answers); returns the failed ones,
    /// or nothing when none failed.
    pub fn write(&mut self, now: f64, data: &[u8], ops: &[f64]) -> Option<WriteFailures> {
        let failed = Failures::of(self.inner.write(at(now), data, ops, |_| None))?;
        Some(WriteFailures {
            ops: failed.ops,
            codes: failed.codes,
            messages: failed.messages,
        })
    }

    #[wasm_bindgen(js_name = connectionCount)]
    pub fn connection_count(&self) -> u32 {
        self.inner.engine().connection_count() as u32
    }
}
