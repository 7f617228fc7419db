//! napi-rs shell over `quicwire-engine`: the engine runs on Node's own thread, driven by
//! its event loop (`driver`, over the libuv pieces in `uv`). This file is types and error
//! mapping only: the JS API is the wasm shell's (crates/quicwire-wasm), with the socket and
//! timer inside (`bind`, `flush`, `shutdown`) instead of `receive`/`transmits`/timeouts.
//!
//! Every method catches panics: a Rust panic becomes an `ERR_INTERNAL` error in JS and
//! Node lives on (loop callbacks catch theirs in `uv`).

// napi value types (Buffer, typed arrays) have no Debug; the objects holding them cannot either.
#![allow(missing_debug_implementations)]

mod driver;
mod external;
mod uv;

use std::rc::Rc;

use napi::bindgen_prelude::{
    Float64Array, Float64ArraySlice, Function, Uint8Array, Uint8ArraySlice,
};
use napi::{Env, Status};
use napi_derive::napi;
use quicwire_core::batch;
use quicwire_core::tls;
use quicwire_core::Error;

use driver::Driver;

/// The one place a quicwire error becomes a JS error: `"<CODE>: <message>"`, which the
/// facade turns into a `QuicwireError` with that code.
fn js_error(e: Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, batch::error_text(&e))
}

/// Error codes indexed by the numbers events carry.
#[napi]
pub fn error_codes() -> Vec<String> {
    quicwire_engine::error_codes()
}

/// The body size from which events carry a body apart, and from which the facade writes
/// one at once instead of through its batch.
#[napi]
pub fn large_body() -> u32 {
    batch::LARGE_BODY as u32
}

/// Checks `host:port` with the pool's rules and returns its key (`host:port`).
#[napi(catch_unwind)]
pub fn pool_key(host: String, port: f64) -> napi::Result<String> {
    quicwire_engine::pool_key(&host, port).map_err(js_error)
}

#[napi(object)]
pub struct DevCert {
    pub cert: String,
    pub key: String,
}

