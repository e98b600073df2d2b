//! Walks the spanned TOML document section by section, collecting every error.

use super::error::{Collector, suggest};
use super::{Config, notifiers, probes};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

const SECTIONS: &[&str] = &[
    "daemon",
    "host",
    "api",
    "store",
    "probe",
    "notifier",
    "action",
    "intake",
    "heartbeat",
    "deadman",
    "cluster",
    "paging",
    "route",
    "policy",
    "person",
    "schedule",
    "maintenance",
    "drill",
];

/// Parses configuration text; problems go to `errors`, the result holds what parsed.
pub fn parse(src: &str, errors: &mut Collector<'_>) -> Config {
    let mut config = Config::default();
    let (mut doc, syntax) = DeTable::parse_recoverable(src);
    if !syntax.is_empty() {
        for e in &syntax {
            errors.push_toml(e, None, 0..0, &[]);
        }
        return config;
    }
    super::paths::expand(doc.get_mut(), errors);
    for (key, value) in doc.get_ref().iter() {
        find_placeholders(key.get_ref(), None, value, errors);
    }
    for (key, value) in doc.into_inner() {
        let span = key.span();
        config
            .section_spans
            .insert(key.get_ref().to_string(), span.clone());
        record_key_spans(key.get_ref(), &value, &mut config.section_spans);
        match key.get_ref().as_ref() {
            "daemon" => section(value, "[daemon]", errors, |v| config.daemon = v),
            "host" => section(value, "[host]", errors, |v| config.host = v),
            "api" => section(value, "[api]", errors, |v| config.api = v),
            "store" => section(value, "[store]", errors, |v| config.store = v),
            "intake" => section(value, "[intake]", errors, |v| config.intake = v),
            "deadman" => section(value, "[deadman]", errors, |v| config.deadman = Some(v)),
            "cluster" => section(value, "[cluster]", errors, |v| config.cluster = Some(v)),
            "paging" => section(value, "[paging]", errors, |v| config.paging = v),
            "heartbeat" => push_tables(value, "heartbeat", errors, &mut config.heartbeats),
            "route" => push_tables(value, "route", errors, &mut config.routes),
            "policy" => push_tables(value, "policy", errors, &mut config.policies),
            "person" => push_tables(value, "person", errors, &mut config.people),
            "schedule" => push_tables(value, "schedule", errors, &mut config.schedules),
            "maintenance" => push_tables(value, "maintenance", errors, &mut config.maintenance),
            "drill" => push_tables(value, "drill", errors, &mut config.drills),
            "probe" => {
                for entry in array_of_tables(value, "probe", errors) {
                    if let Some(p) = parse_probe(entry, errors) {
                        config.probes.push(p);
                    }
                }
            }
            "action" => {
                for entry in array_of_tables(value, "action", errors) {
                    config.actions.extend(super::actions::parse(entry, errors));
                }
            }
            "notifier" => {
                for entry in array_of_tables(value, "notifier", errors) {
                    if let Some(n) = parse_notifier(entry, errors) {
                        config.notifiers.push(n);
                    }
                }
            }
            other => {
                let hint = suggest(other, SECTIONS)
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("known sections: {}", SECTIONS.join(", "))));
                errors.push(Some(span), None, format!("unknown section `{other}`"), hint);
            }
        }
    }
    config
}

/// The value the reference configuration (`examples/reference.toml`) holds where only the user
/// knows the right one; a string containing it is an error until changed.
pub const PLACEHOLDER: &str = "CHANGE-ME";

