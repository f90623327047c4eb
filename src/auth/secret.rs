//! Secrets: random tokens, their stored hashes, the API key format with its checksum, argon2id
//! passwords, TOTP (RFC 6238) and recovery codes. Sealing and keyed hashes: `sealing.rs`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AuthError;

pub const MIN_PASSWORD_LEN: usize = 10;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing is not something a request can recover from.
    getrandom::fill(&mut buf).expect("operating system random generator");
    buf
}

/// 256 random bits as 64 hex characters: session tokens, CSRF tokens.
pub fn random_token() -> String {
    hex(&random_bytes::<32>())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How high-entropy secrets (tokens, keys, recovery codes) are stored: SHA-256, so a stolen
/// database does not hand out working credentials. They are random, so no salt or stretching.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Equal-time comparison (`subtle`), so an attacker cannot learn a prefix from response times.
/// The lengths compared are public (hashes, codes of a fixed form).
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// API keys: `opsb_<12 hex id>_<48 hex secret><8 hex crc32>`.

pub const KEY_PREFIX: &str = "opsb_";

pub struct NewKey {
    pub id: String,
    pub key: String,
}

pub fn new_api_key() -> NewKey {
    let id = hex(&random_bytes::<6>());
    let body = format!("{KEY_PREFIX}{id}_{}", hex(&random_bytes::<24>()));
    let key = format!("{body}{:08x}", crc32fast::hash(body.as_bytes()));
    NewKey { id, key }
}

/// The key's id if it is well formed and its checksum matches; a typo is caught here, before
/// any database lookup.
pub fn parse_api_key(key: &str) -> Result<&str, AuthError> {
    let malformed = || AuthError::BadKey("malformed API key (expected opsb_<id>_<secret>)".into());
    let rest = key.strip_prefix(KEY_PREFIX).ok_or_else(malformed)?;
    let (id, secret) = rest.split_once('_').ok_or_else(malformed)?;
    let is_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if id.len() != 12 || secret.len() != 56 || !is_hex(id) || !is_hex(secret) {
        return Err(malformed());
    }
    let (body, sum) = key.split_at(key.len() - 8);
    if format!("{:08x}", crc32fast::hash(body.as_bytes())) != sum {
        return Err(AuthError::BadKey(
            "API key checksum does not match (mistyped or truncated key)".into(),
        ));
    }
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// Passwords.

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    check_password_policy(password)?;
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| AuthError::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("password hash: {e}")))
}

pub fn check_password_policy(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AuthError::Invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Argon2 costs tens of milliseconds of CPU by design: it runs on the blocking pool, at most
/// one per core at a time, so a burst of logins queues instead of starving the async workers
/// that serve everything else.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

async fn on_hashing_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let _slot = hashing_slots()
        .acquire()
        .await
        .map_err(|e| AuthError::Internal(format!("hashing pool: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task: {e}")))
}

/// [`verify_password`] off the async workers.
pub async fn verify_password_off_thread(password: &str, stored: String) -> Result<bool, AuthError> {
    let password = password.to_string();
    on_hashing_pool(move || verify_password(&password, &stored)).await
}

/// [`hash_password`] off the async workers.
pub async fn hash_password_off_thread(password: &str) -> Result<String, AuthError> {
    let password = password.to_string();
    on_hashing_pool(move || hash_password(&password)).await?
}

/// A hash no password matches; verified against when the account does not exist, so a wrong
/// email costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"opsboard-dummy-salt").expect("static salt");
        Argon2::default()
            .hash_password(&random_bytes::<32>(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// A readable random password for generated accounts (demo users, resets): 16 characters.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    random_bytes::<16>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits).

pub const TOTP_STEP_MS: i64 = 30_000;

pub fn new_totp_secret() -> String {
    data_encoding::BASE32_NOPAD.encode(&random_bytes::<20>())
}

pub fn totp_code(secret_b32: &str, step: i64) -> Option<String> {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .ok()?;
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&key).ok()?;
    mac.update(&(step as u64).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    Some(format!("{:06}", bin % 1_000_000))
}

/// The time step a code belongs to, if it is the code of the current step or of one step either
/// side (clock drift). Callers remember the step so that a code is never accepted twice.
pub fn totp_step(secret_b32: &str, code: &str, now_ms: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let now = now_ms.div_euclid(TOTP_STEP_MS);
    (now - 1..=now + 1).find(|&step| totp_code(secret_b32, step).is_some_and(|c| same(&c, &code)))
}

pub fn otpauth_uri(secret_b32: &str, email: &str) -> String {
    let account: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    format!(
        "otpauth://totp/opsboard:{account}?secret={secret_b32}&issuer=opsboard&algorithm=SHA1&digits=6&period=30"
    )
}

/// Ten one-time recovery codes of 80 random bits each, `xxxx-xxxx-xxxx-xxxx` (base32).
pub fn new_recovery_codes() -> Vec<String> {
    (0..10)
        .map(|_| {
            let raw = data_encoding::BASE32_NOPAD
                .encode(&random_bytes::<10>())
                .to_lowercase();
            let groups: Vec<&str> = (0..4).map(|i| &raw[i * 4..i * 4 + 4]).collect();
            groups.join("-")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", last 6 digits.
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (t, code) in [
            (59i64, "287082"),
            (1111111109, "081804"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(totp_code(&secret, t / 30).as_deref(), Some(code), "t={t}");
        }
        assert_eq!(totp_step(&secret, "287 082", 59_000), Some(1));
        assert_eq!(
            totp_step(&secret, "287082", 89_000),
            Some(1),
            "one step of drift is accepted, and named"
        );
        assert_eq!(totp_step(&secret, "287082", 200_000), None);
    }

    #[test]
    fn api_keys_carry_a_checksum() {
        let k = new_api_key();
        assert_eq!(parse_api_key(&k.key).unwrap(), k.id);
        assert!(k.key.len() == KEY_PREFIX.len() + 12 + 1 + 56);
        // One changed character anywhere in the secret is caught without a lookup.
        let mut typo = k.key.clone().into_bytes();
        let i = typo.len() - 20;
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(
            matches!(parse_api_key(&typo), Err(AuthError::BadKey(m)) if m.contains("checksum"))
        );
        assert!(parse_api_key("opsb_nothex_123").is_err());
        assert!(parse_api_key("Bearer something").is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("anything at all", dummy_hash()));
        assert!(matches!(hash_password("short"), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn recovery_codes_carry_80_bits() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        for c in &codes {
            let raw: String = c.chars().filter(|c| *c != '-').collect();
            // 16 base32 characters of 5 bits each.
            assert_eq!(raw.len(), 16, "{c}");
            assert!(
                data_encoding::BASE32_NOPAD
                    .decode(raw.to_uppercase().as_bytes())
                    .is_ok()
            );
        }
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn same_compares_whole_values() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
