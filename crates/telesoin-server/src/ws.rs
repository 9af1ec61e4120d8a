//! One WebSocket = one task: the token comes in the first message, then the socket reads
//! client messages and writes the frames the hub sends it, until hangup, close or idle timeout.
//!
//! The WebSocket layer is our own (`socket` over `frame`): the upgrade is answered here and
//! the task reads and writes hyper's upgraded connection (plain or TLS) directly, so that an idle
//! seated socket holds no read or write buffer (BENCHMARKS.md, "Idle memory per socket").

mod frame;
mod socket;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use hyper_util::rt::TokioIo;
use telesoin_bus::{Attachment, Outbound, queue};
use telesoin_core::billing::MediaReport;
use telesoin_core::model::Companion;
use telesoin_core::{RefusalCode, SessionId};
use telesoin_proto::signal::{self as wire, ClientMsg, ServerMsg};
use tokio::time::Instant;

use crate::app::AppState;
use crate::error::refusal_body;
use crate::events::DomainEvent;
use crate::hub::{Joined, close};
use frame::{FrameError, Incoming, Outgoing};
use socket::{HandshakeError, Socket};

/// Frames queued for one socket before it counts as too slow.
const QUEUE: usize = 64;

/// The audience of join tokens.
pub const JOIN_AUDIENCE: &str = "telesoin-join";

/// The connection a socket task reads and writes: hyper's upgraded stream, plain or TLS.
type Stream = TokioIo<hyper::upgrade::Upgraded>;

/// `GET /ws`: the origin check, the upgrade's checks (RFC 6455 §4.2), then `101` and the socket's
/// task once hyper hands the connection over.
pub async fn upgrade(State(app): State<AppState>, mut req: Request) -> Response {
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| app.origin_allowed(o));
        if !allowed {
            let body = axum::Json(refusal_body(
                RefusalCode::OriginNotAllowed,
                serde_json::Value::Null,
            ));
            return (StatusCode::FORBIDDEN, body).into_response();
        }
    }
    let shake = match socket::handshake(headers, telesoin_proto::SUBPROTOCOL) {
        Ok(s) => s,
        Err(e) => return not_an_upgrade(e),
    };
    // Present on an HTTP/1.1 request hyper can hand over (not on HTTP/2).
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return not_an_upgrade(HandshakeError::Header("upgrade"));
    };
    tokio::spawn(serve(app, on_upgrade));
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, shake.accept);
    if shake.protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(telesoin_proto::SUBPROTOCOL),
        );
    }
    res
}

/// A request to `/ws` that is not a WebSocket upgrade: 400 `invalid_input` naming the header
/// (426 and the version spoken for another WebSocket version, RFC 6455 §4.4).
fn not_an_upgrade(e: HandshakeError) -> Response {
    let (status, header_name) = match e {
        HandshakeError::Header(name) => (StatusCode::BAD_REQUEST, name),
        HandshakeError::Version => (StatusCode::UPGRADE_REQUIRED, "sec-websocket-version"),
    };
    let body = axum::Json(refusal_body(
        RefusalCode::InvalidInput,
        serde_json::json!({ "header": header_name }),
    ));
    let mut res = (status, body).into_response();
    if e == HandshakeError::Version {
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    res
}

fn frame(msg: &ServerMsg) -> String {
    msg.to_text()
}

fn refused(code: RefusalCode) -> String {
    refused_with(code, serde_json::Value::Null)
}

fn refused_with(code: RefusalCode, details: serde_json::Value) -> String {
    frame(&ServerMsg::Refused(refusal_body(code, details)))
}

fn error(code: RefusalCode) -> String {
    frame(&ServerMsg::Error(refusal_body(
        code,
        serde_json::Value::Null,
    )))
}

/// Token bucket per socket.
struct Rate {
    tokens: f64,
    max: f64,
    per_sec: f64,
    last: Instant,
    strikes: u32,
}

impl Rate {
    fn new(per_sec: u32) -> Self {
        let max = f64::from(per_sec) * 4.0;
        Rate {
            tokens: max,
            max,
            per_sec: f64::from(per_sec),
            last: Instant::now(),
            strikes: 0,
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec)
            .min(self.max);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }
}

enum Exit {
    /// The socket is gone or closed by us without ending the seat: keep it for the grace period.
    Lost,
    /// The seat is over (hangup, ended, refused, replaced): nothing to keep.
    Done,
}

/// Close codes for frames the protocol layer rejects (RFC 6455 §7.4.1).
const INVALID_PAYLOAD: u16 = 1007;
const PROTOCOL_ERROR: u16 = 1002;

/// The close a refused frame calls for: 1009 too large, 1007 invalid UTF-8 in a text frame, 1002
/// for any other protocol violation (a compressed frame never negotiated, bad opcode or
/// masking...).
fn close_for(e: &FrameError) -> Outgoing<'static> {
    match e {
        FrameError::TooBig => Outgoing::Close(close::TOO_BIG, "message too large"),
        FrameError::Utf8 => Outgoing::Close(INVALID_PAYLOAD, "invalid utf-8"),
        FrameError::Protocol(_) => Outgoing::Close(PROTOCOL_ERROR, "protocol error"),
    }
}

