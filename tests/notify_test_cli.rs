//! `lookout notify test`: a real test page per notifier, each hop reported with its outcome.

mod kit;

use kit::{Sink, lookout_bin, write_file};

#[test]
fn each_hop_is_reported_and_a_failing_one_sets_the_exit_code() {
    let work = tempfile::tempdir().unwrap();
    let good = Sink::start();
    let bad = Sink::start();
    bad.respond_with(401);
    let cfg = format!(
        r#"
[[notifier]]
id = "chat"
kind = "webhook"
url = "{}"

[[notifier]]
id = "phone"
kind = "webhook"
url = "{}"
"#,
        good.url, bad.url
    );
    let cfg = write_file(work.path(), "lookout.toml", &cfg);
    let run = |args: &[&str]| {
        std::process::Command::new(lookout_bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["notify", "test", "all"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("chat (webhook): delivered in"), "{stdout}");
    assert!(stdout.contains("phone (webhook): FAILED"), "{stdout}");
    assert!(stdout.contains("401"), "{stdout}");
    for url in [&good.url, &bad.url] {
        assert!(
            !stdout.contains(url.as_str()),
            "a URL in the output: {stdout}"
        );
    }
    let page = &good.all()[0].body;
    assert_eq!(page["event"], "test");
    assert!(page["summary"].as_str().unwrap().starts_with("[TEST]"));

    let out = run(&["notify", "test", "chat"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(good.all().len(), 2);

    let out = run(&["notify", "test", "pager"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no notifier \"pager\"") && stderr.contains("known: chat, phone"),
        "{stderr}"
    );
}
