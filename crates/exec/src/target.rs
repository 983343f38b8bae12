//! Target specs: a comma list of `local`, `agent:HOSTNAME`, `agent:*` and
//! `ssh://user@host[:port]` (port 22 by default, IPv6 addresses in brackets), optionally ending
//! with `cmdb:EXPR` — the hosts of the run's environment a CMDB query selects
//! (`cmdb:module = "行情网关" and os ~ "CentOS"`). The query is the last item: it runs to the end
//! of the spec, commas included.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

/// Where a task runs.
///
/// Serialized as its spec item string (`"agent:web-01"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TargetRef {
    /// The server's own host.
    Local,
    /// One agent, by the hostname it enrolled with.
    Agent(String),
    /// Every connected agent of the run's environment.
    AllAgents,
    /// Agentless SSH. `host` holds an IPv6 address without brackets.
    Ssh {
        user: String,
        host: String,
        port: u16,
    },
    /// The host instances of the run's environment a CMDB query selects (syntax checked;
    /// the query text as written, trimmed).
    Cmdb(String),
}

impl TargetRef {
    pub fn agent(hostname: impl Into<String>) -> TargetRef {
        TargetRef::Agent(hostname.into())
    }

    pub fn ssh(user: impl Into<String>, host: impl Into<String>, port: u16) -> TargetRef {
        TargetRef::Ssh {
            user: user.into(),
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetRef::Local => f.write_str("local"),
            TargetRef::Agent(hostname) => write!(f, "agent:{hostname}"),
            TargetRef::AllAgents => f.write_str("agent:*"),
            TargetRef::Cmdb(q) => write!(f, "cmdb:{q}"),
            TargetRef::Ssh { user, host, port } => {
                if host.contains(':') {
                    write!(f, "ssh://{user}@[{host}]:{port}")
                } else {
                    write!(f, "ssh://{user}@{host}:{port}")
                }
            }
        }
    }
}

impl From<TargetRef> for String {
    fn from(t: TargetRef) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for TargetRef {
    type Error = TargetError;
    fn try_from(s: String) -> Result<TargetRef, TargetError> {
        let item = s.trim();
        if let Some(q) = item.strip_prefix("cmdb:") {
            return parse_query(q).map_err(|e| e.at(1, item));
        }
        parse_item(item).map_err(|reason| TargetError::new(1, item, reason))
    }
}

impl std::str::FromStr for TargetRef {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<TargetRef, TargetError> {
        TargetRef::try_from(s.to_string())
    }
}

/// Why a target spec was refused: `position` is the 1-based item number (0 for the whole spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.message_en())]
pub struct TargetError {
    pub position: usize,
    pub item: String,
    pub reason: TargetProblem,
    /// For a CMDB query: the parser's message (Chinese, English), naming the column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<[String; 2]>,
}

/// A problem before its position is known.
struct Problem {
    reason: TargetProblem,
    detail: Option<[String; 2]>,
}

impl Problem {
    fn at(self, position: usize, item: &str) -> TargetError {
        TargetError {
            position,
            item: item.to_string(),
            reason: self.reason,
            detail: self.detail,
        }
    }
}

impl TargetError {
    fn new(position: usize, item: &str, reason: TargetProblem) -> TargetError {
        TargetError {
            position,
            item: item.to_string(),
            reason,
            detail: None,
        }
    }
}

fn parse_query(q: &str) -> Result<TargetRef, Problem> {
    use ballast_cmdb::Msg;
    let q = q.trim();
    if q.is_empty() {
        return Err(Problem {
            reason: TargetProblem::EmptyQuery,
            detail: None,
        });
    }
    match ballast_cmdb::Query::parse(q) {
        Ok(_) => Ok(TargetRef::Cmdb(q.to_string())),
        Err(e) => Err(Problem {
            reason: TargetProblem::BadQuery,
            detail: Some([e.message_zh(), e.message_en()]),
        }),
    }
}

/// The kinds of target-spec problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetProblem {
    Empty,
    EmptyItem,
    UnknownScheme,
    BadHostname,
    BadUser,
    BadPort,
    BadIpv6,
    EmptyQuery,
    BadQuery,
}

