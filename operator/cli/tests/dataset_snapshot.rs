//! `ciclo dataset snapshot` as a Job runs it: the summary on stdout and in the termination
//! message file, the exit code, and credentials read only under their prefix.

use std::process::Command;

fn snapshot(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ciclo"))
        .args(["dataset", "snapshot"])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_check_writes_its_summary_where_kubernetes_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.csv"), "x\n1\n2\n").unwrap();
    let message = dir.path().join("termination-log");
    std::fs::write(&message, "").unwrap();
    let source = format!("file://{}", data.display());
    let artifacts = format!("file://{}/artifacts", dir.path().display());
    let (code, stdout) = snapshot(
        &[
            "--source",
            &source,
            "--artifacts",
            &artifacts,
            "--termination-message-path",
            message.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}");
    let written = std::fs::read_to_string(&message).unwrap();
    assert_eq!(written.trim(), stdout.trim());
    let summary: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(summary["outcome"], "Accepted");
    assert_eq!(summary["rows"], 2);
}

#[test]
fn incomplete_credentials_fail_at_once_saying_where_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = format!("file://{}/artifacts", dir.path().display());
    let (code, stdout) = snapshot(
        &[
            "--source",
            "s3://bucket/data/",
            "--source-endpoint",
            "http://127.0.0.1:9",
            "--artifacts",
            &artifacts,
        ],
        // A key id without its secret; an ambient AWS_ variable is not the source's.
        &[
            ("CICLO_SOURCE_AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "not-for-the-source"),
        ],
    );
    assert_eq!(code, 1, "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["failure"]["reason"], "InvalidSpec", "{stdout}");
    let message = summary["failure"]["message"].as_str().unwrap();
    assert!(message.contains("SecretAccessKey"), "{message}");
    assert!(
        message.contains("spec.source.credentialsSecretRef"),
        "{message}"
    );
    assert!(
        !stdout.contains("not-for-the-source"),
        "no secret in the output"
    );
}

#[test]
fn the_id_of_a_copy_matches_the_version_a_check_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.csv"), "x\n1\n").unwrap();
    std::fs::write(data.join("sub/b.csv"), "x\n2\n").unwrap();
    let source = format!("file://{}", data.display());
    let artifacts = format!("file://{}/artifacts", dir.path().display());
    let (_, checked) = snapshot(&["--source", &source, "--artifacts", &artifacts], &[]);
    let checked: serde_json::Value = serde_json::from_str(&checked).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ciclo"))
        .args(["dataset", "id", "--source", &source, "--manifest"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["id"], checked["id"]);
    assert_eq!(id["files"], 2);
    assert_eq!(id["manifest"]["files"][1]["path"], "sub/b.csv");
}
