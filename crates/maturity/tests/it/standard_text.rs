//! Checks `data/catalog/jrt-ops-automation-draft.yaml` against the standard's own text.
//!
//! The standard's tables are re-parsed here, independently of `tools/extract_catalog.py`:
//! captions `表 N …` (continued as `表 N …（续）` on the next page), a header row
//! `级别\t<aspect>…`, then one tab-separated row per level; a row whose level column is empty
//! continues the cells of the row before it, column by column. Cells hold lettered clauses
//! `a) … b) …`, sometimes wrapped in HTML list markup.
//!
//! The text is found through `BALLAST_STANDARD_TEXT`, else next to the repository in
//! `../shared/standard/`. A missing text is a failure, not a skip.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde_yaml_ng::Value;

const STANDARD_FILE: &str = "000_57c8c643fdf53d64.txt";
const CATALOG_FILE: &str = "data/catalog/jrt-ops-automation-draft.yaml";

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn standard_path() -> PathBuf {
    match std::env::var_os("BALLAST_STANDARD_TEXT") {
        Some(path) => PathBuf::from(path),
        None => manifest_dir()
            .join("../../../shared/standard")
            .join(STANDARD_FILE),
    }
}

fn read_standard() -> String {
    let path = standard_path();
    std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read the standard's text at {} ({err}); set BALLAST_STANDARD_TEXT to the \
             path of {STANDARD_FILE} (the repository is expected next to a `shared/` folder)",
            path.display()
        )
    })
}

fn read_catalog() -> Value {
    let path = manifest_dir().join("../..").join(CATALOG_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not valid YAML: {err}", path.display()))
}

fn fixture() -> (Standard, Value) {
    (Standard::parse(&read_standard()), read_catalog())
}

// ---------------------------------------------------------------------------------------------
// The standard's tables
// ---------------------------------------------------------------------------------------------

/// One table of the standard: header cells and, per level, the joined text of each column
/// (markup removed, page-break continuations appended directly).
#[derive(Debug, Default)]
struct SourceTable {
    header: Vec<String>,
    levels: Vec<Vec<String>>,
}

impl SourceTable {
    fn cell(&self, level: usize, column: usize) -> &str {
        &self.levels[level - 1][column - 1]
    }
}

#[derive(Debug, Default)]
struct Standard {
    tables: BTreeMap<u32, SourceTable>,
}

/// A table caption: its number and whether it is a continuation (`（续）`).
fn caption(line: &str) -> Option<(u32, bool)> {
    let rest = line.strip_prefix('表')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let number = digits.parse().ok()?;
    let title = rest[digits.len()..].trim();
    if title.is_empty() || title.contains('\t') {
        return None;
    }
    Some((number, title.ends_with("（续）")))
}

fn is_page_header(line: &str) -> bool {
    line.starts_with("JR/T XXXX-XXXX")
}

/// Removes `<…>` markup.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for ch in text.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    out
}

impl Standard {
    fn parse(text: &str) -> Self {
        let mut standard = Standard::default();
        // Table being read (None outside tables, and inside the garbled 表1, which is skipped).
        let mut current: Option<u32> = None;
        let mut expect_header = false;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.trim().is_empty() || is_page_header(line) {
                continue;
            }
            if let Some((number, continued)) = caption(line) {
                if continued {
                    assert_eq!(
                        current,
                        Some(number),
                        "line {line_no}: 表{number}（续） out of place"
                    );
                } else if number == 1 {
                    current = None;
                    continue;
                } else {
                    assert!(
                        !standard.tables.contains_key(&number),
                        "line {line_no}: 表{number} captioned twice"
                    );
                    standard.tables.insert(number, SourceTable::default());
                    current = Some(number);
                }
                expect_header = true;
                continue;
            }
            if !line.contains('\t') {
                current = None;
                continue;
            }
            let Some(number) = current else { continue };
            let table = standard.tables.entry(number).or_default();
            let fields: Vec<&str> = line.split('\t').collect();
            if expect_header {
                expect_header = false;
                read_header(table, &fields, number, line_no);
            } else {
                read_row(table, &fields, number, line_no);
            }
        }
        standard
    }

    fn table(&self, number: u64) -> &SourceTable {
        u32::try_from(number)
            .ok()
            .and_then(|n| self.tables.get(&n))
            .unwrap_or_else(|| panic!("表{number} not found in the standard's text"))
    }
}

