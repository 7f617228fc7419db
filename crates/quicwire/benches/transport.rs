//! The transport over real UDP on loopback with TLS 1.3: the five scenarios of the design
//! (connection establishment, message throughput, pool reuse, stream multiplexing,
//! concurrent connections), and the ceiling: bulk and small messages on quinn directly, the
//! same engine with no quicwire and no JS, which `npm run bench` compares the JS API against.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/quinn.rs"]
mod quinn_setup;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::future::join_all;
use quicwire::core::frame::{put_message, Frame, FrameDecoder};
use quicwire::core::pool::{PoolKey, PoolTable};
use quicwire::core::quic::transport_config;
use quicwire::{
    event_queue, generate_dev_cert, Client, ClientConfig, ClientTls, Connection, Event, Server,
    ServerConfig, ServerTls, TransportConfig,
};
use quinn_setup::{endpoint, quinn_client_config, quinn_server_config};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

struct Fixture {
    rt: Runtime,
    server: Server,
    ca: String,
}

/// A server that echoes requests and drops messages (delivery is acked either way).
fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cert = generate_dev_cert(&["localhost".into(), "127.0.0.1".into()], None).unwrap();
    let server = rt.block_on(async {
        let (handler, mut events) = event_queue();
        let config = ServerConfig::new(ServerTls {
            cert: cert.cert.clone(),
            key: cert.key.clone(),
        });
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), config, handler).unwrap();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Event::Request(req) = event {
                    tokio::spawn(async move {
                        let body = req.body().clone();
                        let _ = req.respond(Ok(&body)).await;
                    });
                }
            }
        });
        server
    });
    Fixture {
        rt,
        server,
        ca: cert.cert,
    }
}

fn client(ca: &str) -> Client {
    let config = ClientConfig {
        tls: ClientTls {
            ca: Some(ca.to_string()),
            insecure: false,
        },
        ..Default::default()
    };
    let (handler, _events) = event_queue();
    Client::new(config, handler).unwrap()
}

async fn connect(client: &Client, server: SocketAddr) -> Connection {
    client.connect("127.0.0.1", server.port()).await.unwrap()
}

fn scenarios(c: &mut Criterion) {
    let f = fixture();
    let addr = f.server.local_addr();
    let mut g = c.benchmark_group("quicwire");
    g.measurement_time(Duration::from_secs(5));

    // 1. A new connection (QUIC + TLS 1.3 handshake + HELLO) to its first reply.
    let fresh = f.rt.block_on(async { client(&f.ca) });
    g.bench_function("connection_establishment", |b| {
        b.to_async(&f.rt).iter(|| async {
            let conn = connect(&fresh, addr).await;
            conn.request(b"hello").await.unwrap();
            fresh.disconnect(&conn);
        });
    });

    // 2. 1000 messages of 64 B sent as a batch, until the server acknowledged delivery.
    let pooled = f.rt.block_on(async { client(&f.ca) });
    let conn = f.rt.block_on(connect(&pooled, addr));
    let bodies = vec![[3u8; 64]; 1000];
    let refs: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("message_throughput/64B", |b| {
        b.to_async(&f.rt)
            .iter(|| async { conn.send_batch(&refs).await.unwrap() });
    });

    // 3. Connecting to a pooled host:port: a pool lookup, no network.
    g.throughput(Throughput::Elements(1));
    g.bench_function("pool_reuse/connect", |b| {
        b.to_async(&f.rt)
            .iter(|| async { connect(&pooled, addr).await });
    });

    // 4. 100 requests of 1 KiB in flight on one connection, a stream each.
    let body = vec![5u8; 1024];
    g.throughput(Throughput::Elements(100));
    g.bench_function("stream_multiplexing/100x1KiB", |b| {
        b.to_async(&f.rt).iter(|| async {
            let all = (0..100).map(|_| conn.request(&body));
            for r in join_all(all).await {
                r.unwrap();
            }
        });
    });

    // 5. 16 clients connecting at once, each to its first reply (closing is not timed).
    g.throughput(Throughput::Elements(16));
    g.bench_function("concurrent_connections/16", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            let ca = f.ca.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let clients: Vec<Client> = (0..16).map(|_| client(&ca)).collect();
                    let start = std::time::Instant::now();
                    let all = clients.iter().map(|c| async move {
                        let conn = connect(c, addr).await;
                        conn.request(b"hi").await.unwrap();
                    });
                    join_all(all).await;
                    total += start.elapsed();
                    for c in clients {
                        tokio::spawn(async move { c.close().await });
                    }
                }
                total
            }
        });
    });
    g.finish();
}

