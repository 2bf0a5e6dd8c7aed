//! UAC Auth: the node registers upstream to a carrier as a user agent (RFC 3261 §10.2),
//! answers the carrier's digest challenge with the configured username and password, and
//! refreshes the registration before it expires.
//!
//! The REGISTERs leave from the node's own UDP socket (so the carrier sees the server's
//! address); their answers come back there as responses no transaction knows, and
//! [`Uac::on_response`] claims them by Call-ID. One registration per node, retried every
//! [`RETRY`] while it fails, refreshed at four fifths of the lifetime the carrier granted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rsip::headers::UntypedHeader;
use rsip::{Header, Response};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{NodeConfig, UacRegistration};
use crate::digest::Challenge;
use crate::transaction::{Outbound, MAGIC_COOKIE};

/// How long the carrier has to answer a REGISTER.
const ANSWER: Duration = Duration::from_secs(4);
/// How long a failed registration waits before it is tried again.
pub const RETRY: Duration = Duration::from_secs(30);
/// The lifetime asked for, in seconds.
const ASKED_EXPIRES: u64 = 600;

/// Where the upstream registration stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UacStatus {
    /// No registration configured.
    #[default]
    Off,
    Registering,
    /// Registered until this instant (the carrier's granted lifetime).
    Registered {
        until: SystemTime,
    },
    /// The last attempt failed; why.
    Failed(String),
}

/// One node's upstream registration.
#[derive(Debug)]
pub struct Uac {
    call_id: String,
    status: Mutex<UacStatus>,
    answers: mpsc::Sender<Response>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<Response>>,
}

impl Default for Uac {
    fn default() -> Self {
        let (answers, inbox) = mpsc::channel(8);
        Uac {
            call_id: format!("uac-{:016x}", rand::random::<u64>()),
            status: Mutex::default(),
            answers,
            inbox: tokio::sync::Mutex::new(inbox),
        }
    }
}

impl Uac {
    pub fn status(&self) -> UacStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, status: UacStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// Claims a response to one of this node's upstream REGISTERs.
    pub fn on_response(&self, response: &Response) -> bool {
        let ours = response.headers.iter().any(|h| match h {
            Header::CallId(id) => id.value() == self.call_id,
            _ => false,
        });
        if ours {
            let _ = self.answers.try_send(response.clone());
        }
        ours
    }

    fn register(
        &self,
        registration: &UacRegistration,
        local: SocketAddr,
        cseq: u32,
        credentials: Option<(&str, String)>,
    ) -> Outbound {
        let registrar = registration.registrar;
        let user = &registration.username;
        let branch = format!("{MAGIC_COOKIE}{:016x}", rand::random::<u64>());
        let auth = credentials
            .map(|(header, value)| format!("{header}: {value}\r\n"))
            .unwrap_or_default();
        let host = registrar.ip();
        let bytes = format!(
            "REGISTER sip:{registrar} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag={}\r\n\
             To: <sip:{user}@{host}>\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Expires: {ASKED_EXPIRES}\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            &self.call_id[4..12],
            self.call_id,
        )
        .into_bytes();
        Outbound {
            bytes,
            target: registrar,
        }
    }
}

/// The lifetime a 200 grants: the Expires header, else the asked one.
fn granted(response: &Response) -> Duration {
    let seconds = response
        .headers
        .iter()
        .find_map(|h| match h {
            Header::Expires(e) => e.value().trim().parse::<u64>().ok(),
            _ => None,
        })
        .unwrap_or(ASKED_EXPIRES);
    Duration::from_secs(seconds)
}

/// The first digest challenge of a 401/407 we can answer, with the header to answer in.
fn challenge_of(response: &Response) -> Option<(&'static str, Challenge)> {
    response.headers.iter().find_map(|h| match h {
        Header::WwwAuthenticate(c) => Challenge::parse(c.value()).map(|c| ("Authorization", c)),
        Header::ProxyAuthenticate(c) => {
            Challenge::parse(c.value()).map(|c| ("Proxy-Authorization", c))
        }
        Header::Other(name, value) if name.eq_ignore_ascii_case("WWW-Authenticate") => {
            Challenge::parse(value).map(|c| ("Authorization", c))
        }
        _ => None,
    })
}

/// One registration: a REGISTER, and once more with credentials when challenged. The
/// lifetime granted, or why it failed; `None` when the node is stopping.
async fn attempt(
    uac: &Uac,
    inbox: &mut mpsc::Receiver<Response>,
    registration: &UacRegistration,
    local: SocketAddr,
    out: &mpsc::Sender<Outbound>,
    cseq: &mut u32,
    shutdown: &CancellationToken,
) -> Option<Result<Duration, String>> {
    let mut credentials = None;
    for round in 0..2 {
        *cseq += 1;
        while inbox.try_recv().is_ok() {}
        let request = uac.register(registration, local, *cseq, credentials.take());
        out.send(request).await.ok()?;
        let answer = tokio::select! {
            _ = shutdown.cancelled() => return None,
            answer = tokio::time::timeout(ANSWER, inbox.recv()) => answer.ok().flatten(),
        };
        let Some(answer) = answer else {
            return Some(Err("no answer from the registrar".into()));
        };
        let code = answer.status_code.code();
        match code {
            200..=299 => return Some(Ok(granted(&answer))),
            401 | 407 if round == 0 => match challenge_of(&answer) {
                Some((header, challenge)) => {
                    let uri = format!("sip:{}", registration.registrar);
                    let cnonce = format!("{:08x}", rand::random::<u32>());
                    let value = challenge.answer(
                        &registration.username,
                        &registration.password,
                        "REGISTER",
                        &uri,
                        &cnonce,
                    );
                    credentials = Some((header, value));
                }
                None => return Some(Err("a challenge the node cannot answer".into())),
            },
            401 | 407 => return Some(Err("the registrar refused the credentials".into())),
            _ => return Some(Err(format!("{code} from the registrar"))),
        }
    }
    Some(Err("the registrar refused the credentials".into()))
}

/// Keeps the node's upstream registration (`uac`) up while its configuration (`config`,
/// watched for changes) asks for one. The REGISTERs leave through `out`, the node's UDP
/// socket at `local`.
pub async fn run(
    uac: Arc<Uac>,
    mut config: watch::Receiver<NodeConfig>,
    local: SocketAddr,
    out: mpsc::Sender<Outbound>,
    shutdown: CancellationToken,
) {
    let mut inbox = uac.inbox.lock().await;
    let mut cseq = 0u32;
    loop {
        let wanted = config.borrow_and_update().uac_registration.clone();
        let Some(registration) = wanted else {
            uac.set(UacStatus::Off);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = config.changed() => if changed.is_err() {
                    return;
                },
            }
            continue;
        };
        uac.set(UacStatus::Registering);
        let Some(outcome) = attempt(
            &uac,
            &mut inbox,
            &registration,
            local,
            &out,
            &mut cseq,
            &shutdown,
        )
        .await
        else {
            return;
        };
        let wait = match outcome {
            Ok(lifetime) => {
                uac.set(UacStatus::Registered {
                    until: SystemTime::now() + lifetime,
                });
                (lifetime * 4 / 5).max(Duration::from_secs(1))
            }
            Err(why) => {
                tracing::debug!(%why, "upstream registration failed");
                uac.set(UacStatus::Failed(why));
                RETRY
            }
        };
        // Until the refresh (or retry) is due, or the registration's settings change.
        let due = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(due) => break,
                changed = config.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if config.borrow_and_update().uac_registration.as_ref() != Some(&registration) {
                        break;
                    }
                }
            }
        }
    }
}
