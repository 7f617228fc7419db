//! Locks shared with callbacks (TLS, qlog, drivers' inboxes).

use std::sync::{Mutex, MutexGuard};

/// The lock, even if a thread panicked while holding it: every value kept under these locks
/// is whole between statements (a queue, a buffer, a map), so a panic elsewhere never leaves
/// it half-written, and one panic must not take every later caller down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
