//! quinn alone in two processes: the bulk and small-message scenarios of `npm run bench` on
//! quinn directly in Rust, with the server in a child process as the JS bench has it, and
//! quicwire's sockets, TLS and transport settings but no quicwire protocol and no JS. The
//! criterion ceiling (`benches/transport.rs`) runs both ends on one runtime in one process,
//! a layout no JS transport gets; this is the same ceiling in the bench's layout.
//!
//!   target/release/examples/ceiling --json bulk|small BULK_BYTES WARMUP_BYTES SMALL_MS
//!
//! It runs one scenario once, with the sizes the bench passes (so `benches/scenarios.ts` is
//! the one place they are set), and prints its figures as one JSON line, the way a bench
//! client does: `npm run bench` shows it as the `quinn-ceiling` row of the same run, and
//! `npm run bench -- --only quinn-ceiling --scenarios bulk,small` runs it alone. Each
//! stream starts with one byte (0: bulk bytes, 1: framed 64 B messages); the server reads
//! it to the end and answers with what it counted, which ends the measurement.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../benches/common/quinn.rs"]
mod quinn_setup;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quicwire::core::frame::{put_message, Frame, FrameDecoder};
use quicwire::core::quic::transport_config;
use quicwire::{generate_dev_cert, ClientTls, ServerTls, TransportConfig};
use quinn_setup::{endpoint, quinn_client_config, quinn_server_config};

const CHUNK: usize = 64 << 10;

/// How much each scenario moves.
#[derive(Clone, Copy)]
struct Sizes {
    bulk_bytes: usize,
    /// Sent before bulk is timed, as the bench's bulk scenario does.
    bulk_warmup_bytes: usize,
    small_for: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve()),
        Some("--json") => {
            let load = match args.get(1).map(String::as_str) {
                Some("bulk") => Load::Bulk,
                Some("small") => Load::Small,
                other => panic!("--json takes bulk or small, not {other:?}"),
            };
            let number = |i: usize, what: &str| -> u64 {
                let arg = args.get(i).unwrap_or_else(|| panic!("--json needs {what}"));
                arg.parse()
                    .unwrap_or_else(|_| panic!("{what}: a number, not {arg}"))
            };
            let sizes = Sizes {
                bulk_bytes: number(2, "BULK_BYTES") as usize,
                bulk_warmup_bytes: number(3, "WARMUP_BYTES") as usize,
                small_for: Duration::from_millis(number(4, "SMALL_MS")),
            };
            rt.block_on(measure_once(load, sizes));
        }
        other => panic!(
            "usage: ceiling --json bulk|small BULK_BYTES WARMUP_BYTES SMALL_MS, not {other:?}"
        ),
    }
}

/// Loopback's transport settings, as quicwire picks for a peer on this host.
fn loopback_transport() -> Arc<quinn::TransportConfig> {
    transport_config(&TransportConfig::default(), true).unwrap()
}

/// Child process: prints its port, then counts what each stream carries.
async fn serve() {
    let tls = ServerTls {
        cert: std::env::var("CEILING_CERT").unwrap(),
        key: std::env::var("CEILING_KEY").unwrap(),
    };
    let mut config = quinn_server_config(&tls, &TransportConfig::default()).unwrap();
    config.transport_config(loopback_transport());
    let server = endpoint("127.0.0.1:0".parse().unwrap(), Some(config)).unwrap();
    println!("{}", server.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    while let Some(incoming) = server.accept().await {
        let conn = incoming.await.unwrap();
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            tokio::spawn(async move {
                let decoder = FrameDecoder::new(1 << 20);
                let (mut framed, mut buf, mut count) = (None, BytesMut::new(), 0u64);
                while let Some(chunk) = recv.read_chunk(1 << 20, true).await.unwrap() {
                    let mut data = &chunk.bytes[..];
                    let framed = *framed.get_or_insert_with(|| {
                        let kind = data[0];
                        data = &data[1..];
                        kind == 1
                    });
                    if !framed {
                        count += data.len() as u64;
                        continue;
                    }
                    buf.extend_from_slice(data);
                    while let Some(Frame::Message(_)) = decoder.decode(&mut buf).unwrap() {
                        count += 1;
                    }
                }
                send.write_all(&count.to_le_bytes()).await.unwrap();
                send.finish().unwrap();
            });
        }
    }
}

