//! Presence events -> billable time, from persisted evidence only.
//!
//! A billed second must be provable from persisted, server-timestamped evidence. The evidence of
//! a participant is its own events: every `media` report (`MediaConnected`, `MediaDisconnected`,
//! and the periodic `MediaHeartbeat`, each carrying the full state it reported: connected, and
//! whether video is received and sent), and any other event of its seat written while its socket
//! was attached (joined, admitted, socket lost...).
//!
//! The rules, applied per participant over its own events ordered by (time, seq):
//! 1. **State.** The state after an event is that of the last media report at or before it
//!    (`connected`, `video_in`); `Left` (hang-up, leave, refusal, grace expired) and `MediaLost`
//!    (a loss the client reported when it rejoined) set it to off. Before any report: off.
//! 2. **Continuity.** The state after an own event `a` holds until the next own event `b` (or the
//!    stop, when there is none before it) only if the server's knowledge was continuous in
//!    between: `b - a <= evidence_gap` (about two heartbeat periods) and no `NodeRestart` in
//!    `(a, b]`. A client that reports every change and heartbeats every period keeps this true
//!    for as long as its socket and the server stay up.
//! 3. **Claims close the unknown.** When the knowledge was not continuous (a crash and restart, a
//!    lost socket, a lost node, evidence that could not be written), the span `[a, b)` still
//!    counts if `b` is the participant's own account of it, made within `grace` of the lapse
//!    (after the restart inside it, if any, else after `a`): a rejoin (`Joined`/`Reconnected`:
//!    the client's media stayed up, or it said since when it was down with `media_lost_ago_ms`,
//!    written as a `MediaLost` at that instant, before the rejoin), a `MediaLost`, or a `Left`
//!    (a hang-up replayed with `ago_ms`, written at the instant it was made). Otherwise the
//!    participant's interval ends at `a`: **the last persisted evidence**, never later (not even
//!    by one heartbeat period). After a crash nobody comes back from, the error is thus at most
//!    the time between the last persisted evidence and the crash: one heartbeat period plus the
//!    network delay, always under, never over.
//! 4. **No bridging of what was reported.** A media disconnection, video that stops, a hang-up,
//!    a leave, a refusal or the end close the interval at once. Only an involuntary socket loss
//!    (the server stops hearing the client, the peer-to-peer media goes on) is bridged, through
//!    rule 3, by the rejoin within the grace period.
//! 5. **The session.** Nothing counts from the first `Ended` on, nor from `until` on (a
//!    provisional figure). A companion's media never counts.
//!
//! Then, per role, the union over its participants; **billable** = the instants at which the kiné
//! and the patient both count as connected with video ([`MediaReport::has_video`] on both sides:
//! `video_in` true and `video_out` not false, so video flows both ways and a camera turned off,
//! whose black frames keep the far side's `video_in` true, is not video; télésoin being a video
//! act). **Audio-only** = the instants at which both are connected without that: shown, not
//! billed, unless [`Policy::bill_audio_only`]. An unknown `video_in` (a client that does not
//! report it) is not video.
//!
//! Events may arrive duplicated or out of order: they are ordered by (time, seq), duplicates of
//! one seq count once, and the result depends only on the set of events.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ParticipantId;
use crate::model::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKind {
    Joined,
    Waiting,
    Admitted,
    Refused,
    MediaConnected,
    MediaDisconnected,
    /// A periodic `media` report that changed nothing, persisted coarsely as evidence.
    MediaHeartbeat,
    /// A rejoining client said its media had ended (`media_lost_ago_ms`): written at that instant.
    MediaLost,
    /// The socket dropped; the seat is kept for the grace period.
    SocketLost,
    Reconnected,
    Left,
    Incident,
    /// The patient attested a companion's presence (a parent, an aidant, named in the record):
    /// an attestation, never an incident.
    Attested,
    /// The kiné let this waiting seat in (`admit`): written on the seat, while its socket is
    /// attached and before its `admitted` (which follows once nothing else keeps it waiting,
    /// e.g. the patient's consent on the join page). A room rebuilt from the record keeps it.
    AdmittedByKine,
    NodeRestart,
    Ended,
    Cancelled,
}

