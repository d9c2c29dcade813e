//! The connection: one background task per client that connects (to the Raft leader when the
//! database is clustered), keeps the monitor's replica current, answers `echo`, probes an idle
//! server and reconnects with backoff, resuming the monitor where it left off when it can.
use crate::codec::{CodecError, JsonCodec};
use crate::error::{Error, Result};
use crate::remote::{self, Remote, TlsFiles};
use crate::replica::Replica;
use crate::schema::Schema;
use crate::txn::{Txn, TxnReply};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;
use uuid::Uuid;

const MAIN_MONITOR: &str = "kuryr";
const SERVER_MONITOR: &str = "kuryr-server";

#[derive(Debug, Clone)]
pub struct Config {
    /// Tried in turn; with several, only the Raft leader is used.
    pub remotes: Vec<Remote>,
    pub database: String,
    /// Tables kept in the replica, all columns.
    pub tables: Vec<String>,
    pub tls: Option<TlsFiles>,
    /// Use only a clustered database's leader (writes go there anyway; reads are freshest there).
    pub leader_only: bool,
    /// Send an `echo` after this long without a message; drop the connection after twice this.
    pub inactivity_probe: Duration,
    pub connect_timeout: Duration,
    /// Longest a request waits for its reply.
    pub request_timeout: Duration,
    pub max_backoff: Duration,
}

impl Config {
    pub fn new(remotes: Vec<Remote>, database: &str, tables: &[&str]) -> Config {
        Config {
            remotes,
            database: database.to_string(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            tls: None,
            leader_only: true,
            inactivity_probe: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(4),
        }
    }

    fn remotes_text(&self) -> String {
        self.remotes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Whether the client is connected, to which remote, and how many times it has (re)connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnState {
    pub connected: bool,
    pub remote: Option<String>,
    pub last_error: String,
    /// Incremented at every successful connection (after the replica is synchronized).
    pub epoch: u64,
    /// Whether the last connection resumed its monitor without a full resync.
    pub resumed: bool,
}

struct Request {
    method: String,
    params: Value,
    reply: oneshot::Sender<Result<Value>>,
}

struct Shared {
    config: Config,
    replica: RwLock<Replica>,
    schema: RwLock<Option<Arc<Schema>>>,
    state: watch::Sender<ConnState>,
    changes: watch::Sender<u64>,
    /// The remote of the last connection, to count a clustered database's leader changes.
    last_remote: std::sync::Mutex<Option<String>>,
}

struct Inner {
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<Request>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A handle to one OVSDB database; cheap to clone, all clones share one connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Starts the connection task and waits until the first connection is up and the replica
    /// synchronized, or fails with the last error after `connect_timeout` per remote.
    pub async fn connect(config: Config) -> Result<Client> {
        let wait =
            config.connect_timeout * (config.remotes.len().max(1) as u32) + config.connect_timeout;
        let client = Client::start(config)?;
        client.wait_connected(wait).await?;
        Ok(client)
    }

    /// Starts the connection task without waiting for it.
    pub fn start(config: Config) -> Result<Client> {
        if config.remotes.is_empty() {
            return Err(Error::BadRemote {
                remote: String::new(),
                reason: "no remote given".into(),
            });
        }
        let (requests, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            replica: RwLock::new(Replica::new(config.tables.clone())),
            schema: RwLock::new(None),
            state: watch::Sender::new(ConnState::default()),
            changes: watch::Sender::new(0),
            last_remote: std::sync::Mutex::new(None),
            config,
        });
        let task = tokio::spawn(supervise(shared.clone(), rx));
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                requests,
                task,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.shared.config
    }

    pub fn state(&self) -> ConnState {
        self.inner.shared.state.borrow().clone()
    }

    pub fn watch_state(&self) -> watch::Receiver<ConnState> {
        self.inner.shared.state.subscribe()
    }

    /// A receiver that changes whenever the replica does.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.shared.changes.subscribe()
    }

    /// The schema of the database, once connected.
    pub fn schema(&self) -> Option<Arc<Schema>> {
        read_lock(&self.inner.shared.schema).clone()
    }

    /// Read access to the replica. Do not hold it across an `.await`.
    pub fn replica(&self) -> RwLockReadGuard<'_, Replica> {
        read_lock(&self.inner.shared.replica)
    }

