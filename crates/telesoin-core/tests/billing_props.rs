//! Property tests for billable time: random presence events for one kiné and one patient (and a
//! companion, whose media never counts): media reports with and without video, heartbeats,
//! hang-ups and leaves (`Left`, also at instants in the past, as replayed hang-ups are), losses
//! reported on rejoin (`MediaLost`), rejoins, socket losses, node restarts (session-wide or of
//! one participant) and an `Ended` at a random point or none; delivered duplicated and shuffled
//! with their original seq, and cut after every event (a crash), against a brute-force reference
//! computed second by second.
//!
//! The reference is written from the rules in `billing.rs`'s module doc, not from its code: at
//! each second `s`, for each participant,
//! - `a` is its last own event at or before `s` (order: time, then seq), `b` the next one (none
//!   if at or after the stop); the state at `a` is that of its last media report at or before `a`, off
//!   after a `Left` or a `MediaLost`, off before any report;
//! - `s` counts iff the state is connected and either the knowledge was continuous from `a` to
//!   `b` (or the stop): at most `gap` seconds and no restart of this participant in `(a, b]`; or
//!   `b` is a claim (joined, reconnected, media lost, left) at most `grace` after the last restart
//!   in `(a, b]`, or after `a` when there is none;
//! - nothing counts from the first `Ended` on, nor from `until` on, and nothing that happens
//!   from then on (a restart included) changes what came before;
//! - billable: both roles count with `video_in` true and `video_out` not false (a camera turned
//!   off sends black frames: the far side still receives "video"), or just count, billing
//!   audio-only;
//!   audio-only: both count, not billable-by-video.
//!
//! All times are whole seconds, so counting seconds on the grid is exact.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use telesoin_core::ParticipantId;
use telesoin_core::billing::{
    Figures, Interval, MediaReport, Policy, PresenceEvent, PresenceKind, figures,
};
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

#[derive(Debug, Clone, Copy)]
struct Params {
    grace: i64,
    gap: i64,
    audio: bool,
    until: i64,
}

impl Params {
    fn policy(&self) -> Policy {
        Policy {
            grace: Duration::seconds(self.grace),
            evidence_gap: Duration::seconds(self.gap),
            bill_audio_only: self.audio,
        }
    }
}

/// The reference: (billable, audio-only) seconds, one instant at a time.
fn reference(events: &[PresenceEvent], p: &Params) -> (i64, i64) {
    let mut events: Vec<&PresenceEvent> = events.iter().collect();
    events.sort_by_key(|e| e.seq);
    events.dedup_by_key(|e| e.seq);
    let key = |e: &PresenceEvent| (secs(e.at), e.seq);
    let stop = events
        .iter()
        .filter(|e| e.kind == PresenceKind::Ended)
        .map(|e| secs(e.at))
        .fold(p.until, i64::min)
        .max(0);
    let own = |who: ParticipantId| -> Vec<&PresenceEvent> {
        let mut v: Vec<&PresenceEvent> = events
            .iter()
            .copied()
            .filter(|e| e.participant == Some(who) && e.kind != PresenceKind::NodeRestart)
            .collect();
        v.sort_by_key(|e| key(e));
        v
    };
    let restarts = |who: ParticipantId| -> Vec<i64> {
        events
            .iter()
            .filter(|e| e.kind == PresenceKind::NodeRestart)
            .filter(|e| e.participant.is_none() || e.participant == Some(who))
            .map(|e| secs(e.at))
            .filter(|at| *at < stop)
            .collect()
    };
    let is_claim = |k: PresenceKind| {
        matches!(
            k,
            PresenceKind::Joined
                | PresenceKind::Reconnected
                | PresenceKind::MediaLost
                | PresenceKind::Left
        )
    };
    // (counts, with video) of one participant at second `s`.
    let at = |who: ParticipantId, s: i64| -> (bool, bool) {
        let own = own(who);
        let restarts = restarts(who);
        let Some(ai) = own.iter().rposition(|e| secs(e.at) <= s) else {
            return (false, false);
        };
        let a = own[ai];
        let state = own[..=ai]
            .iter()
            .rev()
            .find_map(|e| match e.kind {
                PresenceKind::Left | PresenceKind::MediaLost => Some(MediaReport::default()),
                _ => e.media,
            })
            .unwrap_or_default();
        if !state.connected {
            return (false, false);
        }
        let b = own.get(ai + 1).filter(|b| secs(b.at) < stop);
        let end = b.map_or(stop, |b| secs(b.at));
        let last_restart = |to: i64| {
            restarts
                .iter()
                .copied()
                .filter(|r| *r > secs(a.at) && *r <= to)
                .max()
        };
        let continuous = end - secs(a.at) <= p.gap && last_restart(end).is_none();
        let claimed = b.is_some_and(|b| {
            is_claim(b.kind)
                && secs(b.at) <= last_restart(secs(b.at)).unwrap_or(secs(a.at)) + p.grace
        });
        let counts = continuous || claimed;
        // Video: received, and the own camera not reported off (black frames from a camera
        // turned off keep the far side's `video_in` true).
        let video = state.video_in == Some(true) && state.video_out != Some(false);
        (counts, counts && video)
    };
    let members = |role: Role| -> Vec<ParticipantId> {
        let mut v: Vec<ParticipantId> = events
            .iter()
            .filter(|e| e.role == Some(role))
            .filter_map(|e| e.participant)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let (kines, patients) = (members(Role::Kine), members(Role::Patient));
    let (mut billable, mut audio) = (0, 0);
    for s in 0..stop {
        let side = |ps: &[ParticipantId]| {
            ps.iter()
                .map(|w| at(*w, s))
                .fold((false, false), |x, y| (x.0 || y.0, x.1 || y.1))
        };
        let (k, p_) = (side(&kines), side(&patients));
        let connected = k.0 && p_.0;
        let video = k.1 && p_.1;
        if video || (p.audio && connected) {
            billable += 1;
        }
        if connected && !video {
            audio += 1;
        }
    }
    (billable, audio)
}

/// One generated event, before seqs are given.
#[derive(Debug, Clone, Copy)]
enum Gen {
    Participant(ParticipantId, Role, PresenceKind, Option<MediaReport>, i64),
    NodeRestart(Option<(ParticipantId, Role)>, i64),
}

fn participant() -> impl Strategy<Value = (ParticipantId, Role)> {
    prop_oneof![
        6 => Just((KINE, Role::Kine)),
        6 => Just((PATIENT, Role::Patient)),
        1 => Just((COMPANION, Role::Companion)),
    ]
}

fn flag() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![6 => Just(Some(true)), 2 => Just(Some(false)), 1 => Just(None)]
}

