//! The SIP trace collectors: one per data zone (US, EU), each listening for HEP3 on UDP and
//! TCP at one address (`[sipfleet.trace]`), keeping the latest messages of every server.
//!
//! A server's data zone decides which collector its nodes ship to, and so where its SIP
//! traffic is kept; *TCP SIP Trace* decides how it travels there. The console reads a
//! server's trace from its zone's collector only: after a move, what the other zone holds
//! stays there and is no longer shown.
//!
//! Kept in memory, the last [`KEPT`] messages per server: a trace is for looking at what a
//! server is doing now, not an archive.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use sip_engine::trace::{decode, packet_len, Captured};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

use super::settings::TraceSettings;
use crate::model::DataZone;

/// Messages kept per server and zone.
pub const KEPT: usize = 200;

/// A captured message and how it reached the collector.
#[derive(Debug, Clone)]
pub struct Kept {
    pub message: Captured,
    /// Shipped over the collector's TCP port (else UDP).
    pub over_tcp: bool,
}

/// One zone's collector.
#[derive(Debug)]
pub struct Collector {
    pub addr: SocketAddr,
    kept: Mutex<HashMap<u32, VecDeque<Kept>>>,
}

impl Collector {
    fn keep(&self, message: Captured, over_tcp: bool) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let list = kept.entry(message.agent).or_default();
        if list.len() == KEPT {
            list.pop_front();
        }
        list.push_back(Kept { message, over_tcp });
    }

    /// The messages kept for server `agent`, oldest first.
    pub fn messages(&self, agent: u32) -> Vec<Kept> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(&agent)
            .map(|list| list.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Both zones' collectors, once [`Collectors::start`] has bound them.
#[derive(Debug, Default)]
pub struct Collectors {
    zones: OnceLock<(Arc<Collector>, Arc<Collector>)>,
}

impl Collectors {
    /// Binds both collectors and serves them for the life of the process. Calling it again
    /// does nothing.
    pub async fn start(&self, settings: TraceSettings) -> std::io::Result<()> {
        if self.zones.get().is_some() {
            return Ok(());
        }
        let us = serve(settings.us).await?;
        let eu = serve(settings.eu).await?;
        let _ = self.zones.set((us, eu));
        Ok(())
    }

    /// The collector of `zone`, `None` before [`Collectors::start`].
    pub fn zone(&self, zone: DataZone) -> Option<&Arc<Collector>> {
        self.zones.get().map(|(us, eu)| match zone {
            DataZone::Us => us,
            DataZone::Eu => eu,
        })
    }
}

/// How many ports to try when `addr` asks for any port: the TCP listener picks one, and
/// UDP must get the same one.
const PORT_TRIES: usize = 20;

async fn serve(addr: SocketAddr) -> std::io::Result<Arc<Collector>> {
    let mut tries = 0;
    let (tcp, udp) = loop {
        let tcp = TcpListener::bind(addr).await?;
        let bound = tcp.local_addr()?;
        match UdpSocket::bind(bound).await {
            Ok(udp) => break (tcp, udp),
            Err(error) if addr.port() != 0 || tries == PORT_TRIES => return Err(error),
            Err(_) => tries += 1,
        }
    };
    let collector = Arc::new(Collector {
        addr: tcp.local_addr()?,
        kept: Mutex::default(),
    });
    tokio::spawn(receive_udp(udp, collector.clone()));
    tokio::spawn(accept_tcp(tcp, collector.clone()));
    tracing::info!(addr = %collector.addr, "SIP trace collector listening (HEP3, UDP and TCP)");
    Ok(collector)
}

async fn receive_udp(socket: UdpSocket, collector: Arc<Collector>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((len, _)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        match decode(&buf[..len]) {
            Ok(message) => collector.keep(message, false),
            Err(error) => tracing::debug!(%error, "trace datagram dropped"),
        }
    }
}

async fn accept_tcp(listener: TcpListener, collector: Arc<Collector>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let collector = collector.clone();
        tokio::spawn(async move {
            if let Err(error) = read_stream(stream, &collector).await {
                tracing::debug!(%error, %peer, "trace connection closed");
            }
        });
    }
}

/// HEP3 packets, back to back on one connection (each says how long it is).
async fn read_stream(
    mut stream: tokio::net::TcpStream,
    collector: &Collector,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        loop {
            let len = match packet_len(&buf) {
                Ok(Some(len)) if buf.len() >= len => len,
                Ok(_) => break,
                // Not HEP: nothing after it can be framed either.
                Err(error) => return Err(std::io::Error::other(error)),
            };
            if let Ok(message) = decode(&buf[..len]) {
                collector.keep(message, true);
            }
            buf.drain(..len);
        }
    }
}
