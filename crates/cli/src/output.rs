//! Shared edge helpers: loading the catalog, reporting bad input, writing results.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ballast_maturity::{Catalog, Msg};

use crate::Exit;

/// Prints a bilingual bad-input message to stderr and returns the error that exits with 2.
pub fn bad_input(zh: impl AsRef<str>, en: impl AsRef<str>) -> anyhow::Error {
    eprintln!("错误：{}\nerror: {}", zh.as_ref(), en.as_ref());
    Exit(2).into()
}

/// Prints an error that carries its own bilingual message, exit 2.
pub fn bad(e: &dyn Msg) -> anyhow::Error {
    bad_input(e.message_zh(), format!("{} [{}]", e.message_en(), e.code()))
}

/// The bundled catalog, or the edition in `path`.
pub fn load_catalog(path: Option<&Path>) -> anyhow::Result<Catalog> {
    match path {
        None => Catalog::bundled().map_err(|e| bad(&e)),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                bad_input(
                    format!("无法读取能力目录文件 {}：{e}", p.display()),
                    format!("cannot read catalog file {}: {e}", p.display()),
                )
            })?;
            Catalog::from_yaml_str(&text, &p.display().to_string()).map_err(|e| bad(&e))
        }
    }
}

/// Writes `bytes` to `path`, or to `stdout` when there is none.
pub fn emit(bytes: &[u8], path: Option<&Path>, stdout: &mut dyn Write) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            stdout.write_all(bytes)?;
            Ok(())
        }
    }
}

/// Binary formats are not written to a terminal: they need `-o FILE`.
pub fn require_output(path: Option<&Path>, format: &str) -> anyhow::Result<()> {
    if path.is_none() {
        return Err(bad_input(
            format!("{format} 格式需要用 -o 指定输出文件"),
            format!("the {format} format needs an output file: -o FILE"),
        ));
    }
    Ok(())
}
