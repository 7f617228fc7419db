//! TLS 1.3 for quicwire over rustls with the ring provider: verification on by default (a CA
//! in PEM, or the system roots), `insecure` only when asked for, and dev certificates.
//! Pure configuration: the caller supplies system roots (reading them is I/O).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sync::lock;
use crate::{Error, ErrorCode, Result, ALPNS};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue, WebPkiServerVerifier,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ServerSessionMemoryCache;
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Trusted CA certificates in PEM. `None` means the system roots.
    pub ca: Option<String>,
    /// Accept any certificate. Only for development; bindings warn once per process.
    pub insecure: bool,
}

/// A server's certificate chain and private key, in PEM.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: String,
    pub key: String,
}

/// A self-signed certificate for local development (valid for the names given).
#[derive(Debug, Clone)]
pub struct DevCert {
    /// Certificate in PEM: give it to the server as `cert` and to clients as `ca`.
    pub cert: String,
    /// Private key in PEM (PKCS#8).
    pub key: String,
    /// SHA-256 of the certificate (DER), in hex: what a browser's WebTransport takes in
    /// `serverCertificateHashes` instead of a CA.
    pub hash: String,
}

/// When a development certificate is valid: from `from_unix` (seconds since 1970) for
/// `days`. Browsers take a certificate by its hash only when it is valid for 14 days at
/// most; without a validity it never expires.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub from_unix: i64,
    pub days: u32,
}

/// Whether this build should prefer ChaCha20-Poly1305: WebAssembly has no AES instructions,
/// and ring's constant-time software AES-GCM took about 15 % of the wasm engine's CPU in a
/// profile of the small-messages benchmark. ChaCha20 is fast in plain code. Native builds
/// put AES-128-GCM-SHA256 first (ring's default is AES-256-GCM-SHA384): hardware AES with
/// 10 rounds instead of 14, and SHA-256 for the handshake, which x86 and ARM CPUs have
/// instructions for (SHA-384 often runs in plain code). Criterion: new connections 6 %
/// faster, 64 B messages 10 % and bulk 14 % more.
const PREFER_CHACHA: bool = cfg!(target_family = "wasm");

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    let first = if PREFER_CHACHA {
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    } else {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    };
    // Stable sort: `first`, then the rest in ring's order. Servers follow the client's
    // order, so a wasm client gets ChaCha20 from a native server too.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != first);
    Arc::new(provider)
}

fn tls_error(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::Tls, message)
}

