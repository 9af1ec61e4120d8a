//! Property tests for billable time: random presence events for one kiné and one patient (and a
//! companion, whose media never counts), delivered duplicated and shuffled with their original
//! seq, with node restarts and an `Ended` at a random point or none, against a brute-force
//! reference computed second by second.
//!
//! The reference is written from the definition in `billing.rs`'s module doc, not from its code:
//! - events are ordered by (time, seq);
//! - at instant `s`, a participant is media-connected iff, among its own `MediaConnected`,
//!   `MediaDisconnected` and `Left` events and every `NodeRestart` (which disconnects everybody)
//!   at or before `s`, the last one is a `MediaConnected`;
//! - a role is connected at `s` iff one of its participants is, and a gap of at most `grace`
//!   seconds between two connected stretches of the role is bridged;
//! - nothing counts from the first `Ended` on, nor from `until` on;
//! - billable = the instants at which the kiné's role and the patient's role are both connected.
//!
//! All times are whole seconds, so counting seconds on the grid is exact.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use telesoin_core::ParticipantId;
use telesoin_core::billing::{PresenceEvent, PresenceKind, billable_intervals, billable_seconds};
use telesoin_core::model::Role;
use uuid::Uuid;

const KINE: ParticipantId = ParticipantId(Uuid::from_u128(1));
const PATIENT: ParticipantId = ParticipantId(Uuid::from_u128(2));
const COMPANION: ParticipantId = ParticipantId(Uuid::from_u128(3));

/// The session starts at t(0).
fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0)
        .single()
        .expect("valid")
}

fn secs(at: DateTime<Utc>) -> i64 {
    (at - t(0)).num_seconds()
}

/// The reference: billable seconds, counted one instant at a time.
fn reference(events: &[PresenceEvent], grace: i64, until: i64) -> i64 {
    let stop = events
        .iter()
        .filter(|e| e.kind == PresenceKind::Ended)
        .map(|e| secs(e.at))
        .fold(until, i64::min)
        .max(0);
    let role_connected = |role: Role| -> Vec<bool> {
        let members: Vec<ParticipantId> = events
            .iter()
            .filter(|e| e.role == Some(role))
            .filter_map(|e| e.participant)
            .collect();
        let mut raw: Vec<bool> = (0..stop)
            .map(|s| {
                members.iter().any(|p| {
                    events
                        .iter()
                        .filter(|e| secs(e.at) <= s)
                        .filter(|e| match e.kind {
                            PresenceKind::NodeRestart => true,
                            PresenceKind::MediaConnected
                            | PresenceKind::MediaDisconnected
                            | PresenceKind::Left => e.participant == Some(*p),
                            _ => false,
                        })
                        .max_by_key(|e| (e.at, e.seq))
                        .is_some_and(|e| e.kind == PresenceKind::MediaConnected)
                })
            })
            .collect();
        // Bridge every gap of at most `grace` seconds between two connected stretches.
        let mut s = 0;
        while s < raw.len() {
            if raw[s] {
                s += 1;
                continue;
            }
            let gap_start = s;
            while s < raw.len() && !raw[s] {
                s += 1;
            }
            let inside = gap_start > 0 && s < raw.len();
            if inside && (s - gap_start) as i64 <= grace {
                raw[gap_start..s].iter_mut().for_each(|c| *c = true);
            }
        }
        raw
    };
    let kine = role_connected(Role::Kine);
    let patient = role_connected(Role::Patient);
    kine.iter()
        .zip(&patient)
        .filter(|(k, p)| **k && **p)
        .count() as i64
}

/// One generated event, before seqs are given.
#[derive(Debug, Clone, Copy)]
enum Gen {
    Participant(ParticipantId, Role, PresenceKind, i64),
    NodeRestart(i64),
}

fn participant() -> impl Strategy<Value = (ParticipantId, Role)> {
    prop_oneof![
        6 => Just((KINE, Role::Kine)),
        6 => Just((PATIENT, Role::Patient)),
        1 => Just((COMPANION, Role::Companion)),
    ]
}

