//! Lists that grow with the fleet (servers, SIP users, registrations, the audit log) are
//! filtered, sorted and paged by the store, never in the browser: a page carries its
//! [`PAGE_SIZE`] rows and the counts, whatever the account's size.
//!
//! What a list shows lives in the page's URL query (`/servers?zone=eu-london&page=3`), so a
//! view can be bookmarked, shared and reloaded, and Back and Forward move between views.
//! Reading a query never fails: a value that is not valid is kept as typed (it then
//! matches nothing, and the page shows the filter it was given), and a page number that is
//! not one gives the first page.

use serde::{Deserialize, Serialize};

/// Rows on one page of a list.
pub const PAGE_SIZE: u32 = 50;

/// One page of a list, with the counts the query found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paged<T> {
    pub rows: Vec<T>,
    /// Rows that match the filters, on every page.
    pub matched: u64,
    /// Rows in the list with no filter.
    pub total: u64,
    /// The page shown, from 1; a page past the last gives the last.
    pub page: u32,
}

impl<T> Paged<T> {
    /// The same page with each row turned into another type.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            rows: self.rows.into_iter().map(f).collect(),
            matched: self.matched,
            total: self.total,
            page: self.page,
        }
    }

    /// Pages the filtered rows fill; an empty list is one (empty) page.
    pub fn pages(&self) -> u32 {
        pages_for(self.matched)
    }

    /// "2 of 1,000 servers", or "1,000 servers" when nothing is filtered out; `one` and
    /// `many` are the noun for a total of one and for any other.
    pub fn count_text(&self, one: &str, many: &str) -> String {
        let noun = if self.total == 1 { one } else { many };
        if self.matched == self.total {
            format!("{} {noun}", thousands(self.total))
        } else {
            format!(
                "{} of {} {noun}",
                thousands(self.matched),
                thousands(self.total)
            )
        }
    }
}

/// Pages `matched` rows fill.
pub fn pages_for(matched: u64) -> u32 {
    (matched.div_ceil(u64::from(PAGE_SIZE)).max(1)).min(u64::from(u32::MAX)) as u32
}

/// The page to show of `matched` rows when `asked` was asked for: within 1..=last.
pub fn clamp_page(asked: u32, matched: u64) -> u32 {
    asked.clamp(1, pages_for(matched))
}

/// `12345` as "12,345".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A page number from the URL: anything but a whole number from 1 is the first page.
pub fn page_param(value: Option<&str>) -> u32 {
    value
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&p| p >= 1)
        .unwrap_or(1)
}

/// Builds `?key=value&…` from the pairs whose value is not empty (percent-encoded).
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if !value.is_empty() {
            out.append_pair(key, &value);
        }
    }
    let query = out.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

/// The order of the Servers list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServerSort {
    /// By address, numerically (127.0.1.9 before 127.0.1.10).
    #[default]
    Ip,
    Alias,
    /// By status, then address.
    Status,
    /// By the end of the paid or trial period, soonest first, then address.
    Expires,
}

impl ServerSort {
    pub const ALL: [ServerSort; 4] = [
        ServerSort::Ip,
        ServerSort::Alias,
        ServerSort::Status,
        ServerSort::Expires,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServerSort::Ip => "ip",
            ServerSort::Alias => "alias",
            ServerSort::Status => "status",
            ServerSort::Expires => "expires",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ServerSort::Ip => "IP",
            ServerSort::Alias => "Alias",
            ServerSort::Status => "Status",
            ServerSort::Expires => "Expires",
        }
    }

    /// An order from the URL; one this list does not know is the default.
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|sort| sort.as_str() == s)
            .unwrap_or_default()
    }
}

/// What the Servers list shows: its filters (empty: all), order and page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerQuery {
    /// A zone's name.
    pub zone: String,
    /// `dispatcher` or `switch`.
    pub kind: String,
    /// A cluster's name.
    pub cluster: String,
    /// A status's store spelling (`running`…).
    pub status: String,
    /// Text searched for in the servers' IP and alias.
    pub search: String,
    pub sort: ServerSort,
    /// From 1.
    pub page: u32,
}

/// Longest filter value kept from a URL; longer ones are cut.
const MAX_FILTER: usize = 100;

fn filter_value(value: Option<&str>) -> String {
    value
        .map(|v| v.trim().chars().take(MAX_FILTER).collect())
        .unwrap_or_default()
}