impl fmt::Display for TargetProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message_en())
    }
}

impl TargetProblem {
    pub fn message_en(self) -> &'static str {
        match self {
            TargetProblem::Empty => "no target given",
            TargetProblem::EmptyItem => "empty item between commas",
            TargetProblem::UnknownScheme => {
                "expected local, agent:HOSTNAME, agent:*, ssh://user@host[:port] or cmdb:QUERY"
            }
            TargetProblem::BadHostname => "invalid host name",
            TargetProblem::BadUser => "invalid or missing user name (ssh://user@host)",
            TargetProblem::BadPort => "port must be a number from 1 to 65535",
            TargetProblem::BadIpv6 => "invalid IPv6 address (write it in brackets: [::1])",
            TargetProblem::EmptyQuery => "cmdb: needs a query (cmdb:module = \"行情网关\")",
            TargetProblem::BadQuery => "invalid CMDB query",
        }
    }

    pub fn message_zh(self) -> &'static str {
        match self {
            TargetProblem::Empty => "未指定目标",
            TargetProblem::EmptyItem => "逗号之间为空",
            TargetProblem::UnknownScheme => {
                "应为 local、agent:主机名、agent:*、ssh://用户@主机[:端口] 或 cmdb:查询语句"
            }
            TargetProblem::BadHostname => "主机名无效",
            TargetProblem::BadUser => "用户名无效或缺失（ssh://用户@主机）",
            TargetProblem::BadPort => "端口必须是 1 到 65535 之间的数字",
            TargetProblem::BadIpv6 => "IPv6 地址无效（需写在方括号中，如 [::1]）",
            TargetProblem::EmptyQuery => "cmdb: 后需要查询语句（cmdb:module = \"行情网关\"）",
            TargetProblem::BadQuery => "CMDB 查询语句无效",
        }
    }
}

impl TargetError {
    pub fn code(&self) -> &'static str {
        "exec.target_invalid"
    }
    pub fn message_en(&self) -> String {
        let detail = self
            .detail
            .as_ref()
            .map(|[_, en]| format!(": {en}"))
            .unwrap_or_default();
        if self.position == 0 {
            format!("target spec: {}{detail}", self.reason.message_en())
        } else {
            format!(
                "target {} `{}`: {}{detail}",
                self.position,
                self.item,
                self.reason.message_en()
            )
        }
    }
    pub fn message_zh(&self) -> String {
        let detail = self
            .detail
            .as_ref()
            .map(|[zh, _]| format!("：{zh}"))
            .unwrap_or_default();
        if self.position == 0 {
            format!("目标：{}{detail}", self.reason.message_zh())
        } else {
            format!(
                "第 {} 个目标“{}”：{}{detail}",
                self.position,
                self.item,
                self.reason.message_zh()
            )
        }
    }
}

/// A DNS-style host name (or IPv4 address): 1–253 characters of letters, digits, `-`, `.`, `_`,
/// not starting with `-` or `.`.
pub fn is_valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn is_valid_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn parse_item(item: &str) -> Result<TargetRef, TargetProblem> {
    if item == "local" {
        return Ok(TargetRef::Local);
    }
    if let Some(name) = item.strip_prefix("agent:") {
        if name == "*" {
            return Ok(TargetRef::AllAgents);
        }
        if !is_valid_hostname(name) {
            return Err(TargetProblem::BadHostname);
        }
        return Ok(TargetRef::agent(name));
    }
    if let Some(rest) = item.strip_prefix("ssh://") {
        let (user, hostport) = rest.split_once('@').ok_or(TargetProblem::BadUser)?;
        if !is_valid_user(user) {
            return Err(TargetProblem::BadUser);
        }
        let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
            let (addr, tail) = after.split_once(']').ok_or(TargetProblem::BadIpv6)?;
            if addr.parse::<Ipv6Addr>().is_err() {
                return Err(TargetProblem::BadIpv6);
            }
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or(TargetProblem::BadPort)?),
            };
            (addr, port)
        } else if hostport.matches(':').count() > 1 {
            return Err(TargetProblem::BadIpv6);
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !host.contains(':') && !is_valid_hostname(host) {
            return Err(TargetProblem::BadHostname);
        }
        let port = match port {
            None => 22,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(TargetProblem::BadPort);
                }
                match p.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(TargetProblem::BadPort),
                }
            }
        };
        return Ok(TargetRef::ssh(user, host, port));
    }
    Err(TargetProblem::UnknownScheme)
}

