//! napi-rs shell over `quicwire-engine`: the engine runs on Node's own thread, driven by
//! its event loop (`driver`, over the libuv pieces in `uv`). This file is types and error
//! mapping only: the JS API is the wasm shell's (crates/quicwire-wasm), with the socket and
//! timer inside (`bind`, `flush`, `shutdown`) instead of `receive`/`transmits`/timeouts,
//! and as functions over an engine handle (ts/native.ts makes them methods again).
//!
//! Every method catches panics: a Rust panic becomes an `ERR_INTERNAL` error in JS and
//! Node lives on (loop callbacks catch theirs in `uv`).

// napi value types (Buffer, typed arrays) have no Debug; the objects holding them cannot either.
#![allow(missing_debug_implementations)]

mod driver;
mod external;
mod uv;
mod workers;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use napi::bindgen_prelude::{
    Float64Array, Float64ArraySlice, Function, Status, Uint32ArraySlice, Uint8Array,
    Uint8ArraySlice,
};
use napi::Env;
use napi_derive::napi;
use quicwire_core::Error;
use quicwire_engine::abi::{self, Failures, JsEngine};
use quicwire_engine::Instant;

use driver::Driver;

/// A thrown error's code: its `code` property in JS (napi-rs sets it from this).
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<Status> for Code {
    fn from(_: Status) -> Code {
        Code("ERR_INTERNAL")
    }
}

/// What the addon's functions return: errors cross as a code and a message.
pub type Result<T> = napi::Result<T, Code>;

/// The one place a quicwire error becomes a JS error: its `code` and `message`.
fn js_error(e: Error) -> napi::Error<Code> {
    napi::Error::new(Code(e.code.as_str()), e.message)
}

/// A napi-rs error of its own (a type conversion, say): ERR_INTERNAL with its reason.
fn internal(e: napi::Error) -> napi::Error<Code> {
    napi::Error::new(Code("ERR_INTERNAL"), e.reason.clone())
}

/// Checks `host:port` with the pool's rules and returns its key (`host:port`).
#[napi(catch_unwind)]
pub fn pool_key(host: String, port: f64) -> Result<String> {
    abi::pool_key(&host, port).map_err(js_error)
}

#[napi(object)]
pub struct DevCert {
    pub cert: String,
    pub key: String,
    /// SHA-256 of the certificate (DER) in hex, for `serverCertificateHashes`.
    pub hash: String,
}

/// A self-signed certificate for development (`cert`, `key` in PEM), valid for
/// `validDays` from now if given (browsers take one by its hash for 14 days at most).
#[napi(catch_unwind)]
pub fn generate_dev_cert(names: Vec<String>, valid_days: Option<f64>) -> Result<DevCert> {
    let c = abi::dev_cert(&names, valid_days).map_err(js_error)?;
    Ok(DevCert {
        cert: c.cert,
        key: c.key,
        hash: c.hash,
    })
}

/// A zeroed buffer of `size` bytes in engine memory: a message body in it is sent without
/// a copy (the engine shares the memory until the peer has it).
#[napi(catch_unwind)]
pub fn send_buffer(size: u32) -> Result<Uint8Array> {
    external::send_buffer(size as usize).ok_or_else(|| {
        js_error(Error::invalid_argument(format!(
            "no memory for a send buffer of {size} bytes"
        )))
    })
}

/// Panics on purpose, so a test can show a Rust panic reaches JS as an error and Node lives
/// on (the `test-hooks` build only).
#[cfg(feature = "test-hooks")]
#[napi(catch_unwind)]
pub fn debug_panic() {
    panic!("debug_panic called");
}

/// Ops of a `write` that failed: their indices, error code numbers and messages.
#[napi(object)]
pub struct WriteFailures {
    pub ops: Vec<u32>,
    pub codes: Vec<u32>,
    pub messages: Vec<String>,
}

thread_local! {
    /// The engines, by the handle JS holds; one lives until `shutdown`. Functions over a
    /// handle, not class methods: a napi-rs method call costs about 0.9 µs in its borrow
    /// bookkeeping (a global lock and a map), a function about 0.1 µs, and the hot path
    /// makes several per event batch.
    static ENGINES: RefCell<Engines> = RefCell::new(Engines::default());
}

