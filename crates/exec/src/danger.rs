//! Dangerous-content detection by parsing, not by raw regular expressions.
//!
//! - **Shell** (bash, sh): the script is parsed with [`brush_parser`] (a bash/POSIX parser:
//!   lists, `&&`/`||`, pipes, subshells, brace groups, functions, `if`/`for`/`while`/`case`,
//!   here-documents, `$(…)` and backquotes). Every simple command becomes an argv with quotes
//!   and escapes removed (`'r'm`, `r\m`, `"/"`, `$'\x72m'` all give `rm` or `/`), then it is
//!   normalized: wrappers are stripped (`sudo [opts]`, `doas`, `env [opts] [VAR=x…]`, `nohup`,
//!   `nice`, `timeout`, `command`, `exec`, `xargs`, `busybox`, `setsid`, `time`, `stdbuf`,
//!   `ionice`, `builtin`) and absolute paths reduced to their base name. Command
//!   substitutions, process substitutions, `bash -c '…'`/`sh -c "…"`/`su -c`, `eval`, `env -S`,
//!   text piped from `echo`/`printf` into a shell and here-documents fed to a shell are parsed
//!   and scanned in turn (nesting up to [`MAX_NESTING`]). Simple constant variables
//!   (`X=rm; $X -rf /`) and `${X:-default}` are substituted.
//! - **Python 3**: a token-level scan (strings, comments, dotted names). The string literal (or
//!   list of string literals) given to `os.system`, `os.popen`, `subprocess.*` and the like is
//!   run through the shell scanner; `shutil.rmtree` on `/` or a top-level system directory and
//!   `os.remove`/`unlink`/`rmdir` on system paths are matched directly. Values computed at run
//!   time are not followed.
//! - **SQL**: parsed with [`sqlparser`] (generic dialect): `DROP DATABASE`/`SCHEMA`,
//!   `DROP TABLE`, `TRUNCATE`, `DELETE`/`UPDATE` without `WHERE`.
//!
//! Fail closed: text that does not parse (or nests too deeply) yields a finding with action
//! `require_approval`; the commands of lines that do parse on their own are still matched.

use std::collections::HashMap;
use std::fmt;

use brush_parser::ast;
use brush_parser::word::{Parameter, ParameterExpr, WordPiece, WordPieceWithSource};
use serde::{Deserialize, Serialize};

use crate::error::{ExecError, line_of};
use crate::lang::Language;

/// How deep nested shell text (`bash -c "…$(…)…"`) is followed.
pub const MAX_NESTING: usize = 8;
/// Bracket nesting above which a script is not parsed (protects the parser's stack).
pub const MAX_BRACKET_DEPTH: usize = 100;
/// Longest `command` text kept in a finding.
const MAX_SHOWN: usize = 200;

/// Which scanner a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanLanguage {
    /// bash and sh (also shell text embedded in Python calls).
    Shell,
    Python3,
    Sql,
}

impl From<Language> for ScanLanguage {
    fn from(l: Language) -> ScanLanguage {
        match l {
            Language::Bash | Language::Sh => ScanLanguage::Shell,
            Language::Python3 => ScanLanguage::Python3,
        }
    }
}

/// What a finding does to a run. Ordered: `Warn < RequireApproval < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Warn,
    RequireApproval,
    Block,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Warn => "warn",
            Action::RequireApproval => "require_approval",
            Action::Block => "block",
        })
    }
}

/// Another name for [`Action`] (what a rule does when it matches).
pub type RuleAction = Action;

/// The built-in detectors (code, not patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `rm` with a recursive flag on `/`, `/*` or a top-level system directory, or with
    /// `--no-preserve-root`.
    RmRecursiveSystem,
    /// `mkfs`, `mkfs.*`, `mke2fs`, `mkswap`, `wipefs`.
    Mkfs,
    /// `dd of=` a disk device.
    DdToDevice,
    /// `shutdown`, `reboot`, `halt`, `poweroff`, `init 0|6`, `telinit 0|6`,
    /// `systemctl reboot|poweroff|halt|kexec`.
    PowerOff,
    /// A function that calls itself piped to itself (`:(){ :|:& };:`).
    ForkBomb,
    /// `chmod`/`chown`/`chgrp` recursive on `/` or a top-level system directory.
    ChmodRecursiveRoot,
    /// An output redirect onto a disk device (`> /dev/sda`).
    RedirectToDisk,
    /// `iptables -F`/`--flush` (also `ip6tables`), `nft flush ruleset`.
    FirewallFlush,
    /// `kill -9 -1` (every process).
    KillAll,
    /// `crontab -r`.
    CrontabRemove,
    /// Python `shutil.rmtree` on `/` or a top-level system directory.
    PyRmtreeSystem,
    /// Python `os.remove`/`unlink`/`rmdir`/`removedirs` on a system path.
    PyRemoveSystem,
    SqlDropDatabase,
    SqlDropTable,
    SqlTruncate,
    SqlDeleteWithoutWhere,
    SqlUpdateWithoutWhere,
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Matcher {
    /// A built-in detector.
    Builtin { check: Check },
    /// A shell command by normalized name (`*` at the end matches any suffix: `mkfs*`). Every
    /// word of `args_all` must be an argument, and one of `args_any` if that is not empty.
    Command {
        names: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args_any: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args_all: Vec<String>,
    },
}

/// A dangerous-content rule, managed by platform administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub language: ScanLanguage,
    pub matcher: Matcher,
    pub action: Action,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub message_zh: String,
    pub message_en: String,
}

fn yes() -> bool {
    true
}

/// One match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule_id: String,
    pub action: Action,
    /// 1-based line in the scanned text (for nested text: the line of the outer command).
    pub line: u32,
    /// The normalized command, for display.
    pub command: String,
    pub message_zh: String,
    pub message_en: String,
}

/// The result of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    pub findings: Vec<Finding>,
    /// Why (part of) the text could not be parsed, if it could not.
    pub parse_error: Option<String>,
}

impl Scan {
    /// The strongest action among the findings.
    pub fn worst(&self) -> Option<Action> {
        self.findings.iter().map(|f| f.action).max()
    }
}

/// The id of the finding made for text that does not parse.
pub const UNPARSEABLE_RULE_ID: &str = "unparseable";

fn rule(
    id: &str,
    language: ScanLanguage,
    check: Check,
    action: Action,
    zh: &str,
    en: &str,
) -> Rule {
    Rule {
        id: id.to_string(),
        language,
        matcher: Matcher::Builtin { check },
        action,
        enabled: true,
        message_zh: zh.to_string(),
        message_en: en.to_string(),
    }
}