fn read_header(table: &mut SourceTable, fields: &[&str], number: u32, line_no: usize) {
    assert!(
        matches!(fields[0], "级别" | "等级"),
        "表{number} line {line_no}: expected a header row, got {:?}",
        fields[0]
    );
    let header: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    if table.header.is_empty() {
        table.header = header;
    } else {
        assert_eq!(
            table.header, header,
            "表{number} line {line_no}: repeated header differs"
        );
    }
}

fn read_row(table: &mut SourceTable, fields: &[&str], number: u32, line_no: usize) {
    assert_eq!(
        fields.len(),
        table.header.len(),
        "表{number} line {line_no}: row has {} columns, header has {}",
        fields.len(),
        table.header.len()
    );
    let cells = fields[1..]
        .iter()
        .map(|raw| strip_markup(raw).trim().to_owned());
    if fields[0].is_empty() {
        let previous = table
            .levels
            .last_mut()
            .unwrap_or_else(|| panic!("表{number} line {line_no}: continuation before any level"));
        for (column, cell) in previous.iter_mut().zip(cells) {
            column.push_str(&cell);
        }
    } else {
        let expected = (table.levels.len() + 1).to_string();
        assert_eq!(
            fields[0], expected,
            "表{number} line {line_no}: unexpected level"
        );
        table.levels.push(cells.collect());
    }
}

// ---------------------------------------------------------------------------------------------
// Clause markers and text comparison
// ---------------------------------------------------------------------------------------------

/// Char indices of the clause markers `x)` in `text` (a lower-case ASCII letter and `)`, not
/// preceded by an ASCII letter or digit).
fn marker_positions(chars: &[char]) -> Vec<usize> {
    (0..chars.len().saturating_sub(1))
        .filter(|&i| chars[i].is_ascii_lowercase() && chars[i + 1] == ')')
        .filter(|&i| i == 0 || !chars[i - 1].is_ascii_alphanumeric())
        .collect()
}

/// The printed letters of a cell's clause markers, in order.
fn printed_letters(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    marker_positions(&chars)
        .into_iter()
        .map(|i| chars[i].to_string())
        .collect()
}

/// The cell's text without its clause markers (each letter and its `)`).
fn without_markers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let dropped: HashSet<usize> = marker_positions(&chars)
        .into_iter()
        .flat_map(|i| [i, i + 1])
        .collect();
    chars
        .iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, ch)| *ch)
        .collect()
}

fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

// ---------------------------------------------------------------------------------------------
// Generic YAML access
// ---------------------------------------------------------------------------------------------

fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value
        .get(key)
        .unwrap_or_else(|| panic!("catalog: missing key {key:?} in {value:?}"))
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    field(value, key)
        .as_str()
        .unwrap_or_else(|| panic!("catalog: {key:?} is not a string in {value:?}"))
}

fn number(value: &Value, key: &str) -> u64 {
    field(value, key)
        .as_u64()
        .unwrap_or_else(|| panic!("catalog: {key:?} is not a number in {value:?}"))
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    field(value, key)
        .as_sequence()
        .unwrap_or_else(|| panic!("catalog: {key:?} is not a list in {value:?}"))
}

fn strings<'a>(value: &'a Value, key: &str) -> Vec<&'a str> {
    list(value, key)
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("catalog: {key:?} holds a non-string"))
        })
        .collect()
}

fn classes(catalog: &Value) -> &[Value] {
    list(catalog, "classes")
}

fn domains(catalog: &Value) -> Vec<&Value> {
    classes(catalog)
        .iter()
        .flat_map(|c| list(c, "domains"))
        .collect()
}

/// Items with the section of their class.
fn items(catalog: &Value) -> Vec<(&str, &Value)> {
    classes(catalog)
        .iter()
        .flat_map(|class| {
            let section = text(class, "section");
            list(class, "domains")
                .iter()
                .flat_map(|domain| list(domain, "items"))
                .map(move |item| (section, item))
        })
        .collect()
}

/// Every cell of the catalog with its table number, aspect column and level.
fn cells(catalog: &Value) -> Vec<(u64, u64, u64, &Value)> {
    let mut out = Vec::new();
    for (_, item) in items(catalog) {
        let table = number(item, "table");
        for aspect in list(item, "aspects") {
            let column = number(aspect, "column");
            for cell in list(aspect, "cells") {
                out.push((table, column, number(cell, "level"), cell));
            }
        }
    }
    out
}

fn cell_id(table: u64, column: u64, level: u64) -> String {
    format!("T{table}.{column}.L{level}")
}