impl PresenceKind {
    pub fn as_str(self) -> &'static str {
        use PresenceKind::*;
        match self {
            Joined => "joined",
            Waiting => "waiting",
            Admitted => "admitted",
            Refused => "refused",
            MediaConnected => "media_connected",
            MediaDisconnected => "media_disconnected",
            MediaHeartbeat => "media_heartbeat",
            MediaLost => "media_lost",
            SocketLost => "socket_lost",
            Reconnected => "reconnected",
            Left => "left",
            Incident => "incident",
            Attested => "attested",
            AdmittedByKine => "admitted_by_kine",
            NodeRestart => "node_restart",
            Ended => "ended",
            Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use PresenceKind::*;
        Some(match s {
            "joined" => Joined,
            "waiting" => Waiting,
            "admitted" => Admitted,
            "refused" => Refused,
            "media_connected" => MediaConnected,
            "media_disconnected" => MediaDisconnected,
            "media_heartbeat" => MediaHeartbeat,
            "media_lost" => MediaLost,
            "socket_lost" => SocketLost,
            "reconnected" => Reconnected,
            "left" => Left,
            "incident" => Incident,
            "attested" => Attested,
            "admitted_by_kine" => AdmittedByKine,
            "node_restart" => NodeRestart,
            "ended" => Ended,
            "cancelled" => Cancelled,
            _ => return None,
        })
    }

    /// Events that belong in the incident list of the record (décret 2021-707).
    pub fn is_incident(self) -> bool {
        matches!(
            self,
            PresenceKind::SocketLost
                | PresenceKind::Incident
                | PresenceKind::NodeRestart
                | PresenceKind::MediaLost
        )
    }

    /// A participant's own account of a span the server could not see (rule 3).
    fn is_claim(self) -> bool {
        matches!(
            self,
            PresenceKind::Joined
                | PresenceKind::Reconnected
                | PresenceKind::MediaLost
                | PresenceKind::Left
        )
    }
}

/// What a client's `media` message said. `None` is unknown (a client that does not report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MediaReport {
    pub connected: bool,
    /// Remote video decoded and advancing.
    pub video_in: Option<bool>,
    /// Local video encoded and sent.
    pub video_out: Option<bool>,
}

impl MediaReport {
    /// Video both ways as this side sees it: remote video decoded and advancing, and our own
    /// camera not reported off. A camera turned off still sends black frames, so the far side's
    /// `video_in` alone stays true: the sender's `video_out == false` is what says it is off.
    /// An unknown `video_out` (a client that does not report it) does not veto.
    pub fn has_video(&self) -> bool {
        self.video_in == Some(true) && self.video_out != Some(false)
    }

    /// The `detail` of the persisted event: `connected,video_in,no_video_out`; an unknown flag
    /// is left out.
    pub fn to_detail(&self) -> String {
        let mut parts = vec![if self.connected {
            "connected"
        } else {
            "disconnected"
        }];
        for (flag, on, off) in [
            (self.video_in, "video_in", "no_video_in"),
            (self.video_out, "video_out", "no_video_out"),
        ] {
            if let Some(v) = flag {
                parts.push(if v { on } else { off });
            }
        }
        parts.join(",")
    }

    /// Reads a persisted media event back (an event of an older version has no detail: its
    /// connection state is its kind, its video unknown). Not a media event: `None`.
    pub fn from_event(kind: PresenceKind, detail: Option<&str>) -> Option<Self> {
        let mut r = match kind {
            PresenceKind::MediaConnected => MediaReport {
                connected: true,
                ..Default::default()
            },
            PresenceKind::MediaDisconnected => MediaReport::default(),
            PresenceKind::MediaHeartbeat => MediaReport::default(),
            _ => return None,
        };
        for part in detail.unwrap_or_default().split(',') {
            match part {
                "connected" => r.connected = true,
                "disconnected" => r.connected = false,
                "video_in" => r.video_in = Some(true),
                "no_video_in" => r.video_in = Some(false),
                "video_out" => r.video_out = Some(true),
                "no_video_out" => r.video_out = Some(false),
                _ => {}
            }
        }
        Some(r)
    }
}

/// One presence event, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    /// Store order; breaks ties between events of the same instant.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub participant: Option<ParticipantId>,
    pub role: Option<Role>,
    pub kind: PresenceKind,
    /// What a media event reported ([`MediaReport::from_event`]); `None` for other kinds.
    pub media: Option<MediaReport>,
}

