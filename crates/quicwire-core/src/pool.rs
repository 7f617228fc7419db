//! Connection pool policy, without connections or clocks: which key a `host:port` is,
//! when a pooled connection is reused, which one to evict when the pool is full, and which
//! ones have idled out. The runtime (crate `quicwire`) owns the connections and the time.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};

/// A pool key: a normalized `host:port`. Hosts are lower-cased; IPv6 literals are kept
/// without brackets and printed as `[::1]:port`. A `tag` other than 0 names a connection of
/// its own to that address, beside the pooled one (say, one per agent sharing an engine).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    host: String,
    port: u16,
    tag: u32,
}

impl PoolKey {
    pub fn new(host: &str, port: i64) -> Result<PoolKey> {
        let port = crate::config::validate_port(port, false)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !valid_name && host.parse::<IpAddr>().is_err() {
            return Err(Error::invalid_argument(format!(
                "invalid host {host:?}: expected a DNS name or an IP address"
            )));
        }
        Ok(PoolKey {
            host: host.to_ascii_lowercase(),
            port,
            tag: 0,
        })
    }

    /// The same address under `tag` (0: the pooled connection).
    pub fn with_tag(mut self, tag: u32) -> PoolKey {
        self.tag = tag;
        self
    }

    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// Parses `host:port` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<PoolKey> {
        let bad = || Error::invalid_argument(format!("invalid address {s:?}: expected host:port"));
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(bad());
        }
        let port: i64 = port.parse().map_err(|_| bad())?;
        PoolKey::new(host, port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Lifetime counters of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Connections established.
    pub created: u64,
    /// `connect` calls answered by an existing (or in-progress) connection.
    pub reused: u64,
    /// Connections closed by the pool (idle timeout or LRU eviction).
    pub evicted: u64,
    /// Dials that failed.
    pub failed: u64,
}

#[derive(Debug)]
struct Slot<C> {
    conn: C,
    last_used: Duration,
}

/// The pool's bookkeeping. `C` is the runtime's connection handle; `now` is any monotonic
/// clock the caller keeps (tests use a virtual one).
#[derive(Debug)]
pub struct PoolTable<C> {
    slots: HashMap<PoolKey, Slot<C>>,
    dialing: usize,
    max_connections: usize,
    counters: PoolCounters,
}

impl<C> PoolTable<C> {
    pub fn new(max_connections: u32) -> Self {
        PoolTable {
            slots: HashMap::new(),
            dialing: 0,
            max_connections: max_connections as usize,
            counters: PoolCounters::default(),
        }
    }

    /// The pooled connection for `key`, marked as just used, if `usable` says it still is;
    /// an unusable one (closed, going away) is dropped so the caller dials anew.
    pub fn checkout(
        &mut self,
        key: &PoolKey,
        now: Duration,
        usable: impl Fn(&C) -> bool,
    ) -> Option<&C> {
        if !usable(&self.slots.get(key)?.conn) {
            self.slots.remove(key);
            return None;
        }
        let slot = self.slots.get_mut(key)?;
        slot.last_used = now;
        self.counters.reused += 1;
        Some(&slot.conn)
    }

    /// Counts a `connect` that joined a dial already under way.
    pub fn note_joined_dial(&mut self) {
        self.counters.reused += 1;
    }

    /// Reserves room for a new connection. When the pool is full, the least recently used
    /// idle connection is taken out and returned for the caller to close; when none is idle,
    /// ERR_POOL_EXHAUSTED.
    pub fn begin_dial(
        &mut self,
        key: &PoolKey,
        is_idle: impl Fn(&C) -> bool,
    ) -> Result<Option<(PoolKey, C)>> {
        let mut evicted = None;
        if self.slots.len() + self.dialing >= self.max_connections {
            let victim = self
                .slots
                .iter()
                .filter(|(_, s)| is_idle(&s.conn))
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else {
                return Err(Error::new(
                    ErrorCode::PoolExhausted,
                    format!(
                        "cannot connect to {key}: all {} pooled connections are busy (maxConnections)",
                        self.max_connections
                    ),
                ));
            };
            evicted = self.take(&victim).map(|c| (victim, c));
            self.counters.evicted += 1;
        }
        self.dialing += 1;
        Ok(evicted)
    }

    /// Ends a dial begun with `begin_dial`: stores the connection, or counts the failure.
    pub fn finish_dial(&mut self, key: PoolKey, conn: Option<C>, now: Duration) -> Option<C> {
        self.dialing = self.dialing.saturating_sub(1);
        match conn {
            Some(conn) => {
                self.counters.created += 1;
                self.slots
                    .insert(
                        key,
                        Slot {
                            conn,
                            last_used: now,
                        },
                    )
                    .map(|s| s.conn)
            }
            None => {
                self.counters.failed += 1;
                None
            }
        }
    }

