//! One WebSocket = one task: the token comes in the first message, then the socket reads
//! client messages and writes the frames the hub sends it, until hangup, close or idle timeout.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
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

/// Frames queued for one socket before it counts as too slow.
const QUEUE: usize = 64;

/// The audience of join tokens.
pub const JOIN_AUDIENCE: &str = "telesoin-join";

pub async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
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
    let max = app.cfg.max_message_bytes;
    ws.protocols([telesoin_proto::SUBPROTOCOL])
        .max_message_size(max)
        .max_frame_size(max)
        // Small buffers: an idle socket should cost little (see BENCHMARKS.md). 2 KiB still
        // reads a relayed frame of the load generator's size (1.1 KB) in one call; a larger
        // frame (an SDP offer) grows the buffer of its own socket only.
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max * 2)
        .on_upgrade(move |socket| run(app, socket))
}

fn frame(msg: &ServerMsg) -> Message {
    Message::Text(Utf8Bytes::from(msg.to_text()))
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

fn refused(code: RefusalCode) -> Message {
    frame(&ServerMsg::Refused(refusal_body(
        code,
        serde_json::Value::Null,
    )))
}

fn error(code: RefusalCode) -> Message {
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

/// The close a read error calls for: 1009 too large, 1007 invalid UTF-8 in a text frame, 1002
/// for any other protocol violation (a compressed frame never negotiated, bad opcode or
/// masking...); None when the connection itself is gone.
fn close_for(e: axum::Error) -> Option<Message> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => Some(close_frame(close::TOO_BIG, "message too large")),
        Some(WsError::Utf8(_)) => Some(close_frame(INVALID_PAYLOAD, "invalid utf-8")),
        Some(WsError::Protocol(_)) => Some(close_frame(PROTOCOL_ERROR, "protocol error")),
        _ => None,
    }
}

/// The writing half: every write has a deadline, so that a client that stopped reading (its
/// TCP window shut, our buffers full) cannot hold the task, the seat or the idle timeout.
struct Writer {
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    limit: Duration,
}

impl Writer {
    /// The deadline of the last frames before a close (a refusal, the idle notice, the close
    /// frame itself): short, since the socket is going anyway.
    fn goodbye(&self) -> Option<Instant> {
        Some(Instant::now() + self.limit.min(Duration::from_secs(2)))
    }

    /// Sends within the send timeout and, when given, before `by` (the idle deadline); false
    /// when the socket is gone or the write could not progress in time.
    async fn send(&mut self, msg: Message, by: Option<Instant>) -> bool {
        let mut until = Instant::now() + self.limit;
        if let Some(by) = by {
            until = until.min(by);
        }
        match tokio::time::timeout_at(until, self.sink.send(msg)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!("socket write stuck past its deadline: closing");
                false
            }
        }
    }
}

/// What the idle loop keeps of a join: the seat, not the welcome nor the session row read by
/// the join (they would stay in every socket's task for its whole life).
struct Seated {
    session: SessionId,
    attachment: Attachment,
}

async fn run(app: AppState, socket: WebSocket) {
    let (sink, mut stream) = socket.split();
    let mut sink = Writer {
        sink,
        limit: Duration::from_secs(app.cfg.ws_send_timeout_seconds),
    };
    let (tx, mut rx) = queue::channel(QUEUE);
    // The shutdown waits for this socket's goodbye (see `server::serve`).
    let _open = app.hub.socket_opened();
    let mut going_away = app.hub.going_away();

    // 1. The join, boxed: what it holds is freed once the seat is taken.
    let Some(seat) = Box::pin(take_seat(&app, &mut sink, &mut stream, &mut going_away, tx)).await
    else {
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
                    if !sink.send(Message::Text(Utf8Bytes::from(&*t)), by).await {
                        break Exit::Lost;
                    }
                }
                Some(Outbound::Close { code, reason }) => {
                    let by = sink.goodbye().min(by);
                    sink.send(close_frame(code, reason), by).await;
                    break if code == close::GOING_AWAY { Exit::Lost } else { Exit::Done };
                }
                None => break Exit::Lost,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    deadline = Instant::now() + idle;
                    let by = Some(deadline);
                    if t.len() > app.cfg.max_message_bytes {
                        sink.send(close_frame(close::TOO_BIG, "message too large"), by).await;
                        break Exit::Lost;
                    }
                    if !rate.allow() {
                        if rate.strikes > 100 {
                            sink.send(close_frame(close::POLICY, "rate limited"), by).await;
                            break Exit::Lost;
                        }
                        if !sink.send(error(RefusalCode::RateLimited), by).await {
                            break Exit::Lost;
                        }
                        continue;
                    }
                    let mut handled = Box::pin(handle(&app, &seat, t.as_str())).await;
                    // No seat where one should be: the shared state may have lost the room.
                    // Restored from the record, the message is handled once more.
                    if matches!(
                        handled,
                        Err(RefusalCode::NotAllowed | RefusalCode::NotAdmitted | RefusalCode::UnknownPeer)
                    ) && Box::pin(app.hub.restore_seat(seat.session, Utc::now())).await
                    {
                        handled = Box::pin(handle(&app, &seat, t.as_str())).await;
                    }
                    let reply = match handled {
                        Ok(Some(reply)) => frame(&reply),
                        Ok(None) => continue,
                        Err(code) => error(code),
                    };
                    if !sink.send(reply, by).await {
                        break Exit::Lost;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    if !sink.send(error(RefusalCode::BadMessage), by).await {
                        break Exit::Lost;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => deadline = Instant::now() + idle,
                Some(Ok(Message::Close(_))) | None => break Exit::Lost,
                Some(Err(e)) => {
                    if let Some(close) = close_for(e) {
                        let by = sink.goodbye().min(by);
                        sink.send(close, by).await;
                    }
                    break Exit::Lost;
                }
            },
            () = going(&mut going_away) => {
                // The node is stopping: this socket hears it from its own task, whatever the
                // shared state knows of its seat.
                Box::pin(goodbye(&mut sink, &mut stream)).await;
                break Exit::Lost;
            }
            () = &mut timer => {
                if deadline > timer.deadline() {
                    // Activity since the timer was set: not idle yet.
                    timer.as_mut().reset(deadline);
                    continue;
                }
                // The socket is idle: the notice gets a short goodbye deadline, not more.
                let by = sink.goodbye();
                sink.send(error(RefusalCode::IdleTimeout), by).await;
                sink.send(close_frame(close::NORMAL, "idle"), by).await;
                break Exit::Lost;
            }
        }
    };
    Box::pin(leave(
        &app,
        &mut sink,
        &mut rx,
        seat.attachment,
        seat.session,
        exit,
    ))
    .await;
}

