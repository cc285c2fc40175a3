//! Refuses an oversized WebSocket frame by its header, before its payload
//! arrives (issue #11). actix-ws checks a frame's announced length only once
//! the whole frame is buffered: a client that announces 1 GiB and sends it
//! slowly made the server hold all of it before the 64 KiB limit applied, and
//! one that announced it and sent nothing kept its socket open for good.
//!
//! This reads the client's byte stream beside actix-ws: it walks the frame
//! headers (RFC 6455 §5.2), skips payloads, and ends the stream with an error
//! as soon as a data frame, or the fragmented message it continues, announces
//! more than the limit. The bytes before that header still go through, so the
//! frames the client sent first are answered as usual.

use crate::Gateway;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web;
use bytes::Bytes;
use futures_util::Stream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The error text the session recognises as "frame too large".
pub(crate) const TOO_LARGE: &str =
    "a WebSocket frame or message announced more than the frame limit";

/// Middleware of `/ws`: the request's payload (after the upgrade, the
/// client's frames) behind a [`FrameGuard`] at the gateway's frame limit.
pub(crate) async fn guard_frames(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(gateway) = req.app_data::<web::Data<Arc<Gateway>>>() {
        let max = gateway.config.max_frame_bytes;
        let payload = req.take_payload();
        req.set_payload(Payload::Stream {
            payload: Box::pin(FrameGuard::new(payload, max)),
        });
    }
    next.call(req).await
}

/// The client's byte stream, cut off at the first header over `max` bytes.
pub(crate) struct FrameGuard {
    inner: Payload,
    max: u64,
    header: Header,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// Bytes of the fragmented data message so far.
    message: u64,
    /// Whether the frame being skipped ends its message.
    ends_message: bool,
    /// Refused: the error is due (after the bytes before it), then the end.
    refused: Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    No,
    Due,
    Sent,
}

/// A frame header being read: up to 14 bytes.
#[derive(Default)]
struct Header {
    bytes: [u8; 14],
    len: usize,
}

impl Header {
    /// The header's length once its first two bytes are known.
    fn needed(&self) -> usize {
        if self.len < 2 {
            return 2;
        }
        let extended = match self.bytes[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.bytes[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    /// (opcode, fin, payload length) of a complete header.
    fn parse(&self) -> (u8, bool, u64) {
        let opcode = self.bytes[0] & 0x0f;
        let fin = self.bytes[0] & 0x80 != 0;
        let length = match self.bytes[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.bytes[2], self.bytes[3]])),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&self.bytes[2..10]);
                u64::from_be_bytes(be)
            }
            short => u64::from(short),
        };
        (opcode, fin, length)
    }
}

impl FrameGuard {
    pub(crate) fn new(inner: Payload, max: usize) -> Self {
        Self {
            inner,
            max: u64::try_from(max).unwrap_or(u64::MAX),
            header: Header::default(),
            skip: 0,
            message: 0,
            ends_message: false,
            refused: Refusal::No,
        }
    }

    /// Walks `chunk`; returns how many of its bytes may pass (all of them, or
    /// those before the header that announced too much).
    fn scan(&mut self, chunk: &[u8]) -> usize {
        let mut at = 0;
        while at < chunk.len() {
            if self.skip > 0 {
                let step = self.skip.min((chunk.len() - at) as u64);
                self.skip -= step;
                at += step as usize;
                if self.skip == 0 && self.ends_message {
                    self.message = 0;
                }
                continue;
            }
            let header_start = at - self.header.len.min(at);
            while self.header.len < self.header.needed() && at < chunk.len() {
                self.header.bytes[self.header.len] = chunk[at];
                self.header.len += 1;
                at += 1;
            }
            if self.header.len < self.header.needed() {
                break;
            }
            let (opcode, fin, length) = self.header.parse();
            self.header = Header::default();
            // Data frames (text, binary, continuation) count towards their
            // message; control frames are actix-ws's to judge (at most 125).
            if opcode <= 0x2 {
                if opcode != 0 {
                    self.message = 0;
                }
                self.message = self.message.saturating_add(length);
                if length > self.max || self.message > self.max {
                    self.refused = Refusal::Due;
                    return header_start;
                }
                self.ends_message = fin;
            } else {
                self.ends_message = false;
            }
            self.skip = length;
            if length == 0 && self.ends_message {
                self.message = 0;
            }
        }
        chunk.len()
    }
}

