//! SIP trace: a copy of every SIP message a node receives and sends, shipped to a trace
//! collector in HEP version 3 (the Homer Encapsulation Protocol that Homer, heplify-server
//! and Kamailio's `siptrace` speak), over UDP, or over TCP when the server's *TCP SIP Trace*
//! is on: UDP datagrams are lost when the collector or the network is busy, a TCP stream is
//! not (HEP packets carry their own length, so they need no other framing on TCP).
//!
//! Capturing never slows SIP down: messages wait in a bounded queue for the node's shipping
//! task ([`run`]); when it is full (a collector that cannot keep up) the copy is dropped and
//! counted ([`Tracer::dropped`]). NAT keep-alives and the node's own upstream REGISTERs are
//! not traced.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where a node ships its trace, and how it names itself there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceTarget {
    pub collector: SocketAddr,
    /// The node's own SIP address, recorded as the destination of what it receives.
    pub node: SocketAddr,
    /// HEP's capture agent id: the control plane's id of the server.
    pub agent: u32,
    /// Ship over TCP (lossless) instead of UDP.
    pub over_tcp: bool,
}

/// One captured message, as HEP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub at: SystemTime,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// Over TCP (a stream: TCP, TLS, WebSocket) rather than UDP.
    pub stream: bool,
    pub agent: u32,
    pub payload: Vec<u8>,
}

/// How many captured messages may wait for the shipping task.
const QUEUE: usize = 4096;

/// A node's side of tracing: hands copies to the shipping task without waiting. Clones
/// share the queue and the count of drops (the node holds one, the shipping task another).
#[derive(Debug, Clone)]
pub struct Tracer {
    queue: mpsc::Sender<(TraceTarget, Captured)>,
    dropped: Arc<AtomicU64>,
}

impl Tracer {
    /// A tracer and the receiving end its shipping task ([`run`]) drains.
    pub fn new() -> (Tracer, mpsc::Receiver<(TraceTarget, Captured)>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (
            Tracer {
                queue,
                dropped: Arc::default(),
            },
            rx,
        )
    }

    /// Queues a copy of `payload` for `target`'s collector.
    pub fn capture(
        &self,
        target: TraceTarget,
        payload: &[u8],
        source: SocketAddr,
        destination: SocketAddr,
        stream: bool,
    ) {
        let captured = Captured {
            at: SystemTime::now(),
            source,
            destination,
            stream,
            agent: target.agent,
            payload: payload.to_vec(),
        };
        if self.queue.try_send((target, captured)).is_err() {
            self.count_drop();
        }
    }

    fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies dropped: the queue was full, or the collector could not be reached.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Ships captured messages until `shutdown` is cancelled, from `local_ip` (the node's own
/// address, so the collector sees who sends). Over TCP one connection per collector is kept
/// and re-opened when it breaks; what cannot be sent then is dropped and counted.
pub async fn run(
    mut captured: mpsc::Receiver<(TraceTarget, Captured)>,
    local_ip: IpAddr,
    tracer: Tracer,
    shutdown: CancellationToken,
) {
    let mut udp: Option<UdpSocket> = None;
    let mut tcp: Option<(SocketAddr, TcpStream)> = None;
    loop {
        let (target, message) = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = captured.recv() => match next {
                Some(next) => next,
                None => return,
            },
        };
        let packet = encode(&message);
        let sent = if target.over_tcp {
            send_tcp(&mut tcp, local_ip, target.collector, &packet).await
        } else {
            send_udp(&mut udp, local_ip, target.collector, &packet).await
        };
        if let Err(error) = sent {
            tracer.count_drop();
            tracing::debug!(%error, collector = %target.collector, "trace not shipped");
        }
    }
}

async fn send_udp(
    socket: &mut Option<UdpSocket>,
    local_ip: IpAddr,
    collector: SocketAddr,
    packet: &[u8],
) -> std::io::Result<()> {
    if socket.is_none() {
        *socket = Some(UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?);
    }
    match socket {
        Some(socket) => socket.send_to(packet, collector).await.map(|_| ()),
        None => Ok(()),
    }
}

/// How long opening a connection to a collector may take before the message is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

async fn send_tcp(
    connection: &mut Option<(SocketAddr, TcpStream)>,
    local_ip: IpAddr,
    collector: SocketAddr,
    packet: &[u8],
) -> std::io::Result<()> {
    if connection.as_ref().is_none_or(|(to, _)| *to != collector) {
        let socket = match local_ip {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local_ip, 0))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(collector))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        *connection = Some((collector, stream));
    }
    let Some((_, stream)) = connection else {
        return Ok(());
    };
    let written = stream.write_all(packet).await;
    if written.is_err() {
        *connection = None;
    }
    written
}

