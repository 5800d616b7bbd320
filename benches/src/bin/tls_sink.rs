//! The benches' sink over HTTPS (hyper on rustls with ring, one runtime
//! thread): a second TLS sink beside nginx (OpenSSL), for
//! `benches/tls/run.sh`.
//!
//! `tls_sink CERT.pem KEY.pem [PORT]` prints `127.0.0.1:PORT` on its first
//! line, then serves until its standard input closes. Session tickets are
//! on (rustls's ticketer), as in nginx's default.

use std::io::Read;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cert), Some(key)) = (args.first(), args.get(1)) else {
        eprintln!("usage: tls_sink CERT.pem KEY.pem [PORT]");
        std::process::exit(2);
    };
    let port: u16 = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .expect("a PEM certificate chain in CERT");
    let key = PrivateKeyDer::from_pem_file(key).expect("a PEM private key in KEY");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    let sink = uploadtask_benches::Sink::start_with(port, 1, Some(Arc::new(config))).expect("sink");
    println!("{}", sink.addr());
    // Serves until stdin closes (the harness drops it or exits).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
