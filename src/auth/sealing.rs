//! The server secret's two uses, on kept crates: TOTP secrets sealed with XChaCha20-Poly1305
//! (the user id as associated data, so a sealed secret copied onto another account does not
//! open) and recovery codes stored as HMAC-SHA256 keyed by the secret (a stolen database alone
//! cannot be searched offline for codes).
//!
//! Every stored value names the key that made it (`<kind>.<key id>.<hex>`), so the secret can
//! be rotated: the current key seals and hashes, the previous keys (`auth.previous_secret_keys`)
//! still open and verify, and [`super::Auth::reseal_mfa_secrets`] moves old rows to the current
//! key at start.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AuthError;
use super::secret::{hex, random_bytes, unhex};

type HmacSha256 = Hmac<Sha256>;

const SEALED_PREFIX: &str = "x1";
const CODE_PREFIX: &str = "h1";
const NONCE_LEN: usize = 24;

/// One server secret: its id (derived, not secret) and the two keys derived from it.
#[derive(Clone)]
struct ServerKey {
    id: String,
    seal: [u8; 32],
    codes: [u8; 32],
    /// The master itself, kept only to open values sealed before the AEAD existed.
    legacy: [u8; 32],
}

impl ServerKey {
    fn new(master: [u8; 32]) -> Self {
        let derive = |label: &[u8]| -> [u8; 32] { hmac(&master, &[label]) };
        let id = hex(&Sha256::digest([b"opsboard key id\0".as_slice(), &master].concat())[..4]);
        Self {
            id,
            seal: derive(b"totp-seal"),
            codes: derive(b"recovery-code"),
            legacy: master,
        }
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn parse_master(text: &str, name: &str) -> Result<[u8; 32], AuthError> {
    unhex(text.trim())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| AuthError::Invalid(format!("{name} must be 64 hex characters")))
}

/// The current server key and the ones it replaced.
#[derive(Clone)]
pub struct Keyring {
    current: ServerKey,
    previous: Vec<ServerKey>,
}

impl Keyring {
    pub fn from_hex(current: &str, previous: &[String]) -> Result<Self, AuthError> {
        let previous = previous
            .iter()
            .map(|p| parse_master(p, "auth.previous_secret_keys").map(ServerKey::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            current: ServerKey::new(parse_master(current, "auth.secret_key")?),
            previous,
        })
    }

    /// A fresh random key, and its hex form to store.
    pub fn generate() -> (Self, String) {
        let master = random_bytes::<32>();
        let ring = Self {
            current: ServerKey::new(master),
            previous: Vec::new(),
        };
        (ring, hex(&master))
    }

    fn keys(&self) -> impl Iterator<Item = &ServerKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    fn key(&self, id: &str) -> Option<&ServerKey> {
        self.keys().find(|k| k.id == id)
    }

    /// Seals `plain` for one user with the current key.
    pub fn seal(&self, user_id: i64, plain: &str) -> String {
        let nonce = random_bytes::<NONCE_LEN>();
        let cipher = XChaCha20Poly1305::new((&self.current.seal).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &user_id.to_be_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message under 256 GiB");
        format!(
            "{SEALED_PREFIX}.{}.{}{}",
            self.current.id,
            hex(&nonce),
            hex(&sealed)
        )
    }

    /// Opens a value sealed for `user_id` by any key of the ring (or by the cipher before it).
    pub fn open(&self, user_id: i64, sealed: &str) -> Result<String, AuthError> {
        let broken = || {
            AuthError::Internal(
                "stored MFA secret cannot be opened (wrong auth.secret_key, or a key missing from \
                 auth.previous_secret_keys?)"
                    .into(),
            )
        };
        let Some(rest) = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
        else {
            return self
                .keys()
                .find_map(|k| legacy::open(&k.legacy, sealed))
                .ok_or_else(broken);
        };
        let (id, body) = rest.split_once('.').ok_or_else(broken)?;
        let key = self.key(id).ok_or_else(broken)?;
        let bytes = unhex(body)
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(broken)?;
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let plain = XChaCha20Poly1305::new((&key.seal).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: data,
                    aad: &user_id.to_be_bytes(),
                },
            )
            .map_err(|_| broken())?;
        String::from_utf8(plain).map_err(|_| broken())
    }

    /// Whether a sealed value was made by the current key with the current cipher.
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed.starts_with(&format!("{SEALED_PREFIX}.{}.", self.current.id))
    }

    /// How a recovery code is stored: HMAC of its normal form under the current key.
    pub fn code_hash(&self, code: &str) -> String {
        code_hash_with(&self.current, code)
    }

    /// Every stored form `code` may have: one per key of the ring, and the plain SHA-256 that
    /// codes issued before the HMAC were stored as (they stay valid until replaced).
    pub fn code_hash_candidates(&self, code: &str) -> Vec<String> {
        let mut forms: Vec<String> = self.keys().map(|k| code_hash_with(k, code)).collect();
        forms.push(super::secret::token_hash(&normal_code(code)));
        forms
    }
}

fn normal_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn code_hash_with(key: &ServerKey, code: &str) -> String {
    let tag = hmac(&key.codes, &[normal_code(code).as_bytes()]);
    format!("{CODE_PREFIX}.{}.{}", key.id, hex(&tag))
}

