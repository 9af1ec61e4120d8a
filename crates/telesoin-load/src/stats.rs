//! Percentiles of latency samples, and what `/proc` says of a server process (memory, CPU).

use serde::Serialize;

/// p50/p99/p999/max of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// From samples in nanoseconds (sorted here).
    pub fn of(mut ns: Vec<u64>) -> Percentiles {
        if ns.is_empty() {
            return Percentiles::default();
        }
        ns.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest sample with at least q of the samples at or below it.
            let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
            ns[rank - 1] as f64 / 1e6
        };
        Percentiles {
            count: ns.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ns[ns.len() - 1] as f64 / 1e6,
        }
    }
}

/// The resident memory of a process in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Linux reports process times in USER_HZ, which is 100 on every architecture it supports.
const USER_HZ: f64 = 100.0;

/// CPU seconds used so far by a process, user + system (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&text)
}

fn parse_stat_cpu(text: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=1000).map(|i| i * 1_000_000).collect());
        assert_eq!(
            (p.count, p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms),
            (1000, 500.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(Percentiles::of(vec![]).count, 0);
        assert_eq!(Percentiles::of(vec![3_000_000]).p999_ms, 3.0);
    }

    #[test]
    fn stat_fields_after_the_command_name() {
        let line = "4242 (tele soin) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100 1000 10";
        assert_eq!(parse_stat_cpu(line), Some(3.0));
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        assert!(rss_bytes(me).is_some_and(|b| b > 0));
    }
}

/// Calls so far of each command of a Redis server (`INFO commandstats`, over plain RESP), by
/// lower-case command name; `None` when it cannot be read.
pub async fn redis_calls(addr: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    conn.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        .await
        .ok()?;
    let mut reader = tokio::io::BufReader::new(conn);
    let mut head = String::new();
    reader.read_line(&mut head).await.ok()?;
    let len: usize = head.trim().strip_prefix('$')?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.ok()?;
    let text = String::from_utf8(body).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|f| f.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect(),
    )
}