/// The rules Ballast ships with.
pub fn default_rules() -> Vec<Rule> {
    use Action::*;
    use Check::*;
    use ScanLanguage::*;
    vec![
        rule(
            "shell.rm_root",
            Shell,
            RmRecursiveSystem,
            Block,
            "递归删除根目录或系统目录",
            "recursive delete of / or a system directory",
        ),
        rule(
            "shell.mkfs",
            Shell,
            Mkfs,
            Block,
            "格式化文件系统",
            "creates a file system (erases a disk)",
        ),
        rule(
            "shell.dd_device",
            Shell,
            DdToDevice,
            Block,
            "dd 直接写入磁盘设备",
            "dd writes directly to a disk device",
        ),
        rule(
            "shell.redirect_disk",
            Shell,
            RedirectToDisk,
            Block,
            "重定向输出覆盖磁盘设备",
            "redirect overwrites a disk device",
        ),
        rule(
            "shell.fork_bomb",
            Shell,
            ForkBomb,
            Block,
            "fork 炸弹",
            "fork bomb",
        ),
        rule(
            "shell.chmod_root",
            Shell,
            ChmodRecursiveRoot,
            Block,
            "递归修改根目录或系统目录的权限/属主",
            "recursive permission/owner change of / or a system directory",
        ),
        rule(
            "shell.kill_all",
            Shell,
            KillAll,
            Block,
            "终止所有进程",
            "kills every process",
        ),
        rule(
            "shell.power",
            Shell,
            PowerOff,
            RequireApproval,
            "关机或重启主机",
            "shuts down or reboots the host",
        ),
        rule(
            "shell.firewall_flush",
            Shell,
            FirewallFlush,
            RequireApproval,
            "清空防火墙规则",
            "flushes the firewall rules",
        ),
        rule(
            "shell.crontab_remove",
            Shell,
            CrontabRemove,
            RequireApproval,
            "删除全部定时任务",
            "removes the whole crontab",
        ),
        rule(
            "python.rmtree_root",
            Python3,
            PyRmtreeSystem,
            Block,
            "递归删除根目录或系统目录",
            "recursive delete of / or a system directory",
        ),
        rule(
            "python.remove_system",
            Python3,
            PyRemoveSystem,
            RequireApproval,
            "删除系统文件",
            "removes a system file",
        ),
        rule(
            "sql.drop_database",
            Sql,
            SqlDropDatabase,
            Block,
            "删除数据库",
            "drops a database or schema",
        ),
        rule(
            "sql.drop_table",
            Sql,
            SqlDropTable,
            RequireApproval,
            "删除数据表",
            "drops a table",
        ),
        rule(
            "sql.truncate",
            Sql,
            SqlTruncate,
            RequireApproval,
            "清空数据表",
            "truncates a table",
        ),
        rule(
            "sql.delete_without_where",
            Sql,
            SqlDeleteWithoutWhere,
            RequireApproval,
            "DELETE 没有 WHERE 条件",
            "DELETE without WHERE",
        ),
        rule(
            "sql.update_without_where",
            Sql,
            SqlUpdateWithoutWhere,
            RequireApproval,
            "UPDATE 没有 WHERE 条件",
            "UPDATE without WHERE",
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Rule files
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    id: String,
    language: Option<ScanLanguage>,
    matcher: Option<Matcher>,
    action: Option<Action>,
    enabled: Option<bool>,
    message_zh: Option<String>,
    message_en: Option<String>,
}

#[derive(Serialize)]
struct RuleFileOut<'a> {
    rule: &'a [Rule],
}

/// Reads a rule file: `[[rule]]` tables. An entry whose `id` is a built-in rule overrides only
/// the fields it gives (typically `enabled` or `action`); any other entry is a new rule and must
/// give every field. The result is the built-in rules (overridden) followed by the new ones.
/// Errors name the line.
pub fn rules_from_toml(text: &str) -> Result<Vec<Rule>, ExecError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| ExecError::Rules {
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_string(),
    })?;
    let mut rules = default_rules();
    let mut seen: Vec<String> = Vec::new();
    for spanned in file.rule {
        let line = Some(line_of(text, spanned.span().start));
        let entry = spanned.into_inner();
        let err = |message: String| ExecError::Rules { line, message };
        if entry.id.trim().is_empty() {
            return Err(err("rule id is empty".to_string()));
        }
        if seen.contains(&entry.id) {
            return Err(err(format!("rule `{}` appears twice", entry.id)));
        }
        seen.push(entry.id.clone());
        if let Some(existing) = rules.iter_mut().find(|r| r.id == entry.id) {
            if let Some(l) = entry.language
                && l != existing.language
            {
                return Err(err(format!(
                    "built-in rule `{}` cannot change its language",
                    entry.id
                )));
            }
            if let Some(m) = entry.matcher {
                existing.matcher = m;
            }
            if let Some(a) = entry.action {
                existing.action = a;
            }
            if let Some(e) = entry.enabled {
                existing.enabled = e;
            }
            if let Some(m) = entry.message_zh {
                existing.message_zh = m;
            }
            if let Some(m) = entry.message_en {
                existing.message_en = m;
            }
            continue;
        }
        let missing: Vec<&str> = [
            ("language", entry.language.is_none()),
            ("matcher", entry.matcher.is_none()),
            ("action", entry.action.is_none()),
            ("message_zh", entry.message_zh.is_none()),
            ("message_en", entry.message_en.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
        match (
            entry.language,
            entry.matcher,
            entry.action,
            entry.message_zh,
            entry.message_en,
        ) {
            (Some(language), Some(matcher), Some(action), Some(zh), Some(en)) => {
                if let Matcher::Command { names, .. } = &matcher
                    && (names.is_empty() || names.iter().any(|n| n.trim().is_empty()))
                {
                    return Err(err(format!("rule `{}`: command names are empty", entry.id)));
                }
                if matches!(matcher, Matcher::Command { .. }) && language != ScanLanguage::Shell {
                    return Err(err(format!(
                        "rule `{}`: command matchers apply to shell only",
                        entry.id
                    )));
                }
                rules.push(Rule {
                    id: entry.id,
                    language,
                    matcher,
                    action,
                    enabled: entry.enabled.unwrap_or(true),
                    message_zh: zh,
                    message_en: en,
                });
            }
            _ => {
                return Err(err(format!(
                    "new rule `{}` lacks: {}",
                    entry.id,
                    missing.join(", ")
                )));
            }
        }
    }
    Ok(rules)
}

/// Writes rules as a rule file that [`rules_from_toml`] reads back to the same list.
pub fn rules_to_toml(rules: &[Rule]) -> Result<String, ExecError> {
    toml::to_string(&RuleFileOut { rule: rules }).map_err(|e| ExecError::Rules {
        line: None,
        message: e.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Scanning
// ---------------------------------------------------------------------------------------------

/// Scans `text` written in `language` against the enabled `rules`.
pub fn scan(language: impl Into<ScanLanguage>, text: &str, rules: &[Rule]) -> Scan {
    let mut out = Scan::default();
    match language.into() {
        ScanLanguage::Shell => {
            let mut ctx = ShellCtx::default();
            ctx.scan_text(text, None, 0);
            ctx.report(rules, &mut out);
        }
        ScanLanguage::Python3 => scan_python(text, rules, &mut out),
        ScanLanguage::Sql => scan_sql_into(text, rules, &mut out),
    }
    out
}

/// [`scan`] of SQL text (there is no [`Language`] for SQL).
pub fn scan_sql(text: &str, rules: &[Rule]) -> Scan {
    scan(ScanLanguage::Sql, text, rules)
}

fn shown(s: &str) -> String {
    if s.len() <= MAX_SHOWN {
        return s.to_string();
    }
    let mut end = MAX_SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn finding(rule: &Rule, line: u32, command: &str) -> Finding {
    Finding {
        rule_id: rule.id.clone(),
        action: rule.action,
        line: line.max(1),
        command: shown(command),
        message_zh: rule.message_zh.clone(),
        message_en: rule.message_en.clone(),
    }
}

fn unparseable(out: &mut Scan, line: u32, what: &str, message: String) {
    if out.parse_error.is_none() {
        out.parse_error = Some(message.clone());
    }
    out.findings.push(Finding {
        rule_id: UNPARSEABLE_RULE_ID.to_string(),
        action: Action::RequireApproval,
        line: line.max(1),
        command: shown(what),
        message_zh: format!("内容无法解析，需要审批：{message}"),
        message_en: format!("the content could not be parsed; approval required: {message}"),
    });
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ------------------------------------ shell ------------------------------------

/// One simple command after quote removal and normalization.
#[derive(Debug, Clone, Default)]
struct Cmd {
    argv: Vec<String>,
    line: u32,
    /// Targets of output redirects.
    writes: Vec<String>,
    /// Text given on standard input by a here-document or here-string.
    stdin: Option<String>,
}

#[derive(Default)]
struct ShellCtx {
    cmds: Vec<Cmd>,
    fork_bombs: Vec<(u32, String)>,
    problems: Vec<(u32, String, String)>,
    vars: HashMap<String, String>,
}

const SHELLS: &[&str] = &["bash", "sh", "dash", "zsh", "ksh", "ash", "mksh", "rbash"];

fn bracket_depth(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut max = 0;
    for b in text.bytes() {
        match b {
            b'(' | b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn parse_shell(text: &str) -> Result<ast::Program, (u32, String)> {
    if bracket_depth(text) > MAX_BRACKET_DEPTH {
        return Err((
            1,
            format!("nesting deeper than {MAX_BRACKET_DEPTH} brackets"),
        ));
    }
    let options = brush_parser::ParserOptions::default();
    let result = std::panic::catch_unwind(|| {
        let mut parser = brush_parser::Parser::new(std::io::Cursor::new(text), &options);
        parser.parse_program()
    });
    match result {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(e)) => {
            let line = match &e {
                brush_parser::ParseError::ParsingNear(p) => p.line,
                brush_parser::ParseError::Tokenizing { position, .. } => {
                    position.as_ref().map_or(1, |p| p.line)
                }
                _ => text.lines().count().max(1),
            };
            Err((to_u32(line), e.to_string()))
        }
        Err(_) => Err((1, "the shell parser failed on this text".to_string())),
    }
}

fn decode_ansi_c(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('e') | Some('E') => out.push('\u{1b}'),
            Some('x') => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            chars.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                out.extend(char::from_u32(v));
            }
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                let mut n = 1;
                while n < 3 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                out.extend(char::from_u32(v));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn basename(s: &str) -> &str {
    if s.len() > 1 && s.contains('/') {
        s.trim_end_matches('/').rsplit('/').next().unwrap_or(s)
    } else {
        s
    }
}

fn is_assignment(s: &str) -> bool {
    match s.split_once('=') {
        Some((name, _)) => crate::params::is_valid_name(name),
        None => false,
    }
}

/// Index of the first argument after options starting at `i`; `with_arg` options take the
/// next word.
fn skip_options(argv: &[String], mut i: usize, with_arg: &[&str]) -> usize {
    while let Some(a) = argv.get(i) {
        if a == "--" {
            return i + 1;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        i += if with_arg.contains(&a.as_str()) { 2 } else { 1 };
    }
    i
}

fn skip_assignments(argv: &[String], mut i: usize) -> usize {
    while argv.get(i).is_some_and(|a| is_assignment(a)) {
        i += 1;
    }
    i
}

/// Strips wrapper commands and reduces the command name to its base name. Returns the argv and,
/// for `env -S`, text to be scanned as shell.
fn normalize(mut argv: Vec<String>, nested: &mut Vec<String>) -> Vec<String> {
    for _ in 0..32 {
        let Some(first) = argv.first() else { break };
        let name = basename(first).to_string();
        let start = match name.as_str() {
            "sudo" | "doas" => {
                let i = skip_options(
                    &argv,
                    1,
                    &[
                        "-u",
                        "-g",
                        "-p",
                        "-C",
                        "-U",
                        "-r",
                        "-t",
                        "-T",
                        "-D",
                        "-R",
                        "--user",
                        "--group",
                        "--prompt",
                        "--close-from",
                        "--other-user",
                        "--role",
                        "--type",
                        "--command-timeout",
                        "--chdir",
                        "--chroot",
                    ],
                );
                skip_assignments(&argv, i)
            }
            "env" => {
                let mut i = 1;
                while let Some(a) = argv.get(i) {
                    if a == "--" {
                        i += 1;
                        break;
                    }
                    if a == "-S" || a == "--split-string" {
                        if let Some(s) = argv.get(i + 1) {
                            nested.push(s.clone());
                        }
                        i += 2;
                    } else if let Some(s) = a.strip_prefix("--split-string=") {
                        nested.push(s.to_string());
                        i += 1;
                    } else if a == "-u" || a == "-C" || a == "--unset" || a == "--chdir" {
                        i += 2;
                    } else if a.starts_with('-') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                skip_assignments(&argv, i)
            }
            "nohup" | "setsid" | "time" | "builtin" | "busybox" => skip_options(&argv, 1, &[]),
            "nice" => skip_options(&argv, 1, &["-n", "--adjustment"]),
            "ionice" => skip_options(
                &argv,
                1,
                &["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"],
            ),
            "stdbuf" => skip_options(&argv, 1, &["-i", "-o", "-e"]),
            "timeout" => {
                let i = skip_options(&argv, 1, &["-s", "-k", "--signal", "--kill-after"]);
                i + 1
            }
            "command" => {
                if argv
                    .iter()
                    .skip(1)
                    .take_while(|a| a.starts_with('-'))
                    .any(|a| a.contains('v') || a.contains('V'))
                {
                    break;
                }
                skip_options(&argv, 1, &[])
            }
            "exec" => skip_options(&argv, 1, &["-a"]),
            "xargs" => skip_options(
                &argv,
                1,
                &[
                    "-I",
                    "-n",
                    "-P",
                    "-L",
                    "-l",
                    "-d",
                    "-s",
                    "-E",
                    "-e",
                    "-a",
                    "--arg-file",
                    "--delimiter",
                    "--max-args",
                    "--max-procs",
                    "--max-lines",
                    "--max-chars",
                    "--eof",
                    "--replace",
                ],
            ),
            _ => {
                if let Some(f) = argv.first_mut() {
                    *f = name;
                }
                break;
            }
        };
        if start == 0 || start > argv.len() {
            argv.clear();
            break;
        }
        argv.drain(..start);
    }
    argv
}

impl ShellCtx {
    fn scan_text(&mut self, text: &str, outer_line: Option<u32>, depth: usize) {
        if depth > MAX_NESTING {
            self.problems.push((
                outer_line.unwrap_or(1),
                text.to_string(),
                format!("shell text nested deeper than {MAX_NESTING} levels"),
            ));
            return;
        }
        match parse_shell(text) {
            Ok(program) => {
                let mut w = Walker {
                    ctx: self,
                    outer_line,
                    depth,
                };
                for list in &program.complete_commands {
                    w.list(list);
                }
            }
            Err((line, message)) => {
                let at = outer_line.unwrap_or(line);
                self.problems.push((at, text.to_string(), message));
                // Still match what can be matched: every line that parses on its own.
                if text.lines().nth(1).is_some() {
                    for (i, l) in text.lines().enumerate() {
                        if let Ok(program) = parse_shell(l) {
                            let line_no = outer_line.unwrap_or(to_u32(i + 1));
                            let mut w = Walker {
                                ctx: self,
                                outer_line: Some(line_no),
                                depth,
                            };
                            for list in &program.complete_commands {
                                w.list(list);
                            }
                        }
                    }
                }
            }
        }
    }

    fn report(&self, rules: &[Rule], out: &mut Scan) {
        for (line, what, message) in &self.problems {
            unparseable(out, *line, what, message.clone());
        }
        for rule in rules
            .iter()
            .filter(|r| r.enabled && r.language == ScanLanguage::Shell)
        {
            match &rule.matcher {
                Matcher::Builtin {
                    check: Check::ForkBomb,
                } => {
                    for (line, name) in &self.fork_bombs {
                        out.findings.push(finding(
                            rule,
                            *line,
                            &format!("{name}(){{ {name}|{name}& }}"),
                        ));
                    }
                }
                matcher => {
                    for cmd in &self.cmds {
                        if cmd_matches(matcher, cmd) {
                            let mut shown_cmd = cmd.argv.join(" ");
                            for w in &cmd.writes {
                                shown_cmd.push_str(" > ");
                                shown_cmd.push_str(w);
                            }
                            out.findings
                                .push(finding(rule, cmd.line, shown_cmd.trim_start()));
                        }
                    }
                }
            }
        }
        out.findings.sort_by_key(|f| f.line);
    }
}

struct Walker<'a> {
    ctx: &'a mut ShellCtx,
    outer_line: Option<u32>,
    depth: usize,
}

impl Walker<'_> {
    fn line_of_word(&self, w: &ast::Word) -> u32 {
        self.outer_line
            .unwrap_or_else(|| w.loc.as_ref().map_or(1, |l| to_u32(l.start.line)))
    }

    fn nested(&mut self, text: &str, line: u32) {
        let depth = self.depth + 1;
        self.ctx.scan_text(text, Some(line), depth);
    }

    fn list(&mut self, list: &ast::CompoundList) {
        for item in &list.0 {
            self.and_or(&item.0);
        }
    }

    fn and_or(&mut self, a: &ast::AndOrList) {
        self.pipeline(&a.first);
        for next in &a.additional {
            match next {
                ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p),
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline) {
        let mut prev: Option<Cmd> = None;
        for command in &p.seq {
            let this = self.command(command);
            // `echo "…" | sh`: the echoed text is a script.
            if let (Some(prev_cmd), Some(cmd)) = (&prev, &this)
                && is_shell_reading_stdin(&cmd.argv)
                && matches!(
                    prev_cmd.argv.first().map(String::as_str),
                    Some("echo" | "printf")
                )
            {
                let text: Vec<&str> = prev_cmd
                    .argv
                    .iter()
                    .skip(1)
                    .filter(|a| !a.starts_with('-'))
                    .map(String::as_str)
                    .collect();
                self.nested(&text.join(" ").replace("\\n", "\n"), cmd.line);
            }
            prev = this;
        }
    }

    /// Walks a command; returns the simple command it was, if it was one.
    fn command(&mut self, c: &ast::Command) -> Option<Cmd> {
        match c {
            ast::Command::Simple(s) => self.simple(s),
            ast::Command::Compound(cc, redirects) => {
                self.compound(cc);
                if let Some(r) = redirects {
                    self.redirect_only(&r.0);
                }
                None
            }
            ast::Command::Function(f) => {
                self.function(f);
                None
            }
            ast::Command::ExtendedTest(t, _) => {
                self.test_expr(&t.expr);
                None
            }
        }
    }

    fn test_expr(&mut self, e: &ast::ExtendedTestExpr) {
        match e {
            ast::ExtendedTestExpr::And(a, b) | ast::ExtendedTestExpr::Or(a, b) => {
                self.test_expr(a);
                self.test_expr(b);
            }
            ast::ExtendedTestExpr::Not(a) | ast::ExtendedTestExpr::Parenthesized(a) => {
                self.test_expr(a)
            }
            ast::ExtendedTestExpr::UnaryTest(_, w) => {
                self.word(w);
            }
            ast::ExtendedTestExpr::BinaryTest(_, a, b) => {
                self.word(a);
                self.word(b);
            }
        }
    }

    fn redirect_only(&mut self, redirects: &[ast::IoRedirect]) {
        let mut cmd = Cmd::default();
        for r in redirects {
            self.redirect(r, &mut cmd);
        }
        if !cmd.writes.is_empty() {
            self.ctx.cmds.push(cmd);
        }
    }

    fn compound(&mut self, cc: &ast::CompoundCommand) {
        match cc {
            ast::CompoundCommand::Arithmetic(a) => {
                // `( ( cmd ) )` is nested subshells to bash when it is not valid arithmetic;
                // the parser reads it as `(( … ))`, so scan such text as shell as well.
                let text = a.expr.value.trim();
                let catch = std::panic::catch_unwind(|| brush_parser::arithmetic::parse(text));
                if !matches!(catch, Ok(Ok(_))) {
                    let line = self.outer_line.unwrap_or_else(|| to_u32(a.loc.start.line));
                    self.nested(text, line);
                }
                self.arithmetic(&a.expr)
            }
            ast::CompoundCommand::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.arithmetic(e);
                }
                self.list(&f.body.list)
            }
            ast::CompoundCommand::BraceGroup(b) => self.list(&b.list),
            ast::CompoundCommand::Subshell(s) => self.list(&s.list),
            ast::CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(w);
                }
                self.list(&f.body.list);
            }
            ast::CompoundCommand::CaseClause(c) => {
                self.word(&c.value);
                for item in &c.cases {
                    if let Some(l) = &item.cmd {
                        self.list(l);
                    }
                }
            }
            ast::CompoundCommand::IfClause(i) => {
                self.list(&i.condition);
                self.list(&i.then);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c);
                    }
                    self.list(&e.body);
                }
            }
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                self.list(&w.0);
                self.list(&w.1.list);
            }
            ast::CompoundCommand::Coprocess(c) => {
                self.command(&c.body);
            }
        }
    }

    /// Arithmetic text can hold command substitutions: `(( $(reboot) ))`.
    fn arithmetic(&mut self, e: &ast::UnexpandedArithmeticExpr) {
        if e.value.contains('$') || e.value.contains('`') {
            let w = ast::Word {
                value: e.value.clone(),
                loc: None,
            };
            self.word(&w);
        }
    }

    fn function(&mut self, f: &ast::FunctionDefinition) {
        let name = self.word(&f.fname);
        let line = self.line_of_word(&f.fname);
        if calls_itself_piped(&f.body.0, &name) {
            self.ctx.fork_bombs.push((line, name));
        }
        self.compound(&f.body.0);
        if let Some(r) = &f.body.1 {
            self.redirect_only(&r.0);
        }
    }

    /// Quote removal and expansion of one word; command substitutions inside are scanned.
    fn word(&mut self, w: &ast::Word) -> String {
        let line = self.line_of_word(w);
        let options = brush_parser::ParserOptions::default();
        match brush_parser::word::parse(&w.value, &options) {
            Ok(pieces) => {
                let mut out = String::new();
                self.pieces(&pieces, line, &mut out);
                out
            }
            Err(_) => w.value.replace(['\'', '"', '\\'], ""),
        }
    }

    fn pieces(&mut self, pieces: &[WordPieceWithSource], line: u32, out: &mut String) {
        for p in pieces {
            match &p.piece {
                WordPiece::Text(t) | WordPiece::SingleQuotedText(t) => out.push_str(t),
                WordPiece::AnsiCQuotedText(t) => out.push_str(&decode_ansi_c(t)),
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => self.pieces(inner, line, out),
                WordPiece::TildeExpansion(_) => out.push('~'),
                WordPiece::ParameterExpansion(expr) => self.parameter(expr, line, out),
                WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                    self.nested(s, line);
                    out.push_str("$(…)");
                }
                WordPiece::EscapeSequence(s) => {
                    let rest = s.strip_prefix('\\').unwrap_or(s);
                    if rest != "\n" {
                        out.push_str(rest);
                    }
                }
                WordPiece::ArithmeticExpression(e) => {
                    let saved = self.outer_line;
                    self.outer_line = Some(line);
                    self.arithmetic(e);
                    self.outer_line = saved;
                    out.push_str("$((…))");
                }
            }
        }
    }

    fn parameter(&mut self, expr: &ParameterExpr, line: u32, out: &mut String) {
        let name = |p: &Parameter| match p {
            Parameter::Named(n) => Some(n.clone()),
            _ => None,
        };
        match expr {
            ParameterExpr::Parameter {
                parameter,
                indirect: false,
            } => match name(parameter).and_then(|n| self.ctx.vars.get(&n).cloned().map(|v| (n, v)))
            {
                Some((_, v)) => out.push_str(&v),
                None => out.push_str(&format!("${}", name(parameter).unwrap_or_default())),
            },
            ParameterExpr::UseDefaultValues {
                parameter,
                default_value: Some(d),
                ..
            } => match name(parameter).and_then(|n| self.ctx.vars.get(&n).cloned()) {
                Some(v) => out.push_str(&v),
                None => {
                    let w = ast::Word {
                        value: d.clone(),
                        loc: None,
                    };
                    let saved = self.outer_line;
                    self.outer_line = Some(line);
                    out.push_str(&self.word(&w));
                    self.outer_line = saved;
                }
            },
            _ => out.push_str("${…}"),
        }
    }

    fn redirect(&mut self, r: &ast::IoRedirect, cmd: &mut Cmd) {
        match r {
            ast::IoRedirect::File(_, kind, target) => match target {
                ast::IoFileRedirectTarget::Filename(w) => {
                    let t = self.word(w);
                    if matches!(
                        kind,
                        ast::IoFileRedirectKind::Write
                            | ast::IoFileRedirectKind::Append
                            | ast::IoFileRedirectKind::Clobber
                            | ast::IoFileRedirectKind::ReadAndWrite
                    ) {
                        cmd.writes.push(t);
                    }
                }
                ast::IoFileRedirectTarget::ProcessSubstitution(_, sub) => self.list(&sub.list),
                ast::IoFileRedirectTarget::Duplicate(w) => {
                    self.word(w);
                }
                ast::IoFileRedirectTarget::Fd(_) => {}
            },
            ast::IoRedirect::HereDocument(_, doc) => {
                let body = if doc.requires_expansion {
                    let options = brush_parser::ParserOptions::default();
                    match brush_parser::word::parse_heredoc(&doc.doc.value, &options) {
                        Ok(pieces) => {
                            let mut out = String::new();
                            self.pieces(&pieces, cmd.line, &mut out);
                            out
                        }
                        Err(_) => doc.doc.value.clone(),
                    }
                } else {
                    doc.doc.value.clone()
                };
                cmd.stdin = Some(body);
            }
            ast::IoRedirect::HereString(_, w) => cmd.stdin = Some(self.word(w)),
            ast::IoRedirect::OutputAndError(w, _) => {
                let t = self.word(w);
                cmd.writes.push(t);
            }
        }
    }

    fn simple(&mut self, s: &ast::SimpleCommand) -> Option<Cmd> {
        let first_word = s.word_or_name.as_ref().or_else(|| {
            s.prefix.as_ref().and_then(|p| {
                p.0.iter().find_map(|i| match i {
                    ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w)
                    | ast::CommandPrefixOrSuffixItem::Word(w) => Some(w),
                    _ => None,
                })
            })
        });
        let line = first_word.map_or(self.outer_line.unwrap_or(1), |w| self.line_of_word(w));
        let mut cmd = Cmd {
            line,
            ..Cmd::default()
        };
        let mut assignments: Vec<(String, String)> = Vec::new();
        let mut raw: Vec<String> = Vec::new();
        if let Some(prefix) = &s.prefix {
            for item in &prefix.0 {
                match item {
                    ast::CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                        let value = self.word(w);
                        if let ast::AssignmentName::VariableName(n) = &a.name {
                            let v = value.split_once('=').map_or("", |(_, v)| v);
                            assignments.push((n.clone(), v.to_string()));
                        }
                    }
                    ast::CommandPrefixOrSuffixItem::Word(w) => raw.push(self.word(w)),
                    ast::CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r, &mut cmd),
                    ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                        self.list(&sub.list)
                    }
                }
            }
        }
        if let Some(w) = &s.word_or_name {
            raw.push(self.word(w));
        }
        if let Some(suffix) = &s.suffix {
            for item in &suffix.0 {
                match item {
                    ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w)
                    | ast::CommandPrefixOrSuffixItem::Word(w) => raw.push(self.word(w)),
                    ast::CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r, &mut cmd),
                    ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                        self.list(&sub.list)
                    }
                }
            }
        }
        if raw.is_empty() {
            // A pure assignment: remember constant values for later `$X`.
            for (n, v) in assignments {
                if !v.contains("$(…)") {
                    self.ctx.vars.insert(n, v);
                }
            }
        }
        let mut nested = Vec::new();
        cmd.argv = normalize(raw, &mut nested);
        for text in nested {
            self.nested(&text, line);
        }
        self.follow_interpreters(&cmd);
        self.ctx.cmds.push(cmd.clone());
        Some(cmd)
    }

    /// `bash -c TEXT`, `su -c TEXT`, `eval …`, a shell fed by a here-document.
    fn follow_interpreters(&mut self, cmd: &Cmd) {
        let Some(name) = cmd.argv.first() else { return };
        let args = &cmd.argv[1..];
        if SHELLS.contains(&name.as_str()) {
            let mut i = 0;
            let mut wants_command = false;
            while let Some(a) = args.get(i) {
                if a == "--" {
                    i += 1;
                    break;
                }
                if a.starts_with("--") {
                    i += 1;
                    continue;
                }
                if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
                    if a.contains('c') {
                        wants_command = true;
                    }
                    i += if a.ends_with('o') || a.ends_with('O') {
                        2
                    } else {
                        1
                    };
                    continue;
                }
                break;
            }
            if wants_command {
                if let Some(text) = args.get(i) {
                    self.nested(&text.clone(), cmd.line);
                }
            } else if args.get(i).is_none()
                && let Some(stdin) = &cmd.stdin
            {
                self.nested(&stdin.clone(), cmd.line);
            }
        } else if name == "eval" {
            let text = args.join(" ");
            self.nested(&text, cmd.line);
        } else if name == "su" {
            let mut it = args.iter();
            while let Some(a) = it.next() {
                if a == "-c" || a == "--command" {
                    if let Some(t) = it.next() {
                        self.nested(&t.clone(), cmd.line);
                    }
                } else if let Some(t) = a.strip_prefix("--command=") {
                    self.nested(t, cmd.line);
                }
            }
        }
    }
}

