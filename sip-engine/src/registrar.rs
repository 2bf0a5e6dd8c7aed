//! The registrar (RFC 3261 §10.3): authenticates a REGISTER and turns it into changes to the
//! location store.
//!
//! It never touches bindings itself: every change goes through [`LocationStore::apply`], which
//! applies a REGISTER's changes all or none. It answers with a status and headers; the node
//! wraps them into the response and the server transaction.
//!
//! A Switch registers phones; so does a Dispatcher under AnyReg, as the phones' edge: then
//! it puts itself in each binding's Path ([`Site::edge`]), as it would in the Path of a
//! REGISTER it balanced to a switch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, StatusCode};

use crate::digest::{Algorithm, Authenticator, Credentials, CredentialsError, Verdict};
use crate::directory::UserDirectory;
use crate::forward::rewrite::path_entry;
use crate::location::{contact_key, Binding, Change, LocationStore, StoreError};
use crate::message::{header_params, split_header_list, uri_of};
use crate::transport::Transport;

/// The node a REGISTER or a call arrived at, as the registrar needs to know it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Site<'a> {
    /// The canonical domain of its users (its IP, as [`crate::directory::domain_of`]
    /// writes it): every binding of the node is kept under it. Empty: none (every name
    /// stays as it came).
    pub domain: &'a str,
    /// Its other names (its FQDN): a user registering or calling under one of them is the
    /// same user as under `domain`.
    pub aliases: &'a [&'a str],
    /// The digest algorithms it offers, in order; `None` offers the registrar's.
    pub algorithms: Option<&'a [Algorithm]>,
    /// Set on a Dispatcher that registers phones itself (AnyReg), at this address (its
    /// UDP socket): each binding's Path starts with the Dispatcher's own entry naming the
    /// address the REGISTER came from ([`path_entry`]), the one it would have added had it
    /// balanced the REGISTER to a switch. So the switches call the phone through the
    /// Dispatcher, whose address its NAT lets in, and the Dispatcher alone keeps that
    /// mapping open. `None` (a Switch): the Path is the REGISTER's own.
    pub edge: Option<SocketAddr>,
}

impl Site<'_> {
    /// Whether `host` (lowercase) is one of the node's names.
    fn names(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(self.domain)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(host))
    }

    /// The domain a binding for `host` is kept under.
    fn canonical<'h>(&'h self, host: &'h str) -> &'h str {
        if !self.domain.is_empty() && self.names(host) {
            self.domain
        } else {
            host
        }
    }
}

/// Who asks for credentials: the registrar (401, `WWW-Authenticate`, `Authorization`) or
/// the proxy (407, `Proxy-Authenticate`, `Proxy-Authorization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenger {
    Registrar,
    Proxy,
}

/// Bounds on registration lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresPolicy {
    /// Shorter non-zero lifetimes get 423 Interval Too Brief: re-registering more often
    /// than this only loads the server.
    pub min: u32,
    /// Longer ones are cut to this, so a phone that vanished does not linger for days.
    pub max: u32,
    /// When the REGISTER names none.
    pub default: u32,
}

impl Default for ExpiresPolicy {
    fn default() -> Self {
        ExpiresPolicy {
            min: 60,
            max: 7200,
            default: 3600,
        }
    }
}

/// What the registrar answers: a status, a reason phrase when the default one would hide
/// the cause, and headers beyond those copied from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub reason: Option<&'static str>,
    pub headers: Vec<Header>,
}

impl Answer {
    fn new(status: StatusCode) -> Self {
        Answer {
            status,
            reason: None,
            headers: Vec::new(),
        }
    }

    fn bad(reason: &'static str) -> Self {
        Answer {
            status: StatusCode::BadRequest,
            reason: Some(reason),
            headers: Vec::new(),
        }
    }
}

/// A registrar: users to authenticate against, the store that owns bindings, and the nonce
/// authority.
#[derive(Debug, Clone)]
pub struct Registrar {
    directory: Arc<dyn UserDirectory>,
    store: Arc<dyn LocationStore>,
    auth: Arc<Authenticator>,
    policy: ExpiresPolicy,
    /// Offered in this order, one `WWW-Authenticate` each.
    algorithms: Vec<Algorithm>,
}

/// SHA-256 first: RFC 7616 §3.7 and RFC 8760 have the server list its preferred algorithm
/// first, and a conforming client uses the first one it supports.
const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