impl ServerQuery {
    /// The query in a URL, given how to read one of its parameters.
    pub fn from_params<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Self {
        ServerQuery {
            zone: filter_value(param("zone")),
            kind: filter_value(param("type")),
            cluster: filter_value(param("cluster")),
            status: filter_value(param("status")),
            search: filter_value(param("q")),
            sort: ServerSort::parse(param("sort").unwrap_or_default()),
            page: page_param(param("page")),
        }
    }

    /// The URL query that gives this view (`?zone=eu-london&page=3`); defaults are left out.
    pub fn to_query(&self) -> String {
        let sort = match self.sort {
            ServerSort::Ip => String::new(),
            other => other.as_str().to_string(),
        };
        let page = if self.page > 1 {
            self.page.to_string()
        } else {
            String::new()
        };
        query_string([
            ("zone", self.zone.clone()),
            ("type", self.kind.clone()),
            ("cluster", self.cluster.clone()),
            ("status", self.status.clone()),
            ("q", self.search.clone()),
            ("sort", sort),
            ("page", page),
        ])
    }

    /// The same view on another page.
    pub fn on_page(&self, page: u32) -> Self {
        ServerQuery {
            page,
            ..self.clone()
        }
    }

    /// Whether any filter narrows the list.
    pub fn is_filtered(&self) -> bool {
        !(self.zone.is_empty()
            && self.kind.is_empty()
            && self.cluster.is_empty()
            && self.status.is_empty()
            && self.search.is_empty())
    }
}

/// What a plain list (SIP users, registrations, the audit log) shows: a text search and a
/// page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    pub search: String,
    /// From 1.
    pub page: u32,
}

impl ListQuery {
    pub fn from_params<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Self {
        ListQuery {
            search: filter_value(param("q")),
            page: page_param(param("page")),
        }
    }

    pub fn to_query(&self) -> String {
        let page = if self.page > 1 {
            self.page.to_string()
        } else {
            String::new()
        };
        query_string([("q", self.search.clone()), ("page", page)])
    }

    pub fn on_page(&self, page: u32) -> Self {
        ListQuery {
            page,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(query: &[(&str, &str)]) -> ServerQuery {
        let map: HashMap<&str, &str> = query.iter().copied().collect();
        ServerQuery::from_params(|key| map.get(key).copied())
    }

    #[test]
    fn a_view_survives_its_url() {
        let view = ServerQuery {
            zone: "eu-london".into(),
            kind: "switch".into(),
            cluster: "core & edge".into(),
            status: "running".into(),
            search: "127.0.1".into(),
            sort: ServerSort::Expires,
            page: 3,
        };
        let query = view.to_query();
        assert_eq!(
            query,
            "?zone=eu-london&type=switch&cluster=core+%26+edge&status=running&q=127.0.1&sort=expires&page=3"
        );
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&query.as_bytes()[1..])
            .into_owned()
            .collect();
        let map: HashMap<&str, &str> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(ServerQuery::from_params(|key| map.get(key).copied()), view);
        assert_eq!(ServerQuery::default().to_query(), "");
        assert!(!view.on_page(1).to_query().contains("page"));
    }

    #[test]
    fn a_bad_page_is_the_first_and_a_bad_filter_is_kept_as_typed() {
        assert_eq!(parse(&[("page", "-1")]).page, 1);
        assert_eq!(parse(&[("page", "0")]).page, 1);
        assert_eq!(parse(&[("page", "two")]).page, 1);
        assert_eq!(parse(&[("page", "99999999999")]).page, 1);
        assert_eq!(parse(&[("page", "2")]).page, 2);
        assert_eq!(parse(&[("sort", "price")]).sort, ServerSort::Ip);
        let odd = parse(&[("zone", "<script>")]);
        assert_eq!(odd.zone, "<script>");
        assert!(odd.is_filtered());
        assert_eq!(parse(&[("q", &"x".repeat(500))]).search.len(), MAX_FILTER);
    }

    #[test]
    fn counts_and_pages() {
        assert_eq!(pages_for(0), 1);
        assert_eq!(pages_for(50), 1);
        assert_eq!(pages_for(51), 2);
        assert_eq!(clamp_page(9, 60), 2);
        assert_eq!(clamp_page(0, 60), 1);
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        let page = Paged::<u8> {
            rows: vec![],
            matched: 2,
            total: 1000,
            page: 1,
        };
        assert_eq!(page.count_text("server", "servers"), "2 of 1,000 servers");
        let all = Paged::<u8> {
            matched: 1000,
            ..page
        };
        assert_eq!(all.count_text("server", "servers"), "1,000 servers");
        let one = Paged::<u8> {
            rows: vec![],
            matched: 0,
            total: 1,
            page: 1,
        };
        assert_eq!(one.count_text("server", "servers"), "0 of 1 server");
    }
}