fn is_shell_reading_stdin(argv: &[String]) -> bool {
    let Some(name) = argv.first() else {
        return false;
    };
    SHELLS.contains(&name.as_str())
        && argv[1..]
            .iter()
            .all(|a| a.starts_with('-') && !a.contains('c'))
}

/// Does the compound command contain a pipeline in which `name` is called at least twice
/// (`name | name`)?
fn calls_itself_piped(cc: &ast::CompoundCommand, name: &str) -> bool {
    fn simple_name(c: &ast::Command) -> Option<&str> {
        match c {
            ast::Command::Simple(s) => s.word_or_name.as_ref().map(|w| w.value.as_str()),
            _ => None,
        }
    }
    fn in_list(l: &ast::CompoundList, name: &str) -> bool {
        l.0.iter().any(|item| {
            std::iter::once(&item.0.first)
                .chain(item.0.additional.iter().map(|a| match a {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => p,
                }))
                .any(|p| {
                    p.seq
                        .iter()
                        .filter(|c| simple_name(c) == Some(name))
                        .count()
                        >= 2
                        || p.seq.iter().any(|c| match c {
                            ast::Command::Compound(cc, _) => in_compound(cc, name),
                            _ => false,
                        })
                })
        })
    }
    fn in_compound(cc: &ast::CompoundCommand, name: &str) -> bool {
        match cc {
            ast::CompoundCommand::BraceGroup(b) => in_list(&b.list, name),
            ast::CompoundCommand::Subshell(s) => in_list(&s.list, name),
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                in_list(&w.1.list, name)
            }
            ast::CompoundCommand::IfClause(i) => in_list(&i.then, name),
            _ => false,
        }
    }
    in_compound(cc, name)
}

