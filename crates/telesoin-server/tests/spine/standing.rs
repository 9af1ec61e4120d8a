//! The standing fault suite: real webrtc-rs peers (`telesoin-peer`, reconnecting by themselves as
//! the web client does) in a call through the real binary, which is killed (`kill -9`) and
//! started again at each step of the protocol (or drained with SIGTERM mid-call); a cluster
//! node whose Redis restarts empty, or pauses, mid-call; a node whose store (a PostgreSQL of the
//! test's own) crashes and restarts mid-call; a node whose data directory fills up mid-call. The server is away 1.5 s per crash (5 s in long
//! mode). Every case asserts, from the record:
//! - billed seconds against the call the peers observed (from their own connection states, the
//!   instant both were connected to the instant the kiné hung up): never more than 1.5 s over
//!   (whole seconds, reports a few hundred milliseconds apart), and no more than 2 s under (the
//!   synthetic video starts flowing up to a second after the connection; whole seconds). The
//!   part of a call that connected while the server was down is not counted as observed: it has
//!   no evidence until the server is back and the peers have rejoined (billing then starts at
//!   the first persisted report); a crash after the call was reported is bridged by the rejoin;
//!   reports the store or Redis could not take are no evidence either (those cases lower the
//!   bound by the outage);
//! - exactly one `ended` event and one finalization (`finalized_at` unchanged by a restart);
//! - `telesoin audit verify` passes (the binary's cases);
//! - no admission without its persisted event: every participant that was told `admitted` has an
//!   `admitted` event in the record, after its first `joined`, and nothing is recorded for a
//!   seat after its `left` without a new `joined`/`reconnected`.
//!
//! Short mode (the default, in `tests/run`): one call of a few seconds per step. Long mode,
//! `TELESOIN_STANDING=long`: five rounds per step with 20 s calls. Each case is bounded (90 s,
//! 15 min in long mode).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use telesoin_peer::{Peer, PeerConfig};
use telesoin_proto::signal::ServerMsg;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::support::*;

const T: Duration = Duration::from_secs(20);

fn long() -> bool {
    std::env::var("TELESOIN_STANDING").as_deref() == Ok("long")
}

/// (rounds, time in the call, bound of one case)
fn mode() -> (usize, Duration, Duration) {
    if long() {
        (5, Duration::from_secs(20), Duration::from_secs(900))
    } else {
        (1, Duration::from_secs(3), Duration::from_secs(90))
    }
}