    /// Waits until connected and synchronized.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.watch_state();
        let res = tokio::time::timeout(timeout, rx.wait_for(|s| s.connected)).await;
        match res {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.not_connected()),
        }
    }

    /// Waits until `check` finds what it looks for in the replica.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Replica) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.watch_changes();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if let Some(v) = check(&self.replica()) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return check(&self.replica());
            }
        }
    }

    fn not_connected(&self) -> Error {
        let s = self.inner.shared.state.borrow();
        Error::NotConnected {
            database: self.inner.shared.config.database.clone(),
            remotes: self.inner.shared.config.remotes_text(),
            last_error: if s.last_error.is_empty() {
                "not connected yet".into()
            } else {
                s.last_error.clone()
            },
        }
    }

    /// Sends one JSON-RPC request and returns its `result`. Fails at once when not connected.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value> {
        if !self.inner.shared.state.borrow().connected {
            return Err(self.not_connected());
        }
        let (tx, rx) = oneshot::channel();
        let req = Request {
            method: method.to_string(),
            params,
            reply: tx,
        };
        self.inner.requests.send(req).map_err(|_| Error::Shutdown)?;
        let timeout = self.inner.shared.config.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Disconnected {
                database: self.inner.shared.config.database.clone(),
                remote: (self.inner.shared.state.borrow().remote.clone())
                    .unwrap_or_else(|| self.inner.shared.config.remotes_text()),
                method: method.to_string(),
            }),
            Err(_) => Err(Error::Timeout {
                what: format!("{method} on {}", self.inner.shared.config.database),
                seconds: timeout.as_secs_f64(),
            }),
        }
    }

    /// Runs one transaction. When it succeeds, the replica already shows its effect.
    pub async fn transact(&self, txn: &Txn) -> Result<TxnReply> {
        let started = Instant::now();
        let reply = match self.request("transact", txn.params()).await {
            Ok(result) => txn.parse_reply(&result),
            Err(e) => Err(e),
        };
        kuryr_metrics::ovsdb_transaction(
            &self.inner.shared.config.database,
            reply.is_ok(),
            started.elapsed(),
        );
        reply
    }

    /// Builds a transaction from the current replica and runs it, building it again after a lost
    /// connection (once reconnected and resynchronized) or a failed `wait` guard. `build`
    /// returns `None` when there is nothing (left) to do, which is how a transaction that did
    /// commit before the connection dropped is not applied twice.
    pub async fn transact_with<F>(
        &self,
        deadline: Duration,
        mut build: F,
    ) -> Result<Option<TxnReply>>
    where
        F: FnMut(&Replica) -> Result<Option<Txn>>,
    {
        let until = Instant::now() + deadline;
        let mut changes = self.watch_changes();
        loop {
            changes.borrow_and_update();
            let txn = match build(&self.replica())? {
                Some(t) => t,
                None => return Ok(None),
            };
            let err = match self.transact(&txn).await {
                Ok(reply) => return Ok(Some(reply)),
                Err(e) => e,
            };
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(err);
            }
            if err.is_connection() {
                tracing::debug!(error = %err, "transaction interrupted; waiting for the connection");
                // A reconnect bumps the epoch only after the replica is resynchronized.
                let epoch = self.state().epoch;
                let mut rx = self.watch_state();
                let ok =
                    tokio::time::timeout(left, rx.wait_for(|s| s.connected && s.epoch > epoch))
                        .await;
                if !matches!(ok, Ok(Ok(_))) {
                    if self.state().connected {
                        continue;
                    }
                    return Err(err);
                }
            } else if err.is_conflict() {
                // Another writer got there first: wait briefly for its change to reach us.
                let wait = left.min(Duration::from_millis(500));
                let _ = tokio::time::timeout(wait, changes.changed()).await;
            } else {
                return Err(err);
            }
        }
    }

    /// `echo`, to measure a round trip or check liveness.
    pub async fn echo(&self) -> Result<()> {
        self.request("echo", json!(["ping"])).await.map(|_| ())
    }
}

fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Why a session ended.
enum End {
    /// Try the next remote at once (this one is not the leader).
    NotLeader(String),
    Failed(Error),
}