// ------------------------------- command matchers -------------------------------

/// `/`, `/*`, a top-level directory of the system (and `DIR/*`) after lexical normalization.
fn is_system_path(arg: &str) -> bool {
    const TOP: &[&str] = &[
        "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt",
        "opt", "proc", "root", "run", "sbin", "srv", "sys", "usr", "var", "snap",
    ];
    if !arg.starts_with('/') {
        return false;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in arg.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.last() == Some(&"*") {
        parts.pop();
    }
    match parts.as_slice() {
        [] => true,
        [top] => TOP.contains(top) || *top == "*",
        _ => false,
    }
}

fn options_end(args: &[String]) -> usize {
    args.iter().position(|a| a == "--").unwrap_or(args.len())
}

fn has_short_or_long(args: &[String], short: &[char], long: &[&str]) -> bool {
    let end = options_end(args);
    args[..end].iter().any(|a| {
        if let Some(l) = a.strip_prefix("--") {
            long.contains(&l)
        } else if let Some(s) = a.strip_prefix('-') {
            !s.is_empty()
                && s.chars().any(|c| short.contains(&c))
                && s.chars().all(|c| c.is_ascii_alphanumeric())
        } else {
            false
        }
    })
}

fn operands(args: &[String]) -> Vec<&str> {
    let end = options_end(args);
    args.iter()
        .enumerate()
        .filter(|(i, a)| *i > end || (*i < end && !a.starts_with('-')))
        .map(|(_, a)| a.as_str())
        .collect()
}

fn is_disk_device(path: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "/dev/sd",
        "/dev/hd",
        "/dev/vd",
        "/dev/xvd",
        "/dev/nvme",
        "/dev/mmcblk",
        "/dev/mapper/",
        "/dev/disk/",
        "/dev/md",
        "/dev/dm-",
        "/dev/loop",
    ];
    PREFIXES
        .iter()
        .any(|p| path.starts_with(p) && path.len() > p.len())
}

