//! The libuv pieces the driver needs, on Node's own event loop: a poll on a UDP socket, a
//! timer, and calling back into JS from them. This is the addon's only unsafe code: libuv
//! and Node-API are C interfaces. libuv's functions are looked up in the host process once,
//! as napi-rs looks up Node-API's (an addon links against neither).
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::OnceLock;

use napi::bindgen_prelude::{Float64ArraySlice, Function, JsValuesTupleIntoVec, ToNapiValue};
use napi::{sys, Env, JsValue};
use quicwire_core::{Error, ErrorCode};

type RawHandle = *mut c_void;
type Loop = *mut sys::uv_loop_s;
type Callback = Box<dyn FnMut(c_int)>;
type PollCb = extern "C" fn(RawHandle, c_int, c_int);
type TimerCb = extern "C" fn(RawHandle);
type CloseCb = Option<extern "C" fn(RawHandle)>;

/// The socket type libuv polls: a file descriptor, or a SOCKET on Windows.
#[cfg(unix)]
pub type RawSocket = std::os::fd::RawFd;
#[cfg(windows)]
pub type RawSocket = std::os::windows::io::RawSocket;

// uv_handle_type and uv_poll_event values (uv.h, stable across libuv 1.x).
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;
const UV_READABLE: c_int = 1;
const UV_WRITABLE: c_int = 2;

/// libuv's functions, from the host process (uv.h for each).
struct Uv {
    handle_size: unsafe extern "C" fn(c_int) -> usize,
    handle_get_type: unsafe extern "C" fn(RawHandle) -> c_int,
    handle_get_data: unsafe extern "C" fn(RawHandle) -> *mut c_void,
    handle_set_data: unsafe extern "C" fn(RawHandle, *mut c_void),
    unref: unsafe extern "C" fn(RawHandle),
    close: unsafe extern "C" fn(RawHandle, CloseCb),
    poll_init_socket: unsafe extern "C" fn(Loop, RawHandle, RawSocket) -> c_int,
    poll_start: unsafe extern "C" fn(RawHandle, c_int, PollCb) -> c_int,
    timer_init: unsafe extern "C" fn(Loop, RawHandle) -> c_int,
    timer_start: unsafe extern "C" fn(RawHandle, TimerCb, u64, u64) -> c_int,
    timer_stop: unsafe extern "C" fn(RawHandle) -> c_int,
    strerror: unsafe extern "C" fn(c_int) -> *const c_char,
}

static UV: OnceLock<Result<Uv, String>> = OnceLock::new();

fn uv() -> Result<&'static Uv, Error> {
    UV.get_or_init(load)
        .as_ref()
        .map_err(|e| Error::new(ErrorCode::Internal, format!("libuv is not reachable: {e}")))
}

fn load() -> Result<Uv, String> {
    #[cfg(unix)]
    let host = libloading::os::unix::Library::this();
    #[cfg(windows)]
    let host = libloading::os::windows::Library::this().map_err(|e| e.to_string())?;
    macro_rules! get {
        ($name:literal) => {
            // SAFETY: each symbol has the signature uv.h gives it, which the field declares.
            *unsafe { host.get(concat!($name, "\0").as_bytes()) }.map_err(|e| e.to_string())?
        };
    }
    let uv = Uv {
        handle_size: get!("uv_handle_size"),
        handle_get_type: get!("uv_handle_get_type"),
        handle_get_data: get!("uv_handle_get_data"),
        handle_set_data: get!("uv_handle_set_data"),
        unref: get!("uv_unref"),
        close: get!("uv_close"),
        poll_init_socket: get!("uv_poll_init_socket"),
        poll_start: get!("uv_poll_start"),
        timer_init: get!("uv_timer_init"),
        timer_start: get!("uv_timer_start"),
        timer_stop: get!("uv_timer_stop"),
        strerror: get!("uv_strerror"),
    };
    // The host process lives as long as the addon: keep its handle open.
    std::mem::forget(host);
    Ok(uv)
}

fn uv_error(uv: &Uv, what: &str, code: c_int) -> Error {
    // SAFETY: uv_strerror returns a static C string for any code.
    let text = unsafe { std::ffi::CStr::from_ptr((uv.strerror)(code)) };
    Error::new(ErrorCode::Io, format!("{what}: {}", text.to_string_lossy()))
}

