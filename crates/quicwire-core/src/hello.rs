//! The HELLO handshake on the control stream: the client offers a protocol version, the
//! encodings it can speak (in order of preference) and the largest message it accepts; the
//! server answers WELCOME with the one encoding both speak and its own limit.

use crate::error::{Error, ErrorCode, Result};

/// TLS ALPN of wire protocol v1.
pub const ALPN: &[u8] = b"quicwire/1";
/// Wire protocol version carried in HELLO.
pub const PROTOCOL_VERSION: u64 = 1;

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

/// The client's opening frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u64,
    /// Encodings the client can speak, most preferred first.
    pub encodings: Vec<Encoding>,
    /// The largest message body the client accepts.
    pub max_message_size: u64,
}

/// The server's answer to a HELLO it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    pub version: u64,
    pub encoding: Encoding,
    /// The largest message body the server accepts.
    pub max_message_size: u64,
}

impl Hello {
    /// The server's side of the negotiation: the first encoding of the client's list that
    /// the server accepts. A different version or no common encoding is an
    /// `ERR_NEGOTIATION` error, which closes the connection.
    pub fn negotiate(&self, accepted: &[Encoding], max_message_size: u64) -> Result<Welcome> {
        if self.version != PROTOCOL_VERSION {
            return Err(Error::new(
                ErrorCode::Negotiation,
                format!(
                    "peer speaks quicwire protocol version {}, this endpoint speaks {PROTOCOL_VERSION}",
                    self.version
                ),
            ));
        }
        let encoding = self
            .encodings
            .iter()
            .copied()
            .find(|e| accepted.contains(e))
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::Negotiation,
                    format!(
                        "no common encoding: client offers [{}], server accepts [{}]",
                        names(&self.encodings),
                        names(accepted)
                    ),
                )
            })?;
        Ok(Welcome {
            version: PROTOCOL_VERSION,
            encoding,
            max_message_size,
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

    fn hello(encodings: Vec<Encoding>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            encodings,
            max_message_size: 1024,
        }
    }

    #[test]
    fn picks_the_clients_first_choice_the_server_accepts() {
        let w = hello(vec![Encoding::Raw, Encoding::Json])
            .negotiate(&[Encoding::Json, Encoding::Msgpack], 99)
            .unwrap();
        assert_eq!(w.encoding, Encoding::Json);
        assert_eq!(w.max_message_size, 99);
    }

    #[test]
    fn rejects_no_common_encoding_and_other_versions() {
        let err = hello(vec![Encoding::Raw])
            .negotiate(&[Encoding::Json], 1)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Negotiation);
        assert!(err.message.contains("raw"), "{err}");
        let mut h = hello(vec![Encoding::Json]);
        h.version = 7;
        assert_eq!(
            h.negotiate(&Encoding::ALL, 1).unwrap_err().code,
            ErrorCode::Negotiation
        );
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
