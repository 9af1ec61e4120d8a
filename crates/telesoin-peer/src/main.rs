//! `telesoin-peer`: join a télésoin session from the command line, make the call, hang up.
//!
//! Prints its progress for people (never the token, an SDP or a candidate). Exit status: 0
//! after a call that ended normally, 2 when the server refused the join, 1 on any other
//! failure.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use telesoin_peer::{Peer, PeerConfig, PeerError};
use telesoin_proto::Refusal;
use telesoin_proto::signal::{Companion, ServerMsg};
use tokio::time::Instant;

#[derive(Parser)]
#[command(
    name = "telesoin-peer",
    version,
    about = "Headless télésoin participant (WebRTC data channel)"
)]
struct Cli {
    /// Join link, https://HOST/j#TOKEN (or http:// behind a TLS-terminating proxy). Prefer
    /// the environment variable: command lines are visible to other users of the machine.
    #[arg(long, env = "TELESOIN_PEER_LINK", hide_env_values = true)]
    link: String,
    /// Accept any TLS certificate (loopback tests against a self-signed server only).
    #[arg(long)]
    insecure: bool,
    /// Trust the certificate(s) in this PEM file instead of the public roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Origin header for the WebSocket upgrade.
    #[arg(long)]
    origin: Option<String>,
    /// Give consent when the server asks for it.
    #[arg(long)]
    consent: bool,
    /// Attest that a parent or an aidant is present when the server asks for it.
    #[arg(long, value_enum)]
    attest: Option<AttestArg>,
    /// The name of the companion attested present (required by the server with --attest); for
    /// a minor, also the legal representative who consents.
    #[arg(long, value_name = "NAME")]
    attest_name: Option<String>,
    /// The companion's relation to the patient ("mère", "fils"...).
    #[arg(long, value_name = "RELATION")]
    attest_relation: Option<String>,
    /// Kiné: admit everyone who waits in the lobby.
    #[arg(long)]
    admit_all: bool,
    /// Use TURN relays only.
    #[arg(long)]
    relay_only: bool,
    /// Local UDP address for ICE (default: every interface).
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// Do not reopen a lost signaling socket by itself (by default it does, as the web
    /// client: same token, backoff, ICE restart).
    #[arg(long)]
    no_reconnect: bool,
    /// Send this text on the data channel once connected.
    #[arg(long, value_name = "TEXT")]
    send: Option<String>,
    /// Stay this long in the call once connected, printing what arrives, then hang up.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    stay: u64,
    /// Longest wait for admission, and then for the media connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    wait: u64,
}

/// The log targets of the webrtc-rs stack.
const WEBRTC_CRATES: &[&str] = &[
    "webrtc",
    "rtc",
    "rtc_ice",
    "rtc_dtls",
    "rtc_sctp",
    "rtc_sdp",
    "rtc_srtp",
    "rtc_stun",
    "rtc_turn",
    "rtc_mdns",
    "rtc_datachannel",
    "rtc_interceptor",
    "rtc_media",
    "rtc_rtp",
    "rtc_rtcp",
    "rtc_shared",
];

#[derive(Clone, Copy, ValueEnum)]
enum AttestArg {
    Parent,
    Aidant,
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    // webrtc-rs logs candidate addresses and SDP details at debug level: keep its crates at
    // warn whatever RUST_LOG asks, so that turning our own logs up never shows them.
    for quiet in WEBRTC_CRATES {
        if let Ok(directive) = format!("{quiet}=warn").parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(PeerError::Refused(refusal)) = e.downcast_ref::<PeerError>() {
                print_refusal("refused", refusal);
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_refusal(what: &str, r: &Refusal) {
    eprintln!("{what}: {}", r.code);
    eprintln!("  fr: {}", r.message_fr);
    eprintln!("  en: {}", r.message_en);
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = PeerConfig::new(cli.link);
    cfg.accept_invalid_certs = cli.insecure;
    if let Some(path) = &cli.ca {
        cfg.ca_pem =
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    }
    cfg.origin = cli.origin;
    cfg.consent = cli.consent;
    cfg.attest = cli.attest.map(|a| match a {
        AttestArg::Parent => Companion::Parent,
        AttestArg::Aidant => Companion::Aidant,
    });
    cfg.attest_name = cli.attest_name;
    cfg.attest_relation = cli.attest_relation;
    cfg.auto_admit_lobby = cli.admit_all;
    cfg.relay_only = cli.relay_only;
    cfg.reconnect = !cli.no_reconnect;
    if let Some(bind) = cli.bind {
        cfg.udp_bind = vec![bind];
    }
    let wait = Duration::from_secs(cli.wait);

    let mut peer = Peer::join(cfg).await?;
    let w = peer.welcome();
    println!(
        "joined session {} as {:?} (participant {}){}",
        w.session.session,
        w.role,
        w.participant,
        if w.resumed { ", resumed" } else { "" }
    );

    // The waiting room: say why we wait until admitted.
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match peer
            .next_message(left)
            .await
            .context("waiting for admission")?
        {
            ServerMsg::Waiting { reason } => println!("waiting: {reason:?}"),
            ServerMsg::Admitted { peers } => {
                println!("admitted ({} other participant(s) present)", peers.len());
                break;
            }
            ServerMsg::Refused(r) => return Err(PeerError::Refused(r).into()),
            ServerMsg::Error(r) => print_refusal("server error", &r),
            ServerMsg::Replaced => anyhow::bail!("replaced by another connection"),
            ServerMsg::Ended {
                billable_seconds,
                reason,
            } => {
                println!(
                    "session ended before admission ({reason}, {billable_seconds} s billable)"
                );
                return Ok(());
            }
            ServerMsg::LobbyWaiting {
                participant,
                role,
                reason,
            } => {
                println!("in the lobby: {role:?} {participant} ({reason:?})")
            }
            _ => {}
        }
    }

    let remote = peer
        .wait_connected(wait)
        .await
        .context("waiting for the media connection")?;
    println!("media connected with participant {remote}");
    if let Some(text) = &cli.send {
        peer.wait_media_connected(Duration::from_secs(10))
            .await
            .context("waiting for the data channel")?;
        let n = peer.send_data(text).await?;
        println!("sent {} byte(s) on {n} data channel(s)", text.len());
    }

    let stay_until = Instant::now() + Duration::from_secs(cli.stay);
    loop {
        if let Some(ended) = peer.state().ended {
            println!(
                "session ended by the kiné ({}): {} s billable",
                ended.reason, ended.billable_seconds
            );
            return Ok(());
        }
        let left = stay_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match peer.recv_data(left.min(Duration::from_millis(500))).await {
            Ok(msg) => println!("received from {}: {}", msg.from, msg.text),
            Err(PeerError::Timeout { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }

    match peer.hangup(Duration::from_secs(10)).await? {
        Some(seconds) => println!("hung up; session ended: {seconds} s billable"),
        None => println!("hung up"),
    }
    Ok(())
}
