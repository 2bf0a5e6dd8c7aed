//! Sockets. Each transport hands complete messages to the node and writes back what it
//! answers; none of them interprets SIP beyond finding where a message ends.

pub mod tcp;
pub mod tls;
pub mod udp;

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
