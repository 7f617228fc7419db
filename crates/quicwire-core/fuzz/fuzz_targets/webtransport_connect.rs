//! A WebTransport server's reading of a client's HTTP/3 request (its HEADERS frame, QPACK
//! and all): any bytes a client sends must get a status or a wait, never a panic, and only
//! a request for the server's path can open a session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quicwire_engine::webtransport::request_status;
use quicwire_engine::WebTransportConfig;

fuzz_target!(|input: &[u8]| {
    let accepts = WebTransportConfig {
        path: "/quicwire".into(),
        origins: vec!["https://app.example".into()],
    };
    let open = input.first().is_some_and(|b| b & 1 == 1);
    if let Some(status) = request_status(input, &accepts, open) {
        assert!([200, 400, 403, 404, 429].contains(&status), "{status}");
        assert!(status != 200 || !open, "a second session opened");
    }
});
