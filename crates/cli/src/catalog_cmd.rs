//! `ballast catalog show|export`.

use std::io::Write;
use std::path::{Path, PathBuf};

use ballast_maturity::catalog::ItemRef;
use ballast_maturity::{Catalog, ClauseId, export};
use clap::{Subcommand, ValueEnum};

use crate::output::{bad_input, emit, load_catalog, require_output};

#[derive(Subcommand)]
pub enum CatalogCmd {
    /// Show the catalog tree, one item's table (T5, 5, 表5 or a name) or one clause (T5.2.L3.c).
    Show {
        /// A table (T5), an item name (风险控制策略 / "risk control"), or a clause ID.
        query: Option<String>,
    },
    /// Export the whole catalog.
    Export {
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output file (stdout when absent; required for xlsx).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Json,
    Yaml,
    Xlsx,
}

pub fn run(cmd: CatalogCmd, catalog: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<u8> {
    let catalog = load_catalog(catalog)?;
    match cmd {
        CatalogCmd::Show { query: None } => show_tree(&catalog, out)?,
        CatalogCmd::Show { query: Some(q) } => show_query(&catalog, &q, out)?,
        CatalogCmd::Export { format, output } => {
            let bytes = match format {
                ExportFormat::Json => {
                    let mut s = export::to_json(&catalog);
                    s.push('\n');
                    s.into_bytes()
                }
                ExportFormat::Yaml => export::to_yaml(&catalog)?.into_bytes(),
                ExportFormat::Xlsx => {
                    require_output(output.as_deref(), "xlsx")?;
                    export::to_xlsx(&catalog)?
                }
            };
            emit(&bytes, output.as_deref(), out)?;
        }
    }
    Ok(0)
}

fn show_tree(catalog: &Catalog, out: &mut dyn Write) -> anyhow::Result<()> {
    let d = catalog.data();
    writeln!(out, "{} {}", d.title_zh, d.edition_zh)?;
    writeln!(out, "{}", d.title_en)?;
    writeln!(
        out,
        "{} {} · {} items · {} clauses",
        d.id,
        d.version,
        catalog.items().count(),
        catalog.clause_count()
    )?;
    for class in catalog.classes() {
        writeln!(
            out,
            "\n{}、{} {} ({}, {})",
            class.ordinal_zh,
            class.name_zh,
            class.name_en,
            class.section,
            match class.scale {
                ballast_maturity::ScaleKey::TechnicalManagement =>
                    "技术管理 technical management, 1–3",
                ballast_maturity::ScaleKey::TechnicalApplication =>
                    "技术应用 technical application, 1–5",
            }
        )?;
        for domain in &class.domains {
            writeln!(
                out,
                "  {} {} {}",
                domain.section, domain.name_zh, domain.name_en
            )?;
            for item in &domain.items {
                writeln!(
                    out,
                    "    表{:<3} {:<9} {} {}",
                    item.table, item.section, item.name_zh, item.name_en
                )?;
            }
        }
    }
    Ok(())
}

fn table_number(q: &str) -> Option<u32> {
    let t = q.trim();
    let t = t
        .strip_prefix('T')
        .or_else(|| t.strip_prefix('t'))
        .or_else(|| t.strip_prefix('表'))
        .unwrap_or(t);
    t.trim().parse().ok()
}

fn show_query(catalog: &Catalog, q: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Ok(id) = ClauseId::parse(q.trim()) {
        return match catalog.clause(&id) {
            Some(c) => {
                writeln!(out, "{}", c.id)?;
                writeln!(
                    out,
                    "  {} {} / {} {} / 表{} {} {} / {} {} / 第{}级 level {}",
                    c.class.name_zh,
                    c.class.name_en,
                    c.domain.name_zh,
                    c.domain.name_en,
                    c.item.table,
                    c.item.name_zh,
                    c.item.name_en,
                    c.aspect.name_zh,
                    c.aspect.name_en,
                    c.level,
                    c.level
                )?;
                writeln!(out, "  {}", c.clause.text_zh)?;
                if c.clause.printed_letter != c.id.letter().to_string() {
                    writeln!(
                        out,
                        "  注 note: printed letter in the draft is {:?}",
                        c.clause.printed_letter
                    )?;
                }
                if let Some(below) = catalog.same_text_below(&id) {
                    writeln!(out, "  与 {below} 文字相同 — same text as {below}")?;
                }
                Ok(())
            }
            None => Err(bad_input(
                format!("条款 {id} 在能力目录中不存在"),
                format!("clause {id} does not exist in the catalog"),
            )),
        };
    }
    if let Some(t) = table_number(q) {
        return match catalog.item(t) {
            Some(r) => show_item(r, out),
            None => Err(bad_input(
                format!(
                    "能力目录中没有表{t}（表号为 {}–{}）",
                    first(catalog),
                    last(catalog)
                ),
                format!(
                    "no table {t} in the catalog (tables are {}–{})",
                    first(catalog),
                    last(catalog)
                ),
            )),
        };
    }
    let found = catalog.find_items(q.trim());
    match found.as_slice() {
        [] => Err(bad_input(
            format!("没有名称包含 {q:?} 的能力项；可用表号（T5）、条款编号（T5.2.L3.c）或名称查询"),
            format!(
                "no item name contains {q:?}; query by table (T5), clause ID (T5.2.L3.c) or name"
            ),
        )),
        [one] => show_item(*one, out),
        many => {
            for r in many {
                writeln!(
                    out,
                    "表{:<3} {} {}",
                    r.item.table, r.item.name_zh, r.item.name_en
                )?;
            }
            Ok(())
        }
    }
}

fn first(c: &Catalog) -> u32 {
    c.tables().next().unwrap_or(0)
}
fn last(c: &Catalog) -> u32 {
    c.tables().last().unwrap_or(0)
}

fn show_item(r: ItemRef<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    let item = r.item;
    writeln!(
        out,
        "表{} {} {}  ({} · {} / {} · {} levels)",
        item.table,
        item.name_zh,
        item.name_en,
        item.section,
        r.class.name_zh,
        r.domain.name_zh,
        item.levels
    )?;
    for aspect in &item.aspects {
        writeln!(
            out,
            "\n── {} {}{}",
            aspect.name_zh,
            aspect.name_en,
            aspect
                .section
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        )?;
        for cell in &aspect.cells {
            writeln!(out, "   第{}级 L{}", cell.level, cell.level)?;
            for note in &cell.notes_zh {
                writeln!(out, "     注 {note}")?;
            }
            for clause in &cell.clauses {
                writeln!(out, "     {:<11} {}", clause.id, clause.text_zh)?;
            }
        }
    }
    for note in &item.notes_zh {
        writeln!(out, "\n注 {note}")?;
    }
    Ok(())
}
