//! Network tools of the server detail page: ping and trace route *from* a server's node to
//! an address the user types, their output sent line by line as it comes.
//!
//! On one machine a node is its own address on the loopback interface; the tools send
//! from that address (the ICMP socket is bound to it), so the echo requests leave from the
//! node exactly as they would from its own host. Choices (PRODUCT.md asks for bounded
//! runs and says no more):
//! - the target is an IPv4 address, never a name: like the engine's next hops, nothing is
//!   resolved through DNS;
//! - ping sends 1 to [`MAX_PINGS`] echo requests, one a second, each given
//!   [`REPLY_WAIT`] to come back;
//! - trace route sends one echo request per TTL from 1 to at most [`MAX_HOPS`] (ICMP, like
//!   `traceroute -I`), reading the router that answers Time Exceeded at each; it needs a
//!   raw ICMP socket (root or `CAP_NET_RAW`) and says so when it cannot have one;
//! - at most [`MAX_RUNNING`] tools run at once in the whole process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use surge_ping::{Client, Config, IcmpPacket, PingIdentifier, PingSequence};
use tokio::sync::{mpsc, Semaphore};

use crate::error::AppError;

/// Echo requests one ping run sends at most.
pub const MAX_PINGS: u16 = 10;
/// TTLs one trace route tries at most.
pub const MAX_HOPS: u16 = 30;
/// How long each echo request waits for its answer.
pub const REPLY_WAIT: Duration = Duration::from_secs(1);
/// Tool runs at once, in the whole process.
pub const MAX_RUNNING: usize = 8;

/// Which tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ping,
    TraceRoute,
}

impl Tool {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        match s {
            "ping" => Ok(Tool::Ping),
            "traceroute" => Ok(Tool::TraceRoute),
            _ => Err(AppError::field("tool", "Choose Ping or Trace route.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Ping => "ping",
            Tool::TraceRoute => "traceroute",
        }
    }

    /// The count the form asks for: echo requests for ping, hops for trace route.
    fn max_count(self) -> u16 {
        match self {
            Tool::Ping => MAX_PINGS,
            Tool::TraceRoute => MAX_HOPS,
        }
    }
}

/// A run the form asked for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub tool: Tool,
    pub target: Ipv4Addr,
    pub count: u16,
}

impl Run {
    /// Checks the form's values; each error names its field.
    pub fn parse(tool: &str, target: &str, count: &str) -> Result<Self, AppError> {
        let tool = Tool::parse(tool)?;
        let target: Ipv4Addr = target.trim().parse().map_err(|_| {
            AppError::field(
                "target",
                "Enter an IPv4 address such as 192.0.2.10 (names are not resolved).",
            )
        })?;
        if target.is_unspecified() || target.is_broadcast() || target.is_multicast() {
            return Err(AppError::field(
                "target",
                "Enter the address of one host, not 0.0.0.0, a broadcast or a multicast address.",
            ));
        }
        let max = tool.max_count();
        let count = match count.trim() {
            "" => max.min(4),
            text => text
                .parse::<u16>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    AppError::field("count", format!("Enter a whole number from 1 to {max}."))
                })?,
        };
        Ok(Run {
            tool,
            target,
            count,
        })
    }
}

/// Limits how many runs go on at once.
#[derive(Debug)]
pub struct NetTools {
    running: Arc<Semaphore>,
}

impl Default for NetTools {
    fn default() -> Self {
        NetTools {
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
        }
    }
}

impl NetTools {
    /// Starts `run` from `node` and returns its output, line by line; the run stops early
    /// when the receiver is dropped (the page went away). Refused when [`MAX_RUNNING`] runs
    /// are going on.
    pub fn start(&self, node: Ipv4Addr, run: Run) -> Result<mpsc::Receiver<String>, AppError> {
        let permit = self.running.clone().try_acquire_owned().map_err(|_| {
            AppError::Refused("Other network tools are running: try again in a few seconds.".into())
        })?;
        let (lines, output) = mpsc::channel(64);
        tokio::spawn(async move {
            let _permit = permit;
            let result = match run.tool {
                Tool::Ping => ping(node, run.target, run.count, &lines).await,
                Tool::TraceRoute => trace_route(node, run.target, run.count, &lines).await,
            };
            if let Err(line) = result {
                let _ = lines.send(line).await;
            }
        });
        Ok(output)
    }
}

/// Milliseconds with two decimals, as ping prints them.
fn millis(rtt: Duration) -> String {
    format!("{:.2}", rtt.as_secs_f64() * 1000.0)
}

