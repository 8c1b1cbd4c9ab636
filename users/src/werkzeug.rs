//! The password hashes of the Flask original, as werkzeug's `generate_password_hash`
//! wrote them: `scrypt:N:r:p$salt$hex` (werkzeug 3) or `pbkdf2:sha256:iterations$salt$hex`
//! (earlier). An imported account is checked with its old hash once; at that first
//! login the hash is replaced by argon2id.

use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Bounds on the parameters an imported hash may ask for, so that a doctored database
/// cannot make one login cost minutes or gigabytes.
const MAX_SCRYPT_LOG_N: u8 = 20;
const MAX_SCRYPT_R: u32 = 32;
const MAX_SCRYPT_P: u32 = 16;
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
const MAX_OUTPUT_BYTES: usize = 128;

/// Whether `stored` is a werkzeug hash (and not argon2's PHC string).
pub fn is_werkzeug(stored: &str) -> bool {
    stored.starts_with("scrypt") || stored.starts_with("pbkdf2:")
}

/// Whether `password` matches the werkzeug hash `stored`; `false` for a hash this does
/// not understand.
pub fn verify(password: &str, stored: &str) -> bool {
    let mut parts = stored.splitn(3, '$');
    let (Some(method), Some(salt), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    if expected.is_empty() || expected.len() > MAX_OUTPUT_BYTES {
        return false;
    }
    let mut computed = vec![0u8; expected.len()];
    let derived = match method.split(':').collect::<Vec<_>>().as_slice() {
        ["scrypt", rest @ ..] => scrypt(password, salt, rest, &mut computed),
        ["pbkdf2", digest, rest @ ..] => pbkdf2(password, salt, digest, rest, &mut computed),
        _ => false,
    };
    derived && bool::from(computed.ct_eq(&expected))
}

/// werkzeug's defaults: N = 2^15, r = 8, p = 1.
fn scrypt(password: &str, salt: &str, params: &[&str], out: &mut [u8]) -> bool {
    let (n, r, p) = match params {
        [] => (1u64 << 15, 8, 1),
        [n, r, p] => match (n.parse::<u64>(), r.parse(), p.parse()) {
            (Ok(n), Ok(r), Ok(p)) => (n, r, p),
            _ => return false,
        },
        _ => return false,
    };
    if !n.is_power_of_two() || n < 2 || r == 0 || r > MAX_SCRYPT_R || p == 0 || p > MAX_SCRYPT_P {
        return false;
    }
    let log_n = u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX);
    if log_n > MAX_SCRYPT_LOG_N {
        return false;
    }
    let Ok(params) = scrypt::Params::new(log_n, r, p, out.len()) else {
        return false;
    };
    scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, out).is_ok()
}

/// werkzeug writes the iteration count; an old hash without one used 260,000 (2.0).
fn pbkdf2(password: &str, salt: &str, digest: &str, params: &[&str], out: &mut [u8]) -> bool {
    let iterations = match params {
        [] => 260_000,
        [count] => match count.parse::<u32>() {
            Ok(count) if (1..=MAX_PBKDF2_ITERATIONS).contains(&count) => count,
            _ => return false,
        },
        _ => return false,
    };
    let (password, salt) = (password.as_bytes(), salt.as_bytes());
    match digest {
        "sha256" => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out),
        "sha512" => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, out),
        _ => return false,
    }
    true
}

/// Examples for tests and the README. Made with Python's hashlib exactly as werkzeug 3 does: `hashlib.scrypt(b"abcd",
/// salt=b"q3VXoF7a2kPzLm9T", n=32768, r=8, p=1, dklen=64).hex()`.
pub const SCRYPT_ABCD: &str = "scrypt:32768:8:1$q3VXoF7a2kPzLm9T$f51963bb00756596b06a791194d6377fe51f9a8380962b7061d0cde54cba0440b60c0a491657c42f03ced0833f6cc3aadbafd467b9fcc18ad793675ac7272366";
/// `hashlib.pbkdf2_hmac("sha256", "crème brûlée".encode(), b"Zk81pQw0vB3nX7cA", 600000)`.
pub const PBKDF2_CREME: &str = "pbkdf2:sha256:600000$Zk81pQw0vB3nX7cA$0fe628974ed3c32ec91a96a20457661c61b7b7d0ea16592097f9994d36c3d48e";

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_hashes_check_the_right_password_only() {
        assert!(is_werkzeug(SCRYPT_ABCD) && is_werkzeug(PBKDF2_CREME));
        assert!(verify("abcd", SCRYPT_ABCD));
        assert!(!verify("abce", SCRYPT_ABCD));
        assert!(verify("crème brûlée", PBKDF2_CREME));
        assert!(!verify("creme brulee", PBKDF2_CREME));
    }

    #[test]
    fn malformed_or_greedy_hashes_never_match() {
        for stored in [
            "scrypt",
            "scrypt:32768:8:1$salt",
            "scrypt:32768:8:1$salt$zz",
            "scrypt:1000:8:1$salt$00",
            "scrypt:4194304:8:1$salt$00",
            "pbkdf2:md5:1000$salt$00",
            "pbkdf2:sha256:0$salt$00",
            "pbkdf2:sha256:99999999$salt$00",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        ] {
            assert!(!verify("abcd", stored), "{stored}");
        }
        assert!(!is_werkzeug("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"));
    }
}
