//! HELLO parsing and negotiation: an arbitrary HELLO payload must either be refused with an
//! error or yield a WELCOME that picks an encoding both sides support, a size within both
//! limits and the protocol version.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use quicwire_core::frame::{FrameDecoder, Kind};
use quicwire_core::{varint, Encoding, Frame, PROTOCOL_VERSION};

fuzz_target!(|input: &[u8]| {
    let Some((&accept_mask, payload)) = input.split_first() else {
        return;
    };
    let mut buf = BytesMut::new();
    varint::put(&mut buf, payload.len() as u64 + 1);
    buf.put_u8(Kind::Hello as u8);
    buf.extend_from_slice(payload);
    let Ok(Some(Frame::Hello(hello))) = FrameDecoder::new(1 << 20).decode(&mut buf) else {
        return;
    };
    let accepted: Vec<Encoding> = Encoding::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| accept_mask & (1 << i) != 0)
        .map(|(_, e)| *e)
        .collect();
    let server_limit = 1u64 << (accept_mask >> 3);
    if let Ok(welcome) = hello.negotiate(&accepted, server_limit) {
        assert_eq!(welcome.version, PROTOCOL_VERSION);
        assert!(hello.encodings.contains(&welcome.encoding));
        assert!(accepted.contains(&welcome.encoding));
        assert!(welcome.max_message_size <= server_limit);
    }
});
