//! The HTTP clients `http` probes share: one per combination of client-level settings, so
//! probes of the same host share one keep-alive pool instead of holding a connection each
//! (1,000 probes of one server held 1,000 idle connections, ≈26 KiB of buffers each).
//!
//! A connection is still reused between runs; what changes is that it may be another probe's
//! idle connection to the same host. Each probe still knows whether *its* request was
//! connecting when its deadline hit: the connector counts attempts into a task-local counter
//! that the probe sets around its request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// The client-level settings that differ between probes (everything else is per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Accept any certificate (`tls_insecure = true`).
    pub tls_insecure: bool,
    /// Follow up to 10 redirects.
    pub follow_redirects: bool,
}

/// Idle connections kept per host: enough for probes of one host that run at the same time.
const IDLE_PER_HOST: usize = 8;

/// The shared client for these settings, built on first use.
pub fn shared(key: ClientKey) -> Result<reqwest::Client, String> {
    static CLIENTS: OnceLock<Mutex<HashMap<ClientKey, reqwest::Client>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .expect("http clients lock");
    if let Some(client) = clients.get(&key) {
        return Ok(client.clone());
    }
    let client = build(key)?;
    clients.insert(key, client.clone());
    Ok(client)
}

fn build(key: ClientKey) -> Result<reqwest::Client, String> {
    crate::http::install_crypto_provider();
    let redirects = if key.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut builder = reqwest::Client::builder();
    if key.tls_insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else {
        // One TLS configuration (and root store) for every probe of the process.
        builder = builder.use_preconfigured_tls(crate::http::shared_tls_config()?);
    }
    builder
        .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
        .redirect(redirects)
        .tls_info(true)
        // Each request carries its probe's timeout; the probe's own deadline ends a run first.
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .pool_idle_timeout(Duration::from_secs(90))
        .connector_layer(ConnectWatch)
        .build()
        .map_err(|e| {
            format!(
                "cannot set up the HTTP client: {}",
                crate::http::describe(&e)
            )
        })
}

tokio::task_local! {
    /// The connection attempts in progress for the request being made in this task.
    static ATTEMPTS: Arc<AtomicUsize>;
}

/// Runs `request` with `attempts` counting its connection attempts (DNS, TCP and TLS).
pub async fn counting_attempts<F: Future>(attempts: Arc<AtomicUsize>, request: F) -> F::Output {
    ATTEMPTS.scope(attempts, request).await
}

/// A connector layer that counts connection attempts into the task-local counter of the
/// request that started them (the connector is called while that request is polled).
#[derive(Clone)]
struct ConnectWatch;

impl<S> tower_layer::Layer<S> for ConnectWatch {
    type Service = Watched<S>;

    fn layer(&self, inner: S) -> Watched<S> {
        Watched { inner }
    }
}

#[derive(Clone)]
struct Watched<S> {
    inner: S,
}

/// Decrements the count when the attempt ends, however it ends (dropped included).
struct InProgress(Arc<AtomicUsize>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<S, R> tower_service::Service<R> for Watched<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let guard = ATTEMPTS
            .try_with(|count| {
                count.fetch_add(1, Ordering::SeqCst);
                InProgress(count.clone())
            })
            .ok();
        let attempt = self.inner.call(req);
        Box::pin(async move {
            let result = attempt.await;
            drop(guard);
            result
        })
    }
}