/// libuv once loaded: every handle exists only after `uv()` succeeded.
fn loaded() -> Option<&'static Uv> {
    UV.get().and_then(|r| r.as_ref().ok())
}

fn layout(uv: &Uv, kind: c_int) -> Layout {
    // SAFETY: uv_handle_size only reads a table.
    let size = unsafe { (uv.handle_size)(kind) };
    Layout::from_size_align(size.max(1), 16).unwrap_or(Layout::new::<[u64; 64]>())
}

/// A libuv handle whose memory and callback this owns; closing it frees both (in libuv's
/// close callback, as libuv requires). Unreferenced: it never keeps the process alive.
struct Handle {
    uv: &'static Uv,
    raw: RawHandle,
}

impl Handle {
    /// Allocates a handle of `kind`; `init` registers it with Node's loop.
    fn new(
        env: &Env,
        kind: c_int,
        callback: Callback,
        init: impl FnOnce(&Uv, Loop, RawHandle) -> c_int,
    ) -> Result<Handle, Error> {
        let uv = uv()?;
        let lp = env
            .get_uv_event_loop()
            .map_err(|e| Error::new(ErrorCode::Internal, e.reason.clone()))?;
        let layout = layout(uv, kind);
        // SAFETY: the layout is non-zero; the memory is zeroed as libuv expects of new handles.
        let raw = unsafe { alloc::alloc_zeroed(layout) } as RawHandle;
        if raw.is_null() {
            alloc::handle_alloc_error(layout);
        }
        let rc = init(uv, lp, raw);
        if rc != 0 {
            // SAFETY: a handle whose init failed is not known to the loop.
            unsafe { alloc::dealloc(raw as *mut u8, layout) };
            return Err(uv_error(uv, "cannot set up the event loop handle", rc));
        }
        let data = Box::into_raw(Box::new(callback)) as *mut c_void;
        // SAFETY: `raw` is an initialised handle; data is read back only by our callbacks.
        unsafe {
            (uv.handle_set_data)(raw, data);
            (uv.unref)(raw);
        }
        Ok(Handle { uv, raw })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is open; `on_close` frees it once libuv is done with it.
        unsafe { (self.uv.close)(self.raw, Some(on_close)) };
    }
}

extern "C" fn on_close(raw: RawHandle) {
    let Some(uv) = loaded() else { return };
    // SAFETY: libuv calls this once, after which it no longer touches the handle; data is
    // the callback box `Handle::new` stored.
    unsafe {
        drop(Box::from_raw((uv.handle_get_data)(raw) as *mut Callback));
        alloc::dealloc(raw as *mut u8, layout(uv, (uv.handle_get_type)(raw)));
    }
}

/// Runs a handle's callback. A panic stops here: unwinding into libuv would abort Node.
fn dispatch(raw: RawHandle, arg: c_int) {
    let Some(uv) = loaded() else { return };
    // SAFETY: data is the callback box of an open handle, and the loop runs one callback at
    // a time on this thread.
    let callback = unsafe { &mut *((uv.handle_get_data)(raw) as *mut Callback) };
    if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| callback(arg))) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("quicwire: internal error in the event loop (a Rust panic): {what}");
    }
}

extern "C" fn on_poll(raw: RawHandle, status: c_int, events: c_int) {
    // An error (status < 0) is reported as readable: the read then meets it.
    dispatch(raw, if status < 0 { UV_READABLE } else { events });
}

extern "C" fn on_timer(raw: RawHandle) {
    dispatch(raw, 0);
}

/// What a socket poll reports.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
}

/// Readiness of a socket, from the loop's epoll (or its equivalent).
pub struct Poll(Handle);

impl Poll {
    /// Watches `socket` for reading; `on_ready` runs on this thread when it is.
    pub fn new(
        env: &Env,
        socket: RawSocket,
        mut on_ready: impl FnMut(Ready) + 'static,
    ) -> Result<Poll, Error> {
        let callback: Callback = Box::new(move |events| {
            on_ready(Ready {
                readable: events & UV_READABLE != 0,
                writable: events & UV_WRITABLE != 0,
            })
        });
        // SAFETY: lp is Node's loop; the handle memory is fresh.
        let handle = Handle::new(env, UV_POLL, callback, |uv, lp, raw| unsafe {
            (uv.poll_init_socket)(lp, raw, socket)
        })?;
        let poll = Poll(handle);
        poll.watch(false);
        Ok(poll)
    }