fn pool_lookup(c: &mut Criterion) {
    let mut table: PoolTable<u32> = PoolTable::new(64);
    let keys: Vec<PoolKey> = (0..64)
        .map(|i| PoolKey::new(&format!("10.0.0.{i}"), 4433).unwrap())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let now = Duration::from_millis(i as u64);
        if table.begin_dial(k, |_| false).is_ok() {
            table.finish_dial(k.clone(), Some(i as u32), now);
        }
    }
    let key = &keys[31];
    c.bench_function("pool/checkout_64_entries", |b| {
        b.iter(|| {
            table
                .checkout(key, Duration::from_secs(1), |_| true)
                .copied()
        });
    });
}

/// quinn with no quicwire: one endpoint each side, with the same sockets, TLS and transport
/// settings as quicwire's own.
fn quinn_pair(
    rt: &Runtime,
    cert: &str,
    key: &str,
    ca: &str,
) -> (quinn::Endpoint, quinn::Endpoint, SocketAddr) {
    rt.block_on(async {
        let transport = TransportConfig::default();
        let server_tls = ServerTls {
            cert: cert.into(),
            key: key.into(),
        };
        // Loopback's transport settings, as quicwire picks for a peer on this host.
        let loopback = transport_config(&transport, true).unwrap();
        let mut server_config = quinn_server_config(&server_tls, &transport).unwrap();
        server_config.transport_config(loopback.clone());
        let server = endpoint("127.0.0.1:0".parse().unwrap(), Some(server_config)).unwrap();
        let client_tls = ClientTls {
            ca: Some(ca.into()),
            insecure: false,
        };
        let mut client = endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let mut client_config = quinn_client_config(&client_tls, &transport).unwrap();
        client_config.transport_config(loopback);
        client.set_default_client_config(client_config);
        let addr = server.local_addr().unwrap();
        (server, client, addr)
    })
}

fn quinn_ceiling(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cert = generate_dev_cert(&["localhost".into()], None).unwrap();
    let (server, client, addr) = quinn_pair(&rt, &cert.cert, &cert.key, &cert.cert);
    // The server reads each uni stream to its end, decoding frames, and reports the count.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, u64)>();
    rt.spawn(async move {
        while let Some(incoming) = server.accept().await {
            let done = done_tx.clone();
            tokio::spawn(async move {
                let conn = incoming.await.unwrap();
                while let Ok(mut recv) = conn.accept_uni().await {
                    let done = done.clone();
                    tokio::spawn(async move {
                        let decoder = FrameDecoder::new(1 << 20);
                        let mut buf = BytesMut::new();
                        let (mut frames, mut bytes) = (0u64, 0u64);
                        // The first byte says what follows: 0 raw bytes, 1 framed messages.
                        let mut framed = None;
                        while let Some(chunk) = recv.read_chunk(1 << 20, true).await.unwrap() {
                            let mut data = &chunk.bytes[..];
                            if framed.is_none() {
                                framed = Some(data[0] == 1);
                                data = &data[1..];
                            }
                            bytes += data.len() as u64;
                            if framed == Some(true) {
                                buf.extend_from_slice(data);
                                while let Some(Frame::Message(_)) =
                                    decoder.decode(&mut buf).unwrap()
                                {
                                    frames += 1;
                                }
                            }
                        }
                        let _ = done.send((frames, bytes));
                    });
                }
            });
        }
    });
    let conn = rt.block_on(async { client.connect(addr, "localhost").unwrap().await.unwrap() });

    let mut g = c.benchmark_group("quinn_ceiling");
    g.measurement_time(Duration::from_secs(5));
    // Bulk: 16 MiB per iteration in 64 KiB chunks on one stream.
    let chunk = Bytes::from(vec![1u8; 65_536]);
    let total = 16 << 20;
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function(BenchmarkId::new("bulk", "16MiB"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut send = conn.open_uni().await.unwrap();
                send.write_all(&[0]).await.unwrap();
                for _ in 0..total / chunk.len() {
                    send.write_chunk(chunk.clone()).await.unwrap();
                }
                send.finish().unwrap();
                let (_, bytes) = done_rx.recv().await.unwrap();
                assert_eq!(bytes, total as u64);
            })
        });
    });
    // Small messages: 10,000 framed 64 B messages on one stream, written in 64 KiB batches.
    let n = 10_000u64;
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::new("small_messages", "64B"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut send = conn.open_uni().await.unwrap();
                send.write_all(&[1]).await.unwrap();
                let mut out = BytesMut::with_capacity(1 << 16);
                for _ in 0..n {
                    put_message(&mut out, &[2u8; 64], 1 << 20).unwrap();
                    if out.len() >= 1 << 16 {
                        send.write_chunk(out.split().freeze()).await.unwrap();
                    }
                }
                send.write_chunk(out.split().freeze()).await.unwrap();
                send.finish().unwrap();
                let (frames, _) = done_rx.recv().await.unwrap();
                assert_eq!(frames, n);
            })
        });
    });
    g.finish();
}

criterion_group!(benches, scenarios, pool_lookup, quinn_ceiling);
criterion_main!(benches);
