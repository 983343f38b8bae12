//! Sealing of secrets at rest (SSH passwords and keys, secret run variables) with
//! XChaCha20-Poly1305 under the server's credential key.
//!
//! The key is 32 random bytes, hex-encoded, in `<data-dir>/credential.key` (mode 0600, created on
//! first start) or the file named by `BALLAST_CREDENTIAL_KEY_FILE` — replicas on one PostgreSQL
//! must share it, as they share the audit key. A sealed value is `v1:<nonce hex>:<ciphertext hex>`;
//! the associated data binds it to its purpose (`ssh:NAME`, `run-secrets`), so a sealed value
//! cannot be moved to another row and opened there.

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::config::Config;

pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("sealed value cannot be opened ({0}): wrong credential key or corrupt data")]
pub struct SealError(&'static str);

impl Sealer {
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Loads or creates the credential key (see the module docs). Creation is exclusive: replicas
    /// starting together on a shared key file all end up with the one key written first.
    pub fn load(config: &Config) -> anyhow::Result<Sealer> {
        let path = config
            .credential_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("credential.key"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        match create_new_private(&path, &format!("{}\n", hex::encode(key))) {
            Ok(()) => return Ok(Sealer::from_key(&key)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        }
        // Someone else's key (written before, or a moment ago by another replica).
        for _ in 0..50 {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if text.trim().is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            let bytes = hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .with_context(|| {
                    format!("{}: expected 64 hex digits (32 bytes)", path.display())
                })?;
            return Ok(Sealer::from_key(&bytes));
        }
        anyhow::bail!("{} stays empty", path.display())
    }

    pub fn seal(&self, purpose: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain,
            aad: purpose.as_bytes(),
        };
        match self.cipher.encrypt(XNonce::from_slice(&nonce), payload) {
            Ok(ct) => format!("v1:{}:{}", hex::encode(nonce), hex::encode(ct)),
            // Encryption only fails for messages beyond the AEAD's length limit (~256 GiB).
            Err(_) => String::new(),
        }
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(n), Some(c)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError("format"));
        };
        let nonce = hex::decode(n).map_err(|_| SealError("nonce"))?;
        if nonce.len() != 24 {
            return Err(SealError("nonce"));
        }
        let ct = hex::decode(c).map_err(|_| SealError("ciphertext"))?;
        self.cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| SealError("authentication"))
    }
}

/// Creates `path` with mode 0600, failing if it exists.
fn create_new_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_purpose_binding() {
        let s = Sealer::from_key(&[7u8; 32]);
        let sealed = s.seal("ssh:web", b"hunter2");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(s.open("ssh:web", &sealed).unwrap(), b"hunter2");
        assert!(s.open("ssh:db", &sealed).is_err(), "purpose is bound");
        let other = Sealer::from_key(&[8u8; 32]);
        assert!(other.open("ssh:web", &sealed).is_err(), "key is checked");
        assert!(s.open("ssh:web", "v1:zz:00").is_err());
        assert!(s.open("ssh:web", "garbage").is_err());
    }
}
