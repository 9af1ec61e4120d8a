//! Presence: a lost socket and its grace period, the live view (media and hang-ups: `evidence`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use telesoin_bus::Attachment;
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::Role;
use telesoin_core::{ParticipantId, SessionId};

use super::{Hub, wire_role};

impl Hub {
    /// A socket closed without hangup: the seat is kept for the grace period.
    pub async fn socket_lost(
        self: &Arc<Self>,
        session: SessionId,
        attachment: Attachment,
        now: DateTime<Utc>,
    ) {
        self.bus.detach(attachment).await;
        let participant = attachment.participant;
        let lost = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.get_mut(&participant)?;
                if seat.attachment != Some(attachment) {
                    return None; // Replaced by a newer socket: nothing was lost.
                }
                seat.attachment = None;
                seat.lost_at = Some(now);
                let role = seat.role;
                let admitted = seat.admitted;
                if !admitted {
                    // Nobody keeps a lobby seat: it goes at once.
                    room.seats.remove(&participant);
                }
                let notify = room.admitted_others(participant);
                let lobby: Vec<ParticipantId> = room
                    .seats
                    .iter()
                    .filter(|(_, s)| !s.admitted && s.attachment.is_some())
                    .map(|(p, _)| *p)
                    .collect();
                Some((role, admitted, notify, lobby))
            })
            .await;
        let (role, admitted, notify, lobby) = match lost {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(_) => {
                // The shared state is unreachable: the seat stays as it was; the grace timer
                // still runs so that a seat nobody comes back to is eventually let go.
                let hub = Arc::clone(self);
                let grace = self.cfg.grace;
                tokio::spawn(async move {
                    tokio::time::sleep(grace.to_std().unwrap_or_default()).await;
                    hub.grace_expired(session, participant, now).await;
                });
                return;
            }
        };
        let kind = if admitted {
            PresenceKind::SocketLost
        } else {
            PresenceKind::Left
        };
        // Never dropped: a burst of closes the store cannot take at once is queued and retried.
        self.event_kept(session, now, Some((participant, role)), kind, None)
            .await;
        self.peer_left(&notify, participant, admitted).await;
        if role == Role::Kine {
            // The lobby waits for the kiné again, and is told so.
            for p in lobby {
                self.forget_waiting(session, p).await;
                self.evaluate(session, p, now).await;
            }
        }
        if !admitted {
            return;
        }
        let hub = Arc::clone(self);
        let grace = self.cfg.grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace.to_std().unwrap_or_default()).await;
            hub.grace_expired(session, participant, now).await;
        });
    }

    async fn grace_expired(
        &self,
        session: SessionId,
        participant: ParticipantId,
        lost_at: DateTime<Utc>,
    ) {
        let expired = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.get(&participant)?;
                if seat.attachment.is_some() || seat.lost_at != Some(lost_at) {
                    return None; // Came back in time.
                }
                let role = seat.role;
                room.seats.remove(&participant);
                Some((role, room.admitted_others(participant)))
            })
            .await;
        let Ok(Some((role, notify))) = expired else {
            return;
        };
        // We stopped knowing about this participant when the socket was lost: that is when
        // they left, for the record and for billing.
        self.event_kept(
            session,
            lost_at,
            Some((participant, role)),
            PresenceKind::Left,
            Some("grace_expired".into()),
        )
        .await;
        self.peer_left(&notify, participant, false).await;
    }

    /// Live presence of a session, for the dashboard.
    pub async fn presence(&self, session: SessionId) -> Vec<telesoin_proto::rest::LivePresence> {
        self.rooms
            .read(session, |room| {
                room.seats
                    .iter()
                    .map(|(p, s)| telesoin_proto::rest::LivePresence {
                        participant: p.0,
                        role: wire_role(s.role),
                        admitted: s.admitted,
                        connected: s.attachment.is_some(),
                        media: s.media,
                    })
                    .collect()
            })
            .await
            .unwrap_or_default()
    }
}
