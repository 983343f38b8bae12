use std::time::Duration;

use ballast_runner::{Interpreter, Limits, Outcome, RunnerError, Stream, TaskSpec};

#[test]
fn limits_serialize_timeout_as_ms_and_defaults_fill_in() {
    let l = Limits {
        timeout: Duration::from_millis(1500),
        ..Limits::default()
    };
    let v = serde_json::to_value(&l).unwrap();
    assert_eq!(v["timeout_ms"], 1500);
    assert_eq!(v["output_cap_bytes"], 1024 * 1024);
    assert_eq!(v["nice"], 10);
    let back: Limits = serde_json::from_value(serde_json::json!({"timeout_ms": 20})).unwrap();
    assert_eq!(back.timeout, Duration::from_millis(20));
    assert_eq!(back.output_cap_bytes, 1024 * 1024);
    assert_eq!(back.nice, Some(10));
}

#[test]
fn task_spec_round_trips_with_snake_case_enums() {
    let mut s = TaskSpec::new(Interpreter::Python3, "print(1)");
    s.args = vec!["a".into()];
    s.env = vec![("K".into(), "V".into())];
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["interpreter"], "python3");
    let back: TaskSpec = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
    assert_eq!(serde_json::to_value(Stream::Stderr).unwrap(), "stderr");
    let minimal: TaskSpec =
        serde_json::from_str(r#"{"interpreter":"sh","script":"true"}"#).unwrap();
    assert_eq!(minimal.limits, Limits::default());
}

#[test]
fn success_needs_zero_exit_complete_output_and_no_timeout_or_cancel() {
    let ok = Outcome {
        exit_code: Some(0),
        signal: None,
        timed_out: false,
        cancelled: false,
        stdout_bytes: 0,
        stderr_bytes: 0,
        truncated: false,
        caps: Default::default(),
        duration_ms: 1,
        output_incomplete: false,
    };
    assert!(ok.success());
    assert!(
        !Outcome {
            output_incomplete: true,
            ..ok.clone()
        }
        .success()
    );
    // Older peers do not send `output_incomplete`: it defaults to false.
    let mut wire = serde_json::to_value(&ok).unwrap();
    wire.as_object_mut().unwrap().remove("output_incomplete");
    let back: Outcome = serde_json::from_value(wire).unwrap();
    assert_eq!(back, ok);
    assert!(
        !Outcome {
            exit_code: Some(1),
            ..ok.clone()
        }
        .success()
    );
    assert!(
        !Outcome {
            timed_out: true,
            ..ok.clone()
        }
        .success()
    );
    assert!(
        !Outcome {
            cancelled: true,
            ..ok.clone()
        }
        .success()
    );
    assert!(
        !Outcome {
            exit_code: None,
            signal: Some(9),
            ..ok
        }
        .success()
    );
}

#[test]
fn errors_have_codes_and_both_languages() {
    let e = RunnerError::InvalidSpec("x".into());
    assert_eq!(e.code(), "RUNNER-001");
    assert!(e.message_en().starts_with("RUNNER-001"));
    assert!(e.message_zh().contains("任务定义无效"));
}
