//! Sockets. Each transport hands complete messages up to an [`Inbound`] (the node, though
//! no transport knows that) and writes back what it answers; none of them interprets SIP
//! beyond finding where a message ends. What the layer above wants sent to a third party
//! comes down again through [`Streams`] (a connection that peer opened) or the UDP loop's
//! queue.

pub mod tcp;
pub mod tls;
pub mod udp;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc;

/// Largest head (start line + headers) accepted on a stream before the connection is
/// judged broken. Real requests are a few kilobytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted (SDP and similar): anything bigger on a SIP port is abuse.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest datagram read; bigger ones are truncated by the kernel and fail to parse.
pub const MAX_DATAGRAM: usize = 65_535;

/// The transport a message arrived on. Over UDP a response goes to an address computed from
/// the Via (and is retransmitted by the transaction layer); over a stream it goes back on the
/// same connection, and the stream itself guarantees delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118) without TLS. Not served by any listener today (browsers
    /// only open secure WebSockets from an HTTPS page); named so that bindings and Via
    /// headers can say it when a peer does.
    Ws,
    /// SIP over secure WebSocket, as WebRTC clients use it.
    Wss,
}

impl Transport {
    /// Reliable transports get no retransmissions and zero-length wait timers (RFC 3261
    /// §17: Timers G, E, A are UDP-only; D, I, J, K are 0 over a reliable transport).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The token used in a Via `sent-protocol` for this transport (RFC 3261 §18, RFC 7118
    /// §5.2).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The lowercase name, as a `transport=` URI parameter and the store write it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// The transport a [`name`](Self::name) (any case) stands for.
    pub fn from_name(name: &str) -> Option<Transport> {
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

/// Bytes to send and where to: over UDP the address, over a stream the peer whose
/// connection carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub bytes: Vec<u8>,
    pub target: SocketAddr,
}

/// What an [`Inbound`] answers a message with.
pub type Reply = Outbound;

/// Where a background service hands the datagrams it sends from a node's own socket (a
/// NAT keep-alive must leave from the address the phone registered to).
///
/// Sending is synchronous: a UDP send does not wait for the peer, so a service sends a
/// whole batch from the one wake-up of its task that found it due. Going through a
/// queue to another task instead cost a cross-thread wake-up per datagram, which was most
/// of what keep-alives cost a node. [`udp::Sender`] sends straight from the socket; a
/// queue (`mpsc::Sender`) also serves, for tests that read what was sent.
pub trait Outlet: Send + Sync + 'static {
    /// Sends `out`, or drops it as a lost datagram would be; false once the outlet is
    /// closed for good (its node is stopping).
    fn send(&self, out: Outbound) -> bool;
}

impl Outlet for mpsc::Sender<Outbound> {
    fn send(&self, out: Outbound) -> bool {
        match self.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("outbound queue full: a datagram dropped");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Why a stream can no longer be framed: the connection is closed after it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("message head exceeds {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("missing or invalid Content-Length")]
    BadContentLength,
    #[error("body exceeds {MAX_BODY} bytes")]
    BodyTooLong,
}

/// Where the transports hand what they receive: the layer above them (a node). Called on
/// the receiving task, so an implementation answers from memory and never blocks.
pub trait Inbound: Send + Sync + 'static {
    /// One whole message from `source`: what to send back to it, if anything.
    fn receive(&self, bytes: &[u8], source: SocketAddr, transport: Transport) -> Option<Reply>;

    /// What is left of a stream that could not be framed (`error` says why) before its
    /// connection closes: an answer, when it starts with a request that can be identified.
    fn unframeable(
        &self,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
        error: &FrameError,
    ) -> Option<Reply>;

    /// The stream connections open to this receiver: a stream transport records each
    /// connection here while it is open, so that what is meant for its peer goes down it.
    fn streams(&self) -> &Streams;
}

/// How many messages may wait for one stream connection's writer before more are dropped
/// (as a congested link loses datagrams; the sender's transaction reports the failure).
const STREAM_QUEUE: usize = 256;

type Writers = HashMap<SocketAddr, (Transport, mpsc::Sender<Vec<u8>>)>;

/// The stream connections (TCP, TLS, WebSocket) a node holds open, by peer address. A phone
/// that registered over a stream can only be reached over the connection it opened (it
/// listens nowhere else: RFC 5626 §3, RFC 7118 §5), so what the node sends to such a peer
/// goes down that connection instead of out of the UDP socket.
#[derive(Debug, Default)]
pub struct Streams {
    open: Mutex<Writers>,
}

/// A connection's place in [`Streams`], removed again when dropped.
#[derive(Debug)]
pub struct StreamEntry<'a> {
    streams: &'a Streams,
    peer: SocketAddr,
}

impl Drop for StreamEntry<'_> {
    fn drop(&mut self) {
        self.streams.lock().remove(&self.peer);
    }
}

impl Streams {
    /// Records the connection from `peer` over `transport`; what is sent to it arrives on
    /// the receiver until the entry is dropped.
    pub fn open(
        &self,
        peer: SocketAddr,
        transport: Transport,
    ) -> (StreamEntry<'_>, mpsc::Receiver<Vec<u8>>) {
        let (writer, queue) = mpsc::channel(STREAM_QUEUE);
        self.lock().insert(peer, (transport, writer));
        (
            StreamEntry {
                streams: self,
                peer,
            },
            queue,
        )
    }

    /// Whether a connection from `peer` is open.
    pub fn contains(&self, peer: SocketAddr) -> bool {
        self.lock().contains_key(&peer)
    }

    /// The transport a message to `peer` goes over: that of the stream connection it holds
    /// open, else UDP.
    pub fn transport_to(&self, peer: SocketAddr) -> Transport {
        self.lock()
            .get(&peer)
            .map_or(Transport::Udp, |(transport, _)| *transport)
    }

    /// Queues `bytes` for the connection from `target`. `Err` hands them back when no such
    /// connection is open (the target is a datagram peer); a full or closing connection
    /// drops them, as a lost datagram would be.
    pub fn send(&self, target: SocketAddr, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        let open = self.lock();
        let Some((_, writer)) = open.get(&target) else {
            return Err(bytes);
        };
        if let Err(error) = writer.try_send(bytes) {
            tracing::debug!(%error, %target, "stream writer refused a message");
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Writers> {
        // Inserts and removes leave the map whole: a poisoned lock is still usable.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}
