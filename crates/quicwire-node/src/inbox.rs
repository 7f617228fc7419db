//! Everything Rust has for JavaScript goes through one inbox: events are appended under a
//! lock, and the first event after a drain wakes JS with one threadsafe-function call. JS
//! then takes the whole batch (`takeEvents`): one boundary crossing for many messages.
//!
//! Layout: `data` holds bodies and texts back to back; `meta` holds, per event, seven
//! numbers: `[kind, a, b, c, d, offset, length]`, offset/length pointing into `data`.

use std::sync::Mutex;

use napi::bindgen_prelude::{Buffer, Float64Array, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

pub type Notify = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    meta: Vec<f64>,
    wake_pending: bool,
}

static INBOX: Mutex<Batch> = Mutex::new(Batch {
    data: Vec::new(),
    meta: Vec::new(),
    wake_pending: false,
});
static NOTIFY: Mutex<Option<Notify>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn set_notify(notify: Notify) {
    *lock(&NOTIFY) = Some(notify);
}

/// Appends events with one lock; wakes JS if nothing is pending.
pub fn push<'a>(events: impl IntoIterator<Item = ([f64; 5], &'a [u8])>) {
    let wake = {
        let mut inbox = lock(&INBOX);
        for (words, data) in events {
            let offset = inbox.data.len() as f64;
            inbox.data.extend_from_slice(data);
            inbox.meta.extend_from_slice(&words);
            inbox.meta.push(offset);
            inbox.meta.push(data.len() as f64);
        }
        !std::mem::replace(&mut inbox.wake_pending, true)
    };
    if wake {
        if let Some(notify) = lock(&NOTIFY).as_ref() {
            notify.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

pub fn push_one(words: [f64; 5], data: &[u8]) {
    push(std::iter::once((words, data)));
}

/// Takes everything queued so far.
pub fn take() -> Option<(Buffer, Float64Array)> {
    let mut inbox = lock(&INBOX);
    inbox.wake_pending = false;
    if inbox.meta.is_empty() {
        return None;
    }
    let data = std::mem::take(&mut inbox.data);
    let meta = std::mem::take(&mut inbox.meta);
    Some((Buffer::from(data), Float64Array::new(meta)))
}
