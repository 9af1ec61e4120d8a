//! telesoin-bus: how a message reaches a participant's socket.
//!
//! Concepts:
//! - [`Bus`]: deliver an [`Outbound`] frame to a participant wherever their socket lives. The
//!   hub only talks to this trait, chosen once at start-up.
//! - [`LocalBus`]: the in-process default, a map from participant to the sending half of that
//!   socket's bounded [`queue`] (which allocates nothing while it is empty).
//! - [`RedisBus`] (several nodes): wraps a [`LocalBus`]; local participants are reached directly,
//!   others through the node that holds them (a Redis channel per node). It also records where
//!   each participant is attached and which nodes are alive.
//! - [`SharedState`]: an atomic read-modify-write of a small JSON value by key, so that every node
//!   sees the same rooms, seats and lobby (implemented by [`RedisBus`]). Every write is announced
//!   to every node ([`Change`]), in the bus's order, so that a node may keep copies of values and
//!   drop them when they change ([`SharedState::watch`]).
//! - [`Attachment`]: the proof that a socket is the participant's current one (which node, which
//!   connection); a newer socket for the same participant replaces it, and detaching a stale
//!   attachment is a no-op.
//!
//! The bus never parses or changes a frame (relayed SDP stays byte-identical) and never decides
//! who may talk to whom: the hub checks admission before it calls [`Bus::deliver`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use telesoin_core::ParticipantId;
pub mod queue;
mod redis_bus;
pub use redis_bus::RedisBus;

/// A frame for one socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A JSON text frame, shared when sent to several sockets.
    Text(Arc<str>),
    /// Close the socket with this WebSocket close code and reason.
    Close { code: u16, reason: &'static str },
}

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus backend (Redis) cannot be reached: callers fail closed.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// Where a participant's socket is attached; see [`Bus::attach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub participant: ParticipantId,
    /// The node holding the socket (0 for a single node).
    #[serde(default)]
    pub node: u64,
    pub connection: u64,
}

/// What delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Yes,
    /// Nobody is attached for this participant.
    NoSocket,
    /// The socket's queue was full: it is too slow and has been detached (its socket task sees
    /// its queue end and closes; the client reconnects into its kept seat).
    Full,
}

#[async_trait]
pub trait Bus: Send + Sync {
    /// This node's id (0 for the in-process bus).
    fn node(&self) -> u64;
    /// Attaches a socket's queue for `participant`, replacing (and returning) any earlier one on
    /// this node. A distributed bus also records where the participant is.
    async fn attach(
        &self,
        participant: ParticipantId,
        sink: queue::Sender,
    ) -> Result<(Attachment, Option<queue::Sender>), BusError>;
    /// Detaches this attachment if it is still the current one.
    async fn detach(&self, attachment: Attachment);
    /// Delivers one frame to the participant's current socket.
    async fn deliver(&self, to: ParticipantId, frame: Outbound) -> Result<Delivered, BusError>;
    /// Delivers one frame to this attachment only, if it is still attached (on any node): how a
    /// socket on another node is told it was replaced.
    async fn deliver_to(&self, to: Attachment, frame: Outbound) -> Result<Delivered, BusError>;
    /// Records again where this attachment is, if it is still this node's current one: after
    /// the shared state was lost (Redis restarted empty), nobody else could find the socket. The
    /// in-process bus has nothing to record.
    async fn refresh(&self, _attachment: Attachment) -> Result<(), BusError> {
        Ok(())
    }
    /// Whether a node is alive (its liveness key is fresh).
    async fn node_alive(&self, node: u64) -> Result<bool, BusError>;
    /// Health of the backend, for /readyz and fail-closed admission.
    async fn ping(&self) -> Result<(), BusError>;
}

/// What a node hears of the shared state (see [`SharedState::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// This key was written or deleted (by any node, this one included).
    Key(&'a str),
    /// Changes may have been missed (the node's subscription was lost, made again, or went
    /// silent): whatever was derived from the shared state must be dropped.
    All,
}

/// Called for every [`Change`] a node hears, on the task that hears it: it must be quick and
/// must not block.
pub type Watcher = Arc<dyn Fn(Change<'_>) + Send + Sync>;

/// An atomic read-modify-write of a JSON text by key, shared by every node.
#[async_trait]
pub trait SharedState: Send + Sync {
    /// Reads the value under `key` (absent: `None`), lets `f` compute the new one (`None`
    /// deletes it) and writes it back with `ttl`, with no other writer in between. `f` runs once
    /// per call and must have no side effect besides computing the value; when it returns the
    /// value unchanged nothing is written.
    async fn update(
        &self,
        key: &str,
        ttl: std::time::Duration,
        f: &mut (dyn for<'a> FnMut(Option<&'a str>) -> Option<String> + Send),
    ) -> Result<(), BusError>;
    /// A consistent snapshot of the value under `key`.
    async fn get(&self, key: &str) -> Result<Option<String>, BusError>;
    /// Keys starting with `prefix`.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, BusError>;
    /// Registers `watcher` for every change this node hears from now on. A write by any node is
    /// announced atomically with it, and is heard by every node before anything that node's
    /// bus delivers after it (one ordered channel per node). False when this backend does not
    /// announce changes: nothing read from it may then be kept.
    fn watch(&self, _watcher: Watcher) -> bool {
        false
    }
    /// Whether this node hears every change right now (subscribed, and not silent for longer
    /// than its heartbeat allows). While it does not, copies must not be used.
    fn hearing(&self) -> bool {
        false
    }
}

