//! `lookout run`: loads the configuration, opens the store, restores alerts, starts the
//! scheduler, the API and the self-checks, and handles SIGTERM (stop) and SIGHUP (reload).

mod action_exec;
mod action_pursuit;
pub mod action_runs;
pub mod actions;
pub mod clock;
mod cluster;
pub mod core;
mod deadman;
mod internal;
pub mod liveness;
pub mod paging;
pub mod place;
pub mod scheduler;
mod systemd;

use crate::alert::Engine;
use crate::config::{self, Config, Secret};
use crate::notify::ack_link::{AckLinks, LinkKey};
use crate::notify::dispatch::{ChannelHealth, Dispatcher, Target};
use crate::store::writer::{self, StoreHandle};
use anyhow::{Context, Result};
use clock::{Clock, SystemClock};
use core::Core;
use scheduler::{Scheduled, Scheduler};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedSender;

/// Options of `lookout run` that override the configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
}

/// The state directory: `--state-dir`, else the config's, else `/var/lib/lookout` when it
/// exists, else `./lookout-data` (see [`place::choose_state_dir`]).
pub fn state_dir(opt: Option<&Path>, config: &Config) -> place::StateDir {
    place::choose_state_dir(opt, config.daemon.state_dir.as_deref())
}

/// The API token: from the configuration, else `STATE_DIR/api-token` (created, mode 0600).
pub fn api_token(config: &Config, state_dir: &Path) -> Result<Secret> {
    if let Some(t) = &config.api.token {
        return Ok(t.clone());
    }
    let path = state_dir.join("api-token");
    if let Ok(t) = Secret::from_file(&path)
        && !t.expose().is_empty()
    {
        return Ok(t);
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let token: String = {
        use rand::Rng;
        let bytes: [u8; 24] = rand::rng().random();
        hex::encode(bytes)
    };
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, token.as_bytes())?;
    Ok(Secret::new(token))
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> Result<()> {
    // Signal handlers first: a SIGHUP during start-up must not kill the daemon (the default
    // action), and a SIGTERM then should stop it cleanly.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    crate::http::install_crypto_provider();
    let config_path = config::locate(opts.config.as_deref());
    let mut config = config::load(config_path.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    log_config_warnings(&config);
    let config_hash = crate::cluster::config_hash(&config);
    let quorum = cluster::shape_for_node(&mut config);
    let chosen = state_dir(opts.state_dir.as_deref(), &config);
    // Before anything reads or writes the state directory: one daemon per directory.
    let _lock = place::lock_state_dir(&chosen)?;
    let state_dir = chosen.path.clone();
    let listen = opts
        .listen
        .clone()
        .unwrap_or_else(|| config.api.listen.clone());
    let addr: SocketAddr = config::listen::parse(&listen).map_err(anyhow::Error::msg)?;
    if let Some(why) = config::intake::open_door(&config, &listen) {
        anyhow::bail!(
            "refusing to start: {why}\n  hint: {}",
            config::intake::OPEN_DOOR_HINT
        );
    }
    tracing::info!(config = %config.origin(), state_dir = %chosen.absolute().display(), "starting lookout {}", env!("CARGO_PKG_VERSION"));

    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let previous_run = liveness::previous_run(&state_dir);
    let (store, restored) = open_store(&state_dir, &config);
    let token = api_token(&config, &state_dir)?;
    let link_key = LinkKey::load_or_create(&state_dir)?;
    let links = ack_links(&config, &link_key, addr);
    let (feedback_tx, feedback_rx) = tokio::sync::mpsc::unbounded_channel();
    let dispatcher =
        build_dispatcher(&config, &store, feedback_tx.clone())?.with_ack_links(links.clone());
    let mut engine = Engine::new();
    engine.add_source(crate::rule::alertmanager::SOURCE);
    engine.add_source(crate::rule::heartbeat::SOURCE);
    let core = Arc::new(Core::new(
        clock.clone(),
        engine,
        store.clone(),
        dispatcher,
        state_dir.clone(),
        token,
    ));
    core.set_ack_links(links);
    core.set_quorum(quorum);
    let (cluster_stop_tx, cluster_stop_rx) = tokio::sync::watch::channel(false);
    let api_url = config
        .cluster
        .as_ref()
        .and_then(|c| c.api_url.clone())
        .or_else(|| config.api.public_url.clone())
        .unwrap_or_else(|| format!("http://{addr}"));
    let cluster_loop = cluster::start(&core, &config, config_hash, api_url, cluster_stop_rx);
    // Without the store's word, number on from this moment in milliseconds: above any
    // earlier run's numbers (which count entries) unless the clock was far behind.
    core.set_timeline_seq(
        restored
            .timeline_seq
            .unwrap_or((clock::unix_now() * 1000.0) as i64),
    );
    let now = clock.now();
    apply_probes(&core, &config, &state_dir);
    core.with_engine(|e| e.restore(restored.alerts, now));
    core.set_intake(&config.intake, &config.heartbeats);
    core.set_paging(&config);
    core.dispatcher().resume(restored.pending);
    core.dispatcher().seed_sent(restored.sent_keys);
    core.restore_paging(restored.escalations, restored.silences);
    core.set_actions(&config);
    core.restore_action_runs(&state_dir);
    let _action_runner = actions::start(&core);
    crate::drill::runner::apply(&core, &config);

    let (ack_tx, ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut listeners = start_ack_listeners(&core, &ack_tx);
    let acks = tokio::spawn(apply_acks(core.clone(), ack_rx));

    let mut scheduler = start_scheduler(&core, &config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is another lookout running? use --listen to pick another address)"))?;
    let bound = listener.local_addr()?;
    if bound != addr {
        // Port 0 asked for any port: links point at the one the API got.
        let links = ack_links(&config, &link_key, bound);
        core.set_dispatcher(core.dispatcher().with_ack_links(links.clone()));
        core.set_ack_links(links);
    }
    place::remember_api_address(&state_dir, bound);
    // Only a run that got this far can die uncleanly; a failed start leaves no marker.
    liveness::mark_running(&state_dir, clock.now().wall);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::api::serve(listener, core.clone(), stop_rx.clone()));
    print_banner(&config, &state_dir, bound);
    let config_path_for_reload = config_path.clone();
    let self_checks = tokio::spawn(internal::run(core.clone(), feedback_rx, stop_rx.clone()));
    let touching = tokio::spawn(liveness::keep_touching(state_dir.clone(), stop_rx.clone()));
    note_start(&core, &config, previous_run.as_ref());
    internal::announce_notifiers(&core);
    internal::announce_watching(&core, &config);
    let lint_core = core.clone();
    tokio::spawn(async move { internal::lint_network(&lint_core).await });
    systemd::ready(&format!(
        "watching {} probes, API on {bound}",
        config.probes.len()
    ));

    let signal_name = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                scheduler = reload(&core, config_path_for_reload.as_deref(), scheduler, &feedback_tx, &link_key, bound);
                listeners.iter().for_each(|l| l.abort());
                listeners = start_ack_listeners(&core, &ack_tx);
            }
        }
    };
    tracing::info!("stopping");
    systemd::stopping();
    scheduler.stop();
    core.note("daemon_stopped", format!("lookout stopped ({signal_name})"));
    let _ = stop_tx.send(true);
    let _ = cluster_stop_tx.send(true);
    if let Some(l) = cluster_loop {
        // Gives up the lead and the lease at once: another node pages without waiting a TTL.
        let _ = tokio::time::timeout(Duration::from_secs(2), l).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    self_checks.abort();
    listeners.iter().for_each(|l| l.abort());
    acks.abort();
    let store_for_flush = core.store.clone();
    let _ =
        tokio::task::spawn_blocking(move || store_for_flush.shutdown(Duration::from_secs(3))).await;
    let _ = touching.await;
    liveness::mark_stopped(&state_dir);
    Ok(())
}

