//! The report as a PDF: A4 pages with the same content as the HTML report (title, scope, the two
//! maturity results, domains, items × levels, aspects, progress apart from compliance, gaps,
//! exceptions, warnings), tables whose header repeats after a page break, and page numbers.
//!
//! Pure: the caller passes the font's bytes (a TrueType/OpenType file or a collection such as
//! Debian's `NotoSansCJK-Regular.ttc`; from a collection the Simplified Chinese face is taken).
//! krilla shapes the text, embeds a subset of the font and writes a ToUnicode map, so tools such
//! as `pdftotext` get the Chinese text back.
//!
//! Layout happens in two passes: the report is laid out into pages of drawing operations (the
//! width of text measured with the font's advances), then every page is drawn with its footer
//! "第 n / N 页", once N is known.

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider, string::StringId};

use super::{Report, Share};

/// Why a PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error(
        "字体文件无法读取（不是 TrueType/OpenType 字体或字体集）：{0} — the font file cannot be read (not a TrueType/OpenType font or collection): {0}"
    )]
    Font(String),
    #[error(
        "字体缺少中文字形（例如「{0}」） — the font has no glyph for Chinese text (e.g. {0:?}); use a CJK font such as Noto Sans CJK"
    )]
    NoCjk(char),
    #[error("PDF 生成失败：{0} — writing the PDF failed: {0}")]
    Write(String),
}

// A4 in points, with margins.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 42.0;
const TOP: f32 = 48.0;
const BOTTOM: f32 = PAGE_H - 56.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;

const INK: (u8, u8, u8) = (0x1d, 0x27, 0x33);
const MUTED: (u8, u8, u8) = (0x5b, 0x6b, 0x7b);
const ACCENT: (u8, u8, u8) = (0x1f, 0x3a, 0x5f);
const LINE: (u8, u8, u8) = (0xd8, 0xde, 0xe6);
const HEAD_BG: (u8, u8, u8) = (0xf1, 0xf4, 0xf8);

type Rgb = (u8, u8, u8);

/// One drawing operation on a page; `y` grows downwards from the page's top edge.
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        color: Rgb,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: Rgb,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
        color: Rgb,
    },
}

/// Text measurement with the font's horizontal advances.
struct Metrics<'a> {
    font: FontRef<'a>,
    upem: f32,
}

impl Metrics<'_> {
    fn width(&self, text: &str, size: f32) -> f32 {
        let charmap = self.font.charmap();
        let gm = self
            .font
            .glyph_metrics(Size::unscaled(), LocationRef::default());
        let units: f32 = text
            .chars()
            .map(|c| {
                let gid = charmap.map(c).unwrap_or_default();
                gm.advance_width(gid).unwrap_or(self.upem / 2.0)
            })
            .sum();
        units * size / self.upem
    }

    fn has(&self, c: char) -> bool {
        self.font.charmap().map(c).is_some()
    }
}

/// A cell of a table: text, optional background, centred or not.
struct Cell {
    text: String,
    bg: Option<Rgb>,
    color: Rgb,
    center: bool,
}

impl Cell {
    fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            bg: None,
            color: INK,
            center: false,
        }
    }
    fn num(text: impl Into<String>) -> Cell {
        Cell {
            center: true,
            ..Cell::new(text)
        }
    }
    fn muted(mut self) -> Cell {
        self.color = MUTED;
        self
    }
}

struct Layout<'a> {
    m: Metrics<'a>,
    pages: Vec<Vec<Op>>,
    y: f32,
}

const BODY: f32 = 9.0;
const SMALL: f32 = 8.0;

