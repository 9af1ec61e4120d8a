//! One WebSocket connection over any byte stream (hyper's upgraded connection, plain or TLS; a
//! test's in-memory pipe): the upgrade's checks and accept key, then reading and writing frames
//! with `frame`.
//!
//! What it must never do: keep a buffer while the socket is idle. Reads go through a buffer on
//! the stack; only the bytes of a frame not yet whole (or the frames after the one returned) are
//! kept, and given back once consumed. A frame written is kept until the stream took it, then
//! given back. Pongs and the reply to a client's close are written by the reading side itself.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{Decoded, Decoder, FrameError, Incoming, Outgoing, code_allowed, encode};

/// Bytes read from the stream at once, on the stack: a relayed SDP offer of a few KB is read in
/// one call.
const READ: usize = 8 * 1024;

/// The GUID of RFC 6455 §1.3, appended to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade request is not one (RFC 6455 §4.2.1): the header at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("not a WebSocket upgrade (header {0})")]
    Header(&'static str),
    /// A version other than 13: answered 426 with the version we speak.
    #[error("unsupported WebSocket version")]
    Version,
}

/// A checked upgrade request: the `Sec-WebSocket-Accept` of the answer, and whether the client
/// offered our subprotocol (then selected).
#[derive(Debug)]
pub struct Handshake {
    pub accept: HeaderValue,
    pub protocol: bool,
}

/// Whether the comma-separated header `name` has `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The checks of a GET that asks for an upgrade to WebSocket, and the answer's accept key.
/// `protocol` is the one subprotocol the server speaks.
pub fn handshake(headers: &HeaderMap, protocol: &str) -> Result<Handshake, HandshakeError> {
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::Header("connection"));
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(HandshakeError::Header("upgrade"));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(HandshakeError::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        // A base64 nonce of 16 bytes (RFC 6455 §4.1).
        .filter(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|n| n.len() == 16)
        })
        .ok_or(HandshakeError::Header("sec-websocket-key"))?;
    Ok(Handshake {
        accept: accept_key(key),
        protocol: has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, protocol),
    })
}

