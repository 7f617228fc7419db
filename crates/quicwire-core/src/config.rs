//! Validated settings shared by clients and servers. Every binding builds one of these from
//! its options and calls `validate`, so a bad option fails the same way on every backend.

use crate::error::{Error, Result};

/// Knobs of one endpoint. Times are milliseconds; 0 is never a valid time here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest message, request or response body this endpoint accepts (default 1 MiB).
    pub max_message_size: u64,
    /// Concurrent bidirectional streams (requests) the peer may open (default 1000).
    pub max_concurrent_streams: u32,
    /// Client pool: close a connection unused for this long (default 30 s).
    pub idle_timeout_ms: u64,
    /// Give up a handshake after this long with ERR_CONNECT_TIMEOUT (default 5 s).
    pub connect_timeout_ms: u64,
    /// Default `request` timeout (default 30 s).
    pub request_timeout_ms: u64,
    /// Client pool: most connections open at once (default 64).
    pub max_connections: u32,
    /// QUIC keep-alive interval; the QUIC idle timeout is three of these (default 5 s).
    pub keep_alive_ms: u64,
    /// Message bytes per connection the peer has not acknowledged before sends wait, and
    /// as many again waiting before sends fail with ERR_FLOW_CONTROL_PAUSED (default 8 MiB).
    pub send_buffer_high: u64,
    /// The congestion controller of this endpoint's connections (default CUBIC).
    pub congestion_control: CongestionControl,
    /// Report each connection's TLS secrets as key log lines (the `SSLKEYLOGFILE` format),
    /// so that a packet capture can be decrypted. Off by default: anyone with the lines
    /// can read the traffic.
    pub key_log: bool,
    /// Trace each connection in qlog (JSON-SEQ), for qvis and other QUIC tools. Native
    /// builds only.
    pub qlog: bool,
    /// 0-RTT. A server takes 0-RTT data from clients resuming a session; a client resuming
    /// with such a server is ready at once and sends its HELLO and its idempotent requests
    /// as 0-RTT data, everything else after the handshake. Early data can be replayed by an
    /// attacker, so a server's handlers are told which requests came early. Off by default.
    pub early_data: bool,
}

/// Congestion controllers (quinn-proto's): how fast a connection may send into the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionControl {
    /// CUBIC (RFC 9438): loss-based, the default of Linux TCP and of quinn.
    #[default]
    Cubic,
    /// NewReno (RFC 9002's controller): loss-based, halves on loss.
    NewReno,
    /// BBR (v1, quinn's experimental one): models bandwidth and RTT instead of reacting
    /// to loss, so random loss cuts its rate less.
    Bbr,
}

impl CongestionControl {
    pub const ALL: [CongestionControl; 3] = [
        CongestionControl::Cubic,
        CongestionControl::NewReno,
        CongestionControl::Bbr,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            CongestionControl::Cubic => "cubic",
            CongestionControl::NewReno => "newreno",
            CongestionControl::Bbr => "bbr",
        }
    }

    pub fn parse(name: &str) -> Result<CongestionControl> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "unknown congestionControl {name:?}: expected \"cubic\", \"newreno\" or \"bbr\""
                ))
            })
    }
}

pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1 << 20;
pub const DEFAULT_SEND_BUFFER_HIGH: u64 = 8 << 20;
/// Hard ceiling for maxMessageSize: one message is never more than 1 GiB.
pub const MAX_MESSAGE_SIZE_CEILING: u64 = 1 << 30;
/// Message lanes a connection may open on each side: one per send priority in use, each its
/// own channel stream (order holds within a lane, not across lanes).
pub const MAX_LANES: u32 = 8;

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_concurrent_streams: 1000,
            idle_timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_connections: 64,
            keep_alive_ms: 5_000,
            send_buffer_high: DEFAULT_SEND_BUFFER_HIGH,
            congestion_control: CongestionControl::default(),
            key_log: false,
            early_data: false,
            qlog: false,
        }
    }
}

impl TransportConfig {
    pub fn validate(&self) -> Result<()> {
        range(
            "maxMessageSize",
            self.max_message_size,
            1,
            MAX_MESSAGE_SIZE_CEILING,
        )?;
        range(
            "maxConcurrentStreams",
            self.max_concurrent_streams.into(),
            1,
            1 << 20,
        )?;
        let day = 24 * 3600 * 1000;
        range("idleTimeoutMs", self.idle_timeout_ms, 1, day)?;
        range("connectTimeoutMs", self.connect_timeout_ms, 1, day)?;
        range("requestTimeoutMs", self.request_timeout_ms, 1, day)?;
        range("maxConnections", self.max_connections.into(), 1, 1 << 20)?;
        range("keepAliveMs", self.keep_alive_ms, 1, day)?;
        range("sendBufferHigh", self.send_buffer_high, 1024, 1 << 40)?;
        Ok(())
    }
}

fn range(name: &str, v: u64, min: u64, max: u64) -> Result<()> {
    if v < min || v > max {
        return Err(Error::invalid_argument(format!(
            "{name} must be between {min} and {max}, got {v}"
        )));
    }
    Ok(())
}

/// Checks a port to listen on (0 asks for an ephemeral one) or to connect to (never 0).
pub fn validate_port(port: i64, listening: bool) -> Result<u16> {
    let min = if listening { 0 } else { 1 };
    if port < min || port > 65_535 {
        return Err(Error::invalid_argument(format!(
            "port must be an integer between {min} and 65535, got {port}"
        )));
    }
    Ok(port as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn defaults_are_valid() {
        TransportConfig::default().validate().unwrap();
    }

    #[test]
    fn out_of_range_values_name_the_option() {
        let cfg = TransportConfig {
            max_message_size: 0,
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("maxMessageSize"), "{err}");
        let cfg = TransportConfig {
            max_connections: 0,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .message
            .contains("maxConnections"));
    }

    #[test]
    fn ports() {
        assert_eq!(validate_port(0, true).unwrap(), 0);
        assert!(validate_port(0, false).is_err());
        assert!(validate_port(65_536, true).is_err());
        assert!(validate_port(-1, true).is_err());
        assert_eq!(validate_port(443, false).unwrap(), 443);
    }
}

/// Request streams a connection is credited with at first. Every credited stream costs the
/// connection a slot in quinn (about 80 bytes each way), so an idle connection with the
/// full `max_concurrent_streams` of 1000 weighs ~80 KiB more; credit instead grows with use.
pub const INITIAL_STREAM_CREDIT: u32 = 32;

/// The request-stream limit a connection starts with.
pub fn initial_stream_credit(max: u32) -> u32 {
    max.min(INITIAL_STREAM_CREDIT)
}

/// The raised limit once `open` requests are in progress under `limit`: doubled when half
/// is in use, never above `max`. `None` while there is room.
pub fn grown_stream_credit(limit: u32, open: u64, max: u32) -> Option<u32> {
    if limit >= max || open.saturating_mul(2) < u64::from(limit) {
        return None;
    }
    Some(limit.saturating_mul(2).min(max))
}

#[cfg(test)]
mod stream_credit_tests {
    use super::*;

    #[test]
    fn credit_starts_small_and_doubles_up_to_the_limit() {
        assert_eq!(initial_stream_credit(1000), 32);
        assert_eq!(initial_stream_credit(8), 8);
        assert_eq!(grown_stream_credit(32, 15, 1000), None);
        assert_eq!(grown_stream_credit(32, 16, 1000), Some(64));
        assert_eq!(grown_stream_credit(512, 300, 1000), Some(1000));
        assert_eq!(grown_stream_credit(1000, 1000, 1000), None);
    }
}
