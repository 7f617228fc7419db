//! The server side of an engine: new connections admitted (or refused, or sent through a
//! Retry first) by the connection limits, and the datagrams every connection receives.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use quicwire_core::quic::{self, is_loopback};
use quicwire_core::tls;
use quicwire_core::{Admission, Decision, Error};
use quinn_proto::{
    ConnectionId, ConnectionIdGenerator, DatagramEvent, RandomConnectionIdGenerator, ServerConfig,
};
use web_time::{Duration, Instant};

use super::{key_log_lines, no_encodings, tls_error, Engine};
use crate::config::{ServerConfig as QuicwireServerConfig, WebTransportConfig};
use crate::conn::{touch, Link, Origin};
use crate::ids::CONNECTION_IDS;
use crate::qlog;
use crate::session::Params;
use crate::webtransport::ALPN_H3;

impl Engine {
    /// A server endpoint.
    pub fn server(config: &QuicwireServerConfig, now: Instant) -> Result<Engine, Error> {
        config.transport.validate()?;
        config.limits.validate()?;
        qlog::check(&config.transport)?;
        if config.encodings.is_empty() {
            return Err(no_encodings());
        }
        let mut crypto = tls::server_config(&config.tls)?;
        if config.transport.early_data {
            tls::allow_early_data(&mut crypto);
        }
        if let Some(wt) = &config.webtransport {
            check_webtransport(wt)?;
            crypto.alpn_protocols.push(ALPN_H3.to_vec());
        }
        let key_log = key_log_lines(&config.transport);
        if let Some(lines) = &key_log {
            crypto.key_log = lines.clone();
        }
        let crypto =
            quinn_proto::crypto::rustls::QuicServerConfig::try_from(crypto).map_err(tls_error)?;
        let mut server = ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(quic::transport_config(&config.transport, false)?);
        let mut loopback = server.clone();
        let mut params = Params::new(&config.transport, config.encodings.clone());
        params.webtransport = config.webtransport.clone().map(Arc::new);
        let mut engine = Self::new(
            now,
            Some((Arc::new(server), config.worker)),
            None,
            &config.transport,
            params,
        )?;
        engine.admission = Admission::new(config.limits);
        engine.key_log = key_log;
        loopback.transport_config(engine.loopback_transport.clone());
        engine.loopback_server = Some(Arc::new(loopback));
        Ok(engine)
    }

    pub(super) fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, datagram: BytesMut) {
        let event = self
            .endpoint
            .handle(now, remote, None, None, datagram, &mut self.buf);
        match event {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                let Some(&id) = self.ids.get(&handle) else {
                    return;
                };
                if let Some(conn) = self.connections.get_mut(&id) {
                    if let Some(quic) = conn.link.quic() {
                        quic.handle_event(event);
                    }
                    touch(&mut self.touched, id, conn);
                    self.report_key_log(id);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let validated = incoming.remote_address_validated();
                let id = match self.admission.admit(remote.ip(), validated) {
                    Decision::Accept => match CONNECTION_IDS.take() {
                        Some(id) => id,
                        None => {
                            self.admission.release(remote.ip());
                            self.refuse(incoming);
                            return;
                        }
                    },
                    Decision::Retry => {
                        self.buf.clear();
                        match self.endpoint.retry(incoming, &mut self.buf) {
                            Ok(t) => self
                                .responses
                                .push_back((t.destination, self.buf[..t.size].to_vec())),
                            Err(e) => self.endpoint.ignore(e.into_incoming()),
                        }
                        return;
                    }
                    Decision::Refuse => {
                        self.refuse(incoming);
                        return;
                    }
                };
                let mut response = Vec::new();
                let loopback = is_loopback(remote.ip());
                let mut config = self.loopback_server.clone().filter(|_| loopback);
                let mut qlog = None;
                if self.cfg.qlog {
                    let title = format!("server, client {remote}");
                    if let (Ok((traced, buffer)), Some(base)) = (
                        qlog::traced(&self.cfg, loopback, title, now),
                        self.loopback_server.as_deref(),
                    ) {
                        let mut traced_config = base.clone();
                        traced_config.transport_config(traced);
                        config = Some(Arc::new(traced_config));
                        qlog = Some(buffer);
                    }
                }
                match self.endpoint.accept(incoming, now, &mut response, config) {
                    Ok((handle, conn)) => {
                        let peer: Arc<str> = remote.to_string().into();
                        self.insert(
                            now,
                            id,
                            Link::Quic { handle, conn },
                            peer,
                            Origin::Accepted(remote.ip()),
                        );
                        if let Some(c) = self.connections.get_mut(&id) {
                            c.qlog = qlog;
                        }
                        self.report_key_log(id);
                    }
                    Err(e) => {
                        self.admission.release(remote.ip());
                        if let Some(t) = e.response {
                            self.responses
                                .push_back((t.destination, response[..t.size].to_vec()));
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.responses
                    .push_back((t.destination, self.buf[..t.size].to_vec()));
            }
            None => {}
        }
    }

    /// Turns a new connection away (CONNECTION_REFUSED).
    fn refuse(&mut self, incoming: quinn_proto::Incoming) {
        self.buf.clear();
        let t = self.endpoint.refuse(incoming, &mut self.buf);
        self.responses
            .push_back((t.destination, self.buf[..t.size].to_vec()));
    }
}

/// Connection IDs of one worker among several on a UDP port: random, but for the first
/// byte, which names the worker (the port's routing program reads it; see
/// `quicwire_core::udp::bind_workers`). Seven random bytes stay: 2^56 values per worker.
#[derive(Debug)]
pub(super) struct WorkerCids {
    worker: u8,
    random: RandomConnectionIdGenerator,
}

impl WorkerCids {
    pub(super) fn new(worker: u8) -> WorkerCids {
        WorkerCids {
            worker,
            random: RandomConnectionIdGenerator::new(8),
        }
    }
}

impl ConnectionIdGenerator for WorkerCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&self.random.generate_cid());
        bytes[0] = self.worker;
        ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// A WebTransport path is an absolute URL path, as a CONNECT's `:path` carries it; an
/// origin is a scheme and a host, as a browser's `origin` header carries it.
fn check_webtransport(wt: &WebTransportConfig) -> Result<(), Error> {
    // What a browser sends in `Origin` and `:path`: printable ASCII, no spaces.
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    for origin in &wt.origins {
        if !printable(origin) || !origin.contains("://") || origin.ends_with('/') {
            return Err(Error::invalid_argument(format!(
                "webTransport.origins takes origins like \"https://app.example.com\" (no \
                 path), got {origin:?}"
            )));
        }
    }
    let path = &wt.path;
    if path.starts_with('/') && printable(path) && path.len() <= 1024 {
        return Ok(());
    }
    Err(Error::invalid_argument(format!(
        "webTransport.path must be an absolute URL path like \"/quicwire\" (printable ASCII, \
         at most 1024 bytes), got {path:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_connection_ids_start_with_its_index() {
        let mut cids = WorkerCids::new(7);
        let a = cids.generate_cid();
        let b = cids.generate_cid();
        assert_eq!((a.len(), a[0], b[0]), (8, 7, 7));
        assert_ne!(a, b);
    }
}
