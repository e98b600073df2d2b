use super::*;

fn names(script: &str) -> Vec<(String, usize)> {
    command_words(script)
        .into_iter()
        .map(|w| (w.name, w.line))
        .collect()
}

fn w(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(n, l)| (n.to_string(), *l)).collect()
}

#[test]
fn command_words_of_common_hook_shapes() {
    let cases: &[(&str, &[(&str, usize)])] = &[
        ("ip route add 10.8.0.0/16 via 192.168.1.1", &[("ip", 1)]),
        ("/sbin/ip route add 10.8.0.0/16 || true", &[]),
        (
            "ip link set eth0 up && logger up; sleep 1 | cat",
            &[("ip", 1), ("logger", 1), ("sleep", 1), ("cat", 1)],
        ),
        ("X=1 Y=\"a b\" ip addr >/dev/null 2>&1 &", &[("ip", 1)]),
        ("sudo -u root nice -n 5 env A=b ip a", &[("ip", 1)]),
        ("timeout 5 ping -c1 10.0.0.1", &[("ping", 1)]),
        ("exec wg-quick up wg0", &[("wg-quick", 1)]),
        (
            "GW=$(ip route show default | awk '{print $3}')",
            &[("ip", 1), ("awk", 1)],
        ),
        (
            "echo \"gw is $(ip route | head -1)\"",
            &[("ip", 1), ("head", 1)],
        ),
        ("for i in 1 2 3; do ping -c1 x; done", &[("ping", 1)]),
        (
            "if ip link show tun0 >/dev/null; then\n  ifup tun0\nelse logger no; fi",
            &[("ip", 1), ("ifup", 2), ("logger", 3)],
        ),
        (
            "case \"$2\" in\n  up) ip route add x ;;\n  down|pre-down) ip route del x ;;\nesac\nlogger done",
            &[("ip", 2), ("ip", 3), ("logger", 5)],
        ),
        (
            "add_routes() {\n  ip route add x\n}\nadd_routes\n",
            &[("ip", 2)],
        ),
        ("function up_all {\n  true\n}\nup_all", &[]),
        ("# ip route add x\necho hi # ip again", &[]),
        (
            "cat <<EOF\nip route add x\nEOF\nlogger ok",
            &[("cat", 1), ("logger", 4)],
        ),
        (
            "ip route add \\\n  10.0.0.0/8 via 1.2.3.4\nlogger x",
            &[("ip", 1), ("logger", 3)],
        ),
        ("command -v ip >/dev/null && ip a", &[("ip", 1)]),
        ("[ \"$IFACE\" = eth0 ] || exit 0", &[]),
        ("echo $((1 + 2)) > /tmp/x", &[]),
        ("$IP route add x; \"$CMD\" run", &[]),
        (
            "`hostname` ; (cd /tmp && make)",
            &[("hostname", 1), ("make", 1)],
        ),
    ];
    for (script, expected) in cases {
        assert_eq!(names(script), w(expected), "{script:?}");
    }
}

#[test]
fn own_path_and_sourcing_are_noticed() {
    assert_eq!(
        own_path("#!/bin/sh\nexport PATH=/usr/sbin:/usr/bin:$PATH\nip a\n"),
        Some((vec!["/usr/sbin".to_string(), "/usr/bin".to_string()], true))
    );
    assert_eq!(
        own_path("PATH=\"/sbin:/bin\"\n"),
        Some((vec!["/sbin".to_string(), "/bin".to_string()], false))
    );
    assert_eq!(own_path("ip a\n"), None);
    assert!(sources_other_files(
        ". /lib/lsb/init-functions\nlog_action_msg hi\n"
    ));
    assert!(!sources_other_files("echo .\n"));
}

/// Issue 9 item 15: `case` patterns are patterns, wherever they stand and however they are
/// written; the arms' commands are still commands.
#[test]
fn case_patterns_are_never_command_words() {
    let cases: &[(&str, &[(&str, usize)])] = &[
        // The reported shape: three alternatives on the `case … in` line.
        (
            "case \"$reason\" in BOUND|RENEW|REBOOT)\n  ip route add x ;;\nesac",
            &[("ip", 2)],
        ),
        (
            "case \"$reason\" in BOUND|RENEW|REBIND|REBOOT) ip a ;; EXPIRE|FAIL) logger gone ;; esac",
            &[("ip", 1), ("logger", 1)],
        ),
        // Spaces around `|`, quoted and globbed alternatives, the optional `(`.
        (
            "case $1 in\n  \"up\" | 'down' )\n    ip a\n    ;;\n  (pre-*|post-[a-z]*) logger p ;;\n  *) true ;;\nesac",
            &[("ip", 3), ("logger", 5)],
        ),
        // Fall-through arms (`;&`, bash's `;;&`) and a last arm without `;;`.
        (
            "case x in\n a) ifup a ;&\n b) ifdown b ;;&\n c) ifquery c\nesac\nlogger end",
            &[("ifup", 2), ("ifdown", 3), ("ifquery", 4), ("logger", 6)],
        ),
        // A pattern on the line after `in`, an arm body spanning lines, `;;` on its own line.
        (
            "case \"$IFACE\" in\n  eth0|\\\n  eth1|eth2)\n    ip link set up\n    wg-quick up wg0\n  ;;\nesac",
            &[("ip", 4), ("wg-quick", 5)],
        ),
        // A subshell and a substitution inside an arm: their `)` does not end the arm.
        (
            "case $r in\n  BOUND) GW=$(ip route | awk '{print $3}'); (cd /tmp && make) ; ping -c1 \"$GW\" ;;\n  RENEW|REBIND) arp -n ;;\nesac",
            &[("ip", 2), ("awk", 2), ("make", 2), ("ping", 2), ("arp", 3)],
        ),
        // Nested case; a substitution in the subject is read as commands.
        (
            "case $(uname -s) in\n  Linux) case $reason in A|B|C) ip a ;; esac ;;\n  *BSD) ifconfig ;;\nesac",
            &[("uname", 1), ("ip", 2), ("ifconfig", 3)],
        ),
        ("case `hostname` in a|b|c) true ;; esac", &[("hostname", 1)]),
        // `case` after a keyword, and `esac` followed by more commands.
        (
            "if true; then case $x in a|b|c) logger in ;; esac; fi; ip r",
            &[("logger", 1), ("ip", 1)],
        ),
        // An extglob with `|` inside parentheses.
        ("case $x in @(a|b|c)) ip a ;; esac", &[("ip", 1)]),
        // `esac` as an argument, or as a later alternative, closes nothing.
        (
            "case $x in\n a|esac|b) echo esac ;;\n c|d|e) ip a ;;\nesac",
            &[("ip", 3)],
        ),
    ];
    for (script, expected) in cases {
        assert_eq!(names(script), w(expected), "{script:?}");
    }
}