impl PresenceEvent {
    /// An event that carries no media report.
    pub fn new(
        seq: i64,
        at: DateTime<Utc>,
        who: Option<(ParticipantId, Role)>,
        kind: PresenceKind,
    ) -> Self {
        PresenceEvent {
            seq,
            at,
            participant: who.map(|w| w.0),
            role: who.map(|w| w.1),
            kind,
            media: MediaReport::from_event(kind, None),
        }
    }
}

/// A half-open interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

/// How evidence is read. See the module doc for what each bound does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long after a lapse of knowledge a participant's own account still closes it.
    pub grace: Duration,
    /// The longest span between two pieces of a participant's evidence over which its state is
    /// taken to have held.
    pub evidence_gap: Duration,
    /// Bill the time both were connected without video both ways (off by default: télésoin is
    /// a video act).
    pub bill_audio_only: bool,
}

impl Policy {
    /// The policy for clients heartbeating every `heartbeat`: one heartbeat may be lost or late
    /// (by up to 2 s) without breaking the evidence.
    pub fn new(grace: Duration, heartbeat: Duration, bill_audio_only: bool) -> Self {
        Policy {
            grace,
            evidence_gap: heartbeat * 2 + Duration::seconds(2),
            bill_audio_only,
        }
    }
}

/// What the evidence proves, up to `until`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Both connected, video both ways (or connected, with `bill_audio_only`).
    pub billable: Vec<Interval>,
    /// Both connected, not video both ways: shown, billed only with `bill_audio_only`.
    pub audio_only: Vec<Interval>,
}

impl Figures {
    /// Whole seconds billable (the total, rounded down).
    pub fn billable_seconds(&self) -> i64 {
        total_seconds(&self.billable)
    }

    /// Whole seconds of audio-only time (rounded down).
    pub fn audio_only_seconds(&self) -> i64 {
        total_seconds(&self.audio_only)
    }
}

fn total_seconds(intervals: &[Interval]) -> i64 {
    intervals
        .iter()
        .map(|i| i.duration().num_milliseconds())
        .sum::<i64>()
        / 1000
}

/// The figures of a session from its events, up to `until` (the end of the session, or now
/// for a provisional figure).
pub fn figures(events: &[PresenceEvent], policy: &Policy, until: DateTime<Utc>) -> Figures {
    let mut ordered: Vec<&PresenceEvent> = events.iter().collect();
    ordered.sort_by_key(|e| (e.at, e.seq));
    ordered.dedup_by_key(|e| (e.at, e.seq));
    let stop = ordered
        .iter()
        .filter(|e| e.kind == PresenceKind::Ended)
        .map(|e| e.at)
        .fold(until, DateTime::min);
    let mut own: BTreeMap<ParticipantId, (Role, Vec<&PresenceEvent>)> = BTreeMap::new();
    let mut restarts: Vec<&PresenceEvent> = Vec::new();
    for e in &ordered {
        match (e.participant, e.role) {
            (Some(p), Some(role)) if e.kind != PresenceKind::NodeRestart => {
                own.entry(p).or_insert((role, Vec::new())).1.push(e)
            }
            _ if e.kind == PresenceKind::NodeRestart => restarts.push(e),
            _ => {}
        }
    }
    // Per role (kiné, patient): the spans counted connected, and those with video received.
    let mut spans: [(Vec<Interval>, Vec<Interval>); 2] = Default::default();
    for (p, (role, evs)) in &own {
        let side = match role {
            Role::Kine => &mut spans[0],
            Role::Patient => &mut spans[1],
            Role::Companion => continue,
        };
        let lapses: Vec<DateTime<Utc>> = restarts
            .iter()
            .filter(|r| r.participant.is_none() || r.participant == Some(*p))
            .map(|r| r.at)
            .filter(|at| *at < stop)
            .collect();
        for (span, with_video) in counted_spans(evs, &lapses, policy, stop) {
            side.0.push(span);
            if with_video {
                side.1.push(span);
            }
        }
    }
    let [(kine, kine_video), (patient, patient_video)] = spans;
    let connected = intersect(&union(kine), &union(patient));
    let video = intersect(&union(kine_video), &union(patient_video));
    let audio_only = subtract(&connected, &video);
    Figures {
        billable: if policy.bill_audio_only {
            connected
        } else {
            video
        },
        audio_only,
    }
}

