//! The quicwire session on one quinn-proto connection, sans I/O: the control stream's
//! HELLO/WELCOME exchange. Frames and negotiation rules come from quicwire-core; this
//! module only moves their bytes through quinn-proto's streams.

use bytes::BytesMut;
use quicwire_core::frame::{self, Frame, FrameDecoder};
use quicwire_core::{app_code, Encoding, Error, ErrorCode, Hello, Welcome, PROTOCOL_VERSION};
use quinn_proto::{Connection, Dir, StreamId, VarInt};
use web_time::Instant;

/// Read at most this much of a stream at once.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub max_message_size: u64,
    pub encodings: Vec<Encoding>,
}

/// What a session asks its engine to report.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Negotiated: the connection is ready.
    Ready(Welcome),
    /// Negotiation failed; the connection is being closed with this error.
    Failed(Error),
}

#[derive(Debug)]
pub(crate) struct Session {
    is_client: bool,
    params: Params,
    control: Option<StreamId>,
    control_in: BytesMut,
    control_out: Vec<u8>,
    ready: bool,
}

impl Session {
    pub fn new(is_client: bool, params: Params) -> Self {
        Session {
            is_client,
            params,
            control: None,
            control_in: BytesMut::new(),
            control_out: Vec::new(),
            ready: false,
        }
    }

    /// TLS is done. A client opens the control stream and offers HELLO.
    pub fn on_connected(&mut self, conn: &mut Connection) {
        if !self.is_client {
            return;
        }
        let Some(id) = conn.streams().open(Dir::Bi) else {
            return;
        };
        self.control = Some(id);
        let mut out = BytesMut::new();
        frame::put_hello(
            &mut out,
            &Hello {
                version: PROTOCOL_VERSION,
                encodings: self.params.encodings.clone(),
                max_message_size: self.params.max_message_size,
            },
        );
        self.control_out.extend_from_slice(&out);
        self.flush(conn);
    }

    /// A stream became readable, writable or was opened: make progress on the control
    /// stream. Returns the negotiation's outcome once it is known.
    pub fn on_stream(&mut self, conn: &mut Connection) -> Option<Outcome> {
        if self.control.is_none() && !self.is_client {
            // The client's first bidirectional stream is the control stream.
            self.control = conn.streams().accept(Dir::Bi);
        }
        let id = self.control?;
        self.flush(conn);
        if self.ready {
            return None;
        }
        if let Err(e) = read_into(conn, id, &mut self.control_in) {
            return Some(self.fail(conn, e));
        }
        let decoder = FrameDecoder::new(self.params.max_message_size);
        match decoder.decode(&mut self.control_in) {
            Ok(None) => None,
            Ok(Some(Frame::Hello(hello))) if !self.is_client => {
                match hello.negotiate(&self.params.encodings, self.params.max_message_size) {
                    Ok(welcome) => {
                        let mut out = BytesMut::new();
                        frame::put_welcome(&mut out, &welcome);
                        self.control_out.extend_from_slice(&out);
                        self.flush(conn);
                        self.ready = true;
                        // What we may send is bounded by the client's limit.
                        Some(Outcome::Ready(Welcome {
                            max_message_size: hello.max_message_size,
                            ..welcome
                        }))
                    }
                    Err(e) => Some(self.fail(conn, e)),
                }
            }
            Ok(Some(Frame::Welcome(welcome))) if self.is_client => {
                if welcome.version != PROTOCOL_VERSION
                    || !self.params.encodings.contains(&welcome.encoding)
                {
                    let e = Error::new(
                        ErrorCode::Negotiation,
                        format!(
                            "server chose {:?}, which this client did not offer",
                            welcome.encoding
                        ),
                    );
                    return Some(self.fail(conn, e));
                }
                self.ready = true;
                Some(Outcome::Ready(welcome))
            }
            Ok(Some(other)) => Some(self.fail(
                conn,
                Error::protocol(format!("unexpected {other:?} during HELLO")),
            )),
            Err(e) => Some(self.fail(conn, e)),
        }
    }

    fn fail(&mut self, conn: &mut Connection, e: Error) -> Outcome {
        let code = if e.code == ErrorCode::Negotiation {
            app_code::NEGOTIATION
        } else {
            app_code::PROTOCOL
        };
        conn.close(
            Instant::now(),
            VarInt::from_u32(code),
            e.message.clone().into_bytes().into(),
        );
        Outcome::Failed(e)
    }

    /// Writes as much pending control data as flow control allows.
    fn flush(&mut self, conn: &mut Connection) {
        let Some(id) = self.control else { return };
        while !self.control_out.is_empty() {
            match conn.send_stream(id).write(&self.control_out) {
                Ok(n) => {
                    self.control_out.drain(..n);
                }
                Err(_) => return,
            }
        }
    }
}

/// Appends whatever `id` has buffered to `buf`.
fn read_into(conn: &mut Connection, id: StreamId, buf: &mut BytesMut) -> Result<(), Error> {
    let mut stream = conn.recv_stream(id);
    let mut chunks = match stream.read(true) {
        Ok(c) => c,
        Err(_) => return Ok(()),
    };
    let result = loop {
        match chunks.next(READ_CHUNK) {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => break Ok(()),
            Err(quinn_proto::ReadError::Blocked) => break Ok(()),
            Err(quinn_proto::ReadError::Reset(code)) => {
                break Err(Error::new(
                    ErrorCode::StreamReset,
                    format!("control stream reset by the peer (code {code})"),
                ))
            }
        }
    };
    let _ = chunks.finalize();
    result
}
