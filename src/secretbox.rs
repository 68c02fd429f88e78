//! Sealing small secrets (TOTP secrets at rest) and keyed MACs, both derived from one master key.
//!
//! The master key is never used directly: `derive(purpose)` = HMAC-SHA256(master, "stepgate/v1/" +
//! purpose) gives an independent key per use, so the encryption key and each MAC key differ.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const SEAL_PURPOSE: &str = "secretbox-seal";

pub struct SecretBox {
    master: [u8; 32],
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// HMAC-SHA256 with a 32-byte key. The key is zero-padded to the 64-byte block, which is exactly
/// what HMAC does with a short key, so this is plain HMAC-SHA256 without a fallible constructor.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> SecretBox {
        let seal_key = hmac_sha256(&key, &[b"stepgate/v1/", SEAL_PURPOSE.as_bytes()]);
        SecretBox { master: key, cipher: XChaCha20Poly1305::new(Key::from_slice(&seal_key)) }
    }

    fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.master, &[b"stepgate/v1/", purpose.as_bytes()])
    }

    /// XChaCha20-Poly1305 with a random 24-byte nonce; returns base64url(nonce || ciphertext).
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // The only failure of `encrypt` is a plaintext over 256 GiB, which cannot be in memory here.
        #[allow(clippy::expect_used)]
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("XChaCha20-Poly1305 fails only on plaintexts over 256 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext, or None if `sealed` is malformed, was sealed under another key, or was altered.
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.trim()).ok()?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).ok()
    }

    /// HMAC-SHA256 of `data` under a key derived from the master key and `purpose`.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.derive(purpose), &[data])
    }

    /// Whether `tag` is `mac(purpose, data)`, compared in constant time.
    pub fn verify_mac(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(purpose, data);
        expected.as_slice().ct_eq(tag).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(b: u8) -> SecretBox {
        SecretBox::new([b; 32])
    }

    #[test]
    fn seal_open_round_trip_and_random_nonce() {
        let b = sb(7);
        let a1 = b.seal(b"totp secret");
        let a2 = b.seal(b"totp secret");
        assert_ne!(a1, a2, "each seal uses a fresh nonce");
        assert_eq!(b.open(&a1).as_deref(), Some(&b"totp secret"[..]));
        assert_eq!(b.open(&a2).as_deref(), Some(&b"totp secret"[..]));
        assert_eq!(b.open(&b.seal(b"")).as_deref(), Some(&b""[..]));
        // base64url without padding, nonce + tag + plaintext
        let raw = URL_SAFE_NO_PAD.decode(&a1).unwrap();
        assert_eq!(raw.len(), NONCE_LEN + TAG_LEN + 11);
        assert!(!a1.contains('=') && !a1.contains('+') && !a1.contains('/'));
    }

    #[test]
    fn open_rejects_other_key_tampering_and_garbage() {
        let b = sb(7);
        let sealed = b.seal(b"hello");
        assert_eq!(sb(8).open(&sealed), None);
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(b.open(&URL_SAFE_NO_PAD.encode(&raw)), None);
        raw[last] ^= 1;
        raw[0] ^= 1; // nonce
        assert_eq!(b.open(&URL_SAFE_NO_PAD.encode(&raw)), None);
        assert_eq!(b.open(""), None);
        assert_eq!(b.open("!!!not base64"), None);
        assert_eq!(b.open(&URL_SAFE_NO_PAD.encode([0u8; 39])), None);
    }

    #[test]
    fn mac_is_keyed_by_purpose_and_verified() {
        let b = sb(1);
        let t = b.mac("recovery", b"data");
        assert_eq!(t, b.mac("recovery", b"data"));
        assert_ne!(t, b.mac("csrf", b"data"));
        assert_ne!(t, b.mac("recovery", b"datA"));
        assert_ne!(t, sb(2).mac("recovery", b"data"));
        // the derived key is not the master key itself
        assert_ne!(t, hmac_sha256(&[1; 32], &[b"data"]));
        assert!(b.verify_mac("recovery", b"data", &t));
        assert!(!b.verify_mac("csrf", b"data", &t));
        assert!(!b.verify_mac("recovery", b"data", &t[..31]));
        assert!(!b.verify_mac("recovery", b"data", &[]));
    }

    #[test]
    fn hmac_matches_rfc4231_case_2_style_reference() {
        // RFC 4231 test case 2 uses a 4-byte key; HMAC zero-pads short keys, so padding "Jefe"
        // to 32 bytes must give the published result.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let out = hmac_sha256(&key, &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(out), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", sb(9)), "SecretBox(..)");
    }
}
