//! The load generator's own correctness, at a small size: against a real telesoin server (a
//! temporary SQLite file, plain ws), the real `telesoin-load` binary makes its sessions through
//! `/api/v1`, joins every seat over two worker processes, relays, and closes. Every message sent
//! is counted as received, none is lost, every seat is admitted (the store's records say so),
//! and nothing is reported as an error. Bounded: a few seconds of relay.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use telesoin_core::KineId;
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::Kine;
use telesoin_server::config::TlsMode;
use telesoin_server::platform::auth::{Scope, new_key};
use telesoin_server::{AppState, Config};
use telesoin_store::PlatformRow;
use uuid::Uuid;

struct Server {
    state: AppState,
    base: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(tls: bool) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: if tls { TlsMode::Auto } else { TlsMode::Off },
        drain_seconds: 0,
        ..Config::default()
    };
    let prepared = telesoin_server::prepare(cfg).await.expect("prepare");
    let state = prepared.state.clone();
    let port = prepared.listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(telesoin_server::run(prepared, async move {
        let _ = rx.await;
    }));
    let scheme = if tls { "https" } else { "http" };
    Server {
        state,
        base: format!("{scheme}://127.0.0.1:{port}"),
        _dir: dir,
        stop: Some(tx),
        task,
    }
}

/// A kiné, a platform and an API key for it, as `telesoin add-kine`, `platform add` and
/// `api-key create` make them.
async fn platform_key(server: &Server) -> (Uuid, String) {
    let store = &server.state.store;
    let kine = Kine {
        id: KineId(Uuid::new_v4()),
        rpps: "10001234567".into(),
        name: "Claire Martin".into(),
        email: "charge@load.test".into(),
    };
    let hash = telesoin_server::auth::hash_password("a long enough password").expect("hash");
    store
        .create_kine(&kine, &hash, Utc::now())
        .await
        .expect("kine");
    let platform = PlatformRow {
        id: Uuid::new_v4(),
        name: "charge".into(),
        issuer: "https://charge.example".into(),
        created_at: Utc::now(),
    };
    store.create_platform(&platform).await.expect("platform");
    let (key, row) = new_key(platform.id, vec![kine.id], &Scope::ALL, Utc::now());
    store.create_api_key(&row).await.expect("key");
    (kine.id.0, key)
}

async fn load(server: &Server, kine: Uuid, key: &str, extra: &[&str]) -> Value {
    let out = tempfile::NamedTempFile::new().expect("tmp");
    let pid = std::process::id().to_string();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_telesoin-load"));
    cmd.arg("run")
        .args(["--url", &server.base, "--kine", &kine.to_string()])
        .args(["--server-pid", &pid, "--procs", "2", "--settle-secs", "0.2"])
        .args(["--json", &out.path().display().to_string()])
        .args(extra)
        .env("TELESOIN_LOAD_API_KEY", key)
        .kill_on_drop(true);
    let status = tokio::time::timeout(Duration::from_secs(120), cmd.status())
        .await
        .expect("telesoin-load finishes within 2 minutes")
        .expect("telesoin-load runs");
    assert!(status.success(), "telesoin-load: {status}");
    serde_json::from_str(&std::fs::read_to_string(out.path()).expect("report")).expect("json")
}

fn assert_complete(report: &Value, pairs: u64, windows: usize) {
    let t = &report["telesoin"];
    assert_eq!(t["errors"], serde_json::json!({}), "no error: {t}");
    assert_eq!(t["join"]["sockets"], pairs * 2, "{t}");
    assert_eq!(t["join"]["admitted"], pairs * 2, "{t}");
    assert_eq!(t["join"]["join_to_admitted"]["count"], pairs * 2);
    let ws = t["windows"].as_array().expect("windows");
    assert_eq!(ws.len(), windows);
    for w in ws {
        let sent = w["sent"].as_u64().expect("sent");
        let expected = (w["rate"].as_f64().expect("rate")
            * report["window_secs"].as_f64().expect("secs"))
        .round() as u64;
        assert_eq!(sent, expected, "every scheduled message is sent: {w}");
        assert_eq!(w["received"], sent, "every message arrives: {w}");
        assert_eq!(
            (w["lost"].as_u64(), w["late"].as_u64()),
            (Some(0), Some(0)),
            "{w}"
        );
        assert_eq!(w["latency"]["count"], sent, "one latency per message: {w}");
        assert!(
            w["latency"]["p50_ms"].as_f64().is_some_and(|p| p > 0.0),
            "{w}"
        );
        assert!(w["cpu_us_per_message"].as_f64().is_some(), "{w}");
        // Every message counts in the second of the window it was sent in: the window's
        // seconds, one more when the last send's tick came just after the window's end.
        let secs = report["window_secs"].as_f64().expect("secs").ceil() as u64;
        let seconds = w["seconds"].as_u64().expect("seconds");
        assert!((secs..=secs + 1).contains(&seconds), "{w}");
        let over = w["seconds_over_budget"].as_u64().expect("over budget");
        let worst = w["worst_second_over_budget"].as_f64().expect("worst");
        assert!(over <= seconds && (0.0..=1.0).contains(&worst), "{w}");
    }
    assert_eq!(t["closed"], pairs * 2);
    assert!(t["idle_bytes_per_socket"].as_f64().is_some(), "{t}");
}

/// How many seats of the kiné's sessions the store recorded as admitted.
async fn admitted_seats(server: &Server, kine: Uuid) -> usize {
    let store = &server.state.store;
    let rows = store
        .sessions_between(
            KineId(kine),
            Utc::now() - chrono::Duration::hours(1),
            Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .expect("sessions");
    let mut n = 0;
    for r in rows {
        let events = store.events(r.session.id).await.expect("events");
        n += events
            .iter()
            .filter(|e| e.kind == PresenceKind::Admitted)
            .count();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_every_message_and_seat_plain_and_tls() {
    let server = start(false).await;
    let (kine, key) = platform_key(&server).await;
    let report = load(
        &server,
        kine,
        &key,
        &["--pairs", "20", "--join-rate", "200", "--rates", "200,400"]
            .iter()
            .chain(&["--window-secs", "2", "--rounds", "1"])
            .copied()
            .collect::<Vec<_>>(),
    )
    .await;
    assert_complete(&report, 20, 2);
    assert_eq!(report["tls"], false);
    assert_eq!(admitted_seats(&server, kine).await, 40);

    // The kiné's own `admit` instead of auto-admit, unpaced joins.
    let report = load(
        &server,
        kine,
        &key,
        &[
            "--pairs",
            "5",
            "--join-rate",
            "0",
            "--admit",
            "kine",
            "--rates",
            "100",
        ]
        .iter()
        .chain(&["--window-secs", "1", "--rounds", "1"])
        .copied()
        .collect::<Vec<_>>(),
    )
    .await;
    assert_complete(&report, 5, 1);
    assert_eq!(admitted_seats(&server, kine).await, 50);
    stop(server).await;

    let server = start(true).await;
    let (kine, key) = platform_key(&server).await;
    let report = load(
        &server,
        kine,
        &key,
        &[
            "--pairs",
            "5",
            "--rates",
            "100",
            "--window-secs",
            "1",
            "--rounds",
            "1",
        ],
    )
    .await;
    assert_complete(&report, 5, 1);
    assert_eq!(report["tls"], true);
    stop(server).await;
}

async fn stop(mut s: Server) {
    if let Some(tx) = s.stop.take() {
        let _ = tx.send(());
    }
    let _ = s.task.await;
}
