//! JavaScript option objects and their conversion into the crate's configs. Types are
//! checked by the TypeScript facade; ranges by `quicwire-core` (`TransportConfig::validate`).

use napi_derive::napi;
use quicwire::{
    ClientConfig, ClientTls, Encoding, Result, ServerConfig, ServerLimits, ServerTls,
    TransportConfig,
};

#[napi(object)]
#[derive(Debug, Default)]
pub struct TransportOptions {
    pub max_message_size: Option<f64>,
    pub max_concurrent_streams: Option<u32>,
    pub idle_timeout_ms: Option<f64>,
    pub connect_timeout_ms: Option<f64>,
    pub request_timeout_ms: Option<f64>,
    pub max_connections: Option<u32>,
    pub keep_alive_ms: Option<f64>,
}

#[napi(object)]
#[derive(Debug, Default)]
pub struct ClientOptions {
    pub transport: TransportOptions,
    /// Trusted CA certificates (PEM); system roots when absent.
    pub ca: Option<String>,
    pub insecure: Option<bool>,
    /// Encodings to offer, preferred first.
    pub encodings: Vec<String>,
}

#[napi(object)]
#[derive(Debug, Default)]
pub struct ServerOptions {
    pub transport: TransportOptions,
    pub host: String,
    pub port: u32,
    pub cert: String,
    pub key: String,
    pub encodings: Vec<String>,
    /// Connections open at once (server-wide).
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub validate_addresses: Option<bool>,
}

fn transport(o: &TransportOptions) -> Result<TransportConfig> {
    let d = TransportConfig::default();
    let cfg = TransportConfig {
        max_message_size: o.max_message_size.map_or(d.max_message_size, |v| v as u64),
        max_concurrent_streams: o.max_concurrent_streams.unwrap_or(d.max_concurrent_streams),
        idle_timeout_ms: o.idle_timeout_ms.map_or(d.idle_timeout_ms, |v| v as u64),
        connect_timeout_ms: o
            .connect_timeout_ms
            .map_or(d.connect_timeout_ms, |v| v as u64),
        request_timeout_ms: o
            .request_timeout_ms
            .map_or(d.request_timeout_ms, |v| v as u64),
        max_connections: o.max_connections.unwrap_or(d.max_connections),
        keep_alive_ms: o.keep_alive_ms.map_or(d.keep_alive_ms, |v| v as u64),
    };
    cfg.validate()?;
    Ok(cfg)
}

fn encodings(names: &[String], default: &[Encoding]) -> Result<Vec<Encoding>> {
    if names.is_empty() {
        return Ok(default.to_vec());
    }
    names.iter().map(|n| Encoding::parse(n)).collect()
}

pub fn client_config(o: &ClientOptions) -> Result<ClientConfig> {
    Ok(ClientConfig {
        transport: transport(&o.transport)?,
        tls: ClientTls {
            ca: o.ca.clone(),
            insecure: o.insecure.unwrap_or(false),
        },
        encodings: encodings(&o.encodings, &[Encoding::Msgpack])?,
    })
}

pub fn server_config(o: &ServerOptions) -> Result<ServerConfig> {
    Ok(ServerConfig {
        transport: transport(&o.transport)?,
        tls: ServerTls {
            cert: o.cert.clone(),
            key: o.key.clone(),
        },
        encodings: encodings(&o.encodings, &Encoding::ALL)?,
        limits: server_limits(o),
    })
}

fn server_limits(o: &ServerOptions) -> ServerLimits {
    let d = ServerLimits::default();
    ServerLimits {
        max_connections: o.max_connections.unwrap_or(d.max_connections),
        max_connections_per_ip: o.max_connections_per_ip.unwrap_or(d.max_connections_per_ip),
        validate_addresses: o.validate_addresses.unwrap_or(d.validate_addresses),
    }
}
