//! The subcommands for people at a terminal (`token`), run as the real
//! `jobwire` binary.

use tokio::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the system's temporary one.
fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jobwire-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn token_without_jwt_secret_reads_the_secret_file_of_the_embedded_db() {
    let dir = temp_dir();
    let db_file = dir.join("jobwire.db");
    // As the embedded mode leaves it: <db file>.secret, two simple UUIDs.
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(dir.join("jobwire.db.secret"), &secret).unwrap();

    for args in [
        vec!["--db-file", db_file.to_str().unwrap()],
        vec!["--database-url", &format!("sqlite:{}", db_file.display())],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
            .args(["token", "--tenant", "acme"])
            .args(&args)
            .env_clear()
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        let token = text(&output.stdout);
        let keys = jobwire_server::JwtKeys::new(secret.as_bytes()).unwrap();
        let tenant = keys
            .verify(token.trim())
            .expect("signed with the file's secret");
        assert_eq!(tenant.to_string(), "acme");
    }

    // The same with JOBWIRE_DB_FILE, as the all-in-one reads it.
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--tenant", "acme"])
        .env_clear()
        .env("JOBWIRE_DB_FILE", &db_file)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn token_with_no_secret_anywhere_says_what_to_set() {
    let dir = temp_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--tenant", "acme"])
        .env_clear()
        .env("JOBWIRE_DB_FILE", dir.join("jobwire.db"))
        .output()
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("JOBWIRE_JWT_SECRET") && stderr.contains("jobwire.db.secret"),
        "says what to set and where it looked: {stderr}"
    );
    assert!(
        !dir.join("jobwire.db.secret").exists(),
        "no secret is made up: the server would refuse its tokens"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
