//! TLS trust: which server certificates the engine accepts, and the rustls
//! client configuration built from [`EngineConfig`](crate::EngineConfig).
//!
//! - A chain to `webpki-roots` or to an extra root, checked by rustls'
//!   webpki verifier (validity, name against subjectAltName, usage).
//! - A certificate given as an extra root and presented exactly (byte for
//!   byte) as the server's end-entity certificate is trusted for that
//!   server, as OpenSSL and curl trust a self-signed certificate passed with
//!   `--cacert`: this covers the usual `openssl req -x509` certificate, which
//!   marks itself `CA:TRUE` and which webpki alone refuses as an end entity.
//!   Its validity period and name are still checked; the name against
//!   subjectAltName only (a certificate with only a CN is refused, as by
//!   browsers and rustls).
//! - [`EngineConfig::danger_accept_invalid_certs`](crate::EngineConfig::danger_accept_invalid_certs) accepts any certificate
//!   (the handshake signatures are still checked): for tests against a
//!   throwaway server, never in production; the program's `-k` only.
//! - A chain webpki accepted is kept (the 16 used last), so that the next
//!   connections presenting the same bytes for the same name, within every
//!   certificate's validity period, skip the path check; the server's
//!   handshake signature is checked on every connection.
//! - A client certificate (mutual TLS) from PEM.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{ErrorKind, UploadError};

mod verified;
use verified::VerifiedChains;