/// Parses a target spec. Items are trimmed; duplicates are dropped, keeping the first; an empty
/// spec or item is an error naming its position.
pub fn parse_targets(spec: &str) -> Result<Vec<TargetRef>, TargetError> {
    if spec.trim().is_empty() {
        return Err(TargetError::new(0, "", TargetProblem::Empty));
    }
    let mut out: Vec<TargetRef> = Vec::new();
    let mut position = 0;
    let mut rest = Some(spec);
    while let Some(r) = rest {
        position += 1;
        let (raw, tail) = if r.trim_start().starts_with("cmdb:") {
            // A CMDB query runs to the end of the spec.
            (r, None)
        } else {
            match r.split_once(',') {
                Some((raw, tail)) => (raw, Some(tail)),
                None => (r, None),
            }
        };
        let item = raw.trim();
        if item.is_empty() {
            return Err(TargetError::new(position, "", TargetProblem::EmptyItem));
        }
        let target = match item.strip_prefix("cmdb:") {
            Some(q) => parse_query(q).map_err(|e| e.at(position, item))?,
            None => parse_item(item).map_err(|reason| TargetError::new(position, item, reason))?,
        };
        if !out.contains(&target) {
            out.push(target);
        }
        rest = tail;
    }
    Ok(out)
}

/// Renders a list back to a spec (`parse_targets(&format_targets(x)) == x` for a duplicate-free list).
pub fn format_targets(targets: &[TargetRef]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_kind() {
        let t = parse_targets("local, agent:web-01 ,agent:*,ssh://ops@db1.example:2222,ssh://root@10.0.0.5,ssh://u@[::1]:2200,ssh://u@[fe80::1]").unwrap();
        assert_eq!(
            t,
            vec![
                TargetRef::Local,
                TargetRef::agent("web-01"),
                TargetRef::AllAgents,
                TargetRef::ssh("ops", "db1.example", 2222),
                TargetRef::ssh("root", "10.0.0.5", 22),
                TargetRef::ssh("u", "::1", 2200),
                TargetRef::ssh("u", "fe80::1", 22),
            ]
        );
        assert_eq!(
            format_targets(&t),
            "local,agent:web-01,agent:*,ssh://ops@db1.example:2222,ssh://root@10.0.0.5:22,ssh://u@[::1]:2200,ssh://u@[fe80::1]:22"
        );
    }

    #[test]
    fn serde_uses_the_spec_string() {
        let t = TargetRef::ssh("u", "::1", 22);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"ssh://u@[::1]:22\"");
        assert_eq!(serde_json::from_str::<TargetRef>(&json).unwrap(), t);
        assert!(serde_json::from_str::<TargetRef>("\"nope\"").is_err());
    }

    #[test]
    fn duplicates_are_dropped_keeping_order() {
        let t = parse_targets("agent:b,local,agent:b,ssh://u@h,ssh://u@h:22").unwrap();
        assert_eq!(
            t,
            vec![
                TargetRef::agent("b"),
                TargetRef::Local,
                TargetRef::ssh("u", "h", 22)
            ]
        );
    }

    #[test]
    fn errors_name_position_and_item() {
        let cases = [
            ("", 0, TargetProblem::Empty),
            ("  ", 0, TargetProblem::Empty),
            ("local,,agent:x", 2, TargetProblem::EmptyItem),
            ("local,remote", 2, TargetProblem::UnknownScheme),
            ("agent:", 1, TargetProblem::BadHostname),
            ("agent:a b", 1, TargetProblem::BadHostname),
            ("agent:-x", 1, TargetProblem::BadHostname),
            ("ssh://host", 1, TargetProblem::BadUser),
            ("ssh://@host", 1, TargetProblem::BadUser),
            ("ssh://u@host:0", 1, TargetProblem::BadPort),
            ("ssh://u@host:65536", 1, TargetProblem::BadPort),
            ("ssh://u@host:", 1, TargetProblem::BadPort),
            ("ssh://u@host:+22", 1, TargetProblem::BadPort),
            ("ssh://u@[::1", 1, TargetProblem::BadIpv6),
            ("ssh://u@[zz::1]:22", 1, TargetProblem::BadIpv6),
            ("ssh://u@[::1]x", 1, TargetProblem::BadPort),
            ("ssh://u@::1", 1, TargetProblem::BadIpv6),
            ("local,ssh://u@", 2, TargetProblem::BadHostname),
            ("LOCAL", 1, TargetProblem::UnknownScheme),
            ("local,cmdb:", 2, TargetProblem::EmptyQuery),
            ("cmdb:module = ", 1, TargetProblem::BadQuery),
            ("cmdb:module = \"a\", local", 1, TargetProblem::BadQuery),
        ];
        for (spec, position, reason) in cases {
            let err = parse_targets(spec).unwrap_err();
            assert_eq!((err.position, err.reason), (position, reason), "{spec}");
            assert_eq!(err.code(), "exec.target_invalid");
        }
        let err = parse_targets("local,remote").unwrap_err();
        assert!(
            err.message_en().contains("target 2 `remote`"),
            "{}",
            err.message_en()
        );
        assert!(err.message_zh().contains("第 2 个目标"));
    }

    #[test]
    fn a_cmdb_query_is_the_last_item_and_keeps_its_commas() {
        let t = parse_targets("agent:a, cmdb: module = \"行情网关\" and os in (\"a\", \"b\") ")
            .unwrap();
        assert_eq!(
            t,
            vec![
                TargetRef::agent("a"),
                TargetRef::Cmdb("module = \"行情网关\" and os in (\"a\", \"b\")".into())
            ]
        );
        assert_eq!(
            format_targets(&t),
            "agent:a,cmdb:module = \"行情网关\" and os in (\"a\", \"b\")"
        );
        let err = parse_targets("cmdb:module = ").unwrap_err();
        assert!(
            err.message_en().contains("query column"),
            "{}",
            err.message_en()
        );
        assert!(err.message_zh().contains("列"), "{}", err.message_zh());
    }

    fn hostname() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._-]{0,20}"
    }

    fn target() -> impl Strategy<Value = TargetRef> {
        prop_oneof![
            Just(TargetRef::Local),
            Just(TargetRef::AllAgents),
            hostname().prop_map(TargetRef::agent),
            (
                "[a-z_][a-z0-9_.-]{0,10}",
                prop_oneof![
                    hostname(),
                    any::<[u16; 8]>().prop_map(|s| Ipv6Addr::from(s).to_string())
                ],
                1u16..=65535
            )
                .prop_map(|(u, h, p)| TargetRef::ssh(u, h, p)),
        ]
    }

    fn list() -> impl Strategy<Value = Vec<TargetRef>> {
        (
            proptest::collection::vec(target(), 1..8),
            proptest::option::of("[a-z]{1,8}".prop_map(|v| format!("module = \"{v}\""))),
        )
            .prop_map(|(mut l, q)| {
                l.extend(q.map(TargetRef::Cmdb));
                l
            })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(list in list()) {
            let mut dedup: Vec<TargetRef> = Vec::new();
            for t in list {
                if !dedup.contains(&t) {
                    dedup.push(t);
                }
            }
            let spec = format_targets(&dedup);
            prop_assert_eq!(parse_targets(&spec).unwrap(), dedup);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_targets(&s);
        }
    }
}