/// One socket's connection. Every write has a deadline, so that a client that stopped reading
/// (its TCP window shut) cannot hold the task, the seat or the idle timeout.
struct Conn {
    socket: Socket<Stream>,
    limit: Duration,
}

impl Conn {
    /// The deadline of the last frames before a close (a refusal, the idle notice, the close
    /// frame itself): short, since the socket is going anyway.
    fn goodbye(&self) -> Instant {
        Instant::now() + self.limit.min(Duration::from_secs(2))
    }

    /// Sends within the send timeout and, when given, before `by` (the idle deadline); false
    /// when the socket is gone or the write could not progress in time (then nothing more is
    /// written: the stream is closed without a close frame).
    async fn send(&mut self, frame: Outgoing<'_>, by: Option<Instant>) -> bool {
        if !self.socket.queue(frame) {
            return false;
        }
        let mut until = Instant::now() + self.limit;
        if let Some(by) = by {
            until = until.min(by);
        }
        let waited = {
            let mut flush = std::pin::pin!(self.socket.flush());
            // Most writes are taken at once; the timer (and its room) only for one that waits.
            let once =
                std::future::poll_fn(|cx| std::task::Poll::Ready(flush.as_mut().poll(cx))).await;
            if let std::task::Poll::Ready(r) = once {
                return r.is_ok();
            }
            Box::pin(tokio::time::timeout_at(until, flush)).await
        };
        match waited {
            Ok(r) => r.is_ok(),
            Err(_) => {
                tracing::info!("socket write stuck past its deadline: closing");
                self.socket.mark_broken();
                false
            }
        }
    }

    async fn text(&mut self, text: &str, by: Option<Instant>) -> bool {
        self.send(Outgoing::Text(text), by).await
    }

    async fn close(&mut self, code: u16, reason: &'static str, by: Option<Instant>) -> bool {
        self.send(Outgoing::Close(code, reason), by).await
    }
}

/// What the idle loop keeps of a join: the seat, not the welcome nor the session row read by
/// the join (they would stay in every socket's task for its whole life).
struct Seated {
    session: SessionId,
    attachment: Attachment,
}

/// The socket's task: waits for hyper to hand the connection over, then runs the socket. One
/// async fn holds the state and the others borrow it: an async fn's arguments stay in its future
/// for its whole life, so passing `app` down by value would keep a copy per level.
async fn serve(app: AppState, on_upgrade: hyper::upgrade::OnUpgrade) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let mut conn = Conn {
        socket: Socket::new(TokioIo::new(upgraded), app.cfg.max_message_bytes),
        limit: Duration::from_secs(app.cfg.ws_send_timeout_seconds),
    };
    talk(&app, &mut conn).await;
    // What is pending written (a close, its reply), then TLS close_notify and FIN.
    let by = conn.goodbye();
    let _ = Box::pin(tokio::time::timeout_at(by, conn.socket.finish())).await;
}

