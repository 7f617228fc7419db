//! The tokio runtime the addon's connections run on.
//!
//! napi-rs would start one worker per core. Node's own thread is busy too (it runs the
//! application and every `write` and `takeEvents`), so a worker for every core leaves more
//! threads than cores: they preempt one another, and each packet's hand-off between the
//! endpoint's driver, the connection's driver and the stream tasks more often crosses to
//! another thread. With one worker per core left over (at least one), on the 2-core bench
//! machine (one worker instead of two): bulk +8-30 %, 64 B messages +7 %, ping-pong p50
//! -15 %, the rest level (`npm run bench`, alternating runs). `TOKIO_WORKER_THREADS`, as
//! tokio documents it, still sets the count.

use std::num::NonZeroUsize;

/// Worker threads: the cores Node's own thread leaves, at least one.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .saturating_sub(1)
        .max(1)
}

/// Hands napi-rs the runtime to use, before anything can start the default one.
#[napi_derive::module_init]
fn init() {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("quicwire");
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(workers());
    }
    // On failure napi-rs starts its default runtime at first use instead.
    if let Ok(runtime) = builder.build() {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}