#[derive(Default)]
struct Engines {
    drivers: HashMap<u32, Rc<Driver>>,
    next: u32,
}

/// Registers a new engine; its handle.
fn add(engine: std::result::Result<JsEngine, Error>) -> Result<u32> {
    let driver = Driver::new(engine.map_err(js_error)?);
    Ok(ENGINES.with_borrow_mut(|e| {
        // Handles are not reused while in use, even after 2^32 engines.
        e.next = e.next.wrapping_add(1).max(1);
        while e.drivers.contains_key(&e.next) {
            e.next = e.next.wrapping_add(1).max(1);
        }
        e.drivers.insert(e.next, driver);
        e.next
    }))
}

/// The engine behind a handle (not borrowed from the table while it runs: JS may re-enter).
fn driver(engine: u32) -> Result<Rc<Driver>> {
    ENGINES
        .with_borrow(|e| e.drivers.get(&engine).cloned())
        .ok_or_else(|| js_error(Error::closed("this endpoint is closed")))
}

fn with_engine<T>(engine: u32, f: impl FnOnce(&mut JsEngine) -> T) -> Result<T> {
    Ok(f(&mut driver(engine)?.engine.borrow_mut()))
}

/// A client endpoint that trusts `ca` (PEM), or anything when `insecure`, offering
/// `encodings` (preferred first; empty: msgpack); its handle. `options`: see
/// `abi::TRANSPORT_OPTIONS`.
#[napi(catch_unwind)]
pub fn create_client(
    ca: Option<String>,
    insecure: bool,
    encodings: Vec<String>,
    options: Float64Array,
) -> Result<u32> {
    add(JsEngine::client(
        Instant::now(),
        ca,
        insecure,
        &encodings,
        &options,
    ))
}

/// A server endpoint with this certificate chain and key (PEM), accepting `encodings`
/// (empty: all); its handle. `admission`: see `abi::SERVER_OPTIONS`. `webTransport`, to
/// accept WebTransport sessions: their path, then the pages' origins allowed (none: any).
#[napi(catch_unwind)]
pub fn create_server(
    cert: String,
    key: String,
    encodings: Vec<String>,
    options: Float64Array,
    admission: Float64Array,
    web_transport: Option<Vec<String>>,
) -> Result<u32> {
    add(JsEngine::server(
        Instant::now(),
        cert,
        key,
        &encodings,
        &options,
        &admission,
        web_transport,
    ))
}

/// Binds a UDP socket on `host:port` (0: any free port) that the event loop reads for
/// this engine; `onEvents` runs after datagrams or a timer moved it, with its events (as
/// `takeEvents` returns them) or null. Returns the bound port.
#[napi(catch_unwind)]
pub fn bind(
    env: Env,
    engine: u32,
    host: String,
    port: u32,
    on_events: Function<Option<Float64Array>, ()>,
) -> Result<u32> {
    let port = udp_port(port)?;
    driver(engine)?
        .bind(&env, &host, port, on_events)
        .map(u32::from)
        .map_err(js_error)
}

/// A port number from JS, checked.
fn udp_port(port: u32) -> Result<u16> {
    u16::try_from(port).map_err(|_| {
        js_error(Error::invalid_argument(format!(
            "port {port} is out of range"
        )))
    })
}

/// A UDP port shared by worker threads: `group` names their sockets, which `adopt` takes.
#[napi(object)]
pub struct WorkerSockets {
    pub group: u32,
    pub port: u32,
}

/// Binds `count` sockets on `host:port` (0: any free port) in one group that the kernel
/// routes between by connection ID (Linux), for as many server engines on worker threads;
/// each takes its own with `adopt`, and `releaseWorkers` closes those not taken.
#[napi(catch_unwind)]
pub fn bind_workers(host: String, port: u32, count: u32) -> Result<WorkerSockets> {
    let port = udp_port(port)?;
    let (group, port) = workers::bind(&host, port, count as usize).map_err(js_error)?;
    Ok(WorkerSockets {
        group,
        port: port.into(),
    })
}

