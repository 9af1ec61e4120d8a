//! The audit chain: each security event is hashed with the hash of the row before it, so a row
//! changed, removed or moved breaks the chain from that row on.
//!
//! `hash(n) = SHA-256(DOMAIN || hash(n-1) || encode(row n))`, with `hash(0)` = the genesis value
//! (all zeros for a fresh chain; after old rows are purged, the stored hash of the last purged
//! row, so what remains still verifies). The encoding is canonical and unambiguous: the two
//! integers as 8 bytes big-endian, then every text as its byte length (8 bytes big-endian) and its
//! UTF-8 bytes, in a fixed order. No separator can be forged by a field's content.
//!
//! What a chain alone cannot show: rows cut off at the *end* (the remaining prefix is a valid
//! chain), or a chain rewritten in full by someone who can write every row. Detecting those
//! needs the head (last seq and hash) kept somewhere else; [`verify_chain_with_head`] checks it.
//!
//! Pure computation: the store reads and writes the rows.

use sha2::{Digest, Sha256};

/// Separates these hashes from any other SHA-256 use, and versions the encoding.
const DOMAIN: &[u8] = b"telesoin-audit-v1\0";

/// The genesis of a fresh chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// One audit row, as hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRowCanonical {
    /// The row's position in the chain (store order).
    pub seq: i64,
    /// When it happened, in milliseconds since the Unix epoch (UTC).
    pub at_millis: i64,
    /// Who: e.g. `kine:<uuid>`, `patient:<uuid>`, `system`.
    pub actor: String,
    /// What: a stable event code, e.g. `login_failed`, `admission_refused`.
    pub action: String,
    /// On what: e.g. `session:<uuid>`.
    pub subject: String,
    /// Details (a refusal code, an export range), never a secret.
    pub detail: String,
}

impl AuditRowCanonical {
    /// The canonical bytes of the row.
    pub fn encode(&self) -> Vec<u8> {
        let texts = [&self.actor, &self.action, &self.subject, &self.detail];
        let mut out = Vec::with_capacity(16 + texts.iter().map(|t| 8 + t.len()).sum::<usize>());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.at_millis.to_be_bytes());
        for t in texts {
            out.extend_from_slice(&(t.len() as u64).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        out
    }
}

/// The hash of `row` chained after `prev`.
pub fn chain_hash(prev: &[u8; 32], row: &AuditRowCanonical) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(row.encode());
    h.finalize().into()
}

/// The first row whose stored hash does not match the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at row {seq}")]
pub struct BrokenAt {
    /// The seq of that row, as stored. For a cut-off end found by [`verify_chain_with_head`],
    /// the seq of the missing head.
    pub seq: i64,
}

/// Checks rows, in store order, each with its stored hash, from `genesis`. Names the first row
/// that does not verify: a changed row (its own hash), a removed row (the row after the gap),
/// rows swapped (the first of them). Also refuses a seq that does not increase, so a row moved
/// with its hash recomputed is still named.
pub fn verify_chain(
    rows: &[(AuditRowCanonical, [u8; 32])],
    genesis: [u8; 32],
) -> Result<(), BrokenAt> {
    let mut prev = genesis;
    let mut last_seq: Option<i64> = None;
    for (row, stored) in rows {
        if last_seq.is_some_and(|s| row.seq <= s) || chain_hash(&prev, row) != *stored {
            return Err(BrokenAt { seq: row.seq });
        }
        last_seq = Some(row.seq);
        prev = *stored;
    }
    Ok(())
}

