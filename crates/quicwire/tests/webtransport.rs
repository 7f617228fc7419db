//! A server's WebTransport door, seen by a raw HTTP/3 client (quinn, with wtransport-proto's
//! framing): the CONNECT is answered by path, a connection that never opens a session is
//! closed, and a server without WebTransport does not take `h3`. Browsers over the whole
//! session are tested in tests/shipping/webtransport.test.ts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::start_server;
use quicwire::{ClientTls, WebTransportConfig};
use wtransport_proto::bytes::BufferReader;
use wtransport_proto::frame::Frame;
use wtransport_proto::headers::Headers;
use wtransport_proto::session::{SessionRequest, SessionResponse};

/// A QUIC connection offering only `h3`, with the server's certificate checked.
async fn h3(server: SocketAddr, ca: &str) -> Result<quinn::Connection, quinn::ConnectionError> {
    let tls = ClientTls {
        ca: Some(ca.into()),
        insecure: false,
    };
    let mut tls = quicwire::tls::client_config(&tls, Vec::new).unwrap();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint.connect(server, "localhost").unwrap().await
}

fn accepting(path: &str) -> WebTransportConfig {
    WebTransportConfig {
        path: path.into(),
        origins: Vec::new(),
    }
}

/// Sends an extended CONNECT for `url`: the response's status, and the stream (the
/// session lasts as long as it).
async fn connect(conn: &quinn::Connection, url: &str) -> (u16, quinn::SendStream) {
    connect_from(conn, url, None).await
}

/// [`connect`] from a page of `origin`.
async fn connect_from(
    conn: &quinn::Connection,
    url: &str,
    origin: Option<&str>,
) -> (u16, quinn::SendStream) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut request = SessionRequest::new(url).unwrap();
    if let Some(origin) = origin {
        request.insert("origin", origin).unwrap();
    }
    let mut out = Vec::new();
    request.headers().generate_frame().write(&mut out).unwrap();
    send.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let chunk = recv.read_chunk(4096, true).await;
        let chunk = chunk.expect("readable").expect("a response");
        buf.extend_from_slice(&chunk.bytes);
        let mut reader = BufferReader::new(&buf);
        if let Some(frame) = Frame::read_from_buffer(&mut reader).unwrap() {
            let headers = Headers::with_frame(&frame).unwrap();
            let status = SessionResponse::try_from(headers)
                .unwrap()
                .code()
                .into_inner();
            return (status, send);
        }
    }
}

#[tokio::test]
async fn a_connect_is_answered_by_its_path() {
    let fixture = start_server(|c| c.webtransport = Some(accepting("/quicwire")));
    let conn = h3(fixture.server.local_addr(), &fixture.ca).await.unwrap();
    let elsewhere = format!(
        "https://localhost:{}/elsewhere",
        fixture.server.local_addr().port()
    );
    assert_eq!(connect(&conn, &elsewhere).await.0, 404);
    let url = format!(
        "https://localhost:{}/quicwire",
        fixture.server.local_addr().port()
    );
    let (status, mut session) = connect(&conn, &url).await;
    assert_eq!(status, 200);
    // One session per connection.
    assert_eq!(connect(&conn, &url).await.0, 429);
    // Ending the CONNECT stream ends the session, and the server closes the connection.
    session.finish().unwrap();
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert!(String::from_utf8_lossy(&c.reason).contains("ended its WebTransport session"));
        }
        other => panic!("expected an application close, got {other:?}"),
    }
}

#[tokio::test]
async fn only_the_origins_given_open_sessions() {
    let fixture = start_server(|c| {
        c.webtransport = Some(WebTransportConfig {
            path: "/".into(),
            origins: vec!["https://app.example".into()],
        })
    });
    let conn = h3(fixture.server.local_addr(), &fixture.ca).await.unwrap();
    let url = format!("https://localhost:{}/", fixture.server.local_addr().port());
    assert_eq!(connect(&conn, &url).await.0, 403, "no origin");
    let other = Some("https://other.example");
    assert_eq!(connect_from(&conn, &url, other).await.0, 403);
    let (status, _session) = connect_from(&conn, &url, Some("https://app.example")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_connection_that_opens_no_session_is_closed() {
    let fixture = start_server(|c| {
        c.webtransport = Some(accepting("/"));
        c.transport.request_timeout_ms = 300;
    });
    let conn = h3(fixture.server.local_addr(), &fixture.ca).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    match closed.expect("the server closes it") {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason).into_owned();
            assert!(reason.contains("no WebTransport session"), "{reason}");
        }
        other => panic!("expected an application close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_without_webtransport_turns_h3_down() {
    let fixture = start_server(|_| {});
    let refused = h3(fixture.server.local_addr(), &fixture.ca).await;
    assert!(
        matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(ref c)) if c.error_code.to_string().contains("120")),
        "{refused:?}"
    );
}
