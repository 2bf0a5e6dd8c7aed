//! Bytes ↔ SIP messages.
//!
//! Parsing is `rsip`'s. A node must never fall over on input, so [`parse`] also turns a panic
//! inside the parser into an ordinary error: fuzzing rsip found none, but a node serving
//! thousands of phones must not depend on that staying true.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode};

/// Why a buffer is not a SIP message we can act on.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not valid UTF-8 in the start line or headers")]
    Encoding,
    #[error("malformed SIP message: {0}")]
    Syntax(String),
    #[error("the SIP parser failed on this input")]
    ParserPanic,
}

/// Parses one complete message (a datagram, or one frame cut from a TCP stream).
///
/// The message is cut into its start line, header lines and body here, by the grammar
/// rsip's own message parser follows (one space between the parts of a request line, a
/// header name of token characters right before its colon, no folded lines, the body
/// everything after the blank line); each part is then read with rsip (the URI with its
/// URI parser, each header into rsip's `Header` by its name). The result is what
/// `SipMessage::try_from` gives — a test holds the two to the same answers — at a fraction
/// of the cost: rsip's message parser tries alternatives whose failures each copy the rest
/// of the message into an error text, which made parsing a fifth of a registration's CPU.
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    // rsip works on text; a body may be binary, but the head must be UTF-8.
    let head_end = find_head_end(bytes).unwrap_or(bytes.len());
    if std::str::from_utf8(&bytes[..head_end]).is_err() {
        return Err(ParseError::Encoding);
    }
    match std::panic::catch_unwind(|| split_and_parse(bytes)) {
        Ok(Ok(message)) => Ok(message),
        Ok(Err(error)) => Err(ParseError::Syntax(error.to_string())),
        Err(_) => Err(ParseError::ParserPanic),
    }
}

fn syntax(what: &str) -> rsip::Error {
    rsip::Error::ParseError(format!("malformed {what}"))
}

/// The message as rsip's grammar cuts it, each part read with rsip.
fn split_and_parse(bytes: &[u8]) -> Result<SipMessage, rsip::Error> {
    let line_end = find_crlf(bytes).ok_or_else(|| syntax("start line"))?;
    let start = std::str::from_utf8(&bytes[..line_end]).map_err(|_| syntax("start line"))?;
    let rest = &bytes[line_end + 2..];
    // The head ends at the blank line; without one, rsip takes the next line as the only
    // header line and the rest as the body.
    let (raw_headers, body) = match find_blank_line(rest) {
        Some(at) => (&rest[..at], &rest[at + 4..]),
        None => {
            let at = find_crlf(rest).ok_or_else(|| syntax("headers"))?;
            (&rest[..at], &rest[at + 2..])
        }
    };
    let headers = parse_headers(raw_headers)?;
    if let Some(status) = start.strip_prefix("SIP/") {
        let (version, status) = status
            .split_once([' ', '\t'])
            .ok_or_else(|| syntax("status line"))?;
        let version = version_of(version)?;
        let status = status.trim_start_matches([' ', '\t']);
        let (code, reason) = match (status.get(..3), status.get(3..4), status.get(4..)) {
            (Some(code), Some(" "), Some(reason)) => (code, reason),
            _ => return Err(syntax("status line")),
        };
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax("status code"));
        }
        let code: u16 = code.parse().map_err(|_| syntax("status code"))?;
        let status_code = match StatusCode::from(code) {
            StatusCode::Other(code, _) => StatusCode::Other(code, reason.into()),
            known => known,
        };
        return Ok(SipMessage::Response(Response {
            version,
            status_code,
            headers,
            body: body.to_vec(),
        }));
    }
    let (method, after) = start
        .split_once(' ')
        .ok_or_else(|| syntax("request line"))?;
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(syntax("method"));
    }
    let method: Method = method.parse()?;
    // The URI ends where rsip's URI grammar ends (a user part may hold a space).
    let (left, uri) = rsip::common::uri::Tokenizer::<&[u8], u8>::tokenize(after.as_bytes())
        .map_err(|_| syntax("request URI"))?;
    let version = std::str::from_utf8(left)
        .ok()
        .and_then(|left| left.strip_prefix(" SIP/"))
        .ok_or_else(|| syntax("version"))?;
    Ok(SipMessage::Request(Request {
        method,
        uri: uri.try_into()?,
        version: version_of(version)?,
        headers,
        body: body.to_vec(),
    }))
}

