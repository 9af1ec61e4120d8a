//! The evidence billing is made of (`telesoin_core::billing`): media reports and their
//! heartbeats, hang-ups and leaves (also replayed after a reconnection, dated with the client's
//! `ago_ms`), and the media loss a rejoining client reports (`media_lost_ago_ms`).
//!
//! Heartbeats are persisted coarsely: a report that changes nothing is written only when the
//! seat's last persisted media row is at least half a heartbeat period old. A client that
//! heartbeats every period thus leaves one row per period (the bound of billing's error after a
//! crash: the interval ends at the last row), and a client that reports more often than that
//! leaves no more than two rows per period.

use chrono::{DateTime, Duration, Utc};
use telesoin_bus::Outbound;
use telesoin_core::billing::{MediaReport, PresenceKind};
use telesoin_core::model::Role;
use telesoin_core::{ParticipantId, RefusalCode, SessionId};
use telesoin_proto::signal::{MAX_AGO_MS, ServerMsg};

use super::{Hub, HubResult, close, new_event, text};
use crate::events::DomainEvent;

/// The instant a client's relative account (`ago_ms`, `media_lost_ago_ms`) points at: never in
/// the future, never more than [`MAX_AGO_MS`] back.
pub(crate) fn dated(now: DateTime<Utc>, ago_ms: Option<u64>) -> DateTime<Utc> {
    let ago = ago_ms.unwrap_or(0).min(MAX_AGO_MS);
    now - Duration::milliseconds(i64::try_from(ago).unwrap_or(0))
}

/// Only a short machine label is kept from a client: never free text.
fn clean_label(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect()
}

/// What a `media` message leads to.
enum Write {
    Change,
    Heartbeat,
    Nothing,
}

impl Hub {
    /// A `media` report of an admitted seat: a row when the state changed, a heartbeat row when
    /// the last one is at least half a period old, else nothing.
    pub async fn media_report(
        &self,
        session: SessionId,
        participant: ParticipantId,
        report: MediaReport,
        incident: Option<String>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let half = self.cfg.heartbeat / 2;
        let (role, write, connects) = self
            .rooms
            .read(session, |r| {
                let seat = r.seats.get(&participant).ok_or(RefusalCode::NotAdmitted)?;
                if !seat.admitted {
                    return Err(RefusalCode::NotAdmitted);
                }
                let write = if seat.report != Some(report) {
                    Write::Change
                } else if seat.evidence_at.is_none_or(|at| now - at >= half) {
                    Write::Heartbeat
                } else {
                    Write::Nothing
                };
                // Decided before the write, so that `call.connected` rides with the event that
                // makes it: both sides' media connected once this report is in.
                let on = |role| {
                    seat.role == role
                        || r.seats.iter().any(|(p, s)| {
                            *p != participant && s.role == role && s.admitted && s.media
                        })
                };
                let connects = report.connected && on(Role::Kine) && on(Role::Patient);
                Ok((seat.role, write, connects))
            })
            .await??;
        let who = Some((participant, role));
        if let Some(label) = incident.as_deref().map(clean_label)
            && !label.is_empty()
        {
            self.event(session, now, who, PresenceKind::Incident, Some(label))
                .await?;
        }
        let kind = match write {
            Write::Nothing => return Ok(()),
            Write::Heartbeat => PresenceKind::MediaHeartbeat,
            Write::Change if report.connected => PresenceKind::MediaConnected,
            Write::Change => PresenceKind::MediaDisconnected,
        };
        let connected = (kind == PresenceKind::MediaConnected && connects)
            .then_some(DomainEvent::CallConnected { session });
        let mut event = new_event(now, who, kind, Some(report.to_detail()));
        if let Some(c) = &connected {
            event.announce = self.cfg.webhooks.of(now, c).await;
        }
        self.event_announced(session, event).await?;
        self.rooms
            .update(session, |r| {
                if let Some(seat) = r.seats.get_mut(&participant) {
                    seat.media = report.connected;
                    seat.report = Some(report);
                    seat.evidence_at = Some(now);
                }
            })
            .await?;
        if let Some(connected) = connected {
            self.events.emit(now, connected).await;
        }
        Ok(())
    }

