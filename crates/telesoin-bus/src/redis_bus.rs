//! The Redis bus: several nodes, one Redis. LiveKit's model: the local router does the work, this
//! one wraps it.
//!
//! Keys (all under `ts:`):
//! - `ts:loc:{participant}` = `"{node}:{connection}"`: where the participant's socket is.
//! - `ts:node:{node}`: the Pub/Sub channel of a node; envelopes `{to, conn, text | close}`.
//! - `ts:alive:{node}`: present while the node lives (short TTL, refreshed by a task, which also
//!   publishes a `tick` on the node's own channel: a node that hears nothing for [`SILENT`]
//!   counts its subscription as lost).
//! - `ts:changed`: the Pub/Sub channel every node hears; each write of [`SharedState::update`]
//!   publishes its key there in the same `MULTI`/`EXEC` as the write. A node's subscriber hears
//!   this channel and its own on one connection, so a change is heard before any frame sent
//!   after it (see [`SharedState::watch`]).
//! - `ts:lock:{key}`: the per-key lock of [`SharedState::update`] (`SET NX PX`, released with a
//!   compare-and-delete so that an expired lock taken over by another node is never released).
//!
//! Every call is bounded by a short timeout and any Redis error is [`BusError::Unavailable`]:
//! the hub fails closed (nobody new admitted) while live media, which is peer to peer, goes on.
//! The connection and the subscriber reconnect by themselves when Redis comes back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use telesoin_core::ParticipantId;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{
    Attachment, Bus, BusError, Change, Delivered, LocalBus, Outbound, SharedState, Watcher,
};

/// How long one Redis call may take before Redis counts as unavailable.
const CALL: Duration = Duration::from_secs(2);
/// TTL of a node's liveness key, and how often it is refreshed.
const ALIVE_TTL_SECONDS: u64 = 6;
const ALIVE_EVERY: Duration = Duration::from_secs(2);
/// How long a participant's location is kept without being refreshed by a new attach.
const LOC_TTL_SECONDS: u64 = 24 * 3600;
/// A lock is released by its holder; this bounds how long a crashed holder blocks others.
const LOCK_MS: u64 = 5000;
/// How long `update` waits for a lock before giving up (fail closed).
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// A node that has heard nothing (not even its own tick) for this long no longer counts as
/// hearing the changes of the shared state.
const SILENT: Duration = Duration::from_secs(5);
/// The channel where every write of the shared state is announced.
const CHANGED: &str = "ts:changed";

const COMPARE_AND_DELETE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

fn down(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    to: ParticipantId,
    /// Deliver only to this connection (still attached), when given.
    conn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    close: Option<(u16, String)>,
}

impl Envelope {
    fn new(to: ParticipantId, conn: Option<u64>, frame: &Outbound) -> Self {
        let (text, close) = match frame {
            Outbound::Text(t) => (Some(t.to_string()), None),
            Outbound::Close { code, reason } => (None, Some((*code, (*reason).to_owned()))),
        };
        Envelope {
            to,
            conn,
            text,
            close,
        }
    }

    fn frame(self) -> Option<Outbound> {
        if let Some(t) = self.text {
            return Some(Outbound::Text(t.into()));
        }
        let (code, reason) = self.close?;
        // Close reasons are static strings on this side too: the known ones, else a generic one.
        const KNOWN: [&str; 8] = [
            "refused",
            "replaced",
            "session closed",
            "hangup",
            "restarting",
            "ended",
            "idle",
            "closed",
        ];
        let reason = KNOWN
            .iter()
            .find(|k| **k == reason)
            .copied()
            .unwrap_or("closed");
        Some(Outbound::Close { code, reason })
    }
}

/// What the subscriber knows of the changes it hears, and who listens.
struct Watch {
    watchers: parking_lot::RwLock<Vec<Watcher>>,
    subscribed: AtomicBool,
    /// Milliseconds since `start` when anything was last heard.
    heard_ms: AtomicU64,
    start: std::time::Instant,
    /// Subscriptions made so far (tests wait on a new one).
    subscriptions: AtomicU64,
}

