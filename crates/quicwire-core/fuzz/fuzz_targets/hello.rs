//! HELLO parsing and negotiation: an arbitrary peer HELLO must either be refused with an
//! error, or both sides must agree on one encoding they both support, each taking the
//! other's limit.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use quicwire_core::frame::{FrameDecoder, Kind};
use quicwire_core::{varint, Encoding, Frame, Hello, PROTOCOL_VERSION};

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
    let server = Hello::new(accepted.clone(), 1u64 << (accept_mask >> 3));
    // The parsed HELLO as the client's, then as a server's: both directions.
    for is_client in [false, true] {
        let ours = server.agree(&hello, is_client);
        if hello.version != PROTOCOL_VERSION {
            assert!(ours.is_err(), "another protocol version was accepted");
            continue;
        }
        match (ours, hello.agree(&server, !is_client)) {
            (Ok(ours), Ok(theirs)) => {
                assert_eq!(ours.encoding, theirs.encoding, "the sides disagree");
                assert!(hello.encodings.contains(&ours.encoding));
                assert!(accepted.contains(&ours.encoding));
                assert_eq!(ours.peer_max_message_size, hello.max_message_size);
                assert_eq!(theirs.peer_max_message_size, server.max_message_size);
            }
            (Err(_), Err(_)) => {}
            _ => panic!("one side agreed while the other refused"),
        }
    }
});