/// Reports every string under `value` that still holds [`PLACEHOLDER`], naming its key (e.g.
/// `notifier "phones": \`topic\` still holds …`).
fn find_placeholders(
    path: &str,
    component: Option<&str>,
    value: &Spanned<DeValue<'_>>,
    errors: &mut Collector<'_>,
) {
    match value.get_ref() {
        DeValue::String(s) if s.contains(PLACEHOLDER) => errors.push(
            Some(value.span()),
            component,
            format!("`{path}` still holds the placeholder {PLACEHOLDER}"),
            Some(
                "replace it with your own value, or remove the key (or the section) you do not use"
                    .into(),
            ),
        ),
        DeValue::Table(t) => {
            // An entry of an array of tables is named by its id (or name), as in other errors,
            // and its keys are named from there.
            let named = ["id", "name"].iter().find_map(|k| {
                t.get(*k)
                    .and_then(|v| v.get_ref().as_str())
                    .map(|id| format!("{path} {id:?}"))
            });
            for (k, v) in t.iter() {
                match &named {
                    Some(c) => find_placeholders(k.get_ref(), Some(c), v, errors),
                    None => {
                        find_placeholders(&format!("{path}.{}", k.get_ref()), component, v, errors)
                    }
                }
            }
        }
        DeValue::Array(items) => {
            for item in items {
                find_placeholders(path, component, item, errors);
            }
        }
        _ => {}
    }
}

/// Keys whose own position validation messages point at, recorded as `section.key` in
/// [`Config::section_spans`].
const KEYS_WITH_SPANS: &[(&str, &str)] = &[("api", "listen"), ("host", "watch")];

fn record_key_spans(
    section: &str,
    value: &Spanned<DeValue<'_>>,
    spans: &mut std::collections::BTreeMap<String, Range<usize>>,
) {
    let DeValue::Table(table) = value.get_ref() else {
        return;
    };
    for (s, k) in KEYS_WITH_SPANS {
        if *s == section
            && let Some((key, _)) = table.get_key_value(*k)
        {
            spans.insert(format!("{s}.{k}"), key.span());
        }
    }
}

fn section<'i, T: Deserialize<'i>>(
    value: Spanned<DeValue<'i>>,
    name: &str,
    errors: &mut Collector<'_>,
    mut set: impl FnMut(T),
) {
    let span = value.span();
    match deserialize_all(value) {
        Ok(v) => set(v),
        Err(all) => {
            for e in &all {
                errors.push_toml(e, Some(name), span.clone(), &[]);
            }
        }
    }
}

/// Deserializes a table and reports every bad field, not only the first: serde stops at the
/// first error, so the field it points at (by span, or by the name in "unknown field `x`") is
/// set aside and the rest is tried again. A "missing field" error about a field set aside is
/// a consequence, not a new problem, and ends the search; so does an error that points at no
/// field. Each round removes a field, so this ends.
pub(super) fn deserialize_all<'i, T: Deserialize<'i>>(
    value: Spanned<DeValue<'i>>,
) -> Result<T, Vec<toml::de::Error>> {
    let span = value.span();
    let DeValue::Table(mut table) = value.get_ref().clone() else {
        return T::deserialize(value.into_deserializer()).map_err(|e| vec![e]);
    };
    let mut found = Vec::new();
    let mut set_aside: Vec<String> = Vec::new();
    loop {
        let attempt = Spanned::new(span.clone(), DeValue::Table(table.clone()));
        let e = match T::deserialize(attempt.into_deserializer()) {
            Ok(v) if found.is_empty() => return Ok(v),
            Ok(_) => return Err(found),
            Err(e) => e,
        };
        if quoted_after(e.message(), "missing field `").is_some_and(|f| set_aside.contains(&f)) {
            return Err(found);
        }
        let culprit = culprit(&table, &e);
        found.push(e);
        match culprit {
            Some(key) => {
                table.remove(key.as_str());
                set_aside.push(key);
            }
            None => return Err(found),
        }
    }
}

/// The field of `table` an error is about: the one whose key or value holds the error's
/// position, else the one an "unknown field `x`" message names.
fn culprit(table: &DeTable<'_>, e: &toml::de::Error) -> Option<String> {
    if let Some(at) = e.span().map(|s| s.start) {
        let hit = table.iter().find(|(k, v)| {
            let (ks, vs) = (k.span(), v.span());
            ks.contains(&at) || vs.contains(&at) || (vs.is_empty() && vs.start == at)
        });
        if let Some((k, _)) = hit {
            return Some(k.get_ref().to_string());
        }
    }
    quoted_after(e.message(), "unknown field `").filter(|f| table.contains_key(f.as_str()))
}

