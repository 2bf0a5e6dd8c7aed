//! The UDP receive loop of one node.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Inbound, Outbound, Transport, MAX_DATAGRAM};

/// Serves datagrams until `shutdown` is cancelled. Each datagram is handed up to `inbound`
/// and answered before this task reads the next; [`receive`] tasks on the same socket share
/// the load of incoming datagrams (UDP promises no order anyway).
///
/// `outgoing` brings datagrams the layers above want sent from this socket (forwarded
/// requests, relayed responses, retransmissions, NAT keep-alives: a NAT mapping holds only
/// for the address and port the phone registered to); the loop stops reading it once every
/// sender is gone.
pub async fn serve(
    socket: Arc<UdpSocket>,
    inbound: Arc<dyn Inbound>,
    mut outgoing: Option<mpsc::Receiver<Outbound>>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let next_outgoing = async {
            match outgoing.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let (len, source) = tokio::select! {
            _ = shutdown.cancelled() => return,
            out = next_outgoing => {
                match out {
                    Some(out) => {
                        if let Err(error) = socket.send_to(&out.bytes, out.target).await {
                            tracing::debug!(%error, target = %out.target, "udp send failed");
                        }
                    }
                    None => outgoing = None,
                }
                continue;
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // ICMP port-unreachable from an earlier send surfaces here on Linux; it says
                // nothing about this socket, which keeps serving.
                Err(error) => {
                    tracing::debug!(%error, "udp receive error");
                    continue;
                }
            },
        };
        answer(&socket, inbound.as_ref(), &buf[..len], source).await;
    }
}

/// Another reader of a node's socket: handles incoming datagrams only (the queue of
/// outgoing ones stays with [`serve`]), so that a node uses more than one core under load.
pub async fn receive(
    socket: Arc<UdpSocket>,
    inbound: Arc<dyn Inbound>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, source) = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, "udp receive error");
                    continue;
                }
            },
        };
        answer(&socket, inbound.as_ref(), &buf[..len], source).await;
    }
}

async fn answer(socket: &UdpSocket, inbound: &dyn Inbound, datagram: &[u8], source: SocketAddr) {
    // RFC 5626 keep-alives (CRLF) carry no message and get no answer over UDP.
    if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
        return;
    }
    if let Some(reply) = inbound.receive(datagram, source, Transport::Udp) {
        if let Err(error) = socket.send_to(&reply.bytes, reply.target).await {
            tracing::debug!(%error, target = %reply.target, "udp send failed");
        }
    }
}
