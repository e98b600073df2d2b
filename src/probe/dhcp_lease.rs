//! PLACEHOLDER: the `dhcp_lease` probe is being built; this file only reserves its place in the registry.

use super::{Built, Fixed};
use crate::config::{KindConfig, KindDefaults};
use crate::model::{Observation, Status};
use serde::Deserialize;

/// `[[probe]] kind = "dhcp_lease"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpLeaseConfig {}

impl KindConfig for DhcpLeaseConfig {
    const NAME: &'static str = "dhcp_lease";

    fn defaults() -> KindDefaults {
        KindDefaults::new(60, 5)
    }

    fn build(&self, _ctx: &super::BuildContext) -> Built {
        Built {
            probe: std::sync::Arc::new(Fixed(Observation::new(
                Status::Unknown,
                "PLACEHOLDER: the dhcp_lease probe is not built yet",
            ))),
            rules: Box::new(crate::rule::NoRules),
        }
    }
}