/// `2.0` or `1.0` (what follows `SIP/`).
fn version_of(text: &str) -> Result<rsip::Version, rsip::Error> {
    let (major, minor) = text.split_once('.').ok_or_else(|| syntax("version"))?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(syntax("version"));
    }
    match major {
        "1" => Ok(rsip::Version::V1),
        "2" => Ok(rsip::Version::V2),
        _ => Err(syntax("version")),
    }
}

/// Header lines: `name: value`, the name all token characters up to the colon, spaces and
/// tabs after it skipped; each line becomes rsip's `Header` for that name.
fn parse_headers(raw: &[u8]) -> Result<Headers, rsip::Error> {
    let mut headers = Vec::new();
    if raw.is_empty() {
        return Ok(headers.into());
    }
    let mut rest = raw;
    while !rest.is_empty() {
        let (line, next) = match find_crlf(rest) {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| syntax("header line"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().copied().all(is_token_byte) {
            return Err(syntax("header name"));
        }
        let mut value = &line[colon + 1..];
        while let [b' ' | b'\t', rest @ ..] = value {
            value = rest;
        }
        let header = match common_header(name, value) {
            Some(header) => header,
            None => rsip::headers::header::Tokenizer { name, value }.try_into()?,
        };
        headers.push(header);
    }
    Ok(headers.into())
}

/// The `Header` rsip makes of the headers every REGISTER and most requests carry, made
/// directly: rsip's tokenizer checks the name against some fifty others one by one (Via
/// and To among the last) after checking again that the text is UTF-8. rsip maps a name
/// to its variant case-insensitively and keeps the value as it is; so does this. Anything
/// else is `None`, for rsip.
fn common_header(name: &[u8], value: &[u8]) -> Option<Header> {
    use rsip::headers as h;
    let value = std::str::from_utf8(value).ok()?.to_string();
    let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
    Some(match name.len() {
        2 if is("To") => Header::To(h::To::new(value)),
        3 if is("Via") => Header::Via(h::Via::new(value)),
        4 if is("From") => Header::From(h::From::new(value)),
        4 if is("CSeq") => Header::CSeq(h::CSeq::new(value)),
        7 if is("Call-ID") => Header::CallId(h::CallId::new(value)),
        7 if is("Contact") => Header::Contact(h::Contact::new(value)),
        7 if is("Expires") => Header::Expires(h::Expires::new(value)),
        10 if is("User-Agent") => Header::UserAgent(h::UserAgent::new(value)),
        12 if is("Max-Forwards") => Header::MaxForwards(h::MaxForwards::new(value)),
        13 if is("Authorization") => Header::Authorization(h::Authorization::new(value)),
        14 if is("Content-Length") => Header::ContentLength(h::ContentLength::new(value)),
        _ => return None,
    })
}

/// A token character (RFC 3261 §25.1), as rsip's grammar has it.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Where the first `\r\n` starts. A search for `\r` alone: `memmem::find` builds a searcher
/// for its needle on every call, which cost more than the search itself on header lines
/// of a few dozen bytes.
fn find_crlf(haystack: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'\r', &haystack[from..]) {
        let at = from + at;
        if haystack.get(at + 1) == Some(&b'\n') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Where the first `\r\n\r\n` starts, with a searcher built once for the process.
fn find_blank_line(haystack: &[u8]) -> Option<usize> {
    static BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    BLANK_LINE.find(haystack)
}

/// Offset of the blank line that ends the head, counting the `\r\n\r\n` itself.
pub fn find_head_end(bytes: &[u8]) -> Option<usize> {
    find_blank_line(bytes).map(|at| at + 4)
}

/// The headers a response copies from its request (RFC 3261 §8.2.6.2), taken from raw text
/// when rsip could not parse the request, so that a broken request can still get its 400.
///
/// Returns `None` when the text does not look like a request carrying those headers: such
/// input is dropped, since there is nobody identifiable to answer.
pub fn salvage_request_headers(bytes: &[u8]) -> Option<Headers> {
    let head_end = find_head_end(bytes).unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = text.split("\r\n");
    let start = lines.next()?;
    // A response (or junk that is not a request line) is never answered.
    if start.starts_with("SIP/") || start.split(' ').count() != 3 || !start.ends_with("SIP/2.0") {
        return None;
    }
    let mut headers = Headers::default();
    let (mut via, mut from, mut to, mut call_id, mut cseq) = (false, false, false, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() || value.len() > 1024 {
            continue;
        }
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => {
                via = true;
                headers.push(Header::Via(rsip::headers::Via::new(value)));
            }
            "from" | "f" if !from => {
                from = true;
                headers.push(Header::From(rsip::headers::From::new(value)));
            }
            "to" | "t" if !to => {
                to = true;
                headers.push(Header::To(rsip::headers::To::new(value)));
            }
            "call-id" | "i" if !call_id => {
                call_id = true;
                headers.push(Header::CallId(rsip::headers::CallId::new(value)));
            }
            "cseq" if !cseq => {
                cseq = true;
                headers.push(Header::CSeq(rsip::headers::CSeq::new(value)));
            }
            _ => {}
        }
    }
    (via && from && to && call_id && cseq).then_some(headers)
}

/// The request line's method token, even when rsip does not know the method (extension
/// methods get 501, not 400).
pub fn request_method_token(bytes: &[u8]) -> Option<&str> {
    let line_end = bytes.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&bytes[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let _uri = parts.next()?;
    (parts.next()? == "SIP/2.0" && parts.next().is_none()).then_some(method)
}

/// True when `token` is an RFC 3261 token (the grammar a method name must follow).
pub fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// The reason phrase of a response's status line, as the sender wrote it (rsip keeps only
/// the code): a proxy relays it unchanged.
pub fn reason_phrase(bytes: &[u8]) -> Option<&str> {
    let line_end = bytes.iter().position(|b| *b == b'\r' || *b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let (version, code) = (parts.next()?, parts.next()?);
    let reason = parts.next()?.trim();
    let valid = version.eq_ignore_ascii_case("SIP/2.0")
        && code.len() == 3
        && !reason.is_empty()
        && !reason.chars().any(char::is_control);
    valid.then_some(reason)
}

/// The bytes of `response`, with `reason` as its reason phrase when given (else the
/// standard one). Written into one buffer sized up front: rsip's `Display` makes a string
/// per header and joins them, which showed as a fifth of a registrar's time under load.
pub fn encode_response(response: &Response, reason: Option<&str>) -> Vec<u8> {
    let mut out = String::with_capacity(estimate(&response.headers, response.body.len()));
    match reason {
        Some(reason) => {
            let _ = write!(out, "SIP/2.0 {} {reason}\r\n", response.status_code.code());
        }
        None => {
            let _ = write!(out, "{} {}\r\n", response.version, response.status_code);
        }
    }
    finish(out, &response.headers, &response.body)
}

/// The bytes of `request`, written as [`encode_response`] writes a response.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = String::with_capacity(estimate(&request.headers, request.body.len()));
    let _ = write!(
        out,
        "{} {} {}\r\n",
        request.method, request.uri, request.version
    );
    finish(out, &request.headers, &request.body)
}

/// Room for the status or request line, the headers (a generous 64 bytes each) and the body.
fn estimate(headers: &Headers, body: usize) -> usize {
    128 + headers.iter().count() * 64 + body
}

fn finish(mut out: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    for header in headers.iter() {
        let _ = write!(out, "{header}\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The bytes of the response to a request whose headers are `request_headers`: exactly
/// what [`encode_response`] makes of the response built from them (a test holds the two to
/// the same bytes), written straight from the request's headers. A node answers every
/// request it serves itself this way; building the response first copied each header it
/// echoes only to print it once.
pub fn encode_response_to<'h>(
    request_headers: &Headers,
    status: StatusCode,
    reason: Option<&str>,
    source: SocketAddr,
    to_tag: &str,
    extra: impl IntoIterator<Item = &'h Header>,
) -> Vec<u8> {
    let mut out = String::with_capacity(estimate(request_headers, 0) + 256);
    match reason {
        Some(reason) => {
            let _ = write!(out, "SIP/2.0 {} {reason}\r\n", status.code());
        }
        None => {
            let _ = write!(out, "{} {status}\r\n", rsip::Version::V2);
        }
    }
    // The echoed headers under the names rsip prints them with (a test holds the two
    // writers to the same bytes), pushed as text rather than through `Display`.
    fn line(out: &mut String, name: &str, value: &str) {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
    }
    let mut top_via = true;
    for header in request_headers.iter() {
        match header {
            Header::Via(via) if top_via => {
                top_via = false;
                line(&mut out, "Via", "");
                push_stamped_via(&mut out, via.value(), source);
            }
            Header::Via(via) => line(&mut out, "Via", via.value()),
            Header::From(from) => line(&mut out, "From", from.value()),
            Header::CallId(id) => line(&mut out, "Call-ID", id.value()),
            Header::CSeq(cseq) => line(&mut out, "CSeq", cseq.value()),
            Header::To(to) => {
                let value = to.value();
                line(&mut out, "To", value);
                if !(has_param(value, "tag") || status == StatusCode::Trying) {
                    out.push_str(";tag=");
                    out.push_str(to_tag);
                }
            }
            _ => continue,
        }
        out.push_str("\r\n");
    }
    for header in extra {
        let _ = write!(out, "{header}\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// Builds a response to a request whose headers are `request_headers`: Via (all, with
/// `received`/`rport` filled in on the top one), From, To (tagged when the request's To
/// was not), Call-ID and CSeq, then `extra`. The node writes its responses with
/// [`encode_response_to`]; this plain construction is what the tests hold that to.
#[cfg(test)]
pub fn response_to(
    request_headers: &Headers,
    status: StatusCode,
    source: SocketAddr,
    to_tag: &str,
    extra: Vec<Header>,
) -> Response {
    let mut headers = Headers::default();
    let mut top_via = true;
    for header in request_headers.iter() {
        match header {
            Header::Via(via) if top_via => {
                top_via = false;
                headers.push(Header::Via(rsip::headers::Via::new(stamp_via(
                    via.value(),
                    source,
                ))));
            }
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::To(to) => {
                let value = to.value();
                if has_param(value, "tag") || status == StatusCode::Trying {
                    headers.push(header.clone());
                } else {
                    headers.push(Header::To(rsip::headers::To::new(format!(
                        "{value};tag={to_tag}"
                    ))));
                }
            }
            _ => {}
        }
    }
    for header in extra {
        headers.push(header);
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Response {
        status_code: status,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Adds `received` when the packet came from another address than the Via names, and fills
/// an empty `rport` with the source port (RFC 3261 §18.2.1, RFC 3581 §4).
pub fn stamp_via(value: &str, source: SocketAddr) -> String {
    let mut out = String::with_capacity(value.len() + 40);
    push_stamped_via(&mut out, value, source);
    out
}

/// Appends [`stamp_via`]`(value, source)` to `out`, without a string of its own: every
/// response a node sends stamps one Via.
fn push_stamped_via(out: &mut String, value: &str, source: SocketAddr) {
    let mut parts = value.split(';');
    let sent = parts.next().unwrap_or_default();
    let sent_host = sent
        .split_whitespace()
        .nth(1)
        .map(host_of_sent_by)
        .unwrap_or_default();
    out.push_str(sent);
    let mut saw_rport = false;
    for param in parts {
        let param = param.trim();
        let name = param.split('=').next().unwrap_or_default();
        if name.eq_ignore_ascii_case("rport") {
            saw_rport = true;
            let _ = write!(out, ";rport={}", source.port());
        } else if !name.eq_ignore_ascii_case("received") {
            out.push(';');
            out.push_str(param);
        }
    }
    if saw_rport || sent_host.parse::<IpAddr>().ok() != Some(source.ip()) {
        let _ = write!(out, ";received={}", source.ip());
    }
}

/// Where a response to a request that arrived over UDP goes: always the source IP (the
/// `received` rule), at the source port when the client asked for `rport`, else at the port
/// its Via names (5060 when it names none). Never anywhere a packet did not come from.
pub fn udp_response_target(request_headers: &Headers, source: SocketAddr) -> SocketAddr {
    let Some(top) = request_headers.iter().find_map(|h| match h {
        Header::Via(via) => Some(via.value()),
        _ => None,
    }) else {
        return source;
    };
    let mut parts = top.split(';');
    let sent_by = parts.next().unwrap_or_default();
    if parts.any(|p| {
        p.trim()
            .as_bytes()
            .get(..5)
            .is_some_and(|name| name.eq_ignore_ascii_case(b"rport"))
    }) {
        return source;
    }
    let port = sent_by
        .split_whitespace()
        .nth(1)
        .and_then(port_of_sent_by)
        .unwrap_or(5060);
    SocketAddr::new(source.ip(), port)
}

fn host_of_sent_by(sent_by: &str) -> &str {
    if let Some(rest) = sent_by.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    sent_by.split(':').next().unwrap_or_default()
}

fn port_of_sent_by(sent_by: &str) -> Option<u16> {
    let after_host = match sent_by.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.1,
        None => sent_by.split_once(':').map(|(_, p)| p).map_or("", |p| p),
    };
    after_host.trim_start_matches(':').parse().ok()
}

fn has_param(value: &str, name: &str) -> bool {
    value.split(';').skip(1).any(|p| {
        p.trim()
            .split('=')
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

/// The header parameters (`;name=value`) of a name-addr header value such as From, To,
/// Contact or Via. Semicolons inside `<...>` belong to the URI and inside quotes to the display
/// name, so they are skipped; a parameter without `=` has the empty value.
pub fn header_params(value: &str) -> Vec<(&str, &str)> {
    let mut params = Vec::new();
    scan_params(value, |name, value| {
        params.push((name, value));
        false
    });
    params
}

/// Hands each header parameter of `value` (as [`header_params`] reads them) to `found`,
/// until it returns true; returns that parameter. No list is built: the getters of the
/// hot path (a Via's branch, a To's tag) ask for one parameter of every request.
fn scan_params<'a>(
    value: &'a str,
    mut found: impl FnMut(&'a str, &'a str) -> bool,
) -> Option<(&'a str, &'a str)> {
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    let mut start: Option<usize> = None;
    for (at, &b) in value.as_bytes().iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quotes => escaped = true,
            b'"' if !in_angle => in_quotes = !in_quotes,
            b'<' if !in_quotes => in_angle = true,
            b'>' if !in_quotes => in_angle = false,
            b';' if !in_quotes && !in_angle => {
                if let Some(from) = start {
                    let (name, param) = split_param(&value[from..at]);
                    if found(name, param) {
                        return Some((name, param));
                    }
                }
                start = Some(at + 1);
            }
            _ => {}
        }
    }
    let (name, param) = split_param(&value[start?..]);
    found(name, param).then_some((name, param))
}

fn split_param(segment: &str) -> (&str, &str) {
    match segment.split_once('=') {
        Some((name, value)) => (name.trim(), value.trim().trim_matches('"')),
        None => (segment.trim(), ""),
    }
}

/// The value of the header parameter `name` (case-insensitive), if present.
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    scan_params(value, |n, _| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// Splits a header value that may hold a comma-separated list (Contact, Via), leaving commas
/// inside quotes and `<...>` alone.
pub fn split_header_list(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (at, &b) in value.as_bytes().iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quotes => escaped = true,
            b'"' if !in_angle => in_quotes = !in_quotes,
            b'<' if !in_quotes => in_angle = true,
            b'>' if !in_quotes => in_angle = false,
            b',' if !in_quotes && !in_angle => {
                items.push(value[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items.retain(|item| !item.is_empty());
    items
}

/// The methods of RFC 3261 and its extensions that rsip names; any of them that a node does
/// not serve gets 405 with `Allow`, anything else 501.
pub fn is_known_method(token: &str) -> bool {
    Method::all().iter().any(|m| m.to_string() == token)
}

/// A request, the headers a response needs, and where it came from.
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    pub source: SocketAddr,
}

/// The URI of a name-addr or addr-spec header value.
pub fn uri_of(value: &str) -> Option<&str> {
    match value.find('<') {
        Some(open) => {
            let rest = &value[open + 1..];
            Some(rest[..rest.find('>')?].trim())
        }
        None => value.split(';').next().map(str::trim),
    }
}

/// The Call-ID of a message.
pub fn call_id(headers: &Headers) -> Option<&str> {
    headers.iter().find_map(|h| match h {
        Header::CallId(id) => Some(id.value()),
        _ => None,
    })
}

/// The `tag` of the To header: present once a dialog exists (RFC 3261 §12).
pub fn to_tag(headers: &Headers) -> Option<&str> {
    headers.iter().find_map(|h| match h {
        Header::To(to) => header_param(to.value(), "tag"),
        _ => None,
    })
}

/// The number of a CSeq header's value (`"42 INVITE"`).
pub fn cseq_number(value: &str) -> Option<u32> {
    value.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddr {
        "127.0.0.9:40000".parse().unwrap()
    }

    #[test]
    fn messages_are_encoded_as_rsip_writes_them_with_an_optional_reason() {
        let text = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 4\r\n\r\nv=0\n";
        let Ok(SipMessage::Request(request)) = parse(text.as_bytes()) else {
            panic!("parses");
        };
        assert_eq!(encode_request(&request), request.to_string().into_bytes());
        let response = response_to(&request.headers, StatusCode::BusyHere, src(), "t", vec![]);
        let standard = encode_response(&response, None);
        assert_eq!(standard, response.to_string().into_bytes());
        let own = String::from_utf8(encode_response(&response, Some("Busy Elsewhere"))).unwrap();
        assert!(
            own.starts_with("SIP/2.0 486 Busy Elsewhere\r\nVia: "),
            "{own}"
        );
        assert!(own.ends_with("Content-Length: 0\r\n\r\n"), "{own}");
    }

    #[test]
    fn a_response_written_from_its_request_is_the_one_built_and_encoded() {
        let requests = [
            "REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\r\nFrom: <sip:a@h>;tag=f\r\nTo: <sip:a@h>\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\nContact: <sip:a@10.0.0.1>\r\nContent-Length: 0\r\n\r\n",
            "INVITE sip:b@h SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK2\r\nf: \"A\" <sip:a@h>;tag=f\r\nt: <sip:b@h>;tag=t\r\ni: c2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ];
        let extra = vec![
            Header::Server(rsip::headers::Server::new("sipfleet/test")),
            Header::Date(rsip::headers::Date::new("Sun, 06 Nov 1994 08:49:37 GMT")),
        ];
        for text in requests {
            let Ok(SipMessage::Request(request)) = parse(text.as_bytes()) else {
                panic!("{text}");
            };
            for status in [StatusCode::Trying, StatusCode::OK, StatusCode::Unauthorized] {
                for reason in [None, Some("Because")] {
                    let built =
                        response_to(&request.headers, status.clone(), src(), "tt", extra.clone());
                    assert_eq!(
                        String::from_utf8(encode_response_to(
                            &request.headers,
                            status.clone(),
                            reason,
                            src(),
                            "tt",
                            &extra
                        ))
                        .unwrap(),
                        String::from_utf8(encode_response(&built, reason)).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn rport_is_filled_and_received_added() {
        let out = stamp_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport", src());
        assert_eq!(
            out,
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=40000;received=127.0.0.9"
        );
    }

    #[test]
    fn received_is_left_out_when_the_via_names_the_source() {
        let out = stamp_via("SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK1", src());
        assert_eq!(out, "SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK1");
    }

    #[test]
    fn udp_responses_go_to_the_source_ip_at_the_via_port_without_rport() {
        let req = b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP example.com:5070;branch=z9hG4bKx\r\nFrom: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let headers = salvage_request_headers(req).unwrap();
        assert_eq!(
            udp_response_target(&headers, src()),
            "127.0.0.9:5070".parse().unwrap()
        );
    }

    #[test]
    fn extension_methods_are_tokens_but_not_known() {
        assert!(is_token("FOO") && !is_known_method("FOO"));
        assert!(is_known_method("OPTIONS") && is_known_method("INVITE"));
        assert!(!is_token("FO O"));
    }

    #[test]
    fn header_params_skip_semicolons_and_commas_inside_uris_and_quotes() {
        let value = r#""a;b" <sip:x@h;transport=tcp>;expires=60;tag="q;r";lr"#;
        assert_eq!(
            header_params(value),
            [("expires", "60"), ("tag", "q;r"), ("lr", "")]
        );
        assert_eq!(header_param(value, "EXPIRES"), Some("60"));
        assert_eq!(header_param(value, "transport"), None);
        let list = r#""x, y" <sip:a@h>;expires=1, <sip:b@h;p=1,2>, sip:c@h"#;
        assert_eq!(
            split_header_list(list),
            [
                r#""x, y" <sip:a@h>;expires=1"#,
                "<sip:b@h;p=1,2>",
                "sip:c@h"
            ]
        );
    }

    #[test]
    fn salvage_refuses_responses_and_junk() {
        assert!(salvage_request_headers(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n").is_none());
        assert!(salvage_request_headers(b"\x00\x01garbage").is_none());
    }

    /// What rsip's own message parser makes of `bytes`, for comparison.
    fn by_rsip(bytes: &[u8]) -> Option<SipMessage> {
        SipMessage::try_from(bytes).ok()
    }

    const SAMPLES: &[&str] = &[
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: a@b\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@10.0.0.1:5060>;expires=600\r\nAuthorization: Digest username=\"alice\", realm=\"x\", nonce=\"n\", uri=\"sip:x\", response=\"r\"\r\nUser-Agent: test\r\nContent-Length: 0\r\n\r\n",
        "INVITE sip:bob@127.0.0.1:5070;transport=udp SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK2\r\nf: <sip:a@h>;tag=x\r\nt: <sip:b@h>\r\ni: c\r\nCSeq: 2 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        "SIP/2.0 599 Something New\r\nCall-ID: c\r\n\r\n",
        "SIP/2.0\t486 Busy Here\r\nCall-ID: c\r\n\r\n",
        "SIP/2.0  180 Ringing\r\nCall-ID: c\r\n\r\n",
        "SIP/2.0 200\r\nCall-ID: c\r\n\r\n",
        "SIP/3.0 200 OK\r\nCall-ID: c\r\n\r\n",
        "OPTIONS sip:a SIP/2.0\r\n\r\n",
        "OPTIONS sip:a SIP/2.0\r\nCall-ID: c\r\nX-Empty:\r\nX-Tab:\t v \r\n\r\nbody\r\n\r\nmore",
        "OPTIONS sip:a SIP/2.0\r\nMax-Forwards 70\r\n\r\n",
        "OPTIONS sip:a SIP/2.0\r\nVia : x\r\n\r\n",
        "OPTIONS sip:a SIP/2.0\r\nVia: x\r\n folded\r\n\r\n",
        "OPTIONS sip:a SIP/2.0\r\nCall-ID: c\r\n",
        "OPTIONS sip:a SIP/2.0\r\nCall-ID: c",
        "OPTIONS sip:a SIP/2.0",
        "OPTIONS  sip:a SIP/2.0\r\n\r\n",
        "OPTIONS sip:a b SIP/2.0\r\n\r\n",
        "OPTIONS sip:a SIP/2.0 \r\n\r\n",
        "OPTIONS sip:a SIP/2.x\r\n\r\n",
        "options sip:a SIP/2.0\r\n\r\n",
        "FROBNICATE sip:a SIP/2.0\r\n\r\n",
        "OPTIONS tel:+15551230001 SIP/2.0\r\n\r\n",
        "OPTIONS sips:[::1]:5061;lr SIP/2.0\r\n\r\n",
        "OPTIONS sip:a@ SIP/2.0\r\n\r\n",
        "OPTIONS sip:a;x=\"y SIP/2.0\r\n\r\n",
        "ACK sip:a SIP/1.0\r\nCall-ID: c\r\n\r\n",
        "\r\n\r\n",
        "",
        "SIP/2.0 200 OK",
        "REGISTER sip:h SIP/2.0\r\nVIA: SIP/2.0/UDP h;branch=z9hG4bK4\r\nfrom: <sip:a@h>;tag=1\r\nTO: <sip:a@h>\r\ncall-id: c\r\ncseq: 1 REGISTER\r\ncontact: *\r\nEXPIRES: 0\r\nuser-agent: x\r\nmax-forwards: 70\r\nauthorization: Digest x\r\ncontent-length: 0\r\nCall-Info: i\r\nTos: x\r\nVias: x\r\n\r\n",
    ];

    #[test]
    fn the_head_is_cut_as_rsip_cuts_it_and_read_into_the_same_message() {
        for sample in SAMPLES {
            let ours = parse(sample.as_bytes()).ok();
            assert_eq!(ours, by_rsip(sample.as_bytes()), "{sample:?}");
        }
    }

    #[test]
    fn mutated_messages_get_the_same_answer_from_both_parsers() {
        use rand::{Rng, SeedableRng};
        // A fixed seed: the same 20,000 mutations every run.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3261);
        let alphabet = b" :;\r\n\t<>@/.\"=,0123456789SIPsipaZ-";
        for n in 0..20_000 {
            let mut bytes = SAMPLES[n % 10].as_bytes().to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len().max(1));
                match rng.random_range(0..3) {
                    0 => bytes[at] = alphabet[rng.random_range(0..alphabet.len())],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                }
            }
            let ours = parse(&bytes).ok();
            assert_eq!(
                ours,
                by_rsip(&bytes),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
