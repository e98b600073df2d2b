//! Unit tests of `[[action]]` parsing and validation.

use super::*;
use crate::config::parse_str;
use std::path::Path;

const PROBES: &str = "[[probe]]\nid = \"db\"\nkind = \"disk\"\n\n[[probe]]\nid = \"app-write\"\nkind = \"disk\"\ndepends_on = [\"db\"]\n\n";

fn ok(actions: &str) -> crate::config::Config {
    parse_str(Path::new("t.toml"), &format!("{PROBES}{actions}")).unwrap_or_else(|e| panic!("{e}"))
}

/// Every error as `LINE:COL: MESSAGE` (lines counted in the action text, after PROBES).
fn errors(actions: &str) -> Vec<String> {
    let offset = PROBES.lines().count();
    let e = parse_str(Path::new("t.toml"), &format!("{PROBES}{actions}"))
        .expect_err("the configuration must be invalid");
    e.0.iter()
        .map(|e| {
            format!(
                "{}:{}: {}{}",
                e.line - offset,
                e.column,
                e.message,
                e.hint
                    .as_deref()
                    .map(|h| format!(" [{h}]"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn every_default_applies() {
    let c = ok("[[action]]\nname = \"restart-app\"\nkind = \"exec\"\nargv = [\"/bin/true\"]\n");
    let a = &c.actions[0];
    assert_eq!(a.name, "restart-app");
    let d = &a.common;
    assert!(d.on.is_empty());
    assert_eq!(d.mode, ActionMode::Ask);
    assert_eq!(d.delay, Dur::from_secs(30));
    assert_eq!(d.require_ok, None);
    assert_eq!(d.require_ok_for, Dur::from_secs(60));
    assert_eq!(d.cooldown, Dur::from_secs(300));
    assert_eq!(d.max_runs, 3);
    assert_eq!(d.window, Dur::from_secs(3600));
    assert!(d.post_check);
    assert_eq!(d.post_check_within, Dur::from_secs(60));
    assert_eq!(d.ask_deadline, Dur::from_secs(900));
    assert_eq!(d.timeout, None);
    assert_eq!(a.timeout(), Dur::from_secs(60));
    // require_ok defaults to the triggering probe's depends_on.
    assert_eq!(
        a.preconditions(&c, Some("app-write")),
        vec!["db".to_string()]
    );
    assert!(a.preconditions(&c, None).is_empty());
}

#[test]
fn kinds_have_their_default_timeouts_and_fields() {
    let c = ok(concat!(
        "[[action]]\nname = \"unit\"\nkind = \"systemd\"\nunit = \"app.service\"\n\n",
        "[[action]]\nname = \"hook\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\n\n",
        "[[action]]\nname = \"hup\"\nkind = \"signal\"\nname_ = 1\n",
    )
    .replace("name_ = 1\n", "pid_file = \"/run/app.pid\"\n")
    .as_str());
    let t: Vec<(String, Dur)> = c
        .actions
        .iter()
        .map(|a| (a.kind.name().to_string(), a.timeout()))
        .collect();
    assert_eq!(
        t,
        vec![
            ("systemd".into(), Dur::from_secs(90)),
            ("http".into(), Dur::from_secs(10)),
            ("signal".into(), Dur::from_secs(5)),
        ]
    );
    let ActionKindConfig::Systemd(s) = &c.actions[0].kind else {
        panic!()
    };
    assert_eq!(
        (s.verb.as_str(), s.systemctl.as_str()),
        ("restart", "systemctl")
    );
    let ActionKindConfig::Http(h) = &c.actions[1].kind else {
        panic!()
    };
    assert_eq!(h.method, "POST");
    assert!(h.expect_status.is_empty());
    let ActionKindConfig::Signal(s) = &c.actions[2].kind else {
        panic!()
    };
    assert_eq!(s.signal, "TERM");
}

#[test]
fn every_field_parses() {
    let c = ok(r#"[[action]]
name = "restart-app"
kind = "exec"
on = { rule = "did_not_recover", probe = "app-write" }
mode = "auto"
delay = "10s"
require_ok = ["db"]
require_ok_for = "2m"
cooldown = "10m"
max_runs = 5
window = "2h"
post_check = false
post_check_within = "30s"
ask_deadline = "1h"
timeout = "20s"
argv = ["/usr/local/bin/restart-app", "--now"]
env = { TOKEN = "s3cr3t-value" }
dir = "/srv/app"
"#);
    let a = &c.actions[0];
    let d = &a.common;
    assert_eq!(d.on.get("probe").map(String::as_str), Some("app-write"));
    assert_eq!(d.mode, ActionMode::Auto);
    assert_eq!(d.require_ok, Some(vec!["db".to_string()]));
    assert_eq!((d.max_runs, d.post_check), (5, false));
    assert_eq!(a.timeout(), Dur::from_secs(20));
    assert_eq!(
        a.preconditions(&c, Some("app-write")),
        vec!["db".to_string()]
    );
    // The env value is a secret: it never prints.
    assert!(!format!("{a:?}").contains("s3cr3t"));
    assert_eq!(
        crate::action::build(a).describe(),
        "exec /usr/local/bin/restart-app --now"
    );
}

#[test]
fn relative_argv0_is_an_error_at_its_position() {
    let e = errors("[[action]]\nname = \"ip\"\nkind = \"exec\"\nargv = [\"ip\", \"link\"]\n");
    assert_eq!(
        e,
        vec![
            "4:9: argv[0] \"ip\" is not an absolute path: PATH is not searched [write the program's full path, e.g. \"/usr/sbin/ip\" (`command -v NAME` prints it)]"
        ]
    );
}

#[test]
fn every_problem_is_reported() {
    let e = errors(
        r#"[[action]]
name = "Bad Name"
kind = "exec"
on = { probe = "app-wirte" }
require_ok = ["db", "dbb"]
max_runs = 0
argv = []
dir = "srv"

[[action]]
name = "unit"
kind = "systemd"
unit = "app.service"
verb = "restrat"

[[action]]
name = "unit"
kind = "signal"
signal = "STOP"

[[action]]
name = "hook"
kind = "http"
url = "ftp://x/"
expect_status = [200, 999]
method = "GE T"

[[action]]
name = "typo"
kind = "exec"
argv = ["/bin/true"]
colour = "red"

[[action]]
name = "x"
kind = "shell"
"#,
    );
    let want = [
        "2:8: name \"Bad Name\" may only hold a-z, 0-9, '-' and '_' [e.g. name = \"restart-app\"]",
        "4:16: on.probe names unknown probe \"app-wirte\" [did you mean `app-write`?]",
        "5:21: require_ok names unknown probe \"dbb\" [did you mean `db`?]",
        "6:12: max_runs must be at least 1 [an action that may never run is a dry run: set mode = \"dry_run\"]",
        "7:8: argv is empty: there is no program to run [e.g. argv = [\"/usr/local/bin/restart-app\", \"--now\"]]",
        "8:7: dir \"srv\" is not an absolute path",
        "14:8: verb \"restrat\" is not a systemctl job this action runs [did you mean `restart`?]",
        "17:8: duplicate action name [every action needs a unique name]",
        "19:10: signal \"STOP\" is not one this action sends [one of HUP, INT, TERM, KILL, USR1, USR2]",
        "16:1: neither pid_file nor process is set: nothing says which process to signal [e.g. process = \"synapse\" or pid_file = \"/run/synapse.pid\"]",
        "24:7: url scheme \"ftp\" is not http or https",
        "25:23: expect_status 999 is not an HTTP status code (100–599)",
        "26:10: method \"GE T\" is not a valid HTTP method [e.g. POST, PUT, GET]",
        "32:1: unknown field `colour`",
        "36:8: unknown kind `shell` [known kinds: exec, systemd, http, signal]",
    ];
    for w in want {
        assert!(
            e.iter().any(|g| g.starts_with(w)),
            "missing {w:?} in:\n{}",
            e.join("\n")
        );
    }
}

#[test]
fn a_secret_url_never_shows_in_an_error() {
    let e = errors(
        "[[action]]\nname = \"h\"\nkind = \"http\"\nurl = \"https//hooks.example/T0KEN123\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(!e[0].contains("T0KEN123"), "{e:?}");
    assert!(e[0].starts_with("4:7: url is not a valid URL"), "{e:?}");
    let c = ok(
        "[[action]]\nname = \"h\"\nkind = \"http\"\nurl = \"https://hooks.example:8443/T0KEN123?k=v\"\n",
    );
    let d = crate::action::build(&c.actions[0]).describe();
    assert_eq!(d, "http POST https://hooks.example:8443/<secret>");
}

#[test]
fn missing_name_and_kind() {
    let e = errors("[[action]]\nkind = \"exec\"\n\n[[action]]\nname = \"a\"\n");
    assert_eq!(
        e,
        vec![
            "1:1: missing `name` [give every action a unique name, e.g. name = \"restart-app\"]",
            "4:1: missing `kind` [known kinds: exec, systemd, http, signal]",
        ]
    );
}

#[test]
fn zero_durations_and_a_window_shorter_than_the_cooldown() {
    let e = errors(
        "[[action]]\nname = \"a\"\nkind = \"exec\"\nargv = [\"/bin/true\"]\ntimeout = \"0s\"\nwindow = \"1m\"\n",
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("5:11: timeout must be longer than 0s")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("6:10: window 1m is shorter than the cooldown 5m")),
        "{e:?}"
    );
}
