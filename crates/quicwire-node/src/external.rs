//! Where Rust and JavaScript share memory, the one unsafe corner of the addon: engine
//! buffers lent to JS without a copy (Node-API takes a raw pointer), and a JS buffer the
//! engine writes into.
#![allow(unsafe_code)]

use bytes::Bytes;
use napi::bindgen_prelude::{Uint8Array, Uint8ArraySlice};

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
