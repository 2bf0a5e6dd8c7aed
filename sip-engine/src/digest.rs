//! Digest authentication (RFC 3261 §22, RFC 7616): challenges, and checking the answers.
//!
//! Nonces are stateless: each one carries its issue time and random bits, sealed with an
//! HMAC under the server's secret, so any nonce can be validated (and its age known) without
//! remembering it. The only state is the highest nonce-count (`nc`) seen per nonce, which is
//! what stops a captured `Authorization` from being replayed; that table is bounded, and
//! when it must forget a nonce it forgets the oldest and treats everything as old as that as
//! stale, so forgetting can cost a client a fresh challenge but never opens a replay.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// The hash a challenge asks for. SHA-256 is preferred (offered first); MD5 is still what
/// most phones implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The token used in headers (RFC 7616 §3.3, and RFC 8760 for SIP).
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses the `algorithm` parameter; absent means MD5 (RFC 2617 §3.2.1).
    pub fn parse(token: &str) -> Option<Algorithm> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// The lowercase hex digest of `data`, the form every digest value takes.
    pub fn hash(self, data: &str) -> String {
        self.hash_parts(&[data])
    }

    /// [`hash`](Self::hash) of `parts` joined with `:`, the shape of every digest input
    /// (`username:realm:password`, `method:uri`, …), fed to the hash part by part instead
    /// of being joined into a string first.
    fn hash_parts(self, parts: &[&str]) -> String {
        fn feed<D: Digest>(mut hasher: D, parts: &[&str]) -> String {
            for (n, part) in parts.iter().enumerate() {
                if n > 0 {
                    hasher.update(b":");
                }
                hasher.update(part.as_bytes());
            }
            hex(&hasher.finalize())
        }
        match self {
            Algorithm::Md5 => feed(Md5::new(), parts),
            Algorithm::Sha256 => feed(Sha256::new(), parts),
        }
    }
}

/// What the user directory holds for a user: the password, or HA1 values precomputed per
/// algorithm (so the control plane need not keep passwords in clear).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl std::fmt::Debug for Secret {
    // Never print a password or a hash in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Secret::Password(..)"),
            Secret::Ha1 { .. } => f.write_str("Secret::Ha1(..)"),
        }
    }
}

impl Secret {
    /// HA1 for `algorithm`, `None` when only another algorithm's hash is stored.
    pub fn ha1(&self, algorithm: Algorithm, username: &str, realm: &str) -> Option<String> {
        match self {
            Secret::Password(password) => Some(ha1(algorithm, username, realm, password)),
            Secret::Ha1 { md5, sha256 } => match algorithm {
                Algorithm::Md5 => md5.clone(),
                Algorithm::Sha256 => sha256.clone(),
            },
        }
        .map(|mut h| {
            h.make_ascii_lowercase();
            h
        })
    }
}

/// HA1 = H(username:realm:password).
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_parts(&[username, realm, password])
}

/// The request-digest (RFC 7616 §3.4.1; without qop, the RFC 2069 form).
pub fn request_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash_parts(&[method, uri]);
    match qop {
        Some((nc, cnonce, qop)) => algorithm.hash_parts(&[ha1, nonce, nc, cnonce, qop, &ha2]),
        None => algorithm.hash_parts(&[ha1, nonce, &ha2]),
    }
}

/// Why an `Authorization` header cannot be read as digest credentials (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("not the Digest scheme")]
    Scheme,
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    #[error("nc is not 8 hex digits")]
    NonceCount,
    #[error("unbalanced quotes")]
    Quotes,
}

/// The digest credentials of one `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub opaque: Option<String>,
    /// `qop`, `nc` (as sent, for hashing) and `cnonce`, present together.
    pub qop: Option<QopParams>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopParams {
    pub qop: String,
    pub nc: String,
    pub cnonce: String,
}

