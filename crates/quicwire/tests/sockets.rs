//! Closed clients give their UDP sockets back. Its own test binary: it counts the sockets
//! of the whole process, which tests running beside it would change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{client, serve_echo, start_server};

/// UDP sockets this process has open (Linux).
fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_clients_leave_no_socket_behind() {
    let f = start_server(|_| {});
    let _echoed = serve_echo(f.events);
    let port = f.server.local_addr().port();
    let before = open_sockets();
    for i in 0..20u8 {
        let c = client(&f.ca, |_| {});
        let conn = c.connect("127.0.0.1", port).await.unwrap();
        assert_eq!(&conn.request(&[i]).await.unwrap()[..], [i]);
        c.close().await;
    }
    let mut after = open_sockets();
    for _ in 0..50 {
        if after == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = open_sockets();
    }
    assert_eq!(after, before, "sockets left open by 20 closed clients");
}