fn glob_name(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn check_cmd(check: Check, cmd: &Cmd) -> bool {
    if check == Check::RedirectToDisk {
        return cmd.writes.iter().any(|w| is_disk_device(w));
    }
    let Some(name) = cmd.argv.first().map(String::as_str) else {
        return false;
    };
    let args = &cmd.argv[1..];
    match check {
        Check::RmRecursiveSystem => {
            name == "rm"
                && (has_short_or_long(args, &[], &["no-preserve-root"])
                    || (has_short_or_long(args, &['r', 'R'], &["recursive"])
                        && operands(args).iter().any(|a| is_system_path(a))))
        }
        Check::Mkfs => glob_name("mkfs*", name) || matches!(name, "mke2fs" | "mkswap" | "wipefs"),
        Check::DdToDevice => {
            name == "dd"
                && args
                    .iter()
                    .any(|a| a.strip_prefix("of=").is_some_and(is_disk_device))
        }
        Check::PowerOff => match name {
            "shutdown" | "reboot" | "halt" | "poweroff" => true,
            "init" | "telinit" => operands(args).iter().any(|a| *a == "0" || *a == "6"),
            "systemctl" => operands(args).first().is_some_and(|a| {
                matches!(*a, "reboot" | "poweroff" | "halt" | "kexec" | "soft-reboot")
            }),
            _ => false,
        },
        Check::ChmodRecursiveRoot => {
            matches!(name, "chmod" | "chown" | "chgrp")
                && has_short_or_long(args, &['R'], &["recursive"])
                && operands(args).iter().any(|a| is_system_path(a))
        }
        Check::FirewallFlush => match name {
            "iptables" | "ip6tables" | "iptables-legacy" | "iptables-nft" => {
                has_short_or_long(args, &['F'], &["flush"])
            }
            "nft" => {
                let ops = operands(args);
                ops.first() == Some(&"flush") && ops.get(1) == Some(&"ruleset")
            }
            _ => false,
        },
        Check::KillAll => {
            if name != "kill" {
                return false;
            }
            // Skip the signal specification, then look for the pid -1.
            let mut i = 0;
            match args.first().map(String::as_str) {
                Some("-s" | "-n") => i = 2,
                Some("--") => i = 1,
                Some(a) if a.starts_with('-') && a != "-1" => i = 1,
                Some("-1") if args.len() > 1 => i = 1,
                _ => {}
            }
            args.get(i..)
                .is_some_and(|rest| rest.iter().any(|a| a == "-1"))
        }
        Check::CrontabRemove => name == "crontab" && has_short_or_long(args, &['r'], &["remove"]),
        _ => false,
    }
}

fn cmd_matches(matcher: &Matcher, cmd: &Cmd) -> bool {
    match matcher {
        Matcher::Builtin { check } => check_cmd(*check, cmd),
        Matcher::Command {
            names,
            args_any,
            args_all,
        } => {
            let Some(name) = cmd.argv.first() else {
                return false;
            };
            let args = &cmd.argv[1..];
            names.iter().any(|n| glob_name(n, name))
                && args_all.iter().all(|a| args.contains(a))
                && (args_any.is_empty() || args_any.iter().any(|a| args.contains(a)))
        }
    }
}

// ------------------------------------ python ------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum PyTok {
    Name(String),
    Str(String),
    Punct(char),
    Other,
}