impl Credentials {
    /// Parses `Digest username="…", realm="…", …`. rsip's typed header is not used: it reads
    /// `nc` as a decimal byte and re-formats the `uri`, which must be hashed exactly as sent.
    pub fn parse(value: &str) -> Result<Credentials, CredentialsError> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_at(value.find(char::is_whitespace).unwrap_or(value.len()));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(CredentialsError::Scheme);
        }
        let params = auth_params(rest)?;
        let find = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        };
        let need = |name: &'static str| find(name).ok_or(CredentialsError::Missing(name));
        let algorithm = match find("algorithm") {
            None => Algorithm::Md5,
            Some(token) => Algorithm::parse(&token).ok_or(CredentialsError::Algorithm(token))?,
        };
        let qop = match find("qop") {
            None => None,
            Some(qop) => {
                let nc = need("nc")?;
                if nc.len() != 8 || u32::from_str_radix(&nc, 16).is_err() {
                    return Err(CredentialsError::NonceCount);
                }
                Some(QopParams {
                    qop,
                    nc,
                    cnonce: need("cnonce")?,
                })
            }
        };
        Ok(Credentials {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: need("response")?,
            algorithm,
            opaque: find("opaque"),
            qop,
        })
    }

    /// What the response must be for `method` and the user's HA1.
    pub fn expected_response(&self, ha1: &str, method: &str) -> String {
        request_digest(
            self.algorithm,
            ha1,
            &self.nonce,
            self.qop
                .as_ref()
                .map(|q| (q.nc.as_str(), q.cnonce.as_str(), q.qop.as_str())),
            method,
            &self.uri,
        )
    }
}

/// A digest challenge (`WWW-Authenticate` or `Proxy-Authenticate`), as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    pub opaque: Option<String>,
    /// The server offered `qop=auth`.
    pub qop_auth: bool,
}

impl Challenge {
    /// Parses `Digest realm="…", nonce="…", …`; `None` for another scheme, an algorithm we
    /// do not know, or a challenge without realm or nonce.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_at(value.find(char::is_whitespace).unwrap_or(value.len()));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let params = auth_params(rest).ok()?;
        let find = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        };
        let algorithm = match find("algorithm") {
            None => Algorithm::Md5,
            Some(token) => Algorithm::parse(&token)?,
        };
        Some(Challenge {
            realm: find("realm")?,
            nonce: find("nonce")?,
            algorithm,
            opaque: find("opaque"),
            qop_auth: find("qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth")),
        })
    }

    /// The credentials header value answering this challenge for `method` on `uri`.
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> String {
        let key = ha1(self.algorithm, username, &self.realm, password);
        let qop = self.qop_auth.then_some(("00000001", cnonce, "auth"));
        let response = request_digest(self.algorithm, &key, &self.nonce, qop, method, uri);
        let mut value = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.token()
        );
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        if self.qop_auth {
            value.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
        }
        value
    }
}

/// `name=value` pairs separated by commas; values may be quoted strings with `\` escapes.
/// Names and values are slices of `text` (a value is copied only when it holds an escape):
/// an `Authorization` header has ten parameters, and building each name and value a
/// character at a time showed in a registrar's profile.
fn auth_params(text: &str) -> Result<Vec<(&str, Cow<'_, str>)>, CredentialsError> {
    let mut params = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            return Ok(params);
        }
        let end = rest.find(['=', ',']).unwrap_or(rest.len());
        let name = rest[..end].trim();
        rest = &rest[end..];
        let mut value = Cow::Borrowed("");
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            if let Some(quoted) = after.strip_prefix('"') {
                let mut unescaped: Option<String> = None;
                let mut copied_to = 0;
                let mut close = None;
                let mut chars = quoted.char_indices();
                while let Some((at, c)) = chars.next() {
                    match c {
                        '\\' => {
                            let owned = unescaped.get_or_insert_with(String::new);
                            owned.push_str(&quoted[copied_to..at]);
                            copied_to = quoted.len();
                            if let Some((next_at, escaped)) = chars.next() {
                                owned.push(escaped);
                                copied_to = next_at + escaped.len_utf8();
                            }
                        }
                        '"' => {
                            close = Some(at);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(close) = close else {
                    return Err(CredentialsError::Quotes);
                };
                value = match unescaped {
                    Some(mut owned) => {
                        owned.push_str(&quoted[copied_to..close]);
                        Cow::Owned(owned)
                    }
                    None => Cow::Borrowed(&quoted[..close]),
                };
                rest = &quoted[close + 1..];
            } else {
                let end = after.find(',').unwrap_or(after.len());
                value = Cow::Borrowed(after[..end].trim());
                rest = &after[end..];
            }
        }
        params.push((name, value));
    }
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The response is right, for a live nonce not used with this count before.
    Valid,
    /// The response is right but the nonce is too old or its count was replayed: challenge
    /// again with `stale=true`, the client retries without asking its user.
    Stale,
    /// The nonce (or opaque) is not one we issued: challenge afresh.
    UnknownNonce,
    /// Wrong password, user or response.
    Wrong,
}

