//! Login throttling: per account (the e-mail address as typed, whether or not it exists) and per
//! client address (IPv6 by /64), exponential back-off then a short lockout.
//!
//! After the k-th consecutive failure on an account, the next attempt on it waits
//! `min(2^(k-2) s, lockout)` (nothing after the first failure; on an address the back-off starts
//! half-way to its limit); at `max_failures` the key is
//! locked for `lockout`. A key's count is forgotten `lockout` after its last failure, and an
//! account's on a successful login. Attempts refused while waiting are not checked (no password
//! hash is computed: a locked key answers at once, the same way for an address that has no
//! account). A browser that has logged into the account before carries a signed device cookie:
//! its attempts count on (account, device) instead, so an attacker elsewhere cannot lock the
//! kiné out of their own browser. The state is in memory, per node; it is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Keys tracked at most; beyond, the stalest are dropped (an attacker cycling addresses cannot
/// grow memory without bound).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Account(String),
    Address(IpAddr),
    Device { account: String, device: String },
}

impl Key {
    /// For the audit trail: which kind of key locked.
    pub fn scope(&self) -> &'static str {
        match self {
            Key::Account(_) => "account",
            Key::Address(_) => "address",
            Key::Device { .. } => "device",
        }
    }

    /// The normalised account name of an account key ("" for others).
    pub fn name(self) -> String {
        match self {
            Key::Account(a) | Key::Device { account: a, .. } => a,
            Key::Address(_) => String::new(),
        }
    }

    /// An account key from the address as typed.
    pub fn account(email: &str) -> Key {
        Key::Account(email.trim().to_lowercase())
    }

    /// An address key: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
    pub fn address(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(_) => Key::Address(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Address(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Key::Address(IpAddr::V6(std::net::Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures that lock an account (or an account on one device).
    pub account_failures: u32,
    /// Failures that lock a client address (across accounts: password spraying).
    pub address_failures: u32,
    /// How long a lock lasts; also the longest back-off, and how long a count is remembered.
    pub lockout: Duration,
}

/// The failure from which attempts wait: the second on an account, half-way to the lock on an
/// address (a practice behind one NAT address should not wait on every colleague's typo).
fn backoff_from(key: &Key, limit: u32) -> u32 {
    match key {
        Key::Address(_) => (limit / 2).max(2),
        _ => 2,
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    until: Instant,
}

pub struct LoginThrottle {
    policy: Policy,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// A failure that locked a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub key: Key,
    pub seconds: u64,
}

impl LoginThrottle {
    pub fn new(policy: Policy) -> Self {
        LoginThrottle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::Address(_) => self.policy.address_failures,
            _ => self.policy.account_failures,
        }
    }

    /// How long until an attempt on `keys` may be checked; None: now.
    pub fn wait(&self, keys: &[Key], now: Instant) -> Option<Duration> {
        let entries = self.entries.lock();
        keys.iter()
            .filter_map(|k| entries.get(k))
            .filter(|e| e.until > now)
            .map(|e| e.until - now)
            .max()
    }

    /// Counts a failure on each key; returns the keys this failure locked.
    pub fn failed(&self, keys: &[Key], now: Instant) -> Vec<Locked> {
        let lockout = self.policy.lockout;
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_KEYS {
            entries.retain(|_, e| now.saturating_duration_since(e.last) < lockout);
            if entries.len() >= MAX_KEYS {
                entries.clear();
            }
        }
        let mut locked = Vec::new();
        for key in keys {
            let limit = self.limit(key);
            let e = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                last: now,
                until: now,
            });
            if now.saturating_duration_since(e.last) >= lockout {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
            if e.failures >= limit {
                e.until = now + lockout;
                // Only the failure that reaches the limit announces the lock (not each one after).
                if e.failures == limit || e.failures % limit == 0 {
                    locked.push(Locked {
                        key: key.clone(),
                        seconds: lockout.as_secs(),
                    });
                }
            } else if e.failures >= backoff_from(key, limit) {
                let backoff =
                    Duration::from_secs(1 << (e.failures - backoff_from(key, limit)).min(30));
                e.until = now + backoff.min(lockout);
            }
        }
        locked
    }

    /// A successful login: the account's (or the device's) count is forgotten.
    pub fn succeeded(&self, keys: &[Key]) {
        let mut entries = self.entries.lock();
        for k in keys {
            if !matches!(k, Key::Address(_)) {
                entries.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(Policy {
            account_failures: 5,
            address_failures: 20,
            lockout: Duration::from_secs(300),
        })
    }

    #[test]
    fn back_off_doubles_then_locks_and_lapses() {
        let t = throttle();
        let k = [Key::account("A@x.fr ")];
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (failure number, wait after it)
        let table = [(1, None), (2, Some(s(1))), (3, Some(s(2))), (4, Some(s(4)))];
        let mut now = t0;
        for (n, wait) in table {
            assert!(t.failed(&k, now).is_empty(), "failure {n}");
            assert_eq!(t.wait(&k, now), wait, "after failure {n}");
            now += s(10);
        }
        let locked = t.failed(&k, now);
        assert_eq!(
            locked,
            vec![Locked {
                key: Key::account("a@x.fr"),
                seconds: 300
            }]
        );
        assert_eq!(t.wait(&k, now), Some(s(300)));
        assert_eq!(t.wait(&k, now + s(299)), Some(s(1)));
        assert_eq!(t.wait(&k, now + s(300)), None);
        // Remembered for `lockout` after the last failure, then forgotten.
        assert!(t.failed(&k, now + s(601)).is_empty());
        assert_eq!(t.wait(&k, now + s(601)), None);
    }

    #[test]
    fn success_forgets_the_account_not_the_address() {
        let t = throttle();
        let ip: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
        let keys = [Key::account("a@x.fr"), Key::address(ip)];
        let now = Instant::now();
        // Ten failures: the account locked (5), the address backs off (from half of 20).
        for _ in 0..10 {
            t.failed(&keys, now);
        }
        assert!(t.wait(&keys[..1], now).is_some());
        t.succeeded(&keys);
        assert_eq!(t.wait(&keys[..1], now), None);
        // Same /64: same address key.
        let other: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
        assert!(t.wait(&[Key::address(other)], now).is_some());
    }

    #[test]
    fn addresses_lock_later_than_accounts() {
        let t = throttle();
        let ip = Key::address("10.1.2.3".parse().expect("ip"));
        let now = Instant::now();
        for i in 0..19 {
            let account = Key::account(&format!("u{i}@x.fr"));
            let locked = t.failed(&[account, ip.clone()], now);
            assert!(locked.is_empty(), "{i}");
        }
        let locked = t.failed(&[Key::account("last@x.fr"), ip.clone()], now);
        assert_eq!(locked.len(), 1);
        assert_eq!(locked[0].key.scope(), "address");
        let mapped = Key::address("::ffff:10.1.2.3".parse().expect("ip"));
        assert_eq!(mapped, ip);
    }
}
