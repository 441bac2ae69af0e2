//! HTTPS with `--tls-cert` and `--tls-key`: a client that trusts the certificate reaches the
//! server over TLS with the person's token, while this machine's own clients and instances go
//! on over plain HTTP on loopback, on the same port.

mod support;

use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, pki_types};

/// One HTTP/1.1 request over TLS to `port`, trusting only `cert`; the whole response.
async fn https(port: u16, cert: &[u8], request: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pki_types::CertificateDer::from(cert.to_vec()))
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("a TLS handshake");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tls.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_reach_the_server_over_tls_and_this_machine_still_over_http() {
    let keys = tempfile::tempdir().unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let pair = (cert.clone(), key.clone());
    let h = support::Harness::start_with(move |c| c.tls = Some(pair.clone())).await;
    let port = h.server().addr.port();
    let der = made.cert.der().to_vec();

    let health = https(
        port,
        &der,
        &format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let listed = https(
        port,
        &der,
        &format!(
            "GET /api/instances HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\
             Connection: close\r\n\r\n",
            h.server().token()
        ),
    )
    .await;
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    let refused = https(
        port,
        &der,
        &format!(
            "GET /api/instances HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    // Plain HTTP on loopback: the harness's own MCP client, and a real instance calling back.
    let id = h.spawn(json!({ "role": "tester" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "over loopback" }),
        )
        .await;
    assert_eq!(
        r.structured["response"], "ECHO: over loopback",
        "{}",
        r.text
    );

    // A certificate that is not one is said at start, naming the file.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let mut config = h.config();
    config.tls = Some((cert.clone(), key.clone()));
    let said = troupe::Server::start(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        said.contains("--tls-cert") && said.contains("no certificate"),
        "{said}"
    );
}