fn report(kind: PresenceKind) -> impl Strategy<Value = (PresenceKind, Option<MediaReport>)> {
    (any::<bool>(), flag(), flag()).prop_map(move |(c, vi, vo)| {
        let connected = match kind {
            PresenceKind::MediaConnected => true,
            PresenceKind::MediaDisconnected => false,
            _ => c,
        };
        (
            kind,
            Some(MediaReport {
                connected,
                video_in: vi,
                video_out: vo,
            }),
        )
    })
}

fn participant_kind() -> impl Strategy<Value = (PresenceKind, Option<MediaReport>)> {
    use PresenceKind::*;
    prop_oneof![
        8 => report(MediaConnected),
        3 => report(MediaDisconnected),
        8 => report(MediaHeartbeat),
        2 => Just((Left, None)),
        1 => Just((MediaLost, None)),
        2 => Just((SocketLost, None)),
        2 => Just((Reconnected, None)),
        1 => Just((Joined, None)),
        1 => Just((Admitted, None)),
        1 => Just((Incident, None)),
    ]
}

fn gen_event(max_t: i64) -> impl Strategy<Value = Gen> {
    prop_oneof![
        16 => (participant(), participant_kind(), 0..max_t)
            .prop_map(|((p, r), (k, m), at)| Gen::Participant(p, r, k, m, at)),
        1 => (0..max_t).prop_map(|at| Gen::NodeRestart(None, at)),
        1 => (participant(), 0..max_t).prop_map(|(p, at)| Gen::NodeRestart(Some(p), at)),
    ]
}

/// A scenario: the events in store order (seq 1, 2, ...), as delivered (duplicated, shuffled),
/// and the parameters of the figure.
#[derive(Debug, Clone)]
struct Scenario {
    stored: Vec<PresenceEvent>,
    delivered: Vec<PresenceEvent>,
    p: Params,
}

fn to_event(seq: i64, g: Gen) -> PresenceEvent {
    match g {
        Gen::Participant(p, role, kind, media, at) => PresenceEvent {
            media,
            ..PresenceEvent::new(seq, t(at), Some((p, role)), kind)
        },
        Gen::NodeRestart(who, at) => PresenceEvent::new(seq, t(at), who, PresenceKind::NodeRestart),
    }
}