/// [`verify_chain`], and the chain ends at `head` = (seq, hash) kept elsewhere (e.g. in the
/// server's state or an export), which also detects rows cut off at the end.
pub fn verify_chain_with_head(
    rows: &[(AuditRowCanonical, [u8; 32])],
    genesis: [u8; 32],
    head: (i64, [u8; 32]),
) -> Result<(), BrokenAt> {
    verify_chain(rows, genesis)?;
    match rows.last() {
        Some((row, hash)) if (row.seq, *hash) == head => Ok(()),
        None if head.1 == genesis => Ok(()),
        _ => Err(BrokenAt { seq: head.0 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, action: &str, detail: &str) -> AuditRowCanonical {
        AuditRowCanonical {
            seq,
            at_millis: 1_800_000_000_000 + seq * 1_000,
            actor: "kine:0001".into(),
            action: action.into(),
            subject: "session:00ab".into(),
            detail: detail.into(),
        }
    }

    /// Five chained rows, seq 1..=5.
    fn chain() -> Vec<(AuditRowCanonical, [u8; 32])> {
        let mut prev = GENESIS;
        let actions = [
            "login_succeeded",
            "link_issued",
            "consent_recorded",
            "admitted",
            "session_ended",
        ];
        actions
            .iter()
            .zip(1..)
            .map(|(a, seq)| {
                let r = row(seq, a, "");
                prev = chain_hash(&prev, &r);
                (r, prev)
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(), GENESIS), Ok(()));
        assert_eq!(verify_chain(&[], GENESIS), Ok(()));
        let c = chain();
        let head = (5, c[4].1);
        assert_eq!(verify_chain_with_head(&c, GENESIS, head), Ok(()));
        assert_eq!(verify_chain_with_head(&[], GENESIS, (0, GENESIS)), Ok(()));
    }

    #[test]
    fn tampering_table() {
        type Tamper = fn(&mut Vec<(AuditRowCanonical, [u8; 32])>);
        let cases: Vec<(&str, Tamper, i64)> = vec![
            ("detail of row 3 changed", |c| c[2].0.detail = "x".into(), 3),
            (
                "actor of row 1 changed",
                |c| c[0].0.actor = "kine:0002".into(),
                1,
            ),
            (
                "action of row 5 changed",
                |c| c[4].0.action = "export".into(),
                5,
            ),
            (
                "subject of row 2 changed",
                |c| c[1].0.subject = "session:ffff".into(),
                2,
            ),
            ("time of row 4 changed", |c| c[3].0.at_millis += 1, 4),
            ("seq of row 2 changed", |c| c[1].0.seq = 7, 7),
            ("stored hash of row 2 changed", |c| c[1].1[0] ^= 1, 2),
            (
                "row 3 removed",
                |c| {
                    c.remove(2);
                },
                4,
            ),
            (
                "row 1 removed",
                |c| {
                    c.remove(0);
                },
                2,
            ),
            ("rows 2 and 3 swapped", |c| c.swap(1, 2), 3),
            ("last two rows swapped", |c| c.swap(3, 4), 5),
            (
                "row 5 moved first",
                |c| {
                    let r = c.remove(4);
                    c.insert(0, r);
                },
                5,
            ),
            (
                "row 2 duplicated",
                |c| {
                    let r = c[1].clone();
                    c.insert(2, r);
                },
                2,
            ),
            (
                "row 3 rewritten with its hash recomputed",
                |c| {
                    c[2].0.detail = "rewritten".into();
                    c[2].1 = chain_hash(&c[1].1, &c[2].0);
                },
                4,
            ),
        ];
        for (name, tamper, want) in cases {
            let mut c = chain();
            tamper(&mut c);
            assert_eq!(
                verify_chain(&c, GENESIS),
                Err(BrokenAt { seq: want }),
                "{name}"
            );
        }
    }

    #[test]
    fn a_cut_off_end_needs_the_head() {
        let full = chain();
        let head = (5, full[4].1);
        let cut = &full[..3];
        assert_eq!(
            verify_chain(cut, GENESIS),
            Ok(()),
            "a prefix is a valid chain"
        );
        assert_eq!(
            verify_chain_with_head(cut, GENESIS, head),
            Err(BrokenAt { seq: 5 })
        );
        assert_eq!(
            verify_chain_with_head(&[], GENESIS, head),
            Err(BrokenAt { seq: 5 })
        );
    }

    #[test]
    fn a_purged_prefix_verifies_from_its_last_hash() {
        let c = chain();
        assert_eq!(verify_chain(&c[2..], c[1].1), Ok(()));
        assert_eq!(verify_chain(&c[2..], GENESIS), Err(BrokenAt { seq: 3 }));
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        // Moving bytes between neighbouring fields changes the hash.
        let a = AuditRowCanonical {
            actor: "ab".into(),
            action: "c".into(),
            ..row(1, "", "")
        };
        let b = AuditRowCanonical {
            actor: "a".into(),
            action: "bc".into(),
            ..row(1, "", "")
        };
        assert_ne!(a.encode(), b.encode());
        assert_ne!(chain_hash(&GENESIS, &a), chain_hash(&GENESIS, &b));
        let e = row(1, "", "").encode();
        assert_eq!(
            e.len(),
            8 + 8 + 4 * 8 + "kine:0001".len() + "session:00ab".len()
        );
        // The hash depends on the previous one.
        assert_ne!(chain_hash(&GENESIS, &a), chain_hash(&[1; 32], &a));
    }

    /// A fixed vector, so that a change of encoding cannot go unnoticed (old chains would no
    /// longer verify): bump `DOMAIN` instead.
    #[test]
    fn known_answer() {
        let r = AuditRowCanonical {
            seq: 1,
            at_millis: 0,
            actor: "a".into(),
            action: "b".into(),
            subject: "c".into(),
            detail: "d".into(),
        };
        let hex: String = chain_hash(&GENESIS, &r)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, KNOWN);
    }

    const KNOWN: &str = "09397973d457c85ae58e09703450297819d927030e1d72dcb37900ce579cea70";
}
