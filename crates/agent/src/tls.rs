//! rustls configurations for the hub and the agent (ring provider, TLS 1.3 only, the provider
//! passed explicitly so no process-wide default is needed).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::pki::fingerprint_der;

/// Marker at the start of the rustls error raised when the enrolment pin does not match.
pub(crate) const PIN_MISMATCH: &str = "agent.ca_mismatch";

/// Connect and TLS handshake timeout.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider (ring), shared.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A TLS setup error (bad PEM, key not matching, …).
#[derive(Debug, thiserror::Error)]
#[error("agent.tls_config: {0}")]
pub struct TlsConfigError(pub String);

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let v = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError(format!("{what}: {e}")))?;
    if v.is_empty() {
        return Err(TlsConfigError(format!("{what}: no certificate in PEM")));
    }
    Ok(v)
}

fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsConfigError(format!("{what}: {e}")))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for c in certs(ca_pem, "CA certificate")? {
        store
            .add(c)
            .map_err(|e| TlsConfigError(format!("CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// The hub's server config: presents `[server cert, CA cert]` (the agent's enrolment pin needs
/// the CA in the chain); client certificates are verified against the CA but optional.
pub(crate) fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<ServerConfig, TlsConfigError> {
    let mut chain = certs(cert_pem, "server certificate")?;
    let ca = certs(ca_pem, "CA certificate")?;
    chain.truncate(1);
    chain.extend(ca);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsConfigError(format!("client verifier: {e}")))?;
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(key_pem, "server key")?)
        .map_err(|e| TlsConfigError(format!("server certificate/key: {e}")))
}

/// The agent's mTLS config: server verified against the saved CA, client cert presented.
pub(crate) fn client_config_mtls(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<ClientConfig, TlsConfigError> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError(e.to_string()))?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(
            certs(cert_pem, "agent certificate")?,
            key(key_pem, "agent key")?,
        )
        .map_err(|e| TlsConfigError(format!("agent certificate/key: {e}")))
}

/// The enrolment config: the server's chain must contain a CA certificate whose SHA-256 is
/// `ca_fingerprint`, and the leaf must verify against that CA for the host name.
pub(crate) fn client_config_pinned(ca_fingerprint: &str) -> Result<ClientConfig, TlsConfigError> {
    let verifier = Arc::new(PinnedCa {
        fingerprint: ca_fingerprint.to_ascii_lowercase(),
        provider: provider(),
    });
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| fingerprint_der(c.as_ref()) == self.fingerprint)
        else {
            return Err(rustls::Error::General(format!(
                "{PIN_MISMATCH}: the server presented no CA certificate with SHA-256 {}",
                self.fingerprint
            )));
        };
        let mut store = RootCertStore::empty();
        store.add(ca.clone().into_owned()).map_err(|e| {
            rustls::Error::General(format!("{PIN_MISMATCH}: pinned CA unusable: {e}"))
        })?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(format!("{PIN_MISMATCH}: {e}")))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Split `host:port`, `tls://host:port` or `[v6]:port` into host and port.
pub(crate) fn parse_server(server: &str) -> Option<(String, u16)> {
    let s = server.trim();
    let s = s.strip_prefix("tls://").unwrap_or(s);
    let s = s.trim_end_matches('/');
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        s.rsplit_once(':')?
    };
    if host.is_empty() || host.contains(':') && !s.starts_with('[') {
        return None;
    }
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    Some((host.to_owned(), port))
}

/// Why a TLS connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    /// TCP connect failed or timed out.
    Tcp(std::io::Error),
    /// Handshake failed; `pin_mismatch` when the enrolment pin did not match.
    Handshake { detail: String, pin_mismatch: bool },
    /// Bad host name for TLS.
    Name(String),
}

/// TCP connect + TLS handshake, both with [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, ConnectFailure> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| ConnectFailure::Name(format!("{host}: {e}")))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            ConnectFailure::Tcp(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })?
        .map_err(ConnectFailure::Tcp)?;
    let _ = tcp.set_nodelay(true);
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Err(_) => Err(ConnectFailure::Handshake {
            detail: "TLS handshake timed out".into(),
            pin_mismatch: false,
        }),
        Ok(Err(e)) => {
            let pin_mismatch = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .is_some_and(
                    |r| matches!(r, rustls::Error::General(s) if s.starts_with(PIN_MISMATCH)),
                );
            Err(ConnectFailure::Handshake {
                detail: e.to_string(),
                pin_mismatch,
            })
        }
        Ok(Ok(s)) => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_server;

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server("h:1"), Some(("h".into(), 1)));
        assert_eq!(
            parse_server("tls://hub.example:7443"),
            Some(("hub.example".into(), 7443))
        );
        assert_eq!(parse_server("[::1]:9"), Some(("::1".into(), 9)));
        assert_eq!(
            parse_server("127.0.0.1:8443"),
            Some(("127.0.0.1".into(), 8443))
        );
        for bad in ["", "host", "host:", "host:0", "host:99999", ":80", "::1:80"] {
            assert_eq!(parse_server(bad), None, "{bad}");
        }
    }
}
