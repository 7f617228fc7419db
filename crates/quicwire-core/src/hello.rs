//! The HELLO exchange. Each side's first uni stream is its control stream, and its first
//! frame there is HELLO: the protocol version, its encodings (the client's offer, most
//! preferred first; the server's accepted set) and the largest message it accepts. Neither
//! side waits for the other before sending: the server's HELLO leaves with its TLS flight
//! (0.5-RTT data), so a client knows everything when its handshake completes and sends its
//! first request with its own HELLO. Both sides run the same [`Hello::agree`] on the two
//! HELLOs and reach the same encoding without another round trip.

use crate::error::{Error, ErrorCode, Result};

/// TLS ALPN of wire protocol version 1.
pub const ALPN_V1: &[u8] = b"quicwire/1";
/// TLS ALPN of wire protocol version 2: version 1 and a request's trace context (TRACE).
pub const ALPN_V2: &[u8] = b"quicwire/2";
/// TLS ALPN of wire protocol version 3: version 2 and messages whose ACK may wait
/// (LAZY_MESSAGE).
pub const ALPN_V3: &[u8] = b"quicwire/3";
/// The ALPNs this endpoint offers (a client) or accepts (a server), newest first: the
/// handshake settles on the newest both speak, and both HELLOs carry that version.
pub const ALPNS: [&[u8]; 3] = [ALPN_V3, ALPN_V2, ALPN_V1];
/// The newest wire protocol version, the one two quicwire endpoints of this release speak.
pub const PROTOCOL_VERSION: u64 = 3;
/// The version of a WebTransport session (ALPN `h3`), where no ALPN names one: fixed, so
/// that pages and servers of different releases still agree.
pub const WEBTRANSPORT_VERSION: u64 = 2;

/// The wire protocol version of a negotiated ALPN (None: not quicwire's).
pub fn alpn_version(alpn: &[u8]) -> Option<u64> {
    match alpn {
        ALPN_V1 => Some(1),
        ALPN_V2 => Some(2),
        ALPN_V3 => Some(3),
        _ => None,
    }
}

/// How message bodies are encoded. Encoding and decoding happen at the edges (JS, or the
/// Rust caller); the transport only frames bytes, but both sides must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    Msgpack = 1,
    Json = 2,
    /// Bytes as they are: no encoding at all.
    Raw = 3,
}

impl Encoding {
    pub const ALL: [Encoding; 3] = [Encoding::Msgpack, Encoding::Json, Encoding::Raw];

    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Msgpack => "msgpack",
            Encoding::Json => "json",
            Encoding::Raw => "raw",
        }
    }

    pub fn parse(name: &str) -> Result<Encoding> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == name)
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "unknown encoding {name:?}: expected \"msgpack\", \"json\" or \"raw\""
                ))
            })
    }

    pub fn from_wire(b: u8) -> Option<Encoding> {
        Self::ALL.into_iter().find(|e| *e as u8 == b)
    }
}

/// A side's opening frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u64,
    /// A client: the encodings it can speak, most preferred first. A server: the encodings
    /// it accepts.
    pub encodings: Vec<Encoding>,
    /// The largest message body this side accepts.
    pub max_message_size: u64,
}

/// What a connection runs with, once a side has both HELLOs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The wire protocol version both speak on this connection (its ALPN's).
    pub version: u64,
    pub encoding: Encoding,
    /// The largest body the peer accepts: the limit for everything this side sends.
    pub peer_max_message_size: u64,
}

impl Hello {
    /// This endpoint's HELLO, in the newest protocol version (see [`Hello::at_version`]).
    pub fn new(encodings: Vec<Encoding>, max_message_size: u64) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            encodings,
            max_message_size,
        }
    }

    /// The same HELLO in another protocol version: the one the connection's ALPN says.
    pub fn at_version(self, version: u64) -> Hello {
        Hello { version, ..self }
    }

    /// Negotiation, run by each side on its own HELLO and the peer's: the encoding is the
    /// first of the client's list that the server accepts. A different version or no common
    /// encoding is an `ERR_NEGOTIATION` error, which closes the connection.
    pub fn agree(&self, peer: &Hello, is_client: bool) -> Result<Negotiated> {
        if peer.version != self.version {
            return Err(Error::new(
                ErrorCode::Negotiation,
                format!(
                    "peer speaks quicwire protocol version {}, this endpoint speaks {} here",
                    peer.version, self.version
                ),
            ));
        }
        let (client, server) = if is_client {
            (self, peer)
        } else {
            (peer, self)
        };
        let encoding = client
            .encodings
            .iter()
            .copied()
            .find(|e| server.encodings.contains(e))
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::Negotiation,
                    format!(
                        "no common encoding: client offers [{}], server accepts [{}]",
                        names(&client.encodings),
                        names(&server.encodings)
                    ),
                )
            })?;
        Ok(Negotiated {
            version: self.version,
            encoding,
            peer_max_message_size: peer.max_message_size,
        })
    }
}

fn names(list: &[Encoding]) -> String {
    list.iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_speak_the_version_of_their_alpn() {
        let v1 = |e| Hello::new(vec![e], 9).at_version(1);
        let agreed = v1(Encoding::Raw).agree(&v1(Encoding::Raw), true).unwrap();
        assert_eq!(agreed.version, 1);
        let newer = Hello::new(vec![Encoding::Raw], 9);
        let err = newer.agree(&v1(Encoding::Raw), true).unwrap_err();
        assert_eq!(err.code, ErrorCode::Negotiation);
        assert_eq!(alpn_version(ALPN_V1), Some(1));
        assert_eq!(alpn_version(ALPNS[0]), Some(PROTOCOL_VERSION));
        assert_eq!(alpn_version(b"h3"), None);
    }

    #[test]
    fn both_sides_pick_the_clients_first_choice_the_server_accepts() {
        let client = Hello::new(vec![Encoding::Raw, Encoding::Json, Encoding::Msgpack], 5);
        let server = Hello::new(vec![Encoding::Msgpack, Encoding::Json], 99);
        let at_client = client.agree(&server, true).unwrap();
        let at_server = server.agree(&client, false).unwrap();
        assert_eq!(at_client.encoding, Encoding::Json);
        assert_eq!(at_server.encoding, Encoding::Json);
        assert_eq!(at_client.peer_max_message_size, 99);
        assert_eq!(at_server.peer_max_message_size, 5);
    }

    #[test]
    fn rejects_no_common_encoding_and_other_versions() {
        let client = Hello::new(vec![Encoding::Raw], 1);
        let server = Hello::new(vec![Encoding::Json], 1);
        for err in [
            client.agree(&server, true).unwrap_err(),
            server.agree(&client, false).unwrap_err(),
        ] {
            assert_eq!(err.code, ErrorCode::Negotiation);
            assert!(err.message.contains("offers [raw]"), "{err}");
        }
        let mut newer = Hello::new(Encoding::ALL.to_vec(), 1);
        newer.version = 7;
        let err = Hello::new(Encoding::ALL.to_vec(), 1)
            .agree(&newer, false)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Negotiation);
        assert!(err.message.contains("version 7"), "{err}");
    }

    #[test]
    fn parses_encoding_names() {
        for e in Encoding::ALL {
            assert_eq!(Encoding::parse(e.as_str()).unwrap(), e);
            assert_eq!(Encoding::from_wire(e as u8), Some(e));
        }
        assert_eq!(
            Encoding::parse("xml").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
}
