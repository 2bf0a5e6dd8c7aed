//! Sockets. Each transport hands complete messages to the node and writes back what it
//! answers; none of them interprets SIP beyond finding where a message ends.

pub mod tcp;
pub mod udp;

/// Largest head (start line + headers) accepted on a stream before the connection is
/// judged broken. Real requests are a few kilobytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted (SDP and similar): anything bigger on a SIP port is abuse.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest datagram read; bigger ones are truncated by the kernel and fail to parse.
pub const MAX_DATAGRAM: usize = 65_535;
