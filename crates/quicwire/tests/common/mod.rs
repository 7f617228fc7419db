//! Fixtures shared by the integration tests: a dev certificate, an echo server, clients,
//! and a raw quinn peer that speaks just enough quicwire to misbehave.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quicwire::{
    event_queue, generate_dev_cert, Client, ClientConfig, ClientTls, Encoding, ErrorCode, Event,
    Server, ServerConfig, ServerTls, Transport,
};
use quicwire_core::frame::{self, Frame, FrameDecoder};
use quicwire_core::Hello;
use tokio::sync::mpsc::UnboundedReceiver;

pub struct Fixture {
    pub server: Server,
    pub ca: String,
    pub events: UnboundedReceiver<Event>,
}

pub fn dev_cert() -> quicwire::DevCert {
    generate_dev_cert(
        &["localhost".into(), "127.0.0.1".into(), "::1".into()],
        None,
    )
    .unwrap()
}

pub fn start_server(edit: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let cert = dev_cert();
    let mut config = ServerConfig::new(ServerTls {
        cert: cert.cert.clone(),
        key: cert.key,
    });
    edit(&mut config);
    let (handler, events) = event_queue();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config, handler).unwrap();
    Fixture {
        server,
        ca: cert.cert,
        events,
    }
}

/// Echoes requests ("fail" answers an error, "slow" waits 300 ms) and forwards messages.
/// The next message `serve_echo` received. A send resolves once the server's application
/// had the message; serve_echo's task forwards it a moment later.
pub async fn next(received: &mut UnboundedReceiver<Bytes>) -> Bytes {
    tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("a message within 5 s")
        .expect("serve_echo is running")
}

pub fn serve_echo(mut events: UnboundedReceiver<Event>) -> UnboundedReceiver<Bytes> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Messages(_, msgs) => msgs.into_iter().for_each(|m| {
                    let _ = tx.send(m);
                }),
                Event::Request(req) => {
                    tokio::spawn(async move {
                        let body = req.body().clone();
                        if &body[..] == b"fail" {
                            let err = quicwire::Error::new(ErrorCode::Remote, "handler failed");
                            let _ = req.respond(Err(err)).await;
                        } else {
                            if &body[..] == b"slow" {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                            let _ = req.respond(Ok(&body)).await;
                        }
                    });
                }
                _ => {}
            }
        }
    });
    rx
}

pub fn client(ca: &str, edit: impl FnOnce(&mut ClientConfig)) -> Client {
    client_and_events(ca, edit).0
}

/// A client that trusts `ca`, and what it hears of (its handler's events).
pub fn client_and_events(
    ca: &str,
    edit: impl FnOnce(&mut ClientConfig),
) -> (Client, UnboundedReceiver<Event>) {
    client_over(ca, Transport::Udp, edit)
}

/// A client that trusts `ca` and reaches servers over `transport`, and its events.
pub fn client_over(
    ca: &str,
    transport: Transport,
    edit: impl FnOnce(&mut ClientConfig),
) -> (Client, UnboundedReceiver<Event>) {
    let mut config = ClientConfig {
        tls: ClientTls {
            ca: Some(ca.to_string()),
            insecure: false,
        },
        ..Default::default()
    };
    edit(&mut config);
    let (handler, events) = event_queue();
    (
        Client::with_transport(config, handler, transport).unwrap(),
        events,
    )
}

/// A raw QUIC connection (TLS verified, no quicwire HELLO yet) from a socket bound to `bind`.
pub async fn raw_quic(
    bind: &str,
    server: SocketAddr,
    ca: &str,
) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    let tls = quicwire::tls::client_config(
        &ClientTls {
            ca: Some(ca.into()),
            insecure: false,
        },
        Vec::new,
    )
    .unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(bind.parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint.connect(server, "localhost").unwrap().await?;
    Ok((endpoint, conn))
}

/// A raw quinn client that speaks just enough quicwire to get past HELLO.
pub async fn raw_peer(server: SocketAddr, ca: &str) -> (quinn::Endpoint, quinn::Connection) {
    let (endpoint, conn) = raw_quic("127.0.0.1:0", server, ca).await.unwrap();
    let mut send = conn.open_uni().await.unwrap();
    let mut out = BytesMut::new();
    frame::put_hello(&mut out, &Hello::new(vec![Encoding::Raw], 1 << 20));
    send.write_all(&out).await.unwrap();
    let mut recv = conn.accept_uni().await.unwrap();
    let mut buf = BytesMut::new();
    let decoder = FrameDecoder::new(1 << 20);
    loop {
        let chunk = recv.read_chunk(1024, true).await.unwrap().unwrap();
        buf.extend_from_slice(&chunk.bytes);
        if let Some(f) = decoder.decode(&mut buf).unwrap() {
            assert!(matches!(f, Frame::Hello(_)), "{f:?}");
            break;
        }
    }
    std::mem::forget((send, recv));
    (endpoint, conn)
}

pub async fn raw_request(conn: &quinn::Connection, body: &[u8]) -> Frame {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut out = BytesMut::new();
    frame::put_request(&mut out, 1, body, 1 << 20).unwrap();
    send.write_all(&out).await.unwrap();
    send.finish().unwrap();
    read_answer(&mut recv).await
}

/// Reads a stream to its end and decodes the one frame on it (an answer or an ERROR).
pub async fn read_answer(recv: &mut quinn::RecvStream) -> Frame {
    let bytes = recv.read_to_end(1 << 21).await.unwrap();
    FrameDecoder::new(1 << 20)
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap()
}
