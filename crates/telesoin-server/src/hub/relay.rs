//! Relay: offers, answers and candidates between admitted seats, byte for byte.

use std::sync::Arc;

use serde_json::value::RawValue;
use telesoin_bus::Outbound;
use telesoin_core::{ParticipantId, RefusalCode, SessionId};

use super::{Hub, HubResult};

impl Hub {
    /// Relays an offer, answer or candidate, byte for byte, between admitted seats of one room.
    pub async fn relay(
        &self,
        session: SessionId,
        from: ParticipantId,
        kind: &'static str,
        to: Option<uuid::Uuid>,
        data: &RawValue,
    ) -> HubResult<()> {
        // In a cluster, this node's copy of the room may let the frame go; a refusal is read
        // again from Redis first (see `crate::rooms`).
        let targets = self
            .rooms
            .read_relay(session, |room| {
                if !room.seats.get(&from).is_some_and(|s| s.admitted) {
                    return Err(RefusalCode::NotAdmitted);
                }
                match to {
                    Some(t) => {
                        let t = ParticipantId(t);
                        match room.seats.get(&t) {
                            Some(s) if t != from && s.admitted => match s.attachment {
                                Some(a) => Ok(vec![a]),
                                None => Err(RefusalCode::UnknownPeer),
                            },
                            _ => Err(RefusalCode::UnknownPeer),
                        }
                    }
                    None => Ok(room
                        .seats
                        .iter()
                        .filter(|(p, s)| **p != from && s.admitted)
                        .filter_map(|(_, s)| s.attachment)
                        .collect()),
                }
            })
            .await??;
        // The frame is assembled around the untouched payload: no re-serialization of `data`.
        let frame: Arc<str> = format!(
            r#"{{"type":"{kind}","from":"{}","data":{}}}"#,
            from.0,
            data.get()
        )
        .into();
        // To the very socket the room admitted (no look-up of where it is): a newer socket of
        // the same seat is in the room once its join wrote it there.
        for a in targets {
            self.send_to(a, Outbound::Text(frame.clone())).await;
        }
        Ok(())
    }
}
