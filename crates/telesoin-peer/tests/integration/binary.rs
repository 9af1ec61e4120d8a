//! The `telesoin-peer` binary against the stand-in hub: exit status, progress output, and
//! that the token never shows up in it.

use std::process::Stdio;
use std::time::Duration;

use telesoin_peer::{Peer, PeerConfig};
use tokio::process::Command;

use crate::hub::{self, Hub};

const T: Duration = Duration::from_secs(30);

fn binary(link: String) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_telesoin-peer"));
    cmd.env("TELESOIN_PEER_LINK", link)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_exits_2_with_both_messages() {
    let (_hub, base) = Hub::start_plain().await;
    let out = tokio::time::timeout(T, binary(format!("{base}/j#not-a-known-token")).output())
        .await
        .expect("finishes")
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("link_invalid") && stderr.contains("fr: ") && stderr.contains("en: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-a-known-token")
            && !String::from_utf8_lossy(&out.stdout).contains("not-a-known-token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kine_binary_admits_calls_sends_and_hangs_up() {
    let (_hub, base) = Hub::start_plain().await;
    let mut patient = Peer::join(PeerConfig {
        consent: true,
        udp_bind: vec![([127, 0, 0, 1], 0).into()],
        ..PeerConfig::new(format!("{base}/j#{}", hub::PATIENT_TOKEN))
    })
    .await
    .expect("patient joins");

    let mut kine = binary(format!("{base}/j#{}", hub::KINE_TOKEN));
    kine.args([
        "--admit-all",
        "--send",
        "bonjour",
        "--stay",
        "1",
        "--bind",
        "127.0.0.1:0",
    ]);
    let run = tokio::spawn(async move { tokio::time::timeout(T, kine.output()).await });

    patient.admitted(T).await.expect("admitted by the binary");
    assert_eq!(
        patient.recv_data(T).await.expect("the binary's text").text,
        "bonjour"
    );
    let out = run.await.expect("task").expect("finishes").expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    if std::env::var_os("SHOW_BINARY_OUTPUT").is_some() {
        eprintln!("{stdout}");
    }
    assert!(
        stdout.contains("media connected")
            && stdout.contains(&format!("{} s billable", hub::BILLABLE)),
        "{stdout}"
    );
    for secret in [hub::KINE_TOKEN, "a=fingerprint", "candidate:", "Kiné Test"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret:?} leaked:\n{stdout}\n{stderr}"
        );
    }
    patient
        .wait_state("ended", T, |s| s.ended.clone().map(Ok))
        .await
        .expect("the session ended");
}