/// The socket's life from its first message to its seat's end or loss.
async fn talk(app: &AppState, conn: &mut Conn) {
    let (tx, mut rx) = queue::channel(QUEUE);
    // The shutdown waits for this socket's goodbye (see `server::serve`).
    let _open = app.hub.socket_opened();
    let mut going_away = app.hub.going_away();

    // 1. The join, boxed: what it holds is freed once the seat is taken.
    let Some(seat) = Box::pin(take_seat(app, conn, &mut going_away, tx)).await else {
        return;
    };

    // 2. Read and write until the seat is over or the socket is gone. Every write is bounded
    // by the send timeout and by the idle deadline. One timer for the idle deadline, moved
    // forward when it fires early (activity since it was set) rather than made anew for
    // every frame.
    let idle = Duration::from_secs(app.cfg.idle_timeout_seconds);
    let mut deadline = Instant::now() + idle;
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    let mut rate = Rate::new(app.cfg.rate_per_second);
    let exit = loop {
        let by = Some(deadline);
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Text(t)) => {
                    if !conn.text(&t, by).await {
                        break Exit::Lost;
                    }
                }
                Some(Outbound::Close { code, reason }) => {
                    let by = Some(conn.goodbye().min(deadline));
                    conn.close(code, reason, by).await;
                    break if code == close::GOING_AWAY { Exit::Lost } else { Exit::Done };
                }
                None => break Exit::Lost,
            },
            incoming = conn.socket.recv() => match incoming {
                Some(Ok(Incoming::Text(t))) => {
                    deadline = Instant::now() + idle;
                    let by = Some(deadline);
                    if !rate.allow() {
                        if rate.strikes > 100 {
                            conn.close(close::POLICY, "rate limited", by).await;
                            break Exit::Lost;
                        }
                        if !conn.text(&error(RefusalCode::RateLimited), by).await {
                            break Exit::Lost;
                        }
                        continue;
                    }
                    let reply = Box::pin(handle_seated(app, &seat, t)).await;
                    if let Some(reply) = reply
                        && !conn.text(&reply, by).await
                    {
                        break Exit::Lost;
                    }
                }
                Some(Ok(Incoming::Binary)) => {
                    if !conn.text(&error(RefusalCode::BadMessage), by).await {
                        break Exit::Lost;
                    }
                }
                Some(Ok(Incoming::Ping(_) | Incoming::Pong)) => deadline = Instant::now() + idle,
                Some(Ok(Incoming::Close(_))) | None => break Exit::Lost,
                Some(Err(e)) => {
                    let by = Some(conn.goodbye().min(deadline));
                    conn.send(close_for(&e), by).await;
                    break Exit::Lost;
                }
            },
            () = going(&mut going_away) => {
                // The node is stopping: this socket hears it from its own task, whatever the
                // shared state knows of its seat.
                Box::pin(goodbye(conn)).await;
                break Exit::Lost;
            }
            () = &mut timer => {
                if deadline > timer.deadline() {
                    // Activity since the timer was set: not idle yet.
                    timer.as_mut().reset(deadline);
                    continue;
                }
                // The socket is idle: the notice gets a short goodbye deadline, not more.
                let by = Some(conn.goodbye());
                conn.text(&error(RefusalCode::IdleTimeout), by).await;
                conn.close(close::NORMAL, "idle", by).await;
                break Exit::Lost;
            }
        }
    };
    Box::pin(leave(
        app,
        conn,
        &mut rx,
        seat.attachment,
        seat.session,
        exit,
    ))
    .await;
}

/// One message of a seated participant, and the reply to send if any (boxed by the caller: the
/// idle task does not keep its room).
async fn handle_seated(app: &AppState, seat: &Seated, text: String) -> Option<String> {
    let mut handled = handle(app, seat, &text).await;
    // No seat where one should be: the shared state may have lost the room. Restored from the
    // record, the message is handled once more.
    if matches!(
        handled,
        Err(RefusalCode::NotAllowed | RefusalCode::NotAdmitted | RefusalCode::UnknownPeer)
    ) && Box::pin(app.hub.restore_seat(seat.session, Utc::now())).await
    {
        handled = handle(app, seat, &text).await;
    }
    match handled {
        Ok(Some(reply)) => Some(frame(&reply)),
        Ok(None) => None,
        Err(code) => Some(error(code)),
    }
}

