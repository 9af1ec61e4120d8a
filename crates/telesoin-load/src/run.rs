//! The orchestrator of a run: sessions, workers, phases, measurements and the report.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use uuid::Uuid;

use crate::setup::Api;
use crate::stats::{Percentiles, cpu_seconds, redis_calls, rss_bytes};
use crate::worker::{Admit, CloseReport, Command, JoinReport, Pair, RelayReport, Target};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The telesoin server's URL (`https://127.0.0.1:8443`, or `http://` with `tls = off`).
    #[arg(long)]
    pub url: String,
    /// A platform API key with sessions:write and links:write for `--kine`.
    #[arg(long, env = "TELESOIN_LOAD_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// The kiné the sessions are scheduled for (default: the key's first kiné).
    #[arg(long)]
    pub kine: Option<Uuid>,
    /// A second telesoin node of the same cluster (same database, same Redis): the patients
    /// join there, the kinés on `--url`, so that every relayed message crosses the nodes.
    #[arg(long)]
    pub patient_url: Option<String>,
    /// The telesoin server's process id, for its memory and CPU (`/proc`), comma-separated for
    /// several nodes (summed); none: not measured.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// The cluster's Redis (`HOST:PORT`, no password): its commands are counted over each
    /// telesoin relay window (`INFO commandstats`) and reported per relayed message.
    #[arg(long)]
    pub redis: Option<String>,
    /// A PeerJS server (`ws://127.0.0.1:9000`, started with path `/` and key `peerjs`): the
    /// same load shape runs against it, windows alternating with telesoin's.
    #[arg(long)]
    pub peerjs_url: Option<String>,
    #[arg(long)]
    pub peerjs_pid: Option<u32>,
    /// Sessions (kiné + patient sockets each).
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Total relayed messages per second, one window per rate and round (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub rates: Vec<f64>,
    /// Seconds of each relay window.
    #[arg(long, default_value_t = 10.0)]
    pub window_secs: f64,
    /// Windows per rate and target (telesoin, PeerJS, telesoin, ...).
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Sockets joining per second (0: as fast as they can, 64 pairs at a time per worker).
    #[arg(long, default_value_t = 500.0)]
    pub join_rate: f64,
    /// Worker processes per target (default: one per 9,000 sockets, at least 2).
    #[arg(long)]
    pub procs: Option<usize>,
    /// How patients are let in.
    #[arg(long, value_enum, default_value = "auto")]
    pub admit: Admit,
    /// Seconds to wait after the joins before reading idle memory.
    #[arg(long, default_value_t = 5.0)]
    pub settle_secs: f64,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A shell command run during telesoin's join phase only (`TELESOIN_PID` in its
    /// environment), stopped with SIGINT when the joins are done: e.g.
    /// `perf record -g -p $TELESOIN_PID -o join.perf`.
    #[arg(long)]
    pub during_join: Option<String>,
}

/// Starts `cmd` (sh -c) for the join phase.
fn start_hook(cmd: &str, pid: Option<u32>) -> anyhow::Result<tokio::process::Child> {
    let mut c = tokio::process::Command::new("sh");
    c.args(["-c", &format!("exec {cmd}")]);
    if let Some(pid) = pid {
        c.env("TELESOIN_PID", pid.to_string());
    }
    Ok(c.spawn()?)
}

