//! Which new connections a server lets in: a cap on open connections, a cap per client IP
//! address, and (optionally) address validation with retry tokens first. The runtimes ask
//! [`Admission::admit`] for every incoming connection and call [`Admission::release`] when
//! an admitted one ends, so a connection flood costs a refusal packet, not a handshake.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// A server's admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most connections open (or handshaking) at once (default 10,000).
    pub max_connections: u32,
    /// Most connections from one IP address (default 1,000).
    pub max_connections_per_ip: u32,
    /// Make every client prove its address with a retry token before the handshake (one
    /// extra round trip; default off).
    pub validate_addresses: bool,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            validate_addresses: false,
        }
    }
}

impl ServerLimits {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("maxConnections", self.max_connections),
            ("maxConnectionsPerIp", self.max_connections_per_ip),
        ] {
            if !(1..=1 << 24).contains(&v) {
                return Err(Error::invalid_argument(format!(
                    "{name} must be between 1 and {}, got {v}",
                    1 << 24
                )));
            }
        }
        Ok(())
    }
}

/// What to do with one incoming connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Ask the client to come back with a retry token (its address is not yet validated).
    Retry,
    /// Refuse it (QUIC CONNECTION_REFUSED): the server or this address is at its limit.
    Refuse,
}

/// Counts admitted connections, in total and per IP address.
#[derive(Debug, Default)]
pub struct Admission {
    limits: ServerLimits,
    open: u32,
    per_ip: HashMap<IpAddr, u32>,
    refused: u64,
    retried: u64,
}

impl Admission {
    pub fn new(limits: ServerLimits) -> Self {
        Admission {
            limits,
            ..Default::default()
        }
    }

    /// Decides for a connection from `ip`. `validated` says whether the client already
    /// proved its address (its Initial carried our retry token). On `Accept` the
    /// connection is counted until [`Self::release`].
    pub fn admit(&mut self, ip: IpAddr, validated: bool) -> Decision {
        if self.limits.validate_addresses && !validated {
            self.retried += 1;
            return Decision::Retry;
        }
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if self.open >= self.limits.max_connections || from_ip >= self.limits.max_connections_per_ip
        {
            self.refused += 1;
            return Decision::Refuse;
        }
        self.open += 1;
        self.per_ip.insert(ip, from_ip + 1);
        Decision::Accept
    }

    /// An admitted connection from `ip` ended (or its handshake failed).
    pub fn release(&mut self, ip: IpAddr) {
        self.open = self.open.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Connections admitted and not yet released.
    pub fn open(&self) -> u32 {
        self.open
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Clients sent to prove their address since start.
    pub fn retried(&self) -> u64 {
        self.retried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_total_and_per_ip_and_frees_on_release() {
        let mut a = Admission::new(ServerLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
            validate_addresses: false,
        });
        assert_eq!(a.admit(ip("10.0.0.1"), false), Decision::Accept);
        assert_eq!(a.admit(ip("10.0.0.1"), false), Decision::Accept);
        assert_eq!(a.admit(ip("10.0.0.1"), false), Decision::Refuse);
        assert_eq!(a.admit(ip("10.0.0.2"), false), Decision::Accept);
        assert_eq!(a.admit(ip("10.0.0.3"), false), Decision::Refuse);
        assert_eq!((a.open(), a.refused()), (3, 2));
        a.release(ip("10.0.0.1"));
        assert_eq!(a.admit(ip("10.0.0.3"), false), Decision::Accept);
        a.release(ip("10.0.0.2"));
        a.release(ip("10.0.0.3"));
        a.release(ip("10.0.0.1"));
        assert_eq!(a.open(), 0);
        assert!(a.per_ip.is_empty(), "no entry outlives its connections");
    }

    #[test]
    fn unvalidated_addresses_are_sent_to_retry_first() {
        let mut a = Admission::new(ServerLimits {
            validate_addresses: true,
            ..Default::default()
        });
        assert_eq!(a.admit(ip("::1"), false), Decision::Retry);
        assert_eq!(a.open(), 0, "a retry admits nothing yet");
        assert_eq!(a.admit(ip("::1"), true), Decision::Accept);
    }

    #[test]
    fn limits_are_validated() {
        assert!(ServerLimits::default().validate().is_ok());
        let zero = ServerLimits {
            max_connections_per_ip: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
    }
}