/// The first message must be `join`, within the join timeout; then the welcome and what
/// follows a join. None when the socket ends there (refused, gone, the node stopping).
async fn take_seat(
    app: &AppState,
    conn: &mut Conn,
    going_away: &mut tokio::sync::watch::Receiver<bool>,
    tx: queue::Sender,
) -> Option<Seated> {
    let first = tokio::select! {
        first = tokio::time::timeout(
            Duration::from_secs(app.cfg.join_timeout_seconds),
            conn.socket.recv(),
        ) => first,
        () = going(going_away) => {
            Box::pin(goodbye(conn)).await;
            return None;
        }
    };
    let text = match first {
        Ok(Some(Ok(Incoming::Text(t)))) => t,
        Ok(Some(Err(e))) => {
            let by = Some(conn.goodbye());
            conn.send(close_for(&e), by).await;
            return None;
        }
        Ok(Some(Ok(Incoming::Close(_))) | None) => return None,
        Ok(Some(Ok(_))) => {
            let by = Some(conn.goodbye());
            conn.text(&refused(RefusalCode::JoinFirst), by).await;
            conn.close(close::POLICY, "join first", by).await;
            return None;
        }
        Err(_) => {
            let by = Some(conn.goodbye());
            conn.text(&refused(RefusalCode::JoinFirst), by).await;
            conn.close(close::POLICY, "join timeout", by).await;
            return None;
        }
    };
    let started = std::time::Instant::now();
    let joined = match Box::pin(join(app, &text, tx)).await {
        Ok(j) => j,
        Err((code, details)) => {
            tracing::info!(code = code.code(), "join refused");
            let event = DomainEvent::JoinRefused { code: code.code() };
            Box::pin(app.hub.events().emit(Utc::now(), event)).await;
            let by = Some(conn.goodbye());
            conn.text(&refused_with(code, details), by).await;
            conn.close(close::REFUSED, "refused", by).await;
            return None;
        }
    };
    // What restores the seat if the shared state loses it (see `hub::restore`).
    app.hub.socket_seated(&joined);
    let joined_in = started.elapsed();
    if !conn.text(&frame(&joined.welcome), None).await {
        app.hub.socket_ended(joined.attachment);
        Box::pin(
            app.hub
                .socket_lost(joined.session, joined.attachment, Utc::now()),
        )
        .await;
        return None;
    }
    tracing::info!(session = %joined.session, role = joined.role.as_str(), resumed = joined.resumed, "participant joined");
    // A cluster whose shared state lost this room: the other seats this node holds come back
    // first, so that they hear of this one (one read of the room per join).
    Box::pin(app.hub.restore_for_join(&joined, Utc::now())).await;
    Box::pin(app.hub.after_join(&joined, Utc::now())).await;
    let t = joined.timings;
    // Durations only: nothing of the seat or its session.
    tracing::debug!(
        target: "telesoin_server::join_timing",
        verify_us = joined_in
            .saturating_sub(t.link + t.seat + t.write)
            .as_micros(),
        link_us = t.link.as_micros(),
        seat_us = t.seat.as_micros(),
        write_us = t.write.as_micros(),
        after_us = started.elapsed().saturating_sub(joined_in).as_micros(),
        total_us = started.elapsed().as_micros(),
        "join timings"
    );
    Some(Seated {
        session: joined.session,
        attachment: joined.attachment,
    })
}

/// After the loop: drains what the hub queued (an `ended` frame and its close) before the
/// socket goes, within the goodbye deadline in all, then gives the seat up or keeps it for
/// the grace period.
async fn leave(
    app: &AppState,
    conn: &mut Conn,
    rx: &mut queue::Receiver,
    attachment: Attachment,
    session: SessionId,
    exit: Exit,
) {
    let until = Some(conn.goodbye());
    while let Some(out) = rx.try_recv() {
        let sent = match out {
            Outbound::Text(t) => conn.text(&t, until).await,
            Outbound::Close { code, reason } => conn.close(code, reason, until).await,
        };
        if !sent {
            break;
        }
    }
    app.hub.socket_ended(attachment);
    match exit {
        Exit::Lost => Box::pin(app.hub.socket_lost(session, attachment, Utc::now())).await,
        Exit::Done => Box::pin(app.hub.bus().detach(attachment)).await,
    }
}

/// Returns once the node is going away (at once if it already is).
async fn going(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            // The hub is gone: nothing will ever say so.
            std::future::pending::<()>().await;
        }
    }
}

