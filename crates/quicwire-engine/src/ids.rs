//! Connection ids: the numbers shells and applications hold for a connection. quinn-proto's
//! own handles are slab slots, reused once a connection is gone, so a message queued for a
//! connection that has just closed could reach the next one in its slot. An id is never
//! reused, and one counter serves every engine in the process, so a shell driving several
//! engines routes by id alone.

use std::sync::atomic::{AtomicU64, Ordering};

/// The largest id: ids travel to JavaScript as f64, exact up to 2^53 (at a million new
/// connections a second, 285 years).
pub const MAX_ID: u64 = (1 << 53) - 1;

/// A connection's id, unique in the process for as long as it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The id a shell passed as a number; None for one no connection can have.
    pub fn from_f64(v: f64) -> Option<ConnId> {
        let ok = v.fract() == 0.0 && v >= 1.0 && v <= MAX_ID as f64;
        ok.then_some(ConnId(v as u64))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn to_f64(self) -> f64 {
        self.0 as f64
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Hands out ids from `next` up to `max`, each once; after `max`, none (never a wrap).
#[derive(Debug)]
pub(crate) struct IdSpace {
    next: AtomicU64,
    max: u64,
}

impl IdSpace {
    pub const fn new(first: u64, max: u64) -> IdSpace {
        IdSpace {
            next: AtomicU64::new(first),
            max,
        }
    }

    pub fn take(&self) -> Option<ConnId> {
        // fetch_update, not fetch_add: an exhausted space stays exhausted and never wraps.
        self.next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n <= self.max).then_some(n + 1)
            })
            .ok()
            .map(ConnId)
    }
}

/// The process's connection ids.
pub(crate) static CONNECTION_IDS: IdSpace = IdSpace::new(1, MAX_ID);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_run_out_rather_than_wrap() {
        let space = IdSpace::new(MAX_ID - 1, MAX_ID);
        assert_eq!(space.take(), Some(ConnId(MAX_ID - 1)));
        assert_eq!(space.take(), Some(ConnId(MAX_ID)));
        assert_eq!(space.take(), None);
        assert_eq!(space.take(), None, "exhausted stays exhausted");
    }

    #[test]
    fn ids_from_numbers() {
        assert_eq!(ConnId::from_f64(1.0), Some(ConnId(1)));
        assert_eq!(ConnId::from_f64(MAX_ID as f64), Some(ConnId(MAX_ID)));
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY, 2f64.powi(53)] {
            assert_eq!(ConnId::from_f64(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_id_is_new() {
        let a = CONNECTION_IDS.take().unwrap();
        let b = CONNECTION_IDS.take().unwrap();
        assert!(b > a);
    }
}
