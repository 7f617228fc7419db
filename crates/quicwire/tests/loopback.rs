//! End-to-end tests over real UDP on loopback with real TLS 1.3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{client, client_and_events, dev_cert, next, serve_echo, start_server};
use quicwire::{
    event_queue, generate_dev_cert, Client, ClientConfig, ClientTls, Encoding, ErrorCode, Event,
    RequestOptions, SendOptions, Server, ServerConfig, ServerTls,
};

#[tokio::test]
async fn messages_and_requests_round_trip() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let mut received = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(conn.encoding(), Encoding::Msgpack);
    conn.send_batch(&[b"one", b"two"]).await.unwrap();
    // `send` resolved, so the server's handler already has both, in order.
    assert_eq!(next(&mut received).await, Bytes::from_static(b"one"));
    assert_eq!(next(&mut received).await, Bytes::from_static(b"two"));
    assert_eq!(
        conn.request(b"ping").await.unwrap(),
        Bytes::from_static(b"ping")
    );
    let err = conn.request(b"fail").await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::Remote, "handler failed")
    );
    // The connection survives a remote failure.
    assert_eq!(
        conn.request(b"again").await.unwrap(),
        Bytes::from_static(b"again")
    );
    let stats = c.stats();
    assert_eq!(stats.totals.messages_out, 2);
    assert_eq!(stats.totals.requests_out, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_on_one_connection() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let tasks: Vec<_> = (0..1000u32)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.request(&i.to_le_bytes()).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(&t.await.unwrap().unwrap()[..], &(i as u32).to_le_bytes());
    }
    assert_eq!(c.stats().created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_cross_intact() {
    let f = start_server(|c| c.transport.max_message_size = 16 << 20);
    let port = f.server.local_addr().port();
    let mut received = serve_echo(f.events);
    // 64 MiB in one batch: a send buffer that holds it all (the default bounds what waits
    // at 2 x 8 MiB, and refuses the rest with ERR_FLOW_CONTROL_PAUSED).
    let c = client(&f.ca, |c| {
        c.transport.max_message_size = 16 << 20;
        c.transport.send_buffer_high = 64 << 20;
    });
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    assert_eq!(conn.request(&big).await.unwrap(), Bytes::from(big.clone()));
    // 64 MiB of 1 MiB messages through the channel stream.
    let chunk = vec![7u8; 1 << 20];
    let bodies: Vec<&[u8]> = (0..64).map(|_| &chunk[..]).collect();
    conn.send_batch(&bodies).await.unwrap();
    // Delivered means handed to the server's event channel; serve_echo's task relays them
    // from there, and may still be at it when send_batch resolves.
    let mut total = 0;
    while total < 64 << 20 {
        let relayed = tokio::time::timeout(Duration::from_secs(10), received.recv()).await;
        total += relayed.expect("all 64 MiB relayed").unwrap().len();
    }
    assert_eq!(total, 64 << 20);
    assert!(received.try_recv().is_err(), "no message twice");
}

/// A peer on this host gets loopback's 64 KiB datagrams both ways: 8 MiB there and back
/// takes a few hundred datagrams each way, where 1452-byte ones would take over 5,700.
#[tokio::test]
async fn each_side_runs_the_congestion_controller_it_asks_for() {
    use quicwire::CongestionControl::{Bbr, NewReno};
    let f = start_server(|c| c.transport.congestion_control = NewReno);
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |c| c.transport.congestion_control = Bbr);
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(conn.request(&[1u8; 100_000]).await.unwrap().len(), 100_000);
    let (mine, theirs) = (conn.stats(), f.server.connections()[0].stats());
    assert_eq!(
        (mine.congestion_control, theirs.congestion_control),
        (Bbr, NewReno)
    );
    assert!(
        mine.cwnd > 0 && mine.mtu > 1200 && mine.min_rtt_ms > 0.0,
        "{mine:?}"
    );
}

