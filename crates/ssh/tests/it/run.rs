//! `run` against a real sshd.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use ballast_ssh::testkit::keygen;
use ballast_ssh::{
    ExecLimits, HostKeyPolicy, SshAuth, SshTarget, fingerprint_sha256, script_command,
};

use crate::{exec, exec_with, keygen_fingerprint, limits, start};

#[tokio::test]
async fn echo_ok_reports_exit_zero_output_and_host_key() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let ran = exec(&sshd, "echo ok", None).await;
    let o = ran.result.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(o.exit_code, Some(0));
    assert!(o.success());
    assert_eq!(ran.stdout, b"ok\n");
    assert!(ran.stderr.is_empty());
    assert_eq!(o.stdout_bytes, 3);
    assert!(!o.timed_out && !o.truncated && o.exit_signal.is_none());
    assert_eq!(o.host_key, sshd.host_key_line);
    let reference = keygen_fingerprint(&sshd.dir.join("host_ed25519.pub"));
    assert_eq!(o.host_key_sha256, reference);
    assert_eq!(fingerprint_sha256(&sshd.host_key_line).unwrap(), reference);
}

#[tokio::test]
async fn exit_code_and_stderr_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let ran = exec(&sshd, "echo out; echo err >&2; exit 7", None).await;
    let o = ran.result.unwrap();
    assert_eq!(o.exit_code, Some(7));
    assert!(!o.success());
    assert_eq!(ran.stdout, b"out\n");
    assert_eq!(ran.stderr, b"err\n");
    assert_eq!((o.stdout_bytes, o.stderr_bytes), (4, 4));
}

#[tokio::test]
async fn killed_by_signal_reports_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    // `exec` so the killed process is the session's own process, not a child of a shell.
    let ran = exec(&sshd, "exec sh -c 'kill -TERM $$'", None).await;
    let o = ran.result.unwrap();
    assert_eq!(o.exit_signal.as_deref(), Some("TERM"), "{o:?}");
    assert_eq!(o.exit_code, None);
    assert!(!o.success());
}

const TRICKY: [&str; 9] = [
    "a b",
    "it's",
    "$HOME",
    "x;echo injected",
    "\"dq\"",
    "`id`",
    "",
    "-n",
    "中文 参数",
];

#[tokio::test]
async fn bash_script_on_stdin_gets_its_arguments_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let args: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
    let cmd = script_command("bash", &args, Duration::from_secs(120), 10);
    let script = b"echo \"n=$#\"\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\necho \"nice=$(nice)\"\n";
    let ran = exec(&sshd, &cmd, Some(script.to_vec())).await;
    let o = ran.result.unwrap();
    let stdout = String::from_utf8(ran.stdout).unwrap();
    assert_eq!(
        o.exit_code,
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let mut want = format!("n={}\n", TRICKY.len());
    for a in TRICKY {
        want.push_str(&format!("[{a}]\n"));
    }
    want.push_str("nice=10\n");
    assert_eq!(stdout, want);
}

#[tokio::test]
async fn sh_and_python3_scripts_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let args: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();

    let cmd = script_command("sh", &args, Duration::from_secs(120), 0);
    let ran = exec(&sshd, &cmd, Some(b"printf '%s|' \"$@\"".to_vec())).await;
    assert_eq!(ran.result.unwrap().exit_code, Some(0));
    assert_eq!(
        String::from_utf8(ran.stdout).unwrap(),
        format!("{}|", TRICKY.join("|"))
    );

    let cmd = script_command("python3", &args, Duration::from_secs(120), 0);
    let script = b"import sys\nsys.stdout.write('|'.join(sys.argv[1:]))\nsys.exit(3)\n";
    let ran = exec(&sshd, &cmd, Some(script.to_vec())).await;
    assert_eq!(ran.result.unwrap().exit_code, Some(3));
    assert_eq!(String::from_utf8(ran.stdout).unwrap(), TRICKY.join("|"));
}

