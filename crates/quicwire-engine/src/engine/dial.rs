//! The client side of an engine: dialing through the pool (a live connection is reused,
//! concurrent dials of one key share a handshake, the pool's bound holds), handshakes that
//! run out of time, and idle connections closed.

use std::net::SocketAddr;
use std::sync::Arc;

use quicwire_core::quic::{self, is_loopback};
use quicwire_core::tls;
use quicwire_core::{app_code, Error, ErrorCode, PoolKey};
use quinn_proto::crypto::rustls::QuicClientConfig;
use web_time::{Duration, Instant};

use super::{key_log_lines, no_encodings, tls_error, Engine};
use crate::config::ClientConfig;
use crate::conn::{Link, Origin};
use crate::ids::CONNECTION_IDS;
use crate::qlog;
use crate::session::{Outcome, Params};
use crate::ConnId;

impl Engine {
    /// A client endpoint.
    pub fn client(config: &ClientConfig, now: Instant) -> Result<Engine, Error> {
        config.transport.validate()?;
        qlog::check(&config.transport)?;
        if config.encodings.is_empty() {
            return Err(no_encodings());
        }
        let roots = || config.system_roots.clone();
        let mut crypto = tls::ClientCrypto::new(&config.tls, roots)?;
        if config.transport.early_data {
            crypto.enable_early_data();
        }
        let key_log = key_log_lines(&config.transport);
        if let Some(lines) = &key_log {
            crypto.log_keys(lines.clone());
        }
        let transport = quic::transport_config(&config.transport, false)?;
        let params = Params::new(&config.transport, config.encodings.clone());
        let client = Some((crypto, transport));
        let mut engine = Self::new(now, None, client, &config.transport, params)?;
        engine.key_log = key_log;
        Ok(engine)
    }

    /// The pooled connection to `key` when there is one to reuse: an open one, or one
    /// being dialed (counted as reused either way). A driver asks this before it resolves
    /// the host for [`Self::connect`].
    pub fn checkout(&mut self, now: Instant, key: &PoolKey) -> Option<ConnId> {
        self.at(now);
        let since = now - self.epoch;
        let conns = &self.connections;
        let usable = |id: &ConnId| {
            conns
                .get(id)
                .is_some_and(|c| !c.reported && !c.session.is_going_away())
        };
        if let Some(id) = self.pool.checkout(key, since, usable) {
            return Some(*id);
        }
        let (&id, _) = self.dials.iter().find(|(_, d)| &d.key == key)?;
        self.pool.note_joined_dial();
        Some(id)
    }

    /// The pooled connection to `key` (an open one, or one being dialed), or a new handshake
    /// with `remote` (what `key` resolved to), checking the certificate against its host.
    /// It is ready once `Event::Connected` is reported (see also [`Self::connection`]).
    pub fn connect(
        &mut self,
        now: Instant,
        key: &PoolKey,
        remote: SocketAddr,
    ) -> Result<ConnId, Error> {
        self.at(now);
        let a_server = || Error::invalid_argument("this engine is a server; it cannot connect");
        if self.is_server() {
            return Err(a_server());
        }
        if let Some(id) = self.checkout(now, key) {
            return Ok(id);
        }
        let since = now - self.epoch;
        let conns = &self.connections;
        let is_idle = |id: &ConnId| conns.get(id).is_none_or(|c| c.session.is_idle());
        let evicted = self.pool.begin_dial(key, is_idle)?;
        if let Some((_, id)) = evicted {
            self.close_conn(now, id, app_code::EVICTED, "evicted from the pool");
        }
        let id = match self.handshake(now, key, remote) {
            Ok(id) => id,
            Err(e) => {
                self.pool.finish_dial(key.clone(), None, since);
                return Err(e);
            }
        };
        let deadline = now + Duration::from_millis(self.cfg.connect_timeout_ms);
        self.dials.insert(id, Dial::new(key.clone(), deadline));
        self.start_early(now, id, key);
        Ok(id)
    }