/// The first message must be `join`, within the join timeout; then the welcome and what
/// follows a join. None when the socket ends there (refused, gone, the node stopping).
async fn take_seat(
    app: &AppState,
    sink: &mut Writer,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    going_away: &mut tokio::sync::watch::Receiver<bool>,
    tx: queue::Sender,
) -> Option<Seated> {
    let first = tokio::select! {
        first = tokio::time::timeout(
            Duration::from_secs(app.cfg.join_timeout_seconds),
            stream.next(),
        ) => first,
        () = going(going_away) => {
            Box::pin(goodbye(sink, stream)).await;
            return None;
        }
    };
    let text = match first {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Err(e))) => {
            if let Some(close) = close_for(e) {
                let by = sink.goodbye();
                sink.send(close, by).await;
            }
            return None;
        }
        Ok(Some(Ok(_))) => {
            let by = sink.goodbye();
            sink.send(refused(RefusalCode::JoinFirst), by).await;
            sink.send(close_frame(close::POLICY, "join first"), by)
                .await;
            return None;
        }
        Ok(None) => return None,
        Err(_) => {
            let by = sink.goodbye();
            sink.send(refused(RefusalCode::JoinFirst), by).await;
            sink.send(close_frame(close::POLICY, "join timeout"), by)
                .await;
            return None;
        }
    };
    let joined = match Box::pin(join(app, text.as_str(), tx)).await {
        Ok(j) => j,
        Err(code) => {
            tracing::info!(code = code.code(), "join refused");
            let event = DomainEvent::JoinRefused { code: code.code() };
            Box::pin(app.hub.events().emit(Utc::now(), event)).await;
            let by = sink.goodbye();
            sink.send(refused(code), by).await;
            sink.send(close_frame(close::REFUSED, "refused"), by).await;
            return None;
        }
    };
    // What restores the seat if the shared state loses it (see `hub::restore`).
    app.hub.socket_seated(&joined);
    if !sink.send(frame(&joined.welcome), None).await {
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
    sink: &mut Writer,
    rx: &mut queue::Receiver,
    attachment: Attachment,
    session: SessionId,
    exit: Exit,
) {
    let until = sink.goodbye();
    while let Some(out) = rx.try_recv() {
        let msg = match out {
            Outbound::Text(t) => Message::Text(Utf8Bytes::from(&*t)),
            Outbound::Close { code, reason } => close_frame(code, reason),
        };
        if !sink.send(msg, until).await {
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
async fn goodbye(sink: &mut Writer, stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let by = sink.goodbye();
    if sink.send(error(RefusalCode::ShuttingDown), by).await
        && sink
            .send(close_frame(close::GOING_AWAY, "restarting"), by)
            .await
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

async fn join(app: &AppState, text: &str, tx: queue::Sender) -> Result<Joined, RefusalCode> {
    let ClientMsg::Join {
        token,
        media_lost_ago_ms,
        ..
    } = ClientMsg::parse(text).map_err(|_| RefusalCode::JoinFirst)?
    else {
        return Err(RefusalCode::JoinFirst);
    };
    let now = Utc::now();
    // Ours or a platform's (registered key, its own sessions and roles only).
    let verified = crate::platform::tokens::verify_join(app, &token, now).await?;
    app.hub.join(&verified, tx, media_lost_ago_ms, now).await
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