async fn supervise(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Request>) {
    let remotes = shared.config.remotes.clone();
    let mut next = 0usize;
    let mut failures_in_round = 0usize;
    let mut backoff = Duration::from_millis(100);
    let mut last_txn_id: Option<String> = None;
    loop {
        let remote = &remotes[next % remotes.len()];
        next += 1;
        let end = match remote::open(
            remote,
            shared.config.tls.as_ref(),
            shared.config.connect_timeout,
        )
        .await
        {
            Ok(io) => {
                let session = Session::new(shared.clone(), remote.to_string(), io);
                session.run(&mut rx, &mut last_txn_id).await
            }
            Err(e) => End::Failed(e),
        };
        if matches!(end, End::Failed(Error::Shutdown)) {
            // Every handle is gone: the client was closed on purpose, nothing was lost.
            shared.state.send_modify(|s| s.connected = false);
            return;
        }
        let was_connected = shared.state.borrow().connected;
        let message = match &end {
            End::NotLeader(m) => m.clone(),
            End::Failed(e) => e.to_string(),
        };
        shared.state.send_modify(|s| {
            s.connected = false;
            s.remote = None;
            s.last_error = message.clone();
        });
        kuryr_metrics::ovsdb_connection(&shared.config.database, false);
        if was_connected {
            tracing::warn!(database = %shared.config.database, remote = %remote, error = %message, "OVSDB connection lost; reconnecting");
            failures_in_round = 0;
            backoff = Duration::from_millis(100);
        } else {
            tracing::debug!(database = %shared.config.database, remote = %remote, error = %message, "OVSDB connection attempt failed");
            failures_in_round += 1;
        }
        // Fail what was queued for the dead connection, so callers learn it now.
        while let Ok(req) = rx.try_recv() {
            let _ = req.reply.send(Err(Error::Disconnected {
                database: shared.config.database.clone(),
                remote: remote.to_string(),
                method: req.method,
            }));
        }
        // Try every remote once before sleeping; a lost connection starts a new round at once.
        if was_connected || failures_in_round < remotes.len() {
            continue;
        }
        failures_in_round = 0;
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                req = rx.recv() => match req {
                    Some(req) => {
                        let _ = req.reply.send(Err(Error::NotConnected {
                            database: shared.config.database.clone(),
                            remotes: shared.config.remotes_text(),
                            last_error: message.clone(),
                        }));
                    }
                    None => return,
                }
            }
        }
        backoff = (backoff * 2).min(shared.config.max_backoff);
    }
}

type Pending = HashMap<u64, (String, oneshot::Sender<Result<Value>>)>;

struct Session {
    shared: Arc<Shared>,
    remote: String,
    framed: Framed<Box<dyn remote::Io>, JsonCodec>,
    next_id: u64,
    pending: Pending,
    server_replica: Replica,
}

fn codec_err(remote: &str, e: CodecError) -> Error {
    match e {
        CodecError::Io(source) => Error::Io {
            remote: remote.to_string(),
            source,
        },
        CodecError::Malformed(m) => Error::Protocol(m),
    }
}

impl Session {
    fn new(shared: Arc<Shared>, remote: String, io: Box<dyn remote::Io>) -> Session {
        Session {
            shared,
            remote,
            framed: Framed::new(io, JsonCodec::default()),
            next_id: 1,
            pending: HashMap::new(),
            server_replica: Replica::new(["Database".to_string()]),
        }
    }

    fn database(&self) -> &str {
        &self.shared.config.database
    }

    async fn send(&mut self, msg: Value) -> Result<()> {
        self.framed.send(msg).await.map_err(|e| match e {
            CodecError::Io(e) => Error::Connect {
                remote: self.remote.clone(),
                source: e,
            },
            CodecError::Malformed(m) => Error::Protocol(m),
        })
    }

