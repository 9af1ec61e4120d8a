//! Presence events -> billable time.
//!
//! Billable time is the union of the instants at which the kiné AND the patient are both
//! media-connected. A participant's media gap no longer than the reconnection grace is bridged
//! (a reconnect inside the grace window does not split the call); a longer gap ends the interval
//! at the disconnection. Events may arrive duplicated or out of order: they are ordered by
//! (time, sequence) and every transition is idempotent. An `Ended` event closes everything, and
//! nothing after it counts.
//!
//! A `NodeRestart` event (written when the server starts again with a live session) disconnects
//! everybody at its own time: media is peer to peer and kept flowing while the server was down, so
//! the gap is bridged when the participants reconnect within the grace window after it.

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
    /// The socket dropped; the seat is kept for the grace period.
    SocketLost,
    Reconnected,
    Left,
    Incident,
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
            SocketLost => "socket_lost",
            Reconnected => "reconnected",
            Left => "left",
            Incident => "incident",
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
            "socket_lost" => SocketLost,
            "reconnected" => Reconnected,
            "left" => Left,
            "incident" => Incident,
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
            PresenceKind::SocketLost | PresenceKind::Incident | PresenceKind::NodeRestart
        )
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

/// The intervals in which kiné and patient were both media-connected, up to `until` (the end of
/// the session, or now for a provisional figure).
pub fn billable_intervals(
    events: &[PresenceEvent],
    grace: Duration,
    until: DateTime<Utc>,
) -> Vec<Interval> {
    let mut ordered: Vec<&PresenceEvent> = events.iter().collect();
    ordered.sort_by_key(|e| (e.at, e.seq));
    let kine = connected_intervals(&ordered, Role::Kine, grace, until);
    let patient = connected_intervals(&ordered, Role::Patient, grace, until);
    intersect(&kine, &patient)
}

/// Whole seconds billable (rounded down).
pub fn billable_seconds(events: &[PresenceEvent], grace: Duration, until: DateTime<Utc>) -> i64 {
    billable_intervals(events, grace, until)
        .iter()
        .map(|i| i.duration().num_seconds())
        .sum()
}

/// When the session ended, if an `Ended` event is there.
pub fn ended_at(events: &[PresenceEvent]) -> Option<DateTime<Utc>> {
    events
        .iter()
        .filter(|e| e.kind == PresenceKind::Ended)
        .map(|e| e.at)
        .min()
}