impl Registrar {
    pub fn new(
        directory: Arc<dyn UserDirectory>,
        store: Arc<dyn LocationStore>,
        auth: Arc<Authenticator>,
    ) -> Self {
        Registrar {
            directory,
            store,
            auth,
            policy: ExpiresPolicy::default(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
        }
    }

    /// Offers these algorithms, in this order (an empty list keeps the default). Some
    /// clients read only the first challenge and support only MD5 (SIPp 3.6, older phones);
    /// offering MD5 first serves them, at the price of SHA-256-capable clients using MD5.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
        self
    }

    pub fn with_policy(mut self, policy: ExpiresPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn store(&self) -> &Arc<dyn LocationStore> {
        &self.store
    }

    /// The users it accepts; keep-alives read each user's mode from it.
    pub fn directory(&self) -> &Arc<dyn UserDirectory> {
        &self.directory
    }

    /// Handles one REGISTER that arrived from `source` over `transport`, as a node that
    /// knows no names of its own and offers the registrar's algorithms.
    pub fn register(
        &self,
        request: &Request,
        source: SocketAddr,
        transport: Transport,
        now: SystemTime,
    ) -> Answer {
        self.register_at(request, source, transport, &Site::default(), now)
    }

    /// Handles one REGISTER that arrived at the node `site` describes. A user registering
    /// under any of the node's names (its FQDN as well as its IP) is bound under the node's
    /// canonical domain, where calls and keep-alives look for it; the digest challenge
    /// keeps the name the phone used as its realm.
    pub fn register_at(
        &self,
        request: &Request,
        source: SocketAddr,
        transport: Transport,
        site: &Site<'_>,
        now: SystemTime,
    ) -> Answer {
        let Some((user, domain)) = to_user_and_domain(request) else {
            return Answer::bad("Invalid Address-of-Record");
        };
        let aor = format!("sip:{user}@{}", site.canonical(&domain));
        if let Err(answer) =
            self.authenticate(request, &user, &domain, Challenger::Registrar, site, now)
        {
            return answer;
        }
        let mut call_id = None;
        let mut cseq = None;
        let mut expires_header = None;
        let mut user_agent = None;
        let mut contacts = Vec::new();
        // The proxies between the phone and here (RFC 3327), nearest first.
        let mut path: Vec<String> = Vec::new();
        for header in request.headers.iter() {
            match header {
                Header::CallId(id) => call_id = Some(id.value().to_string()),
                Header::CSeq(value) => cseq = value.seq().ok(),
                Header::Expires(value) => match value.value().trim().parse::<u32>() {
                    Ok(seconds) => expires_header = Some(seconds),
                    Err(_) => return Answer::bad("Invalid Expires"),
                },
                Header::UserAgent(agent) => user_agent = Some(agent.value().to_string()),
                Header::Contact(contact) => contacts.extend(
                    split_header_list(contact.value())
                        .into_iter()
                        .map(str::to_string),
                ),
                Header::Other(name, value) if name.eq_ignore_ascii_case("Path") => {
                    path.extend(split_header_list(value).into_iter().map(str::to_string))
                }
                _ => {}
            }
        }
        let (Some(call_id), Some(cseq)) = (call_id, cseq) else {
            return Answer::bad("Invalid CSeq");
        };
        // What the binding is reached along: the node's own entry first when it is the
        // edge (AnyReg), then the proxies the REGISTER came through. Only theirs is echoed.
        let stored_path: Vec<String> = site
            .edge
            .map(|edge| path_entry(edge, source, transport.is_reliable()))
            .into_iter()
            .chain(path.iter().cloned())
            .collect();
        if contacts.is_empty() {
            // A query: list the bindings, change nothing (RFC 3261 §10.2.3).
            return match self.store.lookup(&aor, now) {
                Ok(bindings) => self.ok(&bindings, now),
                Err(error) => server_error(&error),
            };
        }
        let changes = if contacts.iter().any(|c| c == "*") {
            // `*` only alone, and only to remove everything (RFC 3261 §10.2.2).
            if contacts.len() != 1 || expires_header != Some(0) {
                return Answer::bad("Wildcard Contact Needs Expires 0");
            }
            vec![Change::RemoveAll {
                call_id: call_id.clone(),
                cseq,
            }]
        } else {
            let mut changes: Vec<Change> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for item in &contacts {
                let Some((uri, expires_param)) = parse_contact(item) else {
                    return Answer::bad("Invalid Contact");
                };
                let expires = match expires_param {
                    Some(Ok(seconds)) => seconds,
                    Some(Err(())) => return Answer::bad("Invalid Contact Expires"),
                    None => expires_header.unwrap_or(self.policy.default),
                };
                if expires != 0 && expires < self.policy.min {
                    let mut answer = Answer::new(StatusCode::IntervalTooBrief);
                    answer
                        .headers
                        .push(Header::MinExpires(rsip::headers::MinExpires::new(
                            self.policy.min.to_string(),
                        )));
                    return answer;
                }
                // The same contact twice in one REGISTER: the last one counts.
                let key = contact_key(&uri);
                if let Some(at) = seen.iter().position(|k| *k == key) {
                    seen.remove(at);
                    changes.remove(at);
                }
                seen.push(key);
                changes.push(if expires == 0 {
                    Change::Remove {
                        contact: uri,
                        call_id: call_id.clone(),
                        cseq,
                    }
                } else {
                    Change::Upsert(Binding {
                        contact: uri,
                        expires_at: now
                            + Duration::from_secs(u64::from(expires.min(self.policy.max))),
                        received: source,
                        transport,
                        call_id: call_id.clone(),
                        cseq,
                        user_agent: user_agent.clone(),
                        last_keepalive: None,
                        latency: None,
                        missed_keepalives: 0,
                        online: true,
                        path: stored_path.clone(),
                    })
                });
            }
            changes
        };
        match self.store.apply(&aor, &changes, now) {
            Ok(bindings) => {
                let mut answer = self.ok(&bindings, now);
                // The REGISTER's Path is echoed, so the phone's side can see it (RFC 3327
                // §5.3); an edge's own entry is its business, and names the phone's NAT
                // address, which the phone has no use for.
                if !path.is_empty() {
                    answer
                        .headers
                        .push(Header::Other("Path".into(), path.join(", ")));
                }
                answer
            }
            Err(error) => server_error(&error),
        }
    }

    /// Checks the caller of a new INVITE that reached the node of `domain`. A caller whose
    /// From names a user of that domain must prove it with digest credentials for that user
    /// (RFC 3261 §22.3: 407 and `Proxy-Authenticate`, answered with `Proxy-Authorization`):
    /// nobody may call out as one of the account's users without its password. A caller
    /// from elsewhere passes: the proxy only routes it to this domain's registered users
    /// (an incoming call), never onwards.
    pub fn authorize_caller(
        &self,
        request: &Request,
        domain: &str,
        now: SystemTime,
    ) -> Result<(), Answer> {
        let site = Site {
            domain,
            ..Site::default()
        };
        self.authorize_caller_at(request, &site, now)
    }

    /// As [`authorize_caller`](Self::authorize_caller), for the node `site` describes: a
    /// caller claiming a user under any of its names is challenged.
    pub fn authorize_caller_at(
        &self,
        request: &Request,
        site: &Site<'_>,
        now: SystemTime,
    ) -> Result<(), Answer> {
        let from = request.headers.iter().find_map(|h| match h {
            Header::From(from) => uri_of(from.value()).and_then(|u| rsip::Uri::try_from(u).ok()),
            _ => None,
        });
        let Some(from) = from else {
            return Err(Answer::bad("Invalid From"));
        };
        let local = from.host_with_port.host.to_string().to_ascii_lowercase();
        if !site.names(&local) {
            return Ok(());
        }
        let Some(user) = from.user().filter(|u| !u.is_empty()) else {
            return Err(Answer::new(StatusCode::Forbidden));
        };
        self.authenticate(request, user, &local, Challenger::Proxy, site, now)
    }

    /// Ok when the request carries valid credentials for `user`; else the answer to send.
    fn authenticate(
        &self,
        request: &Request,
        user: &str,
        realm: &str,
        challenger: Challenger,
        site: &Site<'_>,
        now: SystemTime,
    ) -> Result<(), Answer> {
        let algorithms = site.algorithms.unwrap_or(&self.algorithms);
        let mut malformed = false;
        let mut credentials = None;
        for header in request.headers.iter() {
            let value = match (challenger, header) {
                (Challenger::Registrar, Header::Authorization(value)) => value.value(),
                (Challenger::Proxy, Header::ProxyAuthorization(value)) => value.value(),
                _ => continue,
            };
            match Credentials::parse(value) {
                Ok(parsed)
                    if parsed.realm.eq_ignore_ascii_case(realm)
                        && algorithms.contains(&parsed.algorithm) =>
                {
                    credentials = Some(parsed);
                    break;
                }
                Ok(_) | Err(CredentialsError::Scheme) => {}
                Err(_) => malformed = true,
            }
        }
        let Some(credentials) = credentials else {
            return Err(if malformed {
                Answer::bad("Malformed Authorization")
            } else {
                self.challenge(realm, challenger, algorithms, false, now)
            });
        };
        // A user may only register their own address.
        if credentials.username != user {
            return Err(Answer::new(StatusCode::Forbidden));
        }
        // Credentials that do not check out are challenged again (RFC 3261 §22.3), and an
        // unknown user exactly like a wrong password, so that answers never tell which
        // usernames exist. A phone with a wrong password retries or gives up; it never gets
        // a 200.
        let Some(secret) = self.directory.secret(user, realm) else {
            return Err(self.challenge(realm, challenger, algorithms, false, now));
        };
        let method = request.method.to_string();
        match self.auth.verify(&credentials, &method, &secret, now) {
            Verdict::Valid => Ok(()),
            Verdict::Stale => Err(self.challenge(realm, challenger, algorithms, true, now)),
            Verdict::UnknownNonce | Verdict::Wrong => {
                Err(self.challenge(realm, challenger, algorithms, false, now))
            }
        }
    }

    /// 401 (or 407) with one challenge per offered algorithm, preferred first.
    fn challenge(
        &self,
        realm: &str,
        challenger: Challenger,
        algorithms: &[Algorithm],
        stale: bool,
        now: SystemTime,
    ) -> Answer {
        let status = match challenger {
            Challenger::Registrar => StatusCode::Unauthorized,
            Challenger::Proxy => StatusCode::ProxyAuthenticationRequired,
        };
        let mut answer = Answer::new(status);
        for &algorithm in algorithms {
            let value = self.auth.challenge(realm, algorithm, stale, now);
            answer.headers.push(match challenger {
                Challenger::Registrar => {
                    Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(value))
                }
                Challenger::Proxy => {
                    Header::ProxyAuthenticate(rsip::headers::ProxyAuthenticate::new(value))
                }
            });
        }
        answer
    }