/// The start banner on standard output: what is watched, where the state and the API token
/// are, and the status page.
fn print_banner(config: &Config, state_dir: &Path, bound: SocketAddr) {
    let abs = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let token = match (&config.api.token_file, &config.api.token) {
        (Some(f), _) => format!("token file {}", f.display()),
        (None, Some(_)) => "token from [api] token".to_string(),
        (None, None) => format!("token file {}", abs.join("api-token").display()),
    };
    // 0.0.0.0 is where it listens, not an address anyone can open.
    let page = if bound.ip().is_unspecified() {
        format!(
            "http://HOST:{0}/ on every address of this host (here: http://127.0.0.1:{0}/)",
            bound.port()
        )
    } else {
        format!("http://{bound}/")
    };
    println!(
        "lookout is watching {}; state directory {}; API {token}; status page: {page}",
        config::host::summary(config),
        abs.display()
    );
    if let Some(why) = config::intake::open_door_allowed(config, &bound.to_string()) {
        println!("WARNING: {why}");
        tracing::warn!("{why}");
    }
    if config::host::watches_nothing(config) {
        println!("WARNING: {}", config::WATCHING_NOTHING);
    }
}

/// The timeline's start entry: what started with what, whether the last run stopped
/// uncleanly (see [`liveness`]) and what was taken back from the store.
fn note_start(core: &Core, config: &Config, previous: Option<&liveness::UncleanStop>) {
    let head = format!(
        "lookout {} started with {} ({} probes)",
        env!("CARGO_PKG_VERSION"),
        config.origin(),
        config.probes.len()
    );
    let escalations = core.escalations().len();
    let open_alerts = core.alerts().iter().filter(|a| a.state.is_open()).count();
    if let Some(p) = previous {
        tracing::warn!(
            last_seen_alive = %crate::model::format_utc(p.last_alive),
            escalations,
            open_alerts,
            "the last run of lookout did not stop cleanly"
        );
    }
    core.note(
        "daemon_started",
        liveness::started_message(&head, previous, escalations, open_alerts),
    );
}