    /// Like [`Self::connect`], and if the handshake with `remote` is not done `after` it
    /// began, a second one with `fallback` races it (happy eyeballs: say, QUIC over TCP where
    /// UDP may be blocked). The first to finish goes on under the id returned, the other is
    /// closed; the dial fails only when both did, or at its deadline.
    pub fn connect_racing(
        &mut self,
        now: Instant,
        key: &PoolKey,
        remote: SocketAddr,
        fallback: SocketAddr,
        after: Duration,
    ) -> Result<ConnId, Error> {
        let id = self.connect(now, key, remote)?;
        if let Some(dial) = self.dials.get_mut(&id) {
            if dial.fallback.is_none() && dial.rival.is_none() {
                dial.fallback = Some((fallback, now + after));
            }
        }
        Ok(id)
    }

    /// A new QUIC handshake with `remote` for `key`, as a connection of its own.
    fn handshake(
        &mut self,
        now: Instant,
        key: &PoolKey,
        remote: SocketAddr,
    ) -> Result<ConnId, Error> {
        let a_server = || Error::invalid_argument("this engine is a server; it cannot connect");
        let (crypto, transport) = self.client.as_ref().ok_or_else(a_server)?;
        let crypto = QuicClientConfig::try_from(crypto.for_port(key.port())).map_err(tls_error)?;
        let mut config = quinn_proto::ClientConfig::new(Arc::new(crypto));
        let loopback = is_loopback(remote.ip());
        let mut qlog = None;
        if self.cfg.qlog {
            let (traced, buffer) =
                qlog::traced(&self.cfg, loopback, format!("client to {key}"), now)?;
            config.transport_config(traced);
            qlog = Some(buffer);
        } else if loopback {
            config.transport_config(self.loopback_transport.clone());
        } else {
            config.transport_config(transport.clone());
        }
        let id = CONNECTION_IDS
            .take()
            .ok_or_else(|| Error::new(ErrorCode::Internal, "connection ids are used up"))?;
        let (handle, conn) = self
            .endpoint
            .connect(now, config, remote, key.host())
            .map_err(|e| Error::invalid_argument(format!("cannot connect to {key}: {e}")))?;
        let peer: Arc<str> = key.to_string().into();
        self.insert(
            now,
            id,
            Link::Quic { handle, conn },
            peer,
            Origin::Dialed(key.clone()),
        );
        if let Some(c) = self.connections.get_mut(&id) {
            c.qlog = qlog;
        }
        Ok(id)
    }

