//! Bad input at the hub: protocol version mismatch, oversize frame, wrong first message.

use std::time::Duration;

use ballast_agent::client;
use ballast_agent::pki::Ca;
use ballast_agent::proto::{
    AGENT_VERSION, AgentMsg, MAX_FRAME, PROTOCOL_VERSION, ServerMsg, read_frame, write_frame,
};
use tokio::io::AsyncWriteExt as _;

use ballast_agent::testkit::{TestAuthority, dispatch, sh, sim_facts, start_hub};

const SECOND: Duration = Duration::from_secs(1);

fn refused_code(m: &ServerMsg) -> &str {
    match m {
        ServerMsg::Refused { code, .. } => code,
        _ => "",
    }
}

#[tokio::test]
async fn protocol_version_mismatch_refused_with_code() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let id = client::enroll_with_facts(&hub.server, &auth.token(&ca, "prod"), sim_facts("h"), None)
        .await
        .unwrap();
    let mut s = client::open_mtls(&hub.server, &id).await.unwrap();
    write_frame(
        &mut s,
        &AgentMsg::Hello {
            version: "99.0.0".into(),
            protocol: PROTOCOL_VERSION + 1,
            facts: sim_facts("h"),
        },
    )
    .await
    .unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(refused_code(&m), "agent.version_mismatch", "{m:?}");
    if let ServerMsg::Refused {
        message_zh,
        message_en,
        ..
    } = &m
    {
        assert!(message_zh.contains("版本"));
        assert!(message_en.contains("version 2"));
    }
    assert!(!hub.hub.is_connected(&id.agent_id));
    hub.stop().await;
}

#[tokio::test]
async fn oversize_frame_rejected_by_hub() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let id = client::enroll_with_facts(&hub.server, &auth.token(&ca, "prod"), sim_facts("h"), None)
        .await
        .unwrap();

    // As the first frame: refused with the code, connection closed.
    let mut s = client::open_mtls(&hub.server, &id).await.unwrap();
    let len = u32::try_from(MAX_FRAME + 1).unwrap();
    s.write_all(&len.to_be_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(refused_code(&m), "agent.frame_too_large", "{m:?}");

    // After admission: the hub drops the connection.
    let mut s = client::open_mtls(&hub.server, &id).await.unwrap();
    write_frame(
        &mut s,
        &AgentMsg::Hello {
            version: AGENT_VERSION.into(),
            protocol: PROTOCOL_VERSION,
            facts: sim_facts("h"),
        },
    )
    .await
    .unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert!(matches!(m, ServerMsg::Welcome { .. }));
    assert!(hub.hub.is_connected(&id.agent_id));
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    s.flush().await.unwrap();
    assert!(
        ballast_agent::testkit::wait_until(5 * SECOND, || !hub.hub.is_connected(&id.agent_id))
            .await
    );
    let (r, _) = dispatch(&hub.hub, &id.agent_id, "prod", "t", sh("true")).await;
    assert_eq!(r.unwrap_err().code(), "agent.not_connected");
    hub.stop().await;
}

#[tokio::test]
async fn forged_and_foreign_client_certificates_refused() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let token = auth.token(&ca, "prod");
    let id = client::enroll_with_facts(&hub.server, &token, sim_facts("h"), None)
        .await
        .unwrap();
    // An identity whose certificate the authority does not know (fingerprint differs):
    // take a valid cert and a different CA-issued one for the same id.
    let (_, csr) = ballast_agent::pki::generate_key_and_csr("x").unwrap();
    let forged_cert = ca.sign_agent_csr(&csr, &id.agent_id, 1).unwrap();
    let forged = client::Identity {
        cert_pem: forged_cert,
        ..id.clone()
    };
    // The key does not match that certificate, so TLS setup itself refuses…
    assert!(client::open_mtls(&hub.server, &forged).await.is_err());
    // …and a certificate from another CA is refused in the handshake.
    let other = Ca::generate("other").unwrap();
    let (key2, csr2) = ballast_agent::pki::generate_key_and_csr("y").unwrap();
    let foreign = client::Identity {
        agent_id: id.agent_id.clone(),
        cert_pem: other.sign_agent_csr(&csr2, &id.agent_id, 1).unwrap(),
        key_pem: key2,
        ca_pem: id.ca_pem.clone(),
    };
    match client::open_mtls(&hub.server, &foreign).await {
        Err(_) => {}
        Ok(mut s) => {
            // TLS 1.3: the client learns of the rejection on its first read.
            let _ = write_frame(&mut s, &AgentMsg::Heartbeat { seq: 1 }).await;
            let r = read_frame::<_, ServerMsg>(&mut s).await;
            assert!(!matches!(r, Ok(Some(ServerMsg::Welcome { .. }))), "{r:?}");
        }
    }
    assert!(hub.hub.connected().is_empty());
    hub.stop().await;
}

/// A TLS connection without client certificate, trusting `ca`.
async fn anonymous(
    server: &str,
    ca: &Ca,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn connection_without_certificate_may_only_enrol() {
    let ca = Ca::generate("ca").unwrap();
    let auth = TestAuthority::new();
    let hub = start_hub(&ca, auth.clone(), 0, SECOND).await;
    let token = ballast_agent::pki::EnrollToken::parse(&auth.token(&ca, "prod")).unwrap();

    // hello without a client certificate: refused.
    let mut s = anonymous(&hub.server, &ca).await;
    let hello = AgentMsg::Hello {
        version: AGENT_VERSION.into(),
        protocol: PROTOCOL_VERSION,
        facts: sim_facts("h"),
    };
    write_frame(&mut s, &hello).await.unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(refused_code(&m), "agent.protocol", "{m:?}");

    // enroll with another protocol version: refused with the code, token not spent.
    let (_, csr) = ballast_agent::pki::generate_key_and_csr("h").unwrap();
    let enroll = |protocol: u32, csr_pem: &str| AgentMsg::Enroll {
        token_secret: token.secret.clone(),
        csr_pem: csr_pem.to_owned(),
        facts: sim_facts("h"),
        version: AGENT_VERSION.into(),
        protocol,
    };
    let mut s = anonymous(&hub.server, &ca).await;
    write_frame(&mut s, &enroll(PROTOCOL_VERSION + 1, &csr))
        .await
        .unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(refused_code(&m), "agent.version_mismatch", "{m:?}");

    // enroll with a CSR that does not parse: refused, token not spent.
    let mut s = anonymous(&hub.server, &ca).await;
    write_frame(&mut s, &enroll(PROTOCOL_VERSION, "not a csr"))
        .await
        .unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(refused_code(&m), "agent.csr_invalid", "{m:?}");
    assert!(
        auth.state
            .lock()
            .unwrap()
            .tokens
            .values()
            .all(|(_, used)| !used)
    );

    // The real thing still works, once; the connection closes after the answer.
    let mut s = anonymous(&hub.server, &ca).await;
    write_frame(&mut s, &enroll(PROTOCOL_VERSION, &csr))
        .await
        .unwrap();
    let m: ServerMsg = read_frame(&mut s).await.unwrap().unwrap();
    assert!(matches!(m, ServerMsg::Enrolled { .. }), "{m:?}");
    assert!(
        read_frame::<_, ServerMsg>(&mut s)
            .await
            .unwrap_or(None)
            .is_none()
    );
    hub.stop().await;
}
