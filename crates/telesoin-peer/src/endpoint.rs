//! One WebRTC endpoint: an RTCPeerConnection with the `telesoin` data channel, and nothing
//! about WebSockets.
//!
//! An [`Endpoint`] turns signaling payloads ([`SessionDescription`], [`CandidateInit`]) into
//! calls on a webrtc-rs `PeerConnection`, and reports what happens through an [`EventSink`]:
//! local candidates to relay, connection states, and data-channel traffic. Whoever owns the
//! endpoint carries the payloads to the other side (the signaling socket in [`crate::Peer`],
//! an in-memory pump in the tests).
//!
//! Ordering contract: a description returned by [`Endpoint::offer`] or
//! [`Endpoint::accept_offer`] must be sent before any candidate event the sink delivers after
//! that call returns; a single task that sends the description right away and then drains the
//! sink's queue keeps that order. Remote candidates that arrive before the remote description
//! are buffered here, so a reordering on the other side is tolerated too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use rtc::media::Sample;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use telesoin_proto::signal::IceServer;
use tokio::sync::Mutex;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSdpType, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::error::{PeerError, Result};
use crate::wire::{CandidateInit, SdpKind, SessionDescription};

/// Label of the one data channel the kiné opens before its first offer.
pub const DATA_CHANNEL_LABEL: &str = "telesoin";

/// What an endpoint needs to build its RTCPeerConnection.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// STUN/TURN servers, as given by `welcome.ice_servers`.
    pub ice_servers: Vec<IceServer>,
    /// Gather and use relayed candidates only (`iceTransportPolicy: "relay"`).
    pub relay_only: bool,
    /// Local UDP addresses to bind (see [`crate::PeerConfig::udp_bind`]).
    pub udp_bind: Vec<SocketAddr>,
    /// Send a synthetic VP8 video track (see [`crate::PeerConfig::video`]).
    pub video: bool,
}

/// RTCPeerConnection state, as browsers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl From<RTCPeerConnectionState> for ConnectionState {
    fn from(s: RTCPeerConnectionState) -> Self {
        match s {
            RTCPeerConnectionState::Connecting => ConnectionState::Connecting,
            RTCPeerConnectionState::Connected => ConnectionState::Connected,
            RTCPeerConnectionState::Disconnected => ConnectionState::Disconnected,
            RTCPeerConnectionState::Failed => ConnectionState::Failed,
            RTCPeerConnectionState::Closed => ConnectionState::Closed,
            _ => ConnectionState::New,
        }
    }
}

/// Something an endpoint reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A local ICE candidate to relay to the other side.
    Candidate(CandidateInit),
    /// The RTCPeerConnection changed state.
    State(ConnectionState),
    /// The data channel is open (both sides may send).
    DataOpen,
    /// A text message arrived on the data channel (binary messages are read as lossy UTF-8).
    Data(String),
    /// The data channel closed.
    DataClosed,
}

/// Where an endpoint delivers its events. It is called from webrtc-rs's driver task, so it
/// must not block: push into a channel and return.
pub type EventSink = Arc<dyn Fn(EndpointEvent) + Send + Sync>;

/// Which side of the negotiation this endpoint takes. The kiné always offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Opens the data channel and creates offers.
    Offerer,
    /// Answers offers and receives the data channel.
    Answerer,
}

/// State shared between the endpoint handle, the webrtc-rs event handler and the
/// data-channel reader task.
struct Shared {
    sink: EventSink,
    channel: StdMutex<Option<Arc<dyn DataChannel>>>,
    /// The `mid` candidates are tagged with: the first media section of the local description.
    mid: StdMutex<String>,
    state: StdMutex<ConnectionState>,
    data_open: AtomicBool,
    closed: AtomicBool,
    /// When a video RTP packet last arrived from the remote, and when we last sent a frame.
    video_in_at: StdMutex<Option<Instant>>,
    video_out_at: StdMutex<Option<Instant>>,
}

/// Video "advancing": a packet (in) or a frame (out) within this window, as the web client
/// counts decoded and encoded frames over 2 s.
const VIDEO_WINDOW: Duration = Duration::from_secs(2);
/// Synthetic video: 10 frames per second.
const FRAME_EVERY: Duration = Duration::from_millis(100);

/// Whether video flows each way on one connection, from the RTP actually received on a remote
/// video track and the frames actually written to our own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoFlow {
    pub received: bool,
    pub sent: bool,
}