impl<'a> Layout<'a> {
    fn new(m: Metrics<'a>) -> Layout<'a> {
        Layout {
            m,
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    fn page(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Starts a new page unless `h` more points fit on this one.
    fn ensure(&mut self, h: f32) {
        if self.y + h > BOTTOM && self.y > TOP {
            self.new_page();
        }
    }

    fn text(&mut self, x: f32, baseline: f32, size: f32, color: Rgb, text: &str) {
        if text.is_empty() {
            return;
        }
        self.page().push(Op::Text {
            x,
            y: baseline,
            size,
            color,
            text: text.to_string(),
        });
    }

    /// Breaks `text` into lines no wider than `width`: after spaces, around CJK characters, and
    /// inside a word only when it alone is too wide.
    fn wrap(&self, text: &str, size: f32, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for para in text.split('\n') {
            let mut line = String::new();
            for c in para.chars() {
                let mut candidate = line.clone();
                candidate.push(c);
                // Closing punctuation never starts a line (it may overhang the cell a little).
                if line.is_empty() || no_break_before(c) || self.m.width(&candidate, size) <= width
                {
                    line = candidate;
                    continue;
                }
                if c == ' ' {
                    lines.push(std::mem::take(&mut line));
                    continue;
                }
                // Break after the last space if the overflowing run is a Latin word.
                let latin = c.is_ascii_alphanumeric();
                match line.rfind(' ') {
                    Some(pos) if latin && line[pos + 1..].chars().all(|x| !is_cjk(x)) => {
                        let rest = line[pos + 1..].to_string();
                        line.truncate(pos);
                        lines.push(std::mem::take(&mut line));
                        line = rest;
                        line.push(c);
                    }
                    _ => {
                        lines.push(std::mem::take(&mut line));
                        line.push(c);
                    }
                }
            }
            lines.push(line.trim_end().to_string());
        }
        lines
    }

    /// A paragraph of wrapped text at the left margin (plus `indent`).
    fn para(&mut self, text: &str, size: f32, color: Rgb, indent: f32) {
        let lh = size * 1.45;
        for line in self.wrap(text, size, CONTENT_W - indent) {
            self.ensure(lh);
            let y = self.y + size;
            self.text(MARGIN_X + indent, y, size, color, &line);
            self.y += lh;
        }
    }

    fn gap(&mut self, h: f32) {
        self.y += h;
    }

    /// A section heading with a rule under it; kept with at least the next few lines.
    fn h2(&mut self, text: &str) {
        self.gap(10.0);
        self.ensure(13.0 * 1.6 + 60.0);
        let y = self.y + 13.0;
        self.text(MARGIN_X, y, 13.0, ACCENT, text);
        self.y += 13.0 * 1.5;
        let y = self.y;
        self.page().push(Op::Line {
            x1: MARGIN_X,
            y1: y,
            x2: MARGIN_X + CONTENT_W,
            y2: y,
            width: 1.2,
            color: ACCENT,
        });
        self.y += 6.0;
    }

    fn h3(&mut self, text: &str) {
        self.gap(4.0);
        self.ensure(10.0 * 1.5 + 24.0);
        self.para(text, 10.0, INK, 0.0);
    }

    /// A table: column widths as fractions of the content width; the header repeats on every
    /// page the table spans.
    fn table(&mut self, header: &[&str], widths: &[f32], rows: Vec<Vec<Cell>>) {
        let size = SMALL;
        let lh = size * 1.4;
        let pad = 3.0;
        let total: f32 = widths.iter().sum();
        let cols: Vec<f32> = widths.iter().map(|w| w / total * CONTENT_W).collect();
        let head: Vec<Cell> = header.iter().map(|h| Cell::new(*h)).collect();
        let head_h = self.row_height(&head, &cols, size, lh, pad);
        self.ensure(head_h * 2.0);
        self.row(&head, &cols, size, lh, pad, Some(HEAD_BG));
        for r in rows {
            let h = self.row_height(&r, &cols, size, lh, pad);
            if self.y + h > BOTTOM {
                self.new_page();
                self.row(&head, &cols, size, lh, pad, Some(HEAD_BG));
            }
            self.row(&r, &cols, size, lh, pad, None);
        }
        self.gap(4.0);
    }

    fn row_height(&self, cells: &[Cell], cols: &[f32], size: f32, lh: f32, pad: f32) -> f32 {
        let lines = cells
            .iter()
            .zip(cols)
            .map(|(c, w)| self.wrap(&c.text, size, w - 2.0 * pad).len())
            .max()
            .unwrap_or(1)
            .max(1);
        lines as f32 * lh + 2.0 * pad
    }

    fn row(&mut self, cells: &[Cell], cols: &[f32], size: f32, lh: f32, pad: f32, bg: Option<Rgb>) {
        let h = self.row_height(cells, cols, size, lh, pad);
        let top = self.y;
        let mut x = MARGIN_X;
        for (c, w) in cells.iter().zip(cols) {
            if let Some(color) = c.bg.or(bg) {
                self.page().push(Op::Rect {
                    x,
                    y: top,
                    w: *w,
                    h,
                    color,
                });
            }
            let lines = self.wrap(&c.text, size, w - 2.0 * pad);
            for (k, line) in lines.iter().enumerate() {
                let lx = if c.center {
                    x + (w - self.m.width(line, size)) / 2.0
                } else {
                    x + pad
                };
                let baseline = top + pad + k as f32 * lh + size;
                self.text(lx, baseline, size, c.color, line);
            }
            x += w;
        }
        let bottom = top + h;
        self.page().push(Op::Line {
            x1: MARGIN_X,
            y1: bottom,
            x2: MARGIN_X + CONTENT_W,
            y2: bottom,
            width: 0.5,
            color: LINE,
        });
        if bg.is_some() {
            self.page().push(Op::Line {
                x1: MARGIN_X,
                y1: top,
                x2: MARGIN_X + CONTENT_W,
                y2: top,
                width: 0.5,
                color: LINE,
            });
        }
        self.y = bottom;
    }
}

fn no_break_before(c: char) -> bool {
    "，。；：、）」』！？》,.;:)!?%".contains(c)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x2E80..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x2FFFF)
}

fn heat_color(share: Option<f64>) -> Rgb {
    match share {
        None => (0xf4, 0xf6, 0xf8),
        Some(s) if s >= 0.999 => (0x2e, 0x7d, 0x32),
        Some(s) if s >= 0.75 => (0x66, 0xbb, 0x6a),
        Some(s) if s >= 0.5 => (0xc5, 0xe1, 0xa5),
        Some(s) if s >= 0.25 => (0xff, 0xe0, 0x82),
        Some(s) if s > 0.0 => (0xff, 0xab, 0x91),
        Some(_) => (0xef, 0x9a, 0x9a),
    }
}

fn share_text(s: &Share) -> String {
    match s.share {
        Some(x) => format!("{:.0}%", x * 100.0),
        None => "n/a".into(),
    }
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        "—".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The face to use from a font file: in a collection, the Simplified Chinese one ("… SC"), else
/// the first face with CJK glyphs, else the first.
fn pick_face(font: &[u8]) -> Result<u32, PdfError> {
    let mut faces = Vec::new();
    for i in 0..256u32 {
        match FontRef::from_index(font, i) {
            Ok(f) => faces.push((i, f)),
            Err(e) if i == 0 => return Err(PdfError::Font(e.to_string())),
            Err(_) => break,
        }
    }
    let family = |f: &FontRef| {
        f.localized_strings(StringId::FAMILY_NAME)
            .english_or_first()
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    let sc = faces.iter().find(|(_, f)| {
        let name = family(f);
        name.ends_with(" SC") && !name.contains("Mono")
    });
    let cjk = faces.iter().find(|(_, f)| f.charmap().map('能').is_some());
    match sc.or(cjk) {
        Some((i, _)) => Ok(*i),
        None => Err(PdfError::NoCjk('能')),
    }
}

/// Renders the report as a PDF. `font` is the bytes of a font file with CJK glyphs.
pub fn render(r: &Report, font: &[u8]) -> Result<Vec<u8>, PdfError> {
    let index = pick_face(font)?;
    let face = FontRef::from_index(font, index).map_err(|e| PdfError::Font(e.to_string()))?;
    let upem = f32::from(
        skrifa::raw::TableProvider::head(&face)
            .map_err(|e| PdfError::Font(e.to_string()))?
            .units_per_em(),
    );
    let metrics = Metrics { font: face, upem };
    let mut l = Layout::new(metrics);
    lay_out(&mut l, r);
    let pages = std::mem::take(&mut l.pages);

    let kfont = Font::new(font.to_vec().into(), index)
        .ok_or_else(|| PdfError::Font(format!("face {index}")))?;
    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(r.title())
            .language("zh-CN".into())
            .creator("Ballast".into()),
    );
    let n = pages.len();
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| PdfError::Write("A4 page size".into()))?;
    let title = r.title();
    for (i, ops) in pages.iter().enumerate() {
        let mut page = doc.start_page_with(settings.clone());
        let mut s = page.surface();
        for op in ops {
            draw(&mut s, &kfont, op);
        }
        let footer_y = PAGE_H - 30.0;
        draw(
            &mut s,
            &kfont,
            &Op::Line {
                x1: MARGIN_X,
                y1: footer_y - 10.0,
                x2: PAGE_W - MARGIN_X,
                y2: footer_y - 10.0,
                width: 0.5,
                color: LINE,
            },
        );
        let short: String = title.chars().take(40).collect();
        draw(
            &mut s,
            &kfont,
            &Op::Text {
                x: MARGIN_X,
                y: footer_y,
                size: 7.5,
                color: MUTED,
                text: format!("Ballast · {short}"),
            },
        );
        let num = format!("第 {} / {} 页 · page {} of {}", i + 1, n, i + 1, n);
        let w = l.m.width(&num, 7.5);
        draw(
            &mut s,
            &kfont,
            &Op::Text {
                x: PAGE_W - MARGIN_X - w,
                y: footer_y,
                size: 7.5,
                color: MUTED,
                text: num,
            },
        );
        s.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError::Write(e.to_string()))
}

fn color(c: Rgb) -> krilla::paint::Paint {
    rgb::Color::new(c.0, c.1, c.2).into()
}

fn draw(s: &mut Surface, font: &Font, op: &Op) {
    match op {
        Op::Text {
            x,
            y,
            size,
            color: c,
            text,
        } => {
            s.set_stroke(None);
            s.set_fill(Some(Fill {
                paint: color(*c),
                opacity: NormalizedF32::ONE,
                rule: Default::default(),
            }));
            s.draw_text(
                Point::from_xy(*x, *y),
                font.clone(),
                *size,
                text,
                false,
                TextDirection::Auto,
            );
        }
        Op::Rect {
            x,
            y,
            w,
            h,
            color: c,
        } => {
            let mut pb = PathBuilder::new();
            if let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) {
                pb.push_rect(rect);
            }
            if let Some(path) = pb.finish() {
                s.set_stroke(None);
                s.set_fill(Some(Fill {
                    paint: color(*c),
                    opacity: NormalizedF32::ONE,
                    rule: Default::default(),
                }));
                s.draw_path(&path);
            }
        }
        Op::Line {
            x1,
            y1,
            x2,
            y2,
            width,
            color: c,
        } => {
            let mut pb = PathBuilder::new();
            pb.move_to(*x1, *y1);
            pb.line_to(*x2, *y2);
            if let Some(path) = pb.finish() {
                s.set_fill(None);
                s.set_stroke(Some(Stroke {
                    paint: color(*c),
                    width: *width,
                    ..Stroke::default()
                }));
                s.draw_path(&path);
            }
        }
    }
}

fn lay_out(l: &mut Layout, r: &Report) {
    let check = if l.m.has('✓') { "✓" } else { "*" };
    // Title block.
    let title = r.title();
    for line in l.wrap(&title, 18.0, CONTENT_W) {
        let y = l.y + 18.0;
        l.text(MARGIN_X, y, 18.0, INK, &line);
        l.y += 18.0 * 1.4;
    }
    l.para(
        &format!(
            "{} {} · {}",
            r.catalog.title_zh, r.catalog.edition_zh, r.catalog.title_en
        ),
        BODY,
        MUTED,
        0.0,
    );
    l.para(
        &format!(
            "{} {} · 计分规则 policy {} · 范围 scope {}{}",
            r.catalog.id,
            r.catalog.version,
            r.policy,
            r.scope,
            r.target
                .map(|t| format!(" · 目标 target {t}"))
                .unwrap_or_default()
        ),
        BODY,
        MUTED,
        0.0,
    );
    for (k, v) in &r.meta {
        if k != "name" {
            l.para(&format!("{k}: {v}"), BODY, MUTED, 0.0);
        }
    }

    l.h2("成熟度 Maturity");
    let rows = r
        .scales
        .iter()
        .map(|s| {
            let (level, name) = match s.level {
                Some(lv) => (
                    format!("{lv} / {}", s.max_level),
                    match (&s.level_name_zh, &s.level_name_en) {
                        (Some(zh), Some(en)) => format!("{zh} · {en}"),
                        _ => String::new(),
                    },
                ),
                None => ("—".into(), "不在范围内 · not in scope".into()),
            };
            vec![
                Cell::new(format!("{} {}", s.name_zh, s.name_en)),
                Cell::num(level),
                Cell::new(name),
            ]
        })
        .collect();
    l.table(
        &["结果 Result", "级别 Level", "级别名称 Level name"],
        &[4.0, 1.2, 4.0],
        rows,
    );

    l.h2("能力类与能力域 Classes and domains");
    let mut rows = Vec::new();
    for c in &r.classes {
        rows.push(vec![
            Cell::new(format!("{} {} {}", c.ordinal_zh, c.name_zh, c.name_en)),
            Cell::new(""),
            Cell::num(if c.in_scope {
                Report::level_text(c.level, max_of_class(r, &c.name_zh))
            } else {
                "范围外 out of scope".into()
            }),
        ]);
        for d in r.domains.iter().filter(|d| d.class_zh == c.name_zh) {
            let cell = Cell::num(if d.in_scope {
                Report::level_text(d.level, d.max_level)
            } else {
                "范围外 out of scope".into()
            });
            rows.push(vec![
                Cell::new(""),
                Cell::new(format!("{} {}", d.name_zh, d.name_en)),
                if d.in_scope { cell } else { cell.muted() },
            ]);
        }
    }
    l.table(
        &["能力类 Class", "能力域 Domain", "级别 Level"],
        &[3.0, 4.0, 1.4],
        rows,
    );

    l.h2("能力项 × 级别 Items × levels");
    let max = r.items.iter().map(|i| i.levels).max().unwrap_or(0);
    let mut header: Vec<String> = vec![
        "表".into(),
        "能力项 Item".into(),
        "级别 Level".into(),
        "目标 Goal".into(),
    ];
    for lv in 1..=max {
        header.push(format!("L{lv}"));
    }
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut widths = vec![0.6, 4.2, 1.0, 1.0];
    widths.extend((1..=max).map(|_| 0.85));
    let rows = r
        .items
        .iter()
        .filter(|i| i.in_scope)
        .map(|i| {
            let goal = goal_of(r, i.table, i.level, i.levels, check);
            let mut row = vec![
                Cell::num(i.table.to_string()),
                Cell::new(format!("{} {}", i.name_zh, i.name_en)),
                Cell::num(Report::level_text(i.level, i.levels)),
                Cell::num(goal),
            ];
            for lv in 1..=max {
                match i.met_share_by_level.iter().find(|s| s.level == lv) {
                    Some(s) => {
                        let reached = i.level.is_some_and(|x| x >= lv);
                        let dark = s.share.is_some_and(|x| x >= 0.75);
                        row.push(Cell {
                            text: format!(
                                "{}{}",
                                share_text(s),
                                if reached {
                                    format!(" {check}")
                                } else {
                                    String::new()
                                }
                            ),
                            bg: Some(heat_color(s.share)),
                            color: if dark { (0xff, 0xff, 0xff) } else { INK },
                            center: true,
                        });
                    }
                    None => row.push(Cell::num("")),
                }
            }
            row
        })
        .collect();
    l.table(&header_refs, &widths, rows);
    l.para(
        &format!(
            "L1…L{max} 为该级条款的符合比例（不含不适用），{check} 表示已达到该级；目标为评估目标级别，未设目标时为下一级 — each L cell is the share of that level's clauses met (na excluded); {check} marks a level reached; the goal is the target, or else the next level."
        ),
        SMALL,
        MUTED,
        0.0,
    );
    let out: Vec<String> = r
        .items
        .iter()
        .filter(|i| !i.in_scope)
        .map(|i| format!("表{} {}", i.table, i.name_zh))
        .collect();
    if !out.is_empty() {
        l.para(
            &format!("不在评估范围内 Out of scope: {}", out.join("、")),
            SMALL,
            MUTED,
            0.0,
        );
    }

    l.h2("方面 Aspects");
    let mut rows = Vec::new();
    for i in r.items.iter().filter(|i| i.in_scope) {
        for (k, a) in i.aspects.iter().enumerate() {
            rows.push(vec![
                Cell::num(if k == 0 {
                    i.table.to_string()
                } else {
                    String::new()
                }),
                Cell::new(if k == 0 {
                    i.name_zh.clone()
                } else {
                    String::new()
                }),
                Cell::new(format!("{} {}", a.name_zh, a.name_en)),
                Cell::num(format!("{}/{}", a.level, i.levels)),
            ]);
        }
    }
    l.table(
        &["表", "能力项 Item", "方面 Aspect", "级别 Level"],
        &[0.6, 2.6, 4.6, 1.0],
        rows,
    );

    let m = &r.metrics;
    l.h2("进度 Progress");
    let c = &m.ratings;
    l.table(
        &[
            "在范围内条款 Clauses in scope",
            "已评 Rated",
            "未评 Unrated",
        ],
        &[3.0, 2.0, 2.0],
        vec![vec![
            Cell::num(m.clauses_in_scope.to_string()),
            Cell::num(format!("{} ({})", c.rated(), pct(c.rated(), c.total()))),
            Cell::num(format!("{} ({})", c.unrated, pct(c.unrated, c.total()))),
        ]],
    );
    l.para(
        "进度只说明评了多少，不代表符合；未评条款阻断级别 — progress says how much has been rated, not how much complies; unrated clauses block levels.",
        SMALL,
        MUTED,
        0.0,
    );
    l.h2("符合情况 Compliance (已评条款 rated clauses)");
    l.table(
        &[
            "符合 met",
            "部分符合 partial",
            "不符合 not_met",
            "不适用 na",
        ],
        &[1.0, 1.0, 1.0, 1.0],
        vec![vec![
            Cell::num(format!("{} ({})", c.met, pct(c.met, c.rated()))),
            Cell::num(format!("{} ({})", c.partial, pct(c.partial, c.rated()))),
            Cell::num(format!("{} ({})", c.not_met, pct(c.not_met, c.rated()))),
            Cell::num(format!("{} ({})", c.na, pct(c.na, c.rated()))),
        ]],
    );
    if let Some(mean) = m.mean_item_level {
        l.para(
            &format!("能力项平均级别 mean item level（非规范性 non-normative）: {mean:.2}"),
            BODY,
            INK,
            0.0,
        );
    }

    l.h2("差距 Gaps");
    if r.gaps.is_empty() {
        l.para("无差距 — no gaps toward the goal.", BODY, INK, 0.0);
    }
    for g in &r.gaps {
        l.h3(&format!(
            "{}. 表{} {} {} — {} → {}（{} 条 clauses）",
            g.priority,
            g.table,
            g.name_zh,
            g.name_en,
            g.level,
            g.goal,
            g.missing.len()
        ));
        let rows = g
            .missing
            .iter()
            .map(|c| {
                vec![
                    Cell::new(c.id.to_string()),
                    Cell::new(format!("{} {}", c.rating.label_zh(), c.rating.key())),
                    Cell::new(format!("{}：{}", c.aspect_zh, c.text_zh)),
                ]
            })
            .collect();
        l.table(
            &["条款 Clause", "评定 Rating", "方面与内容 Aspect and text"],
            &[1.3, 1.4, 6.0],
            rows,
        );
    }

    l.h2("不适用条款 Exceptions (na)");
    if r.exceptions.is_empty() {
        l.para("无 — none.", BODY, INK, 0.0);
    } else {
        let rows = r
            .exceptions
            .iter()
            .map(|e| {
                vec![
                    Cell::new(e.id.to_string()),
                    Cell::new(e.text_zh.clone()),
                    Cell::new(e.justification.clone()),
                ]
            })
            .collect();
        l.table(
            &["条款 Clause", "内容 Text", "理由 Justification"],
            &[1.3, 4.0, 3.4],
            rows,
        );
    }
    if !r.warnings.is_empty() {
        l.h2("警告 Warnings");
        for w in &r.warnings {
            l.para(&w.message_zh, BODY, INK, 0.0);
            l.para(&w.message_en, BODY, MUTED, 0.0);
        }
    }
    l.gap(8.0);
    l.para(
        &format!(
            "Ballast · report schema {} · 计分规则 {}：方面达到第 L 级当且仅当第 1..L 级全部条款为 met 或 na；能力项取各方面最小值。",
            r.schema_version, r.policy
        ),
        SMALL,
        MUTED,
        0.0,
    );
}

/// The highest level of a class's domains.
fn max_of_class(r: &Report, class_zh: &str) -> u8 {
    r.domains
        .iter()
        .filter(|d| d.class_zh == class_zh)
        .map(|d| d.max_level)
        .max()
        .unwrap_or(0)
}

/// An item's goal: the gap's goal when it has one, else the target (clamped), else `—` when the
/// item is at its top level or has no target.
fn goal_of(r: &Report, table: u32, level: Option<u8>, levels: u8, check: &str) -> String {
    if let Some(g) = r.gaps.iter().find(|g| g.table == table) {
        return g.goal.to_string();
    }
    match r.target {
        Some(t) => {
            let goal = t.min(levels);
            if level.is_some_and(|lv| lv >= goal) {
                format!("{goal} {check}")
            } else {
                goal.to_string()
            }
        }
        None => "—".into(),
    }
}
