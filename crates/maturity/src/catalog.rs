//! The catalog: the standard's classes, domains, items, aspects and levelled clauses as data.
//!
//! The bundled edition lives in `data/catalog/` and is embedded at build time; another edition in
//! the same format can be loaded with [`Catalog::from_yaml_str`]. Loading validates the structure
//! (clause IDs consistent with their position, levels contiguous, names unique) so that every later
//! computation can index without checking again.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::clause_id::ClauseId;
use crate::error::CatalogError;

/// The bundled catalog source (the 送审稿 draft).
pub const BUNDLED_YAML: &str = include_str!("../../../data/catalog/jrt-ops-automation-draft.yaml");
/// The name of the bundled file, used in error messages.
pub const BUNDLED_NAME: &str = "data/catalog/jrt-ops-automation-draft.yaml";

/// The two maturity scales of section 6. They are never averaged together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleKey {
    /// 技术管理能力成熟度 (表2, levels 1–3): classes 安全与风险管理, 工具与平台建设, 组织管理.
    TechnicalManagement,
    /// 技术应用能力成熟度 (表3, levels 1–5): the 过程管理 class.
    TechnicalApplication,
}

/// The whole catalog as stored in the data file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogData {
    pub schema: u32,
    pub id: String,
    pub version: String,
    pub title_zh: String,
    pub title_en: String,
    pub edition_zh: String,
    pub scales: Vec<Scale>,
    pub classes: Vec<Class>,
    #[serde(default)]
    pub anomalies: Vec<Anomaly>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub key: ScaleKey,
    pub name_zh: String,
    pub name_en: String,
    pub section: String,
    pub table: u32,
    pub levels: Vec<LevelDefinition>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelDefinition {
    pub level: u8,
    pub name_zh: String,
    pub name_en: String,
    pub alias_zh: Option<String>,
    pub alias_en: Option<String>,
    pub description_zh: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub ordinal_zh: String,
    pub name_zh: String,
    pub name_en: String,
    pub section: String,
    pub scale: ScaleKey,
    pub domains: Vec<Domain>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub name_zh: String,
    pub name_en: String,
    pub section: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub table: u32,
    pub section: String,
    pub name_zh: String,
    pub name_en: String,
    /// Number of levels of this item's table (3 or 5).
    pub levels: u8,
    pub aspects: Vec<Aspect>,
    #[serde(default)]
    pub notes_zh: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aspect {
    pub column: u32,
    pub name_zh: String,
    pub name_en: String,
    pub section: Option<String>,
    pub intro_zh: Option<String>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub level: u8,
    pub clauses: Vec<Clause>,
    #[serde(default)]
    pub notes_zh: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clause {
    pub id: String,
    /// The letter as printed in the draft ("" for an unlettered sentence). May differ from the
    /// positional letter in `id` where the draft repeats or skips a letter.
    pub printed_letter: String,
    pub text_zh: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    #[serde(rename = "where")]
    pub location: String,
    pub kind: String,
    pub note_en: String,
    pub note_zh: String,
}

/// Where a clause sits in the catalog (indices into the nested vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClausePos {
    pub class: usize,
    pub domain: usize,
    pub item: usize,
    pub aspect: usize,
    pub cell: usize,
    pub clause: usize,
}

/// A validated, indexed catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    data: CatalogData,
    /// Item table number → (class, domain, item) indices.
    items_by_table: BTreeMap<u32, (usize, usize, usize)>,
    clauses: HashMap<ClauseId, ClausePos>,
}

/// A borrowed view of one item with its ancestors.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub class: &'a Class,
    pub domain: &'a Domain,
    pub item: &'a Item,
    pub class_index: usize,
    pub domain_index: usize,
}

/// A borrowed view of one clause with its ancestors.
#[derive(Debug, Clone, Copy)]
pub struct ClauseRef<'a> {
    pub id: ClauseId,
    pub class: &'a Class,
    pub domain: &'a Domain,
    pub item: &'a Item,
    pub aspect: &'a Aspect,
    pub level: u8,
    pub clause: &'a Clause,
}

impl Catalog {
    /// The catalog bundled with this build.
    pub fn bundled() -> Result<Catalog, CatalogError> {
        Catalog::from_yaml_str(BUNDLED_YAML, BUNDLED_NAME)
    }

