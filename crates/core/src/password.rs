//! Passwords: a configurable policy, argon2id hashes (PHC strings), generated initial passwords.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// The password policy (standard 8.3.1.1 身份鉴别).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    pub min_length: usize,
    /// How many of: lower case, upper case, digits, symbols.
    pub min_classes: usize,
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 12,
            min_classes: 3,
            max_length: 256,
        }
    }
}

impl PasswordPolicy {
    pub fn check(&self, password: &str, username: &str) -> Result<(), Problem> {
        let len = password.chars().count();
        let classes = [
            password.chars().any(|c| c.is_ascii_lowercase()),
            password.chars().any(|c| c.is_ascii_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_ascii_alphanumeric()),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let field = |zh: String, en: String| Problem::field("password.policy", "password", zh, en);
        if len < self.min_length || len > self.max_length {
            return Err(field(
                format!(
                    "密码长度须为 {}–{} 个字符",
                    self.min_length, self.max_length
                ),
                format!(
                    "the password must be {}–{} characters long",
                    self.min_length, self.max_length
                ),
            ));
        }
        if classes < self.min_classes {
            return Err(field(
                format!(
                    "密码须包含小写字母、大写字母、数字、符号中的至少 {} 类",
                    self.min_classes
                ),
                format!(
                    "the password needs at least {} of: lower case, upper case, digits, symbols",
                    self.min_classes
                ),
            ));
        }
        if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
            return Err(field(
                "密码不能包含用户名".to_string(),
                "the password must not contain the username".to_string(),
            ));
        }
        Ok(())
    }
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, Problem> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            Problem::new(
                "password.hash_failed",
                format!("密码哈希失败：{e}"),
                format!("hashing failed: {e}"),
            )
        })
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password that satisfies the default policy (for the initial admin and resets).
pub fn generate_password() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"-_.!@#%+=";
    let mut rng = rand::thread_rng();
    let mut pick = |set: &[u8]| char::from(set[rng.gen_range(0..set.len())]);
    let mut chars: Vec<char> = vec![pick(LOWER), pick(UPPER), pick(DIGIT), pick(SYMBOL)];
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].concat();
    while chars.len() < 20 {
        chars.push(pick(&all));
    }
    // Shuffle so the class order is not fixed.
    for i in (1..chars.len()).rev() {
        let j = rand::thread_rng().gen_range(0..=i);
        chars.swap(i, j);
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let p = PasswordPolicy::default();
        assert!(p.check("Short1!", "alice").is_err());
        assert!(p.check("alllowercaseletters", "alice").is_err());
        assert!(
            p.check("Alice-Is-Here-2026", "alice").is_err(),
            "contains the username"
        );
        assert!(p.check("Correct-Horse-9", "alice").is_ok());
        for _ in 0..20 {
            assert!(p.check(&generate_password(), "admin").is_ok());
        }
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password("Correct-Horse-9").unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("Correct-Horse-9", &h));
        assert!(!verify_password("correct-horse-9", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
