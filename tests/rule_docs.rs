//! Every alert rule the code can raise is named in the "Alert rules" table of the doc a user
//! reads for it (issue 9 item 14), so route and silence matchers need no guessing.
//!
//! The rule names are collected from the source, not from a list kept by hand: every
//! `const …RULE…: &str = "name"`, every constant in a `mod rule_names { … }`, and every literal
//! `Condition::active("name", …)` / `Condition::clear("name", …)` / `rule: "name"`. Where a rule
//! is raised decides its doc: `src/rule/status.rs` (`probe_status`) belongs to every probe doc,
//! a probe kind's own rules to `docs/probes/KIND.md` (the disk rules to `docs/forecast.md`),
//! and everything else (lookout's own alerts, heartbeats, Alertmanager intake) to
//! `docs/paging.md`. A doc lists its rules as table rows starting `` | `name` | `` in its
//! `## Alert rules` section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's code without its unit tests (`#[cfg(test)]` and everything after it).
fn code_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name == "tests.rs" || name.ends_with("_tests.rs") {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    })
}

/// The rule names a file's code defines or raises.
fn rules_in(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let constant = regex::Regex::new(r#"const\s+(\w+)\s*:\s*&str\s*=\s*"([a-z0-9_]+)""#).unwrap();
    for c in constant.captures_iter(code) {
        if c[1].contains("RULE") {
            out.insert(c[2].to_string());
        }
    }
    // Constants inside `mod rule_names { … }`.
    let mut rest = code;
    while let Some(i) = rest.find("mod rule_names") {
        let block = &rest[i..];
        let end = block.find("\n}").unwrap_or(block.len());
        for c in constant.captures_iter(&block[..end]) {
            out.insert(c[2].to_string());
        }
        rest = &block[end..];
    }
    let literal = regex::Regex::new(
        r#"(?:Condition::(?:active|clear)\(\s*|rule:\s*)"([a-z0-9_]+)"\s*(?:,|\.into\(\)|\.to_string\(\))"#,
    )
    .unwrap();
    for c in literal.captures_iter(code) {
        out.insert(c[1].to_string());
    }
    out
}

/// Every probe doc (`docs/probes/*.md`) and the disk probe's (`docs/forecast.md`).
fn probe_docs() -> Vec<String> {
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs/probes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| format!("docs/probes/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    docs.push("docs/forecast.md".into());
    docs.sort();
    docs
}

/// The docs in which a rule raised in `file` (relative to the crate) must be named.
fn docs_for(file: &str) -> Vec<String> {
    if file == "src/rule/status.rs" {
        return probe_docs();
    }
    if file.starts_with("src/rule/disk.rs") || file.starts_with("src/rule/forecast.rs") {
        return vec!["docs/forecast.md".into()];
    }
    if let Some(rest) = file.strip_prefix("src/probe/") {
        let kind = rest.split(['/', '.']).next().unwrap_or_default();
        if kind == "disk" {
            return vec!["docs/forecast.md".into()];
        }
        return vec![format!("docs/probes/{kind}.md")];
    }
    vec!["docs/paging.md".into()]
}

/// The rule names in a doc's `## Alert rules` section (`None` without one).
fn documented(doc: &str) -> Option<BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join(doc)).ok()?;
    let start = text.find("\n## Alert rules")?;
    let section = &text[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let row = regex::Regex::new(r"(?m)^\|\s*`([a-z0-9_]+)`").unwrap();
    Some(
        row.captures_iter(&section[..end])
            .map(|c| c[1].to_string())
            .collect(),
    )
}

#[test]
fn every_rule_the_code_can_raise_is_in_its_docs_alert_rules_table() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    // doc → rule → where it is raised.
    let mut wanted: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut all = BTreeSet::new();
    for f in &files {
        let Some(code) = code_of(f) else { continue };
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for rule in rules_in(&code) {
            all.insert(rule.clone());
            for doc in docs_for(&rel) {
                wanted
                    .entry(doc)
                    .or_default()
                    .insert(rule.clone(), rel.clone());
            }
        }
    }
    // The scan must see the rules it is meant to see.
    for known in [
        "probe_status",
        "disk_full",
        "disk_inodes_low",
        "pg_slot",
        "bridge_delivery",
        "notifier_failing",
        "store_failing",
        "no_notifier",
        "config_invalid",
        "net_lint",
        "deadman_ping_failing",
        "heartbeat_missing",
        "alertmanager_alert",
    ] {
        assert!(
            all.contains(known),
            "the source scan missed {known}: {all:?}"
        );
    }
    let mut problems = Vec::new();
    for (doc, rules) in &wanted {
        let Some(listed) = documented(doc) else {
            problems.push(format!(
                "{doc} has no \"## Alert rules\" section (it must list: {})",
                rules.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        for (rule, file) in rules {
            if !listed.contains(rule) {
                problems.push(format!(
                    "{doc} lacks `{rule}` (raised in {file}) in its \"## Alert rules\" table: add a row | `{rule}` | labels | default severity | when it fires / resolves |"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "alert rules missing from the docs:\n{}",
        problems.join("\n")
    );
}

/// The cells of every row of a doc's "Alert rules" table, by header name.
fn rule_rows(doc: &str) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root().join(doc)).unwrap();
    let Some(start) = text.find("\n## Alert rules") else {
        return Vec::new();
    };
    let section = &text[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut header: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in section[..end].lines().filter(|l| l.starts_with('|')) {
        if line.starts_with("| rule ") {
            header = cells(line);
        } else if !line.starts_with("|---") && !header.is_empty() {
            rows.push(header.iter().cloned().zip(cells(line)).collect());
        }
    }
    rows
}

#[test]
fn every_rule_row_names_its_labels_and_default_severity() {
    let mut docs = probe_docs();
    docs.push("docs/paging.md".into());
    let mut problems = Vec::new();
    let mut seen = 0;
    for doc in &docs {
        for row in rule_rows(doc) {
            seen += 1;
            let rule = row.get("rule").cloned().unwrap_or_default();
            for column in ["labels", "default severity"] {
                if row.get(column).is_none_or(|c| c.is_empty()) {
                    problems.push(format!("{doc}: {rule} has no {column}"));
                }
            }
            let severity = row.get("default severity").cloned().unwrap_or_default();
            if ![
                "critical", "warning", "info", "unknown", "as ", "per ", "from ",
            ]
            .iter()
            .any(|s| severity.contains(s))
            {
                problems.push(format!(
                    "{doc}: {rule}'s default severity {severity:?} names no severity"
                ));
            }
        }
    }
    assert!(seen > 30, "the tables were not read: {seen} rows");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