fn py_tokens(text: &str) -> Vec<(PyTok, u32)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(PyTok, u32)> = Vec::new();
    let mut line: u32 = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line = line.saturating_add(1);
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let lower = ident.to_ascii_lowercase();
            let is_prefix = matches!(
                lower.as_str(),
                "r" | "b" | "u" | "f" | "rb" | "br" | "fr" | "rf"
            );
            if is_prefix && i < chars.len() && (chars[i] == '\'' || chars[i] == '"') {
                let (s, next, lines) = py_string(&chars, i, lower.contains('r'));
                out.push((PyTok::Str(s), line));
                line = line.saturating_add(lines);
                i = next;
            } else if let Some((PyTok::Name(prev), _)) = out.last_mut()
                && prev.ends_with('.')
            {
                prev.push_str(&ident);
            } else {
                out.push((PyTok::Name(ident), line));
            }
        } else if c == '\'' || c == '"' {
            let (s, next, lines) = py_string(&chars, i, false);
            out.push((PyTok::Str(s), line));
            line = line.saturating_add(lines);
            i = next;
        } else if c == '.' {
            if let Some((PyTok::Name(prev), _)) = out.last_mut()
                && !prev.ends_with('.')
            {
                prev.push('.');
            } else {
                out.push((PyTok::Other, line));
            }
            i += 1;
        } else if "()[],+=".contains(c) {
            out.push((PyTok::Punct(c), line));
            i += 1;
        } else {
            out.push((PyTok::Other, line));
            i += 1;
        }
    }
    out
}