#[tokio::test]
async fn message_lanes_keep_their_own_order_and_acknowledgements() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let mut received = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let lanes = [0, 7, -7, 1, 2, 3, 4, i32::MAX];
    for priority in lanes {
        let bodies: Vec<Vec<u8>> = (0..3).map(|i| format!("{priority}:{i}").into()).collect();
        let bodies: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
        let options = SendOptions {
            priority,
            ..Default::default()
        };
        conn.send_batch_with(&bodies, options).await.unwrap();
        assert_eq!(conn.acked(priority), 3, "lane {priority}");
    }
    let mut got = Vec::new();
    while let Ok(body) = received.try_recv() {
        got.push(String::from_utf8(body.to_vec()).unwrap());
    }
    for priority in lanes {
        let order: Vec<&str> = got
            .iter()
            .filter_map(|m| m.strip_prefix(&format!("{priority}:")))
            .collect();
        assert_eq!(order, ["0", "1", "2"], "lane {priority}");
    }
    // A ninth priority would open a ninth lane.
    let e = conn
        .enqueue(
            &[b"x"],
            SendOptions {
                priority: 99,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let queued = conn
        .enqueue(
            &[b"more"],
            SendOptions {
                priority: 7,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(queued.seq, 4);
    conn.delivered(queued).await.unwrap();
    assert_eq!(
        conn.request(b"still fine").await.unwrap(),
        &b"still fine"[..]
    );
}

#[tokio::test]
async fn unconfirmed_messages_return_at_once_and_are_acknowledged_late() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let mut received = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let options = SendOptions {
        unconfirmed: true,
        ..Default::default()
    };
    conn.send_batch_with(&[b"a", b"b"], options).await.unwrap();
    // The peer acknowledges them late, but it does: `delivered` sees the ACK come.
    let queued = conn.enqueue(&[b"c"], options).unwrap();
    conn.delivered(queued).await.unwrap();
    assert_eq!(conn.acked(0), 3);
    let mut got = Vec::new();
    while let Ok(body) = received.try_recv() {
        got.push(body);
    }
    assert_eq!(got, [&b"a"[..], b"b", b"c"]);
}

#[tokio::test]
async fn a_resumed_connection_sends_idempotent_requests_as_0rtt_data() {
    let f = start_server(|c| c.transport.early_data = true);
    let port = f.server.local_addr().port();
    // Answers with whether the request came early (0-RTT).
    let mut events = f.events;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request(req) = event {
                let early = [u8::from(req.is_early())];
                let _ = req.respond(Ok(&early)).await;
            }
        }
    });
    let c = client(&f.ca, |c| c.transport.early_data = true);
    let first = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(&first.request(b"warm").await.unwrap()[..], [0]);
    tokio::time::sleep(Duration::from_millis(50)).await; // The tickets follow the handshake.
    c.disconnect(&first);
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let idempotent = RequestOptions {
        idempotent: true,
        ..Default::default()
    };
    let (safe, plain) = tokio::join!(
        conn.request_with(b"safe", idempotent),
        conn.request(b"plain")
    );
    assert_eq!(
        (&safe.unwrap()[..], &plain.unwrap()[..]),
        (&[1][..], &[0][..])
    );
    let stats = conn.stats();
    assert_eq!((stats.zero_rtt_accepted, stats.zero_rtt_rejected), (1, 0));
}

#[tokio::test]
async fn datagrams_cross_and_are_counted() {
    let mut f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let max = conn.max_datagram_size() as usize;
    assert!(max > 1200, "loopback carries large datagrams: {max}");
    for i in 0..100u8 {
        conn.send_datagram(&[i; 100]).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 100 {
        let event = tokio::time::timeout(Duration::from_secs(5), f.events.recv());
        if let Event::Datagram(_, body) = event.await.unwrap().unwrap() {
            got.push(body[0]);
        }
    }
    assert_eq!(got, (0..100).collect::<Vec<u8>>());
    // Too large for the path: refused, and the connection carries on.
    let e = conn.send_datagram(&vec![0; max + 1]).unwrap_err();
    assert_eq!(e.code, ErrorCode::MessageTooLarge);
    conn.send(b"still here").await.unwrap();
    let (mine, theirs) = (conn.stats(), f.server.connections()[0].stats());
    assert_eq!((mine.datagrams_out, mine.datagrams_dropped), (100, 0));
    assert_eq!((theirs.datagrams_in, theirs.datagrams_lost), (100, 0));
}

#[tokio::test]
async fn both_sides_log_the_same_tls_secrets() {
    let mut f = start_server(|c| c.transport.key_log = true);
    let port = f.server.local_addr().port();
    let (c, mut events) = client_and_events(&f.ca, |c| c.transport.key_log = true);
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    conn.send(b"x").await.unwrap();
    let lines = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>| {
        let mut lines = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::KeyLog(line) = e {
                lines.push(line);
            }
        }
        lines.sort();
        lines
    };
    let (mine, theirs) = (lines(&mut events), lines(&mut f.events));
    let labels: Vec<_> = mine.iter().map(|l| l.split(' ').next().unwrap()).collect();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert!(labels.contains(&label), "{label} missing from {mine:?}");
    }
    for line in &mine {
        let parts: Vec<_> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line}");
        assert_eq!(parts[1].len(), 64, "client random: {line}");
        assert!(parts[1..]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit())));
    }
    assert_eq!(mine, theirs);
}

