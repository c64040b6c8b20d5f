//! RS256 verification (RSASSA-PKCS1-v1_5 with SHA-256) with a tenant's published key.
//!
//! On OpenSSL, with a few verification contexts kept per key: OpenSSL computes the Montgomery
//! constants of a modulus once and keeps them with the key, where ring recomputes them on every
//! verification — a quarter of each check's cost, and the difference between meeting and
//! missing the cold-token target (BENCHMARKS.md, "Token check").

use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::md::Md;
use openssl::pkey::{PKey, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use sha2::{Digest, Sha256};

/// Smallest and largest modulus accepted, in bits (Entra's keys are 2048).
const MODULUS_BITS: std::ops::RangeInclusive<u32> = 2048..=8192;
/// Contexts kept per key: about one per thread that verifies at once.
const POOLED_CONTEXTS: usize = 8;

/// A public key ready to verify RS256 signatures.
pub struct VerifyingKey {
    key: PKey<Public>,
    contexts: Mutex<Vec<PkeyCtx<Public>>>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({} bits)", self.key.bits())
    }
}

impl VerifyingKey {
    /// The key with base64url modulus `n` and exponent `e`, as a JWK gives them.
    pub fn from_jwk_components(n: &str, e: &str) -> Result<VerifyingKey, String> {
        let decode = |name: &str, text: &str| {
            URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|e| format!("`{name}` is not base64url: {e}"))
        };
        let n = openssl::bn::BigNum::from_slice(&decode("n", n)?).map_err(|e| e.to_string())?;
        let e = openssl::bn::BigNum::from_slice(&decode("e", e)?).map_err(|e| e.to_string())?;
        let rsa = Rsa::from_public_components(n, e).map_err(|e| e.to_string())?;
        let key = PKey::from_rsa(rsa).map_err(|e| e.to_string())?;
        if !MODULUS_BITS.contains(&key.bits()) {
            return Err(format!("a {}-bit RSA key; 2048 to 8192 bits are accepted", key.bits()));
        }
        Ok(VerifyingKey { key, contexts: Mutex::new(Vec::new()) })
    }

    /// Whether `signature` (base64url) is this key's RS256 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<bool, String> {
        let signature = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .map_err(|e| format!("the signature is not base64url: {e}"))?;
        // sha2 (SHA-NI where the CPU has it) rather than OpenSSL's one-shot SHA256(), which in
        // OpenSSL 3 looks the digest up by name on every call: a tenth of a verification.
        let digest: [u8; 32] = Sha256::digest(message).into();
        let pooled = self.contexts.lock().ok().and_then(|mut pool| pool.pop());
        let mut context = match pooled {
            Some(context) => context,
            None => self.context().map_err(|e| format!("cannot set up verification: {e}"))?,
        };
        // A wrong signature is `Ok(false)`; OpenSSL's errors (a signature of the wrong length)
        // are refusals too.
        let valid = context.verify(&digest, &signature).unwrap_or(false);
        if let Ok(mut pool) = self.contexts.lock() {
            if pool.len() < POOLED_CONTEXTS {
                pool.push(context);
            }
        }
        Ok(valid)
    }

    fn context(&self) -> Result<PkeyCtx<Public>, openssl::error::ErrorStack> {
        let mut context = PkeyCtx::new(&self.key)?;
        context.verify_init()?;
        context.set_rsa_padding(Padding::PKCS1)?;
        context.set_signature_md(Md::sha256())?;
        Ok(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key and a message signed with it by OpenSSL's own signer, independent of the verifier.
    fn signed(message: &[u8]) -> (VerifyingKey, String) {
        let private = Rsa::generate(2048).unwrap();
        let n = URL_SAFE_NO_PAD.encode(private.n().to_vec());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_vec());
        let pkey = PKey::from_rsa(private).unwrap();
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
        let signature = URL_SAFE_NO_PAD.encode(signer.sign_oneshot_to_vec(message).unwrap());
        (VerifyingKey::from_jwk_components(&n, &e).unwrap(), signature)
    }

    #[test]
    fn verifies_rs256_and_refuses_anything_else() {
        let (key, signature) = signed(b"header.payload");
        for _ in 0..POOLED_CONTEXTS + 2 {
            assert_eq!(key.verify(b"header.payload", &signature), Ok(true));
        }
        assert_eq!(key.verify(b"header.payloaD", &signature), Ok(false));
        let mut tampered = signature.clone().into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.verify(b"header.payload", std::str::from_utf8(&tampered).unwrap()), Ok(false));
        assert_eq!(key.verify(b"header.payload", "c2hvcnQ"), Ok(false), "a short signature");
        assert!(key.verify(b"header.payload", "!!").is_err());
    }

    #[test]
    fn small_keys_are_refused() {
        let small = Rsa::generate(1024).unwrap();
        let n = URL_SAFE_NO_PAD.encode(small.n().to_vec());
        let e = URL_SAFE_NO_PAD.encode(small.e().to_vec());
        let error = VerifyingKey::from_jwk_components(&n, &e).unwrap_err();
        assert!(error.contains("1024-bit"), "{error}");
        assert!(VerifyingKey::from_jwk_components("***", "AQAB").is_err());
    }
}
