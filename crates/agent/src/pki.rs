//! The server's private certificate authority (ECDSA P-256, rcgen), agent key + CSR generation,
//! and enrolment tokens.
//!
//! Certificates are X.509 v3 in PEM. The CA signs the hub's server certificate and every agent's
//! client certificate (CN = agent id). An agent pins the CA by the SHA-256 of its DER encoding,
//! carried in the enrolment token (`bet1.<secret>.<ca_fp_hex>`), so a man in the middle cannot
//! enrol it. The server keeps only `hash_secret(secret)`.

use ballast_core::clock::{Clock, SystemClock};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};

/// Errors of the PKI functions. `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Key or certificate generation failed inside rcgen.
    #[error("pki.generate: certificate generation failed: {0}")]
    Generate(String),
    /// A PEM input (certificate or key) could not be parsed.
    #[error("pki.pem_invalid: {what} is not valid PEM: {detail}")]
    Pem {
        /// What was being parsed.
        what: &'static str,
        /// Parser detail.
        detail: String,
    },
    /// The certificate signing request does not parse or its signature is wrong.
    #[error("pki.csr_invalid: certificate signing request refused: {0}")]
    Csr(String),
    /// An agent id that cannot be a certificate CN.
    #[error("pki.agent_id_invalid: agent id {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    AgentId(String),
    /// A subject alternative name that is neither a DNS name nor an IP address.
    #[error("pki.san_invalid: {0:?} is neither a DNS name nor an IP address")]
    San(String),
    /// An enrolment token that does not have the form `bet1.<secret>.<sha256 hex>`.
    #[error("pki.token_invalid: enrolment token malformed: {0}")]
    Token(&'static str),
}

impl PkiError {
    /// Stable code, e.g. `pki.csr_invalid`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Generate(_) => "pki.generate",
            Self::Pem { .. } => "pki.pem_invalid",
            Self::Csr(_) => "pki.csr_invalid",
            Self::AgentId(_) => "pki.agent_id_invalid",
            Self::San(_) => "pki.san_invalid",
            Self::Token(_) => "pki.token_invalid",
        }
    }

    /// Chinese message (with the code).
    #[must_use]
    pub fn message_zh(&self) -> String {
        match self {
            Self::Generate(d) => format!("pki.generate: 证书生成失败: {d}"),
            Self::Pem { what, detail } => {
                format!("pki.pem_invalid: {what} 不是有效的 PEM: {detail}")
            }
            Self::Csr(d) => format!("pki.csr_invalid: 证书签名请求被拒绝: {d}"),
            Self::AgentId(id) => {
                format!(
                    "pki.agent_id_invalid: 代理 ID {id:?} 必须为 1-64 个 A-Z a-z 0-9 . _ - 字符"
                )
            }
            Self::San(s) => format!("pki.san_invalid: {s:?} 既不是 DNS 名称也不是 IP 地址"),
            Self::Token(d) => format!("pki.token_invalid: 注册令牌格式错误: {d}"),
        }
    }
}

fn gen_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// SHA-256 of DER bytes, lowercase hex.
#[must_use]
pub fn fingerprint_der(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// SHA-256 (lowercase hex) of the first certificate in a PEM text.
///
/// # Errors
/// The text holds no parseable certificate.
pub fn fingerprint_pem(cert_pem: &str) -> Result<String, PkiError> {
    let der = first_cert_der(cert_pem, "certificate")?;
    Ok(fingerprint_der(der.as_ref()))
}

pub(crate) fn first_cert_der(
    pem: &str,
    what: &'static str,
) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem {
        what,
        detail: e.to_string(),
    })
}

/// The subject CN of a DER certificate, if it has one.
#[must_use]
pub fn common_name_der(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Whether `id` is a valid agent id (the CN of its certificate): 1-64 of `A-Za-z0-9._-`.
#[must_use]
pub fn valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A DNS name (letters, digits, `-`, dot-separated labels, optional leading `*.`) or an IP.
fn valid_san(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn to_offset(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // non-zero, no leading zero byte
    SerialNumber::from_slice(&b)
}

fn validity(params: &mut CertificateParams, now: DateTime<Utc>, days: u32) {
    // One hour of slack before "now" for clocks that are slightly behind.
    params.not_before = to_offset(now - chrono::Duration::hours(1));
    params.not_after = to_offset(now + chrono::Duration::days(i64::from(days.max(1))));
}

/// The server's private CA. Holds the CA certificate and its private key (PEM).
#[derive(Clone)]
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint_sha256())
            .finish_non_exhaustive()
    }
}

/// Lifetime of a generated CA: 20 years.
pub const CA_DAYS: u32 = 20 * 365;

