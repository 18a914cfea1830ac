//! SMS sign-in flows: start (a code to a `ready` number, a decoy for every other number) and
//! complete (the code, bound to its flow, for a signed assertion).
//!
//! No enumeration: a start does the same work and answers the same for a ready, an unknown and a
//! not-allowed number; a decoy flow has a challenge like a real one (MAC'd in another context, so
//! no code can ever match it) and counts attempts the same way. One pending flow per tenant and
//! number: a new start replaces the old one, as a new `/v1/otp/send` does.

pub mod assertion;

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use dashmap::DashMap;

pub use assertion::{Claims, SigningAlg, SigningKey, SigningKeys};

use crate::clock::SharedClock;
use crate::directory::{Directory, PhoneType, ReadyEntry};
use crate::metrics as m;
use crate::otp::{
    Challenge, ChallengeId, Code, CodeMac, Entropy, EntropyError, FailureGuard, GuessPolicy,
    Locked, MemoryStore, Outcome, Policy, StoreFull, Verdict,
};
use crate::phone::PhoneNumber;

/// How assertions are made.
#[derive(Debug, Clone)]
pub struct SignInSettings {
    pub issuer: String,
    /// At most 120 s.
    pub assertion_ttl: Duration,
    pub keys: SigningKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FlowKey {
    tenant: String,
    phone: PhoneNumber,
}

#[derive(Clone)]
struct Flow {
    key: FlowKey,
    /// `None` for a decoy.
    subject: Option<Arc<ReadyEntry>>,
    /// The API client that started it; only it may complete it.
    client: String,
    expires_at: Instant,
}

/// A started flow; `code` is set only for a ready number, and only it gets an SMS.
#[derive(Debug)]
pub struct Started {
    pub flow: String,
    pub expires_in: Duration,
    pub code: Option<Code>,
    pub user_id: Option<String>,
}

/// What a complete call decided.
#[derive(Debug)]
pub enum Completed {
    Approved {
        user_id: String,
        tenant: String,
        phone_method_id: &'static str,
        assertion: String,
        expires_in: u64,
        phone: PhoneNumber,
    },
    /// Any other verdict, with the flow's tenant, user (if real) and number when known.
    Refused {
        verdict: Verdict,
        tenant: Option<String>,
        user_id: Option<String>,
        phone: Option<PhoneNumber>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    StoreFull(#[from] StoreFull),
    #[error(transparent)]
    Entropy(#[from] EntropyError),
}

#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    #[error(transparent)]
    Sign(#[from] assertion::SignError),
    #[error(transparent)]
    Entropy(#[from] EntropyError),
}

/// The MAC context of a flow's code: `signin:<flow>` for a real one, `decoy:<flow>` for a
/// decoy. Complete always tries the real context, so no code matches a decoy; no phone number
/// (the context of `/v1/otp` codes) can be either.
fn context(flow: &str, real: bool) -> String {
    match real {
        true => format!("signin:{flow}"),
        false => format!("decoy:{flow}"),
    }
}

/// Cheap-to-clone handle to the sign-in flows.
#[derive(Clone)]
pub struct SignIn {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Arc<dyn Directory>,
    store: MemoryStore<FlowKey>,
    /// Flows replaced by a newer start stay here until they expire; the per-number send limit
    /// bounds how many, so the store's capacity bounds both.
    flows: DashMap<String, Flow>,
    mac: CodeMac,
    entropy: Arc<dyn Entropy>,
    clock: SharedClock,
    policy: Policy,
    /// Wrong codes per number across flows (see `otp::guard`).
    guard: FailureGuard,
    settings: SignInSettings,
}

impl SignIn {
    // The engine's parts, each injected by app.rs (tests and benches swap the clock, entropy
    // and directory); a builder would only restate them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        directory: Arc<dyn Directory>,
        mac: CodeMac,
        entropy: Arc<dyn Entropy>,
        clock: SharedClock,
        policy: Policy,
        guessing: GuessPolicy,
        settings: SignInSettings,
        capacity: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                directory,
                store: MemoryStore::keyed(capacity),
                flows: DashMap::new(),
                mac,
                entropy,
                clock,
                policy,
                guard: FailureGuard::new(guessing),
                settings,
            }),
        }
    }

    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.inner.directory
    }

