//! The OTP engine: issue a code for a number, verify an attempt, sweep what expired.

pub mod code;
pub mod guard;
pub mod mac;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

pub use code::{Code, CodeFormatError, Entropy, EntropyError, OsEntropy};
pub use guard::{FailureGuard, GuessPolicy, Locked, Outcome};
pub use mac::{CodeMac, WeakSecret};
pub use store::{Challenge, ChallengeId, ChallengeStore, MemoryStore, StoreFull, Verdict};

use crate::clock::SharedClock;
use crate::metrics as m;
use crate::phone::PhoneNumber;

/// How codes are made and judged.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub code_length: u8,
    pub ttl: Duration,
    pub max_attempts: u32,
}

/// A freshly issued code: the code goes into the SMS, the rest back to the caller.
#[derive(Debug)]
pub struct Issued {
    pub id: ChallengeId,
    pub code: Code,
    pub expires_in: Duration,
}

/// Why no code was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    StoreFull(#[from] StoreFull),
    #[error(transparent)]
    Entropy(#[from] EntropyError),
}

/// Cheap-to-clone handle to the engine.
#[derive(Clone)]
pub struct OtpService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ChallengeStore>,
    mac: CodeMac,
    entropy: Arc<dyn Entropy>,
    clock: SharedClock,
    policy: Policy,
    /// Wrong guesses per number across codes (see `guard.rs`).
    guard: FailureGuard,
}