/// `Sec-WebSocket-Accept`: base64 of the SHA-1 of the key and the GUID.
fn accept_key(key: &[u8]) -> HeaderValue {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let encoded = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One WebSocket connection, server side, after the upgrade.
pub struct Socket<S> {
    io: S,
    decoder: Decoder,
    /// Read but not consumed: the start of a frame not yet whole, or frames after the one just
    /// returned. Unallocated between messages.
    rbuf: Vec<u8>,
    /// Encoded but not yet taken by the stream, from `written` on. Unallocated once taken.
    wbuf: Vec<u8>,
    written: usize,
    /// The stream took bytes that a flush has not yet pushed on (TLS).
    unflushed: bool,
    close_sent: bool,
    close_received: bool,
    /// The stream failed, ended, or a write missed its deadline: nothing more goes through.
    broken: bool,
}

impl<S> std::fmt::Debug for Socket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("close_sent", &self.close_sent)
            .field("close_received", &self.close_received)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    /// A socket refusing frames and messages over `max` payload bytes.
    pub fn new(io: S, max: usize) -> Self {
        Socket {
            io,
            decoder: Decoder::new(max),
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            written: 0,
            unflushed: false,
            close_sent: false,
            close_received: false,
            broken: false,
        }
    }

    /// The next message or control frame; `None` once the stream is gone or the client's close
    /// was returned. An error is a frame to refuse with its close code. Cancel-safe: what was
    /// read stays in the socket.
    pub async fn recv(&mut self) -> Option<Result<Incoming, FrameError>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queues `frame` (nothing once a close was sent or the stream is broken: false). The bytes
    /// go out with [`Socket::flush`].
    pub fn queue(&mut self, frame: Outgoing<'_>) -> bool {
        if self.broken || self.close_sent {
            return false;
        }
        if matches!(frame, Outgoing::Close(..)) {
            self.close_sent = true;
        }
        encode(frame, &mut self.wbuf);
        true
    }

    /// Writes out what is queued. Cancel-safe: what the stream has not taken stays queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_pending(cx)).await
    }

    /// Queues `frame` and writes it out; false if it could not be. (The server's writes go through
    /// `queue` and `flush`, each with its deadline.)
    #[cfg(test)]
    pub async fn send(&mut self, frame: Outgoing<'_>) -> bool {
        self.queue(frame) && self.flush().await.is_ok()
    }

    /// After a write that missed its deadline: the stream's bytes are no longer in step with
    /// what we meant to send, so nothing more goes through.
    pub fn mark_broken(&mut self) {
        self.broken = true;
        self.wbuf = Vec::new();
        self.written = 0;
    }

    /// Whether a frame may still be sent.
    #[cfg(test)]
    pub fn can_send(&self) -> bool {
        !self.broken && !self.close_sent
    }

    /// Writes what is pending (a close, its reply) and shuts the stream down (TLS close_notify,
    /// then FIN). The caller bounds it in time.
    pub async fn finish(&mut self) {
        if self.broken {
            return;
        }
        if self.flush().await.is_ok() {
            let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
        }
    }

    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        while self.written < self.wbuf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.written..]) {
                Poll::Ready(Ok(0)) => {
                    self.broken = true;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => {
                    self.broken = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if !self.wbuf.is_empty() {
            // All taken: give the room back.
            self.wbuf = Vec::new();
            self.written = 0;
        }
        if self.unflushed {
            if let Err(e) = ready!(Pin::new(&mut self.io).poll_flush(cx)) {
                self.broken = true;
                return Poll::Ready(Err(e));
            }
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, FrameError>>> {
        loop {
            if self.broken || self.close_received {
                return Poll::Ready(None);
            }
            if (self.unflushed || !self.wbuf.is_empty())
                && let Poll::Ready(Err(_)) = self.poll_write_pending(cx)
            {
                return Poll::Ready(None);
            }
            if !self.rbuf.is_empty() {
                match self.decoder.decode(&self.rbuf) {
                    Err(e) => return Poll::Ready(Some(Err(e))),
                    Ok(Decoded::Frame { incoming, used }) => {
                        self.rbuf.drain(..used);
                        if self.rbuf.is_empty() {
                            self.rbuf = Vec::new();
                        }
                        if let Some(incoming) = incoming {
                            return Poll::Ready(Some(Ok(self.answer(incoming, cx))));
                        }
                        continue;
                    }
                    // The room grows with the bytes that arrive, never ahead of them: a header
                    // announcing 64 KiB must not cost 64 KiB before its bytes are sent.
                    Ok(Decoded::Incomplete) => {}
                }
            }
            let mut stack = [MaybeUninit::<u8>::uninit(); READ];
            let mut buf = ReadBuf::uninit(&mut stack);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    self.broken = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(())) => {}
            }
            let got = buf.filled();
            if got.is_empty() {
                // The client is gone without a close frame.
                self.broken = true;
                return Poll::Ready(None);
            }
            if !self.rbuf.is_empty() {
                self.rbuf.extend_from_slice(got);
                continue;
            }
            // Nothing kept: decode straight from the stack, keep only what is left over.
            match self.decoder.decode(got) {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Decoded::Frame { incoming, used }) => {
                    self.rbuf.extend_from_slice(&got[used..]);
                    if let Some(incoming) = incoming {
                        return Poll::Ready(Some(Ok(self.answer(incoming, cx))));
                    }
                }
                Ok(Decoded::Incomplete) => self.rbuf.extend_from_slice(got),
            }
        }
    }

    /// Answers a ping with its pong and a close with ours, written at once if the stream takes
    /// them (else on the next read or send).
    fn answer(&mut self, incoming: Incoming, cx: &mut Context<'_>) -> Incoming {
        let queued = match &incoming {
            // One pong at a time: a client that pings without reading does not grow the
            // buffer (RFC 6455 §5.5.3 allows answering only the latest ping).
            Incoming::Ping(payload) if self.wbuf.is_empty() => self.queue(Outgoing::Pong(payload)),
            Incoming::Close(code) => {
                self.close_received = true;
                let code = match code {
                    None => 1000,
                    Some(c) if code_allowed(*c) => *c,
                    Some(_) => 1002,
                };
                self.queue(Outgoing::Close(code, ""))
            }
            _ => false,
        };
        if queued {
            let _ = self.poll_write_pending(cx);
        }
        incoming
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const MASK: [u8; 4] = [1, 2, 3, 4];

    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, k)| b ^ k));
        f
    }

    fn pair() -> (Socket<DuplexStream>, DuplexStream) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (Socket::new(a, 1024), b)
    }

    /// Reads one server frame from the client's end: (first byte, payload).
    async fn server_frame(peer: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        peer.read_exact(&mut h).await.expect("header");
        assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
        let len = match h[1] & 0x7F {
            126 => {
                let mut l = [0u8; 2];
                peer.read_exact(&mut l).await.expect("len");
                usize::from(u16::from_be_bytes(l))
            }
            n => usize::from(n),
        };
        let mut p = vec![0; len];
        peer.read_exact(&mut p).await.expect("payload");
        (h[0], p)
    }

    #[test]
    fn the_accept_key_is_rfc_6455_s_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_handshake_checks_the_upgrade_headers() {
        let good = || {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONNECTION,
                "keep-alive, Upgrade".parse().expect("v"),
            );
            h.insert(header::UPGRADE, "WebSocket".parse().expect("v"));
            h.insert(header::SEC_WEBSOCKET_VERSION, "13".parse().expect("v"));
            h.insert(
                header::SEC_WEBSOCKET_KEY,
                "dGhlIHNhbXBsZSBub25jZQ==".parse().expect("v"),
            );
            h
        };
        let ok = handshake(&good(), "telesoin.v1").expect("an upgrade");
        assert!(!ok.protocol, "none offered");
        let mut h = good();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "other, telesoin.v1".parse().expect("v"),
        );
        assert!(handshake(&h, "telesoin.v1").expect("ok").protocol);
        for (name, value, err) in [
            (
                header::CONNECTION,
                "keep-alive",
                HandshakeError::Header("connection"),
            ),
            (header::UPGRADE, "h2c", HandshakeError::Header("upgrade")),
            (header::SEC_WEBSOCKET_VERSION, "8", HandshakeError::Version),
            (
                header::SEC_WEBSOCKET_KEY,
                "c2hvcnQ=",
                HandshakeError::Header("sec-websocket-key"),
            ),
        ] {
            let mut h = good();
            h.insert(name.clone(), value.parse().expect("v"));
            assert_eq!(handshake(&h, "telesoin.v1").err(), Some(err), "{name}");
            let mut h = good();
            h.remove(name.clone());
            assert!(handshake(&h, "telesoin.v1").is_err(), "{name} missing");
        }
    }

    #[tokio::test]
    async fn frames_arriving_one_byte_at_a_time_are_read_whole() {
        let (mut s, mut peer) = pair();
        let mut bytes = client(0x01, b"{\"type\":");
        bytes.extend(client(0x89, b"p"));
        bytes.extend(client(0x80, b"\"ping\"}"));
        bytes.extend(client(0x81, &[b'a'; 300]));
        let writer = tokio::spawn(async move {
            for b in bytes {
                peer.write_all(&[b]).await.expect("write");
                tokio::task::yield_now().await;
            }
            peer
        });
        assert_eq!(s.recv().await, Some(Ok(Incoming::Ping(b"p".to_vec()))));
        assert_eq!(
            s.recv().await,
            Some(Ok(Incoming::Text(r#"{"type":"ping"}"#.into())))
        );
        assert_eq!(s.recv().await, Some(Ok(Incoming::Text("a".repeat(300)))));
        assert!(s.rbuf.capacity() == 0, "nothing kept between messages");
        let mut peer = writer.await.expect("writer");
        // The ping was answered on the way.
        assert_eq!(server_frame(&mut peer).await, (0x8A, b"p".to_vec()));
    }

    #[tokio::test]
    async fn several_frames_in_one_read_come_one_at_a_time_then_nothing_is_kept() {
        let (mut s, mut peer) = pair();
        let mut bytes = client(0x81, b"one");
        bytes.extend(client(0x81, b"two"));
        bytes.extend(client(0x82, b"bin"));
        bytes.extend(&client(0x81, b"three")[..4]);
        peer.write_all(&bytes).await.expect("write");
        assert_eq!(s.recv().await, Some(Ok(Incoming::Text("one".into()))));
        assert_eq!(s.recv().await, Some(Ok(Incoming::Text("two".into()))));
        assert_eq!(s.recv().await, Some(Ok(Incoming::Binary)));
        // "three" is incomplete: the socket waits, keeping its first bytes.
        let pending = tokio::time::timeout(Duration::from_millis(50), s.recv()).await;
        assert!(pending.is_err(), "waits for the rest");
        assert!(!s.rbuf.is_empty());
        peer.write_all(&client(0x81, b"three")[4..])
            .await
            .expect("write");
        assert_eq!(s.recv().await, Some(Ok(Incoming::Text("three".into()))));
        assert_eq!(s.rbuf.capacity(), 0, "nothing kept once consumed");
    }

    #[tokio::test]
    async fn a_header_announcing_a_long_frame_costs_only_the_bytes_sent() {
        let (mut s, mut peer) = pair();
        let f = client(0x81, &[b'a'; 1000]);
        peer.write_all(&f[..8]).await.expect("header");
        let pending = tokio::time::timeout(Duration::from_millis(50), s.recv()).await;
        assert!(pending.is_err(), "waits for the payload");
        assert!(s.rbuf.capacity() < 100, "{} bytes kept", s.rbuf.capacity());
        peer.write_all(&f[8..]).await.expect("payload");
        assert_eq!(s.recv().await, Some(Ok(Incoming::Text("a".repeat(1000)))));
    }

    #[tokio::test]
    async fn refusals_surface_as_errors() {
        let (mut s, mut peer) = pair();
        let mut unmasked = vec![0x81, 2];
        unmasked.extend_from_slice(b"{}");
        peer.write_all(&unmasked).await.expect("write");
        assert!(matches!(s.recv().await, Some(Err(FrameError::Protocol(_)))));
        let (mut s, mut peer) = pair();
        peer.write_all(&client(0x81, &[b'a'; 1025]))
            .await
            .expect("write");
        assert_eq!(s.recv().await, Some(Err(FrameError::TooBig)));
        let (mut s, mut peer) = pair();
        peer.write_all(&client(0x81, &[0xC3, 0x28]))
            .await
            .expect("write");
        assert_eq!(s.recv().await, Some(Err(FrameError::Utf8)));
    }

    #[tokio::test]
    async fn a_client_close_is_echoed_and_ends_the_socket() {
        let (mut s, mut peer) = pair();
        peer.write_all(&client(0x88, &4000u16.to_be_bytes()))
            .await
            .expect("write");
        assert_eq!(s.recv().await, Some(Ok(Incoming::Close(Some(4000)))));
        assert_eq!(
            server_frame(&mut peer).await,
            (0x88, 4000u16.to_be_bytes().to_vec())
        );
        assert!(s.recv().await.is_none(), "nothing after the close");
        assert!(
            !s.send(Outgoing::Text("late")).await,
            "no data after a close"
        );
        // A close code no peer may send is answered 1002.
        let (mut s, mut peer) = pair();
        peer.write_all(&client(0x88, &1005u16.to_be_bytes()))
            .await
            .expect("write");
        assert_eq!(s.recv().await, Some(Ok(Incoming::Close(Some(1005)))));
        assert_eq!(
            server_frame(&mut peer).await,
            (0x88, 1002u16.to_be_bytes().to_vec())
        );
    }

    #[tokio::test]
    async fn sends_go_out_whole_and_keep_nothing() {
        let (mut s, mut peer) = pair();
        let long = "x".repeat(5000);
        assert!(s.send(Outgoing::Text("hello")).await);
        assert!(s.send(Outgoing::Text(&long)).await);
        assert_eq!(s.wbuf.capacity(), 0, "nothing kept once written");
        assert_eq!(server_frame(&mut peer).await, (0x81, b"hello".to_vec()));
        assert_eq!(
            server_frame(&mut peer).await,
            (0x81, long.clone().into_bytes())
        );
        assert!(s.send(Outgoing::Close(1001, "restarting")).await);
        let (op, p) = server_frame(&mut peer).await;
        assert_eq!(
            (op, &p[..2], &p[2..]),
            (0x88, &[3, 233][..], &b"restarting"[..])
        );
        assert!(
            !s.send(Outgoing::Text("after")).await,
            "nothing after our close"
        );
        // The client's close still reads after ours.
        peer.write_all(&client(0x88, &1001u16.to_be_bytes()))
            .await
            .expect("write");
        assert_eq!(s.recv().await, Some(Ok(Incoming::Close(Some(1001)))));
    }

    #[tokio::test]
    async fn a_write_the_client_does_not_read_waits_and_a_gone_client_ends_reads() {
        let (a, mut peer) = tokio::io::duplex(16);
        let mut s = Socket::new(a, 1024);
        let send = tokio::time::timeout(
            Duration::from_millis(50),
            s.send(Outgoing::Text("a frame longer than the pipe holds")),
        )
        .await;
        assert!(send.is_err(), "the pipe is full: the write waits");
        s.mark_broken();
        assert!(!s.can_send());
        assert!(s.recv().await.is_none());
        let mut got = [0u8; 16];
        peer.read_exact(&mut got).await.expect("what fitted");
        drop(peer);
        let (mut s, peer) = pair();
        drop(peer);
        assert!(s.recv().await.is_none(), "end of stream");
    }
}
