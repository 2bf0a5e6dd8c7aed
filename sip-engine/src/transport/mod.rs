//! Sockets. Each transport hands complete messages to the node and writes back what it
//! answers; none of them interprets SIP beyond finding where a message ends.

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
}

impl Transport {
    /// Reliable transports get no retransmissions and zero-length wait timers (RFC 3261
    /// §17: Timers G, E, A are UDP-only; D, I, J, K are 0 over a reliable transport).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The token used in a Via `sent-protocol` for this transport.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// How many messages may wait for one stream connection's writer before more are dropped
/// (as a congested link loses datagrams; the sender's transaction reports the failure).
const STREAM_QUEUE: usize = 256;

type Writers = HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>;

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
    /// Records the connection from `peer`; what is sent to it arrives on the receiver until
    /// the entry is dropped.
    pub fn open(&self, peer: SocketAddr) -> (StreamEntry<'_>, mpsc::Receiver<Vec<u8>>) {
        let (writer, queue) = mpsc::channel(STREAM_QUEUE);
        self.lock().insert(peer, writer);
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

    /// The transport a message to `peer` goes over: the stream connection it holds open,
    /// else UDP.
    pub fn transport_to(&self, peer: SocketAddr) -> Transport {
        if self.contains(peer) {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    /// Queues `bytes` for the connection from `target`. `Err` hands them back when no such
    /// connection is open (the target is a datagram peer); a full or closing connection
    /// drops them, as a lost datagram would be.
    pub fn send(&self, target: SocketAddr, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        let open = self.lock();
        let Some(writer) = open.get(&target) else {
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