fn recent(at: &StdMutex<Option<Instant>>) -> bool {
    at.lock()
        .ok()
        .and_then(|t| *t)
        .is_some_and(|t| t.elapsed() <= VIDEO_WINDOW)
}

fn touch(at: &StdMutex<Option<Instant>>) {
    if let Ok(mut t) = at.lock() {
        *t = Some(Instant::now());
    }
}

/// A VP8 key frame header (frame tag, start code, 16x16) and a constant body: a synthetic
/// picture. A webrtc-rs peer counts its packets; a browser will not decode it.
const SYNTHETIC_FRAME: [u8; 26] = [
    0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x10, 0x00, 0x00, 0x47, 0x08, 0x85, 0x85, 0x88,
    0x85, 0x84, 0x88, 0x02, 0x02, 0x00, 0x0c, 0x0d, 0x60, 0x00,
];

/// Adds a VP8 track and writes a synthetic frame every 100 ms while connected; each frame
/// written is the evidence that video flows out.
async fn send_synthetic_video(pc: &Arc<dyn PeerConnection>, shared: &Arc<Shared>) -> Result<()> {
    let ssrc = rand_ssrc();
    let codec = RTCRtpCodec {
        mime_type: "video/VP8".to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    };
    let track = Arc::new(TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            "telesoin-peer".to_owned(),
            format!("video-{ssrc}"),
            "synthetic".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        ),
    )?);
    let sender: Arc<dyn RtpSender> = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FRAME_EVERY);
        while !shared.closed.load(Ordering::Acquire) {
            tick.tick().await;
            let connected = shared
                .state
                .lock()
                .is_ok_and(|s| *s == ConnectionState::Connected);
            if !connected {
                continue;
            }
            // The payload type the negotiation gave the sender's codec.
            let Some(pt) = sender
                .get_parameters()
                .await
                .ok()
                .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type))
            else {
                continue;
            };
            let sample = Sample {
                data: SYNTHETIC_FRAME.to_vec().into(),
                duration: FRAME_EVERY,
                ..Sample::new(Instant::now())
            };
            if track
                .sample_writer(ssrc, pt)
                .write_sample(&sample)
                .await
                .is_ok()
            {
                touch(&shared.video_out_at);
            }
        }
    });
    Ok(())
}

/// A random SSRC.
fn rand_ssrc() -> u32 {
    (uuid::Uuid::new_v4().as_u128() as u32) | 1
}

impl Shared {
    fn emit(&self, event: EndpointEvent) {
        (self.sink)(event)
    }

    /// Starts reading a data channel's events; the single place that reports open, message and
    /// close, so each is reported once.
    fn watch_channel(self: &Arc<Self>, dc: Arc<dyn DataChannel>) {
        if let Ok(mut slot) = self.channel.lock() {
            *slot = Some(dc.clone());
        }
        let shared = self.clone();
        tokio::spawn(async move {
            // A channel announced by on_data_channel may already be open, and its OnOpen may
            // have been delivered before anyone polled: look once, then follow the events.
            if matches!(
                dc.ready_state().await,
                Ok(webrtc::data_channel::RTCDataChannelState::Open)
            ) {
                shared.mark_open();
            }
            while let Some(event) = dc.poll().await {
                match event {
                    DataChannelEvent::OnOpen => shared.mark_open(),
                    DataChannelEvent::OnMessage(msg) => shared.emit(EndpointEvent::Data(
                        String::from_utf8_lossy(&msg.data).into_owned(),
                    )),
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
            if shared.data_open.swap(false, Ordering::AcqRel) {
                shared.emit(EndpointEvent::DataClosed);
            }
        });
    }

    fn mark_open(&self) {
        if !self.data_open.swap(true, Ordering::AcqRel) {
            self.emit(EndpointEvent::DataOpen);
        }
    }
}

/// The webrtc-rs event handler: translates callbacks into [`EndpointEvent`]s.
struct Handler {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        // `to_json` tags every candidate with sdpMid "" and index 0; browsers look candidates
        // up by mid, so tag them with the real (bundled) one.
        let Ok(init) = event.candidate.to_json() else {
            tracing::debug!("skipping a local candidate that cannot be serialized");
            return;
        };
        let mid = self
            .shared
            .mid
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|_| "0".to_owned());
        self.shared.emit(EndpointEvent::Candidate(CandidateInit {
            candidate: init.candidate,
            sdp_mid: Some(mid),
            sdp_mline_index: Some(0),
            username_fragment: None,
        }));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = ConnectionState::from(state);
        if let Ok(mut current) = self.shared.state.lock() {
            *current = state;
        }
        self.shared.emit(EndpointEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Media is received and dropped (reading keeps webrtc-rs from logging every packet it
        // could not queue); a video packet is the evidence that video flows in.
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let video = track.kind().await == RtpCodecKind::Video;
            while let Some(event) = track.poll().await {
                if video && matches!(event, TrackRemoteEvent::OnRtpPacket(_)) {
                    touch(&shared.video_in_at);
                }
            }
        });
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        match dc.label().await {
            Ok(label) if label == DATA_CHANNEL_LABEL => self.shared.watch_channel(dc),
            _ => tracing::debug!("ignoring a data channel with an unexpected label"),
        }
    }
}

