//! A browser kiné offers audio and video and no data channel (the web client's shape); the
//! Rust patient must answer it.

use std::sync::Arc;

use telesoin_peer::endpoint::{Endpoint, EndpointConfig, EventSink, Side};
use telesoin_peer::wire::{SdpKind, SessionDescription};

/// Shaped like Chromium's offer from `web-client/lib/call.js` (audio + video, BUNDLE).
const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09:DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=msid:- 3b8c5e2f-audio\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ssrc:1001 cname:abc\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09:DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_answers_a_browser_offer_with_media_and_no_data_channel() {
    let config = EndpointConfig {
        ice_servers: Vec::new(),
        relay_only: false,
        udp_bind: vec![([127, 0, 0, 1], 0).into()],
        video: false,
    };
    let sink: EventSink = Arc::new(|_| {});
    let patient = Endpoint::new(&config, Side::Answerer, sink)
        .await
        .expect("endpoint");
    let offer = SessionDescription {
        kind: SdpKind::Offer,
        sdp: CHROME_OFFER.to_owned(),
    };
    let answer = patient.accept_offer(&offer).await.expect("answered");
    assert_eq!(answer.kind, SdpKind::Answer);
    assert_eq!(
        answer.sdp.matches("m=").count(),
        2,
        "one answer section per offered one:\n{}",
        answer.sdp
    );
    assert!(answer.sdp.contains("a=mid:0") && answer.sdp.contains("a=mid:1"));
    // Accepted, not rejected (port 0): otherwise no transport would exist at all.
    assert!(
        !answer.sdp.contains("m=audio 0 ") && !answer.sdp.contains("m=video 0 "),
        "{}",
        answer.sdp
    );
    assert!(
        answer.sdp.contains("a=group:BUNDLE 0 1") && answer.sdp.contains("a=ice-ufrag:"),
        "{}",
        answer.sdp
    );
    patient.close().await;
}
