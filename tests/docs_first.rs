//! What a doc must say before anything else, because a user who misses it sets the feature up
//! wrong (issue 9, item 20): docs/probes/bridge.md opens with the Heisenbridge owner rule and
//! how to find the bridged room's id, not under "Limits".

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