#[tokio::test]
async fn qlog_traces_each_connection() {
    let f = start_server(|c| c.transport.qlog = true);
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let (c, mut events) = client_and_events(&f.ca, |c| c.transport.qlog = true);
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(&conn.request(b"traced").await.unwrap()[..], b"traced");
    let mut trace = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // Until the trace holds 1-RTT packets both ways (the request and its answer).
    let done = |t: &[u8]| {
        let t = String::from_utf8_lossy(t);
        ["transport:packet_sent", "transport:packet_received"]
            .iter()
            .all(|name| {
                t.split('\u{1e}')
                    .any(|r| r.contains(name) && r.contains("1RTT"))
            })
    };
    while !done(&trace) {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap();
        if let Some(Event::Qlog(id, records)) = event {
            assert_eq!(id, conn.id());
            trace.extend_from_slice(&records);
        }
    }
    // JSON-SEQ: each record is RS, a JSON text, LF; the first is the trace's header.
    let text = String::from_utf8(trace).unwrap();
    let records: Vec<&str> = text.split('\u{1e}').filter(|r| !r.is_empty()).collect();
    assert!(records
        .iter()
        .all(|r| r.starts_with('{') && r.ends_with("}\n")));
    assert!(records[0].contains("\"qlog_version\""), "{}", records[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebind_mid_traffic_loses_nothing() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let mut received = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    // Answered: the server has the connection (it counts it once the client's HELLO came).
    conn.request(b"first").await.unwrap();
    let before = f.server.connections()[0].remote_address();
    let sending = {
        let conn = conn.clone();
        tokio::spawn(async move {
            let bodies: Vec<[u8; 4]> = (0..10_000u32).map(u32::to_be_bytes).collect();
            let refs: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
            conn.send_batch(&refs).await
        })
    };
    let asking: Vec<_> = (0..1_000u32)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move { (i, conn.request(&i.to_be_bytes()).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(2)).await;
    c.rebind().unwrap();
    sending.await.unwrap().unwrap();
    for task in asking {
        let (i, answer) = task.await.unwrap();
        assert_eq!(&answer.unwrap()[..], &i.to_be_bytes()[..]);
    }
    for i in 0..10_000u32 {
        let m = tokio::time::timeout(Duration::from_secs(5), received.recv()).await;
        assert_eq!(&m.unwrap().unwrap()[..], &i.to_be_bytes()[..]);
    }
    // The server follows the client to its new port.
    let after = f.server.connections()[0].remote_address();
    assert_eq!(after.ip(), before.ip());
    assert_ne!(after.port(), before.port());
}

#[tokio::test]
async fn loopback_peers_use_large_datagrams() {
    let f = start_server(|c| c.transport.max_message_size = 16 << 20);
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |c| c.transport.max_message_size = 16 << 20);
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let big = vec![5u8; 8 << 20];
    assert_eq!(conn.request(&big).await.unwrap().len(), big.len());
    let client_sent = conn.stats().udp_tx;
    let server_sent = f.server.connections()[0].stats().udp_tx;
    assert!(client_sent < 1_000, "client sent {client_sent} datagrams");
    assert!(server_sent < 1_000, "server sent {server_sent} datagrams");
}

#[tokio::test]
async fn pool_reuses_and_dedupes_concurrent_connects() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let dials: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.connect("127.0.0.1", port).await.unwrap().id() })
        })
        .collect();
    let mut ids = Vec::new();
    for d in dials {
        ids.push(d.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one handshake for ten concurrent connects");
    let again = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(again.id(), ids[0]);
    let stats = c.stats();
    assert_eq!((stats.created, stats.reused), (1, 10));
    // A dead connection is dropped and re-dialed.
    c.disconnect(&again);
    let fresh = c.connect("127.0.0.1", port).await.unwrap();
    assert_ne!(fresh.id(), ids[0]);
    assert_eq!(fresh.request(b"x").await.unwrap(), Bytes::from_static(b"x"));
}

#[tokio::test]
async fn idle_connections_are_evicted() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |c| c.transport.idle_timeout_ms = 100);
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(conn.is_closed());
    let stats = c.stats();
    assert_eq!((stats.evicted, stats.idle, stats.active), (1, 0, 0));
}

