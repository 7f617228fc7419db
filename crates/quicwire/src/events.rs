//! A ready-made [`Handler`] that turns callbacks into a stream of [`Event`]s, for Rust
//! callers who prefer `while let Some(event) = events.recv().await`.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Connection, Error, Handler, IncomingRequest, Receipt};

#[derive(Debug)]
pub enum Event {
    Connected(Connection),
    Messages(Connection, Vec<Bytes>),
    Datagram(Connection, Bytes),
    /// A TLS key log line (`TransportConfig::key_log`).
    KeyLog(String),
    /// qlog records of the connection with this id (`TransportConfig::qlog`).
    Qlog(u64, Bytes),
    Request(IncomingRequest),
    Closed(Connection, Error),
}

#[derive(Debug)]
struct EventQueue(mpsc::UnboundedSender<Event>);

impl Handler for EventQueue {
    fn on_connection(&self, conn: &Connection) {
        let _ = self.0.send(Event::Connected(conn.clone()));
    }
    /// Delivered once queued for the receiver (dropped, if the receiver is gone).
    fn on_messages(&self, conn: &Connection, messages: Vec<Bytes>, receipt: Receipt) {
        if self.0.send(Event::Messages(conn.clone(), messages)).is_ok() {
            conn.acknowledge(receipt);
        }
    }
    fn on_request(&self, request: IncomingRequest) {
        let _ = self.0.send(Event::Request(request));
    }
    fn on_datagram(&self, conn: &Connection, body: Bytes) {
        let _ = self.0.send(Event::Datagram(conn.clone(), body));
    }
    fn on_key_log(&self, line: &str) {
        let _ = self.0.send(Event::KeyLog(line.to_string()));
    }
    fn on_qlog(&self, id: u64, records: &[u8]) {
        let _ = self
            .0
            .send(Event::Qlog(id, Bytes::copy_from_slice(records)));
    }
    fn on_closed(&self, conn: &Connection, reason: &Error) {
        let _ = self.0.send(Event::Closed(conn.clone(), reason.clone()));
    }
}

/// A handler and the receiving end of its events.
pub fn event_queue() -> (Arc<dyn Handler>, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(EventQueue(tx)), rx)
}