fn ended(seq: i64, at: i64) -> PresenceEvent {
    PresenceEvent::new(seq, t(at), None, PresenceKind::Ended)
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
        (
            0..=max_grace,
            1..=max_grace.max(1),
            any::<bool>(),
            0..max_t + 20,
        ),
        prop::collection::vec(any::<Index>(), 0..6),
        any::<u64>(),
    )
        .prop_map(move |(gens, end, (grace, gap, audio, until), dups, seed)| {
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
                p: Params {
                    grace,
                    gap,
                    audio,
                    until,
                },
            }
        })
}

/// The end of the figure: the first `Ended`, or `until`.
fn stop_of(events: &[PresenceEvent], until: i64) -> i64 {
    events
        .iter()
        .filter(|e| e.kind == PresenceKind::Ended)
        .map(|e| secs(e.at))
        .fold(until, i64::min)
}

fn well_formed(list: &[Interval], stop: i64) -> Result<(), TestCaseError> {
    for w in list.windows(2) {
        prop_assert!(w[0].end < w[1].start, "disjoint and not touching: {:?}", w);
    }
    for i in list {
        prop_assert!(i.start < i.end);
        prop_assert!(i.start >= t(0) && i.end <= t(stop.max(0)));
    }
    Ok(())
}

fn check(events: &[PresenceEvent], p: &Params) -> Result<Figures, TestCaseError> {
    let f = figures(events, &p.policy(), t(p.until));
    let want = reference(events, p);
    prop_assert_eq!(
        (f.billable_seconds(), f.audio_only_seconds()),
        want,
        "against the reference"
    );
    let stop = stop_of(events, p.until);
    well_formed(&f.billable, stop)?;
    well_formed(&f.audio_only, stop)?;
    if !p.audio {
        // Billable (video) and audio-only never overlap.
        for b in &f.billable {
            for a in &f.audio_only {
                prop_assert!(b.end <= a.start || a.end <= b.start, "{:?} {:?}", b, a);
            }
        }
        prop_assert!(f.billable_seconds() + f.audio_only_seconds() <= stop.max(0));
    }
    Ok(f)
}

fn check_against_reference(s: &Scenario) -> Result<(), TestCaseError> {
    let delivered = check(&s.delivered, &s.p)?;
    // Invariant under shuffling and duplication: the very same intervals.
    let stored = figures(&s.stored, &s.p.policy(), t(s.p.until));
    prop_assert_eq!(&stored, &delivered);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A crowded short session: many events at the same instant, gaps around the bounds.
    #[test]
    fn figures_match_the_reference_dense(s in scenario(40, 12, 24)) {
        check_against_reference(&s)?;
    }

    /// A longer session with sparser events and wider bounds.
    #[test]
    fn figures_match_the_reference_sparse(s in scenario(240, 60, 32)) {
        check_against_reference(&s)?;
    }

    /// A crash after any event: what was persisted up to it, then a restart and an end after
    /// which nobody came back, bills nothing past the last persisted event; and every cut,
    /// shuffled, agrees with the reference.
    #[test]
    fn a_crash_after_any_event_bills_nothing_without_evidence(
        s in scenario(60, 20, 20),
        down in 1..30i64,
        after in 1..60i64,
    ) {
        for k in 0..=s.stored.len() {
            let mut cut: Vec<PresenceEvent> = s.stored[..k].to_vec();
            let last = cut.iter().map(|e| secs(e.at)).max().unwrap_or(0);
            check(&cut, &s.p)?;
            let seq = s.stored.len() as i64 + 10;
            cut.push(PresenceEvent::new(seq, t(last + down), None, PresenceKind::NodeRestart));
            cut.push(ended(seq + 1, last + down + after));
            let p = Params { until: 10_000, ..s.p };
            let mut shuffled = cut.clone();
            shuffle(&mut shuffled, k as u64 + 7);
            let f = check(&shuffled, &p)?;
            for i in f.billable.iter().chain(&f.audio_only) {
                prop_assert!(i.end <= t(last), "billed past the last evidence: {:?} > {}", i, last);
            }
        }
    }

    /// A hang-up (or a leave, a refusal) closes the participant's time at once: with nothing of
    /// the patient's after it, nothing is billed from it on, whatever the grace.
    #[test]
    fn nothing_is_billed_after_a_hang_up(s in scenario(60, 30, 24), at in 0..60i64) {
        let mut events: Vec<PresenceEvent> = s
            .delivered
            .iter()
            .filter(|e| e.participant != Some(PATIENT) || secs(e.at) < at)
            .cloned()
            .collect();
        events.push(PresenceEvent::new(9_999, t(at), Some((PATIENT, Role::Patient)), PresenceKind::Left));
        let f = check(&events, &s.p)?;
        for i in f.billable.iter().chain(&f.audio_only) {
            prop_assert!(i.end <= t(at), "{:?} after the hang-up at {}", i, at);
        }
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
        let policy = s.p.policy();
        let before = figures(&s.delivered, &policy, t(s.p.until));
        let mut more = s.delivered.clone();
        for (g, delay, seq) in extra {
            let mut e = to_event(1_000 + seq, g);
            e.at = t(end + delay);
            more.push(e);
        }
        // And a second, later end.
        more.push(ended(2_000, end + 5));
        prop_assert_eq!(before, figures(&more, &policy, t(s.p.until)));
    }

    /// Billing audio-only adds exactly the audio-only time.
    #[test]
    fn billing_audio_only_adds_the_audio_only_time(s in scenario(60, 20, 24)) {
        let video = Params { audio: false, ..s.p };
        let audio = Params { audio: true, ..s.p };
        let v = figures(&s.delivered, &video.policy(), t(s.p.until));
        let a = figures(&s.delivered, &audio.policy(), t(s.p.until));
        prop_assert_eq!(a.billable_seconds(), v.billable_seconds() + v.audio_only_seconds());
        prop_assert_eq!(a.audio_only, v.audio_only);
    }
}