#[tokio::test]
async fn large_stdin_while_output_flows() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    // 4 MiB in, echoed back through `cat`: stdin and stdout flow at the same time.
    let input: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let lim = ExecLimits {
        output_cap_bytes: 8 << 20,
        ..limits()
    };
    let ran = exec_with(
        &sshd.target(),
        &sshd.auth(),
        &sshd.pinned(),
        "cat",
        Some(input.clone()),
        &lim,
    )
    .await;
    let o = ran.result.unwrap();
    assert_eq!(o.exit_code, Some(0));
    assert_eq!(o.stdout_bytes, input.len() as u64);
    assert!(ran.stdout == input, "stdout differs from stdin");
    assert!(ran.chunks > 1, "output should stream in several chunks");
}

#[tokio::test]
async fn pinned_mismatch_is_refused_before_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (_, other_line) = keygen(other_dir.path(), "other").unwrap();
    let other_fp = fingerprint_sha256(&other_line).unwrap();
    let presented_fp = fingerprint_sha256(&sshd.host_key_line).unwrap();

    let ran = exec_with(
        &sshd.target(),
        &sshd.auth(),
        &HostKeyPolicy::Pinned(vec![other_line]),
        "echo should-not-run",
        None,
        &limits(),
    )
    .await;
    let e = ran.result.unwrap_err();
    assert_eq!(e.code(), "ssh.host_key_mismatch");
    match &e {
        ballast_ssh::SshError::HostKeyMismatch {
            expected,
            presented_sha256,
            ..
        } => {
            assert_eq!(expected, &vec![other_fp.clone()]);
            assert_eq!(presented_sha256, &presented_fp);
        }
        other => panic!("{other:?}"),
    }
    let target = sshd.target().to_string();
    for m in [e.message_en(), e.message_zh()] {
        assert!(
            m.contains(&target) && m.contains(&other_fp) && m.contains(&presented_fp),
            "{m}"
        );
    }
    assert!(ran.stdout.is_empty());
    // The server never saw an authentication attempt.
    std::thread::sleep(Duration::from_millis(200));
    let log = sshd.log();
    assert!(!log.contains("Accepted publickey"), "{log}");
}

#[tokio::test]
async fn trust_on_first_use_returns_the_key_which_then_pins() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let first = exec_with(
        &sshd.target(),
        &sshd.auth(),
        &HostKeyPolicy::TrustOnFirstUse,
        "true",
        None,
        &limits(),
    )
    .await
    .result
    .unwrap();
    assert_eq!(first.host_key, sshd.host_key_line);
    for pin in [first.host_key.clone(), first.host_key_sha256.clone()] {
        let again = exec_with(
            &sshd.target(),
            &sshd.auth(),
            &HostKeyPolicy::Pinned(vec!["SHA256:notthisone".into(), pin]),
            "echo pinned",
            None,
            &limits(),
        )
        .await;
        assert_eq!(again.result.unwrap().exit_code, Some(0));
        assert_eq!(again.stdout, b"pinned\n");
    }
}

#[tokio::test]
async fn invalid_pin_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let ran = exec_with(
        &sshd.target(),
        &sshd.auth(),
        &HostKeyPolicy::Pinned(vec!["not a key".into()]),
        "true",
        None,
        &limits(),
    )
    .await;
    assert_eq!(ran.result.unwrap_err().code(), "ssh.invalid_key");
}

#[tokio::test]
async fn wrong_client_key_is_an_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (pem, _) = keygen(other_dir.path(), "stranger").unwrap();
    let auth = SshAuth::PrivateKey {
        pem,
        passphrase: None,
    };
    let e = exec_with(
        &sshd.target(),
        &auth,
        &sshd.pinned(),
        "true",
        None,
        &limits(),
    )
    .await
    .result
    .unwrap_err();
    assert_eq!(e.code(), "ssh.auth", "{e}");
    assert!(e.message_en().contains(&sshd.target().to_string()));

    // A password is refused too (the test server allows keys only).
    let e = exec_with(
        &sshd.target(),
        &SshAuth::Password("guess".into()),
        &sshd.pinned(),
        "true",
        None,
        &limits(),
    )
    .await
    .result
    .unwrap_err();
    assert_eq!(e.code(), "ssh.auth", "{e}");

    // A key that is not a key fails before connecting.
    let e = exec_with(
        &sshd.target(),
        &SshAuth::PrivateKey {
            pem: "garbage".into(),
            passphrase: None,
        },
        &sshd.pinned(),
        "true",
        None,
        &limits(),
    )
    .await
    .result
    .unwrap_err();
    assert_eq!(e.code(), "ssh.auth", "{e}");
}

