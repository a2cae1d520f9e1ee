//! Passwords: hashed with argon2id at OWASP's parameters (19 MiB, two
//! passes, one lane), checked for length and against a list of common
//! passwords when they are chosen.
//!
//! Hashing is deliberately slow (tens of milliseconds, 19 MiB): callers on
//! the async runtime run it on a blocking thread.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted (NIST SP 800-63B asks for at least 8).
pub const MIN_CHARS: usize = 10;
/// The longest, in bytes: argon2 takes any length, but a megabyte-long
/// "password" is only a way to make the server work.
pub const MAX_BYTES: usize = 1024;

/// Why a new password is refused, as the person is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("The password is {chars} characters long; it needs at least {MIN_CHARS}.")]
    TooShort { chars: usize },
    #[error("The password is longer than {MAX_BYTES} bytes.")]
    TooLong,
    #[error("This password is one of the most common ones; choose another.")]
    Common,
    #[error("The password cannot be your email address.")]
    IsEmail,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP's argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn common() -> &'static HashSet<String> {
    static COMMON: OnceLock<HashSet<String>> = OnceLock::new();
    COMMON.get_or_init(|| {
        include_str!("common-passwords.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_lowercase)
            .collect()
    })
}

/// Whether `password` may be chosen by the person whose email is `email`.
pub fn check_new(password: &str, email: Option<&str>) -> Result<(), PasswordProblem> {
    if password.len() > MAX_BYTES {
        return Err(PasswordProblem::TooLong);
    }
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordProblem::TooShort { chars });
    }
    let lower = password.to_lowercase();
    if common().contains(&lower) {
        return Err(PasswordProblem::Common);
    }
    if email.is_some_and(|e| e.trim().eq_ignore_ascii_case(password.trim())) {
        return Err(PasswordProblem::IsEmail);
    }
    Ok(())
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source works");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashes any password of at most MAX_BYTES")
        .to_string()
}

/// Whether `password` matches `stored` (a PHC string). With no stored hash
/// (an unknown user, or one without a password) a hash of a random
/// password is checked instead, so that the answer takes as long either
/// way and does not tell who has an account.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let (stored, real) = match stored {
        Some(stored) => (stored, true),
        None => (
            DUMMY
                .get_or_init(|| {
                    let mut random = [0u8; 24];
                    getrandom::fill(&mut random)
                        .expect("the operating system's random source works");
                    hash(&base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        random,
                    ))
                })
                .as_str(),
            false,
        ),
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::error!("a stored password hash is not a PHC string");
        return false;
    };
    let matches = password.len() <= MAX_BYTES
        && argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
    matches && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_salts_differ() {
        let a = hash("correct horse battery");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("correct horse batterY", Some(&a)));
        assert_ne!(a, hash("correct horse battery"));
        // Without a stored hash nothing matches, not even the dummy's input.
        assert!(!verify("correct horse battery", None));
        assert!(!verify("anything", Some("not a hash")));
    }

    #[test]
    fn new_passwords_are_long_uncommon_and_not_the_email() {
        assert_eq!(
            check_new("short", None),
            Err(PasswordProblem::TooShort { chars: 5 })
        );
        assert_eq!(check_new("ääääääääää", None), Ok(()));
        assert_eq!(check_new("QwertyUiop", None), Err(PasswordProblem::Common));
        assert_eq!(check_new("1234567890", None), Err(PasswordProblem::Common));
        assert_eq!(
            check_new("Ann@Example.org", Some("ann@example.org")),
            Err(PasswordProblem::IsEmail)
        );
        assert_eq!(
            check_new(&"x".repeat(MAX_BYTES + 1), None),
            Err(PasswordProblem::TooLong)
        );
        assert_eq!(
            check_new("tea kettle on the hill", Some("ann@example.org")),
            Ok(())
        );
    }
}
