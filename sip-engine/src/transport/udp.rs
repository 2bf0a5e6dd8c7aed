//! The UDP side of one node: threads that read its socket, a task that sends what the
//! layers above queue for third parties, and a [`Sender`] for services that send batches
//! themselves (keep-alives).
//!
//! Reading is done by plain threads blocked in `recv_from`, as Kamailio's UDP workers do,
//! not by tasks of the async runtime: the kernel wakes exactly one of them per datagram,
//! while async readers would each take an event-loop wake-up (and the runtime's thread
//! hand-offs) per datagram. That wake-up was most of what a node spent on its keep-alives'
//! answers. Each datagram is handed up to the [`Inbound`] and answered on the same thread.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Inbound, Outbound, Outlet, Transport, MAX_DATAGRAM};

/// How long a reader waits in `recv_from` before it looks at the shutdown token again: the
/// longest a stop can take if its wake-up datagram is lost.
const POLL_SHUTDOWN: Duration = Duration::from_millis(250);

/// A reader thread's stack: the datagram buffer is on the heap and handling a message
/// nests a few calls deep, so a quarter of the default is ample, and a process with a
/// thousand nodes does not reserve gigabytes for them.
const READER_STACK: usize = 512 * 1024;

/// Serves `socket` until `shutdown` is cancelled: `readers` threads answer what arrives,
/// and a task sends what arrives on `outgoing` (forwarded requests, relayed responses,
/// retransmissions, upstream registrations: all from this socket, as a NAT mapping holds
/// only for the address and port the phone registered to). The returned handles finish once every reader and the sender have
/// let go of the socket, so the port is free when they have all been awaited.
pub fn serve(
    socket: UdpSocket,
    inbound: Arc<dyn Inbound>,
    outgoing: Option<mpsc::Receiver<Outbound>>,
    readers: usize,
    shutdown: CancellationToken,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    socket.set_read_timeout(Some(POLL_SHUTDOWN))?;
    let local = socket.local_addr()?;
    let socket = Arc::new(socket);
    let mut handles = Vec::with_capacity(readers + 2);
    for n in 0..readers.max(1) {
        let (socket, inbound, shutdown) = (socket.clone(), inbound.clone(), shutdown.clone());
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("udp-{local}-{n}"))
            .stack_size(READER_STACK)
            .spawn(move || {
                read(&socket, inbound.as_ref(), &shutdown);
                drop(socket);
                let _ = done.send(());
            })?;
        handles.push(tokio::spawn(async move {
            let _ = finished.await;
        }));
    }
    // On shutdown, wake every reader at once with an empty datagram to itself.
    let waker = socket.clone();
    let wake_shutdown = shutdown.clone();
    handles.push(tokio::spawn(async move {
        wake_shutdown.cancelled().await;
        for _ in 0..readers.max(1) {
            let _ = waker.send_to(&[], local);
        }
    }));
    handles.push(tokio::spawn(send(socket, outgoing, shutdown)));
    Ok(handles)
}

/// One reader: datagrams in, answers out, until `shutdown`.
fn read(socket: &UdpSocket, inbound: &dyn Inbound, shutdown: &CancellationToken) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = socket.recv_from(&mut buf);
        if shutdown.is_cancelled() {
            return;
        }
        let (len, source) = match received {
            Ok(received) => received,
            // The periodic look at the shutdown token; or ICMP port-unreachable from an
            // earlier send, which says nothing about this socket.
            Err(error) => {
                if !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    tracing::debug!(%error, "udp receive error");
                }
                continue;
            }
        };
        answer(socket, inbound, &buf[..len], source);
    }
}

fn answer(socket: &UdpSocket, inbound: &dyn Inbound, datagram: &[u8], source: SocketAddr) {
    // RFC 5626 keep-alives (CRLF) carry no message and get no answer over UDP; an empty
    // datagram is the shutdown wake-up (or nothing at all).
    if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
        return;
    }
    if let Some(reply) = inbound.receive(datagram, source, Transport::Udp) {
        if let Err(error) = socket.send_to(&reply.bytes, reply.target) {
            tracing::debug!(%error, target = %reply.target, "udp send failed");
        }
    }
}

/// A node's UDP socket as an [`Outlet`]: datagrams leave at once from the calling thread,
/// with no queue and no other task to wake.
#[derive(Debug, Clone)]
pub struct Sender {
    socket: Arc<UdpSocket>,
}

impl Sender {
    /// Sends from `socket` (a clone of the node's socket: the same address and port).
    pub fn new(socket: UdpSocket) -> Self {
        Sender {
            socket: Arc::new(socket),
        }
    }
}

impl Outlet for Sender {
    fn send(&self, out: Outbound) -> bool {
        if let Err(error) = self.socket.send_to(&out.bytes, out.target) {
            tracing::debug!(%error, target = %out.target, "udp send failed");
        }
        true
    }
}

/// Sends what the layers above queue, until `shutdown` or every sender is gone. A UDP send
/// does not wait for the peer: the blocking call returns as soon as the kernel has the
/// datagram.
async fn send(
    socket: Arc<UdpSocket>,
    outgoing: Option<mpsc::Receiver<Outbound>>,
    shutdown: CancellationToken,
) {
    let Some(mut outgoing) = outgoing else {
        return;
    };
    loop {
        let out = tokio::select! {
            _ = shutdown.cancelled() => return,
            out = outgoing.recv() => match out {
                Some(out) => out,
                None => return,
            },
        };
        if let Err(error) = socket.send_to(&out.bytes, out.target) {
            tracing::debug!(%error, target = %out.target, "udp send failed");
        }
    }
}