/// Most nonces whose counts are remembered at once.
pub const DEFAULT_NONCE_TABLE: usize = 100_000;

/// Issues challenges and checks answers. One per engine: the secret must be shared by every
/// node that may see a client's next request.
pub struct Authenticator {
    /// HMAC-SHA-256 already keyed with the server's secret. Keying hashes two blocks; a
    /// clone of the keyed state skips that for each of the two or three seals a
    /// registration needs.
    keyed: Hmac<Sha256>,
    lifetime: Duration,
    opaque: String,
    counts: Mutex<NonceCounts>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct NonceCounts {
    /// Highest nc seen per nonce, keyed by the nonce's 64 random bits (the seal is checked
    /// before a nonce gets here, so only nonces we issued are keyed; two of them sharing
    /// their random bits would at worst cost a client a fresh challenge).
    seen: HashMap<u64, u32>,
    /// The nonces of `seen` with their issue times, in the order they were first used:
    /// nearly issue order, so the oldest are forgotten from the front in O(1).
    order: VecDeque<(u64, u64)>,
    /// Nonces issued at or before this second were forgotten: they count as stale.
    forgotten_up_to: Option<u64>,
    capacity: usize,
}

impl Authenticator {
    /// An authenticator whose nonces live `lifetime` (300 s is usual).
    pub fn new(secret: [u8; 32], lifetime: Duration) -> Self {
        Self::with_table_capacity(secret, lifetime, DEFAULT_NONCE_TABLE)
    }

    /// A random secret: nonces are then only valid within this process.
    pub fn with_random_secret(lifetime: Duration) -> Self {
        Self::new(rand::random(), lifetime)
    }

    pub fn with_table_capacity(secret: [u8; 32], lifetime: Duration, capacity: usize) -> Self {
        let opaque = hex(&mac(&secret, b"opaque")[..8]);
        Authenticator {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("HMAC accepts any key"),
            lifetime,
            opaque,
            counts: Mutex::new(NonceCounts {
                capacity: capacity.max(1),
                ..NonceCounts::default()
            }),
        }
    }

    /// A fresh nonce: 8 bytes of issue time, 8 random, 16 of HMAC, in hex.
    pub fn nonce(&self, realm: &str, now: SystemTime) -> String {
        let mut nonce = String::with_capacity(64);
        self.push_nonce(&mut nonce, realm, now);
        nonce
    }

    /// Appends a fresh [`nonce`](Self::nonce) to `out`.
    fn push_nonce(&self, out: &mut String, realm: &str, now: SystemTime) {
        use std::fmt::Write as _;
        let issued = unix_seconds(now);
        let salt: u64 = rand::random();
        let start = out.len();
        // Writing to a String cannot fail.
        let _ = write!(out, "{issued:016x}{salt:016x}");
        let seal = self.seal(&out[start..], realm);
        out.push_str(std::str::from_utf8(&seal).unwrap_or_default());
    }

    /// The seal of a nonce's `body` for `realm`: the first 16 bytes of HMAC(`body:realm`),
    /// in lowercase hex.
    fn seal(&self, body: &str, realm: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        mac.update(b":");
        mac.update(realm.as_bytes());
        let mut seal = [0u8; 32];
        // 16 bytes fill 32 hex digits exactly.
        let _ = hex::encode_to_slice(&mac.finalize().into_bytes()[..16], &mut seal);
        seal
    }

    /// The `WWW-Authenticate` value of a challenge (RFC 7616 §3.3).
    pub fn challenge(
        &self,
        realm: &str,
        algorithm: Algorithm,
        stale: bool,
        now: SystemTime,
    ) -> String {
        // One buffer for the whole value: a registrar sends one challenge per offered
        // algorithm to every phone that registers.
        let mut value = String::with_capacity(160 + 2 * realm.len());
        value.push_str("Digest realm=\"");
        push_escaped(&mut value, realm);
        value.push_str("\", nonce=\"");
        self.push_nonce(&mut value, realm, now);
        value.push_str("\", opaque=\"");
        value.push_str(&self.opaque);
        value.push_str("\", algorithm=");
        value.push_str(algorithm.token());
        value.push_str(", qop=\"auth\"");
        if stale {
            value.push_str(", stale=true");
        }
        value
    }