    /// 200 listing every current binding with its remaining lifetime, and the Date.
    fn ok(&self, bindings: &[Binding], now: SystemTime) -> Answer {
        let mut answer = Answer::new(StatusCode::OK);
        for binding in bindings {
            answer
                .headers
                .push(Header::Contact(rsip::headers::Contact::new(format!(
                    "<{}>;expires={}",
                    binding.contact,
                    binding.expires_in(now)
                ))));
        }
        answer.headers.push(Header::Date(rsip::headers::Date::new(
            httpdate::fmt_http_date(now),
        )));
        answer
    }
}

fn server_error(error: &StoreError) -> Answer {
    tracing::warn!(%error, "REGISTER not applied");
    Answer {
        status: StatusCode::ServerInternalError,
        reason: Some(match error {
            StoreError::OutOfOrder { .. } => "Out Of Order",
            StoreError::Unavailable(_) => "Location Store Unavailable",
        }),
        headers: Vec::new(),
    }
}

/// The user and (lowercased) host of the To URI: the address-of-record being registered.
fn to_user_and_domain(request: &Request) -> Option<(String, String)> {
    let to = request.headers.iter().find_map(|h| match h {
        Header::To(to) => Some(to.value()),
        _ => None,
    })?;
    let uri = uri_of(to)?;
    let uri = rsip::Uri::try_from(uri).ok()?;
    let user = uri.user()?.to_string();
    let host = uri.host().to_string().to_ascii_lowercase();
    (!user.is_empty()).then_some((user, host))
}

