//! TCP: accepting connections and cutting the byte stream into messages.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{FrameError, Inbound, Transport, MAX_BODY, MAX_HEAD};
use crate::message::find_head_end;

/// What the next bytes of a stream hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One whole message: head and the `Content-Length` bytes of body.
    Message(Bytes),
    /// A CRLF CRLF keep-alive ping (RFC 5626 §3.5.1), answered with a single CRLF.
    Ping,
}

/// Cuts a byte stream into SIP messages using `Content-Length` (RFC 3261 §18.3). rsip
/// parses a message once it is whole; finding where it ends is this type's job.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
}

impl Framer {
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next frame, `Ok(None)` when more bytes are needed first.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Ok(Some(Frame::Ping));
        }
        // Lone CRLFs between messages (a pong, or padding) carry nothing.
        while self.buf.starts_with(b"\r\n") && !self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(2);
        }
        if self.buf.is_empty() || self.buf.starts_with(b"\r") {
            return Ok(None);
        }
        let Some(head_len) = find_head_end(&self.buf) else {
            return if self.buf.len() > MAX_HEAD {
                Err(FrameError::HeadTooLong)
            } else {
                Ok(None)
            };
        };
        if head_len > MAX_HEAD {
            return Err(FrameError::HeadTooLong);
        }
        let body_len = content_length(&self.buf[..head_len])?;
        if body_len > MAX_BODY {
            return Err(FrameError::BodyTooLong);
        }
        if self.buf.len() < head_len + body_len {
            return Ok(None);
        }
        Ok(Some(Frame::Message(
            self.buf.split_to(head_len + body_len).freeze(),
        )))
    }
}

/// The value of `Content-Length` (or its compact form `l`). A stream message without one is
/// taken to have no body: clients that send OPTIONS or REGISTER without it are common, and
/// a wrong guess only makes the next message fail to parse, which gets its own 400.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let text = std::str::from_utf8(head).map_err(|_| FrameError::BadContentLength)?;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name == "l" {
            return value
                .trim()
                .parse()
                .map_err(|_| FrameError::BadContentLength);
        }
    }
    Ok(0)
}

/// Accepts connections until `shutdown` is cancelled; each connection is served by its own
/// task, which ends with the listener.
pub async fn serve(listener: TcpListener, node: Arc<dyn Inbound>, shutdown: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off a little, keep serving.
                    tracing::warn!(%error, "tcp accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let node = node.clone();
        let shutdown = shutdown.child_token();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = serve_connection(stream, node) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "tcp connection ended");
                    }
                }
            }
        });
    }
}

/// How long a connection may stay silent, both ways, before it is closed. Phones that
/// register over a stream keep it alive with CRLF pings (RFC 5626 §4.4.1) or re-register
/// sooner.
pub(crate) const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

async fn serve_connection(stream: TcpStream, node: Arc<dyn Inbound>) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    serve_stream(stream, peer, Transport::Tcp, node, Framer::default()).await
}

/// Serves one connection's messages (plain TCP, or TLS once its handshake is done: as
/// `transport` says) until
/// the peer closes it, it stays silent for [`IDLE_TIMEOUT`], or sends what cannot be framed.
/// `framer` holds what was read before the connection was known to carry SIP. While it is
/// open the node sends what it has for `peer` (requests to a phone registered over it,
/// responses relayed to a caller on it) down this connection.
pub(crate) async fn serve_stream<S>(
    mut stream: S,
    peer: std::net::SocketAddr,
    transport: Transport,
    node: Arc<dyn Inbound>,
    mut framer: Framer,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (_entry, mut queue) = node.streams().open(peer, transport);
    loop {
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(bytes))) => {
                    if let Some(reply) = node.receive(&bytes, peer, transport) {
                        stream.write_all(&reply.bytes).await?;
                    }
                }
                Ok(Some(Frame::Ping)) => stream.write_all(b"\r\n").await?,
                Ok(None) => break,
                Err(error) => {
                    // The stream cannot be resynchronised: answer what can be answered,
                    // then close.
                    let pending = framer.buffer_mut().split().freeze();
                    if let Some(reply) = node.unframeable(&pending, peer, transport, &error) {
                        stream.write_all(&reply.bytes).await?;
                    }
                    return Ok(());
                }
            }
        }
        tokio::select! {
            read = stream.read_buf(framer.buffer_mut()) => match read {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            },
            Some(message) = queue.recv() => stream.write_all(&message).await?,
            _ = tokio::time::sleep(IDLE_TIMEOUT) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn a_message_split_across_reads_is_framed_once_whole() {
        let mut framer = Framer::default();
        framer.extend(&OPTIONS[..10]);
        assert_eq!(framer.next_frame(), Ok(None));
        framer.extend(&OPTIONS[10..OPTIONS.len() - 2]);
        assert_eq!(framer.next_frame(), Ok(None));
        framer.extend(&OPTIONS[OPTIONS.len() - 2..]);
        assert_eq!(
            framer.next_frame(),
            Ok(Some(Frame::Message(Bytes::from_static(OPTIONS))))
        );
        assert_eq!(framer.next_frame(), Ok(None));
    }

    #[test]
    fn two_messages_in_one_read_give_two_frames_and_pings_are_seen() {
        let mut framer = Framer::default();
        framer.extend(OPTIONS);
        framer.extend(b"\r\n\r\n");
        framer.extend(OPTIONS);
        assert!(matches!(framer.next_frame(), Ok(Some(Frame::Message(_)))));
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Ping)));
        assert!(matches!(framer.next_frame(), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn compact_content_length_is_read_and_garbage_is_refused() {
        let mut framer = Framer::default();
        framer.extend(b"OPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\nok");
        assert!(matches!(framer.next_frame(), Ok(Some(Frame::Message(m))) if m.ends_with(b"ok")));
        framer.extend(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: many\r\n\r\n");
        assert_eq!(framer.next_frame(), Err(FrameError::BadContentLength));
    }

    #[test]
    fn an_endless_head_is_refused() {
        let mut framer = Framer::default();
        framer.extend(&vec![b'a'; MAX_HEAD + 1]);
        assert_eq!(framer.next_frame(), Err(FrameError::HeadTooLong));
    }
}