#[derive(Default)]
struct Restored {
    alerts: Vec<crate::alert::Alert>,
    pending: Vec<crate::store::Delivery>,
    escalations: Vec<crate::escalation::Escalation>,
    silences: Vec<crate::escalation::silence::Silence>,
    sent_keys: Vec<String>,
    /// The sequence number of the next timeline entry, when the store could say.
    timeline_seq: Option<i64>,
}

/// Opens the store and reads what a restart needs; a store that fails is reported, not fatal.
fn open_store(state_dir: &Path, config: &Config) -> (StoreHandle, Restored) {
    let mut restored = Restored::default();
    let since = clock::unix_now() - 86_400.0;
    match crate::store::open(state_dir) {
        Ok(conn) => {
            match crate::store::load_alerts(&conn, since) {
                Ok(a) => restored.alerts = a,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot load alerts from the store")
                }
            }
            match crate::store::load_pending_deliveries(&conn) {
                Ok(p) => restored.pending = p,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot load pending deliveries")
                }
            }
            match crate::store::load_escalations(&conn) {
                Ok(e) => restored.escalations = e,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot load escalations from the store")
                }
            }
            match crate::store::load_escalation_keys(&conn) {
                Ok(k) => restored.sent_keys = k,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot load the escalation notification log")
                }
            }
            match crate::store::next_timeline_seq(&conn) {
                Ok(n) => restored.timeline_seq = Some(n),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot read the timeline's last sequence number")
                }
            }
            match crate::store::load_silences(&conn, since) {
                Ok(s) => restored.silences = s,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot load silences from the store")
                }
            }
            tracing::info!(
                escalations = restored.escalations.len(),
                alerts = restored.alerts.len(),
                pending_deliveries = restored.pending.len(),
                "store opened"
            );
            (
                writer::spawn(
                    state_dir.to_path_buf(),
                    config.store.clone(),
                    Some(conn),
                    None,
                ),
                restored,
            )
        }
        Err(e) => {
            let msg = format!("{e:#}");
            tracing::error!(error = %msg, "cannot open the store; running from memory until it works");
            (
                writer::spawn(
                    state_dir.to_path_buf(),
                    config.store.clone(),
                    None,
                    Some(msg),
                ),
                restored,
            )
        }
    }
}