fn position_letter(index: usize) -> char {
    let offset = u8::try_from(index).unwrap_or_else(|_| panic!("clause index {index} too large"));
    assert!(offset < 26, "clause index {index} beyond 'z'");
    char::from(b'a' + offset)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn framework_has_4_classes_21_domains_46_items_in_table_order() {
    let (standard, catalog) = fixture();
    assert_eq!(classes(&catalog).len(), 4, "number of classes (能力类)");
    assert_eq!(domains(&catalog).len(), 21, "number of domains (能力域)");
    let items = items(&catalog);
    assert_eq!(items.len(), 46, "number of items (能力项)");

    let tables: Vec<u64> = items
        .iter()
        .map(|(_, item)| number(item, "table"))
        .collect();
    assert_eq!(
        tables,
        (4..=49).collect::<Vec<u64>>(),
        "items must be 表4..=表49 in order"
    );
    let source: Vec<u32> = standard.tables.keys().copied().collect();
    assert_eq!(
        source,
        (2..=49).collect::<Vec<u32>>(),
        "tables parsed from the standard"
    );

    let mut by_levels = BTreeMap::new();
    for (class_section, item) in &items {
        let t = number(item, "table");
        let levels = number(item, "levels");
        let expected = if *class_section == "10" { 5 } else { 3 };
        assert_eq!(
            levels, expected,
            "表{t}: levels of an item in section {class_section}"
        );
        let rows = standard.table(t).levels.len();
        assert_eq!(
            usize::try_from(levels).ok(),
            Some(rows),
            "表{t}: level rows in the standard"
        );
        *by_levels.entry(levels).or_insert(0) += 1;
    }
    assert_eq!(
        by_levels,
        BTreeMap::from([(3, 17), (5, 29)]),
        "items by number of levels"
    );
}

#[test]
fn aspects_and_levels_match_the_table_headers_and_rows() {
    let (standard, catalog) = fixture();
    for (_, item) in items(&catalog) {
        let t = number(item, "table");
        let source = standard.table(t);
        let aspects = list(item, "aspects");
        let names: Vec<&str> = aspects.iter().map(|a| text(a, "name_zh")).collect();
        let header: Vec<&str> = source.header[1..].iter().map(String::as_str).collect();
        assert_eq!(
            names, header,
            "表{t}: aspect names must equal the header columns, in order"
        );
        for (index, aspect) in aspects.iter().enumerate() {
            let column = number(aspect, "column");
            assert_eq!(
                usize::try_from(column).ok(),
                Some(index + 1),
                "表{t}: aspect column"
            );
            let levels: Vec<u64> = list(aspect, "cells")
                .iter()
                .map(|c| number(c, "level"))
                .collect();
            let rows = u64::try_from(source.levels.len()).unwrap_or(u64::MAX);
            assert_eq!(
                levels,
                (1..=rows).collect::<Vec<u64>>(),
                "T{t}.{column}: level cells"
            );
        }
    }
}

#[test]
fn aspect_intros_are_verbatim_paragraphs_of_the_standard() {
    let catalog = read_catalog();
    let lines: HashSet<String> = read_standard().lines().map(squeeze).collect();
    for (_, item) in items(&catalog) {
        for aspect in list(item, "aspects") {
            let section = text(aspect, "section");
            let intro = text(aspect, "intro_zh");
            for paragraph in intro.split('\n') {
                assert!(
                    lines.contains(&squeeze(paragraph)),
                    "intro of {section} is not a paragraph of the standard: {paragraph}"
                );
            }
        }
    }
}

#[test]
fn clause_ids_are_well_formed_unique_and_positional() {
    let catalog = read_catalog();
    let mut seen = HashSet::new();
    for (t, column, level, cell) in cells(&catalog) {
        let prefix = cell_id(t, column, level);
        for (index, clause) in list(cell, "clauses").iter().enumerate() {
            let id = text(clause, "id");
            let expected = format!("{prefix}.{}", position_letter(index));
            assert_eq!(
                id, expected,
                "clause id must follow its position in the cell"
            );
            assert!(seen.insert(id.to_owned()), "clause id {id} is not unique");
        }
    }
    assert!(!seen.is_empty(), "the catalog has no clauses");
}

#[test]
fn clause_counts_and_letters_match_the_cell_markers() {
    let (standard, catalog) = fixture();
    for (t, column, level, cell) in cells(&catalog) {
        let id = cell_id(t, column, level);
        let source = standard.table(t).cell(usize_of(level), usize_of(column));
        let letters = printed_letters(source);
        let clauses = list(cell, "clauses");
        let printed: Vec<&str> = clauses.iter().map(|c| text(c, "printed_letter")).collect();
        if letters.is_empty() {
            assert_eq!(
                printed,
                [""],
                "{id}: an unlettered cell is one clause with no letter"
            );
        } else {
            assert_eq!(
                printed, letters,
                "{id}: clauses must match the letter markers"
            );
        }
    }
}

#[test]
fn clause_texts_are_found_in_their_own_cells() {
    let (standard, catalog) = fixture();
    for (t, column, level, cell) in cells(&catalog) {
        let source = squeeze(standard.table(t).cell(usize_of(level), usize_of(column)));
        for clause in list(cell, "clauses") {
            let id = text(clause, "id");
            let body = text(clause, "text_zh");
            assert!(!body.trim().is_empty(), "{id}: empty clause text");
            assert_eq!(
                body,
                body.trim(),
                "{id}: clause text has surrounding whitespace"
            );
            assert!(
                source.contains(&squeeze(body)),
                "{id}: text not in its cell: {body}"
            );
        }
    }
}

#[test]
fn clauses_and_notes_cover_each_cell_in_order() {
    let (standard, catalog) = fixture();
    for (t, column, level, cell) in cells(&catalog) {
        let id = cell_id(t, column, level);
        let source = standard.table(t).cell(usize_of(level), usize_of(column));
        let whole = squeeze(&without_markers(source));
        let notes = strings(cell, "notes_zh");
        let (lead_ins, trailing): (Vec<&str>, Vec<&str>) =
            notes.iter().partition(|note| !note.starts_with("注："));
        for note in &lead_ins {
            assert!(
                note.ends_with('：'),
                "{id}: note is neither a lead-in nor a 注: {note}"
            );
        }
        let clauses = list(cell, "clauses").iter().map(|c| text(c, "text_zh"));
        let pieces = lead_ins.into_iter().chain(clauses).chain(trailing);
        let mut rest = whole.as_str();
        for piece in pieces {
            let piece = squeeze(piece);
            rest = rest.strip_prefix(piece.as_str()).unwrap_or_else(|| {
                panic!("{id}: expected {piece:?} next in the cell, found {rest:?}")
            });
        }
        assert!(
            rest.is_empty(),
            "{id}: cell text not covered by clauses and notes: {rest:?}"
        );
    }
}

#[test]
fn letter_slips_are_recorded_as_anomalies() {
    let catalog = read_catalog();
    let recorded: HashSet<&str> = list(&catalog, "anomalies")
        .iter()
        .map(|a| text(a, "where"))
        .collect();
    for (_, _, _, cell) in cells(&catalog) {
        for (index, clause) in list(cell, "clauses").iter().enumerate() {
            let printed = text(clause, "printed_letter");
            let id = text(clause, "id");
            if !printed.is_empty() && printed != position_letter(index).to_string() {
                assert!(
                    recorded.contains(id),
                    "{id}: printed letter {printed:?} not recorded"
                );
            }
        }
    }
}

#[test]
fn scales_match_tables_2_and_3() {
    let (standard, catalog) = fixture();
    let scales = list(&catalog, "scales");
    let expected = [
        ("technical_management", 2, 3),
        ("technical_application", 3, 5),
    ];
    assert_eq!(scales.len(), expected.len(), "number of scales");
    for (scale, (key, table, levels)) in scales.iter().zip(expected) {
        assert_eq!(text(scale, "key"), key, "scale key");
        assert_eq!(number(scale, "table"), table, "{key}: table");
        let source = standard.table(table);
        assert_eq!(
            source.levels.len(),
            levels,
            "表{table}: level rows in the standard"
        );
        let scale_levels = list(scale, "levels");
        assert_eq!(scale_levels.len(), levels, "{key}: levels");
        for (index, level) in scale_levels.iter().enumerate() {
            let row = &source.levels[index];
            assert_eq!(
                number(level, "level"),
                (index + 1) as u64,
                "{key}: level number"
            );
            let printed = match field(level, "alias_zh").as_str() {
                Some(alias) => format!("{} ({alias})", text(level, "name_zh")),
                None => text(level, "name_zh").to_owned(),
            };
            assert_eq!(
                squeeze(&printed),
                squeeze(&row[0]),
                "表{table} level {}: name",
                index + 1
            );
            let descriptions = strings(level, "description_zh");
            assert_eq!(
                descriptions.len(),
                printed_letters(&row[1]).len(),
                "表{table} level {}: description items",
                index + 1
            );
            let content = squeeze(&row[1]);
            for description in descriptions {
                assert!(
                    content.contains(&squeeze(description)),
                    "表{table} level {}: description not found: {description}",
                    index + 1
                );
            }
        }
    }
}

fn usize_of(value: u64) -> usize {
    usize::try_from(value).unwrap_or_else(|_| panic!("{value} does not fit usize"))
}
