//! Keyed MACs of (phone, code): the only form in which a code is kept.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::code::Code;
use crate::phone::PhoneNumber;

/// Shortest server secret accepted: 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

/// HMAC-SHA256 of a challenge.
#[derive(Clone, Copy)]
pub struct Tag([u8; 32]);

impl Tag {
    /// A tag no code has (for comparisons that must take the same time as a real one).
    pub const fn zero() -> Self {
        Self([0; 32])
    }

    /// Constant-time equality, so timing does not reveal how much of a guess was right.
    pub fn matches(&self, other: &Tag) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// HMAC-SHA256 under the server secret.
#[derive(Clone)]
pub struct CodeMac {
    keyed: Hmac<Sha256>,
}

/// The configured secret is too short to key the MAC.
#[derive(Debug, thiserror::Error)]
#[error("the OTP secret has {0} bytes; at least {MIN_SECRET_BYTES} are required")]
pub struct WeakSecret(pub usize);

impl CodeMac {
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        let keyed = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WeakSecret(secret.len()))?;
        Ok(Self { keyed })
    }

    /// MAC over `phone || 0x00 || code`; the separator cannot occur in either part.
    pub fn tag(&self, phone: &PhoneNumber, code: &Code) -> Tag {
        self.tag_in(phone.as_str(), code)
    }

    /// MAC over `context || 0x00 || code`. A phone number is one context; a sign-in flow uses
    /// `signin:<flow>`, which no number can be, so a code never verifies outside its context.
    pub fn tag_in(&self, context: &str, code: &Code) -> Tag {
        // Cloning the keyed state skips re-hashing the key for every code.
        let mut mac = self.keyed.clone();
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(code.expose().as_bytes());
        Tag(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("valid test number")
    }

    fn code(raw: &str) -> Code {
        Code::parse(raw, 6).expect("valid test code")
    }

    #[test]
    fn tag_binds_phone_code_and_key() {
        let mac = CodeMac::new(&[7u8; 32]).expect("long enough");
        let other_key = CodeMac::new(&[8u8; 32]).expect("long enough");
        let base = mac.tag(&phone("+31612345678"), &code("123456"));
        assert!(base.matches(&mac.tag(&phone("+31 6 1234 5678"), &code("123456"))));
        assert!(!base.matches(&mac.tag(&phone("+31612345679"), &code("123456"))));
        assert!(!base.matches(&mac.tag(&phone("+31612345678"), &code("123457"))));
        assert!(!base.matches(&other_key.tag(&phone("+31612345678"), &code("123456"))));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(CodeMac::new(b"too short"), Err(WeakSecret(9))));
    }
}