/// A contact's URI (validated) and its `expires` parameter, if any.
type ParsedContact = (String, Option<Result<u32, ()>>);

fn parse_contact(item: &str) -> Option<ParsedContact> {
    let uri = uri_of(item)?;
    rsip::Uri::try_from(uri).ok()?;
    // In the addr-spec form (no `<>`) everything after the first `;` is a header
    // parameter too (RFC 3261 §20.10), which is how `header_params` reads it.
    let expires = header_params(item)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("expires"))
        .map(|(_, value)| value.parse::<u32>().map_err(|_| ()));
    Some((uri.to_string(), expires))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::digest::{ha1, QopParams, Secret};
    use crate::directory::MemoryDirectory;
    use crate::location::MemoryLocationStore;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn source() -> SocketAddr {
        "198.51.100.7:40000".parse().unwrap()
    }

    struct Fixture {
        registrar: Registrar,
        store: Arc<MemoryLocationStore>,
    }

    fn fixture() -> Fixture {
        let directory = Arc::new(MemoryDirectory::new());
        directory.insert(
            "alice",
            Some("sip.example"),
            Secret::Password("s3cret".into()),
        );
        let store = Arc::new(MemoryLocationStore::new());
        let auth = Arc::new(Authenticator::with_random_secret(Duration::from_secs(300)));
        Fixture {
            registrar: Registrar::new(directory, store.clone(), auth),
            store,
        }
    }

    fn register(extra: &str, cseq: u32) -> Request {
        let text = format!("REGISTER sip:sip.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{cseq};rport\r\nFrom: <sip:alice@sip.example>;tag=a\r\nTo: <sip:alice@sip.example>\r\nCall-ID: reg-1\r\nCSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n");
        match crate::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn header_values(answer: &Answer, name: &str) -> Vec<String> {
        answer
            .headers
            .iter()
            .map(|h| h.to_string())
            .filter(|h| h.starts_with(name))
            .collect()
    }

    /// Answers the challenge in `answer` using `algorithm`'s header and `password`.
    fn authorization(answer: &Answer, algorithm: Algorithm, password: &str, nc: u32) -> String {
        let challenge = header_values(answer, "WWW-Authenticate")
            .into_iter()
            .find(|h| h.contains(&format!("algorithm={}", algorithm.token())))
            .unwrap();
        let field = |name: &str| {
            challenge
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .to_string()
        };
        let mut c = Credentials {
            username: "alice".into(),
            realm: field("realm"),
            nonce: field("nonce"),
            uri: "sip:sip.example".into(),
            response: String::new(),
            algorithm,
            opaque: Some(field("opaque")),
            qop: Some(QopParams {
                qop: "auth".into(),
                nc: format!("{nc:08x}"),
                cnonce: "xyz".into(),
            }),
        };
        c.response = c.expected_response(
            &ha1(algorithm, "alice", "sip.example", password),
            "REGISTER",
        );
        format!(
            "Authorization: Digest username=\"alice\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}, opaque=\"{}\", qop=auth, nc={:08x}, cnonce=\"xyz\"\r\n",
            c.realm, c.nonce, c.uri, c.response, algorithm.token(), c.opaque.unwrap(), nc
        )
    }

    fn authed(f: &Fixture, extra: &str, cseq: u32) -> Answer {
        let challenge =
            f.registrar
                .register(&register(extra, cseq), source(), Transport::Udp, now());
        assert_eq!(challenge.status, StatusCode::Unauthorized);
        let auth = authorization(&challenge, Algorithm::Sha256, "s3cret", 1);
        f.registrar.register(
            &register(&format!("{auth}{extra}"), cseq + 1),
            source(),
            Transport::Udp,
            now(),
        )
    }

    #[test]
    fn a_register_s_path_is_stored_with_its_binding_and_echoed() {
        let f = fixture();
        let path = "Path: <sip:127.0.0.9:5060;lr;nat=198.51.100.7~40000>\r\n";
        let answer = authed(&f, &format!("Contact: <sip:alice@10.0.0.1>\r\n{path}"), 1);
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            header_values(&answer, "Path"),
            ["Path: <sip:127.0.0.9:5060;lr;nat=198.51.100.7~40000>"]
        );
        let bindings = f.store.lookup("sip:alice@sip.example", now()).unwrap();
        assert_eq!(
            bindings[0].path,
            ["<sip:127.0.0.9:5060;lr;nat=198.51.100.7~40000>"]
        );
    }

    #[test]
    fn an_edge_stores_its_own_path_entry_first_and_echoes_only_the_register_s() {
        let f = fixture();
        let edge: SocketAddr = "127.0.0.9:5060".parse().unwrap();
        let site = Site {
            domain: "sip.example",
            edge: Some(edge),
            ..Site::default()
        };
        let sign_in = |extra: &str, cseq: u32| {
            let challenge = f.registrar.register_at(
                &register(extra, cseq),
                source(),
                Transport::Udp,
                &site,
                now(),
            );
            assert_eq!(challenge.status, StatusCode::Unauthorized);
            let auth = authorization(&challenge, Algorithm::Sha256, "s3cret", 1);
            f.registrar.register_at(
                &register(&format!("{auth}{extra}"), cseq + 1),
                source(),
                Transport::Udp,
                &site,
                now(),
            )
        };
        let answer = sign_in("Contact: <sip:alice@10.0.0.1>\r\n", 1);
        assert_eq!(answer.status, StatusCode::OK);
        assert!(header_values(&answer, "Path").is_empty(), "nothing to echo");
        let bindings = f.store.lookup("sip:alice@sip.example", now()).unwrap();
        assert_eq!(
            bindings[0].path,
            ["<sip:127.0.0.9:5060;lr;nat=198.51.100.7~40000>"],
            "the edge's entry names the address the REGISTER came from"
        );
        // A proxy in front of the edge: the edge's entry comes first, the proxy's after.
        let answer = sign_in(
            "Contact: <sip:alice@10.0.0.1>\r\nPath: <sip:192.0.2.1;lr>\r\n",
            3,
        );
        assert_eq!(header_values(&answer, "Path"), ["Path: <sip:192.0.2.1;lr>"]);
        let bindings = f.store.lookup("sip:alice@sip.example", now()).unwrap();
        assert_eq!(
            bindings[0].path,
            [
                "<sip:127.0.0.9:5060;lr;nat=198.51.100.7~40000>",
                "<sip:192.0.2.1;lr>"
            ]
        );
    }

    #[test]
    fn an_unauthenticated_register_is_challenged_with_sha_256_then_md5() {
        let f = fixture();
        let answer = f.registrar.register(
            &register("Contact: <sip:alice@10.0.0.1>\r\n", 1),
            source(),
            Transport::Udp,
            now(),
        );
        assert_eq!(answer.status, StatusCode::Unauthorized);
        let challenges = header_values(&answer, "WWW-Authenticate");
        assert_eq!(challenges.len(), 2);
        assert!(challenges[0].contains("algorithm=SHA-256"));
        assert!(challenges[1].contains("algorithm=MD5"));
        assert!(
            challenges[0].contains("realm=\"sip.example\"")
                && challenges[0].contains("qop=\"auth\"")
        );
        assert!(f
            .store
            .lookup("sip:alice@sip.example", now())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_register_answering_the_challenge_binds_the_contact_and_lists_it() {
        let f = fixture();
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let challenge = f
                .registrar
                .register(&register("", 1), source(), Transport::Udp, now());
            let auth = authorization(&challenge, algorithm, "s3cret", 1);
            let seq = if algorithm == Algorithm::Md5 { 2 } else { 3 };
            let answer = f.registrar.register(
                &register(
                    &format!("{auth}Contact: <sip:alice@10.0.0.1:5060>\r\n"),
                    seq,
                ),
                source(),
                Transport::Udp,
                now(),
            );
            assert_eq!(answer.status, StatusCode::OK, "{algorithm:?}");
            assert_eq!(
                header_values(&answer, "Contact"),
                ["Contact: <sip:alice@10.0.0.1:5060>;expires=3600"]
            );
            assert_eq!(header_values(&answer, "Date").len(), 1);
        }
        let bindings = f.store.lookup("sip:alice@sip.example", now()).unwrap();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].received, source());
        assert_eq!(bindings[0].cseq, 3);
    }

    #[test]
    fn a_wrong_password_is_challenged_again_and_another_users_name_gets_403() {
        let f = fixture();
        let challenge = f
            .registrar
            .register(&register("", 1), source(), Transport::Udp, now());
        let auth = authorization(&challenge, Algorithm::Md5, "guess", 1);
        let answer = f.registrar.register(
            &register(&format!("{auth}Contact: <sip:alice@10.0.0.1>\r\n"), 2),
            source(),
            Transport::Udp,
            now(),
        );
        assert_eq!(answer.status, StatusCode::Unauthorized);
        let auth = authorization(&challenge, Algorithm::Md5, "s3cret", 1)
            .replace("username=\"alice\"", "username=\"mallory\"");
        let answer = f.registrar.register(
            &register(&format!("{auth}Contact: <sip:alice@10.0.0.1>\r\n"), 3),
            source(),
            Transport::Udp,
            now(),
        );
        assert_eq!(answer.status, StatusCode::Forbidden);
        assert!(f
            .store
            .lookup("sip:alice@sip.example", now())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_replayed_authorization_is_challenged_again_as_stale() {
        let f = fixture();
        let challenge = f
            .registrar
            .register(&register("", 1), source(), Transport::Udp, now());
        let auth = authorization(&challenge, Algorithm::Md5, "s3cret", 1);
        let request = register(&format!("{auth}Contact: <sip:alice@10.0.0.1>\r\n"), 2);
        let first = f
            .registrar
            .register(&request, source(), Transport::Udp, now());
        assert_eq!(first.status, StatusCode::OK);
        let replay = f
            .registrar
            .register(&request, source(), Transport::Udp, now());
        assert_eq!(replay.status, StatusCode::Unauthorized);
        assert!(header_values(&replay, "WWW-Authenticate")[0].contains("stale=true"));
    }

    #[test]
    fn expires_is_taken_from_the_contact_then_the_header_and_bounded() {
        let f = fixture();
        let answer = authed(
            &f,
            "Contact: <sip:alice@10.0.0.1>;expires=120, <sip:alice@10.0.0.2>\r\nExpires: 9000\r\n",
            1,
        );
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            header_values(&answer, "Contact"),
            [
                "Contact: <sip:alice@10.0.0.1>;expires=120",
                "Contact: <sip:alice@10.0.0.2>;expires=7200"
            ]
        );
        let brief = authed(&f, "Contact: <sip:alice@10.0.0.3>;expires=30\r\n", 10);
        assert_eq!(brief.status, StatusCode::IntervalTooBrief);
        assert_eq!(header_values(&brief, "Min-Expires"), ["Min-Expires: 60"]);
    }

    #[test]
    fn a_wildcard_with_expires_0_removes_all_and_is_refused_otherwise() {
        let f = fixture();
        let answer = authed(
            &f,
            "Contact: <sip:alice@10.0.0.1>, <sip:alice@10.0.0.2>\r\n",
            1,
        );
        assert_eq!(header_values(&answer, "Contact").len(), 2);
        let refused = authed(&f, "Contact: *\r\nExpires: 30\r\n", 10);
        assert_eq!(refused.status, StatusCode::BadRequest);
        let refused = authed(&f, "Contact: *, <sip:alice@10.0.0.1>\r\nExpires: 0\r\n", 20);
        assert_eq!(refused.status, StatusCode::BadRequest);
        let removed = authed(&f, "Contact: *\r\nExpires: 0\r\n", 30);
        assert_eq!(removed.status, StatusCode::OK);
        assert!(header_values(&removed, "Contact").is_empty());
        assert!(f
            .store
            .lookup("sip:alice@sip.example", now())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_contact_with_expires_0_is_removed_and_a_query_lists_the_rest() {
        let f = fixture();
        authed(
            &f,
            "Contact: <sip:alice@10.0.0.1>, <sip:alice@10.0.0.2>\r\n",
            1,
        );
        let answer = authed(&f, "Contact: <sip:alice@10.0.0.1>;expires=0\r\n", 10);
        assert_eq!(
            header_values(&answer, "Contact"),
            ["Contact: <sip:alice@10.0.0.2>;expires=3600"]
        );
        let query = authed(&f, "", 20);
        assert_eq!(query.status, StatusCode::OK);
        assert_eq!(header_values(&query, "Contact").len(), 1);
    }

    #[test]
    fn an_out_of_order_register_gets_500_and_changes_nothing() {
        let f = fixture();
        authed(&f, "Contact: <sip:alice@10.0.0.1>\r\n", 10);
        let answer = authed(&f, "Contact: <sip:alice@10.0.0.1>;expires=0\r\n", 3);
        assert_eq!(answer.status, StatusCode::ServerInternalError);
        assert_eq!(
            f.store
                .lookup("sip:alice@sip.example", now())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn the_offered_algorithms_and_their_order_can_be_chosen() {
        let f = fixture();
        let registrar = f.registrar.clone().with_algorithms(&[Algorithm::Md5]);
        let challenge = registrar.register(&register("", 1), source(), Transport::Udp, now());
        let offered = header_values(&challenge, "WWW-Authenticate");
        assert_eq!(offered.len(), 1);
        assert!(offered[0].contains("algorithm=MD5"));
        // An answer with an algorithm not offered is challenged again, never accepted.
        let sha = f
            .registrar
            .register(&register("", 2), source(), Transport::Udp, now());
        let auth = authorization(&sha, Algorithm::Sha256, "s3cret", 1);
        let answer = registrar.register(&register(&auth, 3), source(), Transport::Udp, now());
        assert_eq!(answer.status, StatusCode::Unauthorized);
    }

    #[test]
    fn an_unknown_user_is_challenged_as_a_wrong_password_is() {
        let f = fixture();
        let challenge = f
            .registrar
            .register(&register("", 1), source(), Transport::Udp, now());
        let auth = authorization(&challenge, Algorithm::Md5, "s3cret", 1)
            .replace("username=\"alice\"", "username=\"bob\"");
        let request = register(&auth, 2);
        let text = request
            .to_string()
            .replace("sip:alice@sip.example>", "sip:bob@sip.example>");
        let Ok(rsip::SipMessage::Request(request)) = crate::message::parse(text.as_bytes()) else {
            panic!()
        };
        let answer = f
            .registrar
            .register(&request, source(), Transport::Udp, now());
        assert_eq!(answer.status, StatusCode::Unauthorized);
    }

    #[test]
    fn a_caller_naming_a_user_of_the_domain_must_prove_it_and_others_pass() {
        let f = fixture();
        let invite = |from: &str, extra: &str| {
            let text = format!("INVITE sip:bob@sip.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKi;rport\r\nFrom: <{from}>;tag=a\r\nTo: <sip:bob@sip.example>\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n");
            match crate::message::parse(text.as_bytes()) {
                Ok(rsip::SipMessage::Request(request)) => request,
                other => panic!("{other:?}"),
            }
        };
        let r = &f.registrar;
        // Someone else's identity: an incoming call, not ours to authenticate.
        assert_eq!(
            r.authorize_caller(
                &invite("sip:carol@elsewhere.example", ""),
                "sip.example",
                now()
            ),
            Ok(())
        );
        // alice of this domain: 407 with Proxy-Authenticate, never 401.
        let Err(challenge) = r.authorize_caller(
            &invite("sip:alice@sip.example:5060", ""),
            "sip.example",
            now(),
        ) else {
            panic!("challenged");
        };
        assert_eq!(challenge.status, StatusCode::ProxyAuthenticationRequired);
        assert!(header_values(&challenge, "WWW-Authenticate").is_empty());
        let offered = header_values(&challenge, "Proxy-Authenticate");
        assert_eq!(offered.len(), 2, "{offered:?}");
        // Credentials for the INVITE, in Proxy-Authorization.
        let as_www = Answer {
            headers: challenge
                .headers
                .iter()
                .map(|h| {
                    Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(
                        h.to_string().split_once(": ").unwrap().1.to_string(),
                    ))
                })
                .collect(),
            ..challenge.clone()
        };
        let proof = |password: &str| {
            let line = authorization(&as_www, Algorithm::Md5, password, 1)
                .replace("Authorization:", "Proxy-Authorization:");
            let mut c = Credentials::parse(line.split_once(": ").unwrap().1.trim()).unwrap();
            c.response = c.expected_response(
                &ha1(Algorithm::Md5, "alice", "sip.example", password),
                "INVITE",
            );
            format!(
                "Proxy-Authorization: Digest username=\"alice\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm=MD5, opaque=\"{}\", qop=auth, nc=00000001, cnonce=\"xyz\"\r\n",
                c.realm, c.nonce, c.uri, c.response, c.opaque.unwrap()
            )
        };
        let wrong = r.authorize_caller(
            &invite("sip:alice@sip.example", &proof("guess")),
            "sip.example",
            now(),
        );
        assert_eq!(
            wrong.map_err(|a| a.status),
            Err(StatusCode::ProxyAuthenticationRequired)
        );
        assert_eq!(
            r.authorize_caller(
                &invite("sip:alice@sip.example", &proof("s3cret")),
                "sip.example",
                now()
            ),
            Ok(())
        );
        // REGISTER-style credentials in Authorization do not count for a proxy.
        let misplaced = proof("s3cret").replace("Proxy-Authorization:", "Authorization:");
        assert!(r
            .authorize_caller(
                &invite("sip:alice@sip.example", &misplaced),
                "sip.example",
                now()
            )
            .is_err());
    }
}
