//! TLS 1.3 for quicwire over rustls with the ring provider: verification on by default (a CA
//! in PEM, or the system roots), `insecure` only when asked for, and dev certificates.
//! Pure configuration: the caller supplies system roots (reading them is I/O).

use std::sync::Arc;

use crate::{Error, ErrorCode, Result, ALPN};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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

/// Generates a self-signed certificate for `names` (DNS names or IP addresses).
pub fn generate_dev_cert(names: &[String]) -> Result<DevCert> {
    if names.is_empty() {
        return Err(Error::invalid_argument(
            "generateDevCert needs at least one name, e.g. [\"localhost\", \"127.0.0.1\"]",
        ));
    }
    let ck = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| {
        Error::invalid_argument(format!("cannot make a certificate for {names:?}: {e}"))
    })?;
    Ok(DevCert {
        cert: ck.cert.pem(),
        key: ck.signing_key.serialize_pem(),
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
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
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
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    // A wasm server picks from its own order (ChaCha20 first) even for AES-first clients.
    config.ignore_client_order = PREFER_CHACHA;
    Ok(config)
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
        let dev = generate_dev_cert(&["localhost".into(), "127.0.0.1".into()]).unwrap();
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
        assert!(generate_dev_cert(&[]).is_err());
    }
}
