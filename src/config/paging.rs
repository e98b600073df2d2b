//! `[[route]]`, `[[policy]]`, `[[person]]` and `[[schedule]]`: who is paged for which alert,
//! in which order, and how fast it escalates. Validation is pure; the runtime lives in
//! `crate::escalation`.

use super::error::Collector;
use super::values::Dur;
use crate::model::Severity;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Range;

/// The default wait of a step before the next one.
pub const DEFAULT_STEP_TIMEOUT: Dur = Dur(std::time::Duration::from_secs(300));
/// The default time after which an acknowledgement of a still-firing alert expires.
pub const DEFAULT_ACK_EXPIRY: Dur = Dur(std::time::Duration::from_secs(1800));

/// `[paging]`: settings of escalation as a whole.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PagingConfig {
    /// Where `notifier_failing` (a channel cannot deliver) goes. Default `"paged"`.
    pub meta_route: MetaRoute,
}

/// Where lookout's alert about a failing channel (`notifier_failing`) goes.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetaRoute {
    /// To the people being paged through the failing channel, through their other contacts,
    /// and to the other channels of their escalation's current step; never to a later step.
    /// When no running escalation uses the channel: as `routes`.
    #[default]
    Paged,
    /// Like any alert: the first matching `[[route]]`, else every notifier by `min_severity`.
    Routes,
}

/// One `[[route]]`: which alerts go to which policy. The first matching route wins.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Label matchers that must all hold: `name=value`, `name!=value`, `name=~regex`. The
    /// pseudo labels `probe`, `rule`, `alertname` (= rule) and `severity` can be matched too.
    /// Default: none (matches every alert).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Only alerts of these severities. Default: every severity.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// The policy that pages for matching alerts. Required.
    pub policy: String,
    /// Alerts with the same values of these labels share one escalation (one page).
    /// Default: none (one escalation per alert).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before the first page. Default `0s` for
    /// critical alerts, `30s` otherwise.
    pub group_wait: Option<Dur>,
    /// Where the table is in the file (set by the parser).
    #[serde(skip)]
    pub span: Range<usize>,
}

/// One `[[policy]]`: ordered steps, repeated, then the last step at an interval.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique id. Required.
    pub id: String,
    /// The steps, in order. At least one.
    #[serde(default)]
    pub step: Vec<StepConfig>,
    /// Run all steps this many more times after the first round. Default 0.
    #[serde(default)]
    pub repeat: u32,
    /// After the rounds, page the last step again this often until acknowledged. Default: the
    /// last step's `ack_timeout`; `0s` stops paging after the rounds.
    pub repeat_interval: Option<Dur>,
    /// An acknowledgement of an alert that is still firing expires after this long, and the
    /// escalation starts again from the first step. Default `30m`; `0s` never expires.
    pub ack_expiry: Option<Dur>,
    /// Where the table is in the file (set by the parser).
    #[serde(skip)]
    pub span: Range<usize>,
}

/// One `[[policy.step]]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// People, schedules or notifier ids to page. At least one.
    pub targets: Vec<String>,
    /// Wait this long for an acknowledgement before the next step. Default `5m`.
    pub ack_timeout: Option<Dur>,
}

/// One `[[person]]`: ordered contact methods with per-contact delays.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    /// Unique id (also unique among schedules and notifiers). Required.
    pub id: String,
    /// Display name. Default: the id.
    pub name: Option<String>,
    /// Contact methods, in order. At least one.
    #[serde(default)]
    pub contacts: Vec<ContactConfig>,
    /// Where the table is in the file (set by the parser).
    #[serde(skip)]
    pub span: Range<usize>,
}

/// One contact method of a person.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    /// The notifier id (configured for this person). Required.
    pub notifier: String,
    /// Wait this long after the step starts before using it. Default `0s`. When an earlier
    /// contact fails for good, the next one is used at once.
    pub delay: Option<Dur>,
}

/// One `[[schedule]]`: rotations in a time zone, layered, with overrides.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique id (also unique among people and notifiers). Required.
    pub id: String,
    /// IANA time zone of the handoff times, e.g. `Europe/Berlin`. Default `UTC`.
    pub time_zone: Option<String>,
    /// Layers; a later layer wins over an earlier one where it has someone on call.
    #[serde(default)]
    pub layers: Vec<LayerConfig>,
    /// Overrides; they win over every layer.
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
    /// Where the table is in the file (set by the parser).
    #[serde(skip)]
    pub span: Range<usize>,
}

/// One rotation layer.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// People ids, in turn. At least one.
    pub rotation: Vec<String>,
    /// The first handoff, local time in the schedule's zone: `2026-11-02T09:00`. Required.
    pub start: String,
    /// Handoff period in calendar units: `1d`, `1w`, `12h`. Required.
    pub every: String,
    /// The layer ends at this local time. Default: never.
    pub end: Option<String>,
}

/// One override: `person` is on call from `start` to `end` (local times).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// The person on call instead. Required.
    pub person: String,
    /// Local start time. Required.
    pub start: String,
    /// Local end time. Required.
    pub end: String,
}

/// One `[[maintenance]]` window: alerts it matches are not paged while it is open.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Name, shown on the timeline. Required.
    pub name: String,
    /// Label matchers, as in routes. Default: none (every alert).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Time zone of the times below. Default `UTC`.
    pub time_zone: Option<String>,
    /// A one-off window: local start time (`2026-11-25T22:00`).
    pub start: Option<String>,
    /// A one-off window: local end time.
    pub end: Option<String>,
    /// A weekly window: weekdays (`mon` … `sun`). Default: every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// A weekly window: local start time of day (`02:00`).
    pub from: Option<String>,
    /// A weekly window: local end time of day (`04:00`; earlier than `from` = past midnight).
    pub to: Option<String>,
    /// Where the table is in the file (set by the parser).
    #[serde(skip)]
    pub span: Range<usize>,
}