/// `count` echo requests from `node` to `target`, one a second. `Err` is a line that says
/// why it could not run (or the page went away, when sending fails).
async fn ping(
    node: Ipv4Addr,
    target: Ipv4Addr,
    count: u16,
    lines: &mpsc::Sender<String>,
) -> Result<(), String> {
    let config = Config::builder()
        .bind(SocketAddr::new(IpAddr::V4(node), 0))
        .build();
    let client = Client::new(&config).map_err(|error| format!("no ICMP socket: {error}"))?;
    let send = |line: String| async move { lines.send(line).await.map_err(|_| String::new()) };
    send(format!("PING {target} from {node}: {count} echo requests")).await?;
    let mut pinger = client
        .pinger(IpAddr::V4(target), PingIdentifier(rand::random()))
        .await;
    pinger.timeout(REPLY_WAIT);
    let mut rtts = Vec::new();
    for seq in 0..count {
        let started = tokio::time::Instant::now();
        let line = match pinger.ping(PingSequence(seq), &[0u8; 56]).await {
            Ok((packet, rtt)) => {
                rtts.push(rtt);
                let size = match &packet {
                    IcmpPacket::V4(packet) => packet.get_size(),
                    IcmpPacket::V6(packet) => packet.get_size(),
                };
                format!(
                    "{size} bytes from {target}: icmp_seq={seq} time={} ms",
                    millis(rtt)
                )
            }
            Err(_) => format!("no answer from {target} for icmp_seq={seq} within 1 s"),
        };
        send(line).await?;
        if seq + 1 < count {
            tokio::time::sleep_until(started + Duration::from_secs(1)).await;
        }
    }
    let received = rtts.len();
    let loss = 100 * (usize::from(count) - received) / usize::from(count);
    let mut summary = format!("{count} sent, {received} received, {loss}% loss");
    if let (Some(min), Some(max)) = (rtts.iter().min(), rtts.iter().max()) {
        let avg = rtts.iter().sum::<Duration>() / received as u32;
        summary.push_str(&format!(
            ", rtt min/avg/max = {}/{}/{} ms",
            millis(*min),
            millis(avg),
            millis(*max)
        ));
    }
    send(summary).await
}

/// One echo request per TTL from `node` towards `target`, until `target` answers or
/// `max_hops` TTLs were tried: each line names the router whose Time Exceeded came back
/// (or `*` when none did in time).
async fn trace_route(
    node: Ipv4Addr,
    target: Ipv4Addr,
    max_hops: u16,
    lines: &mpsc::Sender<String>,
) -> Result<(), String> {
    let send = |line: String| async move { lines.send(line).await.map_err(|_| String::new()) };
    send(format!(
        "trace route to {target} from {node}, {max_hops} hops at most"
    ))
    .await?;
    let ident = PingIdentifier(rand::random());
    for ttl in 1..=max_hops {
        // A socket per TTL: the TTL is a socket option. Raw, because Time Exceeded
        // messages reach only raw ICMP sockets.
        let config = Config::builder()
            .bind(SocketAddr::new(IpAddr::V4(node), 0))
            .ttl(u32::from(ttl))
            .sock_type_hint(socket2::Type::RAW)
            .build();
        let client = Client::new(&config).map_err(|error| {
            format!("trace route needs a raw ICMP socket (root or CAP_NET_RAW): {error}")
        })?;
        let mut pinger = client.pinger(IpAddr::V4(target), ident).await;
        pinger.timeout(REPLY_WAIT);
        match pinger.ping(PingSequence(ttl), &[0u8; 32]).await {
            Ok((IcmpPacket::V4(packet), rtt)) => {
                let from = packet.get_source();
                send(format!("{ttl:>2}  {from}  {} ms", millis(rtt))).await?;
                if from == target {
                    let hops = if ttl == 1 { "hop" } else { "hops" };
                    return send(format!("reached {target} in {ttl} {hops}")).await;
                }
            }
            Ok((IcmpPacket::V6(_), _)) | Err(_) => send(format!("{ttl:>2}  *")).await?,
        }
    }
    send(format!("{target} not reached in {max_hops} hops")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_checked_field_by_field() {
        assert_eq!(
            Run::parse("ping", " 192.0.2.10 ", ""),
            Ok(Run {
                tool: Tool::Ping,
                target: Ipv4Addr::new(192, 0, 2, 10),
                count: 4
            })
        );
        assert_eq!(
            Run::parse("traceroute", "10.0.0.1", "30").unwrap().count,
            30
        );
        let field = |result: Result<Run, AppError>| match result {
            Err(AppError::Field { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Run::parse("nmap", "10.0.0.1", "")), "tool");
        assert_eq!(field(Run::parse("ping", "example.com", "")), "target");
        assert_eq!(field(Run::parse("ping", "255.255.255.255", "")), "target");
        assert_eq!(field(Run::parse("ping", "224.0.0.1", "")), "target");
        assert_eq!(field(Run::parse("ping", "10.0.0.1", "11")), "count");
        assert_eq!(field(Run::parse("ping", "10.0.0.1", "0")), "count");
        assert_eq!(field(Run::parse("traceroute", "10.0.0.1", "31")), "count");
    }
}
