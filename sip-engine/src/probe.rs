//! The control plane's view of a node: an OPTIONS ping that measures the SIP round trip.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::SipMessage;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::transport::tcp::{Frame, Framer};

/// Which transport a ping uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeTransport {
    Udp,
    Tcp,
}

#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered {0}")]
    Status(u16),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

/// RFC 3261's T1: the first UDP retransmission interval.
const T1: Duration = Duration::from_millis(500);

/// Sends one OPTIONS to `target` and waits for its final response. Ok is the round trip of
/// a 200; any other final status is an error carrying the code. Over UDP the request is
/// retransmitted at T1, 2·T1… until `timeout`, as a client transaction would (RFC 3261
/// §17.1.2.2); the round trip is measured from the last send.
pub async fn options_ping(
    target: SocketAddr,
    transport: ProbeTransport,
    timeout: Duration,
) -> Result<Duration, PingError> {
    match tokio::time::timeout(timeout, ping_inner(target, transport)).await {
        Ok(result) => result,
        Err(_) => Err(PingError::Timeout(timeout)),
    }
}

async fn ping_inner(target: SocketAddr, transport: ProbeTransport) -> Result<Duration, PingError> {
    let call_id = format!("probe-{:016x}", rand::random::<u64>());
    match transport {
        ProbeTransport::Udp => {
            let local: SocketAddr = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .expect("literal address");
            let socket = UdpSocket::bind(local).await?;
            socket.connect(target).await?;
            let request = options_request(target, socket.local_addr()?, "UDP", &call_id);
            let mut buf = vec![0u8; 65_535];
            let mut wait = T1;
            loop {
                let sent = Instant::now();
                socket.send(request.as_bytes()).await?;
                let deadline = sent + wait;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, socket.recv(&mut buf)).await {
                        Err(_) => break,
                        // ICMP port-unreachable: nothing listens there, which is an answer.
                        Ok(Err(error)) => return Err(PingError::Io(error)),
                        Ok(Ok(len)) => {
                            if let Some(code) = final_status(&buf[..len], &call_id) {
                                return finish(code, sent);
                            }
                        }
                    }
                }
                wait = (wait * 2).min(Duration::from_secs(4));
            }
        }
        ProbeTransport::Tcp => {
            let stream = TcpStream::connect(target).await?;
            let local = stream.local_addr()?;
            ping_stream(stream, target, local, "TCP", &call_id).await
        }
    }
}

/// [`options_ping`] over TLS: the node must present a certificate for `name` that `client`
/// trusts (TLS Internals: the control plane's own authority), else the ping fails.
pub async fn options_ping_tls(
    target: SocketAddr,
    name: &str,
    client: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Duration, PingError> {
    let ping = async {
        let name = ServerName::try_from(name.to_string())
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        let tcp = TcpStream::connect(target).await?;
        let local = tcp.local_addr()?;
        let stream = TlsConnector::from(client).connect(name, tcp).await?;
        let call_id = format!("probe-{:016x}", rand::random::<u64>());
        ping_stream(stream, target, local, "TLS", &call_id).await
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(result) => result,
        Err(_) => Err(PingError::Timeout(timeout)),
    }
}

/// One OPTIONS on a connected stream, framed as TCP frames SIP.
async fn ping_stream<S>(
    mut stream: S,
    target: SocketAddr,
    local: SocketAddr,
    transport: &str,
    call_id: &str,
) -> Result<Duration, PingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = options_request(target, local, transport, call_id);
    let sent = Instant::now();
    stream.write_all(request.as_bytes()).await?;
    let mut framer = Framer::default();
    loop {
        while let Ok(Some(frame)) = framer.next_frame() {
            if let Frame::Message(bytes) = frame {
                if let Some(code) = final_status(&bytes, call_id) {
                    return finish(code, sent);
                }
            }
        }
        if stream.read_buf(framer.buffer_mut()).await? == 0 {
            return Err(PingError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

fn finish(code: u16, sent: Instant) -> Result<Duration, PingError> {
    if code == 200 {
        Ok(sent.elapsed())
    } else {
        Err(PingError::Status(code))
    }
}

/// The status code of a final response to our Call-ID; provisional ones are skipped.
fn final_status(bytes: &[u8], call_id: &str) -> Option<u16> {
    let SipMessage::Response(response) = SipMessage::try_from(bytes).ok()? else {
        return None;
    };
    let ours = response.call_id_header().ok()?.value() == call_id;
    let code = response.status_code.code();
    (ours && code >= 200).then_some(code)
}

/// A minimal OPTIONS as a monitoring client sends it, addressed to the node itself (no
/// user part: RFC 3261 §11 asks a server for its own capabilities that way). A Dispatcher
/// answers such an OPTIONS, while it forwards one for a user to its switches.
pub fn options_request(
    target: SocketAddr,
    local: SocketAddr,
    transport: &str,
    call_id: &str,
) -> String {
    let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
    let tag = format!("{:08x}", rand::random::<u32>());
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={tag}\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         User-Agent: sipfleet-probe\r\n\
         Content-Length: 0\r\n\r\n"
    )
}
