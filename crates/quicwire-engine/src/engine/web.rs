//! A client's connections over a browser's WebTransport sessions (see `crate::web`): dialed
//! through the pool like any other, with the page carrying out what the engine hands out
//! ([`Engine::poll_web`]) and reporting what the browser did (the other calls here).

use std::sync::Arc;

use quicwire_core::{Error, ErrorCode, PoolKey};
use web_time::{Duration, Instant};

use super::dial::Dial;
use super::Engine;
use crate::conn::{touch, Link, Origin};
use crate::ids::CONNECTION_IDS;
use crate::streams::Streams;
use crate::web::{WebCommand, WebStreams};
use crate::ConnId;

impl Engine {
    /// The pooled connection to `key`, or a new one over a WebTransport session to `url`
    /// that the page opens (its first [`WebCommand`]). Ready once `Event::Connected` is
    /// reported, as a QUIC dial is; it fails with ERR_CONNECT_TIMEOUT past the connect
    /// timeout.
    pub fn connect_web(&mut self, now: Instant, key: &PoolKey, url: &str) -> Result<ConnId, Error> {
        self.at(now);
        if self.is_server() {
            return Err(Error::invalid_argument(
                "this engine is a server; it cannot connect",
            ));
        }
        if let Some(id) = self.checkout(now, key) {
            return Ok(id);
        }
        let conns = &self.connections;
        let is_idle = |id: &ConnId| conns.get(id).is_none_or(|c| c.session.is_idle());
        let evicted = self.pool.begin_dial(key, is_idle)?;
        if let Some((_, id)) = evicted {
            self.close_conn(
                now,
                id,
                quicwire_core::app_code::EVICTED,
                "evicted from the pool",
            );
        }
        let Some(id) = CONNECTION_IDS.take() else {
            self.pool.finish_dial(key.clone(), None, now - self.epoch);
            return Err(Error::new(
                ErrorCode::Internal,
                "connection ids are used up",
            ));
        };
        let peer: Arc<str> = key.to_string().into();
        let link = Link::Web(Box::new(WebStreams::new(peer.to_string(), url.to_owned())));
        self.insert(now, id, link, peer, Origin::Dialed(key.clone()));
        let deadline = now + Duration::from_millis(self.cfg.connect_timeout_ms);
        self.dials.insert(id, Dial::new(key.clone(), deadline));
        Ok(id)
    }

    /// Hands out what the page is to do, in order, each with its connection.
    pub fn poll_web(&mut self, now: Instant, mut each: impl FnMut(ConnId, WebCommand)) {
        self.at(now);
        self.drive_pending();
        while let Some((id, command)) = self.web_out.pop_front() {
            each(id, command);
        }
    }

    /// Connection `id`'s session is open; its datagrams carry at most `max_datagram`
    /// bytes (the browser's `maxDatagramSize`).
    pub fn web_ready(&mut self, now: Instant, id: ConnId, max_datagram: usize) {
        self.web(now, id, |w| w.on_ready(max_datagram));
    }

    /// A new stream of the server's on connection `id`: the key to name it by.
    pub fn web_incoming(&mut self, now: Instant, id: ConnId, bidi: bool) -> Option<u64> {
        self.web(now, id, |w| w.on_incoming(bidi))
    }

    /// Bytes that came on a stream, and whether it ended after them.
    pub fn web_data(&mut self, now: Instant, id: ConnId, stream: u64, data: &[u8], fin: bool) {
        self.web(now, id, |w| w.on_data(stream, data, fin));
    }

    /// The server reset a stream it sends on.
    pub fn web_reset(&mut self, now: Instant, id: ConnId, stream: u64, code: u64) {
        self.web(now, id, |w| w.on_reset(stream, code));
    }

    /// The server asked us to stop sending on a stream.
    pub fn web_stopped(&mut self, now: Instant, id: ConnId, stream: u64, code: u64) {
        self.web(now, id, |w| w.on_stopped(stream, code));
    }

    pub fn web_datagram(&mut self, now: Instant, id: ConnId, data: &[u8]) {
        self.web(now, id, |w| w.on_datagram(data));
    }

    /// The session ended, or never opened: `reason` (the browser's) says why.
    pub fn web_closed(&mut self, now: Instant, id: ConnId, reason: &str) {
        let peer = self
            .connections
            .get(&id)
            .map_or_else(Default::default, |c| c.peer.clone());
        self.web(now, id, |w| {
            let error = if w.is_handshaking() {
                // The browser tells a page no more than that.
                Error::closed(format!(
                    "the WebTransport session to {peer} did not open ({reason}): the server's \
                     certificate or its hash, the path, or the page's origin was refused, or \
                     no server with WebTransport is there"
                ))
            } else {
                Error::closed(format!(
                    "the WebTransport session to {peer} closed ({reason})"
                ))
            };
            w.on_closed(error)
        });
    }

    fn web<T>(
        &mut self,
        now: Instant,
        id: ConnId,
        f: impl FnOnce(&mut WebStreams) -> T,
    ) -> Option<T> {
        self.at(now);
        let conn = self.connections.get_mut(&id)?;
        let Link::Web(web) = &mut conn.link else {
            return None;
        };
        let result = f(web);
        touch(&mut self.touched, id, conn);
        Some(result)
    }
}