    /// Sends a request during the handshake and waits for its reply, answering echoes meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"method": method, "params": params, "id": id}))
            .await?;
        let timeout = self.shared.config.connect_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => {
                    return Err(Error::Timeout {
                        what: format!("{method} on {}", self.remote),
                        seconds: timeout.as_secs_f64(),
                    })
                }
                Ok(None) => {
                    return Err(Error::Protocol(format!(
                        "{} closed the connection",
                        self.remote
                    )))
                }
                Ok(Some(m)) => m.map_err(|e| codec_err(&self.remote, e))?,
            };
            if msg.get("id").and_then(Value::as_u64) == Some(id) && msg.get("method").is_none() {
                return match msg.get("error") {
                    Some(e) if !e.is_null() => Err(Error::Rpc {
                        method: method.to_string(),
                        error: e.clone(),
                    }),
                    _ => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
            }
            self.handle_incoming(msg).await?;
        }
    }

    async fn handshake(&mut self, last_txn_id: &mut Option<String>) -> Result<bool, End> {
        let db = self.database().to_string();
        // 1. The schema, for applying update2 diffs.
        let schema_json = self
            .call("get_schema", json!([db]))
            .await
            .map_err(End::Failed)?;
        let schema = Schema::parse(&schema_json).map_err(|message| {
            End::Failed(Error::Schema {
                database: db.clone(),
                message,
            })
        })?;
        *write_lock(&self.shared.schema) = Some(Arc::new(schema));

        // 2. A clustered database: only its leader will do.
        if self.shared.config.leader_only {
            let req = json!(["_Server", SERVER_MONITOR, {"Database": [{"columns": ["name", "model", "connected", "leader", "index"]}]}]);
            match self.call("monitor_cond", req).await {
                Ok(initial) => {
                    self.server_replica
                        .apply_update2(&initial, &Schema::default())
                        .map_err(|m| End::Failed(Error::Protocol(m)))?;
                    if let Some(why) = self.not_leader() {
                        return Err(End::NotLeader(why));
                    }
                }
                // An ovsdb-server without _Server (older than 2.9) is never clustered.
                Err(Error::Rpc { .. }) => {}
                Err(e) => return Err(End::Failed(e)),
            }
        }

        // 3. The monitor: resume from the last transaction seen if the server can.
        let requests: serde_json::Map<String, Value> = self
            .shared
            .config
            .tables
            .iter()
            .map(|t| (t.clone(), json!([{}])))
            .collect();
        let zero = Uuid::nil().to_string();
        let since = last_txn_id.clone().unwrap_or(zero);
        let res = self
            .call(
                "monitor_cond_since",
                json!([db, MAIN_MONITOR, requests, since]),
            )
            .await;
        let schema = read_lock(&self.shared.schema).clone().unwrap_or_default();
        let resumed = match res {
            Ok(reply) => {
                let found = reply.get(0).and_then(Value::as_bool).unwrap_or(false);
                let updates = reply.get(2).cloned().unwrap_or(Value::Null);
                *last_txn_id = reply.get(1).and_then(Value::as_str).map(str::to_string);
                let mut replica = write_lock(&self.shared.replica);
                if !found {
                    replica.clear();
                }
                replica
                    .apply_update2(&updates, &schema)
                    .map_err(|m| End::Failed(Error::Protocol(m)))?;
                found
            }
            Err(Error::Rpc { .. }) => {
                *last_txn_id = None;
                match self
                    .call("monitor_cond", json!([db, MAIN_MONITOR, requests]))
                    .await
                {
                    Ok(updates) => {
                        let mut replica = write_lock(&self.shared.replica);
                        replica.clear();
                        replica
                            .apply_update2(&updates, &schema)
                            .map_err(|m| End::Failed(Error::Protocol(m)))?;
                    }
                    Err(Error::Rpc { .. }) => {
                        let v1: serde_json::Map<String, Value> = self
                            .shared
                            .config
                            .tables
                            .iter()
                            .map(|t| (t.clone(), json!({})))
                            .collect();
                        let updates = self
                            .call("monitor", json!([db, MAIN_MONITOR, v1]))
                            .await
                            .map_err(End::Failed)?;
                        let mut replica = write_lock(&self.shared.replica);
                        replica.clear();
                        replica
                            .apply_update1(&updates)
                            .map_err(|m| End::Failed(Error::Protocol(m)))?;
                    }
                    Err(e) => return Err(End::Failed(e)),
                }
                false
            }
            Err(e) => return Err(End::Failed(e)),
        };
        self.shared.changes.send_modify(|n| *n += 1);
        Ok(resumed)
    }

    /// Why this server will not do, if it is a clustered member that is not the connected leader.
    fn not_leader(&self) -> Option<String> {
        let t = self.server_replica.table("Database");
        let row = t.by_name(self.database()).into_iter().next()?;
        if row.str("model") != Some("clustered") {
            return None;
        }
        if row.bool("connected") != Some(true) {
            return Some(format!("{} is not connected to its cluster", self.remote));
        }
        if row.bool("leader") != Some(true) {
            return Some(format!("{} is not the cluster leader", self.remote));
        }
        None
    }

    async fn run(
        mut self,
        rx: &mut mpsc::UnboundedReceiver<Request>,
        last_txn_id: &mut Option<String>,
    ) -> End {
        let resumed = match self.handshake(last_txn_id).await {
            Ok(r) => r,
            Err(end) => return end,
        };
        tracing::info!(database = %self.database(), remote = %self.remote, resumed, "OVSDB connected");
        let remote = self.remote.clone();
        let mut first = false;
        self.shared.state.send_modify(|s| {
            s.connected = true;
            s.remote = Some(remote.clone());
            first = s.epoch == 0;
            s.epoch += 1;
            s.resumed = resumed;
        });
        let database = self.database().to_string();
        kuryr_metrics::ovsdb_connection(&database, true);
        if !first {
            kuryr_metrics::ovsdb_reconnect(&database);
        }
        let previous = self
            .shared
            .last_remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(remote.clone());
        if self.shared.config.remotes.len() > 1 && previous.is_some_and(|p| p != remote) {
            kuryr_metrics::ovsdb_leader_change(&database);
        }
        let probe = self.shared.config.inactivity_probe;
        let mut last_rx = Instant::now();
        let mut echo_sent = false;
        let mut ticker = tokio::time::interval(probe / 2);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            tokio::select! {
                msg = self.framed.next() => {
                    let msg = match msg {
                        None => break Error::Closed { remote: self.remote.clone() },
                        Some(Err(e)) => break codec_err(&self.remote, e),
                        Some(Ok(m)) => m,
                    };
                    last_rx = Instant::now();
                    echo_sent = false;
                    if let Some(txn_id) = update3_txn_id(&msg) {
                        *last_txn_id = Some(txn_id);
                    }
                    match self.handle_incoming(msg).await {
                        Ok(()) => {}
                        Err(e) => break e,
                    }
                    if let Some(why) = self.not_leader() {
                        if self.shared.config.leader_only {
                            self.fail_pending();
                            return End::NotLeader(why);
                        }
                    }
                }
                req = rx.recv() => {
                    let Some(req) = req else { break Error::Shutdown };
                    let id = self.next_id;
                    self.next_id += 1;
                    let msg = json!({"method": req.method, "params": req.params, "id": id});
                    self.pending.insert(id, (req.method, req.reply));
                    if let Err(e) = self.send(msg).await {
                        break e;
                    }
                }
                _ = ticker.tick() => {
                    let idle = last_rx.elapsed();
                    if echo_sent && idle >= probe * 2 {
                        break Error::Timeout { what: format!("inactivity probe to {}", self.remote), seconds: idle.as_secs_f64() };
                    }
                    if !echo_sent && idle >= probe {
                        echo_sent = true;
                        if let Err(e) = self.send(json!({"method": "echo", "params": [], "id": "echo"})).await {
                            break e;
                        }
                    }
                }
            }
        };
        self.fail_pending();
        End::Failed(end)
    }

    fn fail_pending(&mut self) {
        let database = self.database().to_string();
        for (_, (method, tx)) in self.pending.drain() {
            let _ = tx.send(Err(Error::Disconnected {
                database: database.clone(),
                remote: self.remote.to_string(),
                method,
            }));
        }
    }

    async fn handle_incoming(&mut self, msg: Value) -> Result<()> {
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(method) = method else {
            // A reply.
            let Some(id) = msg.get("id").and_then(Value::as_u64) else {
                return Ok(()); // our own echo probe's reply, or an unknown id
            };
            if let Some((method, tx)) = self.pending.remove(&id) {
                let res = match msg.get("error") {
                    Some(e) if !e.is_null() => Err(Error::Rpc {
                        method,
                        error: e.clone(),
                    }),
                    _ => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = tx.send(res);
            }
            return Ok(());
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        match method.as_str() {
            "echo" => {
                let id = msg.get("id").cloned().unwrap_or(Value::Null);
                self.send(json!({"result": params, "error": null, "id": id}))
                    .await
            }
            "update" | "update2" | "update3" => self.apply_notification(&method, &params),
            "monitor_canceled" => Err(Error::Protocol(format!(
                "{} canceled the monitor (schema change?)",
                self.remote
            ))),
            other => {
                tracing::debug!(method = other, "ignoring OVSDB notification");
                Ok(())
            }
        }
    }

    fn apply_notification(&mut self, method: &str, params: &Value) -> Result<()> {
        let bad = |what: &str| Error::Protocol(format!("{method} notification: {what}: {params}"));
        let id = params
            .get(0)
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no monitor id"))?;
        let updates = match method {
            "update3" => params.get(2),
            _ => params.get(1),
        }
        .ok_or_else(|| bad("no updates"))?;
        if id == SERVER_MONITOR {
            return self
                .server_replica
                .apply_update2(updates, &Schema::default())
                .map(|_| ())
                .map_err(Error::Protocol);
        }
        if id != MAIN_MONITOR {
            return Ok(());
        }
        let schema = read_lock(&self.shared.schema).clone().unwrap_or_default();
        {
            let mut replica = write_lock(&self.shared.replica);
            match method {
                "update" => replica.apply_update1(updates),
                _ => replica.apply_update2(updates, &schema),
            }
            .map_err(Error::Protocol)?;
        }
        self.shared.changes.send_modify(|n| *n += 1);
        Ok(())
    }
}

fn update3_txn_id(msg: &Value) -> Option<String> {
    if msg.get("method").and_then(Value::as_str) != Some("update3") {
        return None;
    }
    msg.get("params")?.get(1)?.as_str().map(str::to_string)
}