/// A self-signed certificate for development (`cert`, `key` in PEM).
#[napi(catch_unwind)]
pub fn generate_dev_cert(names: Vec<String>) -> napi::Result<DevCert> {
    let c = tls::generate_dev_cert(&names).map_err(js_error)?;
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

/// Ops of a `write` that failed, with `"<CODE>: <message>"` for each.
#[napi(object)]
pub struct WriteFailures {
    pub ops: Vec<u32>,
    pub errors: Vec<String>,
}

/// One QUIC endpoint (a client or a server), its connections, sockets and timer.
#[napi]
pub struct Engine {
    driver: Rc<Driver>,
}

#[napi]
impl Engine {
    /// A client endpoint that trusts `ca` (PEM), or anything when `insecure`, offering
    /// `encodings` (preferred first; empty: msgpack). `limits`: see
    /// `quicwire_engine::transport_options`.
    #[napi(factory, catch_unwind)]
    pub fn client(
        ca: Option<String>,
        insecure: bool,
        encodings: Vec<String>,
        limits: Float64Array,
    ) -> napi::Result<Engine> {
        let engine = quicwire_engine::Engine::client(ca, insecure, &encodings, &limits);
        Ok(Engine {
            driver: Driver::new(engine.map_err(js_error)?),
        })
    }

    /// A server endpoint with this certificate chain and key (PEM), accepting `encodings`
    /// (empty: all). `admission`: see `quicwire_engine::server_options`.
    #[napi(factory, catch_unwind)]
    pub fn server(
        cert: String,
        key: String,
        encodings: Vec<String>,
        limits: Float64Array,
        admission: Float64Array,
    ) -> napi::Result<Engine> {
        let engine = quicwire_engine::Engine::server(cert, key, &encodings, &limits, &admission);
        Ok(Engine {
            driver: Driver::new(engine.map_err(js_error)?),
        })
    }

    /// Binds a UDP socket on `host:port` (0: any free port) that the event loop reads for
    /// this engine; `onEvents` runs when events wait. Returns the bound port.
    #[napi(catch_unwind)]
    pub fn bind(
        &mut self,
        env: Env,
        host: String,
        port: u32,
        on_events: Function<(), ()>,
    ) -> napi::Result<u32> {
        let port = u16::try_from(port).map_err(|_| {
            js_error(Error::invalid_argument(format!(
                "port {port} is out of range"
            )))
        })?;
        self.driver
            .bind(&env, &host, port, on_events)
            .map(u32::from)
            .map_err(|text| napi::Error::new(Status::GenericFailure, text))
    }

    /// Sends what is ready and sets the timer; after every other call that changes state.
    #[napi(catch_unwind)]
    pub fn flush(&mut self) {
        self.driver.flush();
    }

    /// Closes the sockets and the timer.
    #[napi(catch_unwind)]
    pub fn shutdown(&mut self) {
        self.driver.shutdown();
    }

    /// The pooled connection to `host:port`, or a new handshake with `addr` ("ip:port").
    #[napi(catch_unwind)]
    pub fn connect(&mut self, host: String, port: f64, addr: String) -> napi::Result<u32> {
        self.engine().connect(&host, port, &addr).map_err(js_error)
    }

    #[napi(catch_unwind)]
    pub fn disconnect(&mut self, connection: u32) {
        self.engine().disconnect(connection)
    }

    #[napi(catch_unwind)]
    pub fn go_away(&mut self) {
        self.engine().go_away()
    }

    #[napi(catch_unwind)]
    pub fn serving(&self) -> u32 {
        self.engine().serving()
    }

    #[napi(catch_unwind)]
    pub fn close_all(&mut self, reason: String) {
        self.engine().close_all(&reason)
    }

    /// Pool and traffic figures as JSON.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> String {
        self.engine().stats()
    }

    /// (connection, stream, delivered) triples of RECEIPT events dealt with.
    #[napi(catch_unwind)]
    pub fn acknowledge(&mut self, receipts: Float64Array) {
        self.engine().acknowledge(&receipts)
    }

    /// Events since the last call, seven numbers each, or null when there are none; their
    /// bytes in `takeEventData`, and the large bodies (negative offsets) in
    /// `takeEventBodies`. Copied into V8's heap: for a few words that is cheaper than an
    /// external buffer, which V8 tracks and finalizes.
    #[napi(catch_unwind)]
    pub fn take_events<'env>(
        &mut self,
        env: &'env Env,
    ) -> napi::Result<Option<Float64ArraySlice<'env>>> {
        match self.engine().take_events() {
            Some(words) => Float64ArraySlice::copy_from(env, words).map(Some),
            None => Ok(None),
        }
    }

    /// Copied into V8's heap when small, lent as it is when large (as for the bodies).
    #[napi(catch_unwind)]
    pub fn take_event_data<'env>(&mut self, env: &'env Env) -> napi::Result<Uint8ArraySlice<'env>> {
        let data = self.engine().take_event_data();
        if data.len() < batch::LARGE_BODY {
            Uint8ArraySlice::copy_from(env, &data)
        } else {
            Uint8ArraySlice::from_data(env, data)
        }
    }

    /// Not copied: JS gets views of the engine's buffers, released when it lets go of them.
    #[napi(catch_unwind)]
    pub fn take_event_bodies(&mut self) -> Vec<Uint8Array> {
        self.engine()
            .take_event_bodies()
            .into_iter()
            .map(external::uint8_array)
            .collect()
    }

    /// Carries out a batch of ops (messages, requests, answers); returns the failed ones,
    /// or nothing when none failed.
    #[napi(catch_unwind)]
    pub fn write(&mut self, data: Uint8Array, ops: Float64Array) -> Option<WriteFailures> {
        let (ops, errors) = quicwire_engine::failure_texts(self.engine().write(&data, &ops))?;
        Some(WriteFailures { ops, errors })
    }

    #[napi(catch_unwind)]
    pub fn connection_count(&self) -> u32 {
        self.engine().connection_count()
    }
}

impl Engine {
    fn engine(&self) -> std::cell::RefMut<'_, quicwire_engine::Engine> {
        self.driver.engine.borrow_mut()
    }
}
