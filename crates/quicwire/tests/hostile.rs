//! Hostile peers over real QUIC: raw quinn clients that break the protocol, flood streams
//! and connections. The server must refuse them cheaply and keep serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{client, raw_peer, raw_quic, raw_request, read_answer, serve_echo, start_server};
use quicwire::ErrorCode;
use quicwire_core::frame::{self, Frame};
use quicwire_core::{app_code, varint};

#[tokio::test]
async fn garbage_on_a_stream_resets_that_stream_only() {
    let f = start_server(|_| {});
    let _rx = serve_echo(f.events);
    let (_endpoint, conn) = raw_peer(f.server.local_addr(), &f.ca).await;
    let mut garbage = conn.open_uni().await.unwrap();
    garbage.write_all(&[0x05, 0xEE, 1, 2, 3, 4]).await.unwrap();
    let stopped = garbage.stopped().await.unwrap();
    assert_eq!(stopped, Some(quinn::VarInt::from_u32(app_code::PROTOCOL)));
    // A garbage request stream is answered with ERR_PROTOCOL and its reading side stopped...
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0x03, 0x77, 0x00, 0x00]).await.unwrap();
    let answer = read_answer(&mut recv).await;
    assert!(
        matches!(
            answer,
            Frame::Error {
                code: ErrorCode::Protocol,
                ..
            }
        ),
        "{answer:?}"
    );
    // ...and the connection still serves requests.
    let answer = raw_request(&conn, b"still here").await;
    assert!(matches!(answer, Frame::Response { body, .. } if &body[..] == b"still here"));
}

#[tokio::test]
async fn four_gib_length_prefix_is_refused_without_allocating() {
    let f = start_server(|_| {});
    let _rx = serve_echo(f.events);
    let (_endpoint, conn) = raw_peer(f.server.local_addr(), &f.ca).await;
    let mut s = conn.open_uni().await.unwrap();
    let mut claim = BytesMut::new();
    varint::put(&mut claim, 4 << 30);
    claim.extend_from_slice(&[frame::Kind::Message as u8, 0, 0]);
    s.write_all(&claim).await.unwrap();
    let stopped = s.stopped().await.unwrap();
    assert_eq!(
        stopped,
        Some(quinn::VarInt::from_u32(app_code::MESSAGE_TOO_LARGE))
    );
    // An oversized request gets an ERROR frame naming the limit.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&claim).await.unwrap();
    let frame = read_answer(&mut recv).await;
    assert!(
        matches!(
            frame,
            Frame::Error {
                code: ErrorCode::MessageTooLarge,
                ..
            }
        ),
        "{frame:?}"
    );
    let answer = raw_request(&conn, b"ok").await;
    assert!(matches!(answer, Frame::Response { .. }));
}