/// The union of instants at which some participant of `role` was media-connected, with gaps of
/// at most `grace` bridged. `events` are sorted.
fn connected_intervals(
    events: &[&PresenceEvent],
    role: Role,
    grace: Duration,
    until: DateTime<Utc>,
) -> Vec<Interval> {
    use std::collections::BTreeMap;
    let mut open: BTreeMap<ParticipantId, DateTime<Utc>> = BTreeMap::new();
    let mut raw: Vec<Interval> = Vec::new();
    let mut stop = until;
    for e in events {
        if e.at >= stop {
            break;
        }
        match e.kind {
            PresenceKind::Ended => {
                stop = e.at;
                break;
            }
            PresenceKind::NodeRestart => {
                for (_, start) in std::mem::take(&mut open) {
                    raw.push(Interval { start, end: e.at });
                }
            }
            _ => {}
        }
        let (Some(p), Some(r)) = (e.participant, e.role) else {
            continue;
        };
        if r != role {
            continue;
        }
        match e.kind {
            PresenceKind::MediaConnected => {
                open.entry(p).or_insert(e.at);
            }
            PresenceKind::MediaDisconnected | PresenceKind::Left => {
                if let Some(start) = open.remove(&p) {
                    raw.push(Interval { start, end: e.at });
                }
            }
            _ => {}
        }
    }
    for (_, start) in open {
        raw.push(Interval { start, end: stop });
    }
    raw.retain(|i| i.end > i.start);
    raw.sort_by_key(|i| i.start);
    let mut merged: Vec<Interval> = Vec::new();
    for i in raw {
        match merged.last_mut() {
            Some(last) if i.start <= last.end + grace => last.end = last.end.max(i.end),
            _ => merged.push(i),
        }
    }
    // Bridging must not reach past the end of the session.
    for m in &mut merged {
        m.end = m.end.min(stop);
    }
    merged.retain(|i| i.end > i.start);
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    const K: ParticipantId = ParticipantId(Uuid::from_u128(1));
    const P: ParticipantId = ParticipantId(Uuid::from_u128(2));

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .expect("valid")
    }

    fn ev(seq: i64, s: i64, who: ParticipantId, kind: PresenceKind) -> PresenceEvent {
        let role = if who == K { Role::Kine } else { Role::Patient };
        PresenceEvent {
            seq,
            at: t(s),
            participant: Some(who),
            role: Some(role),
            kind,
        }
    }

    fn end(seq: i64, s: i64) -> PresenceEvent {
        PresenceEvent {
            seq,
            at: t(s),
            participant: None,
            role: None,
            kind: PresenceKind::Ended,
        }
    }

    use PresenceKind::{MediaConnected as On, MediaDisconnected as Off};

    #[test]
    fn billing_table() {
        let g = Duration::seconds(30);
        let cases: Vec<(&str, Vec<PresenceEvent>, i64)> = vec![
            ("nobody", vec![end(1, 100)], 0),
            ("only the kiné", vec![ev(1, 0, K, On), end(2, 100)], 0),
            (
                "both from 10 to 70",
                vec![
                    ev(1, 0, K, On),
                    ev(2, 10, P, On),
                    ev(3, 70, P, Off),
                    end(4, 100),
                ],
                60,
            ),
            (
                "duplicated connect does not restart the clock",
                vec![
                    ev(1, 0, K, On),
                    ev(2, 10, P, On),
                    ev(3, 40, P, On),
                    ev(4, 70, P, Off),
                    end(5, 100),
                ],
                60,
            ),
            (
                "reordered arrival",
                vec![
                    ev(4, 70, P, Off),
                    end(5, 100),
                    ev(2, 10, P, On),
                    ev(1, 0, K, On),
                ],
                60,
            ),
            (
                "a 20 s reconnect inside the grace window does not split the call",
                vec![
                    ev(1, 0, K, On),
                    ev(2, 0, P, On),
                    ev(3, 40, P, Off),
                    ev(4, 60, P, On),
                    end(5, 100),
                ],
                100,
            ),
            (
                "a 50 s gap beyond the grace window is not billed",
                vec![
                    ev(1, 0, K, On),
                    ev(2, 0, P, On),
                    ev(3, 40, P, Off),
                    ev(4, 90, P, On),
                    end(5, 100),
                ],
                50,
            ),
            (
                "open intervals close at the end",
                vec![ev(1, 0, K, On), ev(2, 5, P, On), end(3, 65)],
                60,
            ),
            (
                "nothing after the end counts",
                vec![
                    ev(1, 0, K, On),
                    ev(2, 0, P, On),
                    end(3, 30),
                    ev(4, 40, P, On),
                    ev(5, 50, K, On),
                ],
                30,
            ),
            (
                "node restart bridged by reconnects inside grace",
                vec![
                    ev(1, 0, K, On),
                    ev(2, 0, P, On),
                    PresenceEvent {
                        seq: 3,
                        at: t(50),
                        participant: None,
                        role: None,
                        kind: PresenceKind::NodeRestart,
                    },
                    ev(4, 60, K, On),
                    ev(5, 62, P, On),
                    end(6, 100),
                ],
                100,
            ),
            (
                "node restart and nobody comes back",
                vec![
                    ev(1, 0, K, On),
                    ev(2, 0, P, On),
                    PresenceEvent {
                        seq: 3,
                        at: t(50),
                        participant: None,
                        role: None,
                        kind: PresenceKind::NodeRestart,
                    },
                    end(4, 300),
                ],
                50,
            ),
        ];
        for (name, events, want) in cases {
            assert_eq!(billable_seconds(&events, g, t(1_000)), want, "{name}");
        }
    }

    #[test]
    fn provisional_figure_stops_at_until() {
        let events = vec![ev(1, 0, K, On), ev(2, 10, P, On)];
        assert_eq!(billable_seconds(&events, Duration::seconds(30), t(70)), 60);
    }
}