fn participant_kind() -> impl Strategy<Value = PresenceKind> {
    use PresenceKind::*;
    prop_oneof![
        8 => Just(MediaConnected),
        5 => Just(MediaDisconnected),
        2 => Just(Left),
        2 => Just(SocketLost),
        2 => Just(Reconnected),
        1 => Just(Joined),
        1 => Just(Admitted),
        1 => Just(Incident),
    ]
}

fn gen_event(max_t: i64) -> impl Strategy<Value = Gen> {
    prop_oneof![
        14 => (participant(), participant_kind(), 0..max_t)
            .prop_map(|((p, r), k, at)| Gen::Participant(p, r, k, at)),
        1 => (0..max_t).prop_map(Gen::NodeRestart),
    ]
}

/// A scenario: the events in store order (seq 1, 2, ...), as delivered (duplicated, shuffled),
/// the grace and the `until` of the figure.
#[derive(Debug, Clone)]
struct Scenario {
    stored: Vec<PresenceEvent>,
    delivered: Vec<PresenceEvent>,
    grace: i64,
    until: i64,
}

fn to_event(seq: i64, g: Gen) -> PresenceEvent {
    match g {
        Gen::Participant(p, role, kind, at) => PresenceEvent {
            seq,
            at: t(at),
            participant: Some(p),
            role: Some(role),
            kind,
        },
        Gen::NodeRestart(at) => PresenceEvent {
            seq,
            at: t(at),
            participant: None,
            role: None,
            kind: PresenceKind::NodeRestart,
        },
    }
}

fn ended(seq: i64, at: i64) -> PresenceEvent {
    PresenceEvent {
        seq,
        at: t(at),
        participant: None,
        role: None,
        kind: PresenceKind::Ended,
    }
}

/// Fisher-Yates driven by a seed (xorshift): the shuffle is part of the shrinkable input.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn scenario(max_t: i64, max_grace: i64, max_events: usize) -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(gen_event(max_t), 0..max_events),
        // Where the `Ended` goes in store order, and when, or no `Ended`.
        prop::option::weighted(0.7, (any::<Index>(), 0..max_t + 10)),
        0..=max_grace,
        0..max_t + 20,
        prop::collection::vec(any::<Index>(), 0..6),
        any::<u64>(),
    )
        .prop_map(move |(gens, end, grace, until, dups, seed)| {
            let mut stored: Vec<PresenceEvent> = Vec::new();
            let end_pos = end.map(|(i, _)| i.index(gens.len() + 1));
            for (i, g) in gens.iter().enumerate() {
                if end_pos == Some(i) {
                    stored.push(ended(stored.len() as i64 + 1, end.map_or(0, |e| e.1)));
                }
                stored.push(to_event(stored.len() as i64 + 1, *g));
            }
            if end_pos == Some(gens.len()) {
                stored.push(ended(stored.len() as i64 + 1, end.map_or(0, |e| e.1)));
            }
            let mut delivered = stored.clone();
            if !stored.is_empty() {
                for d in dups {
                    delivered.push(stored[d.index(stored.len())].clone());
                }
            }
            shuffle(&mut delivered, seed);
            Scenario {
                stored,
                delivered,
                grace,
                until,
            }
        })
}

/// The end of the figure: the first `Ended`, or `until`.
fn stop_of(s: &Scenario) -> i64 {
    s.stored
        .iter()
        .filter(|e| e.kind == PresenceKind::Ended)
        .map(|e| secs(e.at))
        .fold(s.until, i64::min)
}