/// The in-process bus.
#[derive(Debug, Default)]
pub struct LocalBus {
    sinks: Mutex<HashMap<ParticipantId, (u64, queue::Sender)>>,
    next: AtomicU64,
    node: u64,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// The local part of a distributed bus on node `node`.
    pub fn with_node(node: u64) -> Self {
        LocalBus {
            node,
            ..Self::default()
        }
    }

    fn attach_local(
        &self,
        participant: ParticipantId,
        sink: queue::Sender,
    ) -> (Attachment, Option<queue::Sender>) {
        let connection = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let previous = self
            .sinks
            .lock()
            .insert(participant, (connection, sink))
            .map(|(_, s)| s);
        (
            Attachment {
                participant,
                node: self.node,
                connection,
            },
            previous,
        )
    }

    /// Whether this attachment is still the current local one.
    fn is_current(&self, a: Attachment) -> bool {
        a.node == self.node
            && self
                .sinks
                .lock()
                .get(&a.participant)
                .is_some_and(|(c, _)| *c == a.connection)
    }

    fn detach_local(&self, a: Attachment) {
        let mut sinks = self.sinks.lock();
        if a.node == self.node
            && sinks
                .get(&a.participant)
                .is_some_and(|(c, _)| *c == a.connection)
        {
            sinks.remove(&a.participant);
        }
    }

    /// Delivers to the local socket of `to`, only to connection `only` when given.
    fn deliver_local(&self, to: ParticipantId, only: Option<u64>, frame: Outbound) -> Delivered {
        let sink = self
            .sinks
            .lock()
            .get(&to)
            .filter(|(c, _)| only.is_none_or(|o| o == *c))
            .map(|(_, s)| s.clone());
        let Some(sink) = sink else {
            return Delivered::NoSocket;
        };
        match sink.try_send(frame) {
            Ok(()) => Delivered::Yes,
            Err(queue::TrySendError::Full(_)) => {
                // A socket that cannot keep up is cut loose rather than silently losing frames:
                // dropping its only sender ends its writer, and the client reconnects.
                let mut sinks = self.sinks.lock();
                if sinks.get(&to).is_some_and(|(_, s)| s.same_channel(&sink)) {
                    sinks.remove(&to);
                }
                Delivered::Full
            }
            Err(queue::TrySendError::Closed(_)) => Delivered::NoSocket,
        }
    }

    /// Number of attached sockets (metrics).
    pub fn attached(&self) -> usize {
        self.sinks.lock().len()
    }
}

#[async_trait]
impl Bus for LocalBus {
    fn node(&self) -> u64 {
        self.node
    }

    async fn attach(
        &self,
        participant: ParticipantId,
        sink: queue::Sender,
    ) -> Result<(Attachment, Option<queue::Sender>), BusError> {
        Ok(self.attach_local(participant, sink))
    }

    async fn detach(&self, a: Attachment) {
        self.detach_local(a);
    }

    async fn deliver(&self, to: ParticipantId, frame: Outbound) -> Result<Delivered, BusError> {
        Ok(self.deliver_local(to, None, frame))
    }

    async fn deliver_to(&self, to: Attachment, frame: Outbound) -> Result<Delivered, BusError> {
        if to.node != self.node {
            return Ok(Delivered::NoSocket);
        }
        Ok(self.deliver_local(to.participant, Some(to.connection), frame))
    }

    async fn node_alive(&self, node: u64) -> Result<bool, BusError> {
        Ok(node == self.node)
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[tokio::test]
    async fn newer_socket_replaces_older_and_stale_detach_is_ignored() {
        let bus = LocalBus::new();
        let p = ParticipantId(Uuid::new_v4());
        let (tx1, mut rx1) = queue::channel(4);
        let (a1, prev) = bus.attach(p, tx1).await.expect("attach");
        assert!(prev.is_none());
        assert_eq!(
            bus.deliver(p, Outbound::Text("one".into()))
                .await
                .expect("ok"),
            Delivered::Yes
        );
        assert!(matches!(rx1.recv().await, Some(Outbound::Text(t)) if &*t == "one"));

        let (tx2, mut rx2) = queue::channel(1);
        let (a2, prev) = bus.attach(p, tx2).await.expect("attach");
        assert!(
            prev.is_some(),
            "the older socket is handed back so it can be told"
        );
        bus.detach(a1).await;
        assert_eq!(
            bus.deliver(p, Outbound::Text("two".into()))
                .await
                .expect("ok"),
            Delivered::Yes
        );
        assert!(matches!(rx2.recv().await, Some(Outbound::Text(t)) if &*t == "two"));

        bus.deliver(p, Outbound::Text("fill".into()))
            .await
            .expect("ok");
        assert_eq!(
            bus.deliver(p, Outbound::Text("over".into()))
                .await
                .expect("ok"),
            Delivered::Full
        );
        assert_eq!(
            bus.attached(),
            0,
            "a socket that cannot keep up is detached"
        );
        assert!(matches!(rx2.recv().await, Some(Outbound::Text(t)) if &*t == "fill"));
        assert!(
            rx2.recv().await.is_none(),
            "its queue ends: the socket task closes"
        );
        bus.detach(a2).await;
        assert_eq!(
            bus.deliver(p, Outbound::Text("gone".into()))
                .await
                .expect("ok"),
            Delivered::NoSocket
        );
        assert_eq!(bus.attached(), 0);
    }
}