    /// Starts the fallback handshakes that are due.
    fn start_rivals(&mut self, now: Instant) {
        let due: Vec<ConnId> = self
            .dials
            .iter()
            .filter(|(_, d)| d.fallback.is_some_and(|(_, at)| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(dial) = self.dials.get_mut(&id) else {
                continue;
            };
            let Some((fallback, _)) = dial.fallback.take() else {
                continue;
            };
            let key = dial.key.clone();
            // One that cannot start leaves the first to finish alone.
            if let Ok(rival) = self.handshake(now, &key, fallback) {
                if let Some(dial) = self.dials.get_mut(&id) {
                    dial.rival = Some(rival);
                }
                self.rivals.insert(rival, id);
            }
        }
    }

    /// What happened to a dial's rival handshake, instead of reporting it. Ready: it won,
    /// and goes on under the dial's id. Failed: the dial is down to its first handshake.
    pub(super) fn rival_outcome(
        &mut self,
        now: Instant,
        rival: ConnId,
        dial: ConnId,
        outcome: Outcome,
    ) {
        match outcome {
            Outcome::Ready(negotiated) => {
                self.end_race(dial);
                self.rename(rival, dial);
                self.close_quietly(now, rival, "the other handshake finished first");
                self.report(now, dial, Outcome::Ready(negotiated));
            }
            Outcome::Failed(_) => {
                self.end_race(dial);
                self.close_quietly(now, rival, "failed");
            }
            _ => {}
        }
    }

    /// The dial's own handshake failed or finished: whether the rival takes over (a failure,
    /// with a rival still racing; the failed one is closed quietly).
    pub(super) fn settle_race(&mut self, now: Instant, dial: ConnId, outcome: &Outcome) -> bool {
        let Some(rival) = self.dials.get(&dial).and_then(|d| d.rival) else {
            return false;
        };
        self.end_race(dial);
        match outcome {
            Outcome::Failed(_) => {
                self.rename(rival, dial);
                self.close_quietly(now, rival, "failed");
                true
            }
            _ => {
                self.close_quietly(now, rival, "the other handshake finished first");
                false
            }
        }
    }

    /// Closes a dial's rival, if it has one (the dial is closed or out of time).
    pub(super) fn drop_rival(&mut self, now: Instant, dial: ConnId) {
        if let Some(rival) = self.dials.get(&dial).and_then(|d| d.rival) {
            self.end_race(dial);
            self.close_quietly(now, rival, "the dial ended");
        }
    }

    fn end_race(&mut self, dial: ConnId) {
        if let Some(rival) = self.dials.get_mut(&dial).and_then(|d| d.rival.take()) {
            self.rivals.remove(&rival);
        }
    }

    /// With 0-RTT on, a dial that resumes a session whose server takes 0-RTT data is ready
    /// at once, on what the last connection to that server agreed.
    fn start_early(&mut self, now: Instant, id: ConnId, key: &PoolKey) {
        let Some(&assumed) = self.resumable.get(key) else {
            return;
        };
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        if !conn.link.quic().is_some_and(|q| q.has_0rtt()) {
            return;
        }
        conn.session.start_early(&mut conn.link, assumed);
        self.report(now, id, Outcome::Ready(assumed));
    }

    /// Fails the handshakes past their deadline (ERR_CONNECT_TIMEOUT) and closes idle
    /// pooled connections when their sweep is due.
    pub(super) fn expire_dials(&mut self, now: Instant) {
        self.start_rivals(now);
        let late: Vec<(ConnId, PoolKey)> = self
            .dials
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(id, d)| (*id, d.key.clone()))
            .collect();
        for (id, key) in late {
            self.drop_rival(now, id);
            let ms = self.cfg.connect_timeout_ms;
            let e = Error::new(
                ErrorCode::ConnectTimeout,
                format!("no QUIC handshake with {key} within {ms} ms"),
            );
            self.report(now, id, Outcome::Failed(e));
            self.close_conn(now, id, app_code::NO_ERROR, "connect timeout");
        }
        if self.next_sweep <= now {
            self.sweep(now);
        }
    }

    pub(super) fn sweep_period(&self) -> Duration {
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Closes pooled connections idle for idle_timeout and plans the next sweep.
    fn sweep(&mut self, now: Instant) {
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        self.next_sweep = now + self.sweep_period();
        let conns = &self.connections;
        let expired = self.pool.expire(now - self.epoch, idle, |h| {
            conns
                .get(h)
                .is_some_and(|c| c.session.is_idle() && now - c.session.last_active >= idle)
        });
        for (_, id) in expired {
            self.close_conn(now, id, app_code::EVICTED, "idle timeout");
        }
    }
}

/// A handshake under way for the pool.
#[derive(Debug)]
pub(super) struct Dial {
    pub key: PoolKey,
    /// When it fails with ERR_CONNECT_TIMEOUT.
    pub deadline: Instant,
    /// Where a second handshake races this one, and from when (`connect_racing`).
    pub fallback: Option<(SocketAddr, Instant)>,
    /// That second handshake, once started: a connection of its own until one of the two
    /// finishes (see `Engine::rival_outcome`).
    pub rival: Option<ConnId>,
}

impl Dial {
    pub(super) fn new(key: PoolKey, deadline: Instant) -> Dial {
        Dial {
            key,
            deadline,
            fallback: None,
            rival: None,
        }
    }
}
