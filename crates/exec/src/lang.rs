//! Script languages the engine runs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ExecError;

/// A language a script or inline command is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Bash,
    Sh,
    Python3,
}

impl Language {
    /// Every language, in display order.
    pub const ALL: [Language; 3] = [Language::Bash, Language::Sh, Language::Python3];

    /// Parses the stable name (`bash`, `sh`, `python3`); surrounding blanks are ignored, case is not.
    pub fn parse(s: &str) -> Result<Language, ExecError> {
        match s.trim() {
            "bash" => Ok(Language::Bash),
            "sh" => Ok(Language::Sh),
            "python3" => Ok(Language::Python3),
            other => Err(ExecError::LanguageUnknown(other.to_string())),
        }
    }

    /// The stable name, also used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Bash => "bash",
            Language::Sh => "sh",
            Language::Python3 => "python3",
        }
    }

    /// The interpreter program that runs a script of this language (looked up on `PATH`).
    pub fn interpreter(self) -> &'static str {
        self.as_str()
    }

    /// File extension (without the dot) for a script file of this language.
    pub fn file_extension(self) -> &'static str {
        match self {
            Language::Bash | Language::Sh => "sh",
            Language::Python3 => "py",
        }
    }

    /// True for the shell languages (bash and sh).
    pub fn is_shell(self) -> bool {
        matches!(self, Language::Bash | Language::Sh)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Language {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Language::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for lang in Language::ALL {
            assert_eq!(Language::parse(lang.as_str()).unwrap(), lang);
            let json = serde_json::to_string(&lang).unwrap();
            assert_eq!(json, format!("\"{}\"", lang.as_str()));
            assert_eq!(serde_json::from_str::<Language>(&json).unwrap(), lang);
        }
    }

    #[test]
    fn interpreters_and_extensions() {
        assert_eq!(Language::Bash.interpreter(), "bash");
        assert_eq!(Language::Sh.interpreter(), "sh");
        assert_eq!(Language::Python3.interpreter(), "python3");
        assert_eq!(Language::Bash.file_extension(), "sh");
        assert_eq!(Language::Python3.file_extension(), "py");
    }

    #[test]
    fn unknown_language_is_refused_with_code() {
        let err = Language::parse("perl").unwrap_err();
        assert_eq!(err.code(), "exec.language_unknown");
        assert!(err.message_en().contains("perl"));
        assert!(Language::parse("Bash").is_err());
    }
}
