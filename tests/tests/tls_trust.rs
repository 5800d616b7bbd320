//! TLS trust as users expect it: a self-signed
//! certificate passed as a root is trusted when the server presents exactly
//! it (also the `CA:TRUE` kind `openssl req -x509` makes), with its validity
//! and name still checked; a CN-only certificate stays refused with a clear
//! message; the insecure opt-in accepts anything; mutual TLS from PEM.

use std::net::IpAddr;
use std::sync::Arc;

use uploadtask_cli::serve::{Receiver, ReceiverConfig};
use uploadtask_engine::{Engine, EngineConfig, ErrorKind, FileInput, StaticResolver, TlsFailure, UploadRequest};
use uploadtask_tests::*;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server presenting `cert` alone; optionally requiring a client
/// certificate from `client_ca`.
fn server(cert: &rcgen::Certificate, key: &rcgen::KeyPair, client_ca: Option<&rcgen::Certificate>) -> Receiver {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    Receiver::start(ReceiverConfig {
        tls: Some(Arc::new(config)),
        ..Default::default()
    })
    .unwrap()
}

fn self_signed(configure: impl FnOnce(&mut rcgen::CertificateParams)) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    configure(&mut params);
    (params.self_signed(&key).unwrap(), key)
}

fn engine(configure: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = EngineConfig {
        resolver: Some(Arc::new(
            StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        )),
        ..EngineConfig::default()
    };
    configure(&mut config);
    Engine::new(config).unwrap()
}

fn upload(engine: &Engine, receiver: &Receiver) -> Result<u16, uploadtask_engine::UploadError> {
    let request = UploadRequest::new(format!("https://localhost:{}/u", receiver.addr().port()))
        .file(FileInput::memory("f", "a.txt", b"hello".to_vec()));
    run_upload(engine, request).result.map(|r| r.status)
}

#[test]
fn a_self_signed_certificate_given_as_a_root_is_trusted() {
    // CA:TRUE, as `openssl req -x509` makes them; and a plain CA:FALSE one.
    for is_ca in [
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
        rcgen::IsCa::NoCa,
    ] {
        let (cert, key) = self_signed(|p| p.is_ca = is_ca);
        let receiver = server(&cert, &key, None);
        let trusting = engine(|c| {
            c.add_root_pem(cert.pem().as_bytes()).unwrap();
        });
        assert_eq!(upload(&trusting, &receiver).unwrap(), 200, "{is_ca:?}");
        // Without it: unknown issuer, with a hint.
        let error = upload(&engine(|_| {}), &receiver).unwrap_err();
        assert_eq!(
            (error.kind, error.tls_failure()),
            (ErrorKind::Tls, Some(TlsFailure::UnknownIssuer))
        );
        assert!(error.message.contains("to the trusted roots"), "{error}");
    }
}

#[test]
fn a_pinned_certificate_still_needs_validity_and_the_name() {
    // Expired.
    let (cert, key) = self_signed(|p| {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let receiver = server(&cert, &key, None);
    let error = upload(&engine(|c| drop(c.add_root_pem(cert.pem().as_bytes()))), &receiver).unwrap_err();
    assert_eq!(error.tls_failure(), Some(TlsFailure::Expired), "{error}");
    // Another name.
    let (cert, key) =
        self_signed(|p| p.subject_alt_names = vec![rcgen::SanType::DnsName("other.test".try_into().unwrap())]);
    let receiver = server(&cert, &key, None);
    let error = upload(&engine(|c| drop(c.add_root_pem(cert.pem().as_bytes()))), &receiver).unwrap_err();
    assert_eq!(error.tls_failure(), Some(TlsFailure::NameMismatch), "{error}");
    // Only a CN, no subjectAltName: refused, and the message says why.
    let (cert, key) = self_signed(|p| p.subject_alt_names.clear());
    let receiver = server(&cert, &key, None);
    let error = upload(&engine(|c| drop(c.add_root_pem(cert.pem().as_bytes()))), &receiver).unwrap_err();
    assert_eq!(error.tls_failure(), Some(TlsFailure::NameMismatch), "{error}");
    assert!(error.message.contains("subjectAltName"), "{error}");
}

#[test]
fn the_insecure_opt_in_accepts_any_certificate() {
    let (cert, key) = self_signed(|p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        p.subject_alt_names.clear();
    });
    let receiver = server(&cert, &key, None);
    let insecure = engine(|c| c.danger_accept_invalid_certs = true);
    assert_eq!(upload(&insecure, &receiver).unwrap(), 200);
}

#[test]
fn mutual_tls_with_a_client_certificate_from_pem() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    let (cert, key) = self_signed(|_| {});
    let receiver = server(&cert, &key, Some(&ca));
    let with_cert = engine(|c| {
        c.add_root_pem(cert.pem().as_bytes()).unwrap();
        c.add_client_auth_pem(client.pem().as_bytes(), client_key.serialize_pem().as_bytes())
            .unwrap();
    });
    assert_eq!(upload(&with_cert, &receiver).unwrap(), 200);
    let without = engine(|c| {
        c.add_root_pem(cert.pem().as_bytes()).unwrap();
    });
    let error = upload(&without, &receiver).unwrap_err();
    assert_eq!((error.kind, error.code()), (ErrorKind::Tls, 1000), "{error}");
    // A bad PEM is a clear argument error.
    let mut config = EngineConfig::default();
    let error = config.add_client_auth_pem(b"nope", b"nope").unwrap_err();
    assert_eq!(error.code(), 202, "{error}");
}