/// The reference agrees with hand-made cases (a check of the checker).
#[test]
fn the_reference_on_known_cases() {
    let media = |seq, at, p: ParticipantId, role, kind, vi| PresenceEvent {
        media: Some(MediaReport {
            connected: kind != PresenceKind::MediaDisconnected,
            video_in: vi,
            video_out: vi,
        }),
        ..PresenceEvent::new(seq, t(at), Some((p, role)), kind)
    };
    let on = |seq, at, p, role| media(seq, at, p, role, PresenceKind::MediaConnected, Some(true));
    let audio =
        |seq, at, p, role| media(seq, at, p, role, PresenceKind::MediaConnected, Some(false));
    let hb = |seq, at, p, role| media(seq, at, p, role, PresenceKind::MediaHeartbeat, Some(true));
    let off = |seq, at, p, role| media(seq, at, p, role, PresenceKind::MediaDisconnected, None);
    let kind = |seq, at, p, role, kind| PresenceEvent::new(seq, t(at), Some((p, role)), kind);
    let restart = |seq, at| PresenceEvent::new(seq, t(at), None, PresenceKind::NodeRestart);
    let k = Role::Kine;
    let p = Role::Patient;
    use PresenceKind::{Joined, Left, MediaLost};
    #[rustfmt::skip]
    let cases: Vec<(Vec<PresenceEvent>, (i64, i64))> = vec![
        (vec![on(1, 0, KINE, k), on(2, 10, PATIENT, p), off(3, 20, PATIENT, p), ended(4, 20)], (10, 0)),
        (vec![on(1, 0, KINE, k), audio(2, 10, PATIENT, p), ended(3, 20)], (0, 10)),
        // No evidence for more than the gap (22 s): nothing.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), ended(3, 23)], (0, 0)),
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), hb(3, 15, KINE, k), hb(4, 15, PATIENT, p), ended(5, 30)], (30, 0)),
        // A media gap of 5 s is not bridged; a hang-up is not bridged by a rejoin.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), off(3, 5, PATIENT, p), on(4, 10, PATIENT, p), ended(5, 20)], (15, 0)),
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), kind(3, 5, PATIENT, p, Left), kind(4, 8, PATIENT, p, Joined), ended(5, 20)], (5, 0)),
        // Restart at 12, the kiné ends at 14: the last evidence is at 10.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), hb(3, 10, KINE, k), hb(4, 10, PATIENT, p), restart(5, 12), ended(6, 14)], (10, 0)),
        // Both rejoin after the restart; the patient lost its media at 11.
        (vec![on(1, 0, KINE, k), on(2, 0, PATIENT, p), hb(3, 10, KINE, k), hb(4, 10, PATIENT, p), restart(5, 12),
              kind(6, 13, KINE, k, Joined), kind(7, 11, PATIENT, p, MediaLost), kind(8, 14, PATIENT, p, Joined), ended(9, 20)], (11, 0)),
        // The companion's media never counts.
        (vec![on(1, 0, KINE, k), on(2, 0, COMPANION, Role::Companion), ended(3, 20)], (0, 0)),
    ];
    let params = Params {
        grace: 30,
        gap: 22,
        audio: false,
        until: 1_000,
    };
    for (i, (events, want)) in cases.into_iter().enumerate() {
        assert_eq!(reference(&events, &params), want, "row {i}: reference");
        let f = figures(&events, &params.policy(), t(1_000));
        assert_eq!(
            (f.billable_seconds(), f.audio_only_seconds()),
            want,
            "row {i}: billing"
        );
    }
}