/// How long the binary stays down between a kill and its restart.
fn outage() -> Duration {
    if long() {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(1500)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The kiné joined (and is admitted), nobody else yet.
    AfterJoin,
    /// The patient was just admitted.
    AfterAdmission,
    /// The kiné's offer reached the patient.
    AfterOffer,
    /// Both peers connected, mid-call.
    MediaConnected,
    /// The kiné's hang-up was just sent.
    HangUp,
    /// `ended` reached the kiné.
    Ended,
    /// Mid-call, SIGTERM instead of `kill -9`: the drain tells every socket, the peers come back
    /// to the restarted server.
    Drained,
}

/// The binary on its own data directory and port, killed and started again at will.
struct Binary {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

const ENV: [(&str, &str); 2] = [
    ("TELESOIN_HEARTBEAT_SECONDS", "2"),
    ("TELESOIN_DRAIN_SECONDS", "0"),
];

impl Binary {
    async fn start(email: &str) -> Binary {
        let dir = tempfile::tempdir().expect("dir");
        let status = Command::new(env!("CARGO_BIN_EXE_telesoin"))
            .args(["add-kine", "--email", email, "--name", "Claire Martin"])
            .args(["--rpps", "10009999996", "--data-dir"])
            .arg(dir.path())
            .env("TELESOIN_NEW_PASSWORD", PASSWORD)
            .status()
            .await
            .expect("add-kine");
        assert!(status.success());
        let port = crate::restart::free_port();
        let child = crate::restart::spawn_with(dir.path(), port, &ENV).await;
        Binary {
            dir,
            port,
            child: Some(child),
        }
    }

    fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// `kill -9`, then the binary again on the same directory and port; returns how long the
    /// server was away.
    async fn crash_and_restart(&mut self) -> Duration {
        let away = Instant::now();
        self.kill().await;
        // Away for a while: the peers' media (peer to peer) goes on, their sockets retry.
        tokio::time::sleep(outage()).await;
        self.child = Some(crate::restart::spawn_with(self.dir.path(), self.port, &ENV).await);
        away.elapsed()
    }

    /// SIGTERM, the drain to its end (bounded), then the binary again; how long it was away.
    async fn drain_and_restart(&mut self) -> Duration {
        let away = Instant::now();
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .expect("the drain ends in time")
            .expect("status");
        assert!(exit.success(), "{exit}");
        tokio::time::sleep(outage()).await;
        self.child = Some(crate::restart::spawn_with(self.dir.path(), self.port, &ENV).await);
        away.elapsed()
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.expect("kill -9");
        }
    }

    fn audit_verify(&self) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_telesoin"))
            .args(["audit", "verify", "--data-dir"])
            .arg(self.dir.path())
            .env("TELESOIN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("audit verify");
        assert!(
            out.status.success(),
            "audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A session of the kiné `email` with telesoin-peer on both sides, admitted and their media
/// connected; also returns the server's certificate for the peers joined later.
async fn connected_call(server: &Server, email: &str) -> (Api, Uuid, Vec<u8>, Peer, Peer) {
    let api = server.kine(email).await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let ca = std::fs::read(server.state.cfg.data_dir.join("tls/cert.pem")).expect("certificate");
    let kine_link = link_url(&api, session, "kine").await;
    let patient_link = link_url(&api, session, "patient").await;
    let mut kine = Peer::join(peer_config(&ca, kine_link, true))
        .await
        .expect("kiné joins");
    kine.admitted(T).await.expect("kiné admitted");
    let mut pat = Peer::join(peer_config(&ca, patient_link, false))
        .await
        .expect("patient joins");
    pat.admitted(T).await.expect("patient admitted");
    kine.wait_media_connected(T).await.expect("kiné connected");
    pat.wait_media_connected(T)
        .await
        .expect("patient connected");
    (api, session, ca, kine, pat)
}

fn peer_config(ca: &[u8], link: String, auto_admit: bool) -> PeerConfig {
    PeerConfig {
        ca_pem: Some(ca.to_vec()),
        udp_bind: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))],
        auto_admit_lobby: auto_admit,
        consent: true,
        ..PeerConfig::new(link)
    }
}

async fn link_url(api: &Api, session: Uuid, role: &str) -> String {
    api.post(
        &format!("/api/sessions/{session}/links"),
        json!({"role": role}),
    )
    .await["url"]
        .as_str()
        .expect("url")
        .to_owned()
}

/// What a record must say after any fault: one end, billed against observed, every admission
/// persisted, nothing after a seat's `left` without a new arrival.
/// `observed`: the whole call as the peers saw it; `seen`: the part of it the server could see.
fn check_record(rec: &Value, observed: f64, seen: f64, admitted: &[Uuid]) -> i64 {
    assert_eq!(rec["status"], "ended", "{rec}");
    let billed = rec["billable_seconds"].as_i64().expect("finalized");
    assert!(
        (billed as f64) <= observed + 1.5,
        "over-billed: {billed} s for {observed:.1} s observed: {rec}"
    );
    assert!(
        (billed as f64) >= seen - 2.0,
        "billed {billed} s for {seen:.1} s observed with the server there: {rec}"
    );
    let events = rec["events"].as_array().expect("events");
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "ended").count(),
        1,
        "one end: {rec}"
    );
    for p in admitted {
        let p = p.to_string();
        let own: Vec<&Value> = events.iter().filter(|e| e["participant"] == p).collect();
        let joined = own.iter().position(|e| e["kind"] == "joined");
        let first_admitted = own.iter().position(|e| e["kind"] == "admitted");
        assert!(
            matches!((joined, first_admitted), (Some(j), Some(a)) if j < a),
            "{p} was told admitted: its admission is persisted after its join: {own:?}"
        );
        // Nothing of a seat between its `left` and its next arrival.
        let mut out = false;
        for e in &own {
            match e["kind"].as_str() {
                Some("left") => out = true,
                Some("joined" | "reconnected") => out = false,
                Some(kind) => assert!(!out, "{kind} recorded for {p} after its left: {own:?}"),
                None => {}
            }
        }
    }
    billed
}