impl Stream for FrameGuard {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.refused {
            Refusal::Due => {
                this.refused = Refusal::Sent;
                let error = io::Error::new(io::ErrorKind::InvalidData, TOO_LARGE);
                return Poll::Ready(Some(Err(PayloadError::Io(error))));
            }
            Refusal::Sent => return Poll::Ready(None),
            Refusal::No => {}
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let pass = this.scan(&chunk);
                if this.refused == Refusal::Due && pass == 0 {
                    // Nothing before the refused header: the error at once.
                    this.refused = Refusal::Sent;
                    let error = io::Error::new(io::ErrorKind::InvalidData, TOO_LARGE);
                    return Poll::Ready(Some(Err(PayloadError::Io(error))));
                }
                Poll::Ready(Some(Ok(chunk.slice(..pass))))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header announcing `length`.
    fn header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if length < 126 {
            out.push(0x80 | length as u8);
        } else if length <= u64::from(u16::MAX) {
            out.push(0x80 | 126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&length.to_be_bytes());
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    fn frame(fin: bool, opcode: u8, length: usize) -> Vec<u8> {
        let mut out = header(fin, opcode, length as u64);
        out.extend(std::iter::repeat_n(b'x', length));
        out
    }

    fn guard(max: usize) -> FrameGuard {
        FrameGuard::new(Payload::None, max)
    }

    /// Feeds `bytes` in pieces of `step`: the bytes let through before a refusal.
    fn feed(max: usize, bytes: &[u8], step: usize) -> (usize, bool) {
        let mut guard = guard(max);
        let mut passed = 0;
        for piece in bytes.chunks(step) {
            let pass = guard.scan(piece);
            passed += pass;
            if guard.refused == Refusal::Due {
                return (passed, true);
            }
        }
        (passed, false)
    }

    #[test]
    fn frames_within_the_limit_pass_whole_in_any_pieces() {
        let mut bytes = frame(true, 0x1, 100);
        bytes.extend(frame(true, 0x2, 1000));
        bytes.extend(frame(true, 0x9, 125));
        bytes.extend(frame(false, 0x1, 500));
        bytes.extend(frame(true, 0x0, 524));
        bytes.extend(frame(true, 0x1, 0));
        for step in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                feed(1024, &bytes, step),
                (bytes.len(), false),
                "step {step}"
            );
        }
    }

    #[test]
    fn an_announced_length_over_the_limit_is_refused_at_its_header() {
        let ok = frame(true, 0x1, 10);
        for announced in [1025, 1 << 30, u64::MAX >> 1, u64::MAX] {
            let refused = header(true, 0x1, announced);
            let mut bytes = ok.clone();
            bytes.extend(&refused);
            bytes.extend(std::iter::repeat_n(b'x', 2000));
            for step in [1, 5, 4096] {
                // Header bytes of earlier pieces have gone through; none after it.
                let (passed, stopped) = feed(1024, &bytes, step);
                assert!(stopped, "{announced}, step {step}");
                assert!(
                    (ok.len()..ok.len() + refused.len()).contains(&passed),
                    "{announced}, step {step}: {passed}"
                );
            }
        }
        // Exactly the limit passes.
        let exact = frame(true, 0x2, 1024);
        assert_eq!(feed(1024, &exact, 100), (exact.len(), false));
    }

    #[test]
    fn a_fragmented_message_is_counted_across_its_frames() {
        let mut bytes = frame(false, 0x1, 400);
        bytes.extend(frame(true, 0x9, 5)); // a ping between fragments does not count
        bytes.extend(frame(false, 0x0, 400));
        let before = bytes.len();
        bytes.extend(frame(true, 0x0, 400));
        assert_eq!(feed(1024, &bytes, 33), (before, true));
        // The count starts over with the next message.
        let mut bytes = frame(false, 0x1, 600);
        bytes.extend(frame(true, 0x0, 400));
        bytes.extend(frame(true, 0x1, 1000));
        assert_eq!(feed(1024, &bytes, 33), (bytes.len(), false));
    }
}
