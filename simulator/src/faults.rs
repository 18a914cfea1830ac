//! Faults a tester switches on at runtime (or in config): latency, throttling, queue-full and
//! random errors, dropped or hung connections, refused binds; globally or for one account.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rusmpp::CommandStatus;
use serde::{Deserialize, Serialize};
use smpp_wire::status::parse_status;

/// One set of faults, as config and the tester API write it. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Delay before each response, drawn uniformly from `[min, max]` ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<[u64; 2]>,
    /// submit_sm beyond this many per second on one bind get ESME_RTHROTTLED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_submits_per_second: Option<u32>,
    /// Share of submit_sm refused with ESME_RMSGQFUL.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queue_full_percent: f64,
    /// Share of submit_sm refused with `error_status`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub error_percent: f64,
    /// Status for `error_percent` (name or number); default ESME_RSYSERR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_status: Option<String>,
    /// Each session closes its connection after answering this many more PDUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_after_pdus: Option<u64>,
    /// Stop reading and answering for this long, from when the fault is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hang_seconds: Option<f64>,
    /// Refuse binds with this status (name or number), e.g. ESME_RBINDFAIL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_binds: Option<String>,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), String> {
        for (name, percent) in [
            ("queue_full_percent", self.queue_full_percent),
            ("error_percent", self.error_percent),
        ] {
            if !(0.0..=100.0).contains(&percent) {
                return Err(format!("{name} must be between 0 and 100"));
            }
        }
        if let Some([min, max]) = self.latency_ms
            && min > max
        {
            return Err("latency_ms is [min, max] with min <= max".into());
        }
        if self
            .hang_seconds
            .is_some_and(|s| !(0.0..=3600.0).contains(&s))
        {
            return Err("hang_seconds must be between 0 and 3600".into());
        }
        if self.max_submits_per_second == Some(0) {
            return Err("max_submits_per_second must be at least 1 (omit it for no limit)".into());
        }
        for (name, status) in [
            ("error_status", &self.error_status),
            ("refuse_binds", &self.refuse_binds),
        ] {
            if let Some(status) = status {
                match parse_status(status) {
                    None => return Err(format!("{name}: unknown command_status {status:?}")),
                    Some(CommandStatus::EsmeRok) => {
                        return Err(format!("{name} must be an error status"));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// A validated fault set in force, with its statuses parsed and its hang converted to a deadline.
#[derive(Debug)]
pub struct Active {
    pub spec: FaultSpec,
    pub hang_until: Option<Instant>,
    pub error_status: CommandStatus,
    pub refuse_binds: Option<CommandStatus>,
}

impl Active {
    fn new(spec: FaultSpec, now: Instant) -> Self {
        Self {
            hang_until: spec.hang_seconds.map(|s| now + Duration::from_secs_f64(s)),
            error_status: spec
                .error_status
                .as_deref()
                .and_then(parse_status)
                .unwrap_or(CommandStatus::EsmeRsyserr),
            refuse_binds: spec.refuse_binds.as_deref().and_then(parse_status),
            spec,
        }
    }

    /// A response delay drawn from `latency_ms`, if set.
    pub fn latency(&self) -> Option<Duration> {
        self.spec
            .latency_ms
            .map(|[min, max]| Duration::from_millis(fastrand::u64(min..=max)))
    }

    /// Whether a roll of `percent` hits.
    pub fn roll(percent: f64) -> bool {
        percent > 0.0 && fastrand::f64() * 100.0 < percent
    }
}

/// All faults in force: a global set and per-account overrides.
pub struct Faults {
    state: RwLock<State>,
    generation: AtomicU64,
}

struct State {
    global: Arc<Active>,
    accounts: HashMap<String, Arc<Active>>,
}

/// What the tester API shows.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct FaultsView {
    pub global: FaultSpec,
    pub accounts: HashMap<String, FaultSpec>,
}

impl Faults {
    pub fn new(spec: FaultSpec) -> Self {
        Self {
            state: RwLock::new(State {
                global: Arc::new(Active::new(spec, Instant::now())),
                accounts: HashMap::new(),
            }),
            generation: AtomicU64::new(1),
        }
    }

    /// Changes whenever any fault changes; sessions re-read their faults when it does.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The faults that apply to `account`: its own set if it has one, otherwise the global set.
    pub fn for_account(&self, account: Option<&str>) -> Arc<Active> {
        let state = self.read();
        account
            .and_then(|a| state.accounts.get(a))
            .unwrap_or(&state.global)
            .clone()
    }

    /// Replaces the global set (`account` None) or one account's set.
    pub fn set(&self, account: Option<&str>, spec: FaultSpec) -> Result<(), String> {
        spec.validate()?;
        let mut state = self.write();
        // Moves the generation every session compares against.
        self.generation.fetch_add(1, Ordering::AcqRel);
        let active = Arc::new(Active::new(spec, Instant::now()));
        match account {
            None => state.global = active,
            Some(account) => {
                state.accounts.insert(account.to_owned(), active);
            }
        }
        Ok(())
    }

    /// Removes every fault.
    pub fn clear(&self) {
        let mut state = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        state.global = Arc::new(Active::new(FaultSpec::default(), Instant::now()));
        state.accounts.clear();
    }

    pub fn view(&self) -> FaultsView {
        let state = self.read();
        FaultsView {
            global: state.global.spec.clone(),
            accounts: state
                .accounts
                .iter()
                .map(|(k, v)| (k.clone(), v.spec.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_sets_override_the_global_one() {
        let faults = Faults::new(FaultSpec {
            error_percent: 5.0,
            ..FaultSpec::default()
        });
        let before = faults.generation();
        faults
            .set(
                Some("a"),
                FaultSpec {
                    refuse_binds: Some("ESME_RBINDFAIL".into()),
                    ..FaultSpec::default()
                },
            )
            .expect("valid");
        assert!(faults.generation() > before);
        assert_eq!(
            faults.for_account(Some("a")).refuse_binds,
            Some(CommandStatus::EsmeRbindfail)
        );
        assert_eq!(faults.for_account(Some("b")).spec.error_percent, 5.0);
        assert_eq!(faults.for_account(None).refuse_binds, None);
        faults.clear();
        assert_eq!(
            faults.view(),
            FaultsView {
                global: FaultSpec::default(),
                accounts: HashMap::new()
            }
        );
    }

    #[test]
    fn invalid_specs_are_refused_with_a_reason() {
        let faults = Faults::new(FaultSpec::default());
        let cases = [
            (
                FaultSpec {
                    error_percent: 101.0,
                    ..FaultSpec::default()
                },
                "error_percent",
            ),
            (
                FaultSpec {
                    latency_ms: Some([10, 5]),
                    ..FaultSpec::default()
                },
                "latency_ms",
            ),
            (
                FaultSpec {
                    error_status: Some("ESME_NOPE".into()),
                    ..FaultSpec::default()
                },
                "error_status",
            ),
            (
                FaultSpec {
                    refuse_binds: Some("ESME_ROK".into()),
                    ..FaultSpec::default()
                },
                "refuse_binds",
            ),
        ];
        for (spec, expected) in cases {
            let err = faults.set(None, spec).expect_err(expected);
            assert!(err.contains(expected), "{err}");
        }
    }
}