    /// Watches for reading, and for writing too while a send waits for room.
    pub fn watch(&self, writable: bool) {
        let events = UV_READABLE | if writable { UV_WRITABLE } else { 0 };
        // SAFETY: an open poll handle.
        unsafe { (self.0.uv.poll_start)(self.0.raw, events, on_poll) };
    }
}

/// A one-shot timer on the loop.
pub struct Timer(Handle);

impl Timer {
    pub fn new(env: &Env, mut on_fire: impl FnMut() + 'static) -> Result<Timer, Error> {
        let callback: Callback = Box::new(move |_| on_fire());
        // SAFETY: lp is Node's loop; the handle memory is fresh.
        let handle = Handle::new(env, UV_TIMER, callback, |uv, lp, raw| unsafe {
            (uv.timer_init)(lp, raw)
        })?;
        Ok(Timer(handle))
    }

    /// Fires once, after `ms` (0: on the loop's next turn); replaces an earlier start.
    pub fn start(&self, ms: u64) {
        // SAFETY: an open timer handle.
        unsafe { (self.0.uv.timer_start)(self.0.raw, on_timer, ms, 0) };
    }

    pub fn stop(&self) {
        // SAFETY: an open timer handle.
        unsafe { (self.0.uv.timer_stop)(self.0.raw) };
    }
}

/// A JS function kept alive across calls, called from loop callbacks.
pub struct JsCallback {
    env: sys::napi_env,
    func: sys::napi_ref,
}

impl JsCallback {
    pub fn new<A: JsValuesTupleIntoVec>(
        env: &Env,
        func: Function<A, ()>,
    ) -> Result<JsCallback, Error> {
        let mut reference = ptr::null_mut();
        // SAFETY: env and func come from the current call.
        let status =
            unsafe { sys::napi_create_reference(env.raw(), func.value().value, 1, &mut reference) };
        if status != sys::Status::napi_ok {
            return Err(Error::new(ErrorCode::Internal, "cannot keep the callback"));
        }
        Ok(JsCallback {
            env: env.raw(),
            func: reference,
        })
    }

    /// Calls the function with the value `arg` makes, as Node calls its own I/O callbacks
    /// (`napi_make_callback`: the microtask and nextTick queues run after it). Only from a
    /// loop callback, never from inside a JS call. An exception it throws, or an error
    /// making the value, becomes an uncaught exception, as there.
    pub fn call(
        &self,
        arg: impl for<'env> FnOnce(&'env Env) -> napi::Result<Option<Float64ArraySlice<'env>>>,
    ) {
        let env = self.env;
        // SAFETY: called on the JS thread outside any JS frame; every value lives in the
        // handle scope opened here.
        unsafe {
            let mut scope = ptr::null_mut();
            if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
                return;
            }
            let mut func = ptr::null_mut();
            let mut global = ptr::null_mut();
            let mut result = ptr::null_mut();
            sys::napi_get_reference_value(env, self.func, &mut func);
            sys::napi_get_global(env, &mut global);
            match arg(&Env::from(env)).and_then(|a| ToNapiValue::to_napi_value(env, a)) {
                Ok(value) => {
                    sys::napi_make_callback(
                        env,
                        ptr::null_mut(),
                        global,
                        func,
                        1,
                        &value,
                        &mut result,
                    );
                }
                Err(e) => {
                    let reason = CString::new(e.reason.replace('\0', " ")).unwrap_or_default();
                    sys::napi_throw_error(env, ptr::null(), reason.as_ptr());
                }
            }
            let mut pending = false;
            sys::napi_is_exception_pending(env, &mut pending);
            if pending {
                let mut err = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut err);
                sys::napi_fatal_exception(env, err);
            }
            sys::napi_close_handle_scope(env, scope);
        }
    }
}

impl Drop for JsCallback {
    fn drop(&mut self) {
        // SAFETY: the reference was created on this env; dropped on the JS thread.
        unsafe { sys::napi_delete_reference(self.env, self.func) };
    }
}