    /// Parses and validates a catalog from YAML text; `source` names the file in errors.
    pub fn from_yaml_str(text: &str, source: &str) -> Result<Catalog, CatalogError> {
        let data: CatalogData = serde_yaml_ng::from_str(text).map_err(|e| CatalogError::Parse {
            file: source.to_string(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        Catalog::from_data(data, source)
    }

    /// Validates already-deserialised catalog data.
    pub fn from_data(data: CatalogData, source: &str) -> Result<Catalog, CatalogError> {
        let invalid = |message: String| CatalogError::Invalid {
            file: source.to_string(),
            message,
        };
        if data.schema != 1 {
            return Err(invalid(format!(
                "unsupported catalog schema {} (this build reads schema 1)",
                data.schema
            )));
        }
        for key in [
            ScaleKey::TechnicalManagement,
            ScaleKey::TechnicalApplication,
        ] {
            let scale = data
                .scales
                .iter()
                .find(|s| s.key == key)
                .ok_or_else(|| invalid(format!("scale {key:?} is missing")))?;
            for (i, l) in scale.levels.iter().enumerate() {
                if usize::from(l.level) != i + 1 {
                    return Err(invalid(format!(
                        "scale {key:?}: level {} out of order",
                        l.level
                    )));
                }
            }
        }
        let mut items_by_table = BTreeMap::new();
        let mut clauses = HashMap::new();
        for (ci, class) in data.classes.iter().enumerate() {
            let max_levels = data
                .scales
                .iter()
                .find(|s| s.key == class.scale)
                .map_or(0, |s| s.levels.len());
            for (di, domain) in class.domains.iter().enumerate() {
                for (ii, item) in domain.items.iter().enumerate() {
                    let t = item.table;
                    if items_by_table.insert(t, (ci, di, ii)).is_some() {
                        return Err(invalid(format!("table {t} appears twice")));
                    }
                    if item.levels == 0 || usize::from(item.levels) > max_levels {
                        return Err(invalid(format!(
                            "table {t}: {} levels, but its scale has {max_levels}",
                            item.levels
                        )));
                    }
                    if item.aspects.is_empty() {
                        return Err(invalid(format!("table {t} has no aspects")));
                    }
                    for (ai, aspect) in item.aspects.iter().enumerate() {
                        if aspect.column as usize != ai + 1 {
                            return Err(invalid(format!(
                                "table {t}: aspect {} has column {}",
                                ai + 1,
                                aspect.column
                            )));
                        }
                        if aspect.cells.len() != usize::from(item.levels) {
                            return Err(invalid(format!(
                                "T{t}.{}: {} level cells, expected {}",
                                ai + 1,
                                aspect.cells.len(),
                                item.levels
                            )));
                        }
                        for (li, cell) in aspect.cells.iter().enumerate() {
                            if usize::from(cell.level) != li + 1 {
                                return Err(invalid(format!(
                                    "T{t}.{}: cell {} has level {}",
                                    ai + 1,
                                    li + 1,
                                    cell.level
                                )));
                            }
                            for (k, clause) in cell.clauses.iter().enumerate() {
                                let expected = ClauseId::new(t, ai as u32 + 1, cell.level, k);
                                let parsed = ClauseId::parse(&clause.id).map_err(|e| {
                                    invalid(format!("clause id {:?}: {e}", clause.id))
                                })?;
                                if parsed != expected {
                                    return Err(invalid(format!(
                                        "clause {} sits where {} belongs",
                                        clause.id, expected
                                    )));
                                }
                                if clause.text_zh.trim().is_empty() {
                                    return Err(invalid(format!(
                                        "clause {} has no text",
                                        clause.id
                                    )));
                                }
                                let pos = ClausePos {
                                    class: ci,
                                    domain: di,
                                    item: ii,
                                    aspect: ai,
                                    cell: li,
                                    clause: k,
                                };
                                if clauses.insert(parsed, pos).is_some() {
                                    return Err(invalid(format!(
                                        "clause {} appears twice",
                                        clause.id
                                    )));
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Catalog {
            data,
            items_by_table,
            clauses,
        })
    }

    pub fn data(&self) -> &CatalogData {
        &self.data
    }
    pub fn id(&self) -> &str {
        &self.data.id
    }
    pub fn version(&self) -> &str {
        &self.data.version
    }
    pub fn classes(&self) -> &[Class] {
        &self.data.classes
    }
    pub fn scale(&self, key: ScaleKey) -> Option<&Scale> {
        self.data.scales.iter().find(|s| s.key == key)
    }

    /// Every item in table order, with its class and domain.
    pub fn items(&self) -> impl Iterator<Item = ItemRef<'_>> + '_ {
        self.items_by_table
            .values()
            .map(move |&(c, d, i)| self.item_at(c, d, i))
    }

    fn item_at(&self, c: usize, d: usize, i: usize) -> ItemRef<'_> {
        let class = &self.data.classes[c];
        let domain = &class.domains[d];
        ItemRef {
            class,
            domain,
            item: &domain.items[i],
            class_index: c,
            domain_index: d,
        }
    }

    /// The item of table `table` (表N).
    pub fn item(&self, table: u32) -> Option<ItemRef<'_>> {
        self.items_by_table
            .get(&table)
            .map(|&(c, d, i)| self.item_at(c, d, i))
    }

    /// Table numbers of every item, ascending.
    pub fn tables(&self) -> impl Iterator<Item = u32> + '_ {
        self.items_by_table.keys().copied()
    }

    /// Looks up a clause by ID.
    pub fn clause(&self, id: &ClauseId) -> Option<ClauseRef<'_>> {
        let pos = self.clauses.get(id)?;
        let class = &self.data.classes[pos.class];
        let domain = &class.domains[pos.domain];
        let item = &domain.items[pos.item];
        let aspect = &item.aspects[pos.aspect];
        let cell = &aspect.cells[pos.cell];
        Some(ClauseRef {
            id: *id,
            class,
            domain,
            item,
            aspect,
            level: cell.level,
            clause: &cell.clauses[pos.clause],
        })
    }

    /// Every clause in catalog order (table, aspect, level, letter).
    pub fn clauses(&self) -> impl Iterator<Item = ClauseRef<'_>> + '_ {
        self.items().flat_map(move |ir| {
            ir.item.aspects.iter().flat_map(move |aspect| {
                aspect.cells.iter().flat_map(move |cell| {
                    cell.clauses
                        .iter()
                        .enumerate()
                        .map(move |(k, clause)| ClauseRef {
                            id: ClauseId::new(ir.item.table, aspect.column, cell.level, k),
                            class: ir.class,
                            domain: ir.domain,
                            item: ir.item,
                            aspect,
                            level: cell.level,
                            clause,
                        })
                })
            })
        })
    }

    /// Number of clauses in the catalog.
    pub fn clause_count(&self) -> usize {
        self.clauses.len()
    }

    /// Finds items whose Chinese or English name contains `needle` (case-insensitive for English).
    pub fn find_items(&self, needle: &str) -> Vec<ItemRef<'_>> {
        let lower = needle.to_lowercase();
        self.items()
            .filter(|r| {
                r.item.name_zh.contains(needle) || r.item.name_en.to_lowercase().contains(&lower)
            })
            .collect()
    }

    /// The lower-level clause of the same aspect with exactly the same text, if any: the draft
    /// repeats lower-level clauses in every higher level's cell.
    pub fn same_text_below(&self, id: &ClauseId) -> Option<ClauseId> {
        let c = self.clause(id)?;
        c.aspect
            .cells
            .iter()
            .filter(|cell| cell.level < c.level)
            .flat_map(|cell| {
                cell.clauses
                    .iter()
                    .enumerate()
                    .map(move |(k, cl)| (cell.level, k, cl))
            })
            .find(|(_, _, cl)| same_words(&cl.text_zh, &c.clause.text_zh))
            .map(|(level, k, _)| ClauseId::new(id.table, id.aspect, level, k))
    }
}

/// Equal texts but for trailing punctuation (the draft ends a cell's last clause with "。" and the
/// same clause elsewhere with "；").
fn same_words(a: &str, b: &str) -> bool {
    let trim = |s: &str| {
        s.trim()
            .trim_end_matches(['；', '。', '，', ';', '.', ','])
            .to_string()
    };
    trim(a) == trim(b)
}
