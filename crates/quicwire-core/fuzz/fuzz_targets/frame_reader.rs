//! The frame reader the engine reads every stream with, on arbitrary stream bytes cut into
//! arbitrary chunks as a QUIC stream hands them over: it must never panic or allocate past
//! its limit, it must read the same frames (and the same error) however the bytes are cut,
//! as the one-buffer decoder does on them whole, and every frame it accepts must encode back
//! to a frame that decodes the same.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use quicwire_core::frame::{self, Frame, FrameDecoder, FrameReader};

fuzz_target!(|input: &[u8]| {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    // A small limit most of the time, so oversize paths are reached too.
    let limit = 1u64 << (first % 24);
    // Chunk sizes from the input itself: every cut is reached.
    let (cuts, stream) = rest.split_at(rest.len().min(usize::from(first >> 5) + 1));
    let mut reader = FrameReader::new(limit);
    let mut read = Vec::new();
    let mut at = 0;
    let mut cut = cuts.iter().cycle();
    let read_error = loop {
        if at < stream.len() {
            let n = usize::from(*cut.next().unwrap_or(&1)).max(1);
            let end = (at + n).min(stream.len());
            reader.push(Bytes::copy_from_slice(&stream[at..end]));
            at = end;
        }
        match reader.next_frame() {
            Ok(Some(f)) => read.push(f),
            Ok(None) if at >= stream.len() => break None,
            Ok(None) => {}
            Err(e) => break Some(e),
        }
    };
    // The same bytes whole, through the decoder.
    let decoder = FrameDecoder::new(limit);
    let mut whole = BytesMut::from(stream);
    let mut decoded = Vec::new();
    let decode_error = loop {
        match decoder.decode(&mut whole) {
            Ok(Some(f)) => decoded.push(f),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert_eq!(read, decoded, "chunked and whole reads differ");
    assert_eq!(read_error, decode_error, "chunked and whole reads fail differently");
    for f in &read {
        round_trip(f, limit);
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
        Frame::LazyMessage(body) => {
            assert!(body.len() as u64 <= limit, "a body over the limit was accepted");
            frame::put_message_head(&mut out, body.len(), true, limit).expect("re-encodes");
            out.extend_from_slice(body);
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
        Frame::Trace(context) => {
            frame::put_trace(&mut out, context).expect("an accepted trace context re-encodes")
        }
    }
    let again = FrameDecoder::new(limit)
        .decode(&mut out)
        .expect("an encoded frame decodes")
        .expect("an encoded frame is whole");
    assert_eq!(&again, f);
    assert!(out.is_empty(), "one frame encodes to exactly one frame");
}