#[tokio::test]
async fn max_connections_evicts_lru_idle_then_exhausts() {
    let cert = dev_cert();
    let mut fixtures = Vec::new();
    for _ in 0..3 {
        let (handler, events) = event_queue();
        let server = Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            ServerConfig::new(ServerTls {
                cert: cert.cert.clone(),
                key: cert.key.clone(),
            }),
            handler,
        )
        .unwrap();
        let _rx = serve_echo(events);
        fixtures.push(server);
    }
    let c = client(&cert.cert, |c| c.transport.max_connections = 2);
    let a = c
        .connect("127.0.0.1", fixtures[0].local_addr().port())
        .await
        .unwrap();
    let _b = c
        .connect("127.0.0.1", fixtures[1].local_addr().port())
        .await
        .unwrap();
    let _c3 = c
        .connect("127.0.0.1", fixtures[2].local_addr().port())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        a.is_closed(),
        "least recently used idle connection was evicted"
    );
    assert_eq!(c.stats().evicted, 1);
    // With both pooled connections busy, a third host is refused.
    let conns = [
        c.connect("127.0.0.1", fixtures[1].local_addr().port())
            .await
            .unwrap(),
        c.connect("127.0.0.1", fixtures[2].local_addr().port())
            .await
            .unwrap(),
    ];
    let slow: Vec<_> = conns
        .iter()
        .map(|conn| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.request(b"slow").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = c
        .connect("127.0.0.1", fixtures[0].local_addr().port())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PoolExhausted, "{err}");
    for s in slow {
        s.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn tls_failures_are_err_tls() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let other_ca = dev_cert().cert;
    let err = client(&other_ca, |_| {})
        .connect("127.0.0.1", port)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Tls, "{err}");
    // Right CA, wrong name: the certificate names localhost and 127.0.0.1, not ::1's v4 twin.
    let only_other = generate_dev_cert(&["example.test".into()], None).unwrap();
    let (handler, _events) = event_queue();
    let named = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new(ServerTls {
            cert: only_other.cert.clone(),
            key: only_other.key,
        }),
        handler,
    )
    .unwrap();
    let err = client(&only_other.cert, |_| {})
        .connect("127.0.0.1", named.local_addr().port())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Tls, "{err}");
}

#[tokio::test]
async fn expired_certificate_is_err_tls() {
    // Valid through 2020 only, otherwise right: trusted as the CA, names localhost and 127.0.0.1.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let (handler, _events) = event_queue();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new(ServerTls {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }),
        handler,
    )
    .unwrap();
    let err = client(&cert.pem(), |_| {})
        .connect("127.0.0.1", server.local_addr().port())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Tls, "{err}");
    assert!(err.message.contains("certificate expired"), "{err}");
}

#[tokio::test]
async fn closed_port_times_out() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    let c = client(&dev_cert().cert, |c| c.transport.connect_timeout_ms = 300);
    let started = std::time::Instant::now();
    let err = c.connect("127.0.0.1", port).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ConnectTimeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn encoding_mismatch_is_negotiation_error() {
    let f = start_server(|c| c.encodings = vec![Encoding::Json]);
    let port = f.server.local_addr().port();
    let c = client(&f.ca, |c| c.encodings = vec![Encoding::Raw]);
    let err = c.connect("127.0.0.1", port).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Negotiation, "{err}");
    assert!(err.message.contains("raw"), "{err}");
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let cert = dev_cert();
    let (handler, events) = event_queue();
    let server = Server::bind(
        "[::1]:0".parse().unwrap(),
        ServerConfig::new(ServerTls {
            cert: cert.cert.clone(),
            key: cert.key,
        }),
        handler,
    )
    .unwrap();
    let _rx = serve_echo(events);
    let c = client(&cert.cert, |_| {});
    let conn = c.connect("::1", server.local_addr().port()).await.unwrap();
    assert_eq!(conn.peer(), format!("[::1]:{}", server.local_addr().port()));
    assert_eq!(
        conn.request(b"v6").await.unwrap(),
        Bytes::from_static(b"v6")
    );
}

#[tokio::test]
async fn graceful_close_drains_in_flight_requests() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let pending = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.request(b"slow").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.server.close(true, Duration::from_secs(5)).await;
    assert_eq!(pending.await.unwrap().unwrap(), Bytes::from_static(b"slow"));
    let err = conn.request(b"late").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ConnectionClosed, "{err}");
}

#[tokio::test]
async fn abrupt_close_fails_pending_requests() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let _rx = serve_echo(f.events);
    let c = client(&f.ca, |_| {});
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let pending: Vec<_> = (0..20)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.request(b"slow").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.server.close(false, Duration::ZERO).await;
    for p in pending {
        let err = p.await.unwrap().unwrap_err();
        assert_eq!(err.code, ErrorCode::ConnectionClosed, "{err}");
    }
}

