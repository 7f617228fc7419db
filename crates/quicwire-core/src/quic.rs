//! How a QUIC connection ended, as a quicwire error: the same codes on every backend.

use quinn_proto::{ConnectionError, TransportErrorCode};

use crate::{app_code, Error, ErrorCode};

/// Maps why a QUIC connection ended to a quicwire error.
pub fn connection_error(e: &ConnectionError, peer: &str) -> Error {
    use ConnectionError as C;
    let is_crypto = |code: TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match e {
        C::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            if close.error_code.into_inner() == u64::from(app_code::NEGOTIATION) {
                Error::new(
                    ErrorCode::Negotiation,
                    format!("{peer} refused the HELLO: {reason}"),
                )
            } else {
                Error::closed(format!("{peer} closed the connection ({reason})"))
            }
        }
        C::TransportError(t) if is_crypto(t.code) => Error::new(
            ErrorCode::Tls,
            format!("TLS handshake with {peer} failed: {t}"),
        ),
        C::ConnectionClosed(c) if is_crypto(c.error_code) => Error::new(
            ErrorCode::Tls,
            format!("{peer} rejected the TLS handshake: {c}"),
        ),
        C::ConnectionClosed(c) if c.error_code == TransportErrorCode::CONNECTION_REFUSED => {
            Error::closed(format!(
                "{peer} refused the connection (it is at its connection limit)"
            ))
        }
        C::LocallyClosed => Error::closed(format!("connection to {peer} was closed")),
        C::TimedOut => Error::closed(format!("connection to {peer} timed out (peer silent)")),
        C::Reset => Error::closed(format!("{peer} reset the connection")),
        other => Error::closed(format!("connection to {peer} failed: {other}")),
    }
}