/// Reads a string literal starting at the quote `chars[i]`; returns its value, the index after
/// it and the newlines it spans.
fn py_string(chars: &[char], mut i: usize, raw: bool) -> (String, usize, u32) {
    let q = chars[i];
    let triple = chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q);
    i += if triple { 3 } else { 1 };
    let mut s = String::new();
    let mut lines = 0u32;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            lines = lines.saturating_add(1);
            if !triple {
                return (s, i, lines.saturating_sub(1));
            }
        }
        if c == q {
            if !triple {
                return (s, i + 1, lines);
            }
            if chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                return (s, i + 3, lines);
            }
        }
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if raw {
                s.push('\\');
                s.push(n);
            } else {
                match n {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    '\n' => {}
                    'x' => {
                        let hex: String = chars.iter().skip(i + 2).take(2).collect();
                        if let Some(ch) =
                            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            s.push(ch);
                            i += 2;
                        }
                    }
                    other => s.push(other),
                }
            }
            if n == '\n' {
                lines = lines.saturating_add(1);
            }
            i += 2;
            continue;
        }
        s.push(c);
        i += 1;
    }
    (s, i, lines)
}

const PY_SHELL_CALLS: &[&str] = &[
    "system",
    "popen",
    "getoutput",
    "getstatusoutput",
    "check_output",
    "check_call",
    "call",
    "run",
    "Popen",
    "spawn",
];

/// The first argument of the call whose `(` is at `open`: concatenated string literals, or a
/// list/tuple of literals joined as shell words. `None` if it is not a literal.
fn py_first_arg(toks: &[(PyTok, u32)], open: usize) -> Option<String> {
    let mut i = open + 1;
    match toks.get(i).map(|t| &t.0) {
        Some(PyTok::Str(_)) => {
            let mut s = String::new();
            while let Some((tok, _)) = toks.get(i) {
                match tok {
                    PyTok::Str(v) => s.push_str(v),
                    PyTok::Punct('+') => {}
                    _ => break,
                }
                i += 1;
            }
            Some(s)
        }
        Some(PyTok::Punct('[' | '(')) => {
            let mut words = Vec::new();
            i += 1;
            while let Some((tok, _)) = toks.get(i) {
                match tok {
                    PyTok::Str(v) => words.push(format!("'{}'", v.replace('\'', "'\\''"))),
                    PyTok::Punct(',') => {}
                    PyTok::Punct(']' | ')') => break,
                    _ => words.push("\"$VALUE\"".to_string()),
                }
                i += 1;
            }
            Some(words.join(" "))
        }
        _ => None,
    }
}

fn is_under_system_dir(path: &str) -> bool {
    const DIRS: &[&str] = &[
        "/etc/",
        "/boot/",
        "/usr/",
        "/bin/",
        "/sbin/",
        "/lib/",
        "/lib64/",
        "/dev/",
        "/proc/",
        "/sys/",
        "/var/lib/",
    ];
    is_system_path(path) || DIRS.iter().any(|d| path.starts_with(d))
}

fn scan_python(text: &str, rules: &[Rule], out: &mut Scan) {
    let toks = py_tokens(text);
    let mut shell = ShellCtx::default();
    let py_rules: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.enabled && r.language == ScanLanguage::Python3)
        .collect();
    for (i, (tok, line)) in toks.iter().enumerate() {
        let PyTok::Name(name) = tok else { continue };
        if toks.get(i + 1).map(|t| &t.0) != Some(&PyTok::Punct('(')) {
            continue;
        }
        let last = name.rsplit('.').next().unwrap_or(name);
        let Some(arg) = py_first_arg(&toks, i + 1) else {
            continue;
        };
        if PY_SHELL_CALLS.contains(&last) {
            shell.scan_text(&arg, Some(*line), 1);
        }
        let check = match last {
            "rmtree" if is_system_path(&arg) => Some(Check::PyRmtreeSystem),
            "remove" | "unlink" | "rmdir" | "removedirs"
                if name.starts_with("os.") || name == last =>
            {
                is_under_system_dir(&arg).then_some(Check::PyRemoveSystem)
            }
            _ => None,
        };
        if let Some(check) = check {
            for r in &py_rules {
                if r.matcher == (Matcher::Builtin { check }) {
                    out.findings
                        .push(finding(r, *line, &format!("{name}({arg:?})")));
                }
            }
        }
    }
    let mut shell_scan = Scan::default();
    shell.report(rules, &mut shell_scan);
    out.findings.extend(shell_scan.findings);
    if out.parse_error.is_none() {
        out.parse_error = shell_scan.parse_error;
    }
    out.findings.sort_by_key(|f| f.line);
}

// -------------------------------------- sql --------------------------------------

fn scan_sql_into(text: &str, rules: &[Rule], out: &mut Scan) {
    use sqlparser::ast::{ObjectType, Spanned, Statement};
    let dialect = sqlparser::dialect::GenericDialect {};
    let statements = match sqlparser::parser::Parser::parse_sql(&dialect, text) {
        Ok(s) => s,
        Err(e) => {
            unparseable(out, 1, text, e.to_string());
            return;
        }
    };
    let starts = sql_statement_lines(text);
    for (index, stmt) in statements.iter().enumerate() {
        let check = match stmt {
            Statement::Drop { object_type, .. } => match object_type {
                ObjectType::Database | ObjectType::Schema => Some(Check::SqlDropDatabase),
                ObjectType::Table => Some(Check::SqlDropTable),
                _ => None,
            },
            Statement::Truncate(_) => Some(Check::SqlTruncate),
            Statement::Delete(d) if d.selection.is_none() => Some(Check::SqlDeleteWithoutWhere),
            Statement::Update(u) if u.selection.is_none() => Some(Check::SqlUpdateWithoutWhere),
            _ => None,
        };
        let Some(check) = check else { continue };
        let line = match u32::try_from(stmt.span().start.line) {
            Ok(l) if l > 0 => l,
            _ => starts.get(index).copied().unwrap_or(1),
        };
        for r in rules
            .iter()
            .filter(|r| r.enabled && r.language == ScanLanguage::Sql)
        {
            if r.matcher == (Matcher::Builtin { check }) {
                out.findings.push(finding(r, line, &stmt.to_string()));
            }
        }
    }
}

