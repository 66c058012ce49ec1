//! TLS to Postgres under libpq's `sslmode`, against the stack's Postgres,
//! which offers TLS with a certificate its own CA signed for 127.0.0.1 (and
//! still accepts plain connections). `pg_stat_ssl` tells whether the
//! session analytics opened is encrypted.

use analytics::store::{self, Recovery, StoreError};
use pipeline::testing::Stack;

/// Whether the session of `url` is encrypted, or the connection error.
async fn encrypted(url: &str) -> Result<bool, StoreError> {
    let client = store::connect(url).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

fn url(stack: &Stack, host: &str, query: &str) -> String {
    format!(
        "postgres://{}@{host}:{}/postgres?application_name=tls-test&{query}",
        stack.postgres_user, stack.postgres_port
    )
}

#[tokio::test]
async fn each_sslmode_encrypts_and_verifies_as_libpq_does() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let ca = stack
        .postgres_ssl_ca
        .clone()
        .expect("POSTGRES_SSL_CA: the stack's Postgres has TLS (make stack-up)");
    let ca = ca.display().to_string();
    assert_eq!(
        stack.postgres_host, "127.0.0.1",
        "the name the certificate carries"
    );
    let ip = stack.postgres_host.as_str();

    // The default (prefer) encrypts when the server offers it, as libpq does.
    assert!(encrypted(&stack.postgres_url("postgres")).await.unwrap());
    for (query, tls) in [
        ("sslmode=disable", false),
        ("sslmode=allow", true),
        ("sslmode=prefer", true),
        ("sslmode=require", true),
    ] {
        assert_eq!(
            encrypted(&url(&stack, ip, query)).await.unwrap(),
            tls,
            "{query}"
        );
    }
    let verify_ca = format!("sslmode=verify-ca&sslrootcert={ca}");
    let verify_full = format!("sslmode=verify-full&sslrootcert={ca}");
    assert!(encrypted(&url(&stack, ip, &verify_ca)).await.unwrap());
    assert!(encrypted(&url(&stack, ip, &verify_full)).await.unwrap());
    // verify-ca does not check the name; the certificate does not name localhost.
    assert!(encrypted(&url(&stack, "localhost", &verify_ca))
        .await
        .unwrap());
    // The key=value form says the same.
    let key_value = format!(
        "host={ip} port={} user={} dbname=postgres sslmode=verify-full sslrootcert={ca}",
        stack.postgres_port, stack.postgres_user
    );
    assert!(encrypted(&key_value).await.unwrap());

    let refused = |e: StoreError| {
        assert_eq!(e.recovery(), Recovery::Definite, "{e}");
        e.to_string()
    };
    let err = refused(
        encrypted(&url(&stack, "localhost", &verify_full))
            .await
            .unwrap_err(),
    );
    assert!(
        err.contains("refused under sslmode=verify-full") && err.contains("name the URL's host"),
        "{err}"
    );
    eprintln!("verify-full by a name the certificate lacks: {err}");
    // The system's CAs do not know the stack's; libpq's require with a root
    // certificate verifies it too.
    let err = refused(
        encrypted(&url(&stack, ip, "sslmode=verify-ca&sslrootcert=system"))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("certificate verify failed"), "{err}");
    let err = refused(
        encrypted(&url(&stack, ip, "sslmode=require&sslrootcert=system"))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("refused under sslmode=require"), "{err}");
    let err = refused(
        encrypted(&url(&stack, ip, "sslmode=verify-full"))
            .await
            .unwrap_err(),
    );
    assert!(err.contains("needs sslrootcert"), "{err}");
}
