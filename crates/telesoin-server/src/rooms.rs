//! Where the hub keeps its rooms: in this process (one node, the default) or in the cluster's
//! shared state (several nodes, every node sees the same seats, lobby and admissions). Chosen
//! once at start-up; the hub only calls [`Rooms::update`], [`Rooms::read`],
//! [`Rooms::read_relay`] and [`Rooms::sessions`].
//!
//! An empty room is the same as no room: it is never kept.
//!
//! # The relay's copy of the rooms (cluster only)
//!
//! Relay asks the room of every frame; in a cluster that would be a Redis read per frame. Each
//! node keeps a copy of the rooms it relays in ([`RoomCache`]), used by [`Rooms::read_relay`]
//! only, under one rule: **a copy may let a frame go; only a fresh read may refuse one**.
//! - Every write of a room (by [`Rooms::update`], on any node) is announced on the bus in the
//!   same Redis transaction as the write ([`SharedState::update`]); every node drops its copy
//!   when it hears it, and the writing node drops its own before `update` returns. A node hears
//!   the announcements and the frames addressed to it on one connection, in publish order: a
//!   node has dropped its copy before it delivers anything sent after the change (the
//!   `refused`, `peer_left` or `admitted` that follows it). A frame relayed from a copy in
//!   between was concurrent with the change: it is what a Redis read made just before the
//!   write would have let go.
//! - An answer that would refuse (not admitted, unknown peer), and a missing copy, are read
//!   again from Redis before the frame is refused: a seat just admitted on another node is never
//!   refused from a stale copy, and a copy never admits anyone (only Redis does).
//! - A copy is filled only if no change of that room was heard since the read began.
//! - Nothing is kept or used while the node does not hear every change: its subscription lost
//!   or not yet made, or silent for more than a few seconds (a tick every 2 s proves it hears);
//!   each loss, each new subscription and the end of a silence drop every copy, and so does the
//!   hub when Redis lost its rooms (`hub::restore`, [`Rooms::forget_all`]).
//!
//! A room version read per frame would have been the alternative; it is still a Redis read per
//! frame, which is what the copy removes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use telesoin_bus::{Change, SharedState};
use telesoin_core::{RefusalCode, SessionId};

/// A room as the hub defines it: serializable, with a notion of emptiness.
pub trait RoomValue: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    fn is_empty(&self) -> bool;
}

/// How long a room with nobody updating it survives in the shared state (a crashed cluster
/// leaves nothing behind for longer than this).
const ROOM_TTL: Duration = Duration::from_secs(12 * 3600);
const PREFIX: &str = "ts:room:";

/// Copies kept beyond this many: all dropped (a bound, not a policy; rooms are small).
const MAX_COPIES: usize = 100_000;

pub enum Rooms<R> {
    Local(Mutex<HashMap<SessionId, R>>),
    Shared(Shared<R>),
}

/// The cluster's rooms: the shared state, and this node's copies for relay.
pub struct Shared<R> {
    state: Arc<dyn SharedState>,
    cache: Arc<RoomCache<R>>,
}

enum Slot<R> {
    /// A read from Redis is under way; its result is kept only if this slot is still there.
    Filling(u64),
    Ready(Arc<R>),
}

/// This node's copies of rooms, for relay only; see the module's documentation for the rule.
pub struct RoomCache<R> {
    slots: Mutex<HashMap<SessionId, Slot<R>>>,
    next: AtomicU64,
}

impl<R> RoomCache<R> {
    fn new() -> Self {
        RoomCache {
            slots: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    fn get(&self, session: SessionId) -> Option<Arc<R>> {
        match self.slots.lock().get(&session) {
            Some(Slot::Ready(r)) => Some(Arc::clone(r)),
            _ => None,
        }
    }

    /// A read from Redis begins: its result may be kept unless a change is heard meanwhile.
    fn begin(&self, session: SessionId) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots.lock();
        if slots.len() >= MAX_COPIES {
            slots.clear();
        }
        slots.insert(session, Slot::Filling(token));
        token
    }

    fn fill(&self, session: SessionId, token: u64, room: Arc<R>) {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get_mut(&session) {
            if matches!(slot, Slot::Filling(t) if *t == token) {
                *slot = Slot::Ready(room);
            }
        }
    }

    fn forget(&self, session: SessionId) {
        self.slots.lock().remove(&session);
    }

    fn forget_all(&self) {
        self.slots.lock().clear();
    }

    fn heard(&self, change: Change<'_>) {
        match change {
            Change::All => self.forget_all(),
            Change::Key(key) => {
                if let Some(session) = key
                    .strip_prefix(PREFIX)
                    .and_then(|s| s.parse().ok())
                    .map(SessionId)
                {
                    self.forget(session);
                }
            }
        }
    }

    /// Copies kept (tests, metrics).
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .values()
            .filter(|s| matches!(s, Slot::Ready(_)))
            .count()
    }
}