impl Watch {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn tell(&self, change: Change<'_>) {
        for w in self.watchers.read().iter() {
            w(change);
        }
    }

    /// Anything was heard: after a silence, what was kept may be stale.
    fn heard(&self) {
        let now = self.now_ms();
        let before = self.heard_ms.swap(now, Ordering::AcqRel);
        if now.saturating_sub(before) > SILENT.as_millis() as u64 {
            self.tell(Change::All);
        }
    }

    fn subscribed(&self, yes: bool) {
        // Dropped first, then (un)marked: nothing kept from before the gap survives it.
        self.tell(Change::All);
        self.heard_ms.store(self.now_ms(), Ordering::Release);
        self.subscribed.store(yes, Ordering::Release);
        if yes {
            self.subscriptions.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn hearing(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
            && self
                .now_ms()
                .saturating_sub(self.heard_ms.load(Ordering::Acquire))
                <= SILENT.as_millis() as u64
    }
}

/// The distributed bus; also the cluster's [`SharedState`].
pub struct RedisBus {
    local: Arc<LocalBus>,
    node: u64,
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    watch: Arc<Watch>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("RedisBus")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RedisBus {
    /// A bus for node `node` on the Redis at `url` (`redis://[:password@]host:port[/db]`). Redis
    /// need not be up yet: the connection, the node's subscriber and its liveness key follow it.
    pub fn start(url: &str, node: u64) -> Result<Arc<RedisBus>, BusError> {
        let client = redis::Client::open(url).map_err(|_| {
            BusError::Unavailable("redis_url is not a valid redis:// URL".to_owned())
        })?;
        let local = Arc::new(LocalBus::with_node(node));
        let watch = Arc::new(Watch {
            watchers: parking_lot::RwLock::new(Vec::new()),
            subscribed: AtomicBool::new(false),
            heard_ms: AtomicU64::new(0),
            start: std::time::Instant::now(),
            subscriptions: AtomicU64::new(0),
        });
        let subscriber = tokio::spawn(subscribe(
            client.clone(),
            node,
            Arc::clone(&local),
            Arc::clone(&watch),
        ));
        let mut bus = RedisBus {
            local,
            node,
            client,
            conn: tokio::sync::Mutex::new(None),
            watch,
            tasks: vec![subscriber],
        };
        let alive = {
            // The liveness task holds its own connection handle, never the bus itself.
            let client = bus.client.clone();
            tokio::spawn(async move {
                let key = format!("ts:alive:{node}");
                let channel = format!("ts:node:{node}");
                let mut conn: Option<ConnectionManager> = None;
                loop {
                    if conn.is_none() {
                        conn = connect(&client).await.ok();
                    }
                    if let Some(c) = conn.as_mut() {
                        // The tick on the node's own channel proves its subscription still hears.
                        let mut pipe = redis::pipe();
                        pipe.set_ex(&key, "1", ALIVE_TTL_SECONDS)
                            .ignore()
                            .publish(&channel, "tick")
                            .ignore();
                        let set = pipe.query_async::<()>(c);
                        if !matches!(tokio::time::timeout(CALL, set).await, Ok(Ok(()))) {
                            tracing::warn!(node, "liveness key not refreshed: redis unavailable");
                        }
                    }
                    tokio::time::sleep(ALIVE_EVERY).await;
                }
            })
        };
        bus.tasks.push(alive);
        Ok(Arc::new(bus))
    }

    /// Subscriptions this node's subscriber has made so far (a new one after each loss).
    pub fn subscriptions(&self) -> u64 {
        self.watch.subscriptions.load(Ordering::Acquire)
    }

    async fn conn(&self) -> Result<ConnectionManager, BusError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = connect(&self.client).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn call<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, BusError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match tokio::time::timeout(CALL, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(down(e)),
            Err(_) => Err(BusError::Unavailable("redis call timed out".into())),
        }
    }

    async fn publish(&self, node: u64, env: &Envelope) -> Result<Delivered, BusError> {
        let payload = serde_json::to_string(env).map_err(down)?;
        let channel = format!("ts:node:{node}");
        let receivers: i64 = self
            .call(|mut c| async move { c.publish(channel, payload).await })
            .await?;
        Ok(if receivers > 0 {
            Delivered::Yes
        } else {
            Delivered::NoSocket
        })
    }
}

async fn connect(client: &redis::Client) -> Result<ConnectionManager, BusError> {
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(CALL)
        .set_number_of_retries(1)
        .set_max_delay(500);
    match tokio::time::timeout(
        CALL * 2,
        ConnectionManager::new_with_config(client.clone(), cfg),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(down(e)),
        Err(_) => Err(BusError::Unavailable("redis connection timed out".into())),
    }
}

/// The node's subscriber: envelopes published to `ts:node:{node}` go to local sockets, changes
/// announced on `ts:changed` to the watchers, in the order they were published. Runs forever,
/// reconnecting with a capped backoff; every loss and every new subscription is a
/// [`Change::All`].
async fn subscribe(client: redis::Client, node: u64, local: Arc<LocalBus>, watch: Arc<Watch>) {
    use futures_util::StreamExt;
    let channel = format!("ts:node:{node}");
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = tokio::time::timeout(CALL, client.get_async_pubsub()).await;
        match pubsub {
            Ok(Ok(mut pubsub)) => match subscribe_both(&mut pubsub, &channel).await {
                Ok(()) => {
                    tracing::info!(node, "subscribed to this node's channel");
                    backoff = Duration::from_millis(100);
                    watch.subscribed(true);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        watch.heard();
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        if msg.get_channel_name() == CHANGED {
                            watch.tell(Change::Key(&payload));
                            continue;
                        }
                        let Ok(env) = serde_json::from_str::<Envelope>(&payload) else {
                            continue;
                        };
                        let (to, conn) = (env.to, env.conn);
                        if let Some(frame) = env.frame() {
                            local.deliver_local(to, conn, frame);
                        }
                    }
                    watch.subscribed(false);
                    tracing::warn!(node, "lost the node's channel: resubscribing");
                }
                Err(e) => tracing::warn!(node, error = %e, "subscribe failed"),
            },
            Ok(Err(e)) => tracing::warn!(node, error = %e, "redis unavailable for pub/sub"),
            Err(_) => tracing::warn!(node, "redis pub/sub connection timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Both channels on one connection: one order for the changes and the frames.
async fn subscribe_both(pubsub: &mut redis::aio::PubSub, channel: &str) -> redis::RedisResult<()> {
    pubsub.subscribe(CHANGED).await?;
    pubsub.subscribe(channel).await
}

#[async_trait]
impl Bus for RedisBus {
    fn node(&self) -> u64 {
        self.node
    }

    async fn attach(
        &self,
        participant: ParticipantId,
        sink: crate::queue::Sender,
    ) -> Result<(Attachment, Option<crate::queue::Sender>), BusError> {
        let (a, previous) = self.local.attach_local(participant, sink);
        let key = format!("ts:loc:{participant}");
        let value = format!("{}:{}", a.node, a.connection);
        let recorded = self
            .call(|mut c| async move { c.set_ex::<_, _, ()>(key, value, LOC_TTL_SECONDS).await })
            .await;
        if let Err(e) = recorded {
            self.local.detach_local(a);
            return Err(e);
        }
        Ok((a, previous))
    }

    async fn detach(&self, a: Attachment) {
        let was_current = self.local.is_current(a);
        self.local.detach_local(a);
        if !was_current && a.node != self.node {
            return;
        }
        let key = format!("ts:loc:{}", a.participant);
        let value = format!("{}:{}", a.node, a.connection);
        let _ = self
            .call(|mut c| async move {
                redis::cmd("EVAL")
                    .arg(COMPARE_AND_DELETE)
                    .arg(1)
                    .arg(key)
                    .arg(value)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    async fn deliver(&self, to: ParticipantId, frame: Outbound) -> Result<Delivered, BusError> {
        // A socket here is reached directly, without Redis.
        let frame = match self.local.deliver_local(to, None, frame.clone()) {
            Delivered::NoSocket => frame,
            done => return Ok(done),
        };
        let key = format!("ts:loc:{to}");
        let loc: Option<String> = self.call(|mut c| async move { c.get(key).await }).await?;
        let Some((node, conn)) = loc.as_deref().and_then(parse_loc) else {
            return Ok(Delivered::NoSocket);
        };
        if node == self.node {
            return Ok(Delivered::NoSocket); // Recorded here, but no longer attached.
        }
        self.publish(node, &Envelope::new(to, Some(conn), &frame))
            .await
    }

    async fn deliver_to(&self, to: Attachment, frame: Outbound) -> Result<Delivered, BusError> {
        if to.node == self.node {
            return Ok(self
                .local
                .deliver_local(to.participant, Some(to.connection), frame));
        }
        self.publish(
            to.node,
            &Envelope::new(to.participant, Some(to.connection), &frame),
        )
        .await
    }

    async fn refresh(&self, a: Attachment) -> Result<(), BusError> {
        if !self.local.is_current(a) {
            return Ok(());
        }
        let key = format!("ts:loc:{}", a.participant);
        let value = format!("{}:{}", a.node, a.connection);
        self.call(|mut c| async move { c.set_ex::<_, _, ()>(key, value, LOC_TTL_SECONDS).await })
            .await
    }

    async fn node_alive(&self, node: u64) -> Result<bool, BusError> {
        if node == self.node {
            return Ok(true);
        }
        // Alive: its liveness key is fresh and its channel has a subscriber. A node killed outright
        // loses its subscription at once, long before its key expires.
        let key = format!("ts:alive:{node}");
        let channel = format!("ts:node:{node}");
        let (exists, (_, subscribers)): (bool, (String, i64)) = self
            .call(|mut c| async move {
                redis::pipe()
                    .exists(key)
                    .cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(exists && subscribers > 0)
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.call(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }
}

fn parse_loc(s: &str) -> Option<(u64, u64)> {
    let (n, c) = s.split_once(':')?;
    Some((n.parse().ok()?, c.parse().ok()?))
}

#[async_trait]
impl SharedState for RedisBus {
    async fn update(
        &self,
        key: &str,
        ttl: Duration,
        f: &mut (dyn for<'a> FnMut(Option<&'a str>) -> Option<String> + Send),
    ) -> Result<(), BusError> {
        let lock = format!("ts:lock:{key}");
        let token = rand::random::<u64>().to_string();
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(2);
        loop {
            let (l, t) = (lock.clone(), token.clone());
            let taken: Option<String> = self
                .call(|mut c| async move {
                    redis::cmd("SET")
                        .arg(l)
                        .arg(t)
                        .arg("NX")
                        .arg("PX")
                        .arg(LOCK_MS)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if taken.is_some() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BusError::Unavailable("shared state lock busy".into()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(25));
        }
        let result = async {
            let k = key.to_owned();
            let current: Option<String> = self.call(|mut c| async move { c.get(k).await }).await?;
            let next = f(current.as_deref());
            if next == current {
                return Ok(());
            }
            // The write and its announcement in one transaction: no node can see one without
            // the other being on its way.
            let k = key.to_owned();
            let mut pipe = redis::pipe();
            pipe.atomic();
            match next {
                Some(v) => {
                    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                    pipe.pset_ex(&k, v, ms).ignore();
                }
                None => {
                    pipe.del(&k).ignore();
                }
            }
            pipe.publish(CHANGED, &k).ignore();
            self.call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
        }
        .await;
        let _ = self
            .call(|mut c| async move {
                redis::cmd("EVAL")
                    .arg(COMPARE_AND_DELETE)
                    .arg(1)
                    .arg(lock)
                    .arg(token)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
        result
    }

    async fn get(&self, key: &str) -> Result<Option<String>, BusError> {
        let k = key.to_owned();
        self.call(|mut c| async move { c.get(k).await }).await
    }

    fn watch(&self, watcher: Watcher) -> bool {
        self.watch.watchers.write().push(watcher);
        true
    }

    fn hearing(&self) -> bool {
        self.watch.hearing()
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, BusError> {
        let pattern = format!("{prefix}*");
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let p = pattern.clone();
            let (next, batch): (u64, Vec<String>) = self
                .call(|mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(p)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            out.extend(batch);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// The shared Redis of the test machine (keys under a random name); required under CI.
    fn url() -> Option<String> {
        let url = std::env::var("TELESOIN_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let host = url.trim_start_matches("redis://");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let host = host.split('/').next().unwrap_or(host);
        let reachable = std::net::TcpStream::connect(host).is_ok();
        if !reachable {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Redis is required under CI"
            );
            eprintln!("NOTE: Redis unreachable; test skipped outside CI");
            return None;
        }
        Some(url)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn updates_are_atomic_and_frames_cross_nodes() {
        let Some(url) = url() else { return };
        let (na, nb) = (rand::random::<u64>(), rand::random::<u64>());
        let a = RedisBus::start(&url, na).expect("bus a");
        let b = RedisBus::start(&url, nb).expect("bus b");
        a.ping().await.expect("ping");

        // 40 concurrent increments from two nodes: none lost.
        let key = format!("ts:test:{}", Uuid::new_v4().simple());
        let mut tasks = Vec::new();
        for i in 0..40 {
            let bus = if i % 2 == 0 { a.clone() } else { b.clone() };
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                bus.update(&key, Duration::from_secs(60), &mut |cur| {
                    let n: u64 = cur.and_then(|c| c.parse().ok()).unwrap_or(0);
                    Some((n + 1).to_string())
                })
                .await
                .expect("update");
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(a.get(&key).await.expect("get").as_deref(), Some("40"));
        a.update(&key, Duration::from_secs(1), &mut |_| None)
            .await
            .expect("delete");
        assert_eq!(b.get(&key).await.expect("get"), None);

        // A participant attached on B is reached from A; a stale attachment is not.
        let p = ParticipantId(Uuid::new_v4());
        let (tx, mut rx) = crate::queue::channel(8);
        // Wait until B's subscriber is in place (it starts in the background).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !a.node_alive(nb).await.expect("alive") {
            assert!(tokio::time::Instant::now() < deadline, "node b alive");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (att, _) = b.attach(p, tx).await.expect("attach");
        assert_eq!(att.node, nb);
        assert_eq!(
            a.deliver(p, Outbound::Text("hello".into()))
                .await
                .expect("deliver"),
            Delivered::Yes
        );
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time");
        assert!(matches!(got, Some(Outbound::Text(t)) if &*t == "hello"));
        let stale = Attachment {
            connection: att.connection + 1,
            ..att
        };
        a.deliver_to(stale, Outbound::Text("stale".into()))
            .await
            .expect("deliver");
        a.deliver_to(
            att,
            Outbound::Close {
                code: 4002,
                reason: "replaced",
            },
        )
        .await
        .expect("deliver");
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time");
        assert!(
            matches!(
                got,
                Some(Outbound::Close {
                    code: 4002,
                    reason: "replaced"
                })
            ),
            "the stale frame was dropped, the close reached the socket: {got:?}"
        );
        b.detach(att).await;
        assert_eq!(
            a.deliver(p, Outbound::Text("gone".into()))
                .await
                .expect("deliver"),
            Delivered::NoSocket
        );
    }
}