/// Starts every notifier's acknowledgement listener (e.g. the Matrix room sync).
fn start_ack_listeners(
    core: &Arc<Core>,
    acks: &crate::notify::AckSender,
) -> Vec<tokio::task::JoinHandle<()>> {
    core.dispatcher()
        .targets()
        .iter()
        .filter_map(|t| t.notifier.listen(acks.clone()))
        .collect()
}

/// Feeds acknowledgements from channels into the same path as `lookout ack`.
async fn apply_acks(
    core: Arc<Core>,
    mut acks: tokio::sync::mpsc::UnboundedReceiver<crate::notify::Ack>,
) {
    while let Some(ack) = acks.recv().await {
        // A ✅ on the page of an action proposal approves the proposal.
        if let Some(r) = core.approve_by_page(&ack.alert_id, &ack.by) {
            match r {
                Ok(p) => {
                    tracing::info!(proposal = %p.id, action = %p.action, by = %ack.by, "proposal approved from a notification channel")
                }
                Err((_, e)) => {
                    tracing::info!(alert = %ack.alert_id, by = %ack.by, "approval not applied: {e}")
                }
            }
            continue;
        }
        match core.acknowledge_page(&ack.alert_id, ack.group.as_deref(), &ack.by) {
            Ok(list) => {
                for a in list {
                    tracing::info!(alert = %a.id, by = %ack.by, "acknowledged from a notification channel")
                }
            }
            Err(e) => {
                tracing::info!(alert = %ack.alert_id, by = %ack.by, "acknowledgement not applied: {e}")
            }
        }
    }
}

/// How pages get their acknowledgement links under `config` (`None` with `ack_links = false`):
/// under `[api] public_url`, else under the address the API listens on.
fn ack_links(config: &Config, key: &LinkKey, listen: SocketAddr) -> Option<Arc<AckLinks>> {
    if !config.api.ack_links {
        return None;
    }
    let base = config
        .api
        .public_url
        .clone()
        .unwrap_or_else(|| crate::notify::ack_link::local_base(listen));
    Some(Arc::new(AckLinks::new(
        key.clone(),
        &base,
        config.api.ack_link_expiry.0.as_secs(),
    )))
}

fn build_dispatcher(
    config: &Config,
    store: &StoreHandle,
    feedback: UnboundedSender<ChannelHealth>,
) -> Result<Dispatcher> {
    let mut targets = Vec::new();
    for n in &config.notifiers {
        let notifier = crate::notify::build(n).with_context(|| format!("notifier {:?}", n.id))?;
        let attempts = n.kind.attempts();
        targets.push(Target {
            config: n.clone(),
            notifier,
            attempts,
        });
    }
    Ok(Dispatcher::new(targets, store.clone(), feedback))
}