/// An RTCPeerConnection speaking the telesoin offer/answer/candidate shapes.
pub struct Endpoint {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    side: Side,
    /// Remote candidates received before the remote description.
    early_candidates: Mutex<Vec<CandidateInit>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("side", &self.side)
            .field("state", &self.state())
            .finish()
    }
}

impl Endpoint {
    /// Builds the RTCPeerConnection. An offerer also creates the `telesoin` data channel now,
    /// so that its first offer carries it.
    pub async fn new(config: &EndpointConfig, side: Side, sink: EventSink) -> Result<Endpoint> {
        let mut rtc_config =
            RTCConfigurationBuilder::new().with_ice_servers(rtc_ice_servers(&config.ice_servers));
        if config.relay_only {
            rtc_config = rtc_config.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
        }
        let shared = Arc::new(Shared {
            sink,
            channel: StdMutex::new(None),
            mid: StdMutex::new("0".to_owned()),
            state: StdMutex::new(ConnectionState::New),
            data_open: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            video_in_at: StdMutex::new(None),
            video_out_at: StdMutex::new(None),
        });
        // Codecs are registered so that a browser's audio/video offer is accepted (we receive
        // and discard) rather than rejected: with every section rejected there would be no
        // transport at all, hence no connection to measure.
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        let pc = PeerConnectionBuilder::new()
            .with_configuration(rtc_config.build())
            .with_media_engine(media)
            .with_handler(Arc::new(Handler {
                shared: shared.clone(),
            }))
            .with_udp_addrs(config.udp_bind.clone())
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        if side == Side::Offerer {
            let dc = pc.create_data_channel(DATA_CHANNEL_LABEL, None).await?;
            shared.watch_channel(dc);
        }
        if config.video {
            send_synthetic_video(&pc, &shared).await?;
        }
        Ok(Endpoint {
            pc,
            shared,
            side,
            early_candidates: Mutex::new(Vec::new()),
        })
    }

    /// Replaces the STUN/TURN servers (a new `welcome` brings fresh TURN credentials). They
    /// are used from the next ICE gathering, i.e. the next ICE restart.
    pub async fn set_ice_servers(&self, servers: &[IceServer]) -> Result<()> {
        let current = self.pc.get_configuration().await;
        // Everything else must stay as it is (W3C setConfiguration); leaving the certificates
        // out keeps the current ones, and with them the DTLS fingerprint.
        let updated = RTCConfigurationBuilder::new()
            .with_ice_servers(rtc_ice_servers(servers))
            .with_ice_transport_policy(current.ice_transport_policy())
            .with_bundle_policy(current.bundle_policy())
            .with_rtcp_mux_policy(current.rtcp_mux_policy())
            .build();
        Ok(self.pc.set_configuration(updated).await?)
    }

    /// Which side this endpoint negotiates as.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The last RTCPeerConnection state reported.
    pub fn state(&self) -> ConnectionState {
        self.shared
            .state
            .lock()
            .map(|s| *s)
            .unwrap_or(ConnectionState::Closed)
    }

    /// True while the data channel is open.
    pub fn data_open(&self) -> bool {
        self.shared.data_open.load(Ordering::Acquire)
    }