impl<R> std::fmt::Debug for Rooms<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rooms::Local(_) => "Rooms::Local",
            Rooms::Shared(_) => "Rooms::Shared",
        })
    }
}

fn unavailable(e: telesoin_bus::BusError) -> RefusalCode {
    tracing::warn!(error = %e, "shared state unavailable: refusing");
    RefusalCode::Unavailable
}

impl<R: RoomValue> Rooms<R> {
    pub fn local() -> Self {
        Rooms::Local(Mutex::new(HashMap::new()))
    }

    pub fn shared(state: Arc<dyn SharedState>) -> Self {
        let cache = Arc::new(RoomCache::new());
        let heard = Arc::clone(&cache);
        if !state.watch(Arc::new(move |change| heard.heard(change))) {
            tracing::info!("the shared state announces no change: relay reads every room");
        }
        Rooms::Shared(Shared { state, cache })
    }

    /// The cluster's shared state, when the rooms live there.
    pub fn shared_state(&self) -> Option<&Arc<dyn SharedState>> {
        match self {
            Rooms::Local(_) => None,
            Rooms::Shared(s) => Some(&s.state),
        }
    }

    /// Drops every copy this node keeps (the shared state lost its rooms).
    pub fn forget_all(&self) {
        if let Rooms::Shared(s) = self {
            s.cache.forget_all();
        }
    }

    /// This node's copies (cluster only).
    pub fn cache(&self) -> Option<&RoomCache<R>> {
        match self {
            Rooms::Local(_) => None,
            Rooms::Shared(s) => Some(&s.cache),
        }
    }

    /// Changes a session's room atomically (an absent room is given as empty; an empty room is
    /// removed). `f` runs once; it must only change the room and compute its result: frames are
    /// sent after, from what it returns.
    pub async fn update<T: Send>(
        &self,
        session: SessionId,
        mut f: impl FnMut(&mut R) -> T + Send,
    ) -> Result<T, RefusalCode> {
        match self {
            Rooms::Local(map) => {
                let mut rooms = map.lock();
                let mut room = rooms.remove(&session).unwrap_or_default();
                let out = f(&mut room);
                if !room.is_empty() {
                    rooms.insert(session, room);
                }
                Ok(out)
            }
            Rooms::Shared(Shared { state, cache }) => {
                let mut out = None;
                let key = format!("{PREFIX}{session}");
                let written = state
                    .update(&key, ROOM_TTL, &mut |current| {
                        let mut room: R = current
                            .and_then(|t| serde_json::from_str(t).ok())
                            .unwrap_or_default();
                        out = Some(f(&mut room));
                        if room.is_empty() {
                            None
                        } else {
                            serde_json::to_string(&room).ok()
                        }
                    })
                    .await;
                // Written or not (a timeout leaves it unknown): this node's copy goes before
                // anyone is told; the others drop theirs when they hear the announcement.
                cache.forget(session);
                written.map_err(unavailable)?;
                out.ok_or(RefusalCode::Unavailable)
            }
        }
    }

    /// Reads a session's room (empty when absent).
    pub async fn read<T>(
        &self,
        session: SessionId,
        f: impl FnOnce(&R) -> T,
    ) -> Result<T, RefusalCode> {
        match self {
            Rooms::Local(map) => {
                let rooms = map.lock();
                match rooms.get(&session) {
                    Some(r) => Ok(f(r)),
                    None => Ok(f(&R::default())),
                }
            }
            Rooms::Shared(s) => {
                let room: R = s.fetch(session).await?;
                Ok(f(&room))
            }
        }
    }

