//! SIP over WebSocket (RFC 7118), as WebRTC clients (SIP.js, JsSIP) speak it: each WebSocket
//! message carries exactly one SIP message, so no framing by `Content-Length` is needed, and
//! the connection, once upgraded with the `sip` subprotocol, is a reliable stream like TCP.
//!
//! Served on the TLS port and on [`WSS_PORT`] (secure WebSocket); messages are handled as stream messages, and
//! requests for a phone registered over the connection go down it (see
//! [`super::Streams`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::{Inbound, Transport};
use super::{MAX_BODY, MAX_HEAD};

/// The port secure WebSocket is served on besides the TLS port. Browsers refuse to open
/// connections to the SIP ports 5060 and 5061 (Chromium and Firefox block them since the
/// NAT Slipstreaming attacks of 2020), so a WebRTC client in a browser cannot use the TLS
/// port's WebSocket; 7443 is where FreeSWITCH serves WSS by default.
pub const WSS_PORT: u16 = 7443;

/// The subprotocol a SIP WebSocket client asks for (RFC 7118 §4.1).
const SUBPROTOCOL: &str = "sip";

/// How often an idle connection is pinged: a browser answers pings by itself, so a tab
/// that is still open keeps its registration's connection, and one that is gone is seen.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Serves a WebSocket connection whose opening bytes have been read already (`stream`
/// replays them) until the peer closes it or stops answering pings. `transport` is
/// [`Transport::Wss`] behind TLS, [`Transport::Ws`] without.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    node: Arc<dyn Inbound>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_HEAD + MAX_BODY);
    config.max_frame_size = Some(MAX_HEAD + MAX_BODY);
    let socket = tokio_tungstenite::accept_hdr_async_with_config(stream, choose_sip, Some(config))
        .await
        .map_err(std::io::Error::other)?;
    let (mut sink, mut messages) = socket.split();
    let (_entry, mut queue) = node.streams().open(peer, transport);
    let mut silent_pings = 0u32;
    loop {
        let outgoing = tokio::select! {
            incoming = messages.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(Message::Text(text))) => {
                    silent_pings = 0;
                    node.receive(text.as_bytes(), peer, transport).map(|r| r.bytes)
                }
                Some(Ok(Message::Binary(bytes))) => {
                    silent_pings = 0;
                    node.receive(&bytes, peer, transport).map(|r| r.bytes)
                }
                // Pings are answered by the library; any traffic shows the peer is there.
                Some(Ok(_)) => {
                    silent_pings = 0;
                    None
                }
            },
            Some(message) = queue.recv() => Some(message),
            _ = tokio::time::sleep(PING_EVERY) => {
                silent_pings += 1;
                if silent_pings > 2 {
                    return Ok(());
                }
                sink.send(Message::Ping(Bytes::new())).await.map_err(std::io::Error::other)?;
                None
            }
        };
        if let Some(bytes) = outgoing {
            sink.send(as_message(bytes))
                .await
                .map_err(std::io::Error::other)?;
        }
    }
}

/// Accepts the upgrade only for clients that speak SIP, and says so in the answer
/// (RFC 7118 §4.1: the server must pick `sip` from the client's list).
// The signature is tungstenite's handshake callback's.
#[allow(clippy::result_large_err)]
fn choose_sip(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offers_sip = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case(SUBPROTOCOL));
    if !offers_sip {
        let mut refusal = ErrorResponse::new(Some("WebSocket subprotocol \"sip\" required".into()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(response)
}

/// SIP is text, sent as a text message; a message that is not UTF-8 (a binary body) goes as
/// binary, which RFC 7118 §5.1 allows.
fn as_message(bytes: Vec<u8>) -> Message {
    match String::from_utf8(bytes) {
        Ok(text) => Message::text(text),
        Err(error) => Message::binary(error.into_bytes()),
    }
}

/// A stream with some of its first bytes already read: they are read again first.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_rewound_stream_reads_its_prefix_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b" / HTTP/1.1")
            .await
            .unwrap();
        drop(client);
        let mut rewound = Rewind::new(Bytes::from_static(b"GET"), server);
        let mut all = String::new();
        rewound.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1");
    }
}