/// Registers every configured probe with the engine, seeded with stored history.
fn apply_probes(core: &Core, config: &Config, state_dir: &Path) {
    let now = core.clock.now();
    let reader = crate::store::open_read_only(state_dir).ok();
    let mut kinds = BTreeMap::new();
    let keep: BTreeSet<String> = config.probes.iter().map(|p| p.id.clone()).collect();
    let events = core.with_engine(|e| e.retain_probes(&keep, now));
    core.handle(events);
    for p in &config.probes {
        let built = crate::probe::build(p);
        kinds.insert(p.id.clone(), p.kind.name().to_string());
        let history = reader.as_ref().and_then(|conn| {
            let window = match &p.kind {
                config::ProbeKindConfig::Disk(d) => d.rule_params().forecast.window,
                _ => return None,
            };
            // Two days back (or the window, if longer): the oldest point tells how long the
            // series has been watched, which bounds how far ahead the forecast may reach.
            crate::store::load_samples(
                conn,
                &p.id,
                crate::rule::disk::samples::AVAIL,
                now.wall - window.max(2.0 * 86_400.0),
            )
            .ok()
        });
        core.with_engine(|e| {
            e.set_probe(p.spec(), built.rules);
            if let Some(h) = &history {
                e.seed(&p.id, h, now);
            }
        });
    }
    core.set_kinds(kinds);
}

fn start_scheduler(core: &Arc<Core>, config: &Config) -> Result<Scheduler> {
    let probes = config
        .probes
        .iter()
        .map(|p| Scheduled {
            id: p.id.clone(),
            probe: crate::probe::build(p).probe,
            interval: p.interval().0,
            timeout: p.timeout().0,
        })
        .collect();
    let mut scheduler = Scheduler::start(
        core.clone(),
        probes,
        config.daemon.max_concurrent_probes,
        config.daemon.jitter,
    );
    if let Some(d) = &config.deadman {
        let longest = config
            .probes
            .iter()
            .map(|p| p.interval().0)
            .max()
            .unwrap_or_default();
        scheduler.attach(tokio::spawn(deadman::run(core.clone(), d.clone(), longest)));
    }
    Ok(scheduler)
}

/// SIGHUP: a valid new configuration replaces the old; an invalid one keeps the old and raises a
/// warning alert saying why.
fn reload(
    core: &Arc<Core>,
    path: Option<&Path>,
    scheduler: Scheduler,
    feedback: &UnboundedSender<ChannelHealth>,
    link_key: &LinkKey,
    bound: SocketAddr,
) -> Scheduler {
    tracing::info!("SIGHUP: reloading the configuration");
    systemd::reloading();
    let result = config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let d = build_dispatcher(&config, &core.store, feedback.clone())
                .map_err(|e| format!("{e:#}"))?;
            Ok((config, d))
        });
    match result {
        Ok((mut config, dispatcher)) => {
            log_config_warnings(&config);
            if let Some(c) = core.cluster() {
                c.set_config_hash(crate::cluster::config_hash(&config));
            }
            core.set_quorum(cluster::shape_for_node(&mut config));
            scheduler.stop();
            let links = ack_links(&config, link_key, bound);
            core.set_dispatcher(dispatcher.with_ack_links(links.clone()));
            core.set_ack_links(links);
            apply_probes(core, &config, &core.state_dir);
            core.set_intake(&config.intake, &config.heartbeats);
            core.set_paging(&config);
            core.set_actions(&config);
            crate::drill::runner::apply(core, &config);
            let s = start_scheduler(core, &config).expect("scheduler start cannot fail");
            core.set_internal(internal::config_condition(None));
            internal::announce_notifiers(core);
            internal::announce_watching(core, &config);
            let status = format!(
                "configuration reloaded from {} ({} probes)",
                config.origin(),
                config.probes.len()
            );
            systemd::reloaded(Ok(&status));
            core.note("config_reloaded", status);
            s
        }
        Err(errors) => {
            tracing::error!("the new configuration is invalid; keeping the old one:\n{errors}");
            core.set_internal(internal::config_condition(Some(&errors)));
            systemd::reloaded(Err(&errors));
            scheduler
        }
    }
}

/// Logs the values the daemon will not use as written (what `config check` warns about).
fn log_config_warnings(config: &config::Config) {
    for w in &config.warnings {
        tracing::warn!("{}", config::error::AsWarning(w));
    }
}
