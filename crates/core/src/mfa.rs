//! Second factor: TOTP (RFC 6238, 30 s, 6 digits, SHA-1 for authenticator compatibility) with
//! enrolment by otpauth URI and QR code, replay protection by time step, and one-time recovery codes.

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::problem::Problem;

const STEP: u64 = 30;

fn totp(secret_b32: &str, issuer: &str, account: &str) -> Result<TOTP, Problem> {
    let bad = |e: String| {
        Problem::new(
            "mfa.secret_invalid",
            format!("两步验证密钥无效：{e}"),
            format!("invalid second-factor secret: {e}"),
        )
    };
    let bytes = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| bad(format!("{e:?}")))?;
    // otpauth issuers and account names may not contain ':'.
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        bytes,
        Some(issuer.replace(':', " ")),
        account.replace(':', " "),
    )
    .map_err(|e| bad(format!("{e:?}")))
}

/// A fresh random TOTP secret, base32-encoded (160 bits).
pub fn generate_secret() -> String {
    match Secret::generate_secret().to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(bytes) => base32_fallback(&bytes),
    }
}

fn base32_fallback(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(ALPHABET[((buffer >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// What a person needs to enrol an authenticator app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as an SVG QR code.
    pub qr_svg: String,
}

pub fn enrolment(secret_b32: &str, issuer: &str, account: &str) -> Result<Enrolment, Problem> {
    let t = totp(secret_b32, issuer, account)?;
    let uri = t.get_url();
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .map_err(|e| {
            Problem::new(
                "mfa.qr_failed",
                format!("二维码生成失败：{e}"),
                format!("QR code failed: {e}"),
            )
        })?;
    Ok(Enrolment {
        secret: secret_b32.to_string(),
        otpauth_uri: uri,
        qr_svg,
    })
}

/// Checks a 6-digit code at `now`, allowing one step of clock drift either way. Returns the time
/// step that matched; the caller refuses a step not above the last one used (no replay).
pub fn verify_code(secret_b32: &str, code: &str, now: DateTime<Utc>) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret_b32, "ballast", "user").ok()?;
    let secs = u64::try_from(now.timestamp()).ok()?;
    [secs.saturating_sub(STEP), secs, secs + STEP]
        .into_iter()
        .find(|&at| constant_time_eq(t.generate(at).as_bytes(), code.as_bytes()))
        .map(|at| at / STEP)
}

/// The current code (for tests and tools that act as an authenticator).
pub fn current_code(secret_b32: &str, now: DateTime<Utc>) -> Option<String> {
    let t = totp(secret_b32, "ballast", "user").ok()?;
    Some(t.generate(u64::try_from(now.timestamp()).ok()?))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Ten one-time recovery codes like `k7dq-3fzx-9pwa`; store only their [`hash_recovery_code`].
pub fn generate_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| {
            (0..3)
                .map(|_| {
                    (0..4)
                        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// Recovery codes have ~70 bits of entropy, so a plain SHA-256 is enough to store them.
pub fn hash_recovery_code(code: &str) -> String {
    let normalised: String = code
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn codes_verify_within_one_step_only() {
        let secret = generate_secret();
        let now = Utc
            .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
            .single()
            .unwrap_or_default();
        let code = current_code(&secret, now).unwrap_or_default();
        let step = verify_code(&secret, &code, now);
        assert_eq!(step, Some(now.timestamp() as u64 / 30));
        assert!(verify_code(&secret, &code, now + chrono::Duration::seconds(30)).is_some());
        assert!(verify_code(&secret, &code, now + chrono::Duration::seconds(90)).is_none());
        assert!(verify_code(&secret, "12345", now).is_none());
        assert!(verify_code(&secret, "abcdef", now).is_none());
    }

    #[test]
    fn an_empty_or_short_secret_matches_no_code() {
        // The server falls back to an empty secret when a sealed one cannot be opened; that
        // must never verify, whatever the code.
        let now = Utc
            .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
            .single()
            .unwrap_or_default();
        for secret in ["", "AAAA"] {
            assert!(current_code(secret, now).is_none());
            for code in ["000000", "123456", "999999"] {
                assert!(verify_code(secret, code, now).is_none());
            }
        }
    }

    #[test]
    fn enrolment_has_uri_and_qr() {
        let e = enrolment(&generate_secret(), "Ballast", "alice").unwrap_or_else(|e| panic!("{e}"));
        assert!(e.otpauth_uri.starts_with("otpauth://totp/Ballast:alice?"));
        assert!(e.qr_svg.contains("<svg"));
    }

    #[test]
    fn recovery_codes() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(
            hash_recovery_code(&codes[0]),
            hash_recovery_code(&codes[0].to_uppercase())
        );
    }
}
