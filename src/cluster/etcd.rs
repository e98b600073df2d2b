//! The edge to etcd: one client, every call under a deadline, errors without secrets.

use crate::config::cluster::ClusterConfig;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp,
};
use std::time::Duration;

/// One key and what etcd knows about it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The key without the cluster prefix.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
    /// The revision that created it (a new incarnation of the key has a new one).
    pub create_revision: i64,
    /// The lease it lives under (0: none).
    pub lease: i64,
}

/// A connection to etcd under the cluster prefix.
pub struct Etcd {
    client: Client,
    prefix: String,
    deadline: Duration,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

/// What went wrong talking to etcd (never carries a password).
pub type EtcdResult<T> = Result<T, String>;

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    deadline: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> EtcdResult<T> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("etcd {what}: {}", short(&e.to_string(), deadline))),
        Err(_) => Err(format!(
            "etcd {what}: no answer within {}ms",
            deadline.as_millis()
        )),
    }
}

/// One readable line for an etcd/gRPC error (tonic's chain is long and repeats itself).
fn short(e: &str, deadline: Duration) -> String {
    if e.contains("Timeout expired") || e.contains("timed out") {
        return format!("no answer within {}ms", deadline.as_millis());
    }
    if e.contains("Connection refused") || e.contains("tcp connect error") {
        return "connection refused".into();
    }
    if e.contains("transport error") {
        return "cannot connect".into();
    }
    e.chars().take(200).collect()
}

