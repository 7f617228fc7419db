//! The frame decoder on arbitrary stream bytes, fed in arbitrary pieces as a QUIC stream
//! delivers them: it must never panic or allocate past its limit, and every frame it accepts
//! must encode back to a frame that decodes the same.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use quicwire_core::frame::{self, Frame, FrameDecoder};

fuzz_target!(|input: &[u8]| {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    // A small limit most of the time, so oversize paths are reached too.
    let limit = 1u64 << (first % 24);
    let piece = usize::from(first >> 5) + 1;
    let decoder = FrameDecoder::new(limit);
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => round_trip(&f, limit),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

fn round_trip(f: &Frame, limit: u64) {
    let mut out = BytesMut::new();
    match f {
        Frame::Hello(h) => frame::put_hello(&mut out, h),
        Frame::Message(body) => {
            assert!(body.len() as u64 <= limit, "a body over the limit was accepted");
            frame::put_message(&mut out, body, limit).expect("an accepted body re-encodes");
        }
        Frame::Request { id, body } => {
            assert!(body.len() as u64 <= limit);
            frame::put_request(&mut out, *id, body, limit).expect("re-encodes");
        }
        Frame::Response { id, body } => {
            assert!(body.len() as u64 <= limit);
            frame::put_response(&mut out, *id, body, limit).expect("re-encodes");
        }
        Frame::Error { id, code, text } => frame::put_error(&mut out, *id, *code, text),
        Frame::Ack { stream, count } => frame::put_ack(&mut out, *stream, *count),
        Frame::GoAway => frame::put_goaway(&mut out),
    }
    let again = FrameDecoder::new(limit)
        .decode(&mut out)
        .expect("an encoded frame decodes")
        .expect("an encoded frame is whole");
    assert_eq!(&again, f);
    assert!(out.is_empty(), "one frame encodes to exactly one frame");
}