/// One run of one scenario on a fresh server process, printed as the bench client prints
/// its figures (the same keys).
async fn measure_once(load: Load, sizes: Sizes) {
    let (conn, _endpoint, mut child) = start().await;
    match load {
        Load::Bulk => {
            let mb_per_sec = bulk_mb_per_sec(&conn, sizes).await;
            let mib = sizes.bulk_bytes as f64 / f64::from(1 << 20);
            println!("{{\"mbPerSec\":{mb_per_sec},\"mib\":{mib}}}");
        }
        Load::Small => {
            let per_sec = small_per_sec(&conn, sizes).await;
            println!("{{\"messagesPerSec\":{per_sec}}}");
        }
    }
    child.kill().ok();
    child.wait().ok();
}

/// The bulk scenario: the warm-up untimed, then `bulk_bytes` timed, checked against the
/// server's count.
async fn bulk_mb_per_sec(conn: &quinn::Connection, sizes: Sizes) -> f64 {
    let warmup = Sizes {
        bulk_bytes: sizes.bulk_warmup_bytes,
        ..sizes
    };
    run(conn, Load::Bulk, warmup).await;
    let (bytes, took) = run(conn, Load::Bulk, sizes).await;
    assert_eq!(
        bytes, sizes.bulk_bytes as u64,
        "the server counted other bytes"
    );
    bytes as f64 / took / 1e6
}

/// The small-message scenario: 64 B messages delivered per second.
async fn small_per_sec(conn: &quinn::Connection, sizes: Sizes) -> f64 {
    let (messages, took) = run(conn, Load::Small, sizes).await;
    messages as f64 / took
}

/// Starts the server process and connects to it (the endpoint is returned to keep it open).
async fn start() -> (quinn::Connection, quinn::Endpoint, std::process::Child) {
    let cert = generate_dev_cert(&["localhost".into()], None).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("serve")
        .env("CEILING_CERT", &cert.cert)
        .env("CEILING_KEY", &cert.key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", line.trim()).parse().unwrap();
    let tls = ClientTls {
        ca: Some(cert.cert.clone()),
        insecure: false,
    };
    let mut client = endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let mut config = quinn_client_config(&tls, &TransportConfig::default()).unwrap();
    config.transport_config(loopback_transport());
    client.set_default_client_config(config);
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    (conn, client, child)
}

#[derive(Clone, Copy)]
enum Load {
    /// `bulk_bytes` in 64 KiB chunks.
    Bulk,
    /// Framed 64 B messages in 64 KiB batches, as fast as flow control allows, for `small_for`.
    Small,
}

/// Sends `load` on a new stream and waits for the server's count: returns it with the
/// seconds taken.
async fn run(conn: &quinn::Connection, load: Load, sizes: Sizes) -> (u64, f64) {
    let start = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    match load {
        Load::Bulk => {
            send.write_all(&[0]).await.unwrap();
            let chunk = Bytes::from(vec![1u8; CHUNK]);
            for _ in 0..sizes.bulk_bytes / CHUNK {
                send.write_chunk(chunk.clone()).await.unwrap();
            }
        }
        Load::Small => {
            send.write_all(&[1]).await.unwrap();
            let mut out = BytesMut::with_capacity(CHUNK);
            while start.elapsed() < sizes.small_for {
                while out.len() < CHUNK {
                    put_message(&mut out, &[2u8; 64], 1 << 20).unwrap();
                }
                send.write_chunk(out.split().freeze()).await.unwrap();
            }
        }
    }
    send.finish().unwrap();
    let answer = recv.read_to_end(8).await.unwrap();
    let count = u64::from_le_bytes(answer.try_into().unwrap());
    (count, start.elapsed().as_secs_f64())
}