/// A client certificate chain and its private key, for mutual TLS.
#[derive(Debug)]
pub struct ClientAuth {
    /// The certificate chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientAuth {
    fn clone(&self) -> Self {
        ClientAuth {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ClientAuth {
    /// Reads a certificate chain and a private key (PKCS#8, PKCS#1 or SEC1)
    /// from PEM.
    pub fn from_pem(certs_pem: &[u8], key_pem: &[u8]) -> Result<ClientAuth, UploadError> {
        use rustls::pki_types::pem::PemObject;
        let bad = |what: String| UploadError::new(ErrorKind::InvalidArgument, what);
        let certs = CertificateDer::pem_slice_iter(certs_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("bad client certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(bad("no certificate in the client certificate PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad(format!("bad client key PEM: {e}")))?;
        Ok(ClientAuth { certs, key })
    }
}

/// What the client trusts and shows: the engine configuration's TLS fields.
pub(crate) struct Trust<'a> {
    /// Roots beside webpki's, also trusted as the end entity itself.
    pub(crate) extra_roots: &'a [CertificateDer<'static>],
    /// A client certificate and key, if the server asks.
    pub(crate) client_auth: Option<&'a ClientAuth>,
    /// Accept any certificate.
    pub(crate) danger_accept_invalid_certs: bool,
}

/// The rustls client configuration for `config` (see the module doc).
pub(crate) fn client_config(config: &Trust<'_>) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    let internal = |e: &dyn std::fmt::Display| UploadError::new(ErrorKind::Internal, e.to_string());
    let provider = Arc::new(provider());
    let verifier = Arc::new(Verifier::new(config, Arc::clone(&provider))?);
    if config.danger_accept_invalid_certs {
        log::warn!("uploadtask: TLS certificate checks are OFF (danger_accept_invalid_certs)");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| internal(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut tls = match config.client_auth {
        Some(auth) => builder
            .with_client_auth_cert(auth.certs.clone(), auth.key.clone_key())
            .map_err(|e| UploadError::new(ErrorKind::InvalidArgument, format!("bad client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// ring with the cipher suites in the order of [`preference`].
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(preference);
    provider
}

/// Where a cipher suite goes in the client's offer: AES-128-GCM first, then
/// AES-256-GCM, then ChaCha20-Poly1305, TLS 1.3 before TLS 1.2 and ECDSA
/// before RSA, as Chrome, Firefox and Go order them (rustls and OpenSSL put
/// AES-256 first). AES-128 takes 10 rounds where AES-256 takes 14, and its
/// suite hashes with SHA-256, which processors accelerate (SHA-384 they do
/// not). Servers mostly follow the client's order.
fn preference(suite: &rustls::SupportedCipherSuite) -> usize {
    use rustls::CipherSuite as S;
    const ORDER: [S; 9] = [
        S::TLS13_AES_128_GCM_SHA256,
        S::TLS13_AES_256_GCM_SHA384,
        S::TLS13_CHACHA20_POLY1305_SHA256,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    ORDER.iter().position(|s| *s == suite.suite()).unwrap_or(ORDER.len())
}

#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// Extra roots: also trusted when presented as the end entity itself.
    pinned: Vec<CertificateDer<'static>>,
    insecure: bool,
    /// Chains webpki accepted before, for the next handshakes.
    verified: VerifiedChains,
}

impl Verifier {
    /// webpki with its roots and `config`'s extra roots, which are also
    /// trusted as the end entity itself.
    fn new(config: &Trust<'_>, provider: Arc<rustls::crypto::CryptoProvider>) -> Result<Verifier, UploadError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in config.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| UploadError::new(ErrorKind::InvalidArgument, format!("bad root certificate: {e}")))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| UploadError::new(ErrorKind::Internal, e.to_string()))?;
        Ok(Verifier {
            webpki,
            pinned: config.extra_roots.to_vec(),
            insecure: config.danger_accept_invalid_certs,
            verified: VerifiedChains::default(),
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        if self.verified.contains(end_entity, intermediates, server_name, now) {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(verified) => {
                self.verified.insert(end_entity, intermediates, server_name);
                Ok(verified)
            }
            Err(_) if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) => {
                verify_pinned(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A pinned certificate: its identity is established by equality; its
/// validity period and its name (subjectAltName) are still checked.
fn verify_pinned(cert: &CertificateDer<'_>, name: &ServerName<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (not_before, not_after) = validity(cert).ok_or(CertificateError::BadEncoding)?;
    if now.as_secs() < not_before {
        return Err(CertificateError::NotValidYet.into());
    }
    if now.as_secs() > not_after {
        return Err(CertificateError::Expired.into());
    }
    let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, name)
}

/// One DER element: tag, contents, and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `notBefore` and `notAfter` of a certificate, in seconds since the epoch.
fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    let (0x30, certificate, _) = der(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der(certificate)? else { return None };
    let mut rest = tbs;
    let (tag, _, after) = der(rest)?;
    if tag == 0xa0 {
        rest = after; // [0] version
    }
    for _ in 0..3 {
        rest = der(rest)?.2; // serialNumber, signature, issuer
    }
    let (0x30, validity, _) = der(rest)? else { return None };
    let (tag, not_before, rest) = der(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = der(rest)?;
    Some((not_before, time(tag, not_after)?))
}

/// An X.509 `UTCTime` (tag 0x17) or `GeneralizedTime` (0x18) in UTC.
fn time(tag: u8, text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |at: usize| rest.get(at..at + 2)?.parse::<i64>().ok();
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    uploadtask_http1::date::unix_seconds(year, month, day, hour, minute, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x509_times() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20260101000000Z"), Some(1_767_225_600));
        assert_eq!(time(0x18, b"99991231235959Z"), Some(253_402_300_799));
        for bad in [&b"700101000000"[..], b"7001010000Z", b"701301000000Z", b"7001010000xxZ"] {
            assert_eq!(time(0x17, bad), None, "{bad:?}");
        }
        assert_eq!(time(0x18, b"700101000000Z"), None);
    }

    /// A CA and a leaf it signed for `localhost`, valid from 2020 to 2030.
    fn ca_and_leaf() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let leaf = leaf_params
            .signed_by(&rcgen::KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        (ca.der().clone(), leaf.der().clone())
    }

    /// New Year's Day of `year`.
    fn at(year: u32) -> UnixTime {
        let secs = time(0x18, format!("{year}0101000000Z").as_bytes()).unwrap();
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
    }

    fn name(name: &str) -> ServerName<'static> {
        ServerName::try_from(name).unwrap().to_owned()
    }

    #[test]
    fn a_kept_chain_answers_only_for_its_name_its_bytes_and_its_period() {
        let (ca, leaf) = ca_and_leaf();
        let chains = VerifiedChains::default();
        let localhost = name("localhost");
        chains.insert(&leaf, &[], &localhost);
        assert!(chains.contains(&leaf, &[], &localhost, at(2025)));
        assert!(!chains.contains(&leaf, &[], &name("other.test"), at(2025)));
        assert!(!chains.contains(&leaf, std::slice::from_ref(&ca), &localhost, at(2025)));
        assert!(!chains.contains(&ca, &[], &localhost, at(2025)));
        let mut altered = leaf.to_vec();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(!chains.contains(&CertificateDer::from(altered), &[], &localhost, at(2025)));
        for year in [2019, 2031] {
            assert!(!chains.contains(&leaf, &[], &localhost, at(year)), "{year}");
        }
        // Both ends inclusive, as RFC 5280 and webpki have them.
        assert!(chains.contains(&leaf, &[], &localhost, at(2020)));
        assert!(chains.contains(&leaf, &[], &localhost, at(2030)));
        // The period kept is the one all certificates share.
        chains.insert(&ca, std::slice::from_ref(&leaf), &localhost);
        assert!(chains.contains(&ca, std::slice::from_ref(&leaf), &localhost, at(2025)));
        assert!(!chains.contains(&ca, std::slice::from_ref(&leaf), &localhost, at(2031)));
        // A certificate whose validity does not parse: not kept.
        let junk = CertificateDer::from(vec![0x30, 0x00]);
        chains.insert(&junk, &[], &localhost);
        assert!(!chains.contains(&junk, &[], &localhost, at(2025)));
    }

    #[test]
    fn the_chain_used_least_recently_goes_first() {
        let (_, leaf) = ca_and_leaf();
        let chains = VerifiedChains::default();
        let names: Vec<_> = (0..=verified::KEPT).map(|i| name(&format!("h{i}.test"))).collect();
        for n in &names[..verified::KEPT] {
            chains.insert(&leaf, &[], n);
        }
        // Used again: the second one is now the least recently used.
        assert!(chains.contains(&leaf, &[], &names[0], at(2025)));
        chains.insert(&leaf, &[], &names[verified::KEPT]);
        assert!(chains.contains(&leaf, &[], &names[0], at(2025)));
        assert!(!chains.contains(&leaf, &[], &names[1], at(2025)));
        for n in &names[2..] {
            assert!(chains.contains(&leaf, &[], n, at(2025)), "{n:?}");
        }
    }

    #[test]
    fn the_verifier_keeps_what_webpki_accepted_and_refuses_what_it_would_refuse() {
        let (ca, leaf) = ca_and_leaf();
        let roots = [ca];
        let config = Trust {
            extra_roots: &roots,
            client_auth: None,
            danger_accept_invalid_certs: false,
        };
        let verifier = Verifier::new(&config, Arc::new(rustls::crypto::ring::default_provider())).unwrap();
        let localhost = name("localhost");
        assert!(verifier
            .verify_server_cert(&leaf, &[], &localhost, &[], at(2025))
            .is_ok());
        assert!(verifier.verified.contains(&leaf, &[], &localhost, at(2025)), "kept");
        assert!(verifier
            .verify_server_cert(&leaf, &[], &localhost, &[], at(2026))
            .is_ok());
        let expired = verifier.verify_server_cert(&leaf, &[], &localhost, &[], at(2031));
        assert!(
            matches!(
                expired,
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                ))
            ),
            "{expired:?}"
        );
        let other = verifier.verify_server_cert(&leaf, &[], &name("other.test"), &[], at(2025));
        assert!(
            matches!(
                other,
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{other:?}"
        );
        // Refused chains are not kept.
        assert!(!verifier.verified.contains(&leaf, &[], &name("other.test"), at(2025)));
    }

    #[test]
    fn aes_128_gcm_is_offered_first() {
        let offered: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(offered.len(), rustls::crypto::ring::ALL_CIPHER_SUITES.len());
        assert_eq!(
            offered[..3],
            [
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            ]
        );
    }

    #[test]
    fn der_lengths_are_bounded_by_the_input() {
        assert_eq!(der(&[0x30, 0x02, 1, 2, 3]), Some((0x30, &[1u8, 2][..], &[3u8][..])));
        assert_eq!(der(&[0x30, 0x82, 0x01, 0x00, 1]), None);
        assert_eq!(der(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(der(&[0x30]), None);
        assert_eq!(validity(&[0x30, 0x00]), None);
    }
}