/// The spans one participant counts as connected (and whether with video received), before
/// `stop`, from its own events (sorted) and the restarts that concern it (sorted).
fn counted_spans(
    own: &[&PresenceEvent],
    lapses: &[DateTime<Utc>],
    policy: &Policy,
    stop: DateTime<Utc>,
) -> Vec<(Interval, bool)> {
    let mut out = Vec::new();
    let mut state = MediaReport::default();
    for (i, a) in own.iter().enumerate() {
        if a.at >= stop {
            break;
        }
        if let Some(m) = a.media {
            state = m;
        } else if matches!(a.kind, PresenceKind::Left | PresenceKind::MediaLost) {
            state = MediaReport::default();
        }
        if !state.connected {
            continue;
        }
        let next = own.get(i + 1).filter(|b| b.at < stop);
        let end = next.map_or(stop, |b| b.at);
        let restart_in = |from: DateTime<Utc>, to: DateTime<Utc>| {
            lapses
                .iter()
                .rev()
                .find(|r| **r > from && **r <= to)
                .copied()
        };
        let continuous = end - a.at <= policy.evidence_gap && restart_in(a.at, end).is_none();
        let claimed = next.is_some_and(|b| {
            let anchor = restart_in(a.at, b.at).unwrap_or(a.at);
            b.kind.is_claim() && b.at <= anchor + policy.grace
        });
        if (continuous || claimed) && end > a.at {
            out.push((Interval { start: a.at, end }, state.has_video()));
        }
    }
    out
}

/// The billable intervals (see [`figures`]).
pub fn billable_intervals(
    events: &[PresenceEvent],
    policy: &Policy,
    until: DateTime<Utc>,
) -> Vec<Interval> {
    figures(events, policy, until).billable
}

/// Whole seconds billable (rounded down).
pub fn billable_seconds(events: &[PresenceEvent], policy: &Policy, until: DateTime<Utc>) -> i64 {
    figures(events, policy, until).billable_seconds()
}

/// When the session ended, if an `Ended` event is there.
pub fn ended_at(events: &[PresenceEvent]) -> Option<DateTime<Utc>> {
    events
        .iter()
        .filter(|e| e.kind == PresenceKind::Ended)
        .map(|e| e.at)
        .min()
}

/// Sorted, disjoint, non-touching.
fn union(mut v: Vec<Interval>) -> Vec<Interval> {
    v.retain(|i| i.end > i.start);
    v.sort_by_key(|i| i.start);
    let mut merged: Vec<Interval> = Vec::new();
    for i in v {
        match merged.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => merged.push(i),
        }
    }
    merged
}

fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if end > start {
            out.push(Interval { start, end });
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    union(out)
}