    /// Reads a session's room for relay: in a cluster, this node's copy may give the answer when
    /// it lets the frame go (`Ok`); a refusal (`Err`) or a missing copy is read from Redis again,
    /// and the copy refreshed. `f` may run twice. See the module's documentation.
    pub async fn read_relay<T>(
        &self,
        session: SessionId,
        f: impl Fn(&R) -> Result<T, RefusalCode>,
    ) -> Result<Result<T, RefusalCode>, RefusalCode> {
        let Rooms::Shared(s) = self else {
            return self.read(session, f).await;
        };
        let hearing = s.state.hearing();
        if hearing {
            if let Some(room) = s.cache.get(session) {
                if let ok @ Ok(_) = f(&room) {
                    return Ok(ok);
                }
            }
        }
        let token = hearing.then(|| s.cache.begin(session));
        let room = match s.fetch(session).await {
            Ok(r) => Arc::new(r),
            Err(code) => {
                if token.is_some() {
                    s.cache.forget(session);
                }
                return Err(code);
            }
        };
        let out = f(&room);
        if let Some(token) = token {
            s.cache.fill(session, token, room);
        }
        Ok(out)
    }

    /// The sessions that have a room.
    pub async fn sessions(&self) -> Result<Vec<SessionId>, RefusalCode> {
        match self {
            Rooms::Local(map) => Ok(map.lock().keys().copied().collect()),
            Rooms::Shared(Shared { state, .. }) => Ok(state
                .keys(PREFIX)
                .await
                .map_err(unavailable)?
                .iter()
                .filter_map(|k| k.strip_prefix(PREFIX)?.parse().ok().map(SessionId))
                .collect()),
        }
    }
}

