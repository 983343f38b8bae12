//! Recognising a script that is one plain command, so it can be started without a shell.
//!
//! A one-line `bash`/`sh` script such as `echo ok`, `systemctl status nginx` or
//! `df -h /data` means exactly "start this program with these words as arguments": no expansion,
//! quoting, redirection, pipe, glob or variable can change its meaning. The runner then starts
//! the program directly — no script file, no shell process — as GNU make has done for decades
//! for recipe lines without shell syntax, and as Ansible's `command` module always does. It
//! roughly halves the cost of starting such a task (a `bash` start is ~1 ms of CPU). The one
//! visible difference: the program sees the task's environment exactly as given, where a shell
//! would have added `PWD`, `SHLVL` and `_`.
//!
//! The test is deliberately conservative: any character the shell might interpret, a first word
//! that is a shell keyword or a builtin (whose behaviour can differ from a program of the same
//! name), an option-looking argument to a builtin that also exists as a program (`echo --help`
//! differs between the two), a program not found in the task's `PATH`, or a task that sets its
//! own `PATH`, all leave the task to the shell as before.

use crate::spec::{Interpreter, TaskSpec};

/// Shell keywords and builtins, plus `.` and `:`: a first word among these goes to the shell.
/// (bash's list; `sh` — dash — has a subset.)
const SHELL_WORDS: &[&str] = &[
    ".",
    ":",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "then",
    "time",
    "times",
    "trap",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

/// Builtins that behave as the program of the same name as long as no argument looks like an
/// option.
const TWIN_BUILTINS: &[&str] = &["echo", "printf", "true", "false", "test"];

/// A character the shell never interprets inside an unquoted word.
fn plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '-' | '_' | '.' | '/' | ':' | ',' | '+' | '@' | '%' | '=')
}

/// The words of `spec`'s script when it is one plain command that may be started without a
/// shell (see the module documentation), else `None`. The first word is a bare program name to
/// be looked up in the task's `PATH`.
pub(crate) fn plain_words(spec: &TaskSpec) -> Option<Vec<&str>> {
    if !matches!(spec.interpreter, Interpreter::Bash | Interpreter::Sh) {
        return None;
    }
    if spec.env.iter().any(|(k, _)| k == "PATH") {
        return None;
    }
    let line = spec
        .script
        .trim_matches(|c| c == ' ' || c == '\t' || c == '\n');
    if line.is_empty() || line.contains('\n') {
        return None;
    }
    let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    if !words.iter().all(|w| w.chars().all(plain_char)) {
        return None;
    }
    let (program, args) = words.split_first()?;
    if program.contains(['/', '=']) || program.starts_with('-') || SHELL_WORDS.contains(program) {
        return None;
    }
    if TWIN_BUILTINS.contains(program) && args.iter().any(|a| a.starts_with('-')) {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(interpreter: Interpreter, script: &str) -> Option<Vec<String>> {
        plain_words(&TaskSpec::new(interpreter, script))
            .map(|w| w.into_iter().map(str::to_owned).collect())
    }

    #[test]
    fn plain_commands_are_recognised() {
        for (script, expect) in [
            ("echo ok", &["echo", "ok"][..]),
            ("echo ok\n", &["echo", "ok"]),
            ("  df  -h\t/data \n", &["df", "-h", "/data"]),
            (
                "systemctl status nginx.service",
                &["systemctl", "status", "nginx.service"],
            ),
            (
                "curl -fsS http://127.0.0.1:8080/health",
                &["curl", "-fsS", "http://127.0.0.1:8080/health"],
            ),
            ("printf ok", &["printf", "ok"]),
            ("env A=1 printenv A", &["env", "A=1", "printenv", "A"]),
        ] {
            assert_eq!(
                words(Interpreter::Bash, script).as_deref(),
                Some(
                    expect
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect::<Vec<_>>()
                        .as_slice()
                ),
                "{script:?}"
            );
        }
        assert!(words(Interpreter::Sh, "uptime").is_some());
    }

    #[test]
    fn anything_the_shell_might_interpret_goes_to_the_shell() {
        for script in [
            "",
            "   \n",
            "echo $HOME",
            "echo ok; true",
            "echo ok && true",
            "echo ok | cat",
            "echo ok > /tmp/x",
            "echo 'ok'",
            "echo \"ok\"",
            "ls *.log",
            "ls ~",
            "echo a\\ b",
            "echo {a,b}",
            "echo ok # comment",
            "echo `id`",
            "echo ok &",
            "echo ok\necho two",
            "A=1 env",
            "cd /tmp",
            "exit 3",
            "kill 1",
            "pwd",
            "ulimit -a",
            "if",
            "./run.sh",
            "/usr/bin/echo ok",
            "echo -e ok",
            "echo --help",
            "test -f /etc/hosts",
            "-x",
        ] {
            assert_eq!(words(Interpreter::Bash, script), None, "{script:?}");
        }
        assert_eq!(words(Interpreter::Python3, "print"), None);
        let mut spec = TaskSpec::new(Interpreter::Bash, "echo ok");
        spec.env.push(("PATH".to_owned(), "/opt/bin".to_owned()));
        assert_eq!(plain_words(&spec), None);
    }
}
