//! Presence: a lost socket and its grace period, the live view (media and hang-ups: `evidence`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use telesoin_bus::Attachment;
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::Role;
use telesoin_core::{ParticipantId, SessionId};
use telesoin_store::Appended;

use super::{Hub, Seat, new_event, wire_role};

/// What a lost socket's seat was, in the room.
enum Lost {
    /// Replaced by a newer socket: nothing was lost.
    Replaced,
    /// Not in the room: the shared state lost it (or the seat was let go meanwhile).
    Absent,
    /// Detached: (role, admitted, who to tell, the lobby).
    Seat(Role, bool, Vec<ParticipantId>, Vec<ParticipantId>),
}

/// What the grace timer found of the seat, in the room.
enum Expiry {
    /// Back on a socket (this node or another), or lost again since (a newer timer decides).
    Back,
    /// Not in the room: the shared state lost it, or the seat was let go meanwhile.
    Absent(Vec<ParticipantId>),
    /// Still lost since `lost_at`: removed (role, who to tell).
    Removed(Role, Vec<ParticipantId>),
}

fn detached(
    room: &mut super::Room,
    participant: ParticipantId,
    attachment: Attachment,
    now: DateTime<Utc>,
) -> Lost {
    let Some(seat) = room.seats.get_mut(&participant) else {
        return Lost::Absent;
    };
    if seat.attachment != Some(attachment) {
        return Lost::Replaced;
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
    Lost::Seat(role, admitted, notify, lobby)
}

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
            .update(session, |room| detached(room, participant, attachment, now))
            .await;
        let lost = match lost {
            Ok(Lost::Absent) if self.is_cluster() => {
                // The shared state lost the room before this socket's seat was put back: the
                // record says what the seat was, and it is put back detached, so that its
                // loss is recorded, its grace runs and a rejoin on any node finds it.
                self.lost_without_room(session, attachment, now).await
            }
            Ok(lost) => lost,
            Err(_) => {
                // The shared state is unreachable: the seat stays as it was; the grace timer
                // still runs so that a seat nobody comes back to is eventually let go (the
                // record decides then).
                let role = self.role_in_record(session, participant).await;
                if let Some(role) = role {
                    self.start_grace(session, participant, role, now, None);
                }
                return;
            }
        };
        let Lost::Seat(role, admitted, notify, lobby) = lost else {
            return;
        };
        let kind = if admitted {
            PresenceKind::SocketLost
        } else {
            PresenceKind::Left
        };
        // Never dropped: a burst of closes the store cannot take at once is queued and retried.
        let seq = self
            .event_kept(session, now, Some((participant, role)), kind, None)
            .await;
        self.peer_left(&notify, participant, admitted).await;
        if role == Role::Kine {
            // The lobby waits for the kiné again, and is told so.
            for p in lobby {
                self.forget_waiting(session, p).await;
                self.evaluate(session, p, now).await;
            }
        }
        if admitted {
            self.start_grace(session, participant, role, now, seq);
        }
    }

    /// A lost socket whose seat the room does not hold: what the record says of the seat,
    /// put back detached (an admitted seat) as the room would have had it.
    async fn lost_without_room(
        &self,
        session: SessionId,
        attachment: Attachment,
        now: DateTime<Utc>,
    ) -> Lost {
        let participant = attachment.participant;
        let open = self
            .store
            .session(session)
            .await
            .ok()
            .flatten()
            .is_some_and(|row| !row.session.status.is_closed());
        let Ok(events) = self.store.events(session).await else {
            return Lost::Absent;
        };
        let (present, admitted) = super::restore::durable_seat(&events, participant);
        let role = events
            .iter()
            .rev()
            .find(|e| e.participant == Some(participant))
            .and_then(|e| e.role);
        let (true, true, Some(role)) = (open, present, role) else {
            return Lost::Absent; // Never seated, or already gone for the record.
        };
        // The others the record has in the call hear of the loss too: their seats may not be
        // back in the room yet (each node puts back its own).
        let others = super::restore::durable_admitted_others(&events, participant);
        let put_back = self
            .rooms
            .update(session, |room| {
                if room.seats.contains_key(&participant) {
                    // Back meanwhile (a rejoin, a restore): not lost any more.
                    return Lost::Replaced;
                }
                room.seats.insert(
                    participant,
                    Seat {
                        role,
                        attachment: Some(attachment),
                        admitted,
                        admitted_by_kine: admitted,
                        attested: None,
                        media: false,
                        report: None,
                        evidence_at: None,
                        lost_at: None,
                        waiting: None,
                    },
                );
                let mut lost = detached(room, participant, attachment, now);
                if let Lost::Seat(_, _, notify, _) = &mut lost {
                    for p in &others {
                        if !notify.contains(p) {
                            notify.push(*p);
                        }
                    }
                }
                lost
            })
            .await;
        tracing::warn!(session = %session, "a socket was lost while the shared state had lost its seat: recorded from the record");
        put_back.unwrap_or(Lost::Absent)
    }

    /// The seat's role, as its last event in the record has it.
    async fn role_in_record(&self, session: SessionId, participant: ParticipantId) -> Option<Role> {
        let events = self.store.events(session).await.ok()?;
        events
            .iter()
            .rev()
            .find(|e| e.participant == Some(participant))
            .and_then(|e| e.role)
    }

    fn start_grace(
        self: &Arc<Self>,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        lost_at: DateTime<Utc>,
        lost_seq: Option<i64>,
    ) {
        let hub = Arc::clone(self);
        let grace = self.cfg.grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace.to_std().unwrap_or_default()).await;
            hub.grace_expired(session, participant, role, lost_at, lost_seq)
                .await;
        });
    }

    /// The grace period of a seat lost at `lost_at` (its `socket_lost` written as `lost_seq`)
    /// is over. The seat goes only if nobody came back to it, on any node: the room says so
    /// atomically (the seat is still detached since `lost_at`), and so does the record (its
    /// last event is still that `socket_lost`: a rejoin on another node that found the room
    /// without the seat wrote after it). The record's answer holds when the `left` is written:
    /// the store writes it only while that event is still the seat's last, in the write's own
    /// transaction (`NewEvent::expect_last_seq`), so a rejoin that lands between the read and
    /// the write is never cut. A `left` written first makes a later rejoin a new `joined` (the
    /// store's seat rule).
    async fn grace_expired(
        &self,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        lost_at: DateTime<Utc>,
        lost_seq: Option<i64>,
    ) {
        let expiry = self
            .rooms
            .update(session, |room| {
                let Some(seat) = room.seats.get(&participant) else {
                    return Expiry::Absent(room.admitted_others(participant));
                };
                if seat.attachment.is_some() || seat.lost_at != Some(lost_at) {
                    return Expiry::Back;
                }
                let role = seat.role;
                room.seats.remove(&participant);
                Expiry::Removed(role, room.admitted_others(participant))
            })
            .await;
        let (role, notify) = match expiry {
            Ok(Expiry::Back) => return,
            Ok(Expiry::Removed(role, notify)) => (role, notify),
            // A single node's room lost the seat only by letting it go (an end, a refusal).
            Ok(Expiry::Absent(_)) | Err(_) if !self.is_cluster() => return,
            Ok(Expiry::Absent(notify)) => (role, notify),
            Err(_) => (role, Vec::new()),
        };
        let Some(last) = self.still_lost(session, participant, lost_seq).await else {
            tracing::info!(session = %session, "the seat came back elsewhere: its grace is not over");
            return;
        };
        let mut notify = notify;
        if self.is_cluster() {
            // Seats of the record not back in the room yet hear it too (see `socket_lost`).
            if let Ok(events) = self.store.events(session).await {
                let others = super::restore::durable_admitted_others(&events, participant);
                for p in others {
                    if !notify.contains(&p) {
                        notify.push(p);
                    }
                }
            }
        }
        // We stopped knowing about this participant when the socket was lost: that is when
        // they left, for the record and for billing.
        let mut left = new_event(
            lost_at,
            Some((participant, role)),
            PresenceKind::Left,
            Some("grace_expired".into()),
        );
        left.expect_last_seq = Some(last);
        if self.event_kept_outcome(session, left).await == Some(Appended::Superseded) {
            tracing::info!(session = %session, "the seat came back elsewhere as its grace ended: not let go");
            return;
        }
        self.peer_left(&notify, participant, false).await;
    }

    /// The seat's last event (its seq) while the record still ends the seat with its
    /// `socket_lost` (`lost_seq`, if it was known in time), in a session still open. A store
    /// that cannot answer: not decided now, so nothing is written (a wrong `left` would cut a
    /// live seat).
    async fn still_lost(
        &self,
        session: SessionId,
        participant: ParticipantId,
        lost_seq: Option<i64>,
    ) -> Option<i64> {
        let Ok(Some(row)) = self.store.session(session).await else {
            return None;
        };
        if row.session.status.is_closed() {
            return None;
        }
        let state = self.store.seat_state(session, participant).await.ok()??;
        let lost = match lost_seq {
            Some(seq) => state.last_seq == seq,
            None => state.last_kind == PresenceKind::SocketLost,
        };
        lost.then_some(state.last_seq)
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
