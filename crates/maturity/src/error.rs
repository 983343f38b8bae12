//! Errors with stable codes and messages in Chinese and English.
//!
//! Every error a person can cause names what and where: the file, the line (YAML) or the sheet,
//! row and column (XLSX), and the clause when there is one.

use std::fmt;

/// A user-facing message: a stable code plus Chinese and English text.
pub trait Msg {
    fn code(&self) -> &'static str;
    fn message_zh(&self) -> String;
    fn message_en(&self) -> String;
    /// `中文 / English`, the form the CLI prints.
    fn bilingual(&self) -> String {
        format!("{} / {}", self.message_zh(), self.message_en())
    }
}

/// The catalog file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}{}: cannot parse catalog: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{file}: invalid catalog: {message}")]
    Invalid { file: String, message: String },
}

impl Msg for CatalogError {
    fn code(&self) -> &'static str {
        match self {
            CatalogError::Parse { .. } => "maturity.catalog_parse",
            CatalogError::Invalid { .. } => "maturity.catalog_invalid",
        }
    }
    fn message_zh(&self) -> String {
        match self {
            CatalogError::Parse {
                file,
                line,
                message,
            } => format!(
                "{file}{}：无法解析能力目录：{message}",
                line.map(|l| format!(" 第 {l} 行")).unwrap_or_default()
            ),
            CatalogError::Invalid { file, message } => {
                format!("{file}：能力目录内容无效：{message}")
            }
        }
    }
    fn message_en(&self) -> String {
        self.to_string()
    }
}

/// Where in an input file something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The whole file.
    File { file: String },
    /// A line of a text file (1-based).
    Line { file: String, line: usize },
    /// A spreadsheet cell or row (1-based row as Excel shows it; column letter when known).
    Cell {
        file: String,
        sheet: String,
        row: usize,
        column: Option<String>,
    },
}

impl Location {
    fn zh(&self) -> String {
        match self {
            Location::File { file } => file.clone(),
            Location::Line { file, line } => format!("{file} 第 {line} 行"),
            Location::Cell {
                file,
                sheet,
                row,
                column,
            } => match column {
                Some(c) => format!("{file} 工作表「{sheet}」第 {row} 行 {c} 列"),
                None => format!("{file} 工作表「{sheet}」第 {row} 行"),
            },
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { file } => write!(f, "{file}"),
            Location::Line { file, line } => write!(f, "{file}:{line}"),
            Location::Cell {
                file,
                sheet,
                row,
                column,
            } => match column {
                Some(c) => write!(f, "{file} [{sheet}] {c}{row}"),
                None => write!(f, "{file} [{sheet}] row {row}"),
            },
        }
    }
}

/// What is wrong with an answers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerProblem {
    Io(String),
    Syntax(String),
    /// A value of the wrong shape: `what` names the field, `expected` the shape.
    Shape {
        what: String,
        expected: &'static str,
    },
    UnknownKey(String),
    CatalogMismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    MalformedClauseId(String),
    UnknownClause(String),
    Duplicate {
        id: String,
        first: String,
    },
    InvalidRating(String),
    NaWithoutJustification(String),
    InvalidDate(String),
    HeaderMismatch {
        expected: String,
        found: String,
    },
    MissingSheet(String),
    EvidenceMissing {
        id: String,
        path: String,
    },
    EvidenceHashMismatch {
        id: String,
        path: String,
        declared: String,
        actual: String,
    },
    InvalidScope(String),
}

/// One problem in an answers file, with its location and, when there is one, its clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerError {
    pub location: Location,
    pub problem: AnswerProblem,
}