/// `a` minus `b`, both sorted and disjoint.
fn subtract(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    for i in a {
        let mut start = i.start;
        for j in b.iter().filter(|j| j.end > i.start && j.start < i.end) {
            if j.start > start {
                out.push(Interval {
                    start,
                    end: j.start,
                });
            }
            start = start.max(j.end);
        }
        if i.end > start {
            out.push(Interval { start, end: i.end });
        }
    }
    union(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    const K: ParticipantId = ParticipantId(Uuid::from_u128(1));
    const P: ParticipantId = ParticipantId(Uuid::from_u128(2));
    const C: ParticipantId = ParticipantId(Uuid::from_u128(3));

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .expect("valid")
    }

    fn role(who: ParticipantId) -> Role {
        match who {
            K => Role::Kine,
            P => Role::Patient,
            _ => Role::Companion,
        }
    }

    /// A rule row: `(seconds, who, what)`, in store order.
    #[derive(Clone, Copy)]
    enum W {
        /// Connected with video both ways (as this side sees it).
        V,
        /// Connected, no video received.
        A,
        /// Connected, video unknown (an older client).
        U,
        /// Connected, the far side's video received, our own camera turned off (black frames).
        CamOff,
        /// Heartbeat: still connected with video.
        Hb,
        Off,
        Lost,
        Kind(PresenceKind),
    }

    fn ev(seq: i64, s: i64, who: ParticipantId, w: W) -> PresenceEvent {
        let report = |kind, connected, video_in, video_out| {
            let mut e = PresenceEvent::new(seq, t(s), Some((who, role(who))), kind);
            e.media = Some(MediaReport {
                connected,
                video_in,
                video_out,
            });
            e
        };
        match w {
            W::V => report(PresenceKind::MediaConnected, true, Some(true), Some(true)),
            W::A => report(PresenceKind::MediaConnected, true, Some(false), Some(false)),
            W::U => report(PresenceKind::MediaConnected, true, None, None),
            W::CamOff => report(PresenceKind::MediaConnected, true, Some(true), Some(false)),
            W::Hb => report(PresenceKind::MediaHeartbeat, true, Some(true), Some(true)),
            W::Off => report(PresenceKind::MediaDisconnected, false, None, None),
            W::Lost => {
                PresenceEvent::new(seq, t(s), Some((who, role(who))), PresenceKind::MediaLost)
            }
            W::Kind(k) => PresenceEvent::new(seq, t(s), Some((who, role(who))), k),
        }
    }

    fn session(seq: i64, s: i64, kind: PresenceKind) -> PresenceEvent {
        PresenceEvent::new(seq, t(s), None, kind)
    }

    /// Rows of `(who, second, what)`; seqs follow the row order; `Ended` at `end`.
    fn run(rows: &[(ParticipantId, i64, W)], end: Option<i64>, policy: &Policy) -> Figures {
        let mut events: Vec<PresenceEvent> = rows
            .iter()
            .enumerate()
            .map(|(i, (who, s, w))| ev(i as i64 + 1, *s, *who, *w))
            .collect();
        if let Some(e) = end {
            events.push(session(1_000, e, PresenceKind::Ended));
        }
        figures(&events, policy, t(10_000))
    }

    /// Grace 30 s, heartbeat 10 s: evidence gap 22 s.
    fn policy() -> Policy {
        Policy::new(Duration::seconds(30), Duration::seconds(10), false)
    }

    /// Heartbeats of `who` every 10 s in `[from, to)`.
    fn beats(who: ParticipantId, from: i64, to: i64) -> Vec<(ParticipantId, i64, W)> {
        (from..to).step_by(10).map(|s| (who, s, W::Hb)).collect()
    }

    fn rows(parts: &[Vec<(ParticipantId, i64, W)>]) -> Vec<(ParticipantId, i64, W)> {
        let mut all: Vec<_> = parts.concat();
        all.sort_by_key(|r| r.1);
        all
    }

    use PresenceKind::{Joined, Left, NodeRestart, Reconnected, SocketLost};

    #[test]
    fn rule_video_both_ways_is_billable_audio_is_shown() {
        let p = policy();
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<(ParticipantId, i64, W)>, i64, i64)> = vec![
            ("nobody", vec![], 0, 0),
            ("only the kiné", vec![(K, 0, W::V)], 0, 0),
            ("both with video from 10 to 20", vec![(K, 0, W::V), (P, 10, W::V), (P, 20, W::Off)], 10, 0),
            ("the patient receives no video: audio only", vec![(K, 0, W::V), (P, 10, W::A), (P, 20, W::Off)], 0, 10),
            ("the kiné receives no video: audio only", vec![(K, 0, W::A), (P, 10, W::V), (P, 20, W::Off)], 0, 10),
            ("unknown video (older client) is not video", vec![(K, 0, W::U), (P, 10, W::V), (P, 20, W::Off)], 0, 10),
            ("the patient's camera turned off (black frames still reach the kiné): audio only", vec![(K, 0, W::V), (P, 0, W::V), (P, 10, W::CamOff), (P, 20, W::Off)], 10, 10),
            ("the kiné's camera turned off: audio only", vec![(K, 0, W::CamOff), (P, 10, W::V), (P, 20, W::Off)], 0, 10),
            ("video comes back: billed again", vec![(K, 0, W::V), (P, 0, W::V), (P, 10, W::A), (P, 15, W::V), (P, 20, W::Off)], 15, 5),
            ("a companion's media never counts", vec![(K, 0, W::V), (C, 0, W::V)], 0, 0),
        ];
        for (name, rows, billable, audio) in cases {
            let f = run(&rows, Some(20), &p);
            assert_eq!(
                (f.billable_seconds(), f.audio_only_seconds()),
                (billable, audio),
                "{name}"
            );
        }
    }

    #[test]
    fn rule_audio_only_billed_when_configured() {
        let p = Policy {
            bill_audio_only: true,
            ..policy()
        };
        let f = run(
            &[(K, 0, W::A), (P, 10, W::V), (P, 20, W::Off)],
            Some(20),
            &p,
        );
        assert_eq!((f.billable_seconds(), f.audio_only_seconds()), (10, 10));
    }

    #[test]
    fn rule_what_is_reported_closes_at_once() {
        let p = policy();
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<(ParticipantId, i64, W)>, i64)> = vec![
            ("a media disconnection is not bridged, even for 5 s",
                vec![(K, 0, W::V), (P, 0, W::V), (P, 10, W::Off), (P, 15, W::V)], 15),
            ("a hang-up is not bridged by a rejoin 5 s later",
                vec![(K, 0, W::V), (P, 0, W::V), (P, 10, W::Kind(Left)), (P, 15, W::Kind(Joined)), (P, 16, W::V)], 14),
            ("a hang-up bills nothing after it, up to the end",
                vec![(K, 0, W::V), (P, 0, W::V), (P, 10, W::Hb), (P, 14, W::Kind(Left))], 14),
            ("a duplicated connect does not restart the clock",
                vec![(K, 0, W::V), (P, 10, W::V), (P, 15, W::V), (P, 20, W::Off)], 10),
        ];
        for (name, rows, want) in cases {
            assert_eq!(run(&rows, Some(20), &p).billable_seconds(), want, "{name}");
        }
    }

    #[test]
    fn rule_evidence_must_be_continuous() {
        let p = policy();
        // Heartbeats keep a long call billed to the end.
        let long = rows(&[
            vec![(K, 0, W::V), (P, 0, W::V)],
            beats(K, 10, 300),
            beats(P, 10, 300),
        ]);
        assert_eq!(
            run(&long, Some(300), &p).billable_seconds(),
            300,
            "heartbeats"
        );
        // Without heartbeats, a report holds one evidence gap, no more.
        let silent = vec![(K, 0, W::V), (P, 0, W::V)];
        assert_eq!(
            run(&silent, Some(22), &p).billable_seconds(),
            22,
            "end inside the gap"
        );
        assert_eq!(
            run(&silent, Some(23), &p).billable_seconds(),
            0,
            "end past the gap"
        );
        // A patient whose evidence stops at 100 (lost node, store not writing): billed to 100.
        let stops = rows(&[
            vec![(K, 0, W::V), (P, 0, W::V)],
            beats(K, 10, 300),
            beats(P, 10, 101),
        ]);
        assert_eq!(
            run(&stops, Some(300), &p).billable_seconds(),
            100,
            "evidence stops"
        );
        // A hole of 40 s in the patient's evidence, then heartbeats again: the hole is not billed.
        let hole = rows(&[
            vec![(K, 0, W::V), (P, 0, W::V)],
            beats(K, 10, 200),
            beats(P, 10, 61),
            beats(P, 100, 200),
        ]);
        assert_eq!(run(&hole, Some(200), &p).billable_seconds(), 160, "hole");
    }

    #[test]
    fn rule_restart_ends_at_the_last_evidence_unless_claimed() {
        let p = policy();
        let before = rows(&[
            vec![(K, 0, W::V), (P, 0, W::V)],
            beats(K, 10, 51),
            beats(P, 10, 51),
        ]);
        // Crash at ~55, restart at 60.
        let restart = (K, 60, W::Kind(NodeRestart));
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<(ParticipantId, i64, W)>, i64, i64)> = vec![
            ("nobody comes back: ends at the last evidence (50)",
                vec![], 300, 50),
            ("the kiné ends 2 s after the restart: still 50, not 62",
                vec![], 62, 50),
            ("both rejoin inside the grace, media up all along",
                vec![(K, 62, W::Kind(Joined)), (P, 63, W::Kind(Joined)), (K, 64, W::V), (P, 64, W::V)], 80, 80),
            ("the patient says its media ended at 57",
                vec![(K, 62, W::Kind(Joined)), (P, 57, W::Lost), (P, 63, W::Kind(Joined)), (K, 64, W::V)], 80, 57),
            ("the kiné's hang-up, made at 54, replayed after the restart",
                vec![(K, 54, W::Lost), (K, 62, W::Kind(Joined))], 54, 54),
            ("a rejoin past the grace after the restart: the lapse is not billed",
                vec![(K, 95, W::Kind(Joined)), (P, 96, W::Kind(Joined)), (K, 96, W::V), (P, 96, W::V)], 100, 54),
        ];
        for (name, extra, end, want) in cases {
            let mut all = before.clone();
            // The restart event is session-wide: built apart from the rows.
            let mut events: Vec<PresenceEvent> = Vec::new();
            all.extend(extra);
            all.sort_by_key(|r| r.1);
            for (i, (who, s, w)) in all.iter().enumerate() {
                events.push(ev(i as i64 + 1, *s, *who, *w));
            }
            events.push(session(500, restart.1, NodeRestart));
            events.push(session(501, end, PresenceKind::Ended));
            assert_eq!(billable_seconds(&events, &p, t(10_000)), want, "{name}");
        }
    }

    #[test]
    fn rule_socket_loss_is_bridged_by_a_rejoin_inside_the_grace() {
        let p = policy();
        let base = vec![
            (K, 0, W::V),
            (P, 0, W::V),
            (K, 10, W::Hb),
            (K, 20, W::Hb),
            (K, 30, W::Hb),
            (K, 40, W::Hb),
            (K, 50, W::Hb),
        ];
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<(ParticipantId, i64, W)>, i64)> = vec![
            ("socket lost at 5, back at 30 with media up all along",
                vec![(P, 5, W::Kind(SocketLost)), (P, 30, W::Kind(Reconnected)), (P, 31, W::V), (P, 41, W::Hb)], 60),
            ("socket lost at 5, back at 30: media lost at 8",
                vec![(P, 5, W::Kind(SocketLost)), (P, 8, W::Lost), (P, 30, W::Kind(Reconnected)), (P, 31, W::V), (P, 41, W::Hb)], 8 + 29),
            ("socket lost at 5, never back: grace expired, left at 5",
                vec![(P, 5, W::Kind(SocketLost)), (P, 5, W::Kind(Left))], 5),
            // [5, 40) is not billed; from the rejoin on, the media it says stayed up counts.
            ("socket lost at 5, back at 40 (past the grace)",
                vec![(P, 5, W::Kind(SocketLost)), (P, 40, W::Kind(Joined)), (P, 41, W::V)], 5 + 20),
        ];
        for (name, extra, want) in cases {
            let all = rows(&[base.clone(), extra]);
            assert_eq!(run(&all, Some(60), &p).billable_seconds(), want, "{name}");
        }
    }

    #[test]
    fn rule_nothing_after_the_end_or_until() {
        let p = policy();
        let late = vec![(K, 0, W::V), (P, 0, W::V), (K, 25, W::V), (P, 26, W::V)];
        assert_eq!(run(&late, Some(20), &p).billable_seconds(), 20);
        let events: Vec<_> = [(K, 0, W::V), (P, 10, W::V)]
            .iter()
            .enumerate()
            .map(|(i, (w, s, x))| ev(i as i64, *s, *w, *x))
            .collect();
        assert_eq!(billable_seconds(&events, &p, t(20)), 10, "provisional");
    }

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let p = policy();
        let mut events: Vec<_> = [
            (K, 0, W::V),
            (P, 10, W::V),
            (K, 20, W::Hb),
            (P, 20, W::Hb),
            (P, 30, W::Off),
        ]
        .iter()
        .enumerate()
        .map(|(i, (w, s, x))| ev(i as i64, *s, *w, *x))
        .collect();
        events.push(session(9, 40, PresenceKind::Ended));
        let want = figures(&events, &p, t(100));
        assert_eq!(want.billable_seconds(), 20);
        let mut shuffled = events.clone();
        shuffled.reverse();
        shuffled.push(events[1].clone());
        assert_eq!(figures(&shuffled, &p, t(100)), want);
    }

    #[test]
    fn media_detail_round_trips() {
        for r in [
            MediaReport {
                connected: true,
                video_in: Some(true),
                video_out: Some(false),
            },
            MediaReport {
                connected: false,
                video_in: None,
                video_out: None,
            },
            MediaReport {
                connected: true,
                video_in: None,
                video_out: Some(true),
            },
        ] {
            let kind = if r.connected {
                PresenceKind::MediaConnected
            } else {
                PresenceKind::MediaDisconnected
            };
            assert_eq!(MediaReport::from_event(kind, Some(&r.to_detail())), Some(r));
            assert_eq!(
                MediaReport::from_event(PresenceKind::MediaHeartbeat, Some(&r.to_detail())),
                Some(r)
            );
        }
        assert_eq!(
            MediaReport::from_event(PresenceKind::Left, Some("hangup")),
            None
        );
        assert_eq!(
            MediaReport::from_event(PresenceKind::MediaConnected, None),
            Some(MediaReport {
                connected: true,
                video_in: None,
                video_out: None
            })
        );
    }
}
