//! PLACEHOLDER: the `tcp` probe is being built; this file only reserves its place in the registry.

use super::{Built, Fixed};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Observation, Status};
use serde::Deserialize;

/// `[[probe]] kind = "tcp"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {}

impl KindConfig for TcpConfig {
    const NAME: &'static str = "tcp";

    fn defaults() -> KindDefaults {
        KindDefaults::new(30, 5)
    }

    fn build(&self, _ctx: &super::BuildContext) -> Built {
        Built {
            probe: std::sync::Arc::new(Fixed(Observation::new(
                Status::Unknown,
                "PLACEHOLDER: the tcp probe is not built yet",
            ))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}