/// Generates a self-signed certificate (ECDSA P-256) for `names` (DNS names or IP
/// addresses).
pub fn generate_dev_cert(names: &[String], validity: Option<Validity>) -> Result<DevCert> {
    if names.is_empty() {
        return Err(Error::invalid_argument(
            "generateDevCert needs at least one name, e.g. [\"localhost\", \"127.0.0.1\"]",
        ));
    }
    let unusable = |e: rcgen::Error| {
        Error::invalid_argument(format!("cannot make a certificate for {names:?}: {e}"))
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(unusable)?;
    if let Some(Validity { from_unix, days }) = validity {
        let from = time::OffsetDateTime::from_unix_timestamp(from_unix).map_err(|e| {
            Error::invalid_argument(format!("a certificate cannot start then: {e}"))
        })?;
        params.not_before = from;
        params.not_after = from + time::Duration::days(i64::from(days));
    }
    let key = rcgen::KeyPair::generate().map_err(unusable)?;
    let cert = params.self_signed(&key).map_err(unusable)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
    let hash = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(DevCert {
        cert: cert.pem(),
        key: key.serialize_pem(),
        hash,
    })
}

fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid_argument(format!("{what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid_argument(format!(
            "{what} holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

/// Builds the client configuration; `system_roots` is asked for only when no `ca` is given.
pub fn client_config(
    tls: &ClientTls,
    system_roots: impl FnOnce() -> Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error(e.to_string()))?;
    let mut config = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca {
            Some(pem) => {
                for cert in parse_certs(pem, "ca")? {
                    roots.add(cert).map_err(|e| {
                        Error::invalid_argument(format!("ca: unusable certificate: {e}"))
                    })?;
                }
            }
            None => {
                roots.add_parsable_certificates(system_roots());
            }
        }
        if roots.is_empty() {
            // Nothing to trust (no CA given, no system roots here): every handshake fails
            // with ERR_TLS, as it should, rather than the client failing to be made.
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| tls_error(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(RecentChains::new(webpki)))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = ALPNS.iter().map(|a| a.to_vec()).collect();
    Ok(config)
}

/// A client's TLS setup for its dials. TLS 1.3 session tickets are kept per server name
/// *and port*, as browsers key their session caches: servers on one host at different
/// ports each resume with tickets of their own, where keyed by name alone they would be
/// handed each other's tickets and fall back to full handshakes.
#[derive(Debug, Clone)]
pub struct ClientCrypto {
    config: rustls::ClientConfig,
    tickets: Arc<Tickets>,
}

impl ClientCrypto {
    /// See [`client_config`].
    pub fn new(
        tls: &ClientTls,
        system_roots: impl FnOnce() -> Vec<CertificateDer<'static>>,
    ) -> Result<ClientCrypto> {
        let mut config = client_config(tls, system_roots)?;
        // Each dial gets its port's store (`for_port`); rustls' default one would sit unused.
        config.resumption = Resumption::disabled();
        Ok(ClientCrypto {
            config,
            tickets: Arc::new(Tickets::default()),
        })
    }

    /// Sends 0-RTT data when resuming with a server that takes it.
    pub fn enable_early_data(&mut self) {
        self.config.enable_early_data = true;
    }

    /// Logs the TLS secrets of every connection to `lines`.
    pub fn log_keys(&mut self, lines: Arc<KeyLogLines>) {
        self.config.key_log = lines;
    }

    /// The configuration for a dial to `port`: it resumes with, and keeps, that port's tickets.
    pub fn for_port(&self, port: u16) -> rustls::ClientConfig {
        let mut config = self.config.clone();
        let tickets = self.tickets.clone();
        config.resumption = Resumption::store(Arc::new(PortTickets { port, tickets }));
        config
    }
}

/// How many servers' tickets a client keeps (the least recently added forgotten first), and
/// how many tickets per server (servers send two after each handshake; each is used once).
const TICKET_SERVERS: usize = 256;
const TICKETS_PER_SERVER: usize = 8;

type ServerKey = (ServerName<'static>, u16);

/// A client's session tickets, by server name and port.
struct Tickets {
    by_server: Mutex<TicketTable>,
    /// Key-exchange hints (and TLS 1.2 sessions, which a TLS 1.3 client never makes): by name.
    by_name: ClientSessionMemoryCache,
}

#[derive(Default)]
struct TicketTable {
    tickets: HashMap<ServerKey, VecDeque<Tls13ClientSessionValue>>,
    /// The servers in the order they were first added, to forget the oldest.
    order: VecDeque<ServerKey>,
}

impl Default for Tickets {
    fn default() -> Self {
        Tickets {
            by_server: Mutex::default(),
            by_name: ClientSessionMemoryCache::new(TICKET_SERVERS),
        }
    }
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets").finish_non_exhaustive()
    }
}

/// Plain data stays valid whatever a panicking holder of the lock left behind.
/// One port's view of a client's tickets: what rustls sees for a dial.
#[derive(Debug)]
struct PortTickets {
    port: u16,
    tickets: Arc<Tickets>,
}

impl ClientSessionStore for PortTickets {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.tickets.by_name.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.tickets.by_name.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.tickets.by_name.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.tickets.by_name.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.tickets.by_name.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let mut table = lock(&self.tickets.by_server);
        let TicketTable { tickets, order } = &mut *table;
        let key = (server_name, self.port);
        if !tickets.contains_key(&key) {
            if order.len() == TICKET_SERVERS {
                if let Some(oldest) = order.pop_front() {
                    tickets.remove(&oldest);
                }
            }
            order.push_back(key.clone());
        }
        let tickets = tickets.entry(key).or_default();
        if tickets.len() == TICKETS_PER_SERVER {
            tickets.pop_front();
        }
        tickets.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let key = (server_name.clone(), self.port);
        let mut table = lock(&self.tickets.by_server);
        table.tickets.get_mut(&key).and_then(VecDeque::pop_back)
    }
}

/// Builds the rustls server configuration from a PEM chain and key.
pub fn server_config(tls: &ServerTls) -> Result<rustls::ServerConfig> {
    let certs = parse_certs(&tls.cert, "cert")?;
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes())
        .map_err(|e| Error::invalid_argument(format!("key is not a valid PEM private key: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::invalid_argument(format!("cert and key do not make a usable pair: {e}"))
        })?;
    config.alpn_protocols = ALPNS.iter().map(|a| a.to_vec()).collect();
    // Stateless tickets (the session sealed under a key that rotates every 6 hours): any
    // number of clients can resume, with no session table on the server.
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| tls_error(e.to_string()))?;
    // 0-RTT is off unless the server asks for it ([`allow_early_data`]).
    config.max_early_data_size = 0;
    // A wasm server picks from its own order (ChaCha20 first) even for AES-first clients.
    config.ignore_client_order = PREFER_CHACHA;
    Ok(config)
}

/// Sessions a server taking 0-RTT data keeps for clients to resume.
const EARLY_SESSIONS: usize = 8192;

/// Lets clients resuming a session send 0-RTT data. rustls takes early data only on
/// sessions the server keeps itself, not on stateless tickets: the server keeps up to
/// [`EARLY_SESSIONS`], and each ticket (the session's id) resumes once, so a first flight
/// replayed to this server after the client's own finds it gone. quinn takes no TLS limit
/// on early data but `u32::MAX`: QUIC's flow control bounds it.
pub fn allow_early_data(config: &mut rustls::ServerConfig) {
    config.ticketer = Arc::new(SessionIds);
    config.session_storage = ServerSessionMemoryCache::new(EARLY_SESSIONS);
    config.max_early_data_size = u32::MAX;
}

/// No sealed tickets: the server's session store issues ids instead.
#[derive(Debug)]
struct SessionIds;

impl rustls::server::ProducesTickets for SessionIds {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// TLS secrets as `SSLKEYLOGFILE` lines (`LABEL <client random> <secret>`, hex), kept until
/// taken: rustls logs them while it handles a connection's packets, and the engine takes
/// them right after, so each line is known to be that connection's.
#[derive(Debug, Default)]
pub struct KeyLogLines(Mutex<Vec<String>>);

impl KeyLogLines {
    /// The lines logged since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl rustls::KeyLog for KeyLogLines {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let line = format!("{label} {} {}", hex(client_random), hex(secret));
        lock(&self.0).push(line);
    }
}

/// How long a verified chain is taken as verified again without checking its signatures.
const RECENT_SECS: u64 = 60;
/// How many distinct chains (servers) are remembered at once.
const RECENT_CHAINS: usize = 16;

/// WebPKI verification that remembers the chains it verified in the last minute, as browsers
/// do. Checking a chain costs a signature verification per certificate (P-256 in plain code
/// on wasm, where it is most of a handshake's CPU), and a client reconnecting to the same
/// servers is shown the same chain again and again. A chain counts as the same only if
/// every byte matches (certificates, OCSP response and server name). The handshake's own
/// signature, which proves that the peer holds the key, is checked on every handshake.
#[derive(Debug)]
struct RecentChains {
    webpki: Arc<WebPkiServerVerifier>,
    recent: Mutex<Vec<VerifiedChain>>,
}

#[derive(Debug)]
struct VerifiedChain {
    certs: Vec<Vec<u8>>,
    ocsp: Vec<u8>,
    server_name: String,
    at: u64,
}

impl VerifiedChain {
    fn is(&self, end_entity: &[u8], rest: &[CertificateDer<'_>], ocsp: &[u8], name: &str) -> bool {
        self.server_name == name
            && self.ocsp == ocsp
            && self.certs.len() == rest.len() + 1
            && self.certs[0] == end_entity
            && self.certs[1..]
                .iter()
                .zip(rest)
                .all(|(a, b)| a[..] == b[..])
    }
}

impl RecentChains {
    fn new(webpki: Arc<WebPkiServerVerifier>) -> Self {
        RecentChains {
            webpki,
            recent: Mutex::new(Vec::new()),
        }
    }

    fn recent(&self) -> MutexGuard<'_, Vec<VerifiedChain>> {
        lock(&self.recent)
    }
}

impl ServerCertVerifier for RecentChains {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let name = server_name.to_str();
        let now_secs = now.as_secs();
        let fresh = |c: &VerifiedChain| c.at <= now_secs && now_secs - c.at < RECENT_SECS;
        {
            let mut recent = self.recent();
            recent.retain(fresh);
            if recent
                .iter()
                .any(|c| c.is(end_entity, intermediates, ocsp, &name))
            {
                return Ok(ServerCertVerified::assertion());
            }
        }
        let verified =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let mut recent = self.recent();
        if recent.len() == RECENT_CHAINS {
            recent.remove(0);
        }
        let mut certs = vec![end_entity.to_vec()];
        certs.extend(intermediates.iter().map(|c| c.to_vec()));
        recent.push(VerifiedChain {
            certs,
            ocsp: ocsp.to_vec(),
            server_name: name.into_owned(),
            at: now_secs,
        });
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The verifier behind `insecure: true`: any certificate passes, but handshake signatures
/// are still checked so the session keys are the peer's.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha20_first_only_where_asked() {
        let first = provider().cipher_suites[0].suite();
        let chacha = rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256;
        assert_eq!(first == chacha, PREFER_CHACHA, "first suite {first:?}");
        // QUIC's Initial keys need AES-128-GCM whatever the order.
        assert!(provider()
            .cipher_suites
            .iter()
            .any(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    }

    #[test]
    fn dev_cert_builds_both_configs() {
        let dev = generate_dev_cert(&["localhost".into(), "127.0.0.1".into()], None).unwrap();
        assert!(dev.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&ServerTls {
            cert: dev.cert.clone(),
            key: dev.key,
        })
        .unwrap();
        client_config(
            &ClientTls {
                ca: Some(dev.cert),
                insecure: false,
            },
            Vec::new,
        )
        .unwrap();
    }

    /// One TLS handshake in memory, and the tickets the server sends after it. Whether it
    /// was resumed, and how many times the client checked a certificate chain.
    fn handshake(
        client: &ClientCrypto,
        port: u16,
        server: &Arc<rustls::ServerConfig>,
    ) -> rustls::HandshakeKind {
        use rustls::{ClientConnection, ServerConnection};
        let name = ServerName::try_from("localhost").unwrap();
        let mut c = ClientConnection::new(Arc::new(client.for_port(port)), name).unwrap();
        let mut s = ServerConnection::new(server.clone()).unwrap();
        let mut buf = Vec::new();
        // A few flights each way carry the handshake and then the tickets.
        for _ in 0..4 {
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets().unwrap();
            buf.clear();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets().unwrap();
        }
        assert!(!c.is_handshaking());
        c.handshake_kind().unwrap()
    }

    #[test]
    fn sessions_resume_per_port() {
        use rustls::HandshakeKind::{Full, Resumed};
        let dev = generate_dev_cert(&["localhost".into()], None).unwrap();
        let client = ClientCrypto::new(
            &ClientTls {
                ca: Some(dev.cert.clone()),
                insecure: false,
            },
            Vec::new,
        )
        .unwrap();
        let tls = ServerTls {
            cert: dev.cert,
            key: dev.key,
        };
        // Two servers with one name at two ports, each with its own session store.
        let a = Arc::new(server_config(&tls).unwrap());
        let b = Arc::new(server_config(&tls).unwrap());
        assert_eq!(handshake(&client, 1, &a), Full);
        assert_eq!(handshake(&client, 2, &b), Full);
        assert_eq!(handshake(&client, 1, &a), Resumed);
        assert_eq!(handshake(&client, 2, &b), Resumed);
        // A fresh client has no tickets.
        let fresh = ClientCrypto {
            tickets: Arc::default(),
            ..client.clone()
        };
        assert_eq!(handshake(&fresh, 1, &a), Full);
    }

    #[test]
    fn a_recent_chain_is_taken_only_when_every_byte_matches() {
        let until = 1_893_456_000; // 2030-01-01, when the certificate expires
        let make = || {
            let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            params.not_after = rcgen::date_time_ymd(2030, 1, 1);
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().der().clone()
        };
        let (trusted, other) = (make(), make());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trusted.clone()).unwrap();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider());
        let verifier = RecentChains::new(webpki.build().unwrap());
        let verify = |cert: &CertificateDer<'_>, name: &str, at: u64| {
            let name = ServerName::try_from(name).unwrap();
            let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at));
            verifier.verify_server_cert(cert, &[], &name, &[], at)
        };
        let before = until - 10;
        assert!(verify(&trusted, "localhost", before).is_ok());
        // Neither another certificate nor another name rides on the verified chain.
        assert!(verify(&other, "localhost", before).is_err());
        assert!(verify(&trusted, "example.com", before).is_err());
        // Within a minute of its check the chain is taken as verified, even just expired ...
        assert!(verify(&trusted, "localhost", until + 10).is_ok());
        // ... and checked afresh after that.
        assert!(verify(&trusted, "localhost", before + RECENT_SECS).is_err());
    }

    #[test]
    fn bad_pem_is_an_invalid_argument() {
        let err = client_config(
            &ClientTls {
                ca: Some("not a certificate".into()),
                insecure: false,
            },
            Vec::new,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        let err = server_config(&ServerTls {
            cert: "x".into(),
            key: "y".into(),
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(generate_dev_cert(&[], None).is_err());
    }
}