/// Reads worker socket `index` of `group` (see `bindWorkers`) for this engine, as `bind`
/// does a socket of its own; its port. The engine is that worker's (its `worker` option).
#[napi(catch_unwind)]
pub fn adopt(
    env: Env,
    engine: u32,
    group: u32,
    index: u32,
    on_events: Function<Option<Float64Array>, ()>,
) -> Result<u32> {
    let driver = driver(engine)?;
    let socket = workers::take(group, index).map_err(js_error)?;
    driver
        .adopt(&env, socket, on_events)
        .map(u32::from)
        .map_err(js_error)
}

/// Closes the sockets of `group` that no worker took.
#[napi(catch_unwind)]
pub fn release_workers(group: u32) {
    workers::release(group);
}

/// Moves the engine's traffic to new sockets (new ports), as after a network change; its
/// connections migrate.
#[napi(catch_unwind)]
pub fn rebind(env: Env, engine: u32) -> Result<()> {
    driver(engine)?.rebind(&env).map_err(js_error)
}

/// Sends what is ready and sets the timer, after every other call that changes state.
/// Returns flags: 1 when events wait (`takeEvents`), 2 when datagrams for stream tunnels
/// wait (`takeCarried`).
#[napi(catch_unwind)]
pub fn flush(engine: u32) -> Result<u32> {
    driver(engine).map(|d| u32::from(d.flush()) | (u32::from(d.has_carried()) << 1))
}

/// Datagrams to peers behind stream tunnels: `data` back to back, `lens[i]` bytes each, to
/// `addrs[i]` (addresses in 100::/64, which the facade gave its tunnels).
#[napi(object)]
pub struct CarriedDatagrams {
    pub data: Uint8Array,
    pub lens: Vec<u32>,
    pub addrs: Vec<String>,
}

/// Hands datagrams for the facade's stream tunnels (TCP when UDP is blocked) to it: the
/// engine's transmits to their addresses wait for `takeCarried`, and after the event loop
/// moved the engine `onCarried` is called when some wait.
#[napi(catch_unwind)]
pub fn carry(env: Env, engine: u32, on_carried: Function<Option<Float64Array>, ()>) -> Result<()> {
    driver(engine)?.carry(&env, on_carried).map_err(js_error)
}

/// Datagrams that came through stream tunnels: `data` back to back, `lens[i]` bytes each,
/// from `addrs[i]`. True: flush before the facade takes the events.
#[napi(catch_unwind)]
pub fn carry_in(
    engine: u32,
    data: Uint8ArraySlice,
    lens: Uint32ArraySlice,
    addrs: Vec<String>,
) -> Result<bool> {
    Ok(driver(engine)?.carry_in(&data, &lens, &addrs))
}

/// The datagrams waiting for stream tunnels, or null.
#[napi(catch_unwind)]
pub fn take_carried(engine: u32) -> Result<Option<CarriedDatagrams>> {
    Ok(driver(engine)?.take_carried().map(|c| CarriedDatagrams {
        data: c.data.into(),
        lens: c.lens,
        addrs: c.addrs,
    }))
}

/// Closes the sockets and the timer, and lets go of the engine: its handle is dead.
#[napi(catch_unwind)]
pub fn shutdown(engine: u32) {
    if let Some(driver) = ENGINES.with_borrow_mut(|e| e.drivers.remove(&engine)) {
        driver.shutdown();
    }
}

/// The pooled connection to `host:port` (under `tag`; 0: the shared one), or a new
/// handshake with `addr` ("ip:port"); its id (see `quicwire_engine::ConnId`).
#[napi(catch_unwind)]
pub fn connect(engine: u32, host: String, port: f64, addr: String, tag: f64) -> Result<f64> {
    with_engine(engine, |e| {
        e.connect(Instant::now(), &host, port, &addr, tag)
    })?
    .map_err(js_error)
}

/// Like `connect`, racing a second handshake with `fallback` ("ip:port") when the first is
/// not done `afterMs` in; the first to finish goes on under the id returned.
#[napi(catch_unwind)]
pub fn connect_racing(
    engine: u32,
    host: String,
    port: f64,
    addr: String,
    fallback: String,
    after_ms: f64,
    tag: f64,
) -> Result<f64> {
    with_engine(engine, |e| {
        e.connect_racing(Instant::now(), &host, port, &addr, &fallback, after_ms, tag)
    })?
    .map_err(js_error)
}

