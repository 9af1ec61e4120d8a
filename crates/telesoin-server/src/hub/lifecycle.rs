//! Lifecycle: ending, finalizing (exactly once), cancelling, recovery after a restart, the
//! sweep of closed windows, and the drain.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use telesoin_bus::{Attachment, Outbound};
use telesoin_core::billing::{self, PresenceKind};
use telesoin_core::model::SessionStatus;
use telesoin_core::{ParticipantId, RefusalCode, SessionId};
use telesoin_proto::signal::ServerMsg;

use telesoin_store::{Announcement, NewMessage};

use crate::error::refusal_body;
use crate::events::DomainEvent;
use crate::reach::outbox::STOPPED_BY_CLOSE;

use super::{Hub, HubResult, close, store_down, text};

impl Hub {
    /// Billable seconds so far (for a live session) or as finalized.
    pub async fn provisional_seconds(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> HubResult<i64> {
        let events: Vec<_> = self
            .store
            .events(session)
            .await
            .map_err(store_down)?
            .iter()
            .map(|e| e.presence())
            .collect();
        Ok(billing::billable_seconds(&events, &self.cfg.billing, now))
    }

    /// Ends the session: the `ended` event, then the single finalization, then everyone is told.
    /// Returns the billable seconds of the record.
    pub async fn end_session(
        &self,
        session: SessionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> HubResult<i64> {
        self.end_session_at(session, reason, now, now).await
    }

    /// Ends the session as of `at` (a kiné's hang-up replayed after a reconnection is dated
    /// when it was made): the `ended` event is written at `at`, the rest happens `now`.
    pub async fn end_session_at(
        &self,
        session: SessionId,
        reason: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> HubResult<i64> {
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        let billable = match row.session.status {
            SessionStatus::Cancelled => return Err(RefusalCode::SessionCancelled),
            SessionStatus::Ended => row.billable_seconds.unwrap_or(0),
            SessionStatus::Scheduled | SessionStatus::Live => {
                self.event(
                    session,
                    at,
                    None,
                    PresenceKind::Ended,
                    Some(reason.chars().take(32).collect()),
                )
                .await?;
                self.finalize(session, reason, now).await?
            }
        };
        self.store
            .revoke_session_links(session, now)
            .await
            .map_err(store_down)?;
        self.close_room(
            session,
            &ServerMsg::Ended {
                billable_seconds: billable,
                reason: reason.to_owned(),
            },
            close::ENDED,
        )
        .await;
        Ok(billable)
    }

    /// Computes billable time from the persisted events and finalizes, exactly once.
    async fn finalize(
        &self,
        session: SessionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> HubResult<i64> {
        let events: Vec<_> = self
            .store
            .events(session)
            .await
            .map_err(store_down)?
            .iter()
            .map(|e| e.presence())
            .collect();
        let ended_at = billing::ended_at(&events).unwrap_or(now);
        let billable = billing::billable_seconds(&events, &self.cfg.billing, ended_at);
        // The class is fixed first (it depends on the visits and prescriptions, not on the
        // end), so that `session.ended`, written with the finalization, carries it.
        if let Err(e) =
            crate::records::fix_class(self.store.as_ref(), session, self.cfg.in_person_rule).await
        {
            tracing::warn!(error = %e, "class not fixed at finalization");
        }
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        let announcement = Announcement::new(
            "session.ended",
            now,
            serde_json::json!({
                "billable_seconds": billable,
                "billing_class": row.billing_class,
                "act_code": row.session.act_code,
                "reason": reason,
            }),
        );
        if self
            .store
            .finalize_announced(session, ended_at, billable, &announcement, now)
            .await
            .map_err(|e| self.write_failed(Some(session), now, e))?
        {
            tracing::info!(session = %session, billable_seconds = billable, "session finalized");
            let ended = DomainEvent::SessionEnded {
                session,
                billable_seconds: billable,
                reason: reason.to_owned(),
            };
            self.events.emit(now, ended).await;
            return Ok(billable);
        }
        // Someone else finalized first: theirs is the record.
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        Ok(row.billable_seconds.unwrap_or(billable))
    }

    /// Cancels a session: its links die at once and anyone connected, lobby included, is refused.
    /// The cancellation, its presence event, the links' revocation, the reminders stopped,
    /// `notices` (the patient's notice) and the webhooks are one transaction
    /// (`OutboundStore::cancel_announced`).
    pub async fn cancel_session(
        &self,
        session: SessionId,
        notices: &[NewMessage],
        now: DateTime<Utc>,
    ) -> HubResult<bool> {
        // The `cancelled` presence event is written in the same transaction.
        let moved = self
            .store
            .cancel_announced(session, &STOPPED_BY_CLOSE, notices, now)
            .await
            .map_err(|e| self.write_failed(Some(session), now, e))?;
        self.store
            .revoke_session_links(session, now)
            .await
            .map_err(store_down)?;
        let refusal = ServerMsg::Refused(refusal_body(
            RefusalCode::SessionCancelled,
            serde_json::Value::Null,
        ));
        self.close_room(session, &refusal, close::REFUSED).await;
        Ok(moved)
    }

    async fn close_room(&self, session: SessionId, msg: &ServerMsg, code: u16) {
        let seats: Vec<(ParticipantId, Option<Attachment>)> = self
            .rooms
            .update(session, |r| {
                std::mem::take(&mut r.seats)
                    .into_iter()
                    .map(|(p, s)| (p, s.attachment))
                    .collect()
            })
            .await
            .unwrap_or_default();
        let frame = text(msg);
        for (_, a) in seats {
            // To the very socket the room knew, wherever it is: a later one is not this seat's.
            if let Some(a) = a {
                self.send_to(a, frame.clone()).await;
                self.send_to(
                    a,
                    Outbound::Close {
                        code,
                        reason: "session closed",
                    },
                )
                .await;
                self.bus.detach(a).await;
            }
        }
    }

    /// After a restart: finalize sessions whose end was persisted, and mark the others so that
    /// billing knows the server was away. In a cluster the other nodes still serve the live
    /// sessions: only those whose end was persisted are finalized (a node lost mid-call is noted
    /// when its seats are taken over, as `node_lost`).
    pub async fn recover(&self, now: DateTime<Utc>) -> HubResult<usize> {
        let live = self.store.live_sessions().await.map_err(store_down)?;
        for row in &live {
            let events: Vec<_> = self
                .store
                .events(row.session.id)
                .await
                .map_err(store_down)?
                .iter()
                .map(|e| e.presence())
                .collect();
            if billing::ended_at(&events).is_some() {
                self.finalize(row.session.id, "recovered", now).await?;
            } else if !self.is_cluster() {
                self.event(row.session.id, now, None, PresenceKind::NodeRestart, None)
                    .await?;
            }
        }
        Ok(live.len())
    }

    /// Ends live sessions whose window has closed and that nobody is connected to.
    pub async fn sweep(&self, now: DateTime<Utc>) -> HubResult<()> {
        // Only the sessions due: with thousands under way, reading and decoding them all every
        // 15 s held a worker for a third of a second (issue 15).
        let due = self
            .store
            .live_sessions_closed_by(now)
            .await
            .map_err(store_down)?;
        for row in due {
            let attached: Vec<Attachment> = self
                .rooms
                .read(row.session.id, |r| {
                    r.seats.values().filter_map(|s| s.attachment).collect()
                })
                .await?;
            // A socket on a node that is gone holds nobody.
            let mut empty = true;
            for a in attached {
                if a.node == self.bus.node()
                    || self.bus.node_alive(a.node).await.map_err(|e| {
                        tracing::warn!(error = %e, "bus unavailable: sweep postponed");
                        RefusalCode::Unavailable
                    })?
                {
                    empty = false;
                    break;
                }
            }
            if empty {
                self.end_session(row.session.id, "window_closed", now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Stop taking joins (/readyz says `draining`); sockets stay until [`Hub::drain`].
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Stop taking joins and tell every socket of this node to reconnect (elsewhere or after
    /// the restart): each socket task hears it and sends `error{shutting_down}` and close 1001
    /// itself, seated or not, whatever the shared state still knows. The other nodes' sockets
    /// stay where they are.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.going_away.send_replace(true);
    }

    /// What a socket task watches to hear that the node is going away.
    pub fn going_away(&self) -> tokio::sync::watch::Receiver<bool> {
        self.going_away.subscribe()
    }

    /// Counts a socket until the returned guard is dropped.
    pub fn socket_opened(&self) -> super::SocketGuard {
        self.sockets.send_modify(|n| *n += 1);
        super::SocketGuard(self.sockets.clone())
    }

    /// Returns once no socket task of this node is left.
    pub async fn sockets_closed(&self) {
        let mut open = self.sockets.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }
}
