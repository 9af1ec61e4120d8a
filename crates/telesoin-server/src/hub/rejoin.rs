//! Rejoins, bounded (issue 10): every join appends events to the session's record, and the
//! per-socket rate limit does not stop a client that reconnects in a loop. So a seat, whatever
//! link it uses, and a link, whichever seat it names, each have a token bucket: `burst` joins
//! at once, then `per_minute`. Past them the join is refused `rejoin_too_frequent` (with
//! `retry_after_seconds`) before anything is written. A genuine client reconnecting after a
//! network change or a restart stays far below it (the web client backs off).
//!
//! In memory, per node: in a cluster a client that moves between nodes is bounded per node. The
//! number of keys is bounded; full buckets are forgotten first.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use telesoin_core::ParticipantId;
use tokio::time::Instant;
use uuid::Uuid;

/// Keys tracked at most; past them, full (idle) buckets are forgotten.
const MAX_KEYS: usize = 200_000;

#[derive(Debug, Clone, Copy)]
pub struct RejoinPolicy {
    /// Joins at once (the first one included).
    pub burst: u32,
    /// Then this many a minute.
    pub per_minute: u32,
}

impl Default for RejoinPolicy {
    fn default() -> Self {
        RejoinPolicy {
            burst: 10,
            per_minute: 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Seat(ParticipantId),
    Link(Uuid),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub(crate) struct Rejoins {
    policy: RejoinPolicy,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl Rejoins {
    pub(crate) fn new(policy: RejoinPolicy) -> Self {
        Rejoins {
            policy,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: Bucket, now: Instant) -> Bucket {
        let rate = f64::from(self.policy.per_minute.max(1)) / 60.0;
        let burst = f64::from(self.policy.burst.max(1));
        let tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        Bucket { tokens, at: now }
    }

    /// Takes one join for this seat and this link, or says how long to wait (nothing taken).
    pub(crate) fn take(&self, seat: ParticipantId, link: Uuid) -> Result<(), Duration> {
        self.take_at(seat, link, Instant::now())
    }

    /// How long this seat and this link must wait before their next join (whole seconds, at
    /// least one), or None when they may join now; nothing is taken. What a refused join tells
    /// its client as `retry_after_seconds`.
    pub(crate) fn wait(&self, seat: ParticipantId, link: Uuid) -> Option<Duration> {
        self.wait_at(seat, link, Instant::now())
    }

    fn wait_at(&self, seat: ParticipantId, link: Uuid, now: Instant) -> Option<Duration> {
        let buckets = self.buckets.lock();
        self.shortfall(&buckets, seat, link, now).1
    }

    /// The seat's and the link's buckets refilled to `now`, and the wait when either is empty.
    fn shortfall(
        &self,
        buckets: &HashMap<Key, Bucket>,
        seat: ParticipantId,
        link: Uuid,
        now: Instant,
    ) -> ([(Key, Bucket); 2], Option<Duration>) {
        let full = Bucket {
            tokens: f64::from(self.policy.burst.max(1)),
            at: now,
        };
        let rate = f64::from(self.policy.per_minute.max(1)) / 60.0;
        let refilled = [Key::Seat(seat), Key::Link(link)]
            .map(|k| (k, buckets.get(&k).map_or(full, |b| self.refill(*b, now))));
        let short = refilled
            .iter()
            .filter(|(_, b)| b.tokens < 1.0)
            .map(|(_, b)| (1.0 - b.tokens) / rate)
            .fold(0.0_f64, f64::max);
        let wait = (short > 0.0).then(|| Duration::from_secs_f64(short.ceil().max(1.0)));
        (refilled, wait)
    }

    fn take_at(&self, seat: ParticipantId, link: Uuid, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock();
        let (refilled, wait) = self.shortfall(&buckets, seat, link, now);
        if let Some(wait) = wait {
            return Err(wait);
        }
        if buckets.len() >= MAX_KEYS {
            let burst = f64::from(self.policy.burst.max(1));
            buckets.retain(|_, b| self.refill(*b, now).tokens < burst);
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        for (k, mut b) in refilled {
            b.tokens -= 1.0;
            buckets.insert(k, b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_and_a_link_each_have_a_burst_then_a_rate() {
        let r = Rejoins::new(RejoinPolicy {
            burst: 3,
            per_minute: 6,
        });
        let t0 = Instant::now();
        let seat = ParticipantId(Uuid::new_v4());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            assert_eq!(r.take_at(seat, a, t0), Ok(()));
        }
        // The link's bucket and the seat's are both empty: one join every 10 s.
        assert_eq!(r.take_at(seat, a, t0), Err(Duration::from_secs(10)));
        // What a refused client is told, asked as often as one likes: nothing is taken.
        assert_eq!(r.wait_at(seat, a, t0), Some(Duration::from_secs(10)));
        assert_eq!(
            r.wait_at(seat, a, t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            r.wait_at(ParticipantId(Uuid::new_v4()), Uuid::new_v4(), t0),
            None
        );
        // Another link of the same seat: the seat's bucket still says no.
        assert!(r.take_at(seat, b, t0).is_err());
        // The same link naming another seat: the link's bucket says no.
        assert!(r.take_at(ParticipantId(Uuid::new_v4()), a, t0).is_err());
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(r.take_at(seat, a, t10), Ok(()));
        assert!(r.take_at(seat, a, t10).is_err());
        // The refused tries took nothing: link b has its whole burst for a fresh seat.
        let other = ParticipantId(Uuid::new_v4());
        for _ in 0..3 {
            assert_eq!(r.take_at(other, b, t10), Ok(()));
        }
    }
}
