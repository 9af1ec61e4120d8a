//! V17 WebRTC and its signaling channel: a client that stops reading, frames the protocol layer
//! must reject with the right close code, and relay isolation.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::*;

/// A WebSocket whose TCP receive buffer is tiny: once it stops reading, the server's writes
/// stall almost at once.
async fn slow_socket(port: u16) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let req = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .expect("request");
    let connector = tokio_tungstenite::Connector::Rustls(tls_client());
    let (inner, _) =
        tokio_tungstenite::client_async_tls_with_config(req, tcp, None, Some(connector))
            .await
            .expect("handshake");
    Ws { inner }
}

/// Kiné and a patient on a slow socket, both admitted; the patient then stops reading and the
/// kiné floods it with relayed offers. Returns how long until the kiné hears the patient left.
async fn flood_a_stopped_reader(server: &Server) -> Duration {
    let api = server.kine("slow@example.fr").await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({"auto_admit": true})).await;
    let (kt, _) = api.link(session, "kine").await;
    let (pt, pid) = api.link(session, "patient").await;
    let (mut k, _) = welcomed(server.port, &kt).await;
    k.until("admitted").await;
    let mut p = slow_socket(server.port).await;
    p.send(json!({"type": "join", "token": pt, "device": {"kind": "test"}}))
        .await;
    p.until("welcome").await;
    p.until("admitted").await;
    k.until("peer_joined").await;
    // From here the patient reads nothing more.
    let blob = "x".repeat(48 * 1024);
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    let left = loop {
        if sent < 2000 {
            let offer = json!({"type": "offer", "to": pid, "data": {"type": "offer", "sdp": blob}});
            if k.send_raw(offer.to_string()).await.is_err() {
                panic!("the kiné's own socket failed");
            }
            sent += 1;
        }
        // Read what the kiné got meanwhile; after a burst, pace under the rate limit (50/s).
        let wait = if sent < 150 { 2 } else { 25 };
        match tokio::time::timeout(Duration::from_millis(wait), k.inner.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let m: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                if m["type"] == "peer_left" && m["participant"] == pid.to_string() {
                    break m;
                }
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("kiné socket: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the stuck patient was never reaped (its seat stays connected)"
        );
    };
    assert_eq!(
        left["reconnecting"], true,
        "the seat falls into its grace: {left}"
    );
    drop(p);
    started.elapsed()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let server = Server::start_with(|c| {
        c.ws_send_timeout_seconds = 2;
        c.grace_seconds = 30;
    })
    .await;
    flood_a_stopped_reader(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn the_idle_timeout_holds_while_a_send_is_pending() {
    // The send timeout is long: only the idle deadline can end the stuck write.
    let server = Server::start_with(|c| {
        c.ws_send_timeout_seconds = 300;
        c.idle_timeout_seconds = 4;
        c.grace_seconds = 30;
    })
    .await;
    let took = flood_a_stopped_reader(&server).await;
    assert!(took < Duration::from_secs(30), "{took:?}");
    server.stop().await;
}

/// A text frame with the given payload and reserved bit 1 (per-message compression).
fn text_frame(payload: Vec<u8>, rsv1: bool) -> Message {
    let mut f = Frame::message(payload, OpCode::Data(Data::Text), true);
    f.header_mut().rsv1 = rsv1;
    Message::Frame(f)
}

async fn close_code_after(ws: &mut Ws, msg: Message) -> u16 {
    // The client's own checks would refuse to send these: write the raw frame.
    let _ = ws.inner.send(msg).await;
    ws.closed().await
}

#[tokio::test]
async fn invalid_utf8_closes_1007_and_protocol_errors_1002_before_and_after_join() {
    let server = Server::start().await;
    let api = server.kine("frames@example.fr").await;
    let patient = api.ready_patient().await;
    let session = api.session(patient, json!({})).await;
    let bad_utf8 = || text_frame(vec![b'{', 0xff, 0xfe, b'}'], false);
    let compressed = || text_frame(br#"{"type":"ping"}"#.to_vec(), true);

    // Before join.
    let mut ws = Ws::open(server.port, None).await.expect("open");
    assert_eq!(
        close_code_after(&mut ws, bad_utf8()).await,
        1007,
        "invalid UTF-8 before join"
    );
    let mut ws = Ws::open(server.port, None).await.expect("open");
    assert_eq!(
        close_code_after(&mut ws, compressed()).await,
        1002,
        "compressed frame never negotiated, before join"
    );
    // After join.
    let (kt, _) = api.link(session, "kine").await;
    let (mut ws, _) = welcomed(server.port, &kt).await;
    ws.until("admitted").await;
    assert_eq!(
        close_code_after(&mut ws, bad_utf8()).await,
        1007,
        "invalid UTF-8 after join"
    );
    let (mut ws, _) = welcomed(server.port, &kt).await;
    ws.until("admitted").await;
    assert_eq!(
        close_code_after(&mut ws, compressed()).await,
        1002,
        "compressed frame after join"
    );
    // The oversized message still closes 1009.
    let (mut ws, _) = welcomed(server.port, &kt).await;
    ws.until("admitted").await;
    let big = "y".repeat(server.state.cfg.max_message_bytes + 10);
    assert_eq!(
        close_code_after(&mut ws, Message::Text(big.into())).await,
        1009
    );
    server.stop().await;
}

#[tokio::test]
async fn nothing_reaches_the_kine_from_a_seat_not_admitted_nor_another_session() {
    let server = Server::start().await;
    let api = server.kine("relay@example.fr").await;
    let patient = api.ready_patient().await;
    let s1 = api.session(patient, json!({})).await;
    let s2 = api.session(patient, json!({})).await;
    let (k1, kid) = api.link(s1, "kine").await;
    let (p1, _) = api.link(s1, "patient").await;
    let (p2, _) = api.link(s2, "patient").await;
    let (mut k, _) = welcomed(server.port, &k1).await;
    k.until("admitted").await;
    // A patient in the lobby of the same session, and a patient of another session, both name
    // the kiné's participant id.
    let (mut lobby, _) = welcomed(server.port, &p1).await;
    lobby.until("waiting").await;
    k.until("lobby_waiting").await;
    let (mut stranger, _) = welcomed(server.port, &p2).await;
    for ws in [&mut lobby, &mut stranger] {
        ws.send(json!({"type": "offer", "to": kid, "data": {"type": "offer", "sdp": "v=0"}}))
            .await;
        let (e, _) = ws.until("error").await;
        assert!(
            ["not_admitted", "unknown_peer"].contains(&e["code"].as_str().unwrap_or_default()),
            "{e}"
        );
    }
    assert_eq!(
        k.silent_for(Duration::from_millis(700)).await,
        None,
        "the kiné got nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_upgrade_is_checked_and_selects_only_our_subprotocol() {
    let server = Server::start().await;
    let api = server.kine("upgrade@example.fr").await;
    let url = format!("{}/ws", api.base);
    // A plain GET is not an upgrade.
    let res = api.http.get(&url).send().await.expect("get");
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["code"], "invalid_input", "{body}");
    assert_eq!(body["details"]["header"], "connection", "{body}");
    // Another WebSocket version: 426 and the version spoken.
    let res = api
        .http
        .get(&url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 426);
    assert_eq!(
        res.headers()
            .get("sec-websocket-version")
            .map(|v| v.as_bytes()),
        Some(&b"13"[..])
    );
    // A key that is not a 16-byte nonce.
    let res = api
        .http
        .get(&url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "c2hvcnQ=")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 400);
    // Offered among others, `telesoin.v1` is selected and the socket works.
    let port = server.port;
    let mut req = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "other, telesoin.v1".parse().expect("header"),
    );
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let connector = tokio_tungstenite::Connector::Rustls(tls_client());
    let (mut inner, res) =
        tokio_tungstenite::client_async_tls_with_config(req, tcp, None, Some(connector))
            .await
            .expect("upgrade");
    assert_eq!(
        res.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"telesoin.v1"[..])
    );
    // A WebSocket ping is answered with its payload.
    inner
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(5), inner.next())
        .await
        .expect("in time");
    assert!(
        matches!(&pong, Some(Ok(Message::Pong(p))) if &p[..] == b"are you there"),
        "{pong:?}"
    );
    server.stop().await;
}
