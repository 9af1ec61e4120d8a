//! Whether this node can keep its promises: the store takes writes, and the data directory has
//! room for them.
//!
//! A presence event that cannot be appended is a hole in the record a bill is drawn from, so a
//! failed append is not an incident of one call but a state of the node: from the first failure
//! the node is not ready (`/readyz` 503 with the reason), refuses new joins (`unavailable`) and
//! admits nobody (an admission is its persisted event), while calls already connected keep their
//! media, which is peer to peer. The node notes which sessions lost an event; once a write goes
//! through again, each of them gets an `incident` (`store_gap_{N}s`) so that the record says
//! there is a gap and how long it lasted. Free space is measured every few seconds and reported
//! before it runs out (`min_free_disk_mb`).
//!
//! Nothing here decides who may enter or what is billed: it only says whether writing works.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use telesoin_core::SessionId;

/// Since when, and why, writes fail; and the sessions that lost an event meanwhile.
#[derive(Debug, Clone)]
pub struct WriteGap {
    pub since: DateTime<Utc>,
    pub reason: String,
    pub sessions: BTreeSet<SessionId>,
}

#[derive(Debug)]
pub struct Health {
    data_dir: PathBuf,
    min_free_bytes: u64,
    gap: Mutex<Option<WriteGap>>,
    /// Free bytes of the data directory's filesystem at the last check (u64::MAX: unknown).
    free_bytes: AtomicU64,
    low_disk: AtomicBool,
}

/// The reason kept for /readyz: short, and never more than the database said.
fn short(reason: &str) -> String {
    reason.chars().take(160).collect()
}

impl Health {
    pub fn new(data_dir: PathBuf, min_free_bytes: u64) -> Self {
        Health {
            data_dir,
            min_free_bytes,
            gap: Mutex::new(None),
            free_bytes: AtomicU64::new(u64::MAX),
            low_disk: AtomicBool::new(false),
        }
    }

    /// An append (or another write the record needs) failed.
    pub fn write_failed(&self, session: Option<SessionId>, now: DateTime<Utc>, reason: &str) {
        let mut gap = self.gap.lock();
        let g = gap.get_or_insert_with(|| {
            tracing::error!(reason = %short(reason), "the store refuses writes: not ready, refusing joins");
            WriteGap {
                since: now,
                reason: short(reason),
                sessions: BTreeSet::new(),
            }
        });
        if let Some(s) = session {
            g.sessions.insert(s);
        }
    }

    /// The current gap, if writes are failing.
    pub fn gap(&self) -> Option<WriteGap> {
        self.gap.lock().clone()
    }

    pub fn writes_failing(&self) -> bool {
        self.gap.lock().is_some()
    }

    /// Writing works again: the gap is over. Returns it so that it can be recorded; sessions
    /// that lost an event after `seen` was read stay for the next round.
    pub fn writes_back(&self, seen: &WriteGap) -> Option<WriteGap> {
        let mut gap = self.gap.lock();
        let current = gap.as_mut()?;
        for s in &seen.sessions {
            current.sessions.remove(s);
        }
        if current.sessions.is_empty() {
            tracing::info!(
                since = %current.since,
                "the store takes writes again: ready"
            );
            gap.take()
        } else {
            None
        }
    }

    /// Measures the free space of the data directory.
    pub fn check_disk(&self) {
        match rustix::fs::statvfs(&self.data_dir) {
            Ok(s) => {
                let free = s.f_bavail.saturating_mul(s.f_frsize);
                self.free_bytes.store(free, Ordering::Relaxed);
                let low = free < self.min_free_bytes;
                if low && !self.low_disk.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        free_bytes = free,
                        min_free_bytes = self.min_free_bytes,
                        "data directory nearly full: not ready"
                    );
                } else if !low && self.low_disk.swap(false, Ordering::Relaxed) {
                    tracing::info!(free_bytes = free, "data directory has room again");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot measure the data directory's free space"),
        }
    }

    /// Free bytes at the last check, if known.
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.free_bytes.load(Ordering::Relaxed)).filter(|b| *b != u64::MAX)
    }

    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
    }

    /// Why the node is not ready, as far as writing goes; None when it is.
    pub fn not_ready(&self) -> Option<String> {
        if let Some(g) = self.gap.lock().as_ref() {
            return Some(format!("store cannot write: {}", g.reason));
        }
        if self.low_disk.load(Ordering::Relaxed) {
            let free = self.free_bytes().unwrap_or(0);
            return Some(format!(
                "data directory nearly full: {} MB free, min_free_disk_mb is {}",
                free / 1_000_000,
                self.min_free_bytes / 1_000_000
            ));
        }
        None
    }
}
