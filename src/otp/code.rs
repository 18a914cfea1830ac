//! One-time codes: uniform decimal strings drawn from the OS CSPRNG by rejection sampling.

use std::fmt;

/// Shortest and longest code the daemon will issue.
pub const MIN_LENGTH: u8 = 6;
pub const MAX_LENGTH: u8 = 10;

/// Where random bytes come from; injected so tests can drive the sampler.
pub trait Entropy: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|err| EntropyError(err.to_string()))
    }
}

/// The CSPRNG failed; no code can be issued safely.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the OS random number generator failed: {0}")]
pub struct EntropyError(String);

/// A code as typed by a person: `length` ASCII digits. Its Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

/// A submitted code that cannot be one of ours; the message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("code must be exactly {0} digits")]
pub struct CodeFormatError(pub u8);

impl Code {
    /// Accepts exactly `length` ASCII digits.
    pub fn parse(raw: &str, length: u8) -> Result<Self, CodeFormatError> {
        if raw.len() == usize::from(length) && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CodeFormatError(length))
        }
    }

    /// Draws a uniform code of `length` digits (leading zeros allowed).
    ///
    /// `u64 % 10^length` would favour small values, so draws at or above the largest multiple of
    /// 10^length that fits in a u64 are thrown away and drawn again (at most ~1e-9 of draws).
    pub fn generate(entropy: &dyn Entropy, length: u8) -> Result<Self, EntropyError> {
        let length = length.clamp(MIN_LENGTH, MAX_LENGTH);
        let range = 10u64.pow(u32::from(length));
        let zone = u64::MAX - (u64::MAX % range);
        loop {
            let mut bytes = [0u8; 8];
            entropy.fill(&mut bytes)?;
            let draw = u64::from_le_bytes(bytes);
            if draw < zone {
                let value = draw % range;
                return Ok(Self(format!(
                    "{value:0width$}",
                    width = usize::from(length)
                )));
            }
        }
    }

    /// The digits; only for the SMS text and the MAC, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(******)")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Entropy that replays scripted u64 draws (little endian).
    pub(crate) struct ScriptedEntropy(pub Mutex<VecDeque<u64>>);

    impl ScriptedEntropy {
        pub(crate) fn new(draws: &[u64]) -> Self {
            Self(Mutex::new(draws.iter().copied().collect()))
        }
    }

    impl Entropy for ScriptedEntropy {
        fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
            let mut draws = self.0.lock().expect("test mutex");
            let draw = draws
                .pop_front()
                .ok_or_else(|| EntropyError("script exhausted".into()))?;
            let bytes = draw.to_le_bytes();
            for (slot, byte) in buf.iter_mut().zip(bytes.iter().cycle()) {
                *slot = *byte;
            }
            Ok(())
        }
    }

    #[test]
    fn draws_in_the_biased_zone_are_rejected() {
        let range = 1_000_000u64;
        let zone = u64::MAX - (u64::MAX % range);
        // Two draws that would alias to small codes under plain modulo, then an honest one.
        let entropy = ScriptedEntropy::new(&[zone, u64::MAX, 1_000_042]);
        let code = Code::generate(&entropy, 6).expect("third draw is accepted");
        assert_eq!(code.expose(), "000042");
    }

    #[test]
    fn codes_keep_leading_zeros_and_the_configured_length() {
        let entropy = ScriptedEntropy::new(&[7, 7]);
        assert_eq!(Code::generate(&entropy, 6).expect("ok").expose(), "000007");
        assert_eq!(
            Code::generate(&entropy, 10).expect("ok").expose(),
            "0000000007"
        );
    }

    #[test]
    fn os_codes_are_digits_and_spread_over_every_position() {
        let mut seen = [[false; 10]; 6];
        for _ in 0..2000 {
            let code = Code::generate(&OsEntropy, 6).expect("OS entropy works");
            assert_eq!(code.expose().len(), 6);
            for (position, digit) in code.expose().bytes().enumerate() {
                seen[position][usize::from(digit - b'0')] = true;
            }
        }
        assert!(
            seen.iter().all(|digits| digits.iter().all(|&s| s)),
            "every digit appears in every position"
        );
    }

    #[test]
    fn parse_accepts_only_exact_digit_strings() {
        assert!(Code::parse("012345", 6).is_ok());
        assert_eq!(Code::parse("12345", 6), Err(CodeFormatError(6)));
        assert_eq!(Code::parse("1234567", 6), Err(CodeFormatError(6)));
        assert_eq!(Code::parse("12a456", 6), Err(CodeFormatError(6)));
        assert_eq!(Code::parse("１２３４５６", 6), Err(CodeFormatError(6)));
        assert_eq!(
            format!("{:?}", Code::parse("123456", 6).expect("ok")),
            "Code(******)"
        );
    }
}
