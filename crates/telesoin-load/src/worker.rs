//! A worker process: it holds the sockets of its share of the pairs (kiné and patient of a pair
//! in the same process, so that one monotonic clock times a relayed message end to end), binds
//! them to its own 127.0.0.x source address, and obeys the orchestrator's commands, one JSON line
//! on standard input each, answering one JSON line on standard output.
//!
//! The same load shape speaks two protocols: telesoin's (`join` with the token, `admitted`,
//! `candidate{to,data}`) and PeerJS's (`/peerjs?key=..&id=..&token=..`, `OPEN`,
//! `CANDIDATE{dst,payload}`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::tls;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;

/// Which server the worker speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Telesoin,
    Peerjs,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Telesoin => "telesoin",
            Target::Peerjs => "peerjs",
        }
    }
}

/// How the patient is let in (telesoin only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Admit {
    /// The session has auto-admit: the patient is admitted as soon as the kiné is there.
    Auto,
    /// The kiné's socket answers `lobby_waiting{awaiting_admission}` with `admit`.
    Kine,
}

/// One pair of seats. For telesoin, the tokens and participant ids of the session's links; for
/// PeerJS, the peer ids (no token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    pub kine_id: String,
    pub patient_id: String,
    #[serde(default)]
    pub kine_token: Option<String>,
    #[serde(default)]
    pub patient_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// The pairs this worker holds (sent once, first).
    Pairs { pairs: Vec<Pair> },
    /// Connect every pair, kiné then patient, `rate` sockets per second (0: as fast as 64
    /// pairs in flight allow).
    Join { rate: f64 },
    /// Relay `rate` messages per second for `secs` seconds, spread over the pairs, each way.
    Relay { window: u32, rate: f64, secs: f64 },
    /// Close every socket.
    Close,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct JoinReport {
    pub sockets: usize,
    pub admitted: usize,
    /// From the start of the TCP connect to `admitted` (telesoin) or `OPEN` (PeerJS).
    pub accept_ns: Vec<u64>,
    /// From sending `join` to `admitted` (telesoin only).
    pub join_ns: Vec<u64>,
    pub secs: f64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RelayReport {
    pub sent: u64,
    pub received: u64,
    /// Received after its window was closed (counted as lost in that window).
    pub late: u64,
    pub lat_ns: Vec<u64>,
    /// For each second of the window (by send time): messages received, and of them those
    /// slower than the 1 ms budget; tells a tail spread over the window from bursts.
    #[serde(default)]
    pub by_second: Vec<[u64; 2]>,
    pub secs: f64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CloseReport {
    pub closed: usize,
    pub errors: BTreeMap<String, u64>,
}

/// How a worker connects.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// `ws://HOST:PORT` or `wss://HOST:PORT`, no path.
    pub base: String,
    pub addr: SocketAddr,
    pub source: IpAddr,
    pub admit: Admit,
    /// Where the patients connect (`base`, address), when not where the kinés do: another node
    /// of the same cluster.
    pub patient: Option<(String, SocketAddr)>,
}

/// The latencies of a window, and how they spread over its seconds.
#[derive(Default)]
struct Samples {
    ns: Vec<u64>,
    by_second: Vec<[u64; 2]>,
}

/// The relay's budget (DESIGN.md): a message slower than this counts in `by_second`.
const BUDGET_NS: u64 = 1_000_000;

impl Samples {
    fn push(&mut self, second: usize, ns: u64) {
        self.ns.push(ns);
        if self.by_second.len() <= second {
            self.by_second.resize(second + 1, [0, 0]);
        }
        self.by_second[second][0] += 1;
        self.by_second[second][1] += u64::from(ns > BUDGET_NS);
    }
}

/// About the size of an ICE candidate or a small SDP frame with its envelope.
const PAD: usize = 960;

/// Seconds between keep-alives on every socket (telesoin's idle timeout is 60 s, PeerJS's 60 s).
const KEEPALIVE: Duration = Duration::from_secs(20);

enum Cmd {
    Relay { window: u32, seq: u64 },
    Close,
}

struct Shared {
    target: Target,
    admit: Admit,
    epoch: Instant,
    window: AtomicU32,
    received: AtomicU64,
    late: AtomicU64,
    /// The monotonic time the window started at (ns since `epoch`).
    window_start: AtomicU64,
    lat: Mutex<Samples>,
    errors: Mutex<BTreeMap<String, u64>>,
    pad: String,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn error(&self, what: impl Into<String>) {
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *e.entry(what.into()).or_default() += 1;
    }

    fn take_errors(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The relayed message from this seat to `to`, timestamped now.
    fn relay_text(&self, to: &str, window: u32, seq: u64) -> String {
        let t = self.now_ns();
        let probe = format!(
            r#"{{"candidate":"candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host generation 0","sdpMid":"0","sdpMLineIndex":0,"w":{window},"seq":{seq},"t":{t},"pad":"{}"}}"#,
            self.pad
        );
        match self.target {
            Target::Telesoin => {
                format!(r#"{{"type":"candidate","to":"{to}","data":{probe}}}"#)
            }
            Target::Peerjs => format!(r#"{{"type":"CANDIDATE","dst":"{to}","payload":{probe}}}"#),
        }
    }

    fn keepalive_text(&self) -> &'static str {
        match self.target {
            Target::Telesoin => r#"{"type":"ping"}"#,
            Target::Peerjs => r#"{"type":"HEARTBEAT"}"#,
        }
    }
}

#[derive(Deserialize)]
struct Probe {
    w: u32,
    t: u64,
}

#[derive(Deserialize)]
struct Relayed {
    #[serde(alias = "payload")]
    data: Probe,
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    participant: Option<String>,
}

/// Raises the soft limit of open files to the hard one (20,000 on the project's machines).
pub fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

async fn connect(opts: &Options, path: &str, patient: bool) -> anyhow::Result<Ws> {
    let (base, addr) = match (&opts.patient, patient) {
        (Some((base, addr)), true) => (base.as_str(), *addr),
        _ => (opts.base.as_str(), opts.addr),
    };
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(opts.source, 0))?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let connector = if base.starts_with("wss:") {
        Connector::Rustls(tls::client_config()?)
    } else {
        Connector::Plain
    };
    let url = format!("{base}{path}");
    let (ws, _) =
        tokio_tungstenite::client_async_tls_with_config(url, tcp, Some(config), Some(connector))
            .await?;
    Ok(ws)
}

struct Joined {
    ws: Ws,
    accept_ns: u64,
    join_ns: Option<u64>,
}

/// Opens one seat's socket and waits until it is admitted (telesoin) or open (PeerJS).
async fn join_seat(
    opts: &Options,
    shared: &Shared,
    id: &str,
    token: Option<&str>,
    patient: bool,
) -> Result<Joined, String> {
    let t0 = shared.now_ns();
    let path = match opts.target {
        Target::Telesoin => "/ws".to_owned(),
        Target::Peerjs => format!("/peerjs?key=peerjs&id={id}&token=t{id}"),
    };
    let mut ws = connect(opts, &path, patient)
        .await
        .map_err(|e| format!("connect: {}", short(&e.to_string())))?;
    let t1 = shared.now_ns();
    if opts.target == Target::Telesoin {
        let join = serde_json::json!({
            "type": "join", "token": token.unwrap_or_default(), "device": {"kind": "telesoin-load"}
        });
        ws.send(Message::text(join.to_string()))
            .await
            .map_err(|_| "send join".to_owned())?;
    }
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Some(msg) = ws.next().await else {
                return Err("closed before admission".to_owned());
            };
            let Ok(Message::Text(text)) = msg else {
                if let Ok(Message::Close(_)) = msg {
                    return Err("closed before admission".to_owned());
                }
                continue;
            };
            let Ok(t) = serde_json::from_str::<Typed>(text.as_str()) else {
                continue;
            };
            match t.kind.as_str() {
                "admitted" | "OPEN" => return Ok(()),
                "refused" | "error" => {
                    return Err(format!("{}: {}", t.kind, t.code.unwrap_or_default()));
                }
                "ERROR" | "ID-TAKEN" | "INVALID-KEY" | "EXPIRE" => return Err(t.kind),
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| "no admission within 30 s".to_owned())?;
    done?;
    let t2 = shared.now_ns();
    Ok(Joined {
        ws,
        accept_ns: t2 - t0,
        join_ns: (opts.target == Target::Telesoin).then_some(t2 - t1),
    })
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// What a seat's reader does with one text frame.
async fn on_text(shared: &Shared, text: &str, sink: &mut Sink) {
    if text.contains("\"seq\":") {
        if let Ok(r) = serde_json::from_str::<Relayed>(text) {
            let now = shared.now_ns();
            if r.data.w != 0 && r.data.w == shared.window.load(Ordering::Acquire) {
                shared.received.fetch_add(1, Ordering::Relaxed);
                let start = shared.window_start.load(Ordering::Relaxed);
                // A window lasts minutes at most: the second fits in usize everywhere.
                let second = (r.data.t.saturating_sub(start) / 1_000_000_000) as usize;
                shared
                    .lat
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(second, now.saturating_sub(r.data.t));
            } else {
                shared.late.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    }
    let Ok(t) = serde_json::from_str::<Typed>(text) else {
        shared.error("unparsed frame");
        return;
    };
    match t.kind.as_str() {
        "lobby_waiting"
            if shared.admit == Admit::Kine && t.reason.as_deref() == Some("awaiting_admission") =>
        {
            if let Some(p) = t.participant {
                let admit = format!(r#"{{"type":"admit","participant":"{p}"}}"#);
                if sink.send(Message::text(admit)).await.is_err() {
                    shared.error("send admit");
                }
            }
        }
        "error" | "refused" => shared.error(format!("{}: {}", t.kind, t.code.unwrap_or_default())),
        "ended" | "replaced" | "ERROR" | "EXPIRE" | "LEAVE" | "ID-TAKEN" => shared.error(t.kind),
        _ => {}
    }
}

/// A joined seat: reads, answers the kiné's admissions, sends what it is told and keep-alives.
async fn seat_loop(ws: Ws, to: String, shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let (mut sink, mut stream) = ws.split();
    let first = Instant::now() + KEEPALIVE.mul_f64(rand_unit());
    let mut keepalive = tokio::time::interval_at(first, KEEPALIVE);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Relay { window, seq }) => {
                    let text = shared.relay_text(&to, window, seq);
                    if sink.send(Message::text(text)).await.is_err() {
                        shared.error("send failed");
                        return;
                    }
                }
                Some(Cmd::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    close_wait(&mut stream).await;
                    return;
                }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => on_text(&shared, t.as_str(), &mut sink).await,
                Some(Ok(Message::Close(_))) | None => {
                    shared.error("closed by the server");
                    return;
                }
                Some(Err(_)) => {
                    shared.error("socket error");
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = keepalive.tick() => {
                if sink.send(Message::text(shared.keepalive_text())).await.is_err() {
                    shared.error("send failed");
                    return;
                }
            }
        }
    }
}

async fn close_wait(stream: &mut SplitStream<Ws>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

fn rand_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1e6
}

struct Seat {
    tx: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the loop of a joined seat: (its handle, accept time, join time).
fn start_seat(shared: &Arc<Shared>, j: Joined, to: String) -> (Seat, u64, Option<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(seat_loop(j.ws, to, shared.clone(), rx));
    (Seat { tx, task }, j.accept_ns, j.join_ns)
}

struct Worker {
    opts: Options,
    shared: Arc<Shared>,
    pairs: Vec<Pair>,
    /// (kiné, patient) of each pair, once joined.
    seats: Vec<(Option<Seat>, Option<Seat>)>,
}

impl Worker {
    async fn join(&mut self, rate: f64) -> JoinReport {
        let start = Instant::now();
        let slot = |n: usize| {
            if rate > 0.0 {
                start + Duration::from_secs_f64(n as f64 / rate)
            } else {
                start
            }
        };
        // At a fixed rate every pair waits for its slot; unpaced, 64 pairs join at a time.
        let gate = Arc::new(tokio::sync::Semaphore::new(if rate > 0.0 {
            tokio::sync::Semaphore::MAX_PERMITS
        } else {
            64
        }));
        let mut set = JoinSet::new();
        for (i, pair) in self.pairs.iter().cloned().enumerate() {
            let (opts, shared, gate) = (self.opts.clone(), self.shared.clone(), gate.clone());
            let (at_k, at_p) = (slot(2 * i), slot(2 * i + 1));
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let mut out = Vec::new();
                tokio::time::sleep_until(at_k).await;
                match join_seat(
                    &opts,
                    &shared,
                    &pair.kine_id,
                    pair.kine_token.as_deref(),
                    false,
                )
                .await
                {
                    // The kiné's socket runs (and admits) while the patient joins.
                    Ok(j) => out.push((true, start_seat(&shared, j, pair.patient_id.clone()))),
                    Err(e) => {
                        shared.error(e);
                        return (i, out);
                    }
                }
                tokio::time::sleep_until(at_p).await;
                let patient = pair.patient_token.as_deref();
                match join_seat(&opts, &shared, &pair.patient_id, patient, true).await {
                    Ok(j) => out.push((false, start_seat(&shared, j, pair.kine_id.clone()))),
                    Err(e) => shared.error(e),
                }
                (i, out)
            });
        }
        let mut report = JoinReport::default();
        while let Some(done) = set.join_next().await {
            let Ok((i, seats)) = done else {
                self.shared.error("join task panicked");
                continue;
            };
            for (is_kine, (seat, accept_ns, join_ns)) in seats {
                report.sockets += 1;
                report.admitted += 1;
                report.accept_ns.push(accept_ns);
                report.join_ns.extend(join_ns);
                if is_kine {
                    self.seats[i].0 = Some(seat);
                } else {
                    self.seats[i].1 = Some(seat);
                }
            }
        }
        report.secs = start.elapsed().as_secs_f64();
        report.errors = self.shared.take_errors();
        report
    }

    async fn relay(&mut self, window: u32, rate: f64, secs: f64) -> RelayReport {
        let shared = &self.shared;
        shared.received.store(0, Ordering::Relaxed);
        shared.late.store(0, Ordering::Relaxed);
        *shared.lat.lock().unwrap_or_else(|p| p.into_inner()) = Samples::default();
        shared
            .window_start
            .store(shared.now_ns(), Ordering::Relaxed);
        shared.window.store(window, Ordering::Release);
        let live: Vec<usize> = (0..self.seats.len())
            .filter(|&i| self.seats[i].0.is_some() && self.seats[i].1.is_some())
            .collect();
        let mut report = RelayReport::default();
        if live.is_empty() || rate <= 0.0 {
            shared.window.store(0, Ordering::Release);
            report.errors = shared.take_errors();
            return report;
        }
        let total = (rate * secs).round() as u64;
        let n = live.len() as u64;
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq = 0u64;
        while seq < total {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
            while seq < due {
                let pair = live[(seq % n) as usize];
                let (kine, patient) = &self.seats[pair];
                // Each pair sends both ways in turn: kiné to patient, then patient to kiné.
                let from = if (seq / n) % 2 == 0 { kine } else { patient };
                if let Some(s) = from {
                    if s.tx.send(Cmd::Relay { window, seq }).is_ok() {
                        report.sent += 1;
                    } else {
                        shared.error("seat gone");
                    }
                }
                seq += 1;
            }
        }
        report.secs = start.elapsed().as_secs_f64();
        // What is still in flight has 3 s to arrive; past that it is lost for this window.
        let drain = Instant::now() + Duration::from_secs(3);
        while shared.received.load(Ordering::Relaxed) < report.sent && Instant::now() < drain {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shared.window.store(0, Ordering::Release);
        report.received = shared.received.load(Ordering::Relaxed);
        report.late = shared.late.load(Ordering::Relaxed);
        let samples = std::mem::take(&mut *shared.lat.lock().unwrap_or_else(|p| p.into_inner()));
        report.lat_ns = samples.ns;
        report.by_second = samples.by_second;
        report.errors = shared.take_errors();
        report
    }

    async fn close(&mut self) -> CloseReport {
        let mut report = CloseReport::default();
        let mut tasks = Vec::new();
        for (k, p) in self.seats.iter_mut() {
            for s in [k.take(), p.take()].into_iter().flatten() {
                if s.tx.send(Cmd::Close).is_ok() {
                    report.closed += 1;
                }
                tasks.push(s.task);
            }
        }
        let all = async {
            for t in tasks.iter_mut() {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .is_err()
        {
            self.shared.error("close took over 30 s");
            for t in &tasks {
                t.abort();
            }
        }
        report.errors = self.shared.take_errors();
        report
    }
}

/// The worker's main loop: commands in on standard input, reports out on standard output.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    raise_nofile();
    let shared = Arc::new(Shared {
        target: opts.target,
        admit: opts.admit,
        epoch: Instant::now(),
        window: AtomicU32::new(0),
        received: AtomicU64::new(0),
        late: AtomicU64::new(0),
        window_start: AtomicU64::new(0),
        lat: Mutex::new(Samples::default()),
        errors: Mutex::new(BTreeMap::new()),
        pad: "x".repeat(PAD),
    });
    let mut worker = Worker {
        opts,
        shared,
        pairs: Vec::new(),
        seats: Vec::new(),
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Command>(&line)? {
            Command::Pairs { pairs } => {
                worker.seats = pairs.iter().map(|_| (None, None)).collect();
                worker.pairs = pairs;
                serde_json::json!({ "pairs": worker.pairs.len() })
            }
            Command::Join { rate } => serde_json::to_value(worker.join(rate).await)?,
            Command::Relay { window, rate, secs } => {
                serde_json::to_value(worker.relay(window, rate, secs).await)?
            }
            Command::Close => serde_json::to_value(worker.close().await)?,
        };
        let mut text = reply.to_string();
        text.push('\n');
        out.write_all(text.as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}