fn check_against_reference(s: &Scenario) -> Result<(), TestCaseError> {
    let grace = Duration::seconds(s.grace);
    let got = billable_seconds(&s.delivered, grace, t(s.until));
    let want = reference(&s.delivered, s.grace, s.until);
    prop_assert_eq!(got, want, "delivered: against the reference");
    prop_assert_eq!(
        reference(&s.stored, s.grace, s.until),
        want,
        "the reference itself ignores order and duplicates"
    );

    // Invariant under shuffling and duplication: the very same intervals.
    let stored = billable_intervals(&s.stored, grace, t(s.until));
    let delivered = billable_intervals(&s.delivered, grace, t(s.until));
    prop_assert_eq!(&stored, &delivered);

    // Well formed: sorted, disjoint, non-empty, inside [start, stop).
    let stop = stop_of(s);
    for w in delivered.windows(2) {
        prop_assert!(w[0].end < w[1].start, "disjoint and not touching: {:?}", w);
    }
    for i in &delivered {
        prop_assert!(i.start < i.end);
        prop_assert!(i.start >= t(0) && i.end <= t(stop.max(0)));
    }
    // Never more than the session lasted.
    prop_assert!(got <= stop.max(0), "{got} > {stop}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A crowded short session: many events at the same instant, gaps around the grace.
    #[test]
    fn billable_seconds_match_the_reference_dense(s in scenario(40, 12, 24)) {
        check_against_reference(&s)?;
    }

    /// A longer session with sparser events and a wider grace window.
    #[test]
    fn billable_seconds_match_the_reference_sparse(s in scenario(240, 60, 32)) {
        check_against_reference(&s)?;
    }

    /// Anything delivered at or after the `Ended` changes nothing, whatever its seq.
    #[test]
    fn events_after_ended_change_nothing(
        s in scenario(60, 20, 24),
        extra in prop::collection::vec((gen_event(1), 0..40i64, 0..60i64), 1..5),
    ) {
        let Some(end) = s.stored.iter().filter(|e| e.kind == PresenceKind::Ended).map(|e| secs(e.at)).min() else {
            return Ok(());
        };
        let grace = Duration::seconds(s.grace);
        let before = billable_intervals(&s.delivered, grace, t(s.until));
        let mut more = s.delivered.clone();
        for (g, delay, seq) in extra {
            let mut e = to_event(seq, g);
            e.at = t(end + delay);
            more.push(e);
        }
        // And a second, later end.
        more.push(ended(1_000, end + 5));
        prop_assert_eq!(before, billable_intervals(&more, grace, t(s.until)));
    }
}

/// The reference agrees with the hand-made rows of `billing.rs` (a check of the checker).
#[test]
fn the_reference_on_known_cases() {
    let on = |seq, at, p: ParticipantId, role| PresenceEvent {
        seq,
        at: t(at),
        participant: Some(p),
        role: Some(role),
        kind: PresenceKind::MediaConnected,
    };
    let off = |seq, at, p: ParticipantId, role| PresenceEvent {
        kind: PresenceKind::MediaDisconnected,
        ..on(seq, at, p, role)
    };
    let restart = |seq, at| PresenceEvent {
        kind: PresenceKind::NodeRestart,
        participant: None,
        role: None,
        ..ended(seq, at)
    };
    let k = Role::Kine;
    let p = Role::Patient;
    #[rustfmt::skip]
    let cases: Vec<(Vec<PresenceEvent>, i64)> = vec![
        (vec![on(1, 0, KINE, k), on(2, 10, PATIENT, p), off(3, 70, PATIENT, p), ended(4, 100)], 60),
        // 20 s gap, grace 30: bridged. 50 s gap: not.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), off(3, 40, PATIENT, p), on(4, 60, PATIENT, p), ended(5, 100)], 100),
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), off(3, 40, PATIENT, p), on(4, 90, PATIENT, p), ended(5, 100)], 50),
        // A gap of exactly the grace is bridged.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), off(3, 40, PATIENT, p), on(4, 70, PATIENT, p), ended(5, 100)], 100),
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), off(3, 40, PATIENT, p), on(4, 71, PATIENT, p), ended(5, 100)], 69),
        // Node restart, both back inside the grace.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), restart(3, 50), on(4, 60, KINE, k), on(5, 62, PATIENT, p), ended(6, 100)], 100),
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), restart(3, 50), ended(4, 300)], 50),
        // Same instant: off then on (seq order) keeps the participant connected.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), off(3, 20, PATIENT, p), on(4, 20, PATIENT, p), ended(5, 30)], 30),
        // The companion's media never counts.
        (vec![on(1, 0, KINE, k), on(2, 0, COMPANION, Role::Companion), ended(3, 30)], 0),
    ];
    for (i, (events, want)) in cases.into_iter().enumerate() {
        assert_eq!(reference(&events, 30, 1_000), want, "row {i}: reference");
        assert_eq!(
            billable_seconds(&events, Duration::seconds(30), t(1_000)),
            want,
            "row {i}: billing"
        );
    }
}