impl PolicyConfig {
    /// `ack_expiry` or its default; `None` when acknowledgements never expire.
    pub fn ack_expiry(&self) -> Option<f64> {
        let d = self.ack_expiry.unwrap_or(DEFAULT_ACK_EXPIRY);
        (!d.0.is_zero()).then(|| d.secs())
    }
}

impl StepConfig {
    /// `ack_timeout` or its default, in seconds.
    pub fn ack_timeout(&self) -> f64 {
        self.ack_timeout.unwrap_or(DEFAULT_STEP_TIMEOUT).secs()
    }
}

/// Checks routes, policies, people and schedules and every reference between them (pure).
pub fn validate(config: &super::Config, errors: &mut Collector<'_>) {
    let notifiers: BTreeSet<&str> = config.notifiers.iter().map(|n| n.id.as_str()).collect();
    let mut ids: BTreeSet<&str> = notifiers.clone();
    let mut policies = BTreeSet::new();
    for p in &config.policies {
        let c = format!("policy {:?}", p.id);
        if !policies.insert(p.id.as_str()) {
            errors.push(Some(p.span.clone()), Some(&c), "duplicate policy id", None);
        }
        if p.step.is_empty() {
            errors.push(
                Some(p.span.clone()),
                Some(&c),
                "a policy needs at least one [[policy.step]]",
                None,
            );
        }
    }
    let people: BTreeSet<&str> = config.people.iter().map(|p| p.id.as_str()).collect();
    for p in &config.people {
        let c = format!("person {:?}", p.id);
        if !ids.insert(p.id.as_str()) {
            errors.push(
                Some(p.span.clone()),
                Some(&c),
                "this id is already used by a notifier or another person",
                Some("people, schedules and notifiers share one namespace of targets".into()),
            );
        }
        if p.contacts.is_empty() {
            errors.push(
                Some(p.span.clone()),
                Some(&c),
                "a person needs at least one contact",
                Some("contacts = [{ notifier = \"ntfy-alice\" }]".into()),
            );
        }
        for k in &p.contacts {
            if !notifiers.contains(k.notifier.as_str()) {
                errors.push(
                    Some(p.span.clone()),
                    Some(&c),
                    format!(
                        "contact names notifier {:?}, which is not configured",
                        k.notifier
                    ),
                    None,
                );
            }
        }
    }
    for s in &config.schedules {
        let c = format!("schedule {:?}", s.id);
        if !ids.insert(s.id.as_str()) {
            errors.push(
                Some(s.span.clone()),
                Some(&c),
                "this id is already used by a notifier, a person or another schedule",
                None,
            );
        }
        if let Err(e) = crate::escalation::schedule::Schedule::compile(s) {
            errors.push(Some(s.span.clone()), Some(&c), e, None);
        }
        let named = s
            .layers
            .iter()
            .flat_map(|l| l.rotation.iter())
            .chain(s.overrides.iter().map(|o| &o.person));
        for person in named {
            if !people.contains(person.as_str()) {
                errors.push(
                    Some(s.span.clone()),
                    Some(&c),
                    format!("{person:?} is not a configured [[person]]"),
                    None,
                );
            }
        }
    }
    for p in &config.policies {
        let c = format!("policy {:?}", p.id);
        for (i, step) in p.step.iter().enumerate() {
            if step.targets.is_empty() {
                errors.push(
                    Some(p.span.clone()),
                    Some(&c),
                    format!("step {} has no targets", i + 1),
                    None,
                );
            }
            for t in &step.targets {
                if !ids.contains(t.as_str()) {
                    errors.push(
                        Some(p.span.clone()),
                        Some(&c),
                        format!(
                            "step {} names {t:?}, which is not a person, schedule or notifier",
                            i + 1
                        ),
                        None,
                    );
                }
            }
            if step.ack_timeout.is_some_and(|d| d.0.is_zero()) {
                errors.push(
                    Some(p.span.clone()),
                    Some(&c),
                    format!("step {}: ack_timeout must be longer than 0s", i + 1),
                    None,
                );
            }
        }
    }
    for (i, r) in config.routes.iter().enumerate() {
        let c = format!("route {}", i + 1);
        if !policies.contains(r.policy.as_str()) {
            errors.push(
                Some(r.span.clone()),
                Some(&c),
                format!("policy {:?} is not configured", r.policy),
                None,
            );
        }
        for m in &r.matchers {
            if let Err(e) = crate::escalation::Matcher::parse(m) {
                errors.push(Some(r.span.clone()), Some(&c), e, None);
            }
        }
    }
    for m in &config.maintenance {
        if let Err(e) = crate::escalation::silence::Maintenance::compile(m) {
            errors.push(
                Some(m.span.clone()),
                Some(&format!("maintenance {:?}", m.name)),
                e,
                None,
            );
        }
    }
    if !config.policies.is_empty() && config.routes.is_empty() {
        errors.push(
            config.section_spans.get("policy").cloned(),
            None,
            "policies are configured but no [[route]] sends alerts to them",
            Some("add [[route]] policy = \"…\" (without matchers it takes every alert)".into()),
        );
    }
}
