//! Where the hub keeps its rooms: in this process (one node, the default) or in the cluster's
//! shared state (several nodes, every node sees the same seats, lobby and admissions). Chosen
//! once at start-up; the hub only calls [`Rooms::update`], [`Rooms::read`] and
//! [`Rooms::sessions`].
//!
//! An empty room is the same as no room: it is never kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use telesoin_bus::SharedState;
use telesoin_core::{RefusalCode, SessionId};

/// A room as the hub defines it: serializable, with a notion of emptiness.
pub trait RoomValue: Default + Serialize + DeserializeOwned + Send {
    fn is_empty(&self) -> bool;
}

/// How long a room with nobody updating it survives in the shared state (a crashed cluster
/// leaves nothing behind for longer than this).
const ROOM_TTL: Duration = Duration::from_secs(12 * 3600);
const PREFIX: &str = "ts:room:";

pub enum Rooms<R> {
    Local(Mutex<HashMap<SessionId, R>>),
    Shared(Arc<dyn SharedState>),
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
        Rooms::Shared(state)
    }

    /// The cluster's shared state, when the rooms live there.
    pub fn shared_state(&self) -> Option<&Arc<dyn SharedState>> {
        match self {
            Rooms::Local(_) => None,
            Rooms::Shared(state) => Some(state),
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
            Rooms::Shared(state) => {
                let mut out = None;
                let key = format!("{PREFIX}{session}");
                state
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
                    .await
                    .map_err(unavailable)?;
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
            Rooms::Shared(state) => {
                let text = state
                    .get(&format!("{PREFIX}{session}"))
                    .await
                    .map_err(unavailable)?;
                let room: R = text
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                Ok(f(&room))
            }
        }
    }

    /// The sessions that have a room.
    pub async fn sessions(&self) -> Result<Vec<SessionId>, RefusalCode> {
        match self {
            Rooms::Local(map) => Ok(map.lock().keys().copied().collect()),
            Rooms::Shared(state) => Ok(state
                .keys(PREFIX)
                .await
                .map_err(unavailable)?
                .iter()
                .filter_map(|k| k.strip_prefix(PREFIX)?.parse().ok().map(SessionId))
                .collect()),
        }
    }
}