/// Stops the join-phase command with SIGINT and waits for it (10 s at most).
async fn stop_hook(mut child: tokio::process::Child) {
    use rustix::process::{Pid, Signal, kill_process};
    if let Some(pid) = child.id().and_then(|p| Pid::from_raw(p as i32)) {
        let _ = kill_process(pid, Signal::INT);
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

struct WorkerProc {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl WorkerProc {
    async fn spawn(
        target: Target,
        base: &str,
        addr: SocketAddr,
        source: IpAddr,
        admit: Admit,
        patient: Option<&(String, SocketAddr)>,
    ) -> anyhow::Result<WorkerProc> {
        let exe = std::env::current_exe()?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("worker")
            .args(["--target", target.name(), "--base", base])
            .args(["--addr", &addr.to_string(), "--source", &source.to_string()])
            .args([
                "--admit",
                match admit {
                    Admit::Auto => "auto",
                    Admit::Kine => "kine",
                },
            ]);
        if let Some((pbase, paddr)) = patient {
            cmd.args([
                "--patient-base",
                pbase,
                "--patient-addr",
                &paddr.to_string(),
            ]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        Ok(WorkerProc {
            _child: child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn ask<T: DeserializeOwned>(&mut self, cmd: &Command) -> anyhow::Result<T> {
        let mut line = serde_json::to_string(cmd)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let reply = self
            .lines
            .next_line()
            .await?
            .context("a worker stopped (see its messages above)")?;
        Ok(serde_json::from_str(&reply)?)
    }
}

async fn ask_all<T: DeserializeOwned>(
    workers: &mut [WorkerProc],
    cmd: impl Fn(usize) -> Command,
) -> anyhow::Result<Vec<T>> {
    let cmds: Vec<Command> = (0..workers.len()).map(cmd).collect();
    futures_util::future::try_join_all(workers.iter_mut().zip(&cmds).map(|(w, c)| w.ask(c))).await
}

/// One server under load, and its workers.
struct Side {
    target: Target,
    /// The server's processes (several nodes: summed).
    pids: Vec<u32>,
    workers: Vec<WorkerProc>,
    report: SideReport,
    samples: BTreeMap<u64, Vec<u64>>,
}

#[derive(Debug, Default, Serialize)]
pub struct JoinSummary {
    pub sockets: usize,
    pub admitted: usize,
    pub secs: f64,
    pub sockets_per_second: f64,
    /// TCP connect to `admitted` / `OPEN`.
    pub accept: Percentiles,
    /// `join` sent to `admitted` (telesoin).
    pub join_to_admitted: Percentiles,
}

#[derive(Debug, Default, Serialize)]
pub struct WindowSummary {
    pub rate: f64,
    pub round: u32,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub achieved_rate: f64,
    pub latency: Percentiles,
    /// Of the window's seconds, how many had more than 1 % of their messages over the 1 ms
    /// budget, and the share over budget in the worst second: a p99 over budget made by a few
    /// bursts shows few such seconds, one made by the whole window many.
    pub seconds_over_budget: u32,
    pub seconds: u32,
    pub worst_second_over_budget: f64,
    /// Server CPU (user + system) over the window divided by the messages relayed.
    pub cpu_us_per_message: Option<f64>,
    /// Redis commands over the window divided by the messages relayed, by command (`--redis`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redis_per_message: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct SideReport {
    pub target: String,
    pub procs: usize,
    pub setup_secs: Option<f64>,
    pub join: JoinSummary,
    pub rss_before_bytes: Option<u64>,
    pub rss_connected_bytes: Option<u64>,
    pub rss_after_close_bytes: Option<u64>,
    /// (RSS with every socket idle - RSS before) / sockets.
    pub idle_bytes_per_socket: Option<f64>,
    pub windows: Vec<WindowSummary>,
    /// The cluster's Redis, when its commands are counted.
    #[serde(skip)]
    pub redis: Option<String>,
    /// Every window of a rate together.
    pub by_rate: Vec<WindowSummary>,
    pub closed: usize,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Ratio {
    pub what: String,
    /// telesoin / PeerJS.
    pub ratio: f64,
    pub telesoin: f64,
    pub peerjs: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    /// telesoin nodes (2: kinés on one, patients on the other).
    pub nodes: usize,
    pub pairs: usize,
    pub join_rate: f64,
    pub window_secs: f64,
    pub admit: String,
    pub tls: bool,
    pub telesoin: SideReport,
    pub peerjs: Option<SideReport>,
    pub ratios: Vec<Ratio>,
}

/// A measure summed over the processes of one side (none measured if any is missing).
fn sum<T: std::iter::Sum<T>>(pids: &[u32], f: impl Fn(u32) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(*p)).sum()
}

fn merge(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// `http(s)://host:port/...` -> (`ws(s)://host:port`, the address).
async fn ws_base(url: &str) -> anyhow::Result<(String, SocketAddr)> {
    let (scheme, rest) = url.split_once("://").context("a URL with a scheme")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let ws = match scheme {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        _ => bail!("{url}: http, https, ws or wss"),
    };
    let addr = tokio::net::lookup_host(authority)
        .await?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("{authority}: no IPv4 address"))?;
    Ok((format!("{ws}://{authority}"), addr))
}

impl Side {
    async fn new(
        target: Target,
        url: &str,
        patient_url: Option<&str>,
        pids: Vec<u32>,
        procs: usize,
        first_source: u8,
        admit: Admit,
    ) -> anyhow::Result<Side> {
        let (base, addr) = ws_base(url).await?;
        let patient = match patient_url {
            Some(u) => Some(ws_base(u).await?),
            None => None,
        };
        let mut workers = Vec::new();
        for i in 0..procs {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, first_source + i as u8));
            workers.push(
                WorkerProc::spawn(target, &base, addr, source, admit, patient.as_ref()).await?,
            );
        }
        Ok(Side {
            target,
            pids,
            report: SideReport {
                target: target.name().into(),
                procs,
                ..SideReport::default()
            },
            workers,
            samples: BTreeMap::new(),
        })
    }

    async fn give(&mut self, pairs: Vec<Pair>) -> anyhow::Result<()> {
        let n = self.workers.len();
        let mut shares: Vec<Vec<Pair>> = (0..n).map(|_| Vec::new()).collect();
        for (i, p) in pairs.into_iter().enumerate() {
            shares[i % n].push(p);
        }
        let _: Vec<serde_json::Value> = ask_all(&mut self.workers, |i| Command::Pairs {
            pairs: shares[i].clone(),
        })
        .await?;
        Ok(())
    }

    async fn join(&mut self, rate: f64, settle: f64) -> anyhow::Result<()> {
        self.report.rss_before_bytes = sum(&self.pids, rss_bytes);
        let per = rate / self.workers.len() as f64;
        let reports: Vec<JoinReport> =
            ask_all(&mut self.workers, |_| Command::Join { rate: per }).await?;
        let mut j = JoinSummary::default();
        let (mut accept, mut join) = (Vec::new(), Vec::new());
        for r in reports {
            j.sockets += r.sockets;
            j.admitted += r.admitted;
            j.secs = j.secs.max(r.secs);
            accept.extend(r.accept_ns);
            join.extend(r.join_ns);
            merge(&mut self.report.errors, r.errors);
        }
        j.sockets_per_second = j.admitted as f64 / j.secs.max(1e-9);
        j.accept = Percentiles::of(accept);
        j.join_to_admitted = Percentiles::of(join);
        eprintln!(
            "telesoin-load: {}: {} sockets admitted in {:.1} s (accept p50 {:.2} ms p99 {:.2} ms)",
            self.target.name(),
            j.admitted,
            j.secs,
            j.accept.p50_ms,
            j.accept.p99_ms
        );
        self.report.join = j;
        self.settle(settle).await;
        Ok(())
    }

    /// Waits `secs`, then reads the idle memory.
    async fn settle(&mut self, secs: f64) {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        self.report.rss_connected_bytes = sum(&self.pids, rss_bytes);
        if let (Some(a), Some(b)) = (
            self.report.rss_before_bytes,
            self.report.rss_connected_bytes,
        ) {
            let sockets = self.report.join.admitted.max(1) as f64;
            self.report.idle_bytes_per_socket = Some((b as f64 - a as f64) / sockets);
        }
    }

    async fn window(
        &mut self,
        window: u32,
        rate: f64,
        round: u32,
        secs: f64,
    ) -> anyhow::Result<()> {
        let redis0 = match &self.report.redis {
            Some(addr) => redis_calls(addr).await,
            None => None,
        };
        let cpu0 = sum(&self.pids, cpu_seconds);
        let per = rate / self.workers.len() as f64;
        let reports: Vec<RelayReport> = ask_all(&mut self.workers, |_| Command::Relay {
            window,
            rate: per,
            secs,
        })
        .await?;
        let cpu1 = sum(&self.pids, cpu_seconds);
        let redis1 = match &self.report.redis {
            Some(addr) => redis_calls(addr).await,
            None => None,
        };
        let mut w = WindowSummary {
            rate,
            round,
            ..WindowSummary::default()
        };
        let mut lat = Vec::new();
        let mut by_second: Vec<[u64; 2]> = Vec::new();
        let mut took = 0f64;
        for r in reports {
            if by_second.len() < r.by_second.len() {
                by_second.resize(r.by_second.len(), [0, 0]);
            }
            for (into, from) in by_second.iter_mut().zip(&r.by_second) {
                into[0] += from[0];
                into[1] += from[1];
            }
            w.sent += r.sent;
            w.received += r.received;
            w.late += r.late;
            took = took.max(r.secs);
            lat.extend(r.lat_ns);
            merge(&mut self.report.errors, r.errors);
        }
        w.lost = w.sent.saturating_sub(w.received);
        w.achieved_rate = w.sent as f64 / took.max(1e-9);
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            w.cpu_us_per_message = Some((b - a) * 1e6 / w.received.max(1) as f64);
        }
        if let (Some(a), Some(b)) = (redis0, redis1) {
            // The `info` of the reading itself is not the server's.
            let per = |n: u64| n as f64 / w.received.max(1) as f64;
            let mut total = 0;
            for (name, after) in b {
                let calls = after.saturating_sub(a.get(&name).copied().unwrap_or(0));
                if calls > 0 && name != "info" {
                    total += calls;
                    w.redis_per_message.insert(name, per(calls));
                }
            }
            w.redis_per_message.insert("total".into(), per(total));
        }
        self.samples
            .entry(rate.to_bits())
            .or_default()
            .extend(lat.iter().copied());
        w.latency = Percentiles::of(lat);
        w.seconds = by_second.len() as u32;
        for [all, slow] in &by_second {
            let share = *slow as f64 / (*all).max(1) as f64;
            w.worst_second_over_budget = w.worst_second_over_budget.max(share);
            w.seconds_over_budget += u32::from(share > 0.01);
        }
        eprintln!(
            "telesoin-load: {} window {window} at {rate} msg/s: sent {} received {} p50 {:.3} ms p99 {:.3} ms p999 {:.3} ms cpu/msg {}",
            self.target.name(),
            w.sent,
            w.received,
            w.latency.p50_ms,
            w.latency.p99_ms,
            w.latency.p999_ms,
            w.cpu_us_per_message
                .map(|c| format!("{c:.1} us"))
                .unwrap_or_else(|| "-".into())
        );
        eprintln!(
            "telesoin-load: {} window {window}: {} of {} seconds had over 1 % of their messages past 1 ms; the worst {:.1} %",
            self.target.name(),
            w.seconds_over_budget,
            w.seconds,
            w.worst_second_over_budget * 100.0
        );
        if !w.redis_per_message.is_empty() {
            let by: Vec<String> = w
                .redis_per_message
                .iter()
                .map(|(k, v)| format!("{k} {v:.3}"))
                .collect();
            eprintln!(
                "telesoin-load: {} window {window}: Redis commands per relayed message: {}",
                self.target.name(),
                by.join(", ")
            );
        }
        self.report.windows.push(w);
        Ok(())
    }

    /// Sums the windows of each rate (their samples together).
    fn by_rate(&mut self) {
        let mut out: Vec<WindowSummary> = Vec::new();
        for w in &self.report.windows {
            let slot = match out.iter_mut().find(|o| o.rate == w.rate) {
                Some(s) => s,
                None => {
                    out.push(WindowSummary {
                        rate: w.rate,
                        ..WindowSummary::default()
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            slot.round += 1;
            slot.seconds += w.seconds;
            slot.seconds_over_budget += w.seconds_over_budget;
            slot.worst_second_over_budget = slot
                .worst_second_over_budget
                .max(w.worst_second_over_budget);
            slot.sent += w.sent;
            slot.received += w.received;
            slot.lost += w.lost;
            slot.late += w.late;
            slot.achieved_rate += w.achieved_rate;
            if let Some(c) = w.cpu_us_per_message {
                *slot.cpu_us_per_message.get_or_insert(0.0) += c;
            }
        }
        for o in &mut out {
            let n = f64::from(o.round.max(1));
            o.achieved_rate /= n;
            o.cpu_us_per_message = o.cpu_us_per_message.map(|c| c / n);
            o.latency = Percentiles::of(
                self.samples
                    .get(&o.rate.to_bits())
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        self.report.by_rate = out;
    }

    async fn close(&mut self) -> anyhow::Result<()> {
        let reports: Vec<CloseReport> = ask_all(&mut self.workers, |_| Command::Close).await?;
        for r in reports {
            self.report.closed += r.closed;
            merge(&mut self.report.errors, r.errors);
        }
        Ok(())
    }
}

fn ratios(t: &SideReport, p: &SideReport) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut add = |what: String, a: Option<f64>, b: Option<f64>| {
        if let (Some(a), Some(b)) = (a, b) {
            if b > 0.0 {
                out.push(Ratio {
                    what,
                    ratio: a / b,
                    telesoin: a,
                    peerjs: b,
                });
            }
        }
    };
    add(
        "idle bytes per socket".into(),
        t.idle_bytes_per_socket,
        p.idle_bytes_per_socket,
    );
    add(
        "sockets connected (and admitted) per second".into(),
        Some(t.join.sockets_per_second),
        Some(p.join.sockets_per_second),
    );
    add(
        "accept p99 ms (connect to admitted / OPEN)".into(),
        Some(t.join.accept.p99_ms),
        Some(p.join.accept.p99_ms),
    );
    for tw in &t.by_rate {
        if let Some(pw) = p.by_rate.iter().find(|w| w.rate == tw.rate) {
            let r = tw.rate;
            add(
                format!("relay p50 ms at {r} msg/s"),
                Some(tw.latency.p50_ms),
                Some(pw.latency.p50_ms),
            );
            add(
                format!("relay p99 ms at {r} msg/s"),
                Some(tw.latency.p99_ms),
                Some(pw.latency.p99_ms),
            );
            add(
                format!("relay p999 ms at {r} msg/s"),
                Some(tw.latency.p999_ms),
                Some(pw.latency.p999_ms),
            );
            add(
                format!("server CPU us per message at {r} msg/s"),
                tw.cpu_us_per_message,
                pw.cpu_us_per_message,
            );
        }
    }
    add(
        "RSS after the sockets closed (bytes)".into(),
        t.rss_after_close_bytes.map(|b| b as f64),
        p.rss_after_close_bytes.map(|b| b as f64),
    );
    out
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
        .unwrap_or_else(|| "-".into())
}

fn print_side(s: &SideReport) {
    println!("## {} ({} worker processes)", s.target, s.procs);
    if let Some(t) = s.setup_secs {
        println!("setup (sessions and links through /api/v1): {t:.1} s");
    }
    let j = &s.join;
    println!(
        "joined: {}/{} sockets in {:.1} s ({:.0}/s); accept p50 {:.2} ms p99 {:.2} ms",
        j.admitted, j.sockets, j.secs, j.sockets_per_second, j.accept.p50_ms, j.accept.p99_ms
    );
    if j.join_to_admitted.count > 0 {
        println!(
            "join -> admitted: p50 {:.2} ms p99 {:.2} ms p999 {:.2} ms max {:.2} ms",
            j.join_to_admitted.p50_ms,
            j.join_to_admitted.p99_ms,
            j.join_to_admitted.p999_ms,
            j.join_to_admitted.max_ms
        );
    }
    println!(
        "RSS: before {} connected {} after close {}; idle per socket {}",
        mib(s.rss_before_bytes),
        mib(s.rss_connected_bytes),
        mib(s.rss_after_close_bytes),
        s.idle_bytes_per_socket
            .map(|b| format!("{:.2} KiB", b / 1024.0))
            .unwrap_or_else(|| "-".into())
    );
    println!(
        "| rate | windows | sent | received | lost | p50 ms | p99 ms | p999 ms | max ms | CPU us/msg |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for w in &s.by_rate {
        println!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            w.rate,
            w.round,
            w.sent,
            w.received,
            w.lost,
            w.latency.p50_ms,
            w.latency.p99_ms,
            w.latency.p999_ms,
            w.latency.max_ms,
            w.cpu_us_per_message
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    for w in s.windows.iter().filter(|w| !w.redis_per_message.is_empty()) {
        let by: Vec<String> = w
            .redis_per_message
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        println!(
            "Redis commands per relayed message, {} msg/s window {}: {}",
            w.rate,
            w.round + 1,
            by.join(", ")
        );
    }
    println!("closed: {}; errors: {:?}", s.closed, s.errors);
    println!();
}

fn peer_pairs(n: usize) -> Vec<Pair> {
    let run = &Uuid::new_v4().simple().to_string()[..8];
    (0..n)
        .map(|i| Pair {
            kine_id: format!("k{run}x{i}"),
            patient_id: format!("p{run}x{i}"),
            kine_token: None,
            patient_token: None,
        })
        .collect()
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let limit = crate::worker::raise_nofile();
    let sockets = args.pairs * 2;
    let procs = args.procs.unwrap_or((sockets.div_ceil(9_000)).max(2));
    if sockets.div_ceil(procs) as u64 + 64 > limit {
        bail!(
            "{} sockets per worker exceed the open-files limit {limit}: use more --procs",
            sockets.div_ceil(procs)
        );
    }
    let tls = args.url.starts_with("https");

    // 1. Sessions, as a platform schedules them.
    let api = Api::new(&args.url, &args.api_key)?;
    let kine = match args.kine {
        Some(k) => k,
        None => api.first_kine().await?,
    };
    let t = Instant::now();
    let patient = api.ready_patient(kine).await?;
    let pairs = api
        .sessions(kine, patient, args.pairs, args.admit == Admit::Auto)
        .await?;
    let setup_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "telesoin-load: {} sessions made through /api/v1 in {setup_secs:.1} s",
        pairs.len()
    );

    // 2. Workers: telesoin's on 127.0.0.11.., PeerJS's on 127.0.0.111.. (distinct source addresses).
    let mut tele = Side::new(
        Target::Telesoin,
        &args.url,
        args.patient_url.as_deref(),
        args.server_pid.clone(),
        procs,
        11,
        args.admit,
    )
    .await?;
    tele.report.setup_secs = Some(setup_secs);
    tele.report.redis = args.redis.clone();
    tele.give(pairs).await?;
    let mut peer = match &args.peerjs_url {
        Some(url) => {
            let mut s = Side::new(
                Target::Peerjs,
                url,
                None,
                args.peerjs_pid.into_iter().collect(),
                procs,
                111,
                args.admit,
            )
            .await?;
            s.give(peer_pairs(args.pairs)).await?;
            Some(s)
        }
        None => None,
    };

    // 3. Joins at a fixed rate, one server after the other; then idle memory.
    let hook = match &args.during_join {
        Some(cmd) => {
            let h = start_hook(cmd, args.server_pid.first().copied())?;
            // perf and the like need a moment to attach.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some(h)
        }
        None => None,
    };
    tele.join(args.join_rate, 0.0).await?;
    if let Some(h) = hook {
        stop_hook(h).await;
    }
    tele.settle(args.settle_secs).await;
    if let Some(p) = peer.as_mut() {
        p.join(args.join_rate, args.settle_secs).await?;
    }

    // 4. Relay windows, alternating.
    let mut window = 0u32;
    for &rate in &args.rates {
        for round in 0..args.rounds {
            window += 1;
            tele.window(window, rate, round, args.window_secs).await?;
            if let Some(p) = peer.as_mut() {
                window += 1;
                p.window(window, rate, round, args.window_secs).await?;
            }
        }
    }

    // 5. Close everything; memory once the sockets are gone.
    tele.close().await?;
    if let Some(p) = peer.as_mut() {
        p.close().await?;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
    tele.report.rss_after_close_bytes = sum(&tele.pids, rss_bytes);
    tele.by_rate();
    if let Some(p) = peer.as_mut() {
        p.report.rss_after_close_bytes = sum(&p.pids, rss_bytes);
        p.by_rate();
    }

    let peer_report = peer.map(|p| p.report);
    let report = Report {
        date: chrono::Utc::now().to_rfc3339(),
        nodes: 1 + usize::from(args.patient_url.is_some()),
        pairs: args.pairs,
        join_rate: args.join_rate,
        window_secs: args.window_secs,
        admit: format!("{:?}", args.admit).to_lowercase(),
        tls,
        ratios: peer_report
            .as_ref()
            .map(|p| ratios(&tele.report, p))
            .unwrap_or_default(),
        telesoin: tele.report,
        peerjs: peer_report,
    };
    println!(
        "# telesoin-load: {} pairs ({} sockets per server) on {} telesoin node(s), join rate {}/s, {} s windows, {}",
        report.pairs,
        sockets,
        report.nodes,
        report.join_rate,
        report.window_secs,
        if tls { "TLS" } else { "plain ws" }
    );
    print_side(&report.telesoin);
    if let Some(p) = &report.peerjs {
        print_side(p);
    }
    if !report.ratios.is_empty() {
        println!("## telesoin / PeerJS");
        for r in &report.ratios {
            println!(
                "{:<52} {:>8.3}x   ({:.3} vs {:.3})",
                r.what, r.ratio, r.telesoin, r.peerjs
            );
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