/// The text between `prefix` and the next backtick, when `message` starts with `prefix`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.trim().strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name.to_string())
}

/// Deserializes every table of an array of tables, handing each its span.
/// A `[[name]]` entry that remembers where its table is in the file.
pub(super) trait Located {
    /// Records the table's span.
    fn locate(&mut self, span: Range<usize>);
}

macro_rules! located {
    ($($t:ty),*) => {$(
        impl Located for $t {
            fn locate(&mut self, span: Range<usize>) {
                self.span = span;
            }
        }
    )*};
}

located!(
    super::HeartbeatConfig,
    super::RouteConfig,
    super::PolicyConfig,
    super::PersonConfig,
    super::ScheduleConfig,
    super::MaintenanceConfig
);
located!(super::drills::DrillConfig);

/// Parses every `[[name]]` table into `out`, each with its span; errors go to `errors`.
fn push_tables<'i, T: Deserialize<'i> + Located>(
    value: Spanned<DeValue<'i>>,
    name: &str,
    errors: &mut Collector<'_>,
    out: &mut Vec<T>,
) {
    for entry in array_of_tables(value, name, errors) {
        let span = entry.span();
        let value = Spanned::new(span.clone(), DeValue::Table(entry.into_inner()));
        section(value, name, errors, |mut v: T| {
            v.locate(span.clone());
            out.push(v)
        });
    }
}

fn array_of_tables<'i>(
    value: Spanned<DeValue<'i>>,
    name: &str,
    errors: &mut Collector<'_>,
) -> Vec<Spanned<DeTable<'i>>> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        errors.push(
            Some(span),
            None,
            format!("`{name}` must be an array of tables"),
            Some(format!("write each one as [[{name}]]")),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let span = item.span();
        match item.into_inner() {
            DeValue::Table(t) => out.push(Spanned::new(span, t)),
            _ => errors.push(
                Some(span),
                None,
                format!("each `{name}` must be a table"),
                Some(format!("write each one as [[{name}]]")),
            ),
        }
    }
    out
}

/// Takes a string field out of a table: `Ok(None)` when absent.
fn take_string(
    table: &mut DeTable<'_>,
    key: &str,
) -> Result<Option<(String, Range<usize>)>, Range<usize>> {
    match table.remove(key) {
        None => Ok(None),
        Some(v) => {
            let span = v.span();
            match v.get_ref().as_str() {
                Some(s) => Ok(Some((s.to_string(), span))),
                None => Err(span),
            }
        }
    }
}

/// The pieces common to probes and notifiers: id, kind, and the table split in two.
struct Entry<'i> {
    id: String,
    kind: String,
    span: Range<usize>,
    common: Spanned<DeValue<'i>>,
    own: Spanned<DeValue<'i>>,
}