impl<R: RoomValue> Shared<R> {
    async fn fetch(&self, session: SessionId) -> Result<R, RefusalCode> {
        let text = self
            .state
            .get(&format!("{PREFIX}{session}"))
            .await
            .map_err(unavailable)?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    //! The relay's copies against a real Redis: a redis-server of the test's own on a free port
    //! (required under CI=true, skipped otherwise), two nodes on it.
    use super::*;
    use std::collections::BTreeSet;
    use std::process::{Child, Command, Stdio};
    use telesoin_bus::RedisBus;
    use uuid::Uuid;

    #[derive(Debug, Default, Serialize, serde::Deserialize)]
    struct TestRoom {
        admitted: BTreeSet<u32>,
    }

    impl RoomValue for TestRoom {
        fn is_empty(&self) -> bool {
            self.admitted.is_empty()
        }
    }

    fn admitted(who: u32) -> impl Fn(&TestRoom) -> Result<(), RefusalCode> {
        move |r| {
            if r.admitted.contains(&who) {
                Ok(())
            } else {
                Err(RefusalCode::NotAdmitted)
            }
        }
    }

    struct Redis {
        child: Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn redis_server() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is required under CI"
            );
            eprintln!("NOTE: no redis-server; test skipped outside CI");
            return None;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server started");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis {
            child,
            port,
            _dir: dir,
        })
    }

    /// A command sent behind the nodes' backs (nothing announced).
    async fn raw(port: u16, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c).await.expect("raw command")
    }

    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Node A changes a room; node B, which relayed from its copy, refuses from a fresh read
    /// once it hears anything A sent after the change (here a frame to a socket on B).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_on_one_node_drops_the_copies_of_the_others_before_what_follows_it() {
        let Some(redis) = redis_server() else { return };
        let url = format!("redis://127.0.0.1:{}", redis.port);
        let (na, nb) = (rand::random::<u64>(), rand::random::<u64>());
        let bus_a = RedisBus::start(&url, na).expect("bus a");
        let bus_b = RedisBus::start(&url, nb).expect("bus b");
        until("both nodes hear the changes", || {
            bus_a.hearing() && bus_b.hearing()
        })
        .await;
        let a: Rooms<TestRoom> = Rooms::shared(bus_a.clone());
        let b: Rooms<TestRoom> = Rooms::shared(bus_b.clone());
        let session = SessionId(Uuid::new_v4());
        let key = format!("{PREFIX}{session}");

        // Before admission, nothing: B's copy (of an absent room) never lets 7 go.
        assert_eq!(
            b.read_relay(session, admitted(7)).await,
            Ok(Err(RefusalCode::NotAdmitted))
        );
        // Admitted on A: B reads again on its negative, and lets the frame go at once.
        a.update(session, |r| r.admitted.extend([7, 8]))
            .await
            .expect("admit");
        assert_eq!(b.read_relay(session, admitted(7)).await, Ok(Ok(())));
        assert_eq!(b.cache().expect("cluster").len(), 1);
        // A copy answers without Redis: the key deleted behind B's back changes nothing.
        raw(redis.port, &["DEL", &key]).await;
        assert_eq!(b.read_relay(session, admitted(7)).await, Ok(Ok(())));
        // ... while a refusal is always read again (Redis holds no room now).
        assert_eq!(
            b.read_relay(session, admitted(9)).await,
            Ok(Err(RefusalCode::NotAdmitted))
        );
        a.update(session, |r| r.admitted.extend([7, 8]))
            .await
            .expect("again");
        assert_eq!(b.read_relay(session, admitted(7)).await, Ok(Ok(())));

        // A socket on B, reached from A after the change.
        let p = telesoin_core::ParticipantId(Uuid::new_v4());
        let (tx, mut rx) = telesoin_bus::queue::channel(4);
        let (att, _) = telesoin_bus::Bus::attach(&*bus_b, p, tx)
            .await
            .expect("attach");
        // 7 is refused on A; then A tells the socket on B.
        a.update(session, |r| {
            r.admitted.remove(&7);
        })
        .await
        .expect("refuse");
        assert_eq!(
            a.read_relay(session, admitted(7)).await,
            Ok(Err(RefusalCode::NotAdmitted)),
            "the writing node dropped its own copy before update returned"
        );
        telesoin_bus::Bus::deliver_to(&*bus_a, att, telesoin_bus::Outbound::Text("refused".into()))
            .await
            .expect("deliver");
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time");
        assert!(matches!(got, Some(telesoin_bus::Outbound::Text(t)) if &*t == "refused"));
        assert_eq!(
            b.read_relay(session, admitted(7)).await,
            Ok(Err(RefusalCode::NotAdmitted)),
            "B heard the change before the frame that followed it"
        );
        assert_eq!(b.read_relay(session, admitted(8)).await, Ok(Ok(())));
    }

    /// A lost subscription may have missed changes: every copy goes, and nothing is kept while
    /// the node does not hear; the new subscription starts empty.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_bus_subscription_drops_every_copy() {
        let Some(redis) = redis_server() else { return };
        let url = format!("redis://127.0.0.1:{}", redis.port);
        let bus = RedisBus::start(&url, rand::random::<u64>()).expect("bus");
        until("the node hears the changes", || bus.hearing()).await;
        let rooms: Rooms<TestRoom> = Rooms::shared(bus.clone());
        let session = SessionId(Uuid::new_v4());
        let key = format!("{PREFIX}{session}");
        rooms
            .update(session, |r| r.admitted.insert(1))
            .await
            .expect("admit");
        assert_eq!(rooms.read_relay(session, admitted(1)).await, Ok(Ok(())));
        // A change this node could not hear (written behind its back): the copy still answers.
        raw(redis.port, &["SET", &key, r#"{"admitted":[2]}"#]).await;
        assert_eq!(rooms.read_relay(session, admitted(1)).await, Ok(Ok(())));

        // The subscription is cut (as a Redis restart or a network cut would): the node
        // subscribes again by itself, and its copies are gone.
        let before = bus.subscriptions();
        raw(redis.port, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
        until("subscribed again", || {
            bus.subscriptions() > before && bus.hearing()
        })
        .await;
        assert_eq!(rooms.cache().expect("cluster").len(), 0);
        assert_eq!(
            rooms.read_relay(session, admitted(1)).await,
            Ok(Err(RefusalCode::NotAdmitted)),
            "read again from Redis after the reconnect"
        );
        assert_eq!(rooms.read_relay(session, admitted(2)).await, Ok(Ok(())));

        // Redis lost its rooms (hub::restore notices): the hub drops every copy.
        raw(redis.port, &["FLUSHALL"]).await;
        assert_eq!(
            rooms.read_relay(session, admitted(2)).await,
            Ok(Ok(())),
            "a copy"
        );
        rooms.forget_all();
        assert_eq!(
            rooms.read_relay(session, admitted(2)).await,
            Ok(Err(RefusalCode::NotAdmitted))
        );
    }
}