impl Ca {
    /// A new CA (ECDSA P-256, valid 20 years from now by the system clock).
    ///
    /// # Errors
    /// Key generation or signing failed.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        Self::generate_at(common_name, SystemClock.now())
    }

    /// A new CA valid from `now` (minus one hour) for [`CA_DAYS`].
    ///
    /// # Errors
    /// Key generation or signing failed.
    pub fn generate_at(common_name: &str, now: DateTime<Utc>) -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        validity(&mut params, now, CA_DAYS);
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
        })
    }

    /// Load a CA from its certificate and key (PEM), e.g. from the server's data directory.
    ///
    /// # Errors
    /// Either text does not parse, or the key does not belong to the certificate's issuer data.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let cert_der = first_cert_der(cert_pem, "CA certificate")?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Pem {
            what: "CA key",
            detail: e.to_string(),
        })?;
        // Make sure the pair is usable as an issuer now rather than at the first signature.
        Issuer::from_ca_cert_der(&cert_der, &key).map_err(|e| PkiError::Pem {
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(cert_der.as_ref()).map_err(|e| PkiError::Pem {
                what: "CA certificate",
                detail: e.to_string(),
            })?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::Pem {
                what: "CA key",
                detail: "the key does not match the certificate".into(),
            });
        }
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_der,
        })
    }

    /// The CA certificate (PEM).
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PKCS#8 PEM). Store it 0600.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate (DER).
    #[must_use]
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// SHA-256 of the DER certificate, lowercase hex: the pin in enrolment tokens.
    #[must_use]
    pub fn fingerprint_sha256(&self) -> String {
        fingerprint_der(self.cert_der.as_ref())
    }

    fn with_issuer<T>(
        &self,
        f: impl FnOnce(&Issuer<'_, &KeyPair>) -> Result<T, PkiError>,
    ) -> Result<T, PkiError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(|e| PkiError::Pem {
            what: "CA key",
            detail: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &key).map_err(|e| PkiError::Pem {
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        f(&issuer)
    }

    /// Issue the hub's TLS server certificate for `sans` (DNS names or IP addresses), valid `days`
    /// from now. Returns `(cert_pem, key_pem)`; the cert PEM holds only the leaf.
    ///
    /// # Errors
    /// A SAN is invalid, no SAN was given, or signing failed.
    pub fn issue_server_cert(
        &self,
        sans: &[String],
        days: u32,
    ) -> Result<(String, String), PkiError> {
        self.issue_server_cert_at(sans, days, SystemClock.now())
    }

    /// [`Ca::issue_server_cert`] with an explicit "now".
    ///
    /// # Errors
    /// See [`Ca::issue_server_cert`].
    pub fn issue_server_cert_at(
        &self,
        sans: &[String],
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<(String, String), PkiError> {
        if sans.is_empty() {
            return Err(PkiError::San(String::new()));
        }
        if let Some(bad) = sans.iter().find(|s| !valid_san(s)) {
            return Err(PkiError::San(bad.clone()));
        }
        let mut params =
            CertificateParams::new(sans.to_vec()).map_err(|_| PkiError::San(sans.join(",")))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, sans[0].as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, now, days);
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = self.with_issuer(|issuer| params.signed_by(&key, issuer).map_err(gen_err))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Sign an agent's CSR: the certificate gets CN = `agent_id`, client-auth usage only, and
    /// the CSR's public key; everything else the CSR asks for is ignored. Valid `days` from now.
    ///
    /// # Errors
    /// The CSR does not parse or its self-signature is wrong; the agent id is invalid.
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        agent_id: &str,
        days: u32,
    ) -> Result<String, PkiError> {
        self.sign_agent_csr_at(csr_pem, agent_id, days, SystemClock.now())
    }

    /// [`Ca::sign_agent_csr`] with an explicit "now".
    ///
    /// # Errors
    /// See [`Ca::sign_agent_csr`].
    pub fn sign_agent_csr_at(
        &self,
        csr_pem: &str,
        agent_id: &str,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<String, PkiError> {
        if !valid_agent_id(agent_id) {
            return Err(PkiError::AgentId(agent_id.to_owned()));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Csr(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, now, days);
        let cert =
            self.with_issuer(|issuer| params.signed_by(&csr.public_key, issuer).map_err(gen_err))?;
        Ok(cert.pem())
    }
}

/// Agent side: a fresh ECDSA P-256 key and a CSR for it (CN = `hostname`, no extensions).
/// Returns `(key_pem, csr_pem)`.
///
/// # Errors
/// Key generation or CSR serialisation failed.
pub fn generate_key_and_csr(hostname: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let cn = if hostname.trim().is_empty() {
        "ballast-agent"
    } else {
        hostname.trim()
    };
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).map_err(gen_err)?;
    let csr_pem = csr.pem().map_err(gen_err)?;
    Ok((key.serialize_pem(), csr_pem))
}

/// SHA-256 (lowercase hex) of an enrolment secret: the only form the server stores.
#[must_use]
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Prefix of encoded enrolment tokens (format version 1).
pub const TOKEN_PREFIX: &str = "bet1";

/// A one-time enrolment token: the secret (redeemed once, server keeps its hash) and the pin of
/// the CA the agent must find at the server.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollToken {
    /// Random secret, base64url without padding (`A-Za-z0-9_-`).
    pub secret: String,
    /// SHA-256 of the CA certificate (DER), lowercase hex.
    pub ca_fingerprint: String,
}

impl std::fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollToken")
            .field("secret", &"<redacted>")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

impl EnrollToken {
    /// A new token with a 256-bit random secret for `ca`.
    #[must_use]
    pub fn generate(ca: &Ca) -> EnrollToken {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        EnrollToken {
            secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
            ca_fingerprint: ca.fingerprint_sha256(),
        }
    }

    /// `bet1.<secret>.<ca_fp_hex>`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{TOKEN_PREFIX}.{}.{}", self.secret, self.ca_fingerprint)
    }

    /// Parse `bet1.<secret>.<ca_fp_hex>` (surrounding whitespace ignored; hex case-insensitive).
    ///
    /// # Errors
    /// Wrong prefix, number of parts, secret alphabet/length, or fingerprint not 64 hex digits.
    pub fn parse(s: &str) -> Result<EnrollToken, PkiError> {
        let mut parts = s.trim().split('.');
        let (Some(prefix), Some(secret), Some(fp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PkiError::Token("expected bet1.<secret>.<ca-sha256>"));
        };
        if prefix != TOKEN_PREFIX {
            return Err(PkiError::Token("unknown prefix (expected bet1)"));
        }
        if secret.len() < 16
            || secret.len() > 128
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PkiError::Token(
                "secret must be 16-128 characters of A-Za-z0-9_-",
            ));
        }
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PkiError::Token("CA fingerprint must be 64 hex digits"));
        }
        Ok(EnrollToken {
            secret: secret.to_owned(),
            ca_fingerprint: fp.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ca_roundtrip_and_fingerprint() {
        let ca = Ca::generate("Ballast test CA").unwrap();
        let again = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(ca.fingerprint_sha256(), again.fingerprint_sha256());
        assert_eq!(ca.fingerprint_sha256().len(), 64);
        assert_eq!(
            fingerprint_pem(ca.cert_pem()).unwrap(),
            ca.fingerprint_sha256()
        );
        let other = Ca::generate("other").unwrap();
        let err = Ca::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
        assert_eq!(err.code(), "pki.pem_invalid");
        assert_eq!(
            Ca::from_pem("junk", "junk").unwrap_err().code(),
            "pki.pem_invalid"
        );
    }

    #[test]
    fn agent_csr_is_signed_with_agent_id_as_cn() {
        let ca = Ca::generate("ca").unwrap();
        let (_key, csr) = generate_key_and_csr("host-1").unwrap();
        let cert = ca.sign_agent_csr(&csr, "agt-42", 30).unwrap();
        let der = first_cert_der(&cert, "c").unwrap();
        assert_eq!(common_name_der(der.as_ref()).as_deref(), Some("agt-42"));
        // Refusals: garbage CSR, a tampered CSR, a bad agent id.
        assert_eq!(
            ca.sign_agent_csr("nope", "a", 1).unwrap_err().code(),
            "pki.csr_invalid"
        );
        let tampered = {
            use rustls_pki_types::CertificateSigningRequestDer;
            let der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
            let mut bytes = der.as_ref().to_vec();
            let pos = bytes.windows(6).position(|w| w == b"host-1").unwrap();
            bytes[pos + 5] = b'2';
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n"
            )
        };
        assert_eq!(
            ca.sign_agent_csr(&tampered, "a", 1).unwrap_err().code(),
            "pki.csr_invalid"
        );
        assert_eq!(
            ca.sign_agent_csr(&csr, "bad id/1", 1).unwrap_err().code(),
            "pki.agent_id_invalid"
        );
    }

    #[test]
    fn server_cert_sans() {
        let ca = Ca::generate("ca").unwrap();
        let (cert, key) = ca
            .issue_server_cert(&["127.0.0.1".into(), "hub.example".into()], 10)
            .unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE"));
        assert!(key.contains("PRIVATE KEY"));
        assert_eq!(
            ca.issue_server_cert(&[], 1).unwrap_err().code(),
            "pki.san_invalid"
        );
        assert!(ca.issue_server_cert(&["bad name!".into()], 1).is_err());
    }

    #[test]
    fn token_encode_parse() {
        let ca = Ca::generate("ca").unwrap();
        let t = EnrollToken::generate(&ca);
        let s = t.encode();
        assert!(s.starts_with("bet1."));
        assert_eq!(EnrollToken::parse(&s).unwrap(), t);
        let spaced = format!("  bet1.{}.{}\n", t.secret, t.ca_fingerprint.to_uppercase());
        assert_eq!(EnrollToken::parse(&spaced).unwrap(), t);
        for bad in [
            "",
            "bet1",
            "bet2.aaaaaaaaaaaaaaaaaaaa.00",
            "bet1.short.0000000000000000000000000000000000000000000000000000000000000000",
            "bet1.aaaaaaaaaaaaaaaaaaaa.xyz",
            "bet1.aaaaaaaaaaaaaaaaaaaa.0000000000000000000000000000000000000000000000000000000000000000.x",
        ] {
            assert_eq!(
                EnrollToken::parse(bad).unwrap_err().code(),
                "pki.token_invalid",
                "{bad}"
            );
        }
        assert!(!format!("{t:?}").contains(&t.secret));
        assert_eq!(hash_secret("abc").len(), 64);
        assert_ne!(hash_secret("abc"), hash_secret("abd"));
    }
}