// HEP3 chunk types (vendor 0, the generic ones).
const IP_FAMILY: u16 = 0x01;
const IP_PROTOCOL: u16 = 0x02;
const SOURCE_V4: u16 = 0x03;
const DESTINATION_V4: u16 = 0x04;
const SOURCE_V6: u16 = 0x05;
const DESTINATION_V6: u16 = 0x06;
const SOURCE_PORT: u16 = 0x07;
const DESTINATION_PORT: u16 = 0x08;
const SECONDS: u16 = 0x09;
const MICROSECONDS: u16 = 0x0a;
const PROTOCOL_TYPE: u16 = 0x0b;
const AGENT_ID: u16 = 0x0c;
const PAYLOAD: u16 = 0x0f;
/// Protocol type 1: SIP.
const SIP: u8 = 1;

/// The HEP3 packet of `message`: "HEP3", the total length, then typed chunks.
pub fn encode(message: &Captured) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.payload.len() + 96);
    out.extend_from_slice(b"HEP3");
    out.extend_from_slice(&[0, 0]);
    let chunk = |out: &mut Vec<u8>, kind: u16, value: &[u8]| {
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
        out.extend_from_slice(value);
    };
    let v4 = message.source.is_ipv4();
    chunk(&mut out, IP_FAMILY, &[if v4 { 2 } else { 10 }]);
    chunk(
        &mut out,
        IP_PROTOCOL,
        &[if message.stream { 6 } else { 17 }],
    );
    for (kind_v4, kind_v6, ip) in [
        (SOURCE_V4, SOURCE_V6, message.source.ip()),
        (DESTINATION_V4, DESTINATION_V6, message.destination.ip()),
    ] {
        match ip {
            IpAddr::V4(ip) => chunk(&mut out, kind_v4, &ip.octets()),
            IpAddr::V6(ip) => chunk(&mut out, kind_v6, &ip.octets()),
        }
    }
    chunk(&mut out, SOURCE_PORT, &message.source.port().to_be_bytes());
    chunk(
        &mut out,
        DESTINATION_PORT,
        &message.destination.port().to_be_bytes(),
    );
    let since = message.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    chunk(&mut out, SECONDS, &(since.as_secs() as u32).to_be_bytes());
    chunk(&mut out, MICROSECONDS, &since.subsec_micros().to_be_bytes());
    chunk(&mut out, PROTOCOL_TYPE, &[SIP]);
    chunk(&mut out, AGENT_ID, &message.agent.to_be_bytes());
    // A SIP message is at most a datagram's size; a longer one is cut to fit a chunk.
    let payload = &message.payload[..message.payload.len().min(usize::from(u16::MAX) - 6 - 200)];
    chunk(&mut out, PAYLOAD, payload);
    let total = (out.len() as u16).to_be_bytes();
    out[4..6].copy_from_slice(&total);
    out
}

/// Why bytes are not a HEP3 packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HepError {
    #[error("not a HEP3 packet")]
    NotHep,
    #[error("a chunk runs past the packet's end")]
    Truncated,
    #[error("a required chunk is missing")]
    Incomplete,
}

