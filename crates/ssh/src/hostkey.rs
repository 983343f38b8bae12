//! Host keys: fingerprints and the pinning check.

use russh::keys::{HashAlg, PublicKey};

use crate::error::SshError;
use crate::types::HostKeyPolicy;

/// The SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it) of an OpenSSH public-key
/// line (`ssh-ed25519 AAAA… [comment]`).
pub fn fingerprint_sha256(openssh_public_key_line: &str) -> Result<String, SshError> {
    let key = parse_line(openssh_public_key_line)?;
    Ok(key_fingerprint(&key))
}

pub(crate) fn key_fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key as an OpenSSH line, without comment.
pub(crate) fn key_line(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .unwrap_or_else(|_| format!("{} <unencodable>", key.algorithm()))
}

fn parse_line(line: &str) -> Result<PublicKey, SshError> {
    let line = line.trim();
    PublicKey::from_openssh(line).map_err(|e| SshError::InvalidKey {
        reason: format!("not an OpenSSH public-key line ({e}): {}", shorten(line)),
    })
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// A policy made ready to check: the pinned entries as SHA-256 fingerprints.
#[derive(Debug, Clone)]
pub(crate) enum Checker {
    Pinned(Vec<String>),
    Tofu,
}

impl Checker {
    /// Normalises every pinned entry; an entry that is neither a key line nor a `SHA256:`
    /// fingerprint is refused (fail closed, before any connection).
    pub(crate) fn new(policy: &HostKeyPolicy) -> Result<Self, SshError> {
        match policy {
            HostKeyPolicy::TrustOnFirstUse => Ok(Checker::Tofu),
            HostKeyPolicy::Pinned(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for e in entries {
                    let e = e.trim();
                    if let Some(b64) = e.strip_prefix("SHA256:") {
                        // OpenSSH prints unpadded base64; accept a padded copy too.
                        let b64 = b64.trim_end_matches('=');
                        if b64.is_empty()
                            || !b64
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
                        {
                            return Err(SshError::InvalidKey {
                                reason: format!("not a SHA256 fingerprint: {}", shorten(e)),
                            });
                        }
                        out.push(format!("SHA256:{b64}"));
                    } else {
                        out.push(key_fingerprint(&parse_line(e)?));
                    }
                }
                Ok(Checker::Pinned(out))
            }
        }
    }

    pub(crate) fn accepts(&self, presented_sha256: &str) -> bool {
        match self {
            Checker::Tofu => true,
            Checker::Pinned(list) => list.iter().any(|p| p == presented_sha256),
        }
    }

    pub(crate) fn expected(&self) -> Vec<String> {
        match self {
            Checker::Tofu => Vec::new(),
            Checker::Pinned(list) => list.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    // A fixed ed25519 key (generated once by ssh-keygen) and `ssh-keygen -lf` of it.
    const LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK/XQAq8IHqgKYbDWgCFPS7UJBsgJehRvJMw+S7rkxXW test";
    const FP: &str = "SHA256:x9AoqQ3IkBcpq4dBpLBBBtzE+w487R82+fLNjQaY71Y";

    #[test]
    fn fingerprint_and_line_roundtrip() {
        let fp = fingerprint_sha256(LINE).unwrap();
        assert_eq!(fp, FP);
        let key = PublicKey::from_openssh(LINE).unwrap();
        let line = key_line(&key);
        assert!(LINE.starts_with(&line), "{line}");
        assert_eq!(fingerprint_sha256(&line).unwrap(), fp);
    }

    #[test]
    fn bad_lines_are_refused() {
        for bad in ["", "ssh-ed25519", "ssh-ed25519 !!!!", "hello world"] {
            let e = fingerprint_sha256(bad).unwrap_err();
            assert_eq!(e.code(), "ssh.invalid_key", "{bad:?}");
        }
    }

    #[test]
    fn checker_accepts_lines_and_fingerprints() {
        let fp = fingerprint_sha256(LINE).unwrap();
        let by_line = Checker::new(&HostKeyPolicy::Pinned(vec![LINE.into()])).unwrap();
        let by_fp = Checker::new(&HostKeyPolicy::Pinned(vec![format!("{fp}=")])).unwrap();
        for c in [by_line, by_fp] {
            assert!(c.accepts(&fp));
            assert!(!c.accepts("SHA256:other"));
            assert_eq!(c.expected(), vec![fp.clone()]);
        }
        assert!(
            !Checker::new(&HostKeyPolicy::Pinned(vec![]))
                .unwrap()
                .accepts(&fp)
        );
        assert!(
            Checker::new(&HostKeyPolicy::TrustOnFirstUse)
                .unwrap()
                .accepts(&fp)
        );
        let e = Checker::new(&HostKeyPolicy::Pinned(vec!["SHA256:".into()])).unwrap_err();
        assert_eq!(e.code(), "ssh.invalid_key");
        let e = Checker::new(&HostKeyPolicy::Pinned(vec!["MD5:aa:bb".into()])).unwrap_err();
        assert_eq!(e.code(), "ssh.invalid_key");
    }
}
