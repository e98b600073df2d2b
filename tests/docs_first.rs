//! What a doc must say before anything else, because a user who misses it sets the feature up
//! wrong (issue 9, item 20): docs/probes/bridge.md opens with the Heisenbridge owner rule and
//! how to find the bridged room's id, not under "Limits". docs/drills.md's seed drill is a
//! configuration lookout accepts, with a fault its postgres probe cannot miss.

use std::path::Path;

fn doc(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The first `## ` section of a markdown text: its heading and body.
fn first_section(text: &str) -> &str {
    let start = text.find("\n## ").expect("a ## section") + 1;
    let end = text[start + 3..]
        .find("\n## ")
        .map_or(text.len(), |i| start + 3 + i);
    &text[start..end]
}

#[test]
fn the_bridge_doc_opens_with_the_owner_rule_and_the_room_id() {
    let text = doc("docs/probes/bridge.md");
    let first = first_section(&text);
    assert!(
        first.starts_with("## Before you start"),
        "bridge.md's first section is not the set-up it needs:\n{first}"
    );
    for must in [
        "the probe's Matrix user must be the bridge's owner",
        "The `room` is the bridged room's id",
        "Internal room ID",
        "joined_rooms",
    ] {
        assert!(first.contains(must), "missing {must:?} in:\n{first}");
    }
    let limits = text.find("## Limits").expect("a Limits section");
    assert!(
        !text[limits..].contains("must be the bridge's owner"),
        "the owner rule belongs at the top, not under Limits"
    );
}

/// The first ```toml block of a markdown text.
fn first_toml(text: &str) -> &str {
    let start = text.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + text[start..].find("```").expect("the block's end");
    &text[start..end]
}

/// The seconds of `key = "Ns"` in a block of TOML text.
fn seconds_of(toml: &str, key: &str) -> u64 {
    let line = toml
        .lines()
        .find(|l| l.starts_with(&format!("{key} = \"")))
        .unwrap_or_else(|| panic!("no {key} in:\n{toml}"));
    let v = line.split('"').nth(1).unwrap();
    v.trim_end_matches('s').parse().unwrap()
}

#[test]
fn the_seed_drill_keeps_the_database_down_across_a_probe_run_and_checks_ok() {
    // A quick restart is invisible to the postgres probe: the drill would never see its
    // expected alert, and did_not_recover would never follow.
    let text = doc("docs/drills.md");
    let block = first_toml(&text);
    assert!(
        !block.contains("verb = \"restart\"") && !block.contains(" restart"),
        "the seed drill's fault must not be a quick restart:\n{block}"
    );
    let interval = seconds_of(block, "interval");
    let argv = block
        .lines()
        .find(|l| l.starts_with("argv = ") && l.contains("sleep "))
        .unwrap_or_else(|| panic!("no fault script with a sleep in:\n{block}"));
    let down: u64 = argv
        .split("sleep ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        down > interval,
        "down {down}s, probe interval {interval}s:\n{block}"
    );
    // And the configuration is one lookout accepts as it is written.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lookout.toml");
    std::fs::write(&file, block).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("--config")
        .arg(&file)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
