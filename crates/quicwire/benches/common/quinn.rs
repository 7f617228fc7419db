//! quinn alone, set up as quicwire sets up its engine: the same socket sizes, TLS and
//! transport settings, for the ceiling measurements (`benches/transport.rs`,
//! `examples/ceiling.rs`) and the tests' raw peers. No quicwire protocol in here.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use quicwire::core::quic::{MAX_SEND, MAX_UDP_PAYLOAD};
use quicwire::{ClientTls, Error, ErrorCode, Result, ServerTls, TransportConfig};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, TokioRuntime, UdpPoller};

/// An endpoint on a fresh socket bound to `addr` (dual-stack when it is IPv6), serving when
/// given a server config. It accepts datagrams of up to [`MAX_UDP_PAYLOAD`] bytes.
pub fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    // quicwire's socket: a client's wildcard socket reaches IPv4 hosts too; a server binds
    // what it was told.
    let socket = quicwire::core::udp::bind(addr, server.is_none())?;
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(|e| io::Error::other(e.to_string()))?;
    quinn::Endpoint::new(config, server, socket, Arc::new(LargeDatagrams))
}

/// tokio, with sockets wrapped in [`Batched`].
#[derive(Debug)]
struct LargeDatagrams;

impl Runtime for LargeDatagrams {
    fn new_timer(&self, i: Instant) -> Pin<Box<dyn AsyncTimer>> {
        TokioRuntime.new_timer(i)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        TokioRuntime.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(Batched(TokioRuntime.wrap_udp_socket(socket)?)))
    }
}

/// quinn batches up to 10 packets of the path MTU into one GSO send. With packets larger
/// than 6.5 KiB (loopback, jumbo frames) that is more than one UDP send can carry, and the
/// kernel would refuse the whole batch: so it goes out in as many sends as it needs, each of
/// whole packets. Receive buffers are sized for one GRO batch (at most 64 KiB) per slot
/// rather than 64 largest datagrams.
struct Batched(Arc<dyn AsyncUdpSocket>);

impl fmt::Debug for Batched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl AsyncUdpSocket for Batched {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.0.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Some(segment) = transmit.segment_size else {
            return self.0.try_send(transmit);
        };
        if transmit.contents.len() <= MAX_SEND || segment > MAX_SEND {
            return self.0.try_send(transmit);
        }
        // If the socket fills up part way, quinn sends the whole batch again later; the
        // packets that already went are then duplicates, which the peer discards.
        for contents in transmit.contents.chunks(MAX_SEND / segment * segment) {
            self.0.try_send(&Transmit {
                contents,
                ..*transmit
            })?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.0.max_transmit_segments()
    }

    /// quinn sizes each receive slot as this many datagrams of the endpoint's largest size;
    /// one GRO batch is at most 64 KiB whatever its datagrams' size.
    fn max_receive_segments(&self) -> usize {
        self.0
            .max_receive_segments()
            .min((MAX_SEND + 28).div_ceil(usize::from(MAX_UDP_PAYLOAD)))
    }

    fn may_fragment(&self) -> bool {
        self.0.may_fragment()
    }
}

/// quinn's client side with quicwire's TLS and transport settings, for a path that is not
/// loopback (a loopback connection swaps in `transport_config(transport, true)`).
pub fn quinn_client_config(
    tls: &ClientTls,
    transport: &TransportConfig,
) -> Result<quinn::ClientConfig> {
    let tls = quicwire::tls::client_config(tls, Vec::new)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| Error::new(ErrorCode::Tls, e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(quicwire::core::quic::transport_config(transport, false)?);
    Ok(config)
}

/// quinn's server side with quicwire's TLS and transport settings, for a path that is not
/// loopback (a loopback connection swaps in `transport_config(transport, true)`).
pub fn quinn_server_config(
    tls: &ServerTls,
    transport: &TransportConfig,
) -> Result<quinn::ServerConfig> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(quicwire::tls::server_config(tls)?)
            .map_err(|e| Error::new(ErrorCode::Tls, e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(quicwire::core::quic::transport_config(transport, false)?);
    Ok(config)
}
