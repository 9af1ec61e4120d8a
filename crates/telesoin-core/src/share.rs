//! Télésoin share: how much of a kiné's activity is done remotely.
//!
//! The convention (avenant 7, 2023) is reported to cap télésoin at a share of a kiné's activity
//! (reported 20 %; domain.md says to verify before relying on it). The cap is therefore a
//! parameter: [`CONVENTION_SHARE_CAP_PERCENT`] is the default the configuration starts from.
//! "Over the cap" means strictly above it: exactly 20 % is within a 20 % cap.

use serde::{Deserialize, Serialize};

/// The reported convention cap, in percent of sessions, used when nothing else is configured.
pub const CONVENTION_SHARE_CAP_PERCENT: u32 = 20;

/// The share of sessions done remotely over some period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub remote_sessions: u32,
    /// Remote and in-person sessions.
    pub total_sessions: u64,
    /// `remote / total` in [0, 1], for display; 0 when there is no session at all.
    pub ratio: f64,
    /// Strictly above the cap, decided in integers (never on the float).
    pub over_cap: bool,
    /// Within the cap now, but one more remote session (and nothing else) would take the
    /// share above it: the warning shown before the cap is exceeded.
    pub next_exceeds: bool,
}

/// The share of `remote_sessions` among all sessions, against a cap of `cap_percent` %.
pub fn telesoin_share(remote_sessions: u32, in_person_sessions: u32, cap_percent: u32) -> Share {
    let remote = u64::from(remote_sessions);
    let total = remote + u64::from(in_person_sessions);
    let ratio = if total == 0 {
        0.0
    } else {
        remote as f64 / total as f64
    };
    Share {
        remote_sessions,
        total_sessions: total,
        ratio,
        // remote / total > cap / 100, without division.
        over_cap: remote * 100 > u64::from(cap_percent) * total,
        next_exceeds: remote * 100 <= u64::from(cap_percent) * total
            && (remote + 1) * 100 > u64::from(cap_percent) * (total + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_table() {
        let cap = CONVENTION_SHARE_CAP_PERCENT;
        for (remote, in_person, cap, ratio, over) in [
            (0, 0, cap, 0.0, false),
            (0, 10, cap, 0.0, false),
            (1, 4, cap, 0.2, false), // exactly 20 %: at the cap, not over
            (2, 8, cap, 0.2, false),
            (21, 79, cap, 0.21, true),
            (1, 3, cap, 0.25, true),
            (1, 0, cap, 1.0, true),
            (20, 81, cap, 20.0 / 101.0, false), // 19.8 %
            (1, 4, 0, 0.2, true),
            (0, 4, 0, 0.0, false),
            (5, 5, 50, 0.5, false),
            (5, 5, 100, 0.5, false),
            (u32::MAX, u32::MAX, 50, 0.5, false), // no overflow
        ] {
            let s = telesoin_share(remote, in_person, cap);
            assert_eq!(
                (s.ratio, s.over_cap),
                (ratio, over),
                "{remote}/{in_person} cap {cap}"
            );
            assert_eq!(s.total_sessions, u64::from(remote) + u64::from(in_person));
        }
    }

    #[test]
    fn the_warning_comes_before_the_cap_is_exceeded() {
        let cap = CONVENTION_SHARE_CAP_PERCENT;
        // (remote, in person, over now, one more remote session would be over)
        for (remote, in_person, over, next) in [
            (0, 0, false, true),    // a first remote session with no activity is 100 %
            (0, 10, false, false),  // 1/11 = 9 %
            (1, 8, false, false),   // 2/10 = 20 %: at the cap, not over
            (1, 4, false, true),    // 20 % now; 2/6 = 33 %
            (2, 8, false, true),    // 20 % now; 3/11 = 27 %
            (2, 12, false, false),  // 3/15 = 20 %
            (2, 11, false, true),   // 3/14 = 21.4 %
            (19, 81, false, false), // 20/101 = 19.8 %
            (20, 80, false, true),  // 21/101 = 20.8 %
            (21, 79, true, false),  // already over: the cap state says so, not the warning
        ] {
            let s = telesoin_share(remote, in_person, cap);
            assert_eq!(
                (s.over_cap, s.next_exceeds),
                (over, next),
                "{remote}/{in_person}"
            );
        }
        assert!(
            !telesoin_share(5, 5, 100).next_exceeds,
            "a 100 % cap never warns"
        );
    }
}
