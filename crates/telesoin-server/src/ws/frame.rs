//! The RFC 6455 frame codec, server side and sans IO: [`Decoder::decode`] takes the bytes read
//! so far and gives back at most one frame's worth of meaning and how many bytes it used;
//! [`encode`] appends one unmasked frame to a buffer. No extension is ever negotiated, so a
//! reserved bit is a protocol error, and every client frame must be masked.
//!
//! The decoder keeps nothing between frames but a fragmented message being assembled: the bytes
//! of an incomplete frame stay with the caller (see `socket`), so that an idle socket holds no
//! buffer at all.

/// Opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The longest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL: usize = 125;

/// What a client sent, one message or control frame at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole text message (every fragment), valid UTF-8.
    Text(String),
    /// A whole binary message: not part of the protocol, so its bytes are not kept.
    Binary,
    /// A ping and its payload (at most 125 bytes), to be echoed in the pong.
    Ping(Vec<u8>),
    Pong,
    /// The client's close and its code, if it gave one.
    Close(Option<u16>),
}

/// Why a frame is refused; each has its close code (RFC 6455 §7.4.1).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame or message over the size limit: 1009.
    #[error("message too large")]
    TooBig,
    /// A text message (or a close reason) that is not UTF-8: 1007.
    #[error("invalid utf-8")]
    Utf8,
    /// Any other violation of the framing: 1002.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
}

/// The outcome of [`Decoder::decode`] over the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole frame yet: more bytes are needed.
    Incomplete,
    /// One frame of `used` bytes; `None` when it was a fragment that completes no message.
    Frame {
        incoming: Option<Incoming>,
        used: usize,
    },
}

/// A fragmented message between its first frame and its last.
#[derive(Debug, Default)]
enum Partial {
    #[default]
    None,
    /// The text so far, checked once whole.
    Text(Vec<u8>),
    /// Only the length: a binary message is refused whole, not read.
    Binary(usize),
}

/// The reading state of one connection: the size limit and a message being assembled.
#[derive(Debug)]
pub struct Decoder {
    max: usize,
    partial: Partial,
}

impl Decoder {
    /// A decoder refusing any frame or message over `max` payload bytes.
    pub fn new(max: usize) -> Self {
        Decoder {
            max,
            partial: Partial::None,
        }
    }

    /// Decodes the frame at the start of `buf`, if it is whole.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded, FrameError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(Decoded::Incomplete),
        };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(FrameError::Protocol("reserved bits set"));
        }
        let opcode = b0 & 0x0F;
        let control = match opcode {
            CONTINUATION | TEXT | BINARY => false,
            CLOSE | PING | PONG => true,
            _ => return Err(FrameError::Protocol("unknown opcode")),
        };
        if b1 & 0x80 == 0 {
            return Err(FrameError::Protocol("unmasked client frame"));
        }
        let len7 = b1 & 0x7F;
        if control && (!fin || usize::from(len7) > MAX_CONTROL) {
            return Err(FrameError::Protocol("fragmented or long control frame"));
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header = 2 + ext + 4;
        let Some(head) = buf.get(..header) else {
            return Ok(Decoded::Incomplete);
        };
        let len = match ext {
            0 => u64::from(len7),
            2 => u64::from(u16::from_be_bytes([head[2], head[3]])),
            _ => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&head[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(FrameError::Protocol("payload length with its top bit set"));
                }
                len
            }
        };
        // Sequence before size: a continuation without a start is a protocol error whatever
        // its length.
        let so_far = match (&self.partial, opcode) {
            (Partial::None, CONTINUATION) => {
                return Err(FrameError::Protocol("continuation without a message"));
            }
            (Partial::Text(_) | Partial::Binary(_), TEXT | BINARY) => {
                return Err(FrameError::Protocol("new message inside a fragmented one"));
            }
            (Partial::Text(t), CONTINUATION) => t.len(),
            (Partial::Binary(n), CONTINUATION) => *n,
            _ => 0,
        };
        let len = usize::try_from(len).map_err(|_| FrameError::TooBig)?;
        if len > self.max || so_far + len > self.max {
            return Err(FrameError::TooBig);
        }
        let total = header + len;
        let Some(body) = buf.get(header..total) else {
            return Ok(Decoded::Incomplete);
        };
        let mask = [
            head[header - 4],
            head[header - 3],
            head[header - 2],
            head[header - 1],
        ];
        let incoming = self.frame(fin, opcode, body, mask)?;
        Ok(Decoded::Frame {
            incoming,
            used: total,
        })
    }

    /// One whole frame, its payload still masked.
    fn frame(
        &mut self,
        fin: bool,
        opcode: u8,
        body: &[u8],
        mask: [u8; 4],
    ) -> Result<Option<Incoming>, FrameError> {
        let unmasked = || -> Vec<u8> {
            let mut out = Vec::with_capacity(body.len());
            unmask_into(&mut out, body, mask);
            out
        };
        Ok(match opcode {
            TEXT if fin => Some(Incoming::Text(text(unmasked())?)),
            TEXT => {
                self.partial = Partial::Text(unmasked());
                None
            }
            BINARY if fin => Some(Incoming::Binary),
            BINARY => {
                self.partial = Partial::Binary(body.len());
                None
            }
            CONTINUATION => match std::mem::take(&mut self.partial) {
                Partial::Text(mut t) => {
                    unmask_into(&mut t, body, mask);
                    if fin {
                        Some(Incoming::Text(text(t)?))
                    } else {
                        self.partial = Partial::Text(t);
                        None
                    }
                }
                Partial::Binary(n) => {
                    if fin {
                        Some(Incoming::Binary)
                    } else {
                        self.partial = Partial::Binary(n + body.len());
                        None
                    }
                }
                // Refused in `decode` already; never a panic on network input.
                Partial::None => {
                    return Err(FrameError::Protocol("continuation without a message"));
                }
            },
            PING => Some(Incoming::Ping(unmasked())),
            PONG => Some(Incoming::Pong),
            _ => Some(Incoming::Close(close_code(&unmasked())?)),
        })
    }
}