fn split_entry<'i>(
    what: &str,
    entry: Spanned<DeTable<'i>>,
    common_fields: &[&str],
    kinds: &[&str],
    errors: &mut Collector<'_>,
) -> Option<Entry<'i>> {
    let span = entry.span();
    let mut table = entry.into_inner();
    let id = match take_string(&mut table, "id") {
        Ok(Some((id, _))) => id,
        Ok(None) => {
            errors.push(
                Some(span.clone()),
                Some(what),
                "missing `id`",
                Some(format!(
                    "give every {what} a unique id, e.g. id = \"db-disk\""
                )),
            );
            return None;
        }
        Err(s) => {
            errors.push(Some(s), Some(what), "`id` must be a string", None);
            return None;
        }
    };
    let component = format!("{what} {id:?}");
    let kind = match take_string(&mut table, "kind") {
        Ok(Some((k, kspan))) => {
            if !kinds.contains(&k.as_str()) {
                let hint = suggest(&k, kinds)
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("known kinds: {}", kinds.join(", ")));
                errors.push(
                    Some(kspan),
                    Some(&component),
                    format!("unknown kind `{k}`"),
                    Some(hint),
                );
                return None;
            }
            k
        }
        Ok(None) => {
            // `knd = "tcp"`: name the misspelled key, where it is.
            let typo = table
                .keys()
                .find(|k| k.get_ref() != "kind" && suggest(k.get_ref(), &["kind"]).is_some());
            match typo {
                Some(k) => errors.push(
                    Some(k.span()),
                    Some(&component),
                    format!("missing `kind` (unknown field `{}`)", k.get_ref()),
                    Some(format!(
                        "did you mean `kind`? known kinds: {}",
                        kinds.join(", ")
                    )),
                ),
                None => errors.push(
                    Some(span.clone()),
                    Some(&component),
                    "missing `kind`",
                    Some(format!("known kinds: {}", kinds.join(", "))),
                ),
            }
            return None;
        }
        Err(s) => {
            errors.push(Some(s), Some(&component), "`kind` must be a string", None);
            return None;
        }
    };
    let mut common = DeTable::new();
    let keys: Vec<_> = table
        .keys()
        .filter(|k| common_fields.contains(&k.get_ref().as_ref()))
        .cloned()
        .collect();
    for k in keys {
        if let Some((key, value)) = table.remove_entry(&k) {
            common.insert(key, value);
        }
    }
    Some(Entry {
        id,
        kind,
        span: span.clone(),
        common: Spanned::new(span.clone(), DeValue::Table(common)),
        own: Spanned::new(span, DeValue::Table(table)),
    })
}

fn parse_probe(
    entry: Spanned<DeTable<'_>>,
    errors: &mut Collector<'_>,
) -> Option<probes::ProbeConfig> {
    let e = split_entry(
        "probe",
        entry,
        probes::COMMON_FIELDS,
        probes::ProbeKindConfig::KINDS,
        errors,
    )?;
    let component = format!("probe {:?}", e.id);
    let common = deserialize_all::<probes::ProbeCommon>(e.common)
        .map_err(|all| push_all(errors, &all, &component, &e.span, &[]))
        .ok();
    let kind = probes::ProbeKindConfig::parse(&e.kind, e.own)
        .map_err(|all| push_all(errors, &all, &component, &e.span, probes::COMMON_FIELDS))
        .ok();
    if let (None, Some(kind)) = (&common, &kind) {
        // The kind's own checks do not need the common fields: report their problems too.
        kind.validate(&component, e.span.clone(), errors);
    }
    Some(probes::ProbeConfig {
        id: e.id,
        span: e.span,
        common: common?,
        kind: kind?,
    })
}

fn parse_notifier(
    entry: Spanned<DeTable<'_>>,
    errors: &mut Collector<'_>,
) -> Option<notifiers::NotifierConfig> {
    let e = split_entry(
        "notifier",
        entry,
        notifiers::COMMON_FIELDS,
        notifiers::NotifierKindConfig::KINDS,
        errors,
    )?;
    let component = format!("notifier {:?}", e.id);
    let common = deserialize_all::<notifiers::NotifierCommon>(e.common)
        .map_err(|all| push_all(errors, &all, &component, &e.span, &[]))
        .ok();
    let kind = notifiers::NotifierKindConfig::parse(&e.kind, e.own)
        .map_err(|all| push_all(errors, &all, &component, &e.span, notifiers::COMMON_FIELDS))
        .ok();
    Some(notifiers::NotifierConfig {
        id: e.id,
        span: e.span,
        common: common?,
        kind: kind?,
    })
}

/// Records every deserialization error of one entry.
fn push_all(
    errors: &mut Collector<'_>,
    all: &[toml::de::Error],
    component: &str,
    span: &Range<usize>,
    extra_fields: &[&str],
) {
    for err in all {
        errors.push_toml(err, Some(component), span.clone(), extra_fields);
    }
}