    /// Removes `key` (a dead or disconnected connection).
    pub fn take(&mut self, key: &PoolKey) -> Option<C> {
        self.slots.remove(key).map(|s| s.conn)
    }

    /// Takes out every idle connection unused for `idle_timeout`, for the caller to close.
    pub fn expire(
        &mut self,
        now: Duration,
        idle_timeout: Duration,
        is_idle: impl Fn(&C) -> bool,
    ) -> Vec<(PoolKey, C)> {
        let expired: Vec<PoolKey> = self
            .slots
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_used) >= idle_timeout && is_idle(&s.conn))
            .map(|(k, _)| k.clone())
            .collect();
        self.counters.evicted += expired.len() as u64;
        expired
            .into_iter()
            .filter_map(|k| self.take(&k).map(|c| (k, c)))
            .collect()
    }

    /// Marks `key` as used now (a send or request went over it).
    pub fn touch(&mut self, key: &PoolKey, now: Duration) {
        if let Some(s) = self.slots.get_mut(key) {
            s.last_used = now;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PoolKey, &C)> {
        self.slots.iter().map(|(k, s)| (k, &s.conn))
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn counters(&self) -> PoolCounters {
        self.counters
    }

    /// Removes every connection (the pool is closing).
    pub fn drain(&mut self) -> Vec<(PoolKey, C)> {
        self.slots.drain().map(|(k, s)| (k, s.conn)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: i64) -> PoolKey {
        PoolKey::new("127.0.0.1", port).unwrap()
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn keys_normalize_and_validate() {
        assert_eq!(
            PoolKey::new("LocalHost", 80).unwrap().to_string(),
            "localhost:80"
        );
        assert_eq!(PoolKey::new("::1", 9).unwrap().to_string(), "[::1]:9");
        assert_eq!(
            PoolKey::parse("[::1]:9").unwrap(),
            PoolKey::new("::1", 9).unwrap()
        );
        assert_eq!(PoolKey::parse("a.b:1").unwrap().host(), "a.b");
        for bad in ["", "a b", "x/y", "::1:80"] {
            assert!(PoolKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PoolKey::new("host", 0).is_err());
        assert!(PoolKey::new("host", 70_000).is_err());
        assert!(PoolKey::new("bad host", 1).is_err());
    }

    #[test]
    fn reuses_and_counts() {
        let mut t = PoolTable::new(4);
        assert!(t.checkout(&key(1), ms(0), |_| true).is_none());
        assert!(t.begin_dial(&key(1), |_| true).unwrap().is_none());
        t.finish_dial(key(1), Some("c1"), ms(0));
        assert_eq!(t.checkout(&key(1), ms(5), |_| true), Some(&"c1"));
        let c = t.counters();
        assert_eq!((c.created, c.reused), (1, 1));
        // A dead connection is dropped, not counted as reuse.
        assert!(t.checkout(&key(1), ms(6), |_| false).is_none());
        assert_eq!((t.len(), t.counters().reused), (0, 1));
    }

    #[test]
    fn full_pool_evicts_least_recently_used_idle() {
        let mut t = PoolTable::new(2);
        for (p, at) in [(1, 10), (2, 20)] {
            t.begin_dial(&key(p), |_| true).unwrap();
            t.finish_dial(key(p), Some(p), ms(at));
        }
        t.touch(&key(1), ms(30));
        let evicted = t.begin_dial(&key(3), |_| true).unwrap();
        assert_eq!(evicted, Some((key(2), 2)));
        t.finish_dial(key(3), Some(3), ms(40));
        assert_eq!(t.len(), 2);
        // Nothing idle: exhausted, with the key and limit in the message.
        let err = t.begin_dial(&key(4), |_| false).unwrap_err();
        assert_eq!(err.code, ErrorCode::PoolExhausted);
        assert!(err.message.contains("127.0.0.1:4"), "{err}");
    }

    #[test]
    fn dials_in_progress_count_against_the_limit() {
        let mut t: PoolTable<u8> = PoolTable::new(1);
        t.begin_dial(&key(1), |_| true).unwrap();
        assert!(t.begin_dial(&key(2), |_| true).is_err());
        t.finish_dial(key(1), None, ms(0));
        assert_eq!(t.counters().failed, 1);
        assert!(t.begin_dial(&key(2), |_| true).is_ok());
    }

    #[test]
    fn expires_only_idle_connections_past_the_timeout() {
        let mut t = PoolTable::new(8);
        for (p, at) in [(1, 0), (2, 50), (3, 0)] {
            t.begin_dial(&key(p), |_| true).unwrap();
            t.finish_dial(key(p), Some(p), ms(at));
        }
        let busy = 3;
        let gone = t.expire(ms(100), ms(100), |c| *c != busy);
        assert_eq!(gone, vec![(key(1), 1)]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.counters().evicted, 1);
    }
}
