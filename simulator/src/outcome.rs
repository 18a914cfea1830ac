//! What happens to an accepted message: refused at submit, or a final state after a delay.
//! Rules by destination come first (so a test can pick a number and know), then the mix.

use std::time::Duration;

use regex::Regex;
use rusmpp::CommandStatus;
use serde::{Deserialize, Serialize};
use smpp_wire::status::parse_status;

use smpp_wire::receipt::ReceiptState;

/// One share of the outcome mix for messages no rule matches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeShare {
    pub stat: ReceiptState,
    pub percent: f64,
}

/// A deterministic outcome for destinations that match. Exactly one matcher, and exactly one of
/// `stat` (the final state) and `submit_status` (refuse the submit with this command_status).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Matched against the destination as the tester API shows it (`+31612345678`).
    pub to_prefix: Option<String>,
    pub to_suffix: Option<String>,
    pub to_regex: Option<String>,
    pub stat: Option<ReceiptState>,
    /// A status name (`ESME_RINVDSTADR`) or number.
    pub submit_status: Option<String>,
}

impl Rule {
    pub fn validate(&self) -> Result<(), String> {
        let matchers = [&self.to_prefix, &self.to_suffix, &self.to_regex]
            .iter()
            .filter(|m| m.is_some())
            .count();
        if matchers != 1 {
            return Err("a rule needs exactly one of to_prefix, to_suffix, to_regex".into());
        }
        if let Some(pattern) = &self.to_regex {
            Regex::new(pattern).map_err(|err| format!("to_regex {pattern:?}: {err}"))?;
        }
        match (&self.stat, &self.submit_status) {
            (Some(_), None) => Ok(()),
            (None, Some(status)) => match parse_status(status) {
                Some(CommandStatus::EsmeRok) => {
                    Err("submit_status must be an error, not ESME_ROK".into())
                }
                Some(_) => Ok(()),
                None => Err(format!("unknown submit_status {status:?}")),
            },
            _ => Err("a rule needs exactly one of stat and submit_status".into()),
        }
    }
}

enum Matcher {
    Prefix(String),
    Suffix(String),
    Regex(Regex),
}

struct CompiledRule {
    matcher: Matcher,
    decision: Decision,
}

/// The fate of one submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Refuse(CommandStatus),
    Deliver(ReceiptState),
}

/// Rules, mix and delays, compiled once.
pub struct Outcomes {
    rules: Vec<CompiledRule>,
    /// (upper bound of the cumulative percentage, stat).
    mix: Vec<(f64, ReceiptState)>,
    delay_ms: u64,
    delay_ms_max: Option<u64>,
}

impl Outcomes {
    /// Compiles validated rules (see [`Rule::validate`]); an invalid rule is skipped. The final
    /// state comes `delay_ms` after the submit, or uniformly up to `delay_ms_max` when set.
    pub fn new(
        rules: &[Rule],
        mix: &[OutcomeShare],
        delay_ms: u64,
        delay_ms_max: Option<u64>,
    ) -> Self {
        let rules = rules
            .iter()
            .filter_map(|rule| {
                let matcher = match (&rule.to_prefix, &rule.to_suffix, &rule.to_regex) {
                    (Some(prefix), _, _) => Matcher::Prefix(prefix.clone()),
                    (_, Some(suffix), _) => Matcher::Suffix(suffix.clone()),
                    (_, _, Some(pattern)) => Matcher::Regex(Regex::new(pattern).ok()?),
                    _ => return None,
                };
                let decision = match (&rule.stat, &rule.submit_status) {
                    (Some(stat), _) => Decision::Deliver(*stat),
                    (_, Some(status)) => Decision::Refuse(parse_status(status)?),
                    _ => return None,
                };
                Some(CompiledRule { matcher, decision })
            })
            .collect();
        let mut total = 0.0;
        let mix = mix
            .iter()
            .map(|share| {
                total += share.percent;
                (total, share.stat)
            })
            .collect();
        Self {
            rules,
            mix,
            delay_ms,
            delay_ms_max,
        }
    }