#[tokio::test]
async fn server_sends_and_requests_to_its_clients() {
    let f = start_server(|_| {});
    let port = f.server.local_addr().port();
    let mut server_events = f.events;
    let (handler, mut client_events) = event_queue();
    let c = Client::new(
        ClientConfig {
            tls: ClientTls {
                ca: Some(f.ca.clone()),
                insecure: false,
            },
            ..Default::default()
        },
        handler,
    )
    .unwrap();
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    let server_side = match server_events.recv().await.unwrap() {
        Event::Connected(conn) => conn,
        other => panic!("{other:?}"),
    };
    // The client answers the server's requests.
    tokio::spawn(async move {
        while let Some(ev) = client_events.recv().await {
            if let Event::Request(req) = ev {
                let reply = [b"client:".as_slice(), req.body()].concat();
                let _ = req.respond(Ok(&reply)).await;
            }
        }
    });
    assert_eq!(f.server.broadcast(b"hello all").unwrap(), 1);
    assert_eq!(
        server_side.request(b"hi").await.unwrap(),
        Bytes::from_static(b"client:hi")
    );
    assert_eq!(conn.stats().requests_in, 1);
}

/// An echo server that also takes QUIC over TCP: it, its port, and what it received.
async fn tcp_server() -> (
    common::Fixture,
    u16,
    tokio::sync::mpsc::UnboundedReceiver<Bytes>,
) {
    let mut f = start_server(|_| {});
    f.server.listen_tcp().await.unwrap();
    let port = f.server.local_addr().port();
    let events = std::mem::replace(&mut f.events, tokio::sync::mpsc::unbounded_channel().1);
    (f, port, serve_echo(events))
}

/// A client over `transport` (its events dropped).
fn client_over(ca: &str, transport: quicwire::Transport) -> Client {
    common::client_over(ca, transport, |_| {}).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_over_tcp_carries_messages_and_requests() {
    let (f, port, mut received) = tcp_server().await;
    let c = client_over(&f.ca, quicwire::Transport::Tcp);
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(conn.stats().carrier, quicwire::core::Carrier::Tcp);
    conn.send_batch(&[b"one", b"two"]).await.unwrap();
    assert_eq!(next(&mut received).await, Bytes::from_static(b"one"));
    assert_eq!(next(&mut received).await, Bytes::from_static(b"two"));
    let answers = futures::future::join_all((0..100u32).map(|i| {
        let conn = conn.clone();
        async move { conn.request(&i.to_be_bytes()).await.unwrap() }
    }))
    .await;
    assert!(answers
        .iter()
        .enumerate()
        .all(|(i, a)| a[..] == (i as u32).to_be_bytes()));
    let big = Bytes::from(vec![7u8; 512 << 10]);
    assert_eq!(conn.request(&big).await.unwrap(), big);
    assert_eq!(f.server.stats().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_stays_on_udp_where_udp_answers() {
    let (f, port, _received) = tcp_server().await;
    let c = client_over(&f.ca, quicwire::Transport::Auto(Duration::from_millis(250)));
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(conn.stats().carrier, quicwire::core::Carrier::Udp);
    assert_eq!(&conn.request(b"u").await.unwrap()[..], b"u");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_tcp_when_udp_goes_unanswered() {
    let (f, server_port, _received) = tcp_server().await;
    // A port whose UDP swallows everything and whose TCP leads to the server.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let relay = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", server_port))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let c = client_over(&f.ca, quicwire::Transport::Auto(Duration::from_millis(100)));
    let started = std::time::Instant::now();
    let conn = c.connect("127.0.0.1", port).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(conn.stats().carrier, quicwire::core::Carrier::Tcp);
    assert_eq!(&conn.request(b"t").await.unwrap()[..], b"t");
    let stats = c.stats();
    assert_eq!((stats.active + stats.idle, stats.failed), (1, 0));
}

#[tokio::test]
async fn a_refused_tcp_connection_fails_the_dial_at_once() {
    let f = start_server(|_| {}); // no listen_tcp
    let port = f.server.local_addr().port();
    let c = client_over(&f.ca, quicwire::Transport::Tcp);
    let started = std::time::Instant::now();
    let err = c.connect("127.0.0.1", port).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ConnectionClosed, "{err}");
    assert!(
        err.message.contains("TCP connection carrying it closed"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
