//! Relations between instances: kinds, which models they may join, cardinality, cycle rules, and
//! which way impact travels.
//!
//! A relation reads "source KIND target": `web-01 runs_on vm-host-3`, `web-01 belongs_to 行情网关`,
//! `行情网关 depends_on kafka-1`, `sw-1 connects_to sw-2`.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::Msg;
use crate::model::TOPOLOGY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// Runs on a host (an instance, a VM, a container): at most one per source.
    RunsOn,
    /// Topology membership: host → module → subsystem → business; racks → data centres.
    BelongsTo,
    /// Needs the target to work.
    DependsOn,
    /// A network link; cycles allowed.
    ConnectsTo,
}

/// How many relations of a kind an instance may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cardinality {
    /// Each source has at most one target.
    ManyToOne,
    ManyToMany,
}

/// Which way a walk follows a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a target to its sources (who points at me).
    Incoming,
    /// From a source to its targets (what I point at).
    Outgoing,
}

impl RelationKind {
    pub const ALL: [RelationKind; 4] = [
        RelationKind::RunsOn,
        RelationKind::BelongsTo,
        RelationKind::DependsOn,
        RelationKind::ConnectsTo,
    ];

    pub fn key(self) -> &'static str {
        match self {
            RelationKind::RunsOn => "runs_on",
            RelationKind::BelongsTo => "belongs_to",
            RelationKind::DependsOn => "depends_on",
            RelationKind::ConnectsTo => "connects_to",
        }
    }

    pub fn parse(s: &str) -> Option<RelationKind> {
        RelationKind::ALL.into_iter().find(|k| k.key() == s)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            RelationKind::RunsOn => "运行于",
            RelationKind::BelongsTo => "属于",
            RelationKind::DependsOn => "依赖",
            RelationKind::ConnectsTo => "连接",
        }
    }

    pub fn cardinality(self) -> Cardinality {
        match self {
            RelationKind::RunsOn => Cardinality::ManyToOne,
            _ => Cardinality::ManyToMany,
        }
    }

    /// Whether a cycle of this kind is forbidden.
    pub fn acyclic(self) -> bool {
        !matches!(self, RelationKind::ConnectsTo)
    }

    /// Which way impact travels from a failing instance along this kind: to those that run on
    /// it or depend on it (incoming), to the topology nodes it belongs to (outgoing); network
    /// links carry none.
    pub fn impact(self) -> Option<Direction> {
        match self {
            RelationKind::RunsOn | RelationKind::DependsOn => Some(Direction::Incoming),
            RelationKind::BelongsTo => Some(Direction::Outgoing),
            RelationKind::ConnectsTo => None,
        }
    }
}

/// Why a relation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    #[error("an instance cannot have a {kind} relation to itself")]
    SelfRelation { kind: &'static str },
    #[error(
        "{source_model} cannot {kind} {target_model}: the topology is business → subsystem → module → host"
    )]
    Topology {
        kind: &'static str,
        source_model: String,
        target_model: String,
    },
    #[error("{kind} must point at a host, not a {target_model}")]
    NotAHost {
        kind: &'static str,
        target_model: String,
    },
    #[error("{source_name} already {kind} {existing}; an instance {kind} at most one target")]
    Cardinality {
        kind: &'static str,
        source_name: String,
        existing: String,
    },
    #[error("{kind} from {source_name} to {target_name} would make a cycle")]
    Cycle {
        kind: &'static str,
        source_name: String,
        target_name: String,
    },
    #[error("the two instances are in different environments ({source_env}, {target_env})")]
    Environment {
        source_env: String,
        target_env: String,
    },
}

