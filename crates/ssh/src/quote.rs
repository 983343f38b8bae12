//! POSIX shell quoting and the remote command that runs a script sent on stdin.

use std::time::Duration;

/// Quotes one word for a POSIX shell (the remote login shell parses the SSH command line).
///
/// Words made only of `A-Za-z0-9` and `_@%+=:,./-` stay as they are; anything else is wrapped in
/// single quotes, with each `'` written as `'\''`. The empty word becomes `''`.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b))
    {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The remote command that runs a script whose text is sent on stdin:
///
/// `nice -n <nice> timeout -k 2 <secs> <interpreter> <read-stdin flag> <args…>`
///
/// - `bash` and `sh` read the script with `-s --` (so the arguments are `$1…`, even ones that
///   start with `-`); `python3` with `-` (arguments in `sys.argv[1:]`). Any other interpreter
///   name is quoted and given `-s --`.
/// - `timeout` gets whole seconds, rounded up, at least 1 (`timeout 0` would mean no limit); it
///   sends TERM to the remote process group when they run out and KILL 2 s later.
/// - Every argument is quoted with [`shell_quote`].
pub fn script_command(interpreter: &str, args: &[String], timeout: Duration, nice: i32) -> String {
    let mut secs = timeout.as_secs();
    if timeout.subsec_nanos() > 0 {
        secs = secs.saturating_add(1);
    }
    let secs = secs.max(1);
    let invoke = match interpreter {
        "bash" => "bash -s --".to_string(),
        "sh" => "sh -s --".to_string(),
        "python3" => "python3 -".to_string(),
        other => format!("{} -s --", shell_quote(other)),
    };
    let mut cmd = format!("nice -n {nice} timeout -k 2 {secs} {invoke}");
    for a in args {
        cmd.push(' ');
        cmd.push_str(&shell_quote(a));
    }
    cmd
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quote_words() {
        assert_eq!(shell_quote("plain-word_1.txt"), "plain-word_1.txt");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("a;rm -rf /"), "'a;rm -rf /'");
        assert_eq!(shell_quote("\"q\""), "'\"q\"'");
        assert_eq!(shell_quote("`id`"), "'`id`'");
    }

    #[test]
    fn script_command_shapes() {
        let args = vec!["a b".to_string(), "it's".to_string(), "$X;y".to_string()];
        assert_eq!(
            script_command("bash", &args, Duration::from_secs(30), 10),
            "nice -n 10 timeout -k 2 30 bash -s -- 'a b' 'it'\\''s' '$X;y'"
        );
        assert_eq!(
            script_command("python3", &[], Duration::from_millis(1500), 0),
            "nice -n 0 timeout -k 2 2 python3 -"
        );
        assert_eq!(
            script_command("sh", &["-x".into()], Duration::ZERO, 5),
            "nice -n 5 timeout -k 2 1 sh -s -- -x"
        );
        assert_eq!(
            script_command("my shell", &[], Duration::from_secs(1), 0),
            "nice -n 0 timeout -k 2 1 'my shell' -s --"
        );
    }

    /// The local `sh` parses the quoted words back to exactly the original arguments.
    #[test]
    fn quoting_roundtrips_through_sh() {
        let words = [
            "a b",
            "it's",
            "$HOME",
            "x;y",
            "\"dq\"",
            "back\\slash",
            "`id`",
            "",
            "-n",
            "tab\there",
            "new\nline",
            "*",
            "中文 参数",
            "'",
            "''",
        ];
        let line = words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let got: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
        let got = &got[..got.len() - 1];
        let want: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        assert_eq!(got, &want[..]);
    }
}
