//! The CJK font that PDF reports embed: `[assess] pdf_font` (or `BALLAST_PDF_FONT`), else the
//! first of Debian's CJK font files that exists. Used by the server's PDF export and by the
//! CLI's offline `ballast assess score --format pdf`.

use std::path::{Path, PathBuf};

/// Debian's CJK font files, in order of preference: `fonts-noto-cjk` (a TrueType collection; the
/// Simplified Chinese face is used), `fonts-droid-fallback`, `fonts-wqy-microhei`,
/// `fonts-wqy-zenhei`.
pub const KNOWN_FONTS: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
];

/// No font could be read.
#[derive(Debug, thiserror::Error)]
pub enum FontError {
    #[error(
        "PDF 字体 {path} 无法读取：{reason}（由 [assess] pdf_font 或 BALLAST_PDF_FONT 指定） — the PDF font {path} cannot be read: {reason} (set by [assess] pdf_font or BALLAST_PDF_FONT)"
    )]
    Configured { path: String, reason: String },
    #[error(
        "找不到生成 PDF 所需的中文字体，已尝试：{tried}。请安装 Debian 软件包 fonts-noto-cjk，或用 [assess] pdf_font / BALLAST_PDF_FONT 指定字体文件 — no CJK font for PDF reports; tried: {tried}. Install Debian's fonts-noto-cjk, or set [assess] pdf_font / BALLAST_PDF_FONT to a font file"
    )]
    NotFound { tried: String },
}

impl FontError {
    /// A stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            FontError::Configured { .. } => "assess.pdf_font_unreadable",
            FontError::NotFound { .. } => "assess.pdf_font_missing",
        }
    }
}

/// The font file to use: the configured one (which must exist: no silent fallback), else the
/// first known Debian path that exists.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, FontError> {
    if let Some(p) = configured {
        return match std::fs::metadata(p) {
            Ok(m) if m.is_file() => Ok(p.to_path_buf()),
            Ok(_) => Err(FontError::Configured {
                path: p.display().to_string(),
                reason: "not a file".into(),
            }),
            Err(e) => Err(FontError::Configured {
                path: p.display().to_string(),
                reason: e.to_string(),
            }),
        };
    }
    KNOWN_FONTS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| FontError::NotFound {
            tried: KNOWN_FONTS.join(", "),
        })
}

/// The located font's path and bytes.
pub fn read(configured: Option<&Path>) -> Result<(PathBuf, Vec<u8>), FontError> {
    let path = locate(configured)?;
    let bytes = std::fs::read(&path).map_err(|e| FontError::Configured {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((path, bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_configured_font_must_exist() {
        let e = locate(Some(Path::new("/nonexistent/font.ttf"))).unwrap_err();
        assert_eq!(e.code(), "assess.pdf_font_unreadable");
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/font.ttf") && msg.contains("字体"),
            "{msg}"
        );
    }

    #[test]
    fn the_not_found_message_names_every_path_tried() {
        let msg = FontError::NotFound {
            tried: KNOWN_FONTS.join(", "),
        }
        .to_string();
        for p in KNOWN_FONTS {
            assert!(msg.contains(p), "{msg}");
        }
        assert!(msg.contains("fonts-noto-cjk") && msg.contains("找不到"));
    }
}
