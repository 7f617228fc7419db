//! Where Rust and JavaScript share memory, the one unsafe corner of the addon: engine
//! buffers lent to JS without a copy (Node-API takes a raw pointer), a JS buffer the
//! engine writes into, and send buffers: engine memory JS fills and sends uncopied.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use bytes::Bytes;
use napi::bindgen_prelude::{Uint8Array, Uint8ArraySlice};

thread_local! {
    /// Send buffers JS holds, by address. The entry is one owner of the memory and the JS
    /// array's finalizer another; a message sent from it shares it (`shared`), so the
    /// memory lives until the last of them lets go, whatever JS does with the array.
    static SEND_BUFFERS: RefCell<BTreeMap<usize, Bytes>> = const { RefCell::new(BTreeMap::new()) };
}

/// `body` as a JS Uint8Array over the same memory. The `Bytes` it points into is moved
/// into the finalizer, so the memory lives until V8 collects the array, and nothing in
/// Rust reads or writes it meanwhile.
pub fn uint8_array(body: Bytes) -> Uint8Array {
    if body.is_empty() {
        // No allocation to point at (and V8 wants distinct pointers for external buffers).
        return Uint8Array::new(Vec::new());
    }
    let (ptr, len) = (body.as_ptr().cast_mut(), body.len());
    // SAFETY: `ptr..ptr + len` is `body`'s, which the finalizer owns and drops: the memory
    // stays valid while JS can reach it. Bodies of one batch are disjoint, so no two live
    // arrays share a pointer.
    unsafe { Uint8Array::with_external_data(ptr, len, move |_, _| drop(body)) }
}

/// `array`'s bytes, to write into.
pub fn bytes_mut<'a>(array: &'a mut Uint8ArraySlice<'_>) -> &'a mut [u8] {
    // SAFETY: called from a synchronous Node-API function on the JS thread: no JS runs
    // while the slice lives, so nothing else reads or writes the memory meanwhile.
    unsafe { array.as_mut() }
}

/// A zeroed send buffer of `size` bytes: engine memory as a JS Uint8Array, which a message
/// body in it is sent from without a copy (`shared`). None when there is no memory for it.
pub fn send_buffer(size: usize) -> Option<Uint8Array> {
    if size == 0 {
        return Some(Uint8Array::new(Vec::new()));
    }
    let mut zeroed = Vec::new();
    zeroed.try_reserve_exact(size).ok()?;
    zeroed.resize(size, 0u8);
    let memory = Bytes::from(zeroed);
    let at = memory.as_ptr() as usize;
    SEND_BUFFERS.with_borrow_mut(|m| m.insert(at, memory.clone()));
    let forget = move |_, _| {
        // At exit the table may be gone already; the memory goes with it then.
        let _ = SEND_BUFFERS.try_with(|m| m.borrow_mut().remove(&at));
        drop(memory);
    };
    // SAFETY: `at..at + size` is `memory`'s, which the finalizer owns: valid while JS can
    // reach it. Nothing in Rust holds a reference into it while JS runs (engine calls are
    // synchronous), so JS writing into it races with nothing.
    Some(unsafe { Uint8Array::with_external_data(at as *mut u8, size, forget) })
}

/// `body` as a share of the send buffer it lies in, or None when it is not in one.
pub fn shared(body: &[u8]) -> Option<Bytes> {
    let at = body.as_ptr() as usize;
    SEND_BUFFERS.with_borrow(|m| {
        let (start, memory) = m.range(..=at).next_back()?;
        let offset = at - start;
        (offset + body.len() <= memory.len()).then(|| memory.slice(offset..offset + body.len()))
    })
}
