//! `[pumping]`: velocity by destination (a rate per prefix, a daily budget per country) and the
//! conversion breaker, parsed into policies that cannot be invalid.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

use super::{SettingError, positive};
use crate::pumping::{BreakerMode, BreakerPolicy, PumpingPolicy, VelocityPolicy};
use crate::ratelimit::Rate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePumping {
    prefix_digits: Option<usize>,
    prefix_burst: Option<u32>,
    prefix_period_ms: Option<u64>,
    country_daily_default: Option<u32>,
    #[serde(default)]
    country_daily: HashMap<String, u32>,
    #[serde(default)]
    breaker: Option<FileBreaker>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBreaker {
    mode: Option<BreakerMode>,
    window_seconds: Option<u64>,
    min_sent: Option<u32>,
    min_conversion: Option<f64>,
    block_seconds: Option<u64>,
}

impl FilePumping {
    /// The policy, with `[destinations]` already parsed into `base`.
    pub(super) fn into_policy(self, base: PumpingPolicy) -> Result<PumpingPolicy, SettingError> {
        let prefix_digits = self.prefix_digits.unwrap_or(base.prefix_digits);
        if prefix_digits > 12 {
            return Err(SettingError::new(
                "pumping.prefix_digits",
                "must be 0 to 12 (digits after the calling code)",
            ));
        }
        let burst = self
            .prefix_burst
            .map(|burst| {
                NonZeroU32::new(burst).ok_or_else(|| {
                    SettingError::new("pumping.prefix_burst", "must be greater than 0")
                })
            })
            .transpose()?
            .unwrap_or(base.velocity.prefix.burst);
        let period = match self.prefix_period_ms {
            Some(ms) => Duration::from_millis(positive("pumping.prefix_period_ms", ms)?),
            None => base.velocity.prefix.period,
        };
        let mut country_daily = HashMap::with_capacity(self.country_daily.len());
        for (country, cap) in self.country_daily {
            let digits = country.strip_prefix('+').unwrap_or(&country);
            if !(1..=3).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SettingError::new(
                    "pumping.country_daily",
                    format!("{country:?} is not a calling code such as \"+44\""),
                ));
            }
            country_daily.insert(digits.to_owned(), cap);
        }
        let velocity = VelocityPolicy {
            prefix: Rate { burst, period },
            default_country_daily: self
                .country_daily_default
                .unwrap_or(base.velocity.default_country_daily),
            country_daily,
        };
        let breaker = match self.breaker {
            Some(file) => file.into_policy(base.breaker)?,
            None => base.breaker,
        };
        Ok(PumpingPolicy {
            prefix_digits,
            velocity,
            breaker,
            ..base
        })
    }
}

impl FileBreaker {
    fn into_policy(self, base: BreakerPolicy) -> Result<BreakerPolicy, SettingError> {
        let min_conversion_permille = match self.min_conversion {
            Some(ratio) if (0.0..=1.0).contains(&ratio) => (ratio * 1000.0).round() as u32,
            Some(_) => {
                return Err(SettingError::new(
                    "pumping.breaker.min_conversion",
                    "must be a share from 0.0 to 1.0 (verified codes / sent codes)",
                ));
            }
            None => base.min_conversion_permille,
        };
        let window = match self.window_seconds {
            Some(s) => Duration::from_secs(positive("pumping.breaker.window_seconds", s)?),
            None => base.window,
        };
        let block = match self.block_seconds {
            Some(s) => Duration::from_secs(positive("pumping.breaker.block_seconds", s)?),
            None => base.block,
        };
        let min_sent = self.min_sent.unwrap_or(base.min_sent);
        if min_sent == 0 {
            return Err(SettingError::new(
                "pumping.breaker.min_sent",
                "must be at least 1: a prefix with no codes has no ratio",
            ));
        }
        Ok(BreakerPolicy {
            mode: self.mode.unwrap_or(base.mode),
            window,
            min_sent,
            min_conversion_permille,
            block,
        })
    }
}