/// The length of the HEP3 packet that `bytes` starts with, once its header is in.
pub fn packet_len(bytes: &[u8]) -> Result<Option<usize>, HepError> {
    if bytes.len() < 6 {
        return Ok(None);
    }
    if &bytes[..4] != b"HEP3" {
        return Err(HepError::NotHep);
    }
    let len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    if len < 6 {
        return Err(HepError::NotHep);
    }
    Ok(Some(len))
}

/// Reads one whole HEP3 packet (unknown chunks are skipped, as HEP asks).
pub fn decode(packet: &[u8]) -> Result<Captured, HepError> {
    let len = packet_len(packet)?.ok_or(HepError::Truncated)?;
    if packet.len() < len {
        return Err(HepError::Truncated);
    }
    let mut rest = &packet[6..len];
    let (mut source_ip, mut destination_ip) = (None, None);
    let (mut source_port, mut destination_port) = (0u16, 0u16);
    let (mut seconds, mut micros, mut agent, mut stream) = (0u32, 0u32, 0u32, false);
    let mut payload = None;
    while !rest.is_empty() {
        if rest.len() < 6 {
            return Err(HepError::Truncated);
        }
        let kind = u16::from_be_bytes([rest[2], rest[3]]);
        let size = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        if size < 6 || size > rest.len() {
            return Err(HepError::Truncated);
        }
        let value = &rest[6..size];
        let u16_of = |v: &[u8]| v.try_into().map(u16::from_be_bytes).ok();
        let u32_of = |v: &[u8]| v.try_into().map(u32::from_be_bytes).ok();
        match kind {
            IP_PROTOCOL => stream = value.first() == Some(&6),
            SOURCE_V4 | SOURCE_V6 => source_ip = ip_of(value),
            DESTINATION_V4 | DESTINATION_V6 => destination_ip = ip_of(value),
            SOURCE_PORT => source_port = u16_of(value).unwrap_or_default(),
            DESTINATION_PORT => destination_port = u16_of(value).unwrap_or_default(),
            SECONDS => seconds = u32_of(value).unwrap_or_default(),
            MICROSECONDS => micros = u32_of(value).unwrap_or_default(),
            AGENT_ID => agent = u32_of(value).unwrap_or_default(),
            PAYLOAD => payload = Some(value.to_vec()),
            _ => {}
        }
        rest = &rest[size..];
    }
    let (Some(source), Some(destination), Some(payload)) = (source_ip, destination_ip, payload)
    else {
        return Err(HepError::Incomplete);
    };
    Ok(Captured {
        at: UNIX_EPOCH + Duration::from_secs(seconds.into()) + Duration::from_micros(micros.into()),
        source: SocketAddr::new(source, source_port),
        destination: SocketAddr::new(destination, destination_port),
        stream,
        agent,
        payload,
    })
}

fn ip_of(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Captured {
        Captured {
            at: UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456),
            source: "127.0.0.9:5060".parse().unwrap(),
            destination: "[::1]:40000".parse().unwrap(),
            stream: true,
            agent: 42,
            payload: b"OPTIONS sip:a SIP/2.0\r\n\r\n".to_vec(),
        }
    }

    #[test]
    fn a_packet_reads_back_as_what_was_captured() {
        let packet = encode(&message());
        assert_eq!(&packet[..4], b"HEP3");
        assert_eq!(packet_len(&packet), Ok(Some(packet.len())));
        assert_eq!(decode(&packet), Ok(message()));
    }

    #[test]
    fn broken_packets_are_refused_not_misread() {
        let packet = encode(&message());
        assert_eq!(decode(b"HEP2\0\x10abcdefghij"), Err(HepError::NotHep));
        assert_eq!(
            decode(&packet[..packet.len() - 3]),
            Err(HepError::Truncated)
        );
        let mut lying = packet.clone();
        lying[6 + 4] = 0xff; // the first chunk claims to be longer than the packet
        assert_eq!(decode(&lying), Err(HepError::Truncated));
        assert_eq!(packet_len(b"HEP"), Ok(None));
    }
}