    /// Offerer: creates and applies an offer. With `ice_restart`, the offer carries fresh ICE
    /// credentials (use it when the connection was negotiated before, e.g. after either side's
    /// signaling socket was replaced). An offer still waiting for its answer is rolled back
    /// first: the other side may never have received it.
    pub async fn offer(&self, ice_restart: bool) -> Result<SessionDescription> {
        if self.side != Side::Offerer {
            return Err(PeerError::Protocol(
                "only the kiné's endpoint offers".into(),
            ));
        }
        if let Some(pending) = self.pc.pending_local_description().await
            && pending.sdp_type == RTCSdpType::Offer
        {
            self.pc
                .set_local_description(RTCSessionDescription::rollback(None)?)
                .await?;
        }
        if ice_restart {
            self.pc.restart_ice().await?;
        }
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer.clone()).await?;
        Ok(self.local(SdpKind::Offer, offer))
    }

    /// Answerer: applies a remote offer (a first one or an ICE restart) and returns the answer
    /// to send back.
    pub async fn accept_offer(&self, offer: &SessionDescription) -> Result<SessionDescription> {
        if offer.kind != SdpKind::Offer {
            return Err(PeerError::Protocol("expected an offer".into()));
        }
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.sdp.clone())?)
            .await?;
        self.flush_early_candidates().await;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer.clone()).await?;
        Ok(self.local(SdpKind::Answer, answer))
    }

    /// Offerer: applies the answer to the offer in flight.
    pub async fn accept_answer(&self, answer: &SessionDescription) -> Result<()> {
        if answer.kind != SdpKind::Answer {
            return Err(PeerError::Protocol("expected an answer".into()));
        }
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer.sdp.clone())?)
            .await?;
        self.flush_early_candidates().await;
        Ok(())
    }

    /// True while an offer of ours waits for its answer.
    pub async fn awaiting_answer(&self) -> bool {
        self.pc
            .pending_local_description()
            .await
            .is_some_and(|d| d.sdp_type == RTCSdpType::Offer)
    }

    /// The DTLS fingerprint of the remote description in effect, if any. When a new remote
    /// description announces another one, the other side is a new RTCPeerConnection and this
    /// endpoint must be replaced rather than renegotiated.
    pub async fn remote_fingerprint(&self) -> Option<String> {
        let sdp = self.pc.remote_description().await?.sdp;
        SessionDescription {
            kind: SdpKind::Offer,
            sdp,
        }
        .fingerprint()
        .map(str::to_owned)
    }

    /// Adds a remote candidate, or keeps it until the remote description is applied. The
    /// end-of-candidates marker is accepted and ignored.
    pub async fn add_remote_candidate(&self, candidate: CandidateInit) -> Result<()> {
        if candidate.is_end_of_candidates() {
            return Ok(());
        }
        if self.pc.remote_description().await.is_none() {
            self.early_candidates.lock().await.push(candidate);
            return Ok(());
        }
        self.pc.add_ice_candidate(to_rtc(candidate)).await?;
        Ok(())
    }

    /// Sends a text message on the data channel.
    pub async fn send_text(&self, text: &str) -> Result<()> {
        let channel = self.shared.channel.lock().ok().and_then(|c| c.clone());
        match channel {
            Some(dc) if self.data_open() => Ok(dc.send_text(text).await?),
            _ => Err(PeerError::NoDataChannel),
        }
    }

    /// Whether video RTP was received and frames were sent in the last 2 s.
    pub fn video(&self) -> VideoFlow {
        let connected = self.state() == ConnectionState::Connected;
        VideoFlow {
            received: connected && recent(&self.shared.video_in_at),
            sent: connected && recent(&self.shared.video_out_at),
        }
    }

    /// Closes the data channel and the RTCPeerConnection. Idempotent.
    pub async fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let channel = self.shared.channel.lock().ok().and_then(|mut c| c.take());
        if let Some(dc) = channel {
            let _ = dc.close().await;
        }
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing the peer connection: {e}");
        }
    }

    /// Records the local description's bundled `mid` (for candidates) and converts it.
    fn local(&self, kind: SdpKind, desc: RTCSessionDescription) -> SessionDescription {
        let desc = SessionDescription {
            kind,
            sdp: desc.sdp,
        };
        if let (Some(mid), Ok(mut slot)) = (desc.first_mid(), self.shared.mid.lock()) {
            *slot = mid.to_owned();
        }
        desc
    }

    async fn flush_early_candidates(&self) {
        let early = std::mem::take(&mut *self.early_candidates.lock().await);
        for candidate in early {
            if let Err(e) = self.pc.add_ice_candidate(to_rtc(candidate)).await {
                tracing::debug!("dropping an early remote candidate: {e}");
            }
        }
    }
}

fn rtc_ice_servers(servers: &[IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect()
}

fn to_rtc(c: CandidateInit) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
        url: None,
    }
}