impl Msg for AnswerError {
    fn code(&self) -> &'static str {
        use AnswerProblem::*;
        match &self.problem {
            Io(_) => "answers.io",
            Syntax(_) => "answers.syntax",
            Shape { .. } => "answers.shape",
            UnknownKey(_) => "answers.unknown_key",
            CatalogMismatch { .. } => "answers.catalog_mismatch",
            MalformedClauseId(_) => "answers.clause_id_malformed",
            UnknownClause(_) => "answers.clause_unknown",
            Duplicate { .. } => "answers.clause_duplicate",
            InvalidRating(_) => "answers.rating_invalid",
            NaWithoutJustification(_) => "answers.na_without_justification",
            InvalidDate(_) => "answers.date_invalid",
            HeaderMismatch { .. } => "answers.header_mismatch",
            MissingSheet(_) => "answers.sheet_missing",
            EvidenceMissing { .. } => "answers.evidence_missing",
            EvidenceHashMismatch { .. } => "answers.evidence_hash_mismatch",
            InvalidScope(_) => "answers.scope_invalid",
        }
    }

    fn message_zh(&self) -> String {
        use AnswerProblem::*;
        let what = match &self.problem {
            Io(m) => format!("无法读取文件：{m}"),
            Syntax(m) => format!("格式错误：{m}"),
            Shape { what, expected } => format!("{what} 的格式不对，应为 {expected}"),
            UnknownKey(k) => format!("未知字段 {k:?}"),
            CatalogMismatch {
                field,
                expected,
                found,
            } => format!("文件属于另一版能力目录：{field} 为 {found:?}，本目录为 {expected:?}"),
            MalformedClauseId(s) => {
                format!("条款编号格式错误：{s:?}，应形如 T5.2.L3.c")
            }
            UnknownClause(s) => format!("条款 {s} 在能力目录中不存在"),
            Duplicate { id, first } => format!("条款 {id} 重复作答（首次出现于 {first}）"),
            InvalidRating(v) => format!(
                "评级 {v:?} 无效，应为 met（符合）、partial（部分符合）、not_met（不符合）、na（不适用）或 unrated（未评）"
            ),
            NaWithoutJustification(id) => format!("条款 {id} 评为不适用（na），但未填写理由"),
            InvalidDate(v) => format!("日期 {v:?} 无效，应为 YYYY-MM-DD"),
            HeaderMismatch { expected, found } => {
                format!("表头为 {found:?}，应为 {expected:?}")
            }
            MissingSheet(s) => format!("缺少工作表「{s}」"),
            EvidenceMissing { id, path } => {
                format!("条款 {id} 的证据文件 {path} 不存在，且未记录 sha256")
            }
            EvidenceHashMismatch {
                id,
                path,
                declared,
                actual,
            } => format!(
                "条款 {id} 的证据文件 {path} 的 sha256 为 {actual}，与记录的 {declared} 不符"
            ),
            InvalidScope(s) => format!("范围 {s:?} 无效，应为表号如 T4、T10-T20"),
        };
        format!("{}：{what}", self.location.zh())
    }

    fn message_en(&self) -> String {
        use AnswerProblem::*;
        let what = match &self.problem {
            Io(m) => format!("cannot read file: {m}"),
            Syntax(m) => format!("syntax error: {m}"),
            Shape { what, expected } => format!("{what} must be {expected}"),
            UnknownKey(k) => format!("unknown key {k:?}"),
            CatalogMismatch {
                field,
                expected,
                found,
            } => format!(
                "file is for another catalog: {field} is {found:?}, this catalog's is {expected:?}"
            ),
            MalformedClauseId(s) => {
                format!("malformed clause ID {s:?}: expected the form T5.2.L3.c")
            }
            UnknownClause(s) => format!("clause {s} does not exist in the catalog"),
            Duplicate { id, first } => format!("clause {id} answered twice (first at {first})"),
            InvalidRating(v) => {
                format!("rating {v:?} is not one of met, partial, not_met, na, unrated")
            }
            NaWithoutJustification(id) => {
                format!("clause {id} is rated na without a justification")
            }
            InvalidDate(v) => format!("date {v:?} is not a YYYY-MM-DD date"),
            HeaderMismatch { expected, found } => {
                format!("header is {found:?}, expected {expected:?}")
            }
            MissingSheet(s) => format!("sheet {s:?} is missing"),
            EvidenceMissing { id, path } => format!(
                "evidence file {path} of clause {id} does not exist and no sha256 is recorded"
            ),
            EvidenceHashMismatch {
                id,
                path,
                declared,
                actual,
            } => format!(
                "evidence file {path} of clause {id} has sha256 {actual}, not the recorded {declared}"
            ),
            InvalidScope(s) => {
                format!("scope {s:?} is invalid: expected tables such as T4 or T10-T20")
            }
        };
        format!("{}: {what}", self.location)
    }
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_en())
    }
}

impl std::error::Error for AnswerError {}

/// All problems found in one answers file (parsing reports every problem, not just the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AnswerErrors(pub Vec<AnswerError>);

impl fmt::Display for AnswerErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", e.bilingual())?;
        }
        Ok(())
    }
}