    /// Checks `credentials` for a request of `method` against the user's secret.
    pub fn verify(
        &self,
        credentials: &Credentials,
        method: &str,
        secret: &Secret,
        now: SystemTime,
    ) -> Verdict {
        let Some(issued) = self.issue_time(&credentials.nonce, &credentials.realm) else {
            return Verdict::UnknownNonce;
        };
        if credentials
            .opaque
            .as_ref()
            .is_some_and(|o| *o != self.opaque)
        {
            return Verdict::UnknownNonce;
        }
        if credentials
            .qop
            .as_ref()
            .is_some_and(|q| !q.qop.eq_ignore_ascii_case("auth"))
        {
            return Verdict::Wrong;
        }
        let Some(ha1) = secret.ha1(
            credentials.algorithm,
            &credentials.username,
            &credentials.realm,
        ) else {
            return Verdict::Wrong;
        };
        let expected = credentials.expected_response(&ha1, method);
        if !constant_time_eq(
            expected.as_bytes(),
            credentials.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Verdict::Wrong;
        }
        let now_s = unix_seconds(now);
        // A nonce from the future (beyond clock skew between nodes) is not trusted.
        if issued > now_s + 60 || now_s.saturating_sub(issued) > self.lifetime.as_secs() {
            return Verdict::Stale;
        }
        // Without qop there is no count: the nonce is good for one request.
        let nc = match &credentials.qop {
            Some(q) => u32::from_str_radix(&q.nc, 16).unwrap_or(0),
            None => u32::MAX,
        };
        if self.record_count(&credentials.nonce, nc, issued, now_s) {
            Verdict::Valid
        } else {
            Verdict::Stale
        }
    }

    /// The issue time sealed in `nonce`, if we issued it for `realm`.
    fn issue_time(&self, nonce: &str, realm: &str) -> Option<u64> {
        if nonce.len() != 64 || !nonce.is_ascii() {
            return None;
        }
        let (body, seal) = nonce.split_at(32);
        if !constant_time_eq(&self.seal(body, realm), seal.as_bytes()) {
            return None;
        }
        u64::from_str_radix(&body[..16], 16).ok()
    }

    /// Records `nc` for `nonce`; false when it is not above the last one seen (a replay) or
    /// the nonce's count was forgotten.
    fn record_count(&self, nonce: &str, nc: u32, issued: u64, now: u64) -> bool {
        let Some(key) = nonce
            .get(16..32)
            .and_then(|salt| u64::from_str_radix(salt, 16).ok())
        else {
            return false;
        };
        let lifetime = self.lifetime.as_secs();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = counts.seen.get_mut(&key) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if counts.forgotten_up_to.is_some_and(|t| issued <= t) {
            return false;
        }
        // Nonces past their lifetime are stale anyway: drop them from the front.
        while let Some(&(old_issued, old_key)) = counts.order.front() {
            if now.saturating_sub(old_issued) <= lifetime {
                break;
            }
            counts.order.pop_front();
            counts.seen.remove(&old_key);
        }
        // Full: forget the oldest, and count everything issued as early as it as stale.
        while counts.seen.len() >= counts.capacity {
            let Some((old_issued, old_key)) = counts.order.pop_front() else {
                break;
            };
            counts.seen.remove(&old_key);
            counts.forgotten_up_to = Some(counts.forgotten_up_to.unwrap_or(0).max(old_issued));
        }
        if counts.forgotten_up_to.is_some_and(|t| issued <= t) {
            return false;
        }
        counts.seen.insert(key, nc);
        counts.order.push_back((issued, key));
        // After a burst, give the memory back once the table is mostly empty.
        if counts.seen.capacity() > 4096 && counts.seen.len() < counts.seen.capacity() / 4 {
            let keep = counts.seen.len() * 2;
            counts.seen.shrink_to(keep);
            counts.order.shrink_to(keep);
        }
        true
    }
}

fn mac(secret: &[u8; 32], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so this cannot fail for a 32-byte one.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Appends `text` as the inside of a quoted string: `\` and `"` escaped.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Compares secrets in time that does not depend on where they differ (`subtle`); a
/// length mismatch is no secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616(algorithm: Algorithm) -> String {
        let ha1 = ha1(
            algorithm,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        request_digest(
            algorithm,
            &ha1,
            RFC7616_NONCE,
            Some(("00000001", RFC7616_CNONCE, "auth")),
            "GET",
            "/dir/index.html",
        )
    }

    #[test]
    fn quoted_credentials_are_read_with_their_escapes_and_unquoted_ones_trimmed() {
        let c = Credentials::parse(
            "Digest username=\"a\\\"b\", realm = \"r\\\\x\",nonce=  n1 ,uri=\"sip:h\", \
             response=\"ff\", qop=auth, nc=00000001, cnonce=\"c\\\"\"",
        )
        .unwrap();
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.realm, "r\\x");
        assert_eq!(c.nonce, "n1");
        assert_eq!(c.uri, "sip:h");
        assert_eq!(c.qop.unwrap().cnonce, "c\"");
        assert_eq!(
            Credentials::parse("Digest username=\"a, realm=\"r\""),
            Err(CredentialsError::Missing("realm"))
        );
        assert_eq!(
            Credentials::parse("Digest username=\"a\\"),
            Err(CredentialsError::Quotes)
        );
    }