/// The cipher TOTP secrets were sealed with before the AEAD (HMAC-SHA256 keystream, then a
/// truncated HMAC tag). Only opened, never written: rows are resealed at start.
mod legacy {
    use super::{hex, hmac, unhex};

    pub fn open(master: &[u8; 32], sealed: &str) -> Option<String> {
        let bytes = unhex(sealed).filter(|b| b.len() >= 32)?;
        let (nonce, rest) = bytes.split_at(16);
        let (data, tag) = rest.split_at(rest.len() - 16);
        let expected = hmac(master, &[b"mac", nonce, data]);
        if !super::super::secret::same(&hex(&expected[..16]), &hex(tag)) {
            return None;
        }
        let mut plain = data.to_vec();
        for (i, chunk) in plain.chunks_mut(32).enumerate() {
            let block = hmac(master, &[b"enc", nonce, &(i as u32).to_be_bytes()]);
            chunk.iter_mut().zip(block).for_each(|(d, k)| *d ^= k);
        }
        String::from_utf8(plain).ok()
    }

    /// How the old cipher sealed, for the migration test.
    #[cfg(test)]
    pub fn seal(master: &[u8; 32], plain: &str) -> String {
        let nonce = [7u8; 16];
        let mut data = plain.as_bytes().to_vec();
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let block = hmac(master, &[b"enc", &nonce, &(i as u32).to_be_bytes()]);
            chunk.iter_mut().zip(block).for_each(|(d, k)| *d ^= k);
        }
        let tag = hmac(master, &[b"mac", &nonce, &data]);
        hex(&[nonce.as_slice(), &data, &tag[..16]].concat())
    }
}

#[cfg(test)]
pub(super) fn legacy_seal_for_tests(master_hex: &str, plain: &str) -> String {
    legacy::seal(&parse_master(master_hex, "key").expect("test key"), plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "11111111111111111111111111111111111111111111111111111111aaaaaaaa";
    const B: &str = "22222222222222222222222222222222222222222222222222222222bbbbbbbb";

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_detect_tampering() {
        let ring = Keyring::from_hex(A, &[]).unwrap();
        let sealed = ring.seal(7, "JBSWY3DPEHPK3PXP");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert!(ring.is_current(&sealed));
        assert_eq!(ring.open(7, &sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        // Copied onto another account: the associated data differs.
        assert!(ring.open(8, &sealed).is_err());
        // One flipped bit anywhere in the body.
        let mut bad = sealed.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
        assert!(ring.open(7, &String::from_utf8(bad).unwrap()).is_err());
        // Another server's key.
        assert!(Keyring::generate().0.open(7, &sealed).is_err());
        // Two seals of one secret differ (random nonce).
        assert_ne!(ring.seal(7, "x"), ring.seal(7, "x"));
    }

    #[test]
    fn rotation_opens_with_previous_keys_and_reseals_with_the_current_one() {
        let old = Keyring::from_hex(A, &[]).unwrap();
        let sealed = old.seal(3, "SECRET");
        let rotated = Keyring::from_hex(B, &[A.to_string()]).unwrap();
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open(3, &sealed).unwrap(), "SECRET");
        assert!(rotated.is_current(&rotated.seal(3, "SECRET")));
        // Without the old key in the ring it cannot open.
        let err = Keyring::from_hex(B, &[])
            .unwrap()
            .open(3, &sealed)
            .unwrap_err();
        assert!(err.to_string().contains("previous_secret_keys"), "{err}");
    }

    #[test]
    fn values_sealed_by_the_old_cipher_still_open() {
        let sealed = legacy_seal_for_tests(A, "JBSWY3DPEHPK3PXP");
        let ring = Keyring::from_hex(B, &[A.to_string()]).unwrap();
        assert_eq!(ring.open(1, &sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(!ring.is_current(&sealed));
        assert!(Keyring::from_hex(B, &[]).unwrap().open(1, &sealed).is_err());
    }

    #[test]
    fn recovery_codes_are_keyed_hashes_found_under_every_key() {
        let old = Keyring::from_hex(A, &[]).unwrap();
        let stored = old.code_hash("abcd-efgh-ijkl-mnop");
        assert!(stored.starts_with("h1."));
        // The same code typed in capitals or without dashes.
        assert_eq!(old.code_hash("ABCDEFGHIJKLMNOP"), stored);
        // Not the plain SHA-256 a stolen database could be searched against.
        assert!(!stored.contains(&crate::auth::secret::token_hash("abcdefghijklmnop")));
        let rotated = Keyring::from_hex(B, &[A.to_string()]).unwrap();
        assert_ne!(rotated.code_hash("abcd-efgh-ijkl-mnop"), stored);
        assert!(
            rotated
                .code_hash_candidates("abcd-efgh-ijkl-mnop")
                .contains(&stored)
        );
        assert!(
            rotated
                .code_hash_candidates("abcd-efgh-ijkl-mnop")
                .contains(&crate::auth::secret::token_hash("abcdefghijklmnop"))
        );
    }

    #[test]
    fn malformed_keys_name_the_setting() {
        let err = Keyring::from_hex("abc", &[]).err().unwrap();
        assert!(err.to_string().contains("auth.secret_key"), "{err}");
        let err = Keyring::from_hex(A, &["zz".into()]).err().unwrap();
        assert!(err.to_string().contains("previous_secret_keys"), "{err}");
    }
}
