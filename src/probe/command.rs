//! PLACEHOLDER: the `command` probe is being built; this file only reserves its place in the registry.

use super::{Built, Fixed};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Observation, Status};
use serde::Deserialize;

/// `[[probe]] kind = "command"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {}

impl KindConfig for CommandConfig {
    const NAME: &'static str = "command";

    fn defaults() -> KindDefaults {
        KindDefaults::new(60, 30)
    }

    fn build(&self, _ctx: &super::BuildContext) -> Built {
        Built {
            probe: std::sync::Arc::new(Fixed(Observation::new(
                Status::Unknown,
                "PLACEHOLDER: the command probe is not built yet",
            ))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}
