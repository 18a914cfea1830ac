//! The signed sign-in assertion: a JWT (jsonwebtoken) that frontends verify offline against the
//! published JWKS. Several keys may be configured: the first signs, all are published, so a key
//! can be rotated in before it signs and kept published after it stops.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The signing algorithms offered; EdDSA (Ed25519) is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum SigningAlg {
    #[default]
    EdDSA,
    ES256,
    RS256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::RS256 => Algorithm::RS256,
        }
    }
}

/// Why a signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key (PKCS#8, or PKCS#1 for RSA): {0}")]
    Pem(String),
    #[error("the key is not a valid {alg} key: {reason}")]
    Rejected { alg: &'static str, reason: String },
    #[error("RSA keys need at least 2048 bits")]
    RsaTooShort,
}

/// One private key with its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

impl SigningKey {
    /// Parses a PEM private key for `alg`; without `kid`, the key's RFC 7638 thumbprint names it.
    pub fn from_pem(alg: SigningAlg, pem: &[u8], kid: Option<String>) -> Result<Self, KeyError> {
        let der =
            PrivateKeyDer::from_pem_slice(pem).map_err(|err| KeyError::Pem(err.to_string()))?;
        let rejected = |reason: String| KeyError::Rejected {
            alg: alg.as_str(),
            reason,
        };
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (mut jwk, encoding) = match (alg, &der) {
            (SigningAlg::EdDSA, PrivateKeyDer::Pkcs8(pkcs8)) => {
                let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(
                    pkcs8.secret_pkcs8_der(),
                )
                .map_err(|err| rejected(err.to_string()))?;
                let jwk = serde_json::json!({
                    "crv": "Ed25519",
                    "kty": "OKP",
                    "x": b64(pair.public_key().as_ref()),
                });
                let encoding = EncodingKey::from_ed_der(pkcs8.secret_pkcs8_der());
                (jwk, encoding)
            }
            (SigningAlg::ES256, PrivateKeyDer::Pkcs8(pkcs8)) => {
                let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8.secret_pkcs8_der(),
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|err| rejected(err.to_string()))?;
                // An uncompressed point: 0x04, x, y.
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(rejected("not a P-256 key".to_owned()));
                }
                let jwk = serde_json::json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": b64(&point[1..33]),
                    "y": b64(&point[33..]),
                });
                let encoding = EncodingKey::from_ec_der(pkcs8.secret_pkcs8_der());
                (jwk, encoding)
            }
            (SigningAlg::RS256, PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Pkcs1(_)) => {
                let pair = match &der {
                    PrivateKeyDer::Pkcs8(pkcs8) => {
                        ring::rsa::KeyPair::from_pkcs8(pkcs8.secret_pkcs8_der())
                    }
                    PrivateKeyDer::Pkcs1(pkcs1) => {
                        ring::rsa::KeyPair::from_der(pkcs1.secret_pkcs1_der())
                    }
                    _ => unreachable!("matched above"),
                }
                .map_err(|err| rejected(err.to_string()))?;
                if pair.public().modulus_len() < 256 {
                    return Err(KeyError::RsaTooShort);
                }
                let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                let jwk = serde_json::json!({
                    "e": b64(&parts.e),
                    "kty": "RSA",
                    "n": b64(&parts.n),
                });
                let encoding =
                    EncodingKey::from_rsa_pem(pem).map_err(|err| rejected(err.to_string()))?;
                (jwk, encoding)
            }
            _ => return Err(rejected("this PEM holds another kind of key".to_owned())),
        };
        // RFC 7638: the SHA-256 of the required members in lexicographic order, no whitespace
        // (serde_json's map is ordered, so `to_string` is that canonical form).
        let thumbprint = b64(&Sha256::digest(jwk.to_string().as_bytes()));
        let kid = kid.unwrap_or(thumbprint);
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".to_owned(), kid.clone().into());
            members.insert("alg".to_owned(), alg.as_str().into());
            members.insert("use".to_owned(), "sig".into());
        }
        Ok(Self {
            kid,
            alg,
            encoding,
            jwk,
        })
    }
}

/// The configured keys: the first signs, all are published.
#[derive(Clone)]
pub struct SigningKeys(Arc<Vec<SigningKey>>);

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|k| (k.alg.as_str(), &k.kid)))
            .finish()
    }
}

