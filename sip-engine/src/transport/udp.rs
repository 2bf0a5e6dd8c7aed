//! The UDP receive loop of one node.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::MAX_DATAGRAM;
use crate::node::{Node, Transport};
use crate::transaction::Outbound;

/// Serves datagrams until `shutdown` is cancelled, and fires the node's timers. Each
/// datagram is handled to the end before this task reads the next; [`receive`] tasks on
/// the same socket share the load of incoming datagrams (the node's state is behind locks
/// held for a few map updates, and UDP promises no order anyway).
///
/// `outgoing` brings datagrams other tasks want sent from this socket (NAT keep-alives: a
/// NAT mapping holds only for the address and port the phone registered to); the loop
/// stops reading it once every sender is gone.
pub async fn serve(
    socket: Arc<UdpSocket>,
    node: Arc<Node>,
    mut outgoing: Option<mpsc::Receiver<Outbound>>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let transactions = node.transactions();
    let mut outgoing_closed = false;
    loop {
        if outgoing_closed {
            outgoing = None;
        }
        let next_outgoing = async {
            match outgoing.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        // Transaction timers and the proxy's (408 for callees that never answer).
        let deadline = node.next_deadline();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let (len, source) = tokio::select! {
            _ = shutdown.cancelled() => return,
            // Transaction timers: retransmissions of what UDP may have lost.
            _ = timer => {
                for out in node.poll(Instant::now()) {
                    let Some(out) = node.deliver_to_stream(out) else {
                        continue;
                    };
                    if let Err(error) = socket.send_to(&out.bytes, out.target).await {
                        tracing::debug!(%error, target = %out.target, "udp retransmission failed");
                    }
                }
                continue;
            }
            // A new timer may be due before the one slept on.
            _ = transactions.changed() => continue,
            out = next_outgoing => {
                match out {
                    Some(out) => {
                        if let Err(error) = socket.send_to(&out.bytes, out.target).await {
                            tracing::debug!(%error, target = %out.target, "udp keep-alive failed");
                        }
                    }
                    None => outgoing_closed = true,
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
        answer(&socket, &node, &buf[..len], source).await;
    }
}

/// Another reader of a node's socket: handles incoming datagrams only (timers and
/// keep-alives stay with [`serve`]), so that a node uses more than one core under load.
pub async fn receive(socket: Arc<UdpSocket>, node: Arc<Node>, shutdown: CancellationToken) {
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
        answer(&socket, &node, &buf[..len], source).await;
    }
}

async fn answer(socket: &UdpSocket, node: &Node, datagram: &[u8], source: SocketAddr) {
    // RFC 5626 keep-alives (CRLF) carry no message and get no answer over UDP.
    if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
        return;
    }
    if let Some(reply) = node.handle(datagram, source, Transport::Udp) {
        if let Err(error) = socket.send_to(&reply.bytes, reply.target).await {
            tracing::debug!(%error, target = %reply.target, "udp send failed");
        }
    }
}