    /// A rejoining client said its media ended `media_lost_ago_ms` ago: recorded at that
    /// instant (before the rejoin event), for a seat that was in the call.
    pub(crate) async fn media_lost_on_rejoin(
        &self,
        session: SessionId,
        who: (ParticipantId, Role),
        media_lost_ago_ms: Option<u64>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let Some(ago) = media_lost_ago_ms else {
            return Ok(());
        };
        let at = dated(now, Some(ago));
        let appended = self
            .append(session, at, Some(who), PresenceKind::MediaLost, None)
            .await?;
        if appended == telesoin_store::Appended::SeatLeft {
            // The seat left meanwhile: its media ended then, nothing more to record.
            return Ok(());
        }
        // The next report is a change, whatever the seat said before.
        self.rooms
            .update(session, |r| {
                if let Some(seat) = r.seats.get_mut(&who.0) {
                    seat.media = false;
                    seat.report = None;
                }
            })
            .await?;
        Ok(())
    }

    /// `hangup{ago_ms?}`: the kiné's ends the session at the instant it was made; anyone
    /// else's takes this seat out of the room at once (its admission stands for a return).
    pub async fn hangup_at(
        &self,
        session: SessionId,
        participant: ParticipantId,
        ago_ms: Option<u64>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let at = dated(now, ago_ms);
        let role = self
            .role_of(session, participant)
            .await?
            .ok_or(RefusalCode::NotAllowed)?;
        if role == Role::Kine {
            return match self.end_session_at(session, "hangup", at, now).await {
                Ok(_) => Ok(()),
                Err(RefusalCode::Unavailable) if self.health().writes_failing() => {
                    // The store cannot write the end: kept, and applied as of `at` when it can.
                    self.keep_pending_end(session, at);
                    Err(RefusalCode::Unavailable)
                }
                Err(code) => Err(code),
            };
        }
        self.depart(session, participant, role, "hangup", at, now)
            .await
    }

    /// `leave{ago_ms?}`: any seat, the kiné's included, leaves the room without ending the
    /// session; its interval closes at once and it may come back (straight to `admitted`).
    pub async fn leave(
        &self,
        session: SessionId,
        participant: ParticipantId,
        ago_ms: Option<u64>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let at = dated(now, ago_ms);
        let role = self
            .role_of(session, participant)
            .await?
            .ok_or(RefusalCode::NotAllowed)?;
        self.depart(session, participant, role, "leave", at, now)
            .await
    }

    /// The seat leaves: `left{reason}` at `at`, the seat removed, the sender acked with
    /// `ended{reason, provisional seconds}` and close 1000, the others told.
    async fn depart(
        &self,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        reason: &'static str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        self.event(
            session,
            at,
            Some((participant, role)),
            PresenceKind::Left,
            Some(reason.into()),
        )
        .await?;
        let (attachment, notify, lobby) = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.remove(&participant);
                let lobby: Vec<ParticipantId> = room
                    .seats
                    .iter()
                    .filter(|(_, s)| !s.admitted && s.attachment.is_some())
                    .map(|(p, _)| *p)
                    .collect();
                (
                    seat.and_then(|s| s.attachment),
                    room.admitted_others(participant),
                    lobby,
                )
            })
            .await?;
        let billable = self.provisional_seconds(session, now).await.unwrap_or(0);
        self.send(
            participant,
            text(&ServerMsg::Ended {
                billable_seconds: billable,
                reason: reason.to_owned(),
            }),
        )
        .await;
        self.send(
            participant,
            Outbound::Close {
                code: close::NORMAL,
                reason,
            },
        )
        .await;
        if let Some(a) = attachment {
            self.bus.detach(a).await;
        }
        self.peer_left(&notify, participant, false).await;
        if role == Role::Kine {
            // The lobby waits for the kiné again, and is told so.
            for p in lobby {
                self.forget_waiting(session, p).await;
                self.evaluate(session, p, now).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_relative_account_is_dated_in_the_past_and_bounded() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).single().expect("valid");
        let ms = Duration::milliseconds;
        assert_eq!(dated(now, None), now);
        assert_eq!(dated(now, Some(0)), now);
        assert_eq!(dated(now, Some(1_500)), now - ms(1_500));
        assert_eq!(dated(now, Some(u64::MAX)), now - ms(MAX_AGO_MS as i64));
        assert_eq!(clean_label("ice_failed<script>"), "ice_failedscript");
    }
}
