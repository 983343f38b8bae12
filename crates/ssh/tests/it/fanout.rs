//! `fan_out` against a real sshd.

use std::time::Duration;

use ballast_ssh::{HostKeyPolicy, SshTarget, fan_out, fan_out_with};

use crate::{limits, start};

#[tokio::test]
async fn fan_out_to_50_targets_completes_all() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let targets: Vec<_> = (0..50)
        .map(|_| (sshd.target(), sshd.auth(), sshd.pinned()))
        .collect();
    let mut seen = vec![0u32; 50];
    let mut ok = 0;
    fan_out(targets, "echo ok", &limits(), 10, |i, r| {
        seen[i] += 1;
        match r {
            Ok(o) if o.exit_code == Some(0) && o.stdout_bytes == 3 => ok += 1,
            other => panic!("host {i}: {other:?}\n{}", sshd.log()),
        }
    })
    .await;
    assert_eq!(ok, 50);
    assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
}

#[tokio::test]
async fn fan_out_with_stdin_collects_output_and_reports_failures_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = start(dir.path());
    let mut targets: Vec<_> = (0..6)
        .map(|_| (sshd.target(), sshd.auth(), sshd.pinned()))
        .collect();
    // Host 2: wrong pin; host 4: nothing listens there.
    targets[2].2 = HostKeyPolicy::Pinned(vec![
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    ]);
    targets[4].0 = SshTarget::new(sshd.user.clone(), "127.0.0.1", 1);
    let mut results = vec![None; 6];
    let lim = ballast_ssh::ExecLimits {
        timeout: Duration::from_secs(120),
        ..limits()
    };
    fan_out_with(
        targets,
        "tr a-z A-Z",
        Some(b"hello".to_vec()),
        &lim,
        0,
        |i, r| {
            results[i] = Some(r);
        },
    )
    .await;
    for (i, r) in results.into_iter().enumerate() {
        let r = r.unwrap_or_else(|| panic!("host {i} not reported"));
        match i {
            2 => assert_eq!(r.result.unwrap_err().code(), "ssh.host_key_mismatch"),
            4 => assert_eq!(r.result.unwrap_err().code(), "ssh.connect"),
            _ => {
                assert_eq!(r.result.unwrap().exit_code, Some(0), "host {i}");
                assert_eq!(r.stdout, b"HELLO", "host {i}");
            }
        }
    }
}
