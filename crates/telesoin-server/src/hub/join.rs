//! Joining: linking a token to its seat, seating it, and asking telesoin-core who may enter
//! (lobby, waiting, admission, refusal, attestation, consent).

use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use telesoin_bus::{Attachment, Outbound};
use telesoin_core::admission::{self, AdmissionInput, Decision};
use telesoin_core::billing::PresenceKind;
use telesoin_core::claims::VerifiedClaims;
use telesoin_core::model::{Companion, Consent, ConsentRecorder, Role, SessionStatus};
use telesoin_core::representation::{self, ConsentChannel, ConsentGiver};
use telesoin_core::{ParticipantId, PatientId, RefusalCode, SessionId, acts};
use telesoin_proto::signal::{self as wire, ServerMsg};
use telesoin_store::{Appended, LinkedSession, NewEvent, SessionRow};

use crate::error::refusal_body;
use crate::events::DomainEvent;

use super::{
    Hub, HubResult, JoinTimings, Joined, PatientReads, Seat, close, new_event, store_down, text,
    wire_role, wire_wait,
};

/// A link matches its seat and is unrevoked; a link of a session that is over says so
/// (`session_ended`/`session_cancelled`) rather than just "revoked".
fn check_link(
    claims: &VerifiedClaims,
    seat: &telesoin_core::claims::IssuedSeat,
    row: &SessionRow,
    now: DateTime<Utc>,
) -> HubResult<()> {
    if seat.revoked && row.session.status.is_closed() && seat.session == claims.session() {
        admission::session_open(&row.session, now)?;
    }
    telesoin_core::claims::check_seat(claims, seat)?;
    Ok(())
}

/// What telesoin-core decided for a seat (see [`Hub::judge`]).
struct Judged {
    role: Role,
    decision: Decision,
    /// The seat counts as admitted already.
    already: bool,
}

impl Hub {
    /// The session a verified link belongs to, once the link is known, unrevoked and matches
    /// its seat. A link of a session that is over says so (`session_ended`/`session_cancelled`)
    /// rather than just "revoked". Shared by the join and the join page's preview.
    pub async fn linked_session(
        &self,
        claims: &VerifiedClaims,
        now: DateTime<Utc>,
    ) -> HubResult<SessionRow> {
        let seat = self
            .store
            .link(claims.jti())
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::TokenInvalid)?;
        let row = self
            .store
            .session(seat.session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        check_link(claims, &seat, &row, now)?;
        Ok(row)
    }

    /// How long this verified participant must wait before joining again, when its last join
    /// was refused `rejoin_too_frequent` (nothing is taken).
    pub fn rejoin_wait(&self, claims: &VerifiedClaims) -> Option<std::time::Duration> {
        self.rejoins.wait(claims.participant(), claims.jti())
    }

