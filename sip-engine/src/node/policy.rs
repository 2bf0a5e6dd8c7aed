//! What a node refuses by configuration, before it looks at what a request asks for.
//!
//! Checked after the transaction layer (a retransmission is answered from memory) and
//! before anything is routed: Restrict Direct, Interconnect, and a node that refuses new
//! calls (expired, or draining before an OS Cycle). OPTIONS (the health ping) and ACK
//! always pass.

use std::borrow::Cow;
use std::net::SocketAddr;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, StatusCode};

use crate::config::NodeConfig;

/// How long a refused caller is asked to wait before trying a refusing node again.
const REFUSING_RETRY_AFTER: &str = "300";

/// A refusal: the status, its reason phrase, and the headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: Cow<'static, str>,
    pub headers: Vec<Header>,
}

/// Why `config` refuses a request with `method` from `source`, if it does.
/// `is_sibling` says whether `source` is another server of the node's account; it is only
/// asked for a new INVITE from outside the cluster.
pub fn refusal(
    config: &NodeConfig,
    method: &Method,
    source: SocketAddr,
    is_sibling: impl FnOnce() -> bool,
) -> Option<Refusal> {
    if matches!(method, Method::Options | Method::Ack) {
        return None;
    }
    if config.restrict_direct && !config.allowed_sources.contains(&source.ip()) {
        return Some(Refusal {
            status: StatusCode::Forbidden,
            reason: Cow::Borrowed("Direct Requests Not Allowed"),
            headers: Vec::new(),
        });
    }
    if *method == Method::Invite
        && !config.interconnect
        && !config.cluster_peers.contains(&source.ip())
        && is_sibling()
    {
        return Some(Refusal {
            status: StatusCode::Forbidden,
            reason: Cow::Borrowed("Interconnect Disabled"),
            headers: Vec::new(),
        });
    }
    if let (Method::Invite, Some(why)) = (method, &config.refusing) {
        // The reason phrase says why (an expired server, a drain before a restart), so a
        // caller's logs tell it apart from a node at its limits.
        return Some(Refusal {
            status: StatusCode::ServiceUnavailable,
            reason: Cow::Owned(reason_phrase(why)),
            headers: vec![Header::RetryAfter(rsip::headers::RetryAfter::new(
                REFUSING_RETRY_AFTER,
            ))],
        });
    }
    None
}

/// `text` made fit for a reason phrase: one line of printable characters, never empty.
fn reason_phrase(text: &str) -> String {
    let phrase: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match phrase.trim() {
        "" => "Service Unavailable".to_string(),
        trimmed => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SocketAddr {
        "127.0.0.1:5099".parse().unwrap()
    }

    #[test]
    fn a_refusing_node_says_why_in_the_reason_phrase_and_still_answers_pings() {
        let config = NodeConfig {
            refusing: Some("draining before an OS Cycle".into()),
            ..NodeConfig::default()
        };
        let refused = refusal(&config, &Method::Invite, source(), || false).unwrap();
        assert_eq!(refused.status, StatusCode::ServiceUnavailable);
        assert_eq!(refused.reason, "draining before an OS Cycle");
        assert!(refusal(&config, &Method::Options, source(), || false).is_none());
        assert!(refusal(&config, &Method::Register, source(), || false).is_none());
        let odd = NodeConfig {
            refusing: Some("a\r\nb".into()),
            ..NodeConfig::default()
        };
        let refused = refusal(&odd, &Method::Invite, source(), || false).unwrap();
        assert_eq!(refused.reason, "a  b");
    }

    #[test]
    fn interconnect_is_only_asked_about_new_calls_from_outside_the_cluster() {
        let config = NodeConfig {
            cluster_peers: vec!["127.0.0.1".parse().unwrap()],
            ..NodeConfig::default()
        };
        assert!(refusal(&config, &Method::Invite, source(), || panic!("not asked")).is_none());
        let config = NodeConfig::default();
        let refused = refusal(&config, &Method::Invite, source(), || true).unwrap();
        assert_eq!(refused.reason, "Interconnect Disabled");
        assert!(refusal(&config, &Method::Bye, source(), || panic!("not asked")).is_none());
    }
}