#[tokio::test]
async fn unreachable_port_is_a_quick_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let target = SshTarget::new("root", "127.0.0.1", port);
    let started = Instant::now();
    let e = exec_with(
        &target,
        &SshAuth::Password("x".into()),
        &HostKeyPolicy::TrustOnFirstUse,
        "true",
        None,
        &limits(),
    )
    .await
    .result
    .unwrap_err();
    assert_eq!(e.code(), "ssh.connect", "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.message_zh().contains(&target.to_string()));
}

#[tokio::test]
async fn silent_server_hits_the_connect_timeout() {
    // Accepts TCP but never speaks SSH.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let lim = ExecLimits {
        connect_timeout: Duration::from_millis(500),
        ..limits()
    };
    let started = Instant::now();
    let e = exec_with(
        &SshTarget::new("root", "127.0.0.1", port),
        &SshAuth::Password("x".into()),
        &HostKeyPolicy::TrustOnFirstUse,
        "true",
        None,
        &lim,
    )
    .await
    .result
    .unwrap_err();
    assert_eq!(e.code(), "ssh.timeout", "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    hold.abort();
}

#[tokio::test]
async fn command_timeout_closes_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let lim = ExecLimits {
        timeout: Duration::from_secs(1),
        ..limits()
    };
    let started = Instant::now();
    // The remote `timeout 5` only keeps the test from leaving a stray `sleep` behind (OpenSSH
    // refuses the client's TERM request for root sessions); the client gives up after 1 s.
    let ran = exec_with(
        &sshd.target(),
        &sshd.auth(),
        &sshd.pinned(),
        "timeout 5 sleep 30",
        None,
        &lim,
    )
    .await;
    let o = ran.result.unwrap();
    assert!(o.timed_out, "{o:?}");
    assert!(!o.success());
    assert_eq!((o.exit_code, o.exit_signal), (None, None));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn output_before_the_timeout_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let lim = ExecLimits {
        timeout: Duration::from_secs(3),
        ..limits()
    };
    let ran = exec_with(
        &sshd.target(),
        &sshd.auth(),
        &sshd.pinned(),
        "echo started; timeout 6 sleep 30",
        None,
        &lim,
    )
    .await;
    let o = ran.result.unwrap();
    assert!(o.timed_out, "{o:?}");
    assert_eq!(ran.stdout, b"started\n");
    assert_eq!(o.stdout_bytes, 8);
}

#[tokio::test]
async fn remote_timeout_wrapper_kills_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let cmd = script_command("bash", &[], Duration::from_secs(1), 0);
    let started = Instant::now();
    // A background child too: `timeout` signals the whole process group.
    let ran = exec(&sshd, &cmd, Some(b"sleep 37.1 & sleep 37.2\n".to_vec())).await;
    let o = ran.result.unwrap();
    assert_eq!(o.exit_code, Some(124), "GNU timeout's exit status: {o:?}");
    assert!(!o.timed_out);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 37\\.[12]"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[tokio::test]
async fn output_over_the_cap_is_counted_and_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let lim = ExecLimits {
        output_cap_bytes: 1000,
        ..limits()
    };
    let ran = exec_with(
        &sshd.target(),
        &sshd.auth(),
        &sshd.pinned(),
        "head -c 100000 /dev/zero; echo tail >&2",
        None,
        &lim,
    )
    .await;
    let o = ran.result.unwrap();
    assert_eq!(o.exit_code, Some(0));
    assert!(o.truncated);
    assert_eq!(o.stdout_bytes, 100_000);
    assert_eq!(ran.stdout.len(), 1000);
    assert_eq!(ran.stderr, b"tail\n", "the other stream has its own cap");
}
