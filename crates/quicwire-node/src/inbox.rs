//! Everything Rust has for JavaScript goes through one inbox: events are appended under a
//! lock, and the first event after a drain wakes JS with one threadsafe-function call. JS
//! then takes the whole batch (`takeEvents`): one boundary crossing for many messages.
//!
//! Messages are acknowledged to their sender only once JS has them: each `take` first
//! acknowledges what the previous `take` returned, since JS dispatches a batch before it
//! asks for the next one (and keeps asking until there is none).
//!
//! Layout: `data` holds small bodies and texts back to back; `meta` holds, per event, seven
//! numbers: `[kind, a, b, c, d, offset, length]`, offset/length pointing into `data`. A body
//! of [`OWN_BUFFER_BYTES`] or more goes to JS in a buffer of its own instead,
//! `bodies[-1 - offset]` (a negative offset).

use std::sync::Mutex;

use bytes::Bytes;
use napi::bindgen_prelude::{Buffer, Float64Array, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use quicwire::{Connection, Receipt};

pub type Notify = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

/// From this size a body gets a buffer of its own, allocated at its size: appended to the
/// batch, a few 64 KiB bodies regrew (and so copied again) the batch's buffer several times,
/// and one body kept alive by the application kept the whole batch alive with it. Below it,
/// the shared batch is cheaper than a V8 object per body.
const OWN_BUFFER_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    meta: Vec<f64>,
    /// Large bodies, each in its own buffer.
    bodies: Vec<Vec<u8>>,
    /// Receipts of the messages in this batch.
    receipts: Vec<(Connection, Receipt)>,
    wake_pending: bool,
}

static INBOX: Mutex<Batch> = Mutex::new(Batch {
    data: Vec::new(),
    meta: Vec::new(),
    bodies: Vec::new(),
    receipts: Vec::new(),
    wake_pending: false,
});
/// Receipts of the batch JS took last, acknowledged when it comes back for more.
static HANDED: Mutex<Vec<(Connection, Receipt)>> = Mutex::new(Vec::new());
static NOTIFY: Mutex<Option<Notify>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn set_notify(notify: Notify) {
    *lock(&NOTIFY) = Some(notify);
}

/// Appends events with one lock; wakes JS if nothing is pending. `receipt` comes with a
/// batch of messages.
pub fn push(
    events: impl IntoIterator<Item = ([f64; 5], Bytes)>,
    receipt: Option<(Connection, Receipt)>,
) {
    let wake = {
        let mut inbox = lock(&INBOX);
        inbox.receipts.extend(receipt);
        for (words, body) in events {
            let length = body.len() as f64;
            let offset = if body.len() >= OWN_BUFFER_BYTES {
                inbox.bodies.push(body.to_vec());
                -(inbox.bodies.len() as f64)
            } else {
                let offset = inbox.data.len() as f64;
                inbox.data.extend_from_slice(&body);
                offset
            };
            inbox.meta.extend_from_slice(&words);
            inbox.meta.push(offset);
            inbox.meta.push(length);
        }
        !std::mem::replace(&mut inbox.wake_pending, true)
    };
    if wake {
        if let Some(notify) = lock(&NOTIFY).as_ref() {
            notify.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

pub fn push_one(words: [f64; 5], body: impl Into<Bytes>) {
    push(std::iter::once((words, body.into())), None);
}

/// One take: everything received since the last.
#[napi(object)]
pub struct EventBatch {
    pub data: Buffer,
    pub meta: Float64Array,
    /// Bodies of 16 KiB or more, each in its own buffer: an event with offset `o < 0` has
    /// `bodies[-1 - o]`.
    pub bodies: Vec<Buffer>,
}

/// Acknowledges the batch taken before, then takes everything queued since.
pub fn take() -> Option<EventBatch> {
    let mut handed = lock(&HANDED);
    for (conn, receipt) in handed.drain(..) {
        conn.acknowledge(receipt);
    }
    let mut inbox = lock(&INBOX);
    inbox.wake_pending = false;
    if inbox.meta.is_empty() {
        return None;
    }
    std::mem::swap(&mut *handed, &mut inbox.receipts);
    let data = std::mem::take(&mut inbox.data);
    let meta = std::mem::take(&mut inbox.meta);
    let bodies = std::mem::take(&mut inbox.bodies);
    drop(inbox);
    Some(EventBatch {
        data: Buffer::from(data),
        meta: Float64Array::new(meta),
        bodies: bodies.into_iter().map(Buffer::from).collect(),
    })
}