/// Closes a connection (for `reason`, which its close error then says); an id of no open
/// connection: nothing.
#[napi(catch_unwind)]
pub fn disconnect(engine: u32, connection: f64, reason: Option<String>) -> Result<()> {
    with_engine(engine, |e| {
        e.disconnect(Instant::now(), connection, reason.as_deref())
    })
}

#[napi(catch_unwind)]
pub fn go_away(engine: u32) -> Result<()> {
    with_engine(engine, |e| e.engine_mut().go_away(Instant::now()))
}

#[napi(catch_unwind)]
pub fn serving(engine: u32) -> Result<u32> {
    with_engine(engine, |e| e.engine().serving() as u32)
}

#[napi(catch_unwind)]
pub fn close_all(engine: u32, reason: String) -> Result<()> {
    with_engine(engine, |e| {
        e.engine_mut().close_all(Instant::now(), &reason)
    })
}

/// Pool and traffic figures as JSON.
#[napi(catch_unwind)]
pub fn stats(engine: u32) -> Result<String> {
    with_engine(engine, |e| e.stats_json())
}

/// (connection, stream, delivered) triples of RECEIPT events dealt with.
#[napi(catch_unwind)]
pub fn acknowledge(engine: u32, receipts: Float64ArraySlice) -> Result<()> {
    with_engine(engine, |e| e.acknowledge(Instant::now(), &receipts))
}

/// Events since the last call, seven numbers each, or null when there are none: see
/// `Driver::take_events`. For events a call made; those of datagrams and timers come with
/// `bind`'s `onEvents`.
#[napi(catch_unwind)]
pub fn take_events(env: &Env, engine: u32) -> Result<Option<Float64ArraySlice<'_>>> {
    driver(engine)?.take_events(env).map_err(internal)
}

/// The bytes of the last batch when they were too large to travel with its words: lent to
/// JS as they are, not copied.
#[napi(catch_unwind)]
pub fn take_event_data(env: &Env, engine: u32) -> Result<Uint8ArraySlice<'_>> {
    Uint8ArraySlice::from_data(env, with_engine(engine, |e| e.take_event_data())?).map_err(internal)
}

/// Not copied: JS gets views of the engine's buffers, released when it lets go of them.
#[napi(catch_unwind)]
pub fn take_event_bodies(engine: u32) -> Result<Vec<Uint8Array>> {
    let bodies = with_engine(engine, |e| e.take_event_bodies())?;
    Ok(bodies.into_iter().map(external::uint8_array).collect())
}

/// Copies the last batch's large bodies into `into` (a buffer JS reuses), one after
/// another; the bytes they take, more than `into` holds when they did not fit (then they
/// stay for a bigger buffer or `takeEventBodies`).
#[napi(catch_unwind)]
pub fn copy_event_bodies(engine: u32, mut into: Uint8ArraySlice) -> Result<u32> {
    let into = external::bytes_mut(&mut into);
    let need = with_engine(engine, |e| {
        e.copy_event_bodies(into.len(), |at, body| {
            into[at..at + body.len()].copy_from_slice(body)
        })
    })?;
    Ok(u32::try_from(need).unwrap_or(u32::MAX))
}

/// Carries out a batch of ops (messages, requests, answers); returns the failed ones,
/// or nothing when none failed.
#[napi(catch_unwind)]
pub fn write(
    engine: u32,
    data: Uint8ArraySlice,
    ops: Float64ArraySlice,
) -> Result<Option<WriteFailures>> {
    let failed = with_engine(engine, |e| {
        e.write(Instant::now(), &data, &ops, external::shared)
    })?;
    Ok(Failures::of(failed).map(|f| WriteFailures {
        ops: f.ops,
        codes: f.codes,
        messages: f.messages,
    }))
}

#[napi(catch_unwind)]
pub fn connection_count(engine: u32) -> Result<u32> {
    with_engine(engine, |e| e.engine().connection_count() as u32)
}