impl Msg for RelationError {
    fn code(&self) -> &'static str {
        match self {
            RelationError::SelfRelation { .. } => "cmdb.relation_self",
            RelationError::Topology { .. } => "cmdb.relation_topology",
            RelationError::NotAHost { .. } => "cmdb.relation_not_host",
            RelationError::Cardinality { .. } => "cmdb.relation_cardinality",
            RelationError::Cycle { .. } => "cmdb.relation_cycle",
            RelationError::Environment { .. } => "cmdb.relation_environment",
        }
    }
    fn message_zh(&self) -> String {
        match self {
            RelationError::SelfRelation { kind } => format!("实例不能与自身建立 {kind} 关系"),
            RelationError::Topology {
                kind,
                source_model,
                target_model,
            } => format!(
                "{source_model} 不能 {kind} {target_model}：业务拓扑为 业务系统 → 子系统 → 模块 → 主机"
            ),
            RelationError::NotAHost { kind, target_model } => {
                format!("{kind} 关系的目标须为主机，而不是 {target_model}")
            }
            RelationError::Cardinality {
                kind,
                source_name,
                existing,
            } => format!("{source_name} 已经 {kind} {existing}；每个实例最多一个 {kind} 目标"),
            RelationError::Cycle {
                kind,
                source_name,
                target_name,
            } => format!("从 {source_name} 到 {target_name} 的 {kind} 关系会形成环"),
            RelationError::Environment {
                source_env,
                target_env,
            } => format!("两个实例属于不同环境（{source_env}、{target_env}）"),
        }
    }
    fn message_en(&self) -> String {
        self.to_string()
    }
}

/// Checks a relation's kind against the models it joins (before any database lookups).
pub fn check_models(
    kind: RelationKind,
    source_model: &str,
    target_model: &str,
) -> Result<(), RelationError> {
    let pos = |m: &str| TOPOLOGY.iter().position(|t| *t == m);
    match kind {
        RelationKind::BelongsTo => {
            // Between topology models, only one level up.
            if let (Some(s), Some(t)) = (pos(source_model), pos(target_model))
                && s != t + 1
            {
                return Err(RelationError::Topology {
                    kind: kind.key(),
                    source_model: source_model.to_string(),
                    target_model: target_model.to_string(),
                });
            }
            Ok(())
        }
        RelationKind::RunsOn if target_model != "host" => Err(RelationError::NotAHost {
            kind: kind.key(),
            target_model: target_model.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Whether `to` is reachable from `from` following `next` (each node's successors), without
/// limit; nodes are visited once.
pub fn reaches<F>(from: i64, to: i64, mut next: F) -> bool
where
    F: FnMut(i64) -> Vec<i64>,
{
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            return true;
        }
        for m in next(n) {
            if seen.insert(m) {
                queue.push_back(m);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn topology_is_one_level_up() {
        assert_eq!(
            check_models(RelationKind::BelongsTo, "host", "module"),
            Ok(())
        );
        assert_eq!(
            check_models(RelationKind::BelongsTo, "module", "subsystem"),
            Ok(())
        );
        assert_eq!(
            check_models(RelationKind::BelongsTo, "rack", "datacenter"),
            Ok(())
        );
        let e = check_models(RelationKind::BelongsTo, "host", "business");
        assert!(matches!(e, Err(RelationError::Topology { .. })));
        let e = check_models(RelationKind::BelongsTo, "business", "module");
        assert_eq!(e.map_err(|e| e.code()), Err("cmdb.relation_topology"));
        assert!(check_models(RelationKind::RunsOn, "db_instance", "module").is_err());
        assert!(check_models(RelationKind::RunsOn, "db_instance", "host").is_ok());
        assert!(check_models(RelationKind::DependsOn, "module", "db_instance").is_ok());
    }

    #[test]
    fn cycles_are_found() {
        let edges: BTreeMap<i64, Vec<i64>> =
            BTreeMap::from([(1, vec![2]), (2, vec![3, 4]), (4, vec![1]), (5, vec![5])]);
        let next = |n: i64| edges.get(&n).cloned().unwrap_or_default();
        assert!(reaches(1, 4, next));
        assert!(reaches(4, 3, next));
        assert!(!reaches(3, 1, next));
        assert!(reaches(5, 5, next));
        assert!(!reaches(5, 1, next));
    }

    #[test]
    fn kinds_parse_and_carry_rules() {
        for k in RelationKind::ALL {
            assert_eq!(RelationKind::parse(k.key()), Some(k));
        }
        assert_eq!(RelationKind::parse("owns"), None);
        assert!(!RelationKind::ConnectsTo.acyclic());
        assert_eq!(RelationKind::RunsOn.cardinality(), Cardinality::ManyToOne);
        assert_eq!(RelationKind::BelongsTo.impact(), Some(Direction::Outgoing));
    }
}