    pub fn settings(&self) -> &SignInSettings {
        &self.inner.settings
    }

    /// Starts a flow for `phone` in `tenant`: a real one if the number is ready, a decoy if not.
    pub fn start(
        &self,
        tenant: &str,
        phone: &PhoneNumber,
        client: &str,
    ) -> Result<Started, StartError> {
        let inner = &*self.inner;
        let subject = inner.directory.ready(tenant, phone);
        // The same work for both: a code, a flow id, one MAC.
        let code = Code::generate(&*inner.entropy, inner.policy.code_length)?;
        let flow = self.random_hex()?;
        let context = context(&flow, subject.is_some());
        let key = FlowKey {
            tenant: tenant.to_owned(),
            phone: phone.clone(),
        };
        let expires_at = inner.clock.now() + inner.policy.ttl;
        inner.store.put_keyed(
            &key,
            Challenge {
                id: ChallengeId(flow.clone()),
                tag: inner.mac.tag_in(&context, &code),
                expires_at,
                attempts: 0,
            },
        )?;
        let user_id = subject.as_ref().map(|s| s.user_id.clone());
        let real = subject.is_some();
        inner.flows.insert(
            flow.clone(),
            Flow {
                key,
                subject,
                client: client.to_owned(),
                expires_at,
            },
        );
        metrics::counter!(m::SIGNIN_STARTS_TOTAL).increment(1);
        self.record_pending();
        Ok(Started {
            flow,
            expires_in: inner.policy.ttl,
            code: real.then_some(code),
            user_id,
        })
    }

    /// Turns a real flow whose SMS could not be queued into a decoy: it goes on answering like
    /// any flow (a revoked one would answer `not_found` at once, and so tell that the number is
    /// ready), and no code can complete it.
    pub fn demote(&self, flow: &str) -> Result<(), StartError> {
        let inner = &*self.inner;
        let Some((key, expires_at)) = inner
            .flows
            .get(flow)
            .map(|entry| (entry.key.clone(), entry.expires_at))
        else {
            return Ok(());
        };
        // The decoy's challenge first, then the flow loses its subject: no attempt in between
        // can meet the real challenge with a flow already marked as a decoy.
        let code = Code::generate(&*inner.entropy, inner.policy.code_length)?;
        inner.store.put_keyed(
            &key,
            Challenge {
                id: ChallengeId(flow.to_owned()),
                tag: inner.mac.tag_in(&context(flow, false), &code),
                expires_at,
                attempts: 0,
            },
        )?;
        if let Some(mut entry) = inner.flows.get_mut(flow) {
            entry.subject = None;
        }
        Ok(())
    }

    /// Withdraws a flow.
    pub fn revoke(&self, flow: &str) {
        if let Some((_, gone)) = self.inner.flows.remove(flow) {
            self.inner
                .store
                .revoke_keyed(&gone.key, &ChallengeId(flow.to_owned()));
        }
        self.record_pending();
    }