impl OtpService {
    pub fn new(
        store: Arc<dyn ChallengeStore>,
        mac: CodeMac,
        entropy: Arc<dyn Entropy>,
        clock: SharedClock,
        policy: Policy,
        guessing: GuessPolicy,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                mac,
                entropy,
                clock,
                policy,
                guard: FailureGuard::new(guessing),
            }),
        }
    }

    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// Issues a new code for `phone`, replacing any pending one.
    pub fn issue(&self, phone: &PhoneNumber) -> Result<Issued, IssueError> {
        let inner = &*self.inner;
        let code = Code::generate(&*inner.entropy, inner.policy.code_length)?;
        let id = self.new_id()?;
        let challenge = Challenge {
            id: id.clone(),
            tag: inner.mac.tag(phone, &code),
            expires_at: inner.clock.now() + inner.policy.ttl,
            attempts: 0,
        };
        inner.store.put(phone, challenge)?;
        metrics::counter!(m::OTP_ISSUED_TOTAL).increment(1);
        self.record_pending();
        Ok(Issued {
            id,
            code,
            expires_in: inner.policy.ttl,
        })
    }

    /// Judges one attempt at `phone`'s pending code.
    pub fn verify(&self, phone: &PhoneNumber, code: &Code) -> Verdict {
        let inner = &*self.inner;
        // The MAC is computed before the store's lock is taken, to keep the lock short.
        let candidate = inner.mac.tag(phone, code);
        let now = inner.clock.now();
        // A locked number is not compared at all: its pending code keeps its attempts.
        let verdict = match inner.guard.check(phone, now) {
            Err(Locked { retry_after }) => Verdict::Locked { retry_after },
            Ok(()) => {
                let verdict =
                    inner
                        .store
                        .attempt(phone, &candidate, now, inner.policy.max_attempts);
                // Every outcome takes the same path through the number's failure record.
                if inner.guard.settle(phone, now, Outcome::of(&verdict)) {
                    metrics::counter!(m::OTP_LOCKOUTS_TOTAL).increment(1);
                }
                verdict
            }
        };
        metrics::counter!(m::OTP_VERIFICATIONS_TOTAL, m::LABEL_RESULT => verdict.as_str())
            .increment(1);
        // Whatever the outcome, so that it costs the same.
        self.record_pending();
        verdict
    }

    /// Withdraws a code that could not be sent.
    pub fn revoke(&self, phone: &PhoneNumber, id: &ChallengeId) {
        self.inner.store.revoke(phone, id);
        self.record_pending();
    }

    /// Whether a newer code than `id` is pending for `phone` (its SMS need not go out).
    pub fn replaced(&self, phone: &PhoneNumber, id: &ChallengeId) -> bool {
        self.inner.store.replaced(phone, id)
    }

    /// Drops expired challenges, and failure records with nothing left to enforce; returns
    /// how many challenges were dropped.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now();
        let removed = self.inner.store.sweep(now);
        self.inner.guard.sweep(now);
        metrics::gauge!(m::OTP_LOCKED_NUMBERS).set(self.inner.guard.locked(now) as f64);
        self.record_pending();
        removed
    }

    pub fn pending(&self) -> usize {
        self.inner.store.len()
    }

    fn record_pending(&self) {
        metrics::gauge!(m::OTP_PENDING).set(self.inner.store.len() as f64);
    }

    fn new_id(&self) -> Result<ChallengeId, EntropyError> {
        let mut bytes = [0u8; 16];
        self.inner.entropy.fill(&mut bytes)?;
        let mut id = String::with_capacity(32);
        for byte in bytes {
            id.push_str(&format!("{byte:02x}"));
        }
        Ok(ChallengeId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    struct Fixture {
        clock: Arc<ManualClock>,
        otp: OtpService,
    }

    fn fixture(capacity: usize) -> Fixture {
        let clock = Arc::new(ManualClock::new());
        let otp = OtpService::new(
            Arc::new(MemoryStore::new(capacity)),
            CodeMac::new(&[42u8; 32]).expect("long enough"),
            Arc::new(OsEntropy),
            clock.clone(),
            Policy {
                code_length: 6,
                ttl: Duration::from_secs(300),
                max_attempts: 5,
            },
            GuessPolicy::default(),
        );
        Fixture { clock, otp }
    }

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("valid test number")
    }

    /// A code guaranteed to differ from `code`.
    fn wrong(code: &Code) -> Code {
        let flipped: String = code
            .expose()
            .bytes()
            .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
            .collect();
        Code::parse(&flipped, 6).expect("still six digits")
    }

    #[test]
    fn a_code_verifies_once() {
        let f = fixture(10);
        let number = phone("+31612345678");
        let issued = f.otp.issue(&number).expect("issued");
        assert_eq!(f.otp.verify(&number, &issued.code), Verdict::Approved);
        assert_eq!(f.otp.verify(&number, &issued.code), Verdict::NotFound);
    }

    #[test]
    fn wrong_guesses_count_down_then_even_the_right_code_is_refused() {
        let f = fixture(10);
        let number = phone("+31612345678");
        let issued = f.otp.issue(&number).expect("issued");
        let bad = wrong(&issued.code);
        for left in (0..5).rev() {
            assert_eq!(
                f.otp.verify(&number, &bad),
                Verdict::Denied {
                    attempts_left: left
                }
            );
        }
        assert_eq!(
            f.otp.verify(&number, &issued.code),
            Verdict::MaxAttemptsReached
        );
    }

    #[test]
    fn concurrent_wrong_guesses_are_counted_exactly() {
        let f = fixture(10);
        let number = phone("+31612345678");
        let issued = f.otp.issue(&number).expect("issued");
        let bad = wrong(&issued.code);
        let verdicts: Vec<Verdict> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..100)
                .map(|_| scope.spawn(|| f.otp.verify(&number, &bad)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        let denied = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Denied { .. }))
            .count();
        let refused = verdicts
            .iter()
            .filter(|v| **v == Verdict::MaxAttemptsReached)
            .count();
        assert_eq!((denied, refused), (5, 95));
    }

    #[test]
    fn a_code_expires_at_its_ttl() {
        let f = fixture(10);
        let number = phone("+31612345678");
        let issued = f.otp.issue(&number).expect("issued");
        f.clock.advance(Duration::from_secs(299));
        assert_eq!(
            f.otp.verify(&number, &wrong(&issued.code)),
            Verdict::Denied { attempts_left: 4 }
        );
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.otp.verify(&number, &issued.code), Verdict::Expired);
        assert_eq!(f.otp.verify(&number, &issued.code), Verdict::NotFound);
    }

    #[test]
    fn a_new_send_replaces_the_pending_code() {
        let f = fixture(10);
        let number = phone("+31612345678");
        let first = f.otp.issue(&number).expect("issued");
        let mut second = f.otp.issue(&number).expect("issued");
        while second.code == first.code {
            second = f.otp.issue(&number).expect("issued");
        }
        assert_eq!(
            f.otp.verify(&number, &first.code),
            Verdict::Denied { attempts_left: 4 }
        );
        assert_eq!(f.otp.verify(&number, &second.code), Verdict::Approved);
    }

    #[test]
    fn the_store_is_capped_and_sweeping_frees_it() {
        let f = fixture(2);
        f.otp.issue(&phone("+31600000001")).expect("room");
        f.otp.issue(&phone("+31600000002")).expect("room");
        assert!(matches!(
            f.otp.issue(&phone("+31600000003")),
            Err(IssueError::StoreFull(_))
        ));
        // Replacing an existing number's code is allowed at the cap.
        f.otp
            .issue(&phone("+31600000002"))
            .expect("replacement fits");
        f.clock.advance(Duration::from_secs(300));
        assert_eq!(f.otp.sweep(), 2);
        assert_eq!(f.otp.pending(), 0);
        f.otp.issue(&phone("+31600000003")).expect("room again");
    }

    #[test]
    fn revoke_removes_only_the_named_challenge() {
        let f = fixture(10);
        let number = phone("+31612345678");
        let first = f.otp.issue(&number).expect("issued");
        let second = f.otp.issue(&number).expect("issued");
        f.otp.revoke(&number, &first.id);
        assert_eq!(f.otp.pending(), 1);
        f.otp.revoke(&number, &second.id);
        assert_eq!(f.otp.pending(), 0);
    }
}