    /// Decides the fate of a message to `to`.
    pub fn decide(&self, to: &str) -> Decision {
        for rule in &self.rules {
            let hit = match &rule.matcher {
                Matcher::Prefix(prefix) => to.starts_with(prefix.as_str()),
                Matcher::Suffix(suffix) => to.ends_with(suffix.as_str()),
                Matcher::Regex(regex) => regex.is_match(to),
            };
            if hit {
                return rule.decision;
            }
        }
        let roll = fastrand::f64() * 100.0;
        let stat = self
            .mix
            .iter()
            .find(|(upper, _)| roll < *upper)
            .or(self.mix.last())
            .map_or(ReceiptState::Delivered, |(_, stat)| *stat);
        Decision::Deliver(stat)
    }

    /// How long until a message reaches its final state.
    pub fn delay(&self) -> Duration {
        let ms = match self.delay_ms_max {
            Some(max) if max > self.delay_ms => fastrand::u64(self.delay_ms..=max),
            _ => self.delay_ms,
        };
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(rules: &[Rule], mix: &[(ReceiptState, f64)]) -> Outcomes {
        let shares: Vec<OutcomeShare> = mix
            .iter()
            .map(|&(stat, percent)| OutcomeShare { stat, percent })
            .collect();
        Outcomes::new(rules, &shares, 100, Some(200))
    }

    #[test]
    fn rules_win_in_order_then_the_mix_decides() {
        let rules = vec![
            Rule {
                to_prefix: Some("+3160000".into()),
                stat: Some(ReceiptState::Undeliverable),
                ..Rule::default()
            },
            Rule {
                to_suffix: Some("13".into()),
                submit_status: Some("ESME_RINVDSTADR".into()),
                ..Rule::default()
            },
            Rule {
                to_regex: Some("^\\+1555".into()),
                stat: Some(ReceiptState::Expired),
                ..Rule::default()
            },
        ];
        for rule in &rules {
            rule.validate().expect("valid rule");
        }
        let outcomes = outcomes(&rules, &[(ReceiptState::Rejected, 100.0)]);
        assert_eq!(
            outcomes.decide("+31600001313"),
            Decision::Deliver(ReceiptState::Undeliverable)
        );
        assert_eq!(
            outcomes.decide("+31612345613"),
            Decision::Refuse(CommandStatus::EsmeRinvdstadr)
        );
        assert_eq!(
            outcomes.decide("+15551234567"),
            Decision::Deliver(ReceiptState::Expired)
        );
        assert_eq!(
            outcomes.decide("+31612345678"),
            Decision::Deliver(ReceiptState::Rejected)
        );
    }

    #[test]
    fn the_mix_follows_its_percentages() {
        let outcomes = outcomes(
            &[],
            &[
                (ReceiptState::Delivered, 80.0),
                (ReceiptState::Undeliverable, 20.0),
            ],
        );
        let delivered = (0..10_000)
            .filter(|_| outcomes.decide("+1") == Decision::Deliver(ReceiptState::Delivered))
            .count();
        assert!(
            (7_600..8_400).contains(&delivered),
            "{delivered} of 10000 delivered"
        );
        for _ in 0..1000 {
            let delay = outcomes.delay().as_millis();
            assert!((100..=200).contains(&delay));
        }
    }

    #[test]
    fn bad_rules_are_explained() {
        let both = Rule {
            to_prefix: Some("+1".into()),
            to_suffix: Some("2".into()),
            stat: Some(ReceiptState::Delivered),
            ..Rule::default()
        };
        assert!(
            both.validate()
                .unwrap_err()
                .contains("exactly one of to_prefix")
        );
        let regex = Rule {
            to_regex: Some("(".into()),
            stat: Some(ReceiptState::Delivered),
            ..Rule::default()
        };
        assert!(regex.validate().unwrap_err().contains("to_regex"));
        let ok = Rule {
            to_prefix: Some("+1".into()),
            submit_status: Some("ESME_ROK".into()),
            ..Rule::default()
        };
        assert!(ok.validate().unwrap_err().contains("must be an error"));
        let unknown = Rule {
            to_prefix: Some("+1".into()),
            submit_status: Some("ESME_WHAT".into()),
            ..Rule::default()
        };
        assert!(
            unknown
                .validate()
                .unwrap_err()
                .contains("unknown submit_status")
        );
    }
}