impl Etcd {
    /// Connects to the configured endpoints; every later call gets `deadline`.
    pub async fn connect(cfg: &ClusterConfig, deadline: Duration) -> EtcdResult<Etcd> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(deadline)
            .with_timeout(deadline)
            .with_keep_alive(Duration::from_secs(2), deadline);
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            options = options.with_user(user.clone(), password.expose().to_string());
        }
        if cfg.endpoints.iter().any(|e| e.starts_with("https://")) {
            options = options.with_tls(tls_options(cfg)?);
        }
        let client = bounded(
            "connect",
            deadline * 2,
            Client::connect(cfg.endpoints.clone(), Some(options)),
        )
        .await?;
        Ok(Etcd {
            client,
            prefix: cfg.key_prefix(),
            deadline,
            keeper: None,
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Grants a lease of `ttl`; answers its id and the TTL etcd actually granted.
    pub async fn grant(&mut self, ttl: Duration) -> EtcdResult<(i64, Duration)> {
        let r = bounded(
            "lease grant",
            self.deadline,
            self.client.lease_grant(ttl.as_secs() as i64, None),
        )
        .await?;
        self.keeper = None;
        Ok((r.id(), Duration::from_secs(r.ttl().max(0) as u64)))
    }

    /// Renews a lease; answers the TTL granted, `Ok(None)` when etcd no longer knows it.
    pub async fn keep_alive(&mut self, id: i64) -> EtcdResult<Option<Duration>> {
        if self.keeper.is_none() {
            let pair = bounded(
                "lease keep-alive",
                self.deadline,
                self.client.lease_keep_alive(id),
            )
            .await?;
            self.keeper = Some(pair);
        }
        let deadline = self.deadline;
        let (keeper, stream) = self.keeper.as_mut().expect("keeper");
        let sent = bounded("lease keep-alive", deadline, keeper.keep_alive()).await;
        let answer = match sent {
            Ok(()) => bounded("lease keep-alive", deadline, stream.message()).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(Some(r)) if r.ttl() > 0 => Ok(Some(Duration::from_secs(r.ttl() as u64))),
            Ok(_) => {
                self.keeper = None;
                Ok(None)
            }
            Err(e) => {
                self.keeper = None;
                Err(e)
            }
        }
    }

    /// Puts a key (under a lease when `lease` is not 0).
    pub async fn put(&mut self, key: &str, value: &[u8], lease: i64) -> EtcdResult<()> {
        let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let k = self.full(key);
        bounded(
            "put",
            self.deadline,
            self.client.put(k, value.to_vec(), opts),
        )
        .await
        .map(|_| ())
    }

    /// Deletes a key.
    pub async fn delete(&mut self, key: &str) -> EtcdResult<()> {
        let k = self.full(key);
        bounded("delete", self.deadline, self.client.delete(k, None))
            .await
            .map(|_| ())
    }

    /// Deletes every key under `prefix` (relative to the cluster prefix).
    pub async fn delete_prefix(&mut self, prefix: &str) -> EtcdResult<()> {
        let k = self.full(prefix);
        let opts = etcd_client::DeleteOptions::new().with_prefix();
        bounded("delete", self.deadline, self.client.delete(k, Some(opts)))
            .await
            .map(|_| ())
    }

    /// Every key under `prefix` (relative to the cluster prefix).
    pub async fn list(&mut self, prefix: &str) -> EtcdResult<Vec<Entry>> {
        let k = self.full(prefix);
        let r = bounded(
            "get",
            self.deadline,
            self.client.get(k, Some(GetOptions::new().with_prefix())),
        )
        .await?;
        Ok(r.kvs()
            .iter()
            .map(|kv| Entry {
                key: String::from_utf8_lossy(kv.key())
                    .trim_start_matches(&self.prefix)
                    .to_string(),
                value: kv.value().to_vec(),
                create_revision: kv.create_revision(),
                lease: kv.lease(),
            })
            .collect())
    }

    /// Creates the key only if nobody holds it; answers whether this call created it.
    pub async fn create(&mut self, key: &str, value: &[u8], lease: i64) -> EtcdResult<bool> {
        let k = self.full(key);
        let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value.to_vec(), opts)]);
        let r = bounded("txn", self.deadline, self.client.txn(txn)).await?;
        Ok(r.succeeded())
    }

    /// Puts (or, with `None`, deletes) `key` only while `guard` is the incarnation
    /// `guard_revision` of that key (the leader key this node created); answers whether it did.
    pub async fn put_guarded(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        guard: &str,
        guard_revision: i64,
    ) -> EtcdResult<bool> {
        let k = self.full(key);
        let op = match value {
            Some(v) => TxnOp::put(k, v.to_vec(), None),
            None => TxnOp::delete(k, None),
        };
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.full(guard),
                CompareOp::Equal,
                guard_revision,
            )])
            .and_then([op]);
        let r = bounded("txn", self.deadline, self.client.txn(txn)).await?;
        Ok(r.succeeded())
    }

    /// Revokes a lease: its keys go at once.
    pub async fn revoke(&mut self, id: i64) -> EtcdResult<()> {
        bounded("lease revoke", self.deadline, self.client.lease_revoke(id))
            .await
            .map(|_| ())
    }

    /// Seconds the lease has left on the etcd side (`None` when it is gone).
    pub async fn lease_left(&mut self, id: i64) -> EtcdResult<Option<i64>> {
        let r = bounded(
            "lease ttl",
            self.deadline,
            self.client.lease_time_to_live(id, None),
        )
        .await?;
        Ok((r.ttl() > 0).then_some(r.ttl()))
    }
}

fn tls_options(cfg: &ClusterConfig) -> EtcdResult<etcd_client::TlsOptions> {
    let mut tls = etcd_client::TlsOptions::new();
    if let Some(ca) = &cfg.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("[cluster] ca_file {}: {e}", ca.display()))?;
        tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
    }
    if let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) {
        let c = std::fs::read(cert)
            .map_err(|e| format!("[cluster] cert_file {}: {e}", cert.display()))?;
        let k =
            std::fs::read(key).map_err(|e| format!("[cluster] key_file {}: {e}", key.display()))?;
        tls = tls.identity(etcd_client::Identity::from_pem(c, k));
    }
    Ok(tls)
}