async fn kill_at(step: Step, round: usize, stay: Duration) {
    let email = format!("standing-{step:?}-{round}@example.fr").to_lowercase();
    let mut node = Binary::start(&email).await;
    let api = Api {
        http: http(),
        base: node.base(),
        cookie: String::new(),
    }
    .login(&email)
    .await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let kine_link = link_url(&api, session, "kine").await;
    let patient_link = link_url(&api, session, "patient").await;
    let ca = std::fs::read(node.dir.path().join("tls/cert.pem")).expect("certificate");
    let mut away = Duration::ZERO;

    let mut kine = Peer::join(peer_config(&ca, kine_link, true))
        .await
        .expect("kiné joins");
    kine.admitted(T).await.expect("kiné admitted");
    if step == Step::AfterJoin {
        away += node.crash_and_restart().await;
        kine.wait_rejoined(1, T)
            .await
            .expect("kiné rejoins by itself");
        kine.admitted(T).await.expect("kiné admitted again");
    }
    let mut pat = Peer::join(peer_config(&ca, patient_link, false))
        .await
        .expect("patient joins");
    match step {
        Step::AfterAdmission => {
            pat.admitted(T).await.expect("patient admitted");
            away += node.crash_and_restart().await;
        }
        Step::AfterOffer => {
            pat.wait_for("the kiné's offer", T, |m| {
                matches!(m, ServerMsg::Offer { .. })
            })
            .await
            .expect("offer");
            away += node.crash_and_restart().await;
        }
        _ => {}
    }
    kine.wait_media_connected(T).await.expect("kiné connected");
    pat.wait_media_connected(T)
        .await
        .expect("patient connected");
    let connected = Instant::now();
    let mut seen_from = connected;
    if matches!(step, Step::AfterAdmission | Step::AfterOffer) {
        // Both are back on the restarted server before the call goes on; what connected before
        // that has no evidence.
        kine.wait_rejoined(1, T).await.expect("kiné rejoined");
        pat.wait_rejoined(1, T).await.expect("patient rejoined");
        seen_from = Instant::now();
    }
    if matches!(step, Step::MediaConnected | Step::Drained) {
        tokio::time::sleep(stay / 2).await;
        away += if step == Step::Drained {
            node.drain_and_restart().await
        } else {
            node.crash_and_restart().await
        };
        kine.wait_rejoined(1, T).await.expect("kiné rejoined");
        pat.wait_rejoined(1, T).await.expect("patient rejoined");
        kine.admitted(T).await.expect("kiné admitted again");
    }
    tokio::time::sleep(stay).await;
    assert!(
        kine.state().connected_remote().is_some() && pat.state().connected_remote().is_some(),
        "the media stayed up (peer to peer) through the restarts"
    );
    let hung_up = Instant::now();
    match step {
        Step::HangUp => {
            kine.send_hangup().await.expect("hang-up sent");
            away += node.crash_and_restart().await;
            // Kept until acknowledged: replayed after the rejoin (or already done before the
            // kill, then the rejoin is refused `session_ended`).
            kine.wait_state("the hang-up acknowledged", T, |s| {
                (s.ended.is_some() || s.refused.is_some()).then_some(Ok(()))
            })
            .await
            .expect("the hang-up is acknowledged after the restart");
            kine.shutdown().await;
        }
        _ => {
            let billed = kine.hangup(T).await.expect("hangup");
            assert!(billed.is_some(), "ended with billable seconds");
        }
    }
    let observed = (hung_up - connected).as_secs_f64();
    let seen = (hung_up - seen_from).as_secs_f64();
    if step == Step::Ended {
        away += node.crash_and_restart().await;
    }
    pat.wait_state("the end of the call", T, |s| {
        (s.ended.is_some() || s.refused.is_some() || s.gone()).then_some(Ok(()))
    })
    .await
    .expect("the patient hears of the end");
    pat.shutdown().await;

    let api = api.login(&email).await;
    let rec = api.record(session).await;
    let admitted = [kine.participant(), pat.participant()];
    if std::env::var("STANDING_DEBUG").is_ok() {
        for e in rec["events"].as_array().expect("events") {
            eprintln!(
                "{step:?}: {} {} {} {}",
                e["at"], e["role"], e["kind"], e["detail"]
            );
        }
    }
    let billed = check_record(&rec, observed, seen, &admitted);
    if !matches!(step, Step::HangUp | Step::Ended) {
        // The server was away while the session was live: the record says so.
        let restarts = rec["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["kind"] == "node_restart")
            .count();
        assert_eq!(restarts, 1, "{step:?}: {rec}");
    }
    // Once more: the finalization is not repeated.
    node.crash_and_restart().await;
    let again = api.login(&email).await.record(session).await;
    assert_eq!(
        (again["billable_seconds"].as_i64(), &again["finalized_at"]),
        (Some(billed), &rec["finalized_at"]),
        "finalized once"
    );
    node.kill().await;
    node.audit_verify();
    eprintln!(
        "standing {step:?} round {round}: billed {billed} s, observed {observed:.1} s ({seen:.1} s with the server there), server away {:.2} s",
        away.as_secs_f64()
    );
}

async fn standing(step: Step) {
    let (rounds, stay, bound) = mode();
    for round in 0..rounds {
        tokio::time::timeout(bound, kill_at(step, round, stay))
            .await
            .unwrap_or_else(|_| panic!("{step:?} round {round} took longer than {bound:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_kill_after_join() {
    standing(Step::AfterJoin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_kill_after_admission() {
    standing(Step::AfterAdmission).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_kill_after_offer() {
    standing(Step::AfterOffer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_kill_mid_call() {
    standing(Step::MediaConnected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_sigterm_mid_call() {
    standing(Step::Drained).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_kill_after_hangup() {
    standing(Step::HangUp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_kill_after_ended() {
    standing(Step::Ended).await;
}

/// A cluster node (in-process, its own redis-server on a free port) whose Redis restarts empty
/// mid-call: the seats, the admissions and the kiné's authority come back from the record, so a
/// companion is still let in by the kiné and connected (admit and relay), and the kiné's hang-up
/// ends the session (it used to be answered `error{not_allowed}`), billed as observed.
async fn redis_restarted_empty(round: usize, stay: Duration) {
    let Some(mut redis) = crate::cluster::Redis::start().await else {
        return;
    };
    let url = redis.url();
    let server = Server::start_with(|c| {
        c.redis_url = Some(url);
        c.heartbeat_seconds = 2;
        c.grace_seconds = 20;
    })
    .await;
    let (api, session, ca, mut kine, mut pat) =
        connected_call(&server, &format!("redis-empty-{round}@example.fr")).await;
    let companion_link = link_url(&api, session, "companion").await;
    let connected = Instant::now();
    tokio::time::sleep(stay / 2).await;

    // Redis restarts with nothing in it (no persistence): every room, lock and location is gone.
    let away = Instant::now();
    redis.stop().await;
    redis.restart().await;
    let deadline = Instant::now() + T;
    while http()
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("readyz")
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "ready again once Redis is back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let away = away.elapsed();

    // Admit and relay: a companion joins, the kiné (auto-admitting) lets it in and offers.
    let mut comp = Peer::join(peer_config(&ca, companion_link, false))
        .await
        .expect("companion joins");
    comp.admitted(T)
        .await
        .expect("the kiné's authority survived: the companion is admitted");
    comp.wait_media_connected(T)
        .await
        .expect("the kiné's offer was relayed to the companion");
    tokio::time::sleep(stay / 2).await;

    let hung_up = Instant::now();
    let billed = kine
        .hangup(T)
        .await
        .expect("hangup")
        .expect("the kiné's hang-up ends the session");
    let observed = (hung_up - connected).as_secs_f64();
    for p in [&mut pat, &mut comp] {
        p.wait_state("ended", T, |s| s.ended.is_some().then_some(Ok(())))
            .await
            .expect("everyone hears the end");
        p.shutdown().await;
    }
    let rec = api.record(session).await;
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));
    let admitted = [kine.participant(), pat.participant(), comp.participant()];
    check_record(&rec, observed, observed, &admitted);
    assert!(
        rec["incidents"]
            .as_array()
            .expect("incidents")
            .iter()
            .any(|e| e["detail"] == "shared_state_lost"),
        "the loss is in the record: {rec}"
    );
    assert!(
        telesoin_server::records::cli::audit_verify(server.state.store.as_ref())
            .await
            .expect("audit verify"),
        "the audit chain is intact"
    );
    eprintln!(
        "standing redis-empty round {round}: billed {billed} s, observed {observed:.1} s, Redis away {:.1} s",
        away.as_secs_f64()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_redis_restarted_empty_mid_call() {
    let (rounds, stay, bound) = mode();
    for round in 0..rounds {
        tokio::time::timeout(
            bound,
            redis_restarted_empty(round, stay.max(Duration::from_secs(4))),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round} took longer than {bound:?}"));
    }
}

/// A cluster node whose Redis is paused (SIGSTOP: connections open, nothing answered) for 4 s
/// mid-call: the call goes on (media is peer to peer), nobody is admitted meanwhile, and once Redis
/// answers again the kiné's hang-up ends the session. Billed never over what was observed; under by
/// at most the pause plus its 2 s call timeouts and 2 s (reports that could not be handled are no
/// evidence).
async fn redis_paused(round: usize, stay: Duration) {
    let Some(redis) = crate::cluster::Redis::start().await else {
        return;
    };
    let url = redis.url();
    let server = Server::start_with(|c| {
        c.redis_url = Some(url);
        c.heartbeat_seconds = 2;
        c.grace_seconds = 20;
    })
    .await;
    let (api, session, ca, mut kine, mut pat) =
        connected_call(&server, &format!("redis-paused-{round}@example.fr")).await;
    let companion_link = link_url(&api, session, "companion").await;
    let connected = Instant::now();
    tokio::time::sleep(stay / 2).await;

    let pause = Duration::from_secs(4);
    redis.signal("STOP");
    // Nobody is admitted while the shared state cannot answer.
    let refused = Peer::join(PeerConfig {
        reconnect: false,
        ..peer_config(&ca, companion_link, false)
    })
    .await;
    assert!(
        matches!(&refused, Err(telesoin_peer::PeerError::Refused(r)) if r.code == "unavailable")
            || matches!(&refused, Err(telesoin_peer::PeerError::Timeout { .. })),
        "no join while Redis is paused: {refused:?}"
    );
    tokio::time::sleep(pause.saturating_sub(Duration::from_secs(2))).await;
    redis.signal("CONT");
    assert!(
        kine.state().connected_remote().is_some() && pat.state().connected_remote().is_some(),
        "the media stayed up"
    );
    tokio::time::sleep(stay / 2).await;
    let (billed, observed) = hang_up(&mut kine, &mut pat, connected).await;
    let rec = api.record(session).await;
    let seen = observed - pause.as_secs_f64() - 2.0;
    check_record(
        &rec,
        observed,
        seen,
        &[kine.participant(), pat.participant()],
    );
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));
    assert!(
        telesoin_server::records::cli::audit_verify(server.state.store.as_ref())
            .await
            .expect("audit verify")
    );
    eprintln!(
        "standing redis-paused round {round}: billed {billed} s, observed {observed:.1} s, Redis paused {:.0} s",
        pause.as_secs_f64()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_redis_paused_mid_call() {
    let (rounds, stay, bound) = mode();
    for round in 0..rounds {
        tokio::time::timeout(bound, redis_paused(round, stay.max(Duration::from_secs(4))))
            .await
            .unwrap_or_else(|_| panic!("round {round} took longer than {bound:?}"));
    }
}

/// A PostgreSQL of this test's own (initdb in a temporary directory, a free port, run as the
/// `postgres` user since it refuses root), stopped as a crash (`pg_ctl stop -m immediate`: recovery
/// at the next start) and started again.
struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
    uid: u32,
    gid: u32,
    child: Option<Child>,
}

fn id_of(flag: &str, user: &str) -> Option<u32> {
    let out = std::process::Command::new("id")
        .args([flag, user])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

impl Postgres {
    async fn start() -> Option<Postgres> {
        // On PATH, or where Debian's server packages put it.
        let on_path = std::env::var_os("PATH")
            .and_then(|p| p.into_string().ok())
            .unwrap_or_default()
            .split(':')
            .map(|d| std::path::Path::new(d).join("initdb"))
            .find(|p| p.exists());
        let debian = || {
            let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| Some(e.ok()?.path().join("bin/initdb")))
                .filter(|p| p.exists())
                .collect();
            found.sort();
            found.pop()
        };
        let initdb = std::fs::canonicalize(on_path.or_else(debian)?).ok()?;
        let bin = initdb.parent()?.to_path_buf();
        let (uid, gid) = (id_of("-u", "postgres")?, id_of("-g", "postgres")?);
        let dir = tempfile::tempdir().ok()?;
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).ok()?;
        let ok = Command::new(&initdb)
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let mut pg = Postgres {
            dir,
            port: crate::restart::free_port(),
            bin,
            uid,
            gid,
            child: None,
        };
        pg.run().await;
        Some(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .uid(self.uid)
            .gid(self.gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn postgres");
        self.child = Some(child);
        let deadline = Instant::now() + T;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "postgres did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An immediate stop: no checkpoint, every connection cut, crash recovery at the next start.
    async fn crash(&mut self) {
        let ok = Command::new(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate", "-w"])
            .uid(self.uid)
            .gid(self.gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        assert!(ok, "pg_ctl stop -m immediate");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait().await;
        }
    }
}

/// `/readyz`'s status.
async fn readyz(base: &str) -> u16 {
    http()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .status()
        .as_u16()
}

/// Waits (bounded) until `/readyz` answers `status`.
async fn until_ready(base: &str, status: u16, what: &str) {
    let deadline = Instant::now() + T;
    while readyz(base).await != status {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The record's `store_gap_` incidents.
fn store_gaps(rec: &Value) -> usize {
    rec["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("store_gap_"))
        })
        .count()
}

/// The kiné hangs up, the patient hears the end and goes: (billed, observed seconds since
/// `connected`).
async fn hang_up(kine: &mut Peer, pat: &mut Peer, connected: Instant) -> (i64, f64) {
    let hung_up = Instant::now();
    let billed = kine
        .hangup(T)
        .await
        .expect("hangup")
        .expect("the kiné's hang-up ends the session");
    let observed = (hung_up - connected).as_secs_f64();
    pat.wait_state("ended", T, |s| s.ended.is_some().then_some(Ok(())))
        .await
        .expect("the patient hears the end");
    pat.shutdown().await;
    (billed, observed)
}

/// The store (Postgres, its own instance) crashes and restarts mid-call: the node stops being
/// ready and admits nobody while writes fail, the call's media goes on, the gap is recorded once
/// writing is back, and the kiné's hang-up ends the session, billed never over what was observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_postgres_restarted_mid_call() {
    let (rounds, stay, bound) = mode();
    for round in 0..rounds {
        tokio::time::timeout(
            bound,
            postgres_restarted(round, stay.max(Duration::from_secs(4))),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round} took longer than {bound:?}"));
    }
}

async fn postgres_restarted(round: usize, stay: Duration) {
    let Some(mut pg) = Postgres::start().await else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "initdb and a postgres user (tests/run runs as root) are required under CI"
        );
        eprintln!("NOTE: cannot run a PostgreSQL of the test's own; skipped outside CI");
        return;
    };
    let url = pg.url();
    let server = Server::start_with(|c| {
        c.database_url = Some(url);
        c.heartbeat_seconds = 2;
        c.grace_seconds = 20;
    })
    .await;
    let (api, session, _, mut kine, mut pat) =
        connected_call(&server, &format!("pg-restart-{round}@example.fr")).await;
    let connected = Instant::now();
    tokio::time::sleep(stay / 2).await;
    // Crash just after both sides' heartbeats are persisted: a crash at the instant of a
    // heartbeat loses it for one side (whichever write came second) and that side then has no
    // evidence back to its previous row, one period more than what this case measures.
    let beats = |rec: &Value, who: Uuid| {
        rec["events"].as_array().map_or(0, |evs| {
            evs.iter()
                .filter(|e| e["kind"] == "media_heartbeat" && e["participant"] == who.to_string())
                .count()
        })
    };
    let (k, p) = (kine.participant(), pat.participant());
    let before = api.record(session).await;
    let (k0, p0) = (beats(&before, k), beats(&before, p));
    let deadline = Instant::now() + T;
    loop {
        let rec = api.record(session).await;
        if beats(&rec, k) > k0 && beats(&rec, p) > p0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat of both sides: {rec}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let away = Instant::now();
    pg.crash().await;
    // Long enough for a heartbeat to be refused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        readyz(&server.base).await,
        503,
        "not ready while the store cannot write"
    );
    pg.run().await;
    until_ready(&server.base, 200, "ready again once the store writes").await;
    let away = away.elapsed();
    assert!(
        kine.state().connected_remote().is_some() && pat.state().connected_remote().is_some(),
        "the media stayed up"
    );
    tokio::time::sleep(stay / 2).await;
    let (billed, observed) = hang_up(&mut kine, &mut pat, connected).await;
    let rec = api
        .login(&format!("pg-restart-{round}@example.fr"))
        .await
        .record(session)
        .await;
    // Reports refused while the store was down are no evidence: under by at most that time and
    // one heartbeat period (2 s) before it, back to the last persisted report.
    let seen = observed - away.as_secs_f64() - 2.0;
    check_record(
        &rec,
        observed,
        seen,
        &[kine.participant(), pat.participant()],
    );
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));
    assert_eq!(store_gaps(&rec), 1, "the gap is recorded once: {rec}");
    assert!(
        telesoin_server::records::cli::audit_verify(server.state.store.as_ref())
            .await
            .expect("audit verify")
    );
    eprintln!(
        "standing postgres-restart round {round}: billed {billed} s, observed {observed:.1} s, store away {:.1} s",
        away.as_secs_f64()
    );
    server.stop().await;
    pg.crash().await;
}

/// The data directory fills up mid-call (a tmpfs of the test's own, filled to ENOSPC): the node
/// stops being ready and seats nobody (a companion's join is refused `unavailable`), the call's
/// media goes on peer to peer, the gap is recorded once the disk has room again, and the kiné's
/// hang-up then ends the session, billed never over what the peers observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_data_directory_full_mid_call() {
    let (rounds, stay, bound) = mode();
    for round in 0..rounds {
        tokio::time::timeout(bound, disk_full(round, stay.max(Duration::from_secs(8))))
            .await
            .unwrap_or_else(|_| panic!("round {round} took longer than {bound:?}"));
    }
}

async fn disk_full(round: usize, stay: Duration) {
    let Some(fs) = crate::faults::TinyFs::mount("32m") else {
        return;
    };
    let data = fs.path().join("data");
    let server = Server::start_with(|c| {
        c.data_dir = data.clone();
        c.min_free_disk_mb = 1;
        c.heartbeat_seconds = 2;
        c.grace_seconds = 20;
    })
    .await;
    let email = format!("disk-full-{round}@example.fr");
    let (api, session, _, mut kine, mut pat) = connected_call(&server, &email).await;
    let connected = Instant::now();
    let (companion, _) = api.link(session, "companion").await;
    tokio::time::sleep(stay / 2).await;

    let away = Instant::now();
    let filler = fs.fill();
    until_ready(&server.base, 503, "not ready once the disk is full").await;
    // Long enough for a heartbeat to be refused, then a join while nothing can be written.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, close) = crate::refused_code(server.port, &companion).await;
    assert_eq!(
        (code.as_str(), close),
        ("unavailable", 4001),
        "nobody is seated while presence cannot be recorded"
    );
    std::fs::remove_file(filler).expect("free the disk");
    until_ready(&server.base, 200, "ready again once the disk has room").await;
    let away = away.elapsed();
    assert!(
        kine.state().connected_remote().is_some() && pat.state().connected_remote().is_some(),
        "the media stayed up"
    );
    tokio::time::sleep(stay / 2).await;
    let (billed, observed) = hang_up(&mut kine, &mut pat, connected).await;
    let rec = api.login(&email).await.record(session).await;
    // Reports refused while the disk was full are no evidence: under by at most that time, one
    // heartbeat period (2 s) before it (back to the last persisted report of each side) and one
    // after it (up to the first report of each side written once the disk has room).
    let seen = observed - away.as_secs_f64() - 2.0 * 2.0;
    check_record(
        &rec,
        observed,
        seen,
        &[kine.participant(), pat.participant()],
    );
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));
    let events = rec["events"].as_array().expect("events");
    assert!(
        !events.iter().any(|e| e["role"] == "companion"),
        "nothing of the refused companion's seat: {rec}"
    );
    assert_eq!(store_gaps(&rec), 1, "the gap is recorded once: {rec}");
    assert!(
        telesoin_server::records::cli::audit_verify(server.state.store.as_ref())
            .await
            .expect("audit verify")
    );
    eprintln!(
        "standing disk-full round {round}: billed {billed} s, observed {observed:.1} s, disk full {:.1} s",
        away.as_secs_f64()
    );
    server.stop().await;
}

/// `reconnect: false` (`--no-reconnect`): a peer whose server goes away stays away, while one
/// left at the default is still trying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_told_not_to_reconnect_stays_away() {
    let server = Server::start().await;
    let api = server.kine("no-reconnect@example.fr").await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let ca = std::fs::read(server.dir.path().join("tls/cert.pem")).expect("certificate");
    let kine_link = link_url(&api, session, "kine").await;
    let patient_link = link_url(&api, session, "patient").await;
    let mut kine = Peer::join(peer_config(&ca, kine_link, true))
        .await
        .expect("kiné joins");
    kine.admitted(T).await.expect("kiné admitted");
    let mut pat = Peer::join(PeerConfig {
        reconnect: false,
        ..peer_config(&ca, patient_link, false)
    })
    .await
    .expect("patient joins");
    pat.admitted(T).await.expect("patient admitted");
    let _guard = server.stop().await;
    pat.wait_state("the socket closed for good", T, |s| {
        s.gone().then_some(Ok(()))
    })
    .await
    .expect("no reconnection");
    kine.wait_state("reconnecting", T, |s| {
        (!s.socket_open && s.reconnecting).then_some(Ok(()))
    })
    .await
    .expect("the default peer tries again");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pat.state().rejoins, 0);
    assert!(!pat.state().reconnecting);
    kine.shutdown().await;
    pat.shutdown().await;
}

/// After Redis lost the rooms, a seat comes back only as the record has it: a companion that was
/// waiting in the lobby is not admitted by the restoration (its relays are refused
/// `not_admitted`, nobody hears of it), until the kiné, put back with its authority, admits it.
#[tokio::test]
async fn a_restored_room_admits_nobody_the_record_did_not() {
    let Some(redis) = crate::cluster::Redis::start().await else {
        return;
    };
    let url = redis.url();
    let server = Server::start_with(|c| c.redis_url = Some(url)).await;
    let api = server.kine("restored-lobby@example.fr").await;
    let (mut k, mut p, s, kid, _) = admitted_pair(&api, server.port).await;
    let (ct, cid) = api.link(s, "companion").await;
    let (mut c, _) = welcomed(server.port, &ct).await;
    let (w, _) = c.until("waiting").await;
    assert_eq!(w["reason"], "awaiting_admission");
    k.until("lobby_waiting").await;

    redis.flushall().await;
    // The companion's first message after the loss: its seat comes back, in the lobby.
    c.send(json!({"type": "candidate", "to": kid, "data": {"candidate": ""}}))
        .await;
    let (err, _) = c.until("error").await;
    assert_eq!(err["code"], "not_admitted", "{err}");
    // What the kiné hears meanwhile: the lobby again, never the candidate.
    while let Some(m) = k.silent_for(Duration::from_millis(300)).await {
        assert_ne!(
            m["type"], "candidate",
            "nothing relayed from a seat the record does not admit"
        );
    }
    // The kiné's authority comes back from the record: it admits the companion.
    k.send(json!({"type": "admit", "participant": cid})).await;
    c.until("admitted").await;
    let (joined, _) = k.until("peer_joined").await;
    assert_eq!(joined["peer"]["participant"], cid.to_string());
    c.send(json!({"type": "candidate", "to": kid, "data": {"candidate": ""}}))
        .await;
    k.until("candidate").await;
    k.send(json!({"type": "hangup"})).await;
    k.until("ended").await;
    p.until("ended").await;
    c.until("ended").await;
    let rec = api.record(s).await;
    assert_eq!(rec["status"], "ended");
    let events = rec["events"].as_array().expect("events");
    let admitted: Vec<_> = events
        .iter()
        .filter(|e| e["participant"] == cid.to_string() && e["kind"] == "admitted")
        .collect();
    assert_eq!(admitted.len(), 1, "admitted once, by the kiné: {rec}");
    server.stop().await;
}

/// The kiné lets the patient in while the patient still has to consent on the join page; then
/// Redis loses the rooms. The kiné's word is in the record (`admitted_by_kine`): when the
/// patient consents, its seat, put back from the record, enters at once, without a second
/// `admit` (the room alone held it before, and the patient waited for the kiné again).
#[tokio::test]
async fn a_kine_admit_before_the_rooms_were_lost_still_lets_the_patient_in() {
    let Some(redis) = crate::cluster::Redis::start().await else {
        return;
    };
    let url = redis.url();
    let server = Server::start_with(|c| c.redis_url = Some(url)).await;
    let api = server.kine("restored-admit@example.fr").await;
    let bilan = (chrono::Utc::now().date_naive() - chrono::Duration::days(30)).to_string();
    let patient = api
        .patient("1958-03-14", false, &[(&bilan, "bilan")], false)
        .await;
    let s = api
        .session(
            patient,
            json!({"patient_consent_on_join": true, "auto_admit": false}),
        )
        .await;
    let (kt, kid) = api.link(s, "kine").await;
    let (pt, pid) = api.link(s, "patient").await;
    let (mut k, _) = welcomed(server.port, &kt).await;
    k.until("admitted").await;
    let (mut p, w) = welcomed(server.port, &pt).await;
    let (waiting, _) = p.until("waiting").await;
    assert_eq!(waiting["reason"], "consent_required");
    let (lobby, _) = k.until("lobby_waiting").await;
    assert_eq!(lobby["reason"], "consent_required");
    // The kiné lets the patient in before the consent: the patient still waits for it.
    k.send(json!({"type": "admit", "participant": pid})).await;
    k.send(json!({"type": "ping"})).await;
    let (_, before) = k.until("pong").await;
    assert!(
        before.iter().all(|m| m["type"] != "error"),
        "admit taken: {before:?}"
    );

    redis.flushall().await;
    p.send(json!({"type": "consent", "text_version": w["session"]["consent_text_version"]}))
        .await;
    // The seat comes back from the record (still waiting for its consent, said again), then
    // the consent is taken: what follows is the call, not the kiné's lobby.
    let next = loop {
        let m = p.recv().await;
        if m["type"] == "waiting" && m["reason"] == "consent_required" {
            continue;
        }
        break m;
    };
    assert_eq!(next["type"], "admitted", "the kiné's admit stands: {next}");
    let (joined, _) = k.until("peer_joined").await;
    assert_eq!(joined["peer"]["participant"], pid.to_string());
    p.send(json!({"type": "candidate", "to": kid, "data": {"candidate": ""}}))
        .await;
    k.until("candidate").await;
    k.send(json!({"type": "hangup"})).await;
    k.until("ended").await;
    p.until("ended").await;
    let rec = api.record(s).await;
    let kinds: Vec<&str> = rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["participant"] == pid.to_string())
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "admitted_by_kine").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "admitted").count(),
        1,
        "{kinds:?}"
    );
    server.stop().await;
}

/// A rejoin after Redis lost the rooms and before anything else put them back: the joining seat
/// is found admitted in the record, and the other seats of its room held by the same node come
/// back with it, so the kiné hears `peer_joined` (and re-offers) instead of never learning of
/// the return.
#[tokio::test]
async fn a_rejoin_after_the_shared_state_was_lost_is_announced_to_the_kine() {
    let Some(redis) = crate::cluster::Redis::start().await else {
        return;
    };
    let url = redis.url();
    let server = Server::start_with(|c| c.redis_url = Some(url)).await;
    let api = server.kine("lost-rejoin@example.fr").await;
    let (mut k, p, s, _, pid) = admitted_pair(&api, server.port).await;
    let (pt, _) = api.link(s, "patient").await;

    redis.flushall().await;
    drop(p);
    let (mut p, w) = welcomed(server.port, &pt).await;
    assert_eq!(w["resumed"], true, "admitted in the record: {w}");
    p.until("admitted").await;
    let (joined, _) = k.until("peer_joined").await;
    assert_eq!(joined["peer"]["participant"], pid.to_string());
    k.send(json!({"type": "hangup"})).await;
    k.until("ended").await;
    p.until("ended").await;
    server.stop().await;
}