    #[test]
    fn the_rfc_7616_md5_and_sha_256_examples_give_their_published_responses() {
        assert_eq!(rfc7616(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            rfc7616(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn the_rfc_2617_example_gives_its_published_response() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let response = request_digest(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b", "auth")),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn credentials_are_parsed_with_quotes_escapes_and_hex_nonce_counts() {
        let value = r#"Digest username="al\"ice", realm="sip.example", nonce="n", uri="sip:sip.example", response="abc", algorithm=SHA-256, qop=auth, nc=0000000a, cnonce="c,1", opaque="o""#;
        let c = Credentials::parse(value).unwrap();
        assert_eq!(c.username, "al\"ice");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.qop.as_ref().unwrap().nc, "0000000a");
        assert_eq!(c.qop.as_ref().unwrap().cnonce, "c,1");
        assert_eq!(c.opaque.as_deref(), Some("o"));
        assert_eq!(
            Credentials::parse("Basic xyz"),
            Err(CredentialsError::Scheme)
        );
        assert_eq!(
            Credentials::parse(r#"Digest username="a", realm="r"#),
            Err(CredentialsError::Quotes)
        );
        assert_eq!(
            Credentials::parse(r#"Digest username="a""#),
            Err(CredentialsError::Missing("realm"))
        );
    }

    /// Builds the credentials a client would send for a challenge issued by `auth`.
    fn answer(auth: &Authenticator, algorithm: Algorithm, password: &str, nc: u32) -> Credentials {
        let challenge = auth.challenge("sip.example", algorithm, false, now());
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        answer_nonce(auth, algorithm, password, &nonce, nc)
    }

    fn answer_nonce(
        auth: &Authenticator,
        algorithm: Algorithm,
        password: &str,
        nonce: &str,
        nc: u32,
    ) -> Credentials {
        let mut c = Credentials {
            username: "alice".into(),
            realm: "sip.example".into(),
            nonce: nonce.into(),
            uri: "sip:sip.example".into(),
            response: String::new(),
            algorithm,
            opaque: Some(auth.opaque.clone()),
            qop: Some(QopParams {
                qop: "auth".into(),
                nc: format!("{nc:08x}"),
                cnonce: "cn".into(),
            }),
        };
        let ha1 = ha1(algorithm, "alice", "sip.example", password);
        c.response = c.expected_response(&ha1, "REGISTER");
        c
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn password() -> Secret {
        Secret::Password("s3cret".into())
    }

    #[test]
    fn a_right_answer_is_valid_for_both_algorithms_and_with_a_stored_ha1() {
        let auth = Authenticator::with_random_secret(Duration::from_secs(300));
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let c = answer(&auth, algorithm, "s3cret", 1);
            assert_eq!(
                auth.verify(&c, "REGISTER", &password(), now()),
                Verdict::Valid
            );
        }
        let stored = Secret::Ha1 {
            md5: Some(ha1(Algorithm::Md5, "alice", "sip.example", "s3cret").to_uppercase()),
            sha256: None,
        };
        let c = answer(&auth, Algorithm::Md5, "s3cret", 1);
        assert_eq!(auth.verify(&c, "REGISTER", &stored, now()), Verdict::Valid);
        let c = answer(&auth, Algorithm::Sha256, "s3cret", 1);
        assert_eq!(auth.verify(&c, "REGISTER", &stored, now()), Verdict::Wrong);
    }

    #[test]
    fn a_wrong_password_or_method_is_wrong() {
        let auth = Authenticator::with_random_secret(Duration::from_secs(300));
        let c = answer(&auth, Algorithm::Sha256, "guess", 1);
        assert_eq!(
            auth.verify(&c, "REGISTER", &password(), now()),
            Verdict::Wrong
        );
        let c = answer(&auth, Algorithm::Sha256, "s3cret", 1);
        assert_eq!(
            auth.verify(&c, "INVITE", &password(), now()),
            Verdict::Wrong
        );
    }

    #[test]
    fn a_forged_or_foreign_nonce_is_unknown() {
        let auth = Authenticator::with_random_secret(Duration::from_secs(300));
        let other = Authenticator::with_random_secret(Duration::from_secs(300));
        let mut c = answer(&other, Algorithm::Md5, "s3cret", 1);
        c.opaque = None;
        assert_eq!(
            auth.verify(&c, "REGISTER", &password(), now()),
            Verdict::UnknownNonce
        );
        let c = answer_nonce(&auth, Algorithm::Md5, "s3cret", "short", 1);
        assert_eq!(
            auth.verify(&c, "REGISTER", &password(), now()),
            Verdict::UnknownNonce
        );
    }

    #[test]
    fn an_expired_nonce_with_a_right_answer_is_stale() {
        let auth = Authenticator::with_random_secret(Duration::from_secs(300));
        let c = answer(&auth, Algorithm::Sha256, "s3cret", 1);
        let later = now() + Duration::from_secs(301);
        assert_eq!(
            auth.verify(&c, "REGISTER", &password(), later),
            Verdict::Stale
        );
        let wrong = answer(&auth, Algorithm::Sha256, "guess", 1);
        assert_eq!(
            auth.verify(&wrong, "REGISTER", &password(), later),
            Verdict::Wrong
        );
    }

    #[test]
    fn a_replayed_nonce_count_is_stale_and_a_higher_one_is_valid() {
        let auth = Authenticator::with_random_secret(Duration::from_secs(300));
        let first = answer(&auth, Algorithm::Md5, "s3cret", 1);
        assert_eq!(
            auth.verify(&first, "REGISTER", &password(), now()),
            Verdict::Valid
        );
        assert_eq!(
            auth.verify(&first, "REGISTER", &password(), now()),
            Verdict::Stale
        );
        let second = answer_nonce(&auth, Algorithm::Md5, "s3cret", &first.nonce, 2);
        assert_eq!(
            auth.verify(&second, "REGISTER", &password(), now()),
            Verdict::Valid
        );
    }

    #[test]
    fn a_full_count_table_forgets_the_oldest_nonce_and_then_refuses_it() {
        let auth = Authenticator::with_table_capacity(rand::random(), Duration::from_secs(300), 1);
        let old = answer(&auth, Algorithm::Md5, "s3cret", 1);
        assert_eq!(
            auth.verify(&old, "REGISTER", &password(), now()),
            Verdict::Valid
        );
        let later = now() + Duration::from_secs(10);
        let challenge = auth.challenge("sip.example", Algorithm::Md5, false, later);
        let nonce = challenge.split('"').nth(3).unwrap().to_string();
        let new = answer_nonce(&auth, Algorithm::Md5, "s3cret", &nonce, 1);
        assert_eq!(
            auth.verify(&new, "REGISTER", &password(), later),
            Verdict::Valid
        );
        let replay = answer_nonce(&auth, Algorithm::Md5, "s3cret", &old.nonce, 1);
        assert_eq!(
            auth.verify(&replay, "REGISTER", &password(), later),
            Verdict::Stale
        );
    }
}