/// Tells the socket the node is stopping (`error{shutting_down}`, close 1001) and waits a moment
/// for the client's close, so that the goodbye is not lost in a reset when the process exits.
async fn goodbye(conn: &mut Conn) {
    let by = Some(conn.goodbye());
    if conn.text(&error(RefusalCode::ShuttingDown), by).await
        && conn.close(close::GOING_AWAY, "restarting", by).await
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(m)) = conn.socket.recv().await {
                if matches!(m, Incoming::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// The join, or its refusal with the refusal's `details` (`retry_after_seconds` for
/// `rejoin_too_frequent`, so that a client knows when to try again).
async fn join(
    app: &AppState,
    text: &str,
    tx: queue::Sender,
) -> Result<Joined, (RefusalCode, serde_json::Value)> {
    let bare = |code| (code, serde_json::Value::Null);
    let Ok(ClientMsg::Join {
        token,
        media_lost_ago_ms,
        ..
    }) = ClientMsg::parse(text)
    else {
        return Err(bare(RefusalCode::JoinFirst));
    };
    let now = Utc::now();
    // Ours or a platform's (registered key, its own sessions and roles only).
    let verified = crate::platform::tokens::verify_join(app, &token, now)
        .await
        .map_err(bare)?;
    match app.hub.join(&verified, tx, media_lost_ago_ms, now).await {
        Err(RefusalCode::RejoinTooFrequent) => {
            let details = match app.hub.rejoin_wait(&verified) {
                Some(wait) => serde_json::json!({ "retry_after_seconds": wait.as_secs() }),
                None => serde_json::Value::Null,
            };
            Err((RefusalCode::RejoinTooFrequent, details))
        }
        joined => joined.map_err(bare),
    }
}

/// Handles one message of a seated participant; `Ok(Some)` is a direct reply.
async fn handle(
    app: &AppState,
    seat: &Seated,
    text: &str,
) -> Result<Option<ServerMsg>, RefusalCode> {
    let msg = ClientMsg::parse(text).map_err(|_| RefusalCode::BadMessage)?;
    let (session, me) = (seat.session, seat.attachment.participant);
    let now = Utc::now();
    let hub = &app.hub;
    match msg {
        ClientMsg::Join { .. } => Err(RefusalCode::AlreadyJoined),
        ClientMsg::Ping => Ok(Some(ServerMsg::Pong)),
        ClientMsg::Attest {
            companion,
            name,
            relation,
        } => {
            let c = match companion {
                wire::Companion::Parent => Companion::Parent,
                wire::Companion::Aidant => Companion::Aidant,
            };
            hub.attest(session, me, c, name.as_deref(), relation.as_deref(), now)
                .await
                .map(|()| None)
        }
        ClientMsg::Consent {
            text_version,
            representative_name,
            representative_relation,
        } => {
            let representative = (
                representative_name.as_deref(),
                representative_relation.as_deref(),
            );
            hub.consent(session, me, &text_version, representative, now)
                .await
                .map(|()| None)
        }
        ClientMsg::Admit { participant } => hub
            .admit(session, me, participant.into(), now)
            .await
            .map(|()| None),
        ClientMsg::Offer { to, data } => hub
            .relay(session, me, "offer", to, &data)
            .await
            .map(|()| None),
        ClientMsg::Answer { to, data } => hub
            .relay(session, me, "answer", to, &data)
            .await
            .map(|()| None),
        ClientMsg::Candidate { to, data } => hub
            .relay(session, me, "candidate", to, &data)
            .await
            .map(|()| None),
        ClientMsg::Media {
            state,
            video_in,
            video_out,
            incident,
        } => {
            let report = MediaReport {
                connected: state == wire::MediaState::Connected,
                video_in,
                video_out,
            };
            hub.media_report(session, me, report, incident, now)
                .await
                .map(|()| None)
        }
        ClientMsg::Hangup { ago_ms } => {
            hub.hangup_at(session, me, ago_ms, now).await.map(|()| None)
        }
        ClientMsg::Leave { ago_ms } => hub.leave(session, me, ago_ms, now).await.map(|()| None),
    }
}

impl std::fmt::Debug for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Exit::Lost => "lost",
            Exit::Done => "done",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns, without calling it.
    fn future_size<A, B, F: FnOnce(A, B) -> Fut, Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn the_socket_task_keeps_little_while_idle() {
        // What every idle socket's task holds inline (BENCHMARKS.md, "Idle memory per socket"):
        // the join, a message's handling, the goodbye and the leave run boxed; a write's timer
        // only exists while a write waits. 1,088 bytes at opt-level 0 on 2026-12-03.
        let task = future_size(serve);
        eprintln!(
            "socket task future: {task} bytes (talk: {}, conn: {}, app: {})",
            future_size(talk),
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<AppState>()
        );
        assert!(task <= 1152, "{task} bytes");
    }
}
