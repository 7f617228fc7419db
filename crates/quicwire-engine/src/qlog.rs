//! qlog traces (JSON-SEQ records, for qvis and other QUIC tools) of each connection, written
//! by quinn-proto's qlog into a buffer per connection that the engine reports from. Only
//! with the `qlog` feature: quinn-proto's qlog does not build for wasm32.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use quicwire_core::sync::lock;
use quicwire_core::{quic, Error, ErrorCode, TransportConfig};
use web_time::Instant;

/// Where one connection's trace is written, until the engine takes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct QlogBuffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for QlogBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl QlogBuffer {
    /// The whole records written since the last call (each ends with a newline); a
    /// record being written stays.
    pub fn take(&self) -> Option<Bytes> {
        let mut buf = lock(&self.0);
        let end = buf.iter().rposition(|&b| b == b'\n')? + 1;
        let rest = buf.split_off(end);
        Some(std::mem::replace(&mut *buf, rest).into())
    }
}

/// Transport settings that trace a new connection into a buffer of its own.
#[cfg(feature = "qlog")]
pub(crate) fn traced(
    cfg: &TransportConfig,
    loopback: bool,
    title: String,
    now: Instant,
) -> Result<(Arc<quinn_proto::TransportConfig>, QlogBuffer), Error> {
    let mut transport = quic::transport(cfg, loopback)?;
    let buffer = QlogBuffer::default();
    let mut qlog = quinn_proto::QlogConfig::default();
    qlog.writer(Box::new(buffer.clone()))
        .title(Some(title))
        .start_time(now);
    transport.qlog_stream(qlog.into_stream());
    Ok((Arc::new(transport), buffer))
}

/// Without the feature: tracing is refused when the engine is made (see [`check`]).
#[cfg(not(feature = "qlog"))]
pub(crate) fn traced(
    cfg: &TransportConfig,
    loopback: bool,
    _title: String,
    _now: Instant,
) -> Result<(Arc<quinn_proto::TransportConfig>, QlogBuffer), Error> {
    Ok((
        quic::transport_config(cfg, loopback)?,
        QlogBuffer::default(),
    ))
}

/// ERR_BACKEND_UNAVAILABLE when `cfg` asks for qlog from a build without it.
pub(crate) fn check(cfg: &TransportConfig) -> Result<(), Error> {
    if cfg.qlog && !cfg!(feature = "qlog") {
        return Err(Error::new(
            ErrorCode::BackendUnavailable,
            "qlog needs the native backend: quinn-proto's qlog does not build for WebAssembly",
        ));
    }
    Ok(())
}