/// Appends `body` to `out`, unmasked (RFC 6455 §5.3): eight bytes at a time, since every
/// relayed frame of a call passes here (a byte at a time was 4 % of the relay's CPU).
fn unmask_into(out: &mut Vec<u8>, body: &[u8], mask: [u8; 4]) {
    let start = out.len();
    out.extend_from_slice(body);
    let tail = &mut out[start..];
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = tail.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // A multiple of 8 bytes is done, so the mask starts again at its first byte.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

fn text(bytes: Vec<u8>) -> Result<String, FrameError> {
    String::from_utf8(bytes).map_err(|_| FrameError::Utf8)
}

/// The code of a close frame's payload (RFC 6455 §5.5.1): none, or two bytes and a UTF-8 reason.
fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| FrameError::Utf8)?;
            Ok(Some(u16::from_be_bytes([*hi, *lo])))
        }
    }
}

/// Whether a peer may send this close code (RFC 6455 §7.4): the defined codes that may appear
/// on the wire, and the ranges for libraries and applications.
pub fn code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What the server writes: one unfragmented frame.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    Text(&'a str),
    Pong(&'a [u8]),
    /// A close with its code and reason (the reason at most 123 bytes).
    Close(u16, &'a str),
}

/// Appends `frame`, unmasked as the server's frames are, to `out`.
pub fn encode(frame: Outgoing<'_>, out: &mut Vec<u8>) {
    let (opcode, payload_len) = match frame {
        Outgoing::Text(t) => (TEXT, t.len()),
        Outgoing::Pong(p) => (PONG, p.len().min(MAX_CONTROL)),
        Outgoing::Close(_, reason) => (CLOSE, 2 + reason.len().min(MAX_CONTROL - 2)),
    };
    out.reserve(10 + payload_len);
    out.push(0x80 | opcode);
    if payload_len < 126 {
        out.push(payload_len as u8);
    } else if let Ok(len) = u16::try_from(payload_len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload_len as u64).to_be_bytes());
    }
    match frame {
        Outgoing::Text(t) => out.extend_from_slice(t.as_bytes()),
        Outgoing::Pong(p) => out.extend_from_slice(&p[..payload_len]),
        Outgoing::Close(code, reason) => {
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&reason.as_bytes()[..payload_len - 2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: `first` is the first header byte (FIN, RSV, opcode).
    fn client(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut f = vec![first];
        let m = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xFFFF => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&MASK);
            f.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, k)| b ^ k));
        } else {
            f.extend_from_slice(payload);
        }
        f
    }

    fn one(d: &mut Decoder, buf: &[u8]) -> Result<Option<Incoming>, FrameError> {
        match d.decode(buf)? {
            Decoded::Frame { incoming, used } => {
                assert_eq!(used, buf.len(), "one frame, all of it");
                Ok(incoming)
            }
            Decoded::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn unmasking_by_words_equals_unmasking_by_bytes_at_every_length() {
        let body: Vec<u8> = (0u8..=40).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..body.len() {
            let part = &body[..len];
            let want: Vec<u8> = part
                .iter()
                .zip(MASK.iter().cycle())
                .map(|(b, k)| b ^ k)
                .collect();
            // After bytes already there (a continuation), the mask starts with the body.
            let mut out = b"abc".to_vec();
            unmask_into(&mut out, part, MASK);
            assert_eq!(&out[..3], b"abc", "length {len}");
            assert_eq!(&out[3..], &want[..], "length {len}");
        }
    }

    #[test]
    fn a_masked_text_frame_is_a_message() {
        let mut d = Decoder::new(1024);
        let f = client(0x81, br#"{"type":"ping"}"#, true);
        assert_eq!(
            one(&mut d, &f),
            Ok(Some(Incoming::Text(r#"{"type":"ping"}"#.into())))
        );
    }

    #[test]
    fn every_length_encoding_decodes() {
        for n in [0, 125, 126, 1000, 0xFFFF, 0x10000, 70_000] {
            let mut d = Decoder::new(100_000);
            let text = "é".repeat(n / 2) + &"a".repeat(n % 2);
            let f = client(0x81, text.as_bytes(), true);
            assert_eq!(one(&mut d, &f), Ok(Some(Incoming::Text(text))), "{n}");
        }
    }

    #[test]
    fn an_unmasked_client_frame_is_a_protocol_error() {
        let mut d = Decoder::new(1024);
        let f = client(0x81, b"{}", false);
        assert!(matches!(d.decode(&f), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn reserved_bits_and_unknown_opcodes_are_protocol_errors() {
        for first in [0xC1, 0xA1, 0x91, 0x83, 0x87, 0x8B, 0x8F] {
            let mut d = Decoder::new(1024);
            let f = client(first, b"{}", true);
            assert!(
                matches!(d.decode(&f), Err(FrameError::Protocol(_))),
                "{first:#x}"
            );
        }
    }

    #[test]
    fn fragments_make_one_message_and_control_frames_may_come_between() {
        let mut d = Decoder::new(1024);
        assert_eq!(one(&mut d, &client(0x01, b"{\"ty", true)), Ok(None));
        assert_eq!(
            one(&mut d, &client(0x89, b"hi", true)),
            Ok(Some(Incoming::Ping(b"hi".to_vec())))
        );
        assert_eq!(one(&mut d, &client(0x00, b"pe\":", true)), Ok(None));
        assert_eq!(
            one(&mut d, &client(0x80, b"\"ping\"}", true)),
            Ok(Some(Incoming::Text(r#"{"type":"ping"}"#.into())))
        );
        // And the next message starts afresh.
        assert_eq!(
            one(&mut d, &client(0x81, b"{}", true)),
            Ok(Some(Incoming::Text("{}".into())))
        );
    }

    #[test]
    fn a_character_split_across_fragments_is_valid() {
        let mut d = Decoder::new(1024);
        let e = "é".as_bytes();
        assert_eq!(one(&mut d, &client(0x01, &e[..1], true)), Ok(None));
        assert_eq!(
            one(&mut d, &client(0x80, &e[1..], true)),
            Ok(Some(Incoming::Text("é".into())))
        );
    }

    #[test]
    fn fragment_sequence_errors_are_protocol_errors() {
        let mut d = Decoder::new(1024);
        assert!(matches!(
            d.decode(&client(0x80, b"x", true)),
            Err(FrameError::Protocol(_))
        ));
        let mut d = Decoder::new(1024);
        assert_eq!(one(&mut d, &client(0x01, b"x", true)), Ok(None));
        assert!(matches!(
            d.decode(&client(0x81, b"y", true)),
            Err(FrameError::Protocol(_))
        ));
        // A control frame may not be fragmented nor longer than 125 bytes.
        let mut d = Decoder::new(1024);
        assert!(matches!(
            d.decode(&client(0x09, b"x", true)),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            d.decode(&client(0x89, &[0; 126], true)),
            Err(FrameError::Protocol(_))
        ));
    }

    #[test]
    fn a_frame_or_message_over_the_limit_is_too_big_from_its_header() {
        let mut d = Decoder::new(100);
        let f = client(0x81, &[b'a'; 101], true);
        // Refused on the header alone: the payload is never waited for.
        assert_eq!(d.decode(&f[..8]), Err(FrameError::TooBig));
        let mut d = Decoder::new(100);
        assert_eq!(one(&mut d, &client(0x01, &[b'a'; 60], true)), Ok(None));
        assert_eq!(
            d.decode(&client(0x80, &[b'a'; 41], true)),
            Err(FrameError::TooBig)
        );
        // Binary counts too, though its bytes are not kept.
        let mut d = Decoder::new(100);
        assert_eq!(one(&mut d, &client(0x02, &[0; 60], true)), Ok(None));
        assert_eq!(
            d.decode(&client(0x80, &[0; 41], true)),
            Err(FrameError::TooBig)
        );
        // A 64-bit length with its top bit set.
        let mut d = Decoder::new(100);
        let mut f = vec![0x81, 0xFF];
        f.extend_from_slice(&u64::MAX.to_be_bytes());
        f.extend_from_slice(&MASK);
        assert!(matches!(d.decode(&f), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn invalid_utf8_is_refused_whole_or_fragmented() {
        let mut d = Decoder::new(1024);
        assert_eq!(
            d.decode(&client(0x81, &[b'{', 0xff, 0xfe, b'}'], true)),
            Err(FrameError::Utf8)
        );
        let mut d = Decoder::new(1024);
        assert_eq!(one(&mut d, &client(0x01, &[0xC3], true)), Ok(None));
        assert_eq!(d.decode(&client(0x80, b"(", true)), Err(FrameError::Utf8));
    }

    #[test]
    fn binary_is_reported_not_kept() {
        let mut d = Decoder::new(1024);
        assert_eq!(
            one(&mut d, &client(0x82, &[1, 2, 3], true)),
            Ok(Some(Incoming::Binary))
        );
        assert_eq!(one(&mut d, &client(0x02, &[1], true)), Ok(None));
        assert_eq!(
            one(&mut d, &client(0x80, &[2], true)),
            Ok(Some(Incoming::Binary))
        );
    }

    #[test]
    fn close_frames_carry_their_code_and_a_valid_reason() {
        let mut d = Decoder::new(1024);
        assert_eq!(
            one(&mut d, &client(0x88, &[], true)),
            Ok(Some(Incoming::Close(None)))
        );
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"bye");
        assert_eq!(
            one(&mut d, &client(0x88, &p, true)),
            Ok(Some(Incoming::Close(Some(1000))))
        );
        assert!(matches!(
            d.decode(&client(0x88, &[3], true)),
            Err(FrameError::Protocol(_))
        ));
        assert_eq!(
            d.decode(&client(0x88, &[3, 232, 0xff], true)),
            Err(FrameError::Utf8)
        );
        assert_eq!(
            one(&mut d, &client(0x8A, b"x", true)),
            Ok(Some(Incoming::Pong))
        );
        assert!(code_allowed(1000) && code_allowed(4001) && code_allowed(3000));
        assert!(!code_allowed(1005) && !code_allowed(1006) && !code_allowed(999));
        assert!(!code_allowed(2000) && !code_allowed(5000) && !code_allowed(1015));
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete() {
        let payload = "x".repeat(300);
        let f = client(0x81, payload.as_bytes(), true);
        for cut in 0..f.len() {
            let mut d = Decoder::new(1024);
            assert_eq!(d.decode(&f[..cut]), Ok(Decoded::Incomplete), "{cut}");
        }
    }

    #[test]
    fn encoded_frames_are_unmasked_with_the_shortest_length() {
        let mut out = Vec::new();
        encode(Outgoing::Text("hi"), &mut out);
        assert_eq!(out, [0x81, 2, b'h', b'i']);
        for (n, header) in [(125, 2), (126, 4), (0xFFFF, 4), (0x10000, 10)] {
            let mut out = Vec::new();
            let t = "a".repeat(n);
            encode(Outgoing::Text(&t), &mut out);
            assert_eq!(out.len(), header + n, "{n}");
            assert_eq!(out[1] & 0x80, 0, "unmasked");
        }
        let mut out = Vec::new();
        encode(Outgoing::Close(1009, "message too large"), &mut out);
        assert_eq!(&out[..4], &[0x88, 19, 0x03, 0xF1]);
        assert_eq!(&out[4..], b"message too large");
        let mut out = Vec::new();
        encode(Outgoing::Pong(b"abc"), &mut out);
        assert_eq!(out, [0x8A, 3, b'a', b'b', b'c']);
    }
}