    /// Seats a verified participant. The returned welcome is sent first; then [`Hub::evaluate`].
    pub async fn join(
        &self,
        claims: &VerifiedClaims,
        sink: telesoin_bus::queue::Sender,
        media_lost_ago_ms: Option<u64>,
        now: DateTime<Utc>,
    ) -> HubResult<Joined> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(RefusalCode::ShuttingDown);
        }
        if self.health().writes_failing() {
            // Nobody is seated whose presence could not be recorded.
            return Err(RefusalCode::Unavailable);
        }
        // Bounded per seat and per link, before any read or write: a client rejoining in a
        // loop grows neither the record nor the load.
        if self
            .rejoins
            .take(claims.participant(), claims.jti())
            .is_err()
        {
            return Err(RefusalCode::RejoinTooFrequent);
        }
        let started = std::time::Instant::now();
        let mut timings = JoinTimings::default();
        // The link, its session, the kiné's name, the HN price and its acceptance, the seat's
        // last state and, on the patient's side, the patient, visits and consents: one read. A
        // minor's side is asked for the representative's consent and a named parent; the first
        // evaluation decides with these facts.
        let role = claims.role();
        let LinkedSession {
            seat,
            row,
            kine_name,
            hn_price_cents,
            hn_accepted_cents,
            seat_state,
            facts,
        } = self
            .store
            .link_session(claims.jti(), role != Role::Kine)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::TokenInvalid)?;
        timings.link = started.elapsed();
        check_link(claims, &seat, &row, now)?;
        admission::room_open(role, &row.session, now)?;
        let act = acts::find(&row.session.act_code);
        let participant = claims.participant();
        let facts = facts.map(|facts| PatientReads {
            facts,
            price: crate::records::hn_price_acceptance_of(&row, hn_price_cents, hn_accepted_cents),
        });
        let minor = facts
            .as_ref()
            .is_some_and(|f| representation::is_minor(&f.facts.patient.patient, row.session.day()));

        // A seat this node does not hold may still be admitted: the server restarted, or another
        // node held it. Its persisted state says so (one row, kept with every event: admitted,
        // and not left or refused since but by a hang-up or a leave).
        let known = self
            .rooms
            .read(row.session.id, |r| r.seats.contains_key(&participant))
            .await?;
        // A session still `scheduled` never admitted anyone (the first admission makes it
        // `live`): nothing to use for the first seat of a session.
        let persisted = if known || row.session.status == SessionStatus::Scheduled {
            None
        } else {
            seat_state
        };
        let admitted_before = persisted.as_ref().is_some_and(|s| s.admitted);
        // After a `left`, the media of the seat is over already: nothing to say about it.
        let left_before = persisted
            .as_ref()
            .is_some_and(|s| s.last_kind == PresenceKind::Left);
        let (attachment, previous) = self.bus.attach(participant, sink).await.map_err(|e| {
            tracing::warn!(error = %e, "bus unavailable: refusing");
            RefusalCode::Unavailable
        })?;
        if let Some(prev) = previous {
            // Another device (or a stale socket) held the seat: it is told why, then closed.
            let _ = prev.try_send(text(&ServerMsg::Replaced));
            let _ = prev.try_send(Outbound::Close {
                code: close::REPLACED,
                reason: "replaced",
            });
        }
        let seated = self
            .rooms
            .update(row.session.id, |room| {
                let mut before = None;
                let resumed = match room.seats.get_mut(&participant) {
                    Some(s) => {
                        before = s.attachment.replace(attachment);
                        s.lost_at = None;
                        s.waiting = None;
                        true
                    }
                    None => {
                        room.seats.insert(
                            participant,
                            Seat {
                                role,
                                attachment: Some(attachment),
                                admitted: admitted_before,
                                admitted_by_kine: admitted_before,
                                attested: None,
                                media: false,
                                report: None,
                                evidence_at: None,
                                lost_at: None,
                                waiting: None,
                            },
                        );
                        admitted_before
                    }
                };
                (resumed, room.peers_except(participant), before)
            })
            .await;
        let (resumed, peers, before) = match seated {
            Ok(v) => v,
            Err(code) => {
                self.bus.detach(attachment).await;
                return Err(code);
            }
        };
        if let Some(old) = before.filter(|o| o.node != attachment.node) {
            // The seat was attached on another node: tell that socket it was replaced, or, if
            // that node is gone, note the incident (the record says why the call moved).
            match self.bus.node_alive(old.node).await {
                Ok(true) => {
                    let _ = self.bus.deliver_to(old, text(&ServerMsg::Replaced)).await;
                    let close = Outbound::Close {
                        code: close::REPLACED,
                        reason: "replaced",
                    };
                    let _ = self.bus.deliver_to(old, close).await;
                }
                Ok(false) => {
                    tracing::warn!(session = %row.session.id, node = old.node, "seat taken over from a lost node");
                    let who = Some((participant, role));
                    let detail = Some("node_lost".to_owned());
                    if let Err(code) = self
                        .event(row.session.id, now, who, PresenceKind::Incident, detail)
                        .await
                    {
                        self.leave_seat(row.session.id, attachment).await;
                        return Err(code);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "node liveness unknown"),
            }
        }
        if (resumed || admitted_before) && !left_before {
            // A seat that was in the call says when its media ended, if it did.
            let who = (participant, role);
            if let Err(code) = self
                .media_lost_on_rejoin(row.session.id, who, media_lost_ago_ms, now)
                .await
            {
                self.leave_seat(row.session.id, attachment).await;
                return Err(code);
            }
        }
        let who = Some((participant, role));
        // A return after a `left` (a hang-up or a leave keep the admission) is a new `joined`:
        // nothing of a seat follows its `left` but that.
        let kind = if resumed && !left_before {
            PresenceKind::Reconnected
        } else {
            PresenceKind::Joined
        };
        // A first join the core admits at once (the kiné, a patient the facts just read let in)
        // writes its `admitted` with its `joined`, in one transaction: one commit and one wait
        // for the writer, not two. The welcome still goes first, then `admitted` (after_join).
        let admit = kind == PresenceKind::Joined
            && matches!(
                self.judge(&row, participant, facts.as_ref(), now).await,
                Ok(Some(Judged {
                    decision: Decision::Admit,
                    already: false,
                    ..
                }))
            );
        let mut resumed = resumed;
        let mut admitted = false;
        timings.seat = started.elapsed().saturating_sub(timings.link);
        let writing = std::time::Instant::now();
        let appended = if admit {
            let joined = new_event(now, who, kind, None);
            let event = self.admitted_event(&row, participant, role, now).await;
            self.append_all(row.session.id, vec![joined, event])
                .await
                .map(|out| {
                    // `joined` is never refused by the seat rule; an `admitted` that was (a `left`
                    // in between: not possible within one transaction) leaves it to after_join.
                    admitted = matches!(out[..], [_, Appended::Written(_)]);
                    out.first().copied().unwrap_or(Appended::SeatLeft)
                })
        } else {
            self.append(row.session.id, now, who, kind, None).await
        };
        let written = match appended {
            Ok(Appended::SeatLeft) if resumed => {
                // The record says the seat left meanwhile (its grace expired, it hung up on
                // another node): this is a new join, and the seat is asked again who it is.
                resumed = false;
                let _ = self
                    .rooms
                    .update(row.session.id, |room| {
                        if let Some(s) = room.seats.get_mut(&participant) {
                            s.admitted = false;
                            s.admitted_by_kine = false;
                        }
                    })
                    .await;
                self.event(row.session.id, now, who, PresenceKind::Joined, None)
                    .await
                    .map(|_| ())
            }
            // A join's own events expect nothing of the seat: never superseded.
            Ok(Appended::SeatLeft | Appended::Superseded) => Err(RefusalCode::Unavailable),
            Ok(Appended::Written(_)) => Ok(()),
            Err(code) => Err(code),
        };
        if let Err(code) = written {
            self.leave_seat(row.session.id, attachment).await;
            return Err(code);
        }
        timings.write = writing.elapsed();
        let welcome = ServerMsg::Welcome {
            protocol: telesoin_proto::PROTOCOL_VERSION,
            participant: participant.0,
            role: wire_role(role),
            session: wire::SessionInfo {
                session: row.session.id.0,
                kine_name,
                starts_at: row.session.starts_at,
                act_code: row.session.act_code.clone(),
                act_label: act.map(|a| a.label.to_owned()).unwrap_or_default(),
                billing_class: row.billing_class.clone(),
                consent_text_version: telesoin_core::model::CONSENT_TEXT_VERSION.to_owned(),
                minor,
            },
            // TURN credentials expire with the link: never later than the appointment window.
            ice_servers: self
                .cfg
                .ice
                .servers_for(participant, row.session.window_end + Duration::minutes(10)),
            ice_transport_policy: if row.relay_only { "relay" } else { "all" }.to_owned(),
            peers,
            resumed,
            heartbeat_seconds: u32::try_from(self.cfg.heartbeat.num_seconds()).unwrap_or(10),
        };
        Ok(Joined {
            attachment,
            session: row.session.id,
            role,
            welcome,
            resumed,
            admitted,
            row,
            facts,
            timings,
        })
    }

    /// Removes a seat that never got going (its join failed half way).
    async fn leave_seat(&self, session: SessionId, a: Attachment) {
        self.bus.detach(a).await;
        let _ = self
            .rooms
            .update(session, |room| {
                if room
                    .seats
                    .get(&a.participant)
                    .is_some_and(|s| s.attachment == Some(a) && !s.admitted)
                {
                    room.seats.remove(&a.participant);
                }
            })
            .await;
    }

    /// Asks telesoin-core whether this seat may enter now, and acts on the answer.
    pub async fn evaluate(
        &self,
        session: SessionId,
        participant: ParticipantId,
        now: DateTime<Utc>,
    ) {
        self.evaluate_with(session, participant, None, None, now)
            .await;
    }

    /// [`Hub::evaluate`] with the session's row and the patient's facts when the caller just
    /// read them (the join).
    async fn evaluate_with(
        &self,
        session: SessionId,
        participant: ParticipantId,
        row: Option<&SessionRow>,
        facts: Option<&PatientReads>,
        now: DateTime<Utc>,
    ) {
        match self
            .try_evaluate(session, participant, row, facts, now)
            .await
        {
            Ok(()) => {}
            // The store failed: say so and keep the seat; the client may retry.
            Err(code) => self.send_error(participant, code).await,
        }
    }

    /// Tells a seat that what it asked for failed (`error{code}`); the seat stays.
    async fn send_error(&self, participant: ParticipantId, code: RefusalCode) {
        self.send(
            participant,
            text(&ServerMsg::Error(refusal_body(
                code,
                serde_json::Value::Null,
            ))),
        )
        .await;
    }

    async fn try_evaluate(
        &self,
        session: SessionId,
        participant: ParticipantId,
        row: Option<&SessionRow>,
        facts: Option<&PatientReads>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let row = match row {
            Some(r) => r.clone(),
            None => self
                .store
                .session(session)
                .await
                .map_err(store_down)?
                .ok_or(RefusalCode::SessionNotFound)?,
        };
        let Some(Judged {
            role,
            decision,
            already,
        }) = self.judge(&row, participant, facts, now).await?
        else {
            return Ok(());
        };
        match decision {
            Decision::Admit if already => Ok(()),
            Decision::Admit => self.admit_seat(&row, participant, role, now).await,
            Decision::Refuse(code) => {
                self.refuse_seat(session, participant, role, code, now)
                    .await;
                if already && role == Role::Patient {
                    // An admitted patient refused (consent withdrawn): the call is over.
                    self.end_session(session, "consent_withdrawn", now).await?;
                }
                Ok(())
            }
            Decision::Wait(_) | Decision::NeedsAttestation(_) if already => Ok(()),
            Decision::Wait(reason) => {
                self.wait_seat(session, participant, role, wire_wait(reason), now)
                    .await
            }
            Decision::NeedsAttestation(c) => {
                let reason = match c {
                    Companion::Parent => wire::WaitReason::AttestationParent,
                    Companion::Aidant => wire::WaitReason::AttestationAidant,
                };
                self.wait_seat(session, participant, role, reason, now)
                    .await
            }
        }
    }

    /// What telesoin-core decides for this seat now, from the room and the store (reads only,
    /// nothing written or sent); None when the seat is not in the room or has no socket.
    async fn judge(
        &self,
        row: &SessionRow,
        participant: ParticipantId,
        facts: Option<&PatientReads>,
        now: DateTime<Utc>,
    ) -> HubResult<Option<Judged>> {
        let session = row.session.id;
        let seat = self
            .rooms
            .read(session, |room| {
                let seat = room.seats.get(&participant)?;
                seat.attachment?;
                Some((
                    seat.role,
                    seat.attested,
                    seat.admitted_by_kine,
                    room.kine_present(),
                    seat.admitted,
                ))
            })
            .await?;
        let Some((role, attested, admitted_by_kine, kine_present, already)) = seat else {
            return Ok(None);
        };
        let decision = if role == Role::Kine {
            match admission::room_open(role, &row.session, now) {
                Ok(()) => Decision::Admit,
                Err(c) => Decision::Refuse(c),
            }
        } else {
            let PatientReads { facts, price } = match facts {
                Some(f) => f.clone(),
                None => self.patient_reads(row).await?,
            };
            let patient = facts.patient;
            let visits: Vec<_> = facts.visits.into_iter().map(|v| v.visit).collect();
            let consents: Vec<_> = facts.consents.into_iter().map(|c| c.consent).collect();
            admission::decide(&AdmissionInput {
                now,
                role,
                session: &row.session,
                patient: &patient.patient,
                visits: &visits,
                consents: &consents,
                rule: self.cfg.in_person_rule,
                attested,
                price,
                kine_present,
                admitted_by_kine,
            })
        };
        Ok(Some(Judged {
            role,
            decision,
            already,
        }))
    }

    /// What admission reads of the patient's side now (an evaluation after the join's).
    async fn patient_reads(&self, row: &SessionRow) -> HubResult<PatientReads> {
        let facts = self
            .store
            .admission_facts(row.session.kine, row.session.patient)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        // HN: the price shown on the join page, accepted there before admission.
        let to_accept = crate::records::hn_price_to_accept(self.store.as_ref(), row)
            .await
            .map_err(store_down)?;
        let accepted = match to_accept {
            Some(_) => self
                .store
                .hn_price_acceptance(row.session.id)
                .await
                .map_err(store_down)?
                .map(|a| a.price_cents),
            None => None,
        };
        Ok(PatientReads {
            facts,
            price: admission::PriceAcceptance {
                to_accept_cents: to_accept,
                accepted_cents: accepted,
            },
        })
    }

    /// The `admitted` event of a seat, with its webhook (written in its transaction, or not at
    /// all) and, for the first admission of a session still `scheduled`, the session's opening
    /// (`scheduled` -> `live` in the same transaction).
    async fn admitted_event(
        &self,
        row: &SessionRow,
        participant: ParticipantId,
        role: Role,
        now: DateTime<Utc>,
    ) -> NewEvent {
        let announced = DomainEvent::ParticipantAdmitted {
            session: row.session.id,
            participant,
            role,
        };
        let mut event = new_event(now, Some((participant, role)), PresenceKind::Admitted, None);
        event.announce = self.cfg.webhooks.of(now, &announced).await;
        event.opens_session = row.session.status == SessionStatus::Scheduled;
        event
    }

    async fn admit_seat(
        &self,
        row: &SessionRow,
        participant: ParticipantId,
        role: Role,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let session = row.session.id;
        let event = self.admitted_event(row, participant, role, now).await;
        let admitted = self.append_announced(session, event).await?;
        if admitted == Appended::SeatLeft {
            // The seat left (a hang-up) while it was being admitted: it is not let in, and
            // nothing of it is recorded after its `left`.
            return Ok(());
        }
        self.seat_admitted(session, participant, role, now).await
    }

    /// What follows a written `admitted`: the seat counts as admitted, the audit trail hears
    /// it, and the seat and its peers are told. The audit row is queued first (its place in the
    /// chain is taken before anyone is told) but its commit is not waited for, here or later:
    /// the `admitted` event, the evidence, is committed already, and a crash before the audit
    /// commit loses that row whether the seat was told or not.
    async fn seat_admitted(
        &self,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        self.rooms
            .update(session, |r| {
                if let Some(seat) = r.seats.get_mut(&participant) {
                    seat.admitted = true;
                }
            })
            .await?;
        let announced = DomainEvent::ParticipantAdmitted {
            session,
            participant,
            role,
        };
        // The audit row takes its place in the chain (the emit's first poll queues it) before
        // the first frame goes; its commit goes on in a task of its own. Waiting for it here
        // held the seat's own frames too: the socket writes what the hub queued for it only
        // once the join is done, so `admitted` reached the seat after the audit commit.
        let events = self.events.clone();
        let mut audit = Box::pin(async move { events.emit(now, announced).await });
        let queued =
            std::future::poll_fn(|cx| std::task::Poll::Ready(audit.as_mut().poll(cx).is_pending()))
                .await;
        if queued {
            // Committed before the process exits: see [`Events::flush`].
            tokio::spawn(audit);
        }
        self.announce(session, participant, now).await;
        Ok(())
    }

    /// Tells an admitted seat who is in the call, and the call that it is in. A reconnecting seat
    /// goes through here again, so the kiné re-offers (with an ICE restart).
    async fn announce(&self, session: SessionId, participant: ParticipantId, now: DateTime<Utc>) {
        let told = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.get_mut(&participant)?;
                if !seat.admitted {
                    return None;
                }
                seat.waiting = None;
                let role = seat.role;
                let me = wire::PeerInfo {
                    participant: participant.0,
                    role: wire_role(role),
                    admitted: true,
                };
                let peers: Vec<_> = room
                    .peers_except(participant)
                    .into_iter()
                    .filter(|p| p.admitted)
                    .collect();
                let notify: Vec<_> = room
                    .admitted_others(participant)
                    .into_iter()
                    .map(|p| (p, me.clone()))
                    .collect();
                let lobby: Vec<_> = room
                    .seats
                    .iter()
                    .filter(|(p, s)| **p != participant && !s.admitted && s.attachment.is_some())
                    .map(|(p, _)| *p)
                    .collect();
                Some((role, peers, notify, lobby))
            })
            .await;
        let Ok(Some((role, peers, notify, lobby))) = told else {
            return;
        };
        self.send(participant, text(&ServerMsg::Admitted { peers }))
            .await;
        for (p, me) in notify {
            self.send(p, text(&ServerMsg::PeerJoined { peer: me }))
                .await;
        }
        if role == Role::Kine {
            // The kiné's arrival changes what everyone in the lobby waits for.
            for p in lobby {
                // Forget what the seat was last told, so that the kiné hears it too.
                self.forget_waiting(session, p).await;
                Box::pin(self.evaluate(session, p, now)).await;
            }
        }
    }

    /// Right after `welcome`: a seat that kept its admission across a reconnect is announced
    /// again; any other is evaluated.
    pub async fn after_join(&self, joined: &Joined, now: DateTime<Utc>) {
        let (session, participant) = (joined.session, joined.attachment.participant);
        if joined.admitted {
            // Its `admitted` was written with its `joined`.
            if let Err(code) = self
                .seat_admitted(session, participant, joined.role, now)
                .await
            {
                self.send_error(participant, code).await;
            }
            return;
        }
        let admitted = self
            .rooms
            .read(session, |r| {
                r.seats.get(&participant).is_some_and(|s| s.admitted)
            })
            .await
            .unwrap_or(false);
        if admitted {
            self.announce(session, participant, now).await;
        } else {
            // The join read the session a moment ago: not again.
            self.evaluate_with(
                session,
                participant,
                Some(&joined.row),
                joined.facts.as_ref(),
                now,
            )
            .await;
        }
    }

    /// Forgets what a seat was last told to wait for, so that it is told (and the kiné too) again.
    pub(super) async fn forget_waiting(&self, session: SessionId, participant: ParticipantId) {
        let _ = self
            .rooms
            .update(session, |r| {
                if let Some(seat) = r.seats.get_mut(&participant) {
                    seat.waiting = None;
                }
            })
            .await;
    }

    async fn wait_seat(
        &self,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        reason: wire::WaitReason,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let changed = self
            .rooms
            .update(session, |room| {
                let kine = room.kine_seat().filter(|_| room.kine_present());
                let seat = room.seats.get_mut(&participant)?;
                if seat.waiting == Some(reason) {
                    return None;
                }
                seat.waiting = Some(reason);
                Some(kine)
            })
            .await?;
        let Some(kine) = changed else {
            return Ok(());
        };
        let detail = serde_json::to_value(reason)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        let reason_name = match reason {
            wire::WaitReason::KineAbsent => "kine_absent",
            wire::WaitReason::AwaitingAdmission => "awaiting_admission",
            wire::WaitReason::ConsentRequired => "consent_required",
            wire::WaitReason::AttestationParent => "attestation_parent",
            wire::WaitReason::AttestationAidant => "attestation_aidant",
        };
        let waiting = DomainEvent::ParticipantWaiting {
            session,
            participant,
            role,
            reason: reason_name,
        };
        let mut event = new_event(
            now,
            Some((participant, role)),
            PresenceKind::Waiting,
            detail,
        );
        event.announce = self.cfg.webhooks.of(now, &waiting).await;
        self.event_announced(session, event).await?;
        self.events.emit(now, waiting).await;
        self.send(participant, text(&ServerMsg::Waiting { reason }))
            .await;
        if let Some(k) = kine {
            self.send(
                k,
                text(&ServerMsg::LobbyWaiting {
                    participant: participant.0,
                    role: wire_role(role),
                    reason,
                }),
            )
            .await;
        }
        Ok(())
    }

    async fn refuse_seat(
        &self,
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        code: RefusalCode,
        now: DateTime<Utc>,
    ) {
        let was_admitted = self
            .rooms
            .read(session, |r| {
                r.seats.get(&participant).is_some_and(|s| s.admitted)
            })
            .await
            .unwrap_or(false);
        let who = Some((participant, role));
        let code_detail = Some(code.code().to_owned());
        let refused = DomainEvent::AdmissionRefused {
            session,
            participant,
            role,
            code: code.code(),
        };
        // The refusal (with its webhook), then (for a seat that was in the call) its `left`:
        // nothing of a seat is recorded after its `left`. Neither is ever dropped.
        let mut event = new_event(now, who, PresenceKind::Refused, code_detail.clone());
        event.announce = self.cfg.webhooks.of(now, &refused).await;
        self.event_kept_announced(session, event).await;
        if was_admitted {
            // The seat is over: its connected time stops counting now.
            self.event_kept(session, now, who, PresenceKind::Left, code_detail)
                .await;
        }
        self.events.emit(now, refused).await;
        // Out of the room before the seat hears it: in a cluster, every node has dropped its
        // copy of the room before the `refused` reaches the socket (see `crate::rooms`).
        let removed = self
            .rooms
            .update(session, |room| {
                let seat = room.seats.remove(&participant);
                let notify = room.admitted_others(participant);
                (seat.and_then(|s| s.attachment), notify)
            })
            .await;
        self.send(
            participant,
            text(&ServerMsg::Refused(refusal_body(
                code,
                serde_json::Value::Null,
            ))),
        )
        .await;
        self.send(
            participant,
            Outbound::Close {
                code: close::REFUSED,
                reason: "refused",
            },
        )
        .await;
        let Ok((attachment, notify)) = removed else {
            return;
        };
        if let Some(a) = attachment {
            self.bus.detach(a).await;
        }
        self.peer_left(&notify, participant, false).await;
    }

    /// The patient attests who is present next to them, by name and relation (telesoin-core
    /// refuses an unnamed attestation). Traced as an attestation, never as an incident.
    pub async fn attest(
        &self,
        session: SessionId,
        participant: ParticipantId,
        companion: Companion,
        name: Option<&str>,
        relation: Option<&str>,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let attestation = representation::attestation(companion, name, relation)?;
        if self.role_of(session, participant).await? != Some(Role::Patient) {
            return Err(RefusalCode::NotAllowed);
        }
        self.store
            .add_attestation(&telesoin_store::AttestationRow {
                session,
                participant,
                companion,
                name: attestation.person.name,
                relation: attestation.person.relation,
                attested_at: now,
            })
            .await
            .map_err(store_down)?;
        self.rooms
            .update(session, |r| {
                let seat = r
                    .seats
                    .get_mut(&participant)
                    .ok_or(RefusalCode::NotAllowed)?;
                if seat.role != Role::Patient {
                    return Err(RefusalCode::NotAllowed);
                }
                seat.attested = Some(companion);
                seat.waiting = None;
                Ok(())
            })
            .await??;
        let detail = match companion {
            Companion::Parent => "parent",
            Companion::Aidant => "aidant",
        };
        self.event(
            session,
            now,
            Some((participant, Role::Patient)),
            PresenceKind::Attested,
            Some(detail.to_owned()),
        )
        .await?;
        self.evaluate(session, participant, now).await;
        Ok(())
    }

    /// The patient consents on the join page (traced: by the patient, join_page, text version);
    /// for a minor, the legal representative does, named (telesoin-core's rule).
    pub async fn consent(
        &self,
        session: SessionId,
        participant: ParticipantId,
        text_version: &str,
        representative: (Option<&str>, Option<&str>),
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        if text_version != telesoin_core::model::CONSENT_TEXT_VERSION {
            return Err(RefusalCode::BadMessage);
        }
        let role = self
            .role_of(session, participant)
            .await?
            .ok_or(RefusalCode::NotAllowed)?;
        if role != Role::Patient {
            return Err(RefusalCode::NotAllowed);
        }
        let row = self
            .store
            .session(session)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        if !row.session.patient_consent_on_join {
            return Err(RefusalCode::NotAllowed);
        }
        let patient = self
            .store
            .patient(row.session.kine, row.session.patient)
            .await
            .map_err(store_down)?
            .ok_or(RefusalCode::SessionNotFound)?;
        let giver = representation::consent_giver(
            &patient.patient,
            row.session.day(),
            ConsentChannel::JoinPage,
            representative.0,
            representative.1,
        )?;
        let consent = Consent {
            recorded_by: ConsentRecorder::Patient,
            method: "join_page".into(),
            text_version: text_version.to_owned(),
            recorded_at: now,
            withdrawn_at: None,
        };
        let id = uuid::Uuid::new_v4();
        let recorded = DomainEvent::ConsentRecorded {
            kine: row.session.kine,
            patient: row.session.patient,
            by: "patient",
        };
        let announce = self.cfg.webhooks.of(now, &recorded).await;
        let representative = match giver {
            ConsentGiver::Representative(p) => Some(telesoin_store::Representative {
                name: p.name,
                relation: p.relation,
            }),
            _ => None,
        };
        self.store
            .add_consent(
                row.session.kine,
                row.session.patient,
                id,
                &consent,
                representative.as_ref(),
                announce.as_ref(),
            )
            .await
            .map_err(store_down)?;
        self.events.emit(now, recorded).await;
        self.forget_waiting(session, participant).await;
        self.evaluate(session, participant, now).await;
        Ok(())
    }

    /// The kiné lets a waiting participant in. The kiné's word is recorded on the seat
    /// (`admitted_by_kine`) before the room holds it, so that a room rebuilt from the record
    /// (`restore`) keeps it while the seat still waits for something else (its consent).
    pub async fn admit(
        &self,
        session: SessionId,
        by: ParticipantId,
        target: ParticipantId,
        now: DateTime<Utc>,
    ) -> HubResult<()> {
        let may = |room: &super::Room| {
            let by_seat = room.seats.get(&by).ok_or(RefusalCode::NotAllowed)?;
            if by_seat.role != Role::Kine || !by_seat.admitted {
                return Err(RefusalCode::NotAllowed);
            }
            let seat = room.seats.get(&target).ok_or(RefusalCode::UnknownPeer)?;
            // Only a waiting seat, on its socket, is new to record.
            let new = seat.attachment.is_some() && !seat.admitted && !seat.admitted_by_kine;
            Ok((seat.role, new))
        };
        let (role, new) = self.rooms.read(session, may).await??;
        if new {
            match self
                .event(
                    session,
                    now,
                    Some((target, role)),
                    PresenceKind::AdmittedByKine,
                    None,
                )
                .await
            {
                Ok(_) => {}
                // The seat left meanwhile: there is nobody to let in.
                Err(RefusalCode::NotAdmitted) => return Err(RefusalCode::UnknownPeer),
                Err(code) => return Err(code),
            }
        }
        self.rooms
            .update(session, |room| {
                may(room)?;
                if let Some(seat) = room.seats.get_mut(&target) {
                    seat.admitted_by_kine = true;
                }
                Ok(())
            })
            .await??;
        self.evaluate(session, target, now).await;
        Ok(())
    }

    /// A single link was revoked: its holder, if connected, is refused at once.
    pub async fn link_revoked(
        &self,
        session: SessionId,
        participant: ParticipantId,
        now: DateTime<Utc>,
    ) {
        let role = self.role_of(session, participant).await;
        if let Ok(Some(role)) = role {
            self.refuse_seat(session, participant, role, RefusalCode::TokenRevoked, now)
                .await;
        }
    }

    /// A consent of this patient was withdrawn: live seats are re-evaluated (and refused).
    pub async fn consent_withdrawn(&self, patient: PatientId, now: DateTime<Utc>) {
        let rooms: Vec<SessionId> = self.rooms.sessions().await.unwrap_or_default();
        for session in rooms {
            let Ok(Some(row)) = self.store.session(session).await else {
                continue;
            };
            if row.session.patient != patient {
                continue;
            }
            let seats: Vec<ParticipantId> = self
                .rooms
                .read(session, |r| {
                    r.seats
                        .iter()
                        .filter(|(_, s)| s.role != Role::Kine)
                        .map(|(p, _)| *p)
                        .collect()
                })
                .await
                .unwrap_or_default();
            for p in seats {
                self.evaluate(session, p, now).await;
            }
        }
    }
}
