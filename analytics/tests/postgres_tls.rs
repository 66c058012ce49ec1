//! TLS to Postgres under libpq's `sslmode` (and client certificates),
//! against the stack's Postgres, which offers TLS with a certificate its own
//! CA signed for 127.0.0.1 (and still accepts plain connections).
//! `pg_stat_ssl` tells whether the session analytics opened is encrypted.

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

/// A role the server lets in only with a client certificate (pg_hba's
/// `cert` method, as hosted Postgres offers it): `sslcert`/`sslkey` log it
/// in under any TLS mode; without them, or without TLS, it is refused for
/// good, and the message says why.
#[tokio::test]
async fn a_client_certificate_logs_in_where_the_server_asks_for_one() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let Some(login) = stack.postgres_cert_login.clone() else {
        eprintln!("skipped: the stack predates its certificate login (run make stack-up again)");
        return;
    };
    let ca = stack.postgres_ssl_ca.clone().expect("POSTGRES_SSL_CA");
    let as_cert_user = |query: &str| {
        format!(
            "postgres://{}@{}:{}/postgres?{query}",
            login.user, stack.postgres_host, stack.postgres_port
        )
    };
    let with_cert = format!(
        "sslcert={}&sslkey={}",
        login.cert.display(),
        login.key.display()
    );
    for mode in [
        "sslmode=prefer".to_owned(),
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ] {
        let client = store::connect(&as_cert_user(&format!("{mode}&{with_cert}")))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let row = client
            .query_one(
                "SELECT current_user::text, s.ssl, s.client_dn FROM pg_stat_ssl s \
                 WHERE s.pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        let (user, ssl, dn): (String, bool, Option<String>) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(user, login.user, "{mode}");
        assert!(ssl, "{mode}");
        assert!(dn.unwrap_or_default().contains("CN=client"), "{mode}");
    }
    let refused = |e: StoreError| {
        assert_eq!(e.recovery(), Recovery::Definite, "{e}");
        e.to_string()
    };
    let err = refused(
        store::connect(&as_cert_user("sslmode=require"))
            .await
            .expect_err("no certificate, no login"),
    );
    assert!(err.contains("certificate"), "{err}");
    eprintln!("without a client certificate: {err}");
    // libpq sends no certificate without TLS; pg_hba has no plain-text way in.
    let err = refused(
        store::connect(&as_cert_user(&format!("sslmode=disable&{with_cert}")))
            .await
            .expect_err("no TLS, no login"),
    );
    assert!(err.contains("pg_hba.conf rejects connection"), "{err}");
}
