//! PLACEHOLDER: the `clock` probe is being built; this file only reserves its place in the registry.

use super::{Built, Fixed};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Observation, Status};
use serde::Deserialize;

/// `[[probe]] kind = "clock"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {}

impl KindConfig for ClockConfig {
    const NAME: &'static str = "clock";

    fn defaults() -> KindDefaults {
        KindDefaults::new(60, 10)
    }

    fn build(&self, _ctx: &super::BuildContext) -> Built {
        Built {
            probe: std::sync::Arc::new(Fixed(Observation::new(
                Status::Unknown,
                "PLACEHOLDER: the clock probe is not built yet",
            ))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}