#[tokio::test]
async fn malformed_hellos_close_only_their_connection() {
    let f = start_server(|_| {});
    let addr = f.server.local_addr();
    let _rx = serve_echo(f.events);
    let mut message_first = BytesMut::new();
    frame::put_message(&mut message_first, b"hi", 1 << 20).unwrap();
    let mut huge = BytesMut::new();
    varint::put(&mut huge, 4 << 30);
    huge.extend_from_slice(&[frame::Kind::Hello as u8]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "HELLO cut short",
            vec![0x02, frame::Kind::Hello as u8, 0x01],
        ),
        ("HELLO claiming 4 GiB", huge.to_vec()),
        ("unknown frame kind", vec![0x03, 0x77, 0x00, 0x00]),
        ("MESSAGE before HELLO", message_first.to_vec()),
        (
            "encoding count past the frame",
            vec![0x04, frame::Kind::Hello as u8, 0x01, 0x01, 0xC8],
        ),
    ];
    for (what, bytes) in &cases {
        let (_endpoint, conn) = raw_quic("127.0.0.1:0", addr, &f.ca).await.unwrap();
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(bytes).await.unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .unwrap_or_else(|_| panic!("{what}: the server kept the connection open"));
        assert!(
            matches!(&reason, quinn::ConnectionError::ApplicationClosed(c)
                if c.error_code == quinn::VarInt::from_u32(app_code::PROTOCOL)),
            "{what}: {reason}"
        );
    }
    assert_eq!(f.server.stats().rejected, cases.len() as u64);
    // Well-behaved clients are still served.
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", addr.port()).await.unwrap();
    assert_eq!(&conn.request(b"fine").await.unwrap()[..], b"fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_hits_the_limit_and_stalled_streams_time_out() {
    let f = start_server(|c| {
        c.transport.max_concurrent_streams = 100;
        c.transport.request_timeout_ms = 1_500;
    });
    let addr = f.server.local_addr();
    let _rx = serve_echo(f.events);
    let (_endpoint, conn) = raw_peer(addr, &f.ca).await;
    // Streams that start a request and never finish it: one byte of a two-byte length.
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        send.write_all(&[0x40]).await.unwrap();
        stalled.push((send, recv));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), conn.open_bi())
            .await
            .is_err(),
        "a 101st stream must wait for credit"
    );
    let server_conn = f.server.connections();
    assert_eq!(server_conn.len(), 1);
    assert!(server_conn[0].in_flight() <= 100);
    // Meanwhile another client is served.
    let c = client(&f.ca, |_| {});
    let other = c.connect("127.0.0.1", addr.port()).await.unwrap();
    assert_eq!(&other.request(b"served").await.unwrap()[..], b"served");
    // After requestTimeoutMs each stalled stream is answered ERR_TIMEOUT and the server
    // holds no work for it any more.
    let (_send, mut recv) = stalled.pop().unwrap();
    let answer = read_answer(&mut recv).await;
    assert!(
        matches!(
            answer,
            Frame::Error {
                code: ErrorCode::Timeout,
                ..
            }
        ),
        "{answer:?}"
    );
    for _ in 0..50 {
        if server_conn[0].in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server_conn[0].in_flight(), 0);
    // Once the peer resets what the server stopped, the slots are its again. (A peer that
    // never does only starves its own connection.)
    for (mut send, _) in stalled {
        let _ = send.reset(0u32.into());
    }
    let answer = raw_request(&conn, b"after").await;
    assert!(matches!(answer, Frame::Response { body, .. } if &body[..] == b"after"));
}

#[tokio::test]
async fn a_connection_flood_is_refused_at_the_limits() {
    let f = start_server(|c| {
        c.limits.max_connections = 4;
        c.limits.max_connections_per_ip = 2;
    });
    let addr = f.server.local_addr();
    let _rx = serve_echo(f.events);
    let refused = |r: Result<_, quinn::ConnectionError>| match r {
        Err(quinn::ConnectionError::ConnectionClosed(c)) => {
            c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
        }
        _ => false,
    };
    // Two from 127.0.0.1, then that address is full.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(raw_quic("127.0.0.1:0", addr, &f.ca).await.unwrap());
    }
    assert!(refused(raw_quic("127.0.0.1:0", addr, &f.ca).await));
    // Two more from another loopback address fill the server...
    for _ in 0..2 {
        held.push(raw_quic("127.0.0.2:0", addr, &f.ca).await.unwrap());
    }
    assert!(refused(raw_quic("127.0.0.3:0", addr, &f.ca).await));
    // ...and a quicwire client is told why.
    let c = client(&f.ca, |_| {});
    let err = c.connect("127.0.0.1", addr.port()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ConnectionClosed, "{err}");
    assert!(err.message.contains("connection limit"), "{err}");
    assert_eq!(f.server.stats().refused, 3);
    // A closed connection frees its place.
    let (endpoint, conn) = held.remove(0);
    conn.close(0u32.into(), b"bye");
    endpoint.wait_idle().await;
    let mut reconnected = None;
    for _ in 0..50 {
        match c.connect("127.0.0.1", addr.port()).await {
            Ok(conn) => {
                reconnected = Some(conn);
                break;
            }
            // Refused until the server has seen the close; any other error fails the test.
            Err(e) if e.code == ErrorCode::ConnectionClosed => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let conn = reconnected.expect("a freed place is given to the next client");
    assert_eq!(&conn.request(b"in").await.unwrap()[..], b"in");
}

#[tokio::test]
async fn address_validation_sends_new_clients_through_retry() {
    let f = start_server(|c| c.limits.validate_addresses = true);
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(&conn.request(b"validated").await.unwrap()[..], b"validated");
    let stats = f.server.stats();
    assert_eq!((stats.retried, stats.accepted), (1, 1));
}
