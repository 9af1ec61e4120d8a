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
        let targets = self
            .rooms
            .read(session, |room| {
                if !room.seats.get(&from).is_some_and(|s| s.admitted) {
                    return Err(RefusalCode::NotAdmitted);
                }
                match to {
                    Some(t) => {
                        let t = ParticipantId(t);
                        match room.seats.get(&t) {
                            Some(s) if t != from && s.admitted && s.attachment.is_some() => {
                                Ok(vec![t])
                            }
                            _ => Err(RefusalCode::UnknownPeer),
                        }
                    }
                    None => Ok(room.admitted_others(from)),
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
        for t in targets {
            self.send(t, Outbound::Text(frame.clone())).await;
        }
        Ok(())
    }
}