    /// Judges one attempt at `flow`'s code; approves only a real flow whose number is still the
    /// same user's ready number (same index generation) as when it started.
    pub fn complete(
        &self,
        flow: &str,
        code: &Code,
        client: &str,
    ) -> Result<Completed, CompleteError> {
        let inner = &*self.inner;
        let candidate = inner.mac.tag_in(&context(flow, true), code);
        let Some(found) = inner
            .flows
            .get(flow)
            .map(|f| f.clone())
            .filter(|f| f.client == client)
        else {
            return Ok(self.refused(Verdict::NotFound, None));
        };
        if found.subject.is_some() && !self.still_ready(&found) {
            // The number changed hands, sign-in or the account was disabled, or the policy no
            // longer allows it: the pending code dies now.
            self.revoke(flow);
            metrics::counter!(m::SIGNIN_REVOKED_TOTAL).increment(1);
            return Ok(self.refused(Verdict::NotFound, Some(&found)));
        }
        // Wrong codes count per number across flows, decoys alike (a new start does not reset
        // them, and a lock says nothing about whether the number is ready).
        let now = inner.clock.now();
        if let Err(Locked { retry_after }) = inner.guard.check(&found.key.phone, now) {
            metrics::counter!(m::SIGNIN_COMPLETES_TOTAL, m::LABEL_RESULT => "locked").increment(1);
            return Ok(self.refused(Verdict::Locked { retry_after }, Some(&found)));
        }
        let id = ChallengeId(flow.to_owned());
        let verdict = inner.store.attempt_keyed(
            &found.key,
            Some(&id),
            &candidate,
            now,
            inner.policy.max_attempts,
        );
        // A decoy's right code (there is none to know) clears nothing.
        let outcome = match Outcome::of(&verdict) {
            Outcome::Succeeded if found.subject.is_none() => Outcome::Nothing,
            outcome => outcome,
        };
        if inner.guard.settle(&found.key.phone, now, outcome) {
            metrics::counter!(m::OTP_LOCKOUTS_TOTAL).increment(1);
        }
        if matches!(
            verdict,
            Verdict::Approved | Verdict::Expired | Verdict::NotFound
        ) {
            inner.flows.remove(flow);
            self.record_pending();
        }
        metrics::counter!(m::SIGNIN_COMPLETES_TOTAL, m::LABEL_RESULT => verdict.as_str())
            .increment(1);
        let subject = match (verdict, &found.subject) {
            (Verdict::Approved, Some(subject)) => subject,
            // A decoy's tag was made in another context, so no code matches it; should one
            // ever be approved, it is not an approval (and the challenge is gone, as after one).
            (Verdict::Approved, None) => return Ok(self.refused(Verdict::NotFound, Some(&found))),
            (verdict, _) => return Ok(self.refused(verdict, Some(&found))),
        };
        // A change answered between the check above and the approval still wins.
        if !self.still_ready(&found) {
            metrics::counter!(m::SIGNIN_REVOKED_TOTAL).increment(1);
            return Ok(self.refused(Verdict::NotFound, Some(&found)));
        }
        let now = inner
            .clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ttl = inner.settings.assertion_ttl.as_secs();
        let claims = Claims {
            iss: inner.settings.issuer.clone(),
            aud: client.to_owned(),
            sub: subject.user_id.clone(),
            tid: found.key.tenant.clone(),
            iat: now,
            exp: now + ttl,
            jti: self.random_hex()?,
            auth_time: now,
            amr: vec!["sms".to_owned()],
            phone_method_id: PhoneType::Mobile.method_id().to_owned(),
            name: subject.display_name.clone(),
            preferred_username: subject.user_principal_name.clone(),
        };
        let assertion = inner.settings.keys.sign(&claims)?;
        Ok(Completed::Approved {
            user_id: subject.user_id.clone(),
            tenant: found.key.tenant,
            phone_method_id: PhoneType::Mobile.method_id(),
            assertion,
            expires_in: ttl,
            phone: found.key.phone,
        })
    }

    /// Drops expired flows; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now();
        self.inner.store.sweep_expired(now);
        // Failure records past their day window and lock, as `OtpService::sweep` does.
        self.inner.guard.sweep(now);
        let before = self.inner.flows.len();
        self.inner.flows.retain(|_, flow| flow.expires_at > now);
        self.record_pending();
        before.saturating_sub(self.inner.flows.len())
    }

    pub fn pending(&self) -> usize {
        self.inner.flows.len()
    }

    /// Whether a real flow's number still has the index generation it started on.
    fn still_ready(&self, flow: &Flow) -> bool {
        let current = self
            .inner
            .directory
            .ready(&flow.key.tenant, &flow.key.phone);
        match (&flow.subject, current) {
            (Some(subject), Some(current)) => current.generation == subject.generation,
            _ => false,
        }
    }

    fn refused(&self, verdict: Verdict, flow: Option<&Flow>) -> Completed {
        Completed::Refused {
            verdict,
            tenant: flow.map(|f| f.key.tenant.clone()),
            user_id: flow.and_then(|f| f.subject.as_ref().map(|s| s.user_id.clone())),
            phone: flow.map(|f| f.key.phone.clone()),
        }
    }

    fn record_pending(&self) {
        metrics::gauge!(m::SIGNIN_PENDING).set(self.inner.flows.len() as f64);
    }

    /// 128 random bits as 32 hex digits: flow ids and `jti`s, all the same length.
    fn random_hex(&self) -> Result<String, EntropyError> {
        let mut bytes = [0u8; 16];
        self.inner.entropy.fill(&mut bytes)?;
        Ok(crate::config::clients::hex(&bytes))
    }
}
