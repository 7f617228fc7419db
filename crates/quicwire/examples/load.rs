//! A request load generator for a quicwire server, in Rust so that the load costs as little
//! CPU as it can: `benches/workers.ts` runs it against `ServerWorkers` with 1, 2 and N
//! workers to measure how a server's request rate scales with its threads.
//!
//!   target/release/examples/load PORT CA_PEM_FILE CLIENTS IN_FLIGHT SECONDS
//!
//! CLIENTS endpoints (a UDP socket each, so the kernel spreads their handshakes over the
//! workers) each keep IN_FLIGHT raw 64-byte requests open on one connection to
//! 127.0.0.1:PORT, for SECONDS after a one-second warm-up; prints
//! `{"requests":…,"seconds":…,"perSecond":…,"failed":…}`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicwire::{event_queue, Client, ClientConfig, ClientTls, Encoding};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, ca, clients, in_flight, seconds] = &args[..] else {
        eprintln!("usage: load PORT CA_PEM_FILE CLIENTS IN_FLIGHT SECONDS");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("PORT");
    let ca = std::fs::read_to_string(ca).expect("CA_PEM_FILE");
    let clients: usize = clients.parse().expect("CLIENTS");
    let in_flight: usize = in_flight.parse().expect("IN_FLIGHT");
    let seconds: f64 = seconds.parse().expect("SECONDS");

    let mut conns = Vec::new();
    for _ in 0..clients {
        let config = ClientConfig {
            tls: ClientTls {
                ca: Some(ca.clone()),
                insecure: false,
            },
            encodings: vec![Encoding::Raw],
            ..Default::default()
        };
        let client = Client::new(config, event_queue().0).expect("client");
        let conn = client.connect("127.0.0.1", port).await.expect("connect");
        conns.push((client, conn));
    }

    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (_, conn) in &conns {
        for _ in 0..in_flight {
            let (conn, counting, stop) = (conn.clone(), counting.clone(), stop.clone());
            let (done, failed) = (done.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let body = [7u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    let ok = conn.request(&body).await.is_ok();
                    if counting.load(Ordering::Relaxed) {
                        let n = if ok { &done } else { &failed };
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let requests = done.load(Ordering::Relaxed);
    println!(
        "{{\"requests\":{requests},\"seconds\":{elapsed:.3},\"perSecond\":{:.0},\"failed\":{}}}",
        requests as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
    for (client, _) in conns {
        client.close().await;
    }
}