/// The line where each statement starts (first token after the start or a `;`).
fn sql_statement_lines(text: &str) -> Vec<u32> {
    use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
    let dialect = sqlparser::dialect::GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, text).tokenize_with_location() else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut at_start = true;
    for t in tokens {
        match t.token {
            Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab)
            | Token::Whitespace(_) => {}
            Token::SemiColon => at_start = true,
            _ if at_start => {
                lines.push(u32::try_from(t.span.start.line).unwrap_or(1));
                at_start = false;
            }
            _ => {}
        }
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn worst(lang: ScanLanguage, text: &str) -> Option<Action> {
        scan(lang, text, &default_rules()).worst()
    }

    #[test]
    fn normalization() {
        let mut nested = Vec::new();
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            normalize(
                argv("sudo -u root env X=1 nice -n 5 /bin/rm -rf /"),
                &mut nested
            ),
            argv("rm -rf /")
        );
        assert_eq!(
            normalize(argv("timeout -s KILL 10 nohup reboot"), &mut nested),
            argv("reboot")
        );
        assert_eq!(
            normalize(argv("command -v reboot"), &mut nested),
            argv("command -v reboot")
        );
        assert_eq!(
            normalize(argv("busybox rm -rf /"), &mut nested),
            argv("rm -rf /")
        );
        assert_eq!(normalize(argv("sudo"), &mut nested), Vec::<String>::new());
    }

    #[test]
    fn system_paths() {
        for p in [
            "/",
            "//",
            "/*",
            "/etc",
            "/etc/",
            "/usr/*",
            "/tmp/../etc",
            "/./var",
        ] {
            assert!(is_system_path(p), "{p}");
        }
        for p in ["/tmp/x", "./build", "etc", "/var/log/app", "/opt/app/*", ""] {
            assert!(!is_system_path(p), "{p}");
        }
    }

    #[test]
    fn lines_and_commands_are_reported() {
        let s = scan(
            Language::Bash,
            "echo hi\n\nsudo /sbin/reboot\n",
            &default_rules(),
        );
        assert_eq!(s.findings.len(), 1);
        let f = &s.findings[0];
        assert_eq!(
            (f.rule_id.as_str(), f.line, f.command.as_str()),
            ("shell.power", 3, "reboot")
        );
        assert_eq!(f.action, Action::RequireApproval);
        assert!(s.parse_error.is_none());
    }

    #[test]
    fn unparseable_is_not_waved_through() {
        let s = scan(
            Language::Bash,
            "echo \"unterminated\nrm -rf /\n",
            &default_rules(),
        );
        assert!(s.parse_error.is_some());
        assert!(
            s.findings
                .iter()
                .any(|f| f.rule_id == UNPARSEABLE_RULE_ID && f.action == Action::RequireApproval)
        );
        assert_eq!(s.worst(), Some(Action::Block), "{s:?}");
        let deep = format!("{}echo{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(
            worst(ScanLanguage::Shell, &deep),
            Some(Action::RequireApproval)
        );
        let nested = (0..12).fold("reboot".to_string(), |acc, _| {
            format!("bash -c {}", shell_quote(&acc))
        });
        assert_eq!(
            worst(ScanLanguage::Shell, &nested),
            Some(Action::RequireApproval)
        );
        assert!(worst(ScanLanguage::Sql, "DROP DATABSE x").is_some());
    }

    fn shell_quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', "'\\''"))
    }

    #[test]
    fn rules_can_be_disabled_overridden_and_added() {
        let text = r#"
[[rule]]
id = "shell.power"
action = "block"

[[rule]]
id = "shell.rm_root"
enabled = false

[[rule]]
id = "site.userdel"
language = "shell"
action = "warn"
message_zh = "删除用户"
message_en = "deletes a user"
matcher = { type = "command", names = ["userdel", "deluser"] }
"#;
        let rules = rules_from_toml(text).unwrap();
        assert_eq!(rules.len(), default_rules().len() + 1);
        assert_eq!(
            scan(Language::Bash, "reboot", &rules).worst(),
            Some(Action::Block)
        );
        assert_eq!(scan(Language::Bash, "rm -rf /", &rules).worst(), None);
        assert_eq!(
            scan(Language::Sh, "sudo userdel bob", &rules).worst(),
            Some(Action::Warn)
        );
        // Saved and read back: the same list.
        let saved = rules_to_toml(&rules).unwrap();
        assert_eq!(rules_from_toml(&saved).unwrap(), rules);
    }

    #[test]
    fn rule_file_errors_name_the_line() {
        let cases = [
            ("[[rule]]\nid = \"x\"\naction = \"block\"\n", 1, "lacks"),
            (
                "[[rule]]\nid = \"shell.power\"\n\n[[rule]]\nid = \"shell.power\"\n",
                4,
                "twice",
            ),
            (
                "[[rule]]\nid = \"shell.power\"\naction = \"explode\"\n",
                3,
                "explode",
            ),
            ("[[rule]]\nid = \"shell.power\"\ncolour = 1\n", 3, "colour"),
            (
                "[[rule]]\nid = \"shell.power\"\nlanguage = \"sql\"\n",
                1,
                "language",
            ),
        ];
        for (text, line, needle) in cases {
            let err = rules_from_toml(text).unwrap_err();
            assert_eq!(err.code(), "exec.rules_invalid");
            let ExecError::Rules { line: got, message } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(*got, Some(line), "{text}: {message}");
            assert!(err.message_en().contains(needle), "{}", err.message_en());
        }
    }

    #[test]
    fn sql_statements() {
        let s = scan(
            ScanLanguage::Sql,
            "SELECT 1;\nDELETE FROM t WHERE id = 1;\nDELETE FROM t;\nUPDATE t SET a = 1;\nDROP TABLE t;\nTRUNCATE TABLE t;\nDROP DATABASE prod;",
            &default_rules(),
        );
        let ids: Vec<(&str, u32)> = s
            .findings
            .iter()
            .map(|f| (f.rule_id.as_str(), f.line))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("sql.delete_without_where", 3),
                ("sql.update_without_where", 4),
                ("sql.drop_table", 5),
                ("sql.truncate", 6),
                ("sql.drop_database", 7),
            ]
        );
        assert_eq!(s.worst(), Some(Action::Block));
        assert_eq!(
            worst(ScanLanguage::Sql, "UPDATE t SET a = 1 WHERE b = 2"),
            None
        );
    }

    #[test]
    fn python_lines() {
        let src = "import os\n# os.system('reboot')\nx = 1\nos.system('rm -rf /')\n";
        let s = scan(Language::Python3, src, &default_rules());
        assert_eq!(s.findings.len(), 1, "{s:?}");
        assert_eq!(
            (s.findings[0].rule_id.as_str(), s.findings[0].line),
            ("shell.rm_root", 4)
        );
    }
}
