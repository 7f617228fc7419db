//! The one error type of quicwire. Every failure carries a stable [`ErrorCode`] (the `code`
//! JavaScript sees) and a message for people with the context (host:port, sizes, stream ids).

use std::fmt;

/// Stable error codes. The string form is part of the public API of every binding; the
/// numeric form travels in ERROR frames and close reasons. Never renumber, only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    Internal = 0,
    InvalidArgument = 1,
    ConnectTimeout = 2,
    Tls = 3,
    ConnectionClosed = 4,
    StreamReset = 5,
    MessageTooLarge = 6,
    Decode = 7,
    Encode = 8,
    Timeout = 9,
    FlowControlPaused = 10,
    PoolExhausted = 11,
    NotInitialized = 12,
    BackendUnavailable = 13,
    Remote = 14,
    Protocol = 15,
    Negotiation = 16,
    Io = 17,
    NoResponders = 18,
    NameTaken = 19,
    Aborted = 20,
}

impl ErrorCode {
    /// Every code, indexed by its numeric value.
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::Internal,
        ErrorCode::InvalidArgument,
        ErrorCode::ConnectTimeout,
        ErrorCode::Tls,
        ErrorCode::ConnectionClosed,
        ErrorCode::StreamReset,
        ErrorCode::MessageTooLarge,
        ErrorCode::Decode,
        ErrorCode::Encode,
        ErrorCode::Timeout,
        ErrorCode::FlowControlPaused,
        ErrorCode::PoolExhausted,
        ErrorCode::NotInitialized,
        ErrorCode::BackendUnavailable,
        ErrorCode::Remote,
        ErrorCode::Protocol,
        ErrorCode::Negotiation,
        ErrorCode::Io,
        ErrorCode::NoResponders,
        ErrorCode::NameTaken,
        ErrorCode::Aborted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Internal => "ERR_INTERNAL",
            ErrorCode::InvalidArgument => "ERR_INVALID_ARGUMENT",
            ErrorCode::ConnectTimeout => "ERR_CONNECT_TIMEOUT",
            ErrorCode::Tls => "ERR_TLS",
            ErrorCode::ConnectionClosed => "ERR_CONNECTION_CLOSED",
            ErrorCode::StreamReset => "ERR_STREAM_RESET",
            ErrorCode::MessageTooLarge => "ERR_MESSAGE_TOO_LARGE",
            ErrorCode::Decode => "ERR_DECODE",
            ErrorCode::Encode => "ERR_ENCODE",
            ErrorCode::Timeout => "ERR_TIMEOUT",
            ErrorCode::FlowControlPaused => "ERR_FLOW_CONTROL_PAUSED",
            ErrorCode::PoolExhausted => "ERR_POOL_EXHAUSTED",
            ErrorCode::NotInitialized => "ERR_NOT_INITIALIZED",
            ErrorCode::BackendUnavailable => "ERR_BACKEND_UNAVAILABLE",
            ErrorCode::Remote => "ERR_REMOTE",
            ErrorCode::Protocol => "ERR_PROTOCOL",
            ErrorCode::Negotiation => "ERR_NEGOTIATION",
            ErrorCode::Io => "ERR_IO",
            ErrorCode::NoResponders => "ERR_NO_RESPONDERS",
            ErrorCode::NameTaken => "ERR_NAME_TAKEN",
            ErrorCode::Aborted => "ERR_ABORTED",
        }
    }

    /// The code for a number read off the wire; unknown numbers become `Remote`, so a newer
    /// peer's code never breaks an older one.
    pub fn from_wire(n: u64) -> ErrorCode {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(ErrorCode::Remote)
    }

    pub const fn to_wire(self) -> u64 {
        self as u16 as u64
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quicwire failure: a stable code plus a message with context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Protocol, message)
    }

    /// A peer's request stream did not deliver its whole request within `timeout_ms`.
    pub fn request_not_received(peer: &str, timeout_ms: u128) -> Self {
        Self::new(
            ErrorCode::Timeout,
            format!("request from {peer} not received within {timeout_ms} ms"),
        )
    }

    pub fn closed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ConnectionClosed, message)
    }

    pub fn too_large(size: u64, limit: u64) -> Self {
        Self::new(
            ErrorCode::MessageTooLarge,
            format!("message of {size} bytes exceeds maxMessageSize of {limit} bytes"),
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// QUIC application error codes used to reset streams and close connections.
pub mod app_code {
    /// Normal close.
    pub const NO_ERROR: u32 = 0;
    /// The peer broke the wire protocol (malformed frame, unexpected kind).
    pub const PROTOCOL: u32 = 1;
    /// A frame exceeded the receiver's maxMessageSize.
    pub const MESSAGE_TOO_LARGE: u32 = 2;
    /// HELLO negotiation failed (version or encoding).
    pub const NEGOTIATION: u32 = 3;
    /// The sender gave up on a request (timeout, cancel).
    pub const CANCELLED: u32 = 4;
    /// The endpoint is shutting down.
    pub const SHUTDOWN: u32 = 5;
    /// The idle pool evicted the connection.
    pub const EVICTED: u32 = 6;

    use super::{Error, ErrorCode};

    /// The code to stop or reset a stream with when reading it failed with `e`.
    pub fn for_stream_error(e: &Error) -> u32 {
        if e.code == ErrorCode::MessageTooLarge {
            MESSAGE_TOO_LARGE
        } else {
            PROTOCOL
        }
    }

    /// What it means when `peer` stopped or reset a stream with `code`.
    pub fn stream_error(code: u64, peer: &str) -> Error {
        if code == u64::from(MESSAGE_TOO_LARGE) {
            return Error::new(
                ErrorCode::MessageTooLarge,
                format!("{peer} rejected a frame over its maxMessageSize"),
            );
        }
        Error::new(
            ErrorCode::StreamReset,
            format!("{peer} reset the stream (application code {code})"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_wire() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.to_wire(), i as u64);
            assert_eq!(ErrorCode::from_wire(code.to_wire()), *code);
            assert!(code.as_str().starts_with("ERR_"));
        }
        assert_eq!(ErrorCode::from_wire(9999), ErrorCode::Remote);
    }
}