/// The claims of an assertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id, never the phone number.
    pub sub: String,
    pub tid: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub auth_time: u64,
    pub amr: Vec<String>,
    pub phone_method_id: String,
    pub name: String,
    pub preferred_username: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the assertion: {0}")]
pub struct SignError(String);

impl SigningKeys {
    /// At least one key is required.
    pub fn new(keys: Vec<SigningKey>) -> Option<Self> {
        (!keys.is_empty()).then(|| Self(Arc::new(keys)))
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let key = &self.0[0];
        let mut header = Header::new(key.alg.jwt());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| SignError(e.to_string()))
    }

    /// `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.0.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// The algorithms of the published keys, each once.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = Vec::new();
        for key in self.0.iter() {
            if !algs.contains(&key.alg.as_str()) {
                algs.push(key.alg.as_str());
            }
        }
        algs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};

    fn claims(now: u64) -> Claims {
        Claims {
            iss: "https://otpgate.test".into(),
            aud: "frontend".into(),
            sub: "user-1".into(),
            tid: "contoso".into(),
            iat: now,
            exp: now + 120,
            jti: "j1".into(),
            auth_time: now,
            amr: vec!["sms".into()],
            phone_method_id: "3179e48a-750b-4051-897c-87b9720928f7".into(),
            name: "Adele".into(),
            preferred_username: "adele@contoso.test".into(),
        }
    }

    fn round_trip(alg: SigningAlg, pem: &str) {
        let keys = SigningKeys::new(vec![
            SigningKey::from_pem(alg, pem.as_bytes(), None).expect("key"),
        ])
        .expect("one key");
        let now = jsonwebtoken::get_current_timestamp();
        let token = keys.sign(&claims(now)).expect("signs");
        let set: JwkSet = serde_json::from_value(keys.jwks()).expect("a JWKS");
        let jwk = &set.keys[0];
        let mut validation = Validation::new(alg.jwt());
        validation.set_audience(&["frontend"]);
        validation.set_issuer(&["https://otpgate.test"]);
        let decoded = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_jwk(jwk).expect("usable JWK"),
            &validation,
        )
        .expect("verifies with the published key");
        assert_eq!(decoded.claims, claims(now));
        assert_eq!(decoded.header.kid, jwk.common.key_id);
    }

    #[test]
    fn ed25519_and_p256_keys_sign_what_their_jwk_verifies() {
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
        round_trip(SigningAlg::EdDSA, &ed.serialize_pem());
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
        round_trip(SigningAlg::ES256, &ec.serialize_pem());
    }

    #[test]
    fn rsa_keys_sign_what_their_jwk_verifies() {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rsa-2048.pem"
        ))
        .expect("fixture");
        round_trip(SigningAlg::RS256, &pem);
    }

    #[test]
    fn the_first_key_signs_and_every_key_is_published() {
        let new = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
        let old = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
        let keys = SigningKeys::new(vec![
            SigningKey::from_pem(SigningAlg::EdDSA, new.serialize_pem().as_bytes(), None)
                .expect("key"),
            SigningKey::from_pem(
                SigningAlg::ES256,
                old.serialize_pem().as_bytes(),
                Some("2026-old".to_owned()),
            )
            .expect("key"),
        ])
        .expect("two keys");
        let set: JwkSet = serde_json::from_value(keys.jwks()).expect("a JWKS");
        assert_eq!(set.keys.len(), 2);
        assert_eq!(set.keys[1].common.key_id.as_deref(), Some("2026-old"));
        assert_eq!(keys.algorithms(), ["EdDSA", "ES256"]);
        let token = keys
            .sign(&claims(jsonwebtoken::get_current_timestamp()))
            .expect("signs");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid, set.keys[0].common.key_id);
        // No private material is published.
        assert!(!keys.jwks().to_string().contains("\"d\""));
    }

    #[test]
    fn a_key_of_another_kind_is_refused() {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
        assert!(matches!(
            SigningKey::from_pem(SigningAlg::EdDSA, ec.serialize_pem().as_bytes(), None),
            Err(KeyError::Rejected { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem(SigningAlg::EdDSA, b"not pem", None),
            Err(KeyError::Pem(_))
        ));
    }
}
