//! Engines for the tests: a client and a server with a dev certificate the client checks
//! (real TLS 1.3), on a simulated network with a virtual clock.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use quicwire_core::tls::{generate_dev_cert, ClientTls, ServerTls};
use quicwire_core::{Encoding, PoolKey};
use quicwire_engine::sim::{Host, Network};
use quicwire_engine::{ClientConfig, ConnId, Engine, Event, SendOptions, ServerConfig};

pub const SERVER: &str = "127.0.0.1:4433";

/// Virtual time enough for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Setup {
    pub cert: String,
    pub key: String,
}

impl Setup {
    pub fn new() -> Setup {
        let cert = generate_dev_cert(&["localhost".into()], None).unwrap();
        Setup {
            cert: cert.cert,
            key: cert.key,
        }
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig::new(ServerTls {
            cert: self.cert.clone(),
            key: self.key.clone(),
        })
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            tls: ClientTls {
                ca: Some(self.cert.clone()),
                insecure: false,
            },
            encodings: vec![Encoding::Raw],
            ..Default::default()
        }
    }

    /// A network with a server at [`SERVER`] and a client, each configured by its `edit`.
    pub fn network(
        &self,
        seed: u64,
        client: impl FnOnce(&mut ClientConfig),
        server: impl FnOnce(&mut ServerConfig),
    ) -> (Network, Host, Host) {
        let mut net = Network::new(seed);
        let (mut c, mut s) = (self.client_config(), self.server_config());
        client(&mut c);
        server(&mut s);
        let server = Engine::server(&s, net.now()).unwrap();
        let s = net.add(SERVER.parse().unwrap(), server);
        let c = self.add_client(&mut net, c, "127.0.0.1:40000");
        (net, c, s)
    }

    pub fn add_client(&self, net: &mut Network, config: ClientConfig, addr: &str) -> Host {
        let client = Engine::client(&config, net.now()).unwrap();
        net.add(addr.parse().unwrap(), client)
    }
}

/// Dials the server from `client`; its id, once both sides report the connection, and the
/// server's id for it.
pub fn connect(net: &mut Network, client: Host, server: Host) -> (ConnId, ConnId) {
    let key = PoolKey::new("localhost", 4433).unwrap();
    let addr: SocketAddr = net.addr(server);
    let now = net.now();
    let id = net.engine(client).connect(now, &key, addr).unwrap();
    let c = wait(
        net,
        client,
        |e| matches!(e, Event::Connected { conn, .. } if *conn == id),
    );
    assert!(matches!(c, Event::Connected { .. }), "{c:?}");
    let up = wait(net, server, |e| matches!(e, Event::Connected { .. }));
    (id, up.conn())
}

/// Runs the network until `host` reports an event `pick` accepts (at most [`PATIENCE`] of
/// virtual time), and takes it out of the host's events.
pub fn wait(net: &mut Network, host: Host, mut pick: impl FnMut(&Event) -> bool) -> Event {
    let mut found = None;
    net.run_until(PATIENCE, |net| {
        let events = net.events(host);
        if let Some(at) = events.iter().position(&mut pick) {
            found = Some(events.remove(at));
        }
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no such event; host {host} has {:?}", net.events(host)))
}

/// Every message `host` received so far, in order.
pub fn messages(net: &mut Network, host: Host) -> Vec<Vec<u8>> {
    net.events(host)
        .iter()
        .filter_map(|e| match e {
            Event::Message { body, .. } => Some(body.to_vec()),
            _ => None,
        })
        .collect()
}

/// Acknowledges every receipt `host` has, as an application that took its messages would.
pub fn acknowledge_all(net: &mut Network, host: Host) {
    let receipts: Vec<_> = net
        .events(host)
        .iter()
        .filter_map(|e| match e {
            Event::Receipt { conn, receipt } => Some((*conn, *receipt)),
            _ => None,
        })
        .collect();
    net.events(host)
        .retain(|e| !matches!(e, Event::Receipt { .. }));
    let now = net.now();
    for (conn, receipt) in receipts {
        net.engine(host).acknowledge(now, conn, receipt);
    }
}

/// Sends `bodies` in one outbox; the sequence number of the last.
pub fn send(net: &mut Network, host: Host, conn: ConnId, bodies: &[&[u8]]) -> u64 {
    send_with(net, host, conn, SendOptions::default(), bodies)
}

/// [`send`] on a lane of `options`; the lane's sequence number of the last.
pub fn send_with(
    net: &mut Network,
    host: Host,
    conn: ConnId,
    options: SendOptions,
    bodies: &[&[u8]],
) -> u64 {
    let now = net.now();
    let engine = net.engine(host);
    let mut outbox = engine.outbox(conn, options).unwrap();
    for body in bodies {
        outbox.push(body).unwrap();
    }
    engine.send(now, conn, &mut outbox).unwrap()
}
