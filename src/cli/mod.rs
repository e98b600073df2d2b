//! The command line: `run` starts the daemon; the other verbs talk to it over the API or run
//! daemon logic offline (`check`, `config check`, `rules replay`).

pub mod action;
mod check;
mod client;
mod cluster;
mod drill;
mod notify_test;
mod output;
mod paging;
mod target;

use crate::config;
use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// lookout: detect, page, recover.
#[derive(Parser, Debug)]
#[command(name = "lookout", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: ./lookout.toml, then /etc/lookout/lookout.toml, then the
    /// built-in zero-config profile).
    #[arg(long, global = true, env = "LOOKOUT_CONFIG")]
    pub config: Option<PathBuf>,
    /// State directory holding the store, the lock and the API token (default: the
    /// configuration's [daemon] state_dir, else /var/lib/lookout when it exists, else
    /// ./lookout-data).
    #[arg(long, global = true, env = "LOOKOUT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The running daemon's API, for status/alerts/ack/silence/timeline/forecast, as host:port
    /// or a URL (default: the address the daemon wrote to STATE_DIR/api-address, else the
    /// configuration's [api] listen).
    #[arg(long, global = true, env = "LOOKOUT_API")]
    pub api: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Run {
        /// Listen address of the API and status page, IP:PORT or localhost:PORT (overrides
        /// [api] listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run every probe once and print the results (exit code: 0 ok, 1 warning, 2 critical, 3 unknown).
    Check {
        /// Run once (the only mode; accepted for clarity).
        #[arg(long)]
        once: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show every probe's latest result from the running daemon.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List open alerts.
    Alerts {
        /// Include resolved alerts.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alert (id or unique prefix).
    Ack {
        /// The alert id.
        id: String,
        /// Who is acknowledging (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remediation actions: list them, run one by hand, approve a proposed run.
    Action {
        /// What to do.
        #[command(subcommand)]
        command: action::ActionCommand,
    },
    /// Silence alerts by label matchers: they still show, but nobody is paged.
    Silence {
        /// What to do.
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Show who is on call (reads the configuration; no daemon needed).
    Oncall {
        /// When: RFC 3339 (`2026-10-25T08:00:00Z`) or local time in each schedule's zone
        /// (`2026-10-25T09:30`). Default: now.
        #[arg(long)]
        at: Option<String>,
        /// Only this schedule.
        #[arg(long)]
        schedule: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the timeline.
    Timeline {
        /// How far back, e.g. 24h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show each filesystem's size, space, reserve, growth and time until full.
    Forecast {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Work with rules offline.
    Rules {
        /// What to do.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Work with the configuration offline.
    Config {
        /// What to do.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the host's configuration offline.
    Lint {
        /// What to check.
        #[command(subcommand)]
        command: LintCommand,
    },
    /// Work with notifiers.
    Notify {
        /// What to do.
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Recovery drills: list them, or run one through the daemon and wait for its result
    /// (exit 0 pass, 1 fail).
    Drill {
        /// What to do.
        #[command(subcommand)]
        command: DrillCommand,
    },
    /// Cluster mode: members, who leads, lease time left, configuration drift.
    Cluster {
        /// What to do.
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `lookout cluster …`.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show this node's view of the cluster (exit 0: a leader is known and no member is down
    /// or drifted; 1 otherwise).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `lookout rules …`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Replay recorded samples through the daemon's rules and print every alert transition.
    Replay {
        /// The probe kind of the samples (only `disk` so far).
        #[arg(long)]
        kind: String,
        /// CSV file with the header timestamp,size_bytes,avail_bytes,free_bytes (unix seconds); `-` for stdin.
        #[arg(long)]
        input: PathBuf,
        /// Take thresholds from this probe of the configuration (default: its only disk probe).
        #[arg(long)]
        probe: Option<String>,
        /// Print one JSON object per transition.
        #[arg(long)]
        json: bool,
    },
}

/// `lookout silence …`.
#[derive(Subcommand, Debug)]
pub enum SilenceCommand {
    /// Add a silence.
    Add {
        /// A label matcher: `name=value`, `name!=value`, `name=~regex`, `name!~regex`
        /// (repeat for more; all must hold). `probe`, `rule` and `severity` match too.
        #[arg(long = "match", required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 2h.
        #[arg(long = "for")]
        duration: String,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List silences.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        /// The silence id.
        id: String,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

/// `lookout drill …`.
#[derive(Subcommand, Debug)]
pub enum DrillCommand {
    /// List the drills with their schedule and last result.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a drill now through the daemon, wait for it, and print each expectation with its
    /// measured time (exit 0 pass, 1 fail).
    Run {
        /// The drill's name.
        name: String,
        /// Who runs it (default: $USER), for the timeline.
        #[arg(long)]
        by: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `lookout lint …`.
#[derive(Subcommand, Debug)]
pub enum LintCommand {
    /// Network hooks and interface configuration: bare command names that the hook runner's
    /// PATH does not cover, hooks that are not executable, DHCP on a server (exit 1 on findings).
    Net {
        /// Files or directories (default: /etc/network/interfaces, dhclient hooks,
        /// NetworkManager dispatcher scripts, systemd-networkd units).
        paths: Vec<PathBuf>,
    },
}

/// `lookout notify …`.
#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send a real test page through each named notifier (or `all`), person (each of their
    /// contacts in order, one right after the other: the delays a real page would wait are
    /// shown, not waited) or schedule (whoever is on call now) and report every hop with its
    /// latency (exit 1 if any hop failed).
    Test {
        /// Notifier, person or schedule ids, or `all`.
        #[arg(required = true)]
        targets: Vec<String>,
        /// The test page's severity: `critical` (the default: what a real page that must wake
        /// someone gets, e.g. ntfy priority 5, which a phone can let through do-not-disturb),
        /// `warning` or `info`.
        #[arg(long, default_value = "critical", value_parser = parse_severity)]
        severity: crate::model::Severity,
    },
}

/// `lookout config …`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration and print every problem (exit 1 if any).
    Check,
}

/// Parses arguments, runs the verb and turns errors into a message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Run { .. }));
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lookout: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `--severity`: `critical`, `warning` or `info`.
fn parse_severity(s: &str) -> Result<crate::model::Severity, String> {
    crate::model::Severity::parse(s)
        .ok_or_else(|| format!("{s:?} is not a severity: use critical, warning or info"))
}

fn init_logging(daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOOKOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { listen } => {
            let opts = crate::daemon::RunOptions {
                config: cli.config,
                state_dir: cli.state_dir,
                listen,
            };
            runtime()?.block_on(crate::daemon::run(opts))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { json, .. } => {
            let config = load_config(cli.config.as_deref())?;
            runtime()?.block_on(check::run(&config, json))
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => Ok(config_check(cli.config.as_deref())),
        Command::Rules {
            command:
                RulesCommand::Replay {
                    kind,
                    input,
                    probe,
                    json,
                },
        } => rules_replay(cli.config.as_deref(), &kind, &input, probe.as_deref(), json),
        Command::Lint {
            command: LintCommand::Net { paths },
        } => Ok(lint_net(&paths)),
        Command::Notify {
            command: NotifyCommand::Test { targets, severity },
        } => {
            let config = load_config(cli.config.as_deref())?;
            runtime()?.block_on(notify_test::run(&config, &targets, severity))
        }
        Command::Oncall { at, schedule, json } => {
            let config = load_config(cli.config.as_deref())?;
            paging::oncall(&config, at.as_deref(), schedule.as_deref(), json)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "lookout",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        cmd => {
            // A broken configuration must not cost the verbs an incident needs: they use only
            // the API address and the token (a warning says what was ignored).
            let known = target::read_known(cli.config.as_deref());
            let t = target::Target::resolve(&known, cli.api.as_deref(), cli.state_dir.as_deref())?;
            runtime()?.block_on(client::run(client::Client::new(t)?, cmd))
        }
    }
}

/// `lookout lint net`: one line per finding (exit 1), or one `ok` line (exit 0); a path that
/// cannot be read is an error naming it (exit 2), not a finding.
fn lint_net(paths: &[PathBuf]) -> ExitCode {
    let unreadable: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            let read = if p.is_dir() {
                std::fs::read_dir(p).map(drop)
            } else {
                std::fs::File::open(p).map(drop)
            };
            read.err()
                .map(|e| format!("lookout: cannot read {}: {e}", p.display()))
        })
        .collect();
    if !unreadable.is_empty() {
        for line in unreadable {
            eprintln!("{line}");
        }
        return ExitCode::from(2);
    }
    let findings = crate::lint::net::lint(paths);
    for f in &findings {
        println!("{f}");
    }
    if findings.is_empty() {
        let what = match paths {
            [] => "this host's network configuration".to_string(),
            [one] => one.display().to_string(),
            many => format!("the {} paths given", many.len()),
        };
        println!("ok: no findings in {what}");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<config::Config> {
    let path = config::locate(path);
    config::load(path.as_deref()).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}

fn config_check(path: Option<&std::path::Path>) -> ExitCode {
    let located = config::locate(path);
    match config::load(located.as_deref()) {
        Ok(c) => {
            for w in &c.warnings {
                println!("{}", config::error::AsWarning(w));
            }
            let n = c.warnings.len();
            println!(
                "{}: ok ({}, {} notifier{}{}{})",
                c.origin(),
                config::host::summary(&c),
                c.notifiers.len(),
                if c.notifiers.len() == 1 { "" } else { "s" },
                match c.actions.len() {
                    0 => String::new(),
                    1 => ", 1 action".into(),
                    n => format!(", {n} actions"),
                },
                match n {
                    0 => String::new(),
                    1 => ", 1 warning".into(),
                    n => format!(", {n} warnings"),
                }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{errors}");
            let n = errors.0.len();
            eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            ExitCode::from(1)
        }
    }
}

fn rules_replay(
    config_path: Option<&std::path::Path>,
    kind: &str,
    input: &std::path::Path,
    probe: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    if kind != "disk" {
        bail!("replay supports --kind disk only so far (got {kind:?})");
    }
    let (params, policy) = match config_path {
        None => {
            let d = config::ProbeConfig::zero_config_disks();
            let config::ProbeKindConfig::Disk(dc) = &d.kind else {
                unreachable!("the zero-config disks probe is a disk probe")
            };
            (dc.rule_params(), d.policy())
        }
        Some(path) => {
            let c = config::load(Some(path))
                .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
            let disks: Vec<_> = c
                .probes
                .iter()
                .filter(|p| matches!(p.kind, config::ProbeKindConfig::Disk(_)))
                .collect();
            let p = match probe {
                Some(id) => disks
                    .iter()
                    .find(|p| p.id == id)
                    .with_context(|| format!("no disk probe {id:?} in {}", path.display()))?,
                None if disks.len() == 1 => disks[0],
                None => bail!(
                    "{} has {} disk probes: name one with --probe",
                    path.display(),
                    disks.len()
                ),
            };
            let config::ProbeKindConfig::Disk(dc) = &p.kind else {
                unreachable!("filtered to disk probes above")
            };
            (dc.rule_params(), p.policy())
        }
    };
    let rows = if input.as_os_str() == "-" {
        crate::replay::read_disk_csv(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(input)
            .with_context(|| format!("cannot open {}", input.display()))?;
        crate::replay::read_disk_csv(std::io::BufReader::new(f))
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    for t in crate::replay::replay_disk(&rows, params, policy) {
        if json {
            println!("{}", serde_json::to_string(&t)?);
        } else {
            let eta = t
                .eta_seconds
                .map(crate::model::format_duration)
                .unwrap_or_else(|| "-".into());
            println!(
                "{}  {:<10} {:<8} {:<9} eta {}",
                crate::model::format_utc(t.at),
                t.alert,
                t.state,
                t.severity,
                eta
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
