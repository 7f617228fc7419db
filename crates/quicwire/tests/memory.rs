//! Client and Server on a MemoryNetwork under tokio's paused clock: the Rust API as an
//! application uses it, over a link that loses, duplicates and delays datagrams, with
//! timeouts of seconds that take no wall-clock time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::dev_cert;
use quicwire::engine::sim::Link;
use quicwire::{
    Client, ClientConfig, ClientTls, Connection, ErrorCode, Handler, IncomingRequest,
    MemoryNetwork, Receipt, Server, ServerConfig, ServerTls,
};

/// Echoes requests, except "never", which it holds unanswered; keeps every message.
#[derive(Default)]
struct Echo {
    messages: Mutex<Vec<Bytes>>,
    held: Mutex<Vec<IncomingRequest>>,
}

impl Handler for Echo {
    fn on_messages(&self, conn: &Connection, messages: Vec<Bytes>, receipt: Receipt) {
        self.messages.lock().unwrap().extend(messages);
        conn.acknowledge(receipt);
    }

    fn on_request(&self, request: IncomingRequest) {
        if &request.body()[..] == b"never" {
            self.held.lock().unwrap().push(request);
            return;
        }
        tokio::spawn(async move {
            let body = request.body().clone();
            let _ = request.respond(Ok(&body)).await;
        });
    }
}

struct Ignore;

impl Handler for Ignore {
    fn on_messages(&self, conn: &Connection, _: Vec<Bytes>, receipt: Receipt) {
        conn.acknowledge(receipt);
    }
    fn on_request(&self, _: IncomingRequest) {}
}

/// A server (echo) and a client on `net`, and the client's connection.
async fn pair(
    net: &MemoryNetwork,
    edit: impl FnOnce(&mut ClientConfig),
) -> (Server, Arc<Echo>, Client, Connection) {
    let cert = dev_cert();
    let echo = Arc::new(Echo::default());
    let tls = ServerTls {
        cert: cert.cert.clone(),
        key: cert.key,
    };
    let addr = "127.0.0.1:4433".parse().unwrap();
    let server = Server::bind_in_memory(net, addr, ServerConfig::new(tls), echo.clone()).unwrap();
    let mut config = ClientConfig {
        tls: ClientTls {
            ca: Some(cert.cert),
            insecure: false,
        },
        ..Default::default()
    };
    edit(&mut config);
    let client = Client::in_memory(net, config, Arc::new(Ignore)).unwrap();
    let conn = client.connect("127.0.0.1", 4433).await.unwrap();
    (server, echo, client, conn)
}

#[tokio::test(start_paused = true)]
async fn a_request_timeout_passes_on_the_paused_clock() {
    let net = MemoryNetwork::new(1);
    let (_server, _echo, _client, conn) =
        pair(&net, |c| c.transport.request_timeout_ms = 30_000).await;
    let wall = std::time::Instant::now();
    let asked = tokio::time::Instant::now();
    let err = conn.request(b"never").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(10),
        "virtual, not wall-clock, time"
    );
}

#[tokio::test(start_paused = true)]
async fn messages_and_requests_cross_a_lossy_link() {
    let net = MemoryNetwork::new(7);
    net.set_link(Link {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(4),
        loss: 0.05,
        duplicate: 0.05,
    });
    let (_server, echo, _client, conn) = pair(&net, |_| {}).await;
    let bodies: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_le_bytes().repeat(64)).collect();
    let sends: Vec<_> = bodies
        .chunks(100)
        .map(|chunk| {
            let conn = conn.clone();
            let chunk: Vec<Vec<u8>> = chunk.to_vec();
            tokio::spawn(async move {
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                conn.send_batch(&refs).await
            })
        })
        .collect();
    let requests: Vec<_> = (0..200u32)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move { (i, conn.request(&i.to_le_bytes()).await) })
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    for r in requests {
        let (i, answer) = r.await.unwrap();
        assert_eq!(&answer.unwrap()[..], &i.to_le_bytes());
    }
    let got: Vec<Vec<u8>> = echo
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.to_vec())
        .collect();
    assert_eq!(got, bodies, "every message once, in order");
    let traffic = net.traffic();
    assert!(traffic.lost > 0 && traffic.duplicated > 0, "{traffic:?}");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_is_given_up_and_its_late_answer_fails() {
    let net = MemoryNetwork::new(3);
    let (_server, echo, _client, conn) = pair(&net, |_| {}).await;
    // The caller stops waiting: the request's stream is reset.
    let waiting = tokio::spawn({
        let conn = conn.clone();
        async move { conn.request(b"never").await }
    });
    for _ in 0..1000 {
        if !echo.held.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        echo.held.lock().unwrap().len(),
        1,
        "the request reached the server"
    );
    waiting.abort();
    let _ = waiting.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The server's answer now has nowhere to go, and says so.
    let held = echo.held.lock().unwrap().pop().unwrap();
    let err = held.respond(Ok(b"late")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::StreamReset, "{err}");
    // The connection goes on.
    assert_eq!(&conn.request(b"after").await.unwrap()[..], b"after");
}
