//! How an engine behaves: [`EngineConfig`] and its documented defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, UploadError};
use crate::io::resolver::Resolver;
use crate::io::tls;
use crate::io::transport::{Connector, Sendfile};
use crate::proto::proxy;
use crate::proto::retry;
use uploadtask_http1::Limits;

/// How an engine behaves. `Default` gives the documented defaults.
#[derive(Clone)]
pub struct EngineConfig {
    /// The name lookup and the race to connect, together (as curl's
    /// `--connect-timeout`). Default 30 s.
    pub connect_timeout: Duration,
    /// Happy Eyeballs (RFC 8305): while a connect is under way, the next
    /// address (alternating families) is tried after this long, the earlier
    /// attempts going on; the first to connect wins. curl's
    /// `--happy-eyeballs-timeout-ms` (200 ms there). Default 250 ms.
    pub happy_eyeballs_delay: Duration,
    /// No byte moved in either direction for this long fails the upload.
    /// Default 30 s.
    pub idle_timeout: Duration,
    /// How long an idle connection waits in the pool for the next upload to
    /// its origin; shortened to end a second before a server's `Keep-Alive:
    /// timeout=N`. Default 30 s.
    pub pool_idle_timeout: Duration,
    /// A request that failed on a reused connection before any byte of a
    /// response arrived is sent again once on a new connection, as browsers
    /// and curl do, even when the server may have received it whole (RFC
    /// 9110 §9.2.2). Off: only a request the server cannot
    /// have received whole is sent again (at most once delivery, at the
    /// cost of failures when a server closes an idle connection). Each
    /// resend is counted in [`Stats::resent`](crate::Stats::resent). Resumable uploads never
    /// resend a piece: they ask the server what it kept. Default on.
    pub resend_reused: bool,
    /// Uploads in flight at once; the rest wait in FIFO order. Default 256.
    pub max_in_flight: usize,
    /// Response limits (head, headers, chunk lines, trailers, body kept).
    pub limits: Limits,
    /// Reuse connections for successive uploads to the same origin. Default on.
    pub keep_alive: bool,
    /// Idle connections kept per origin. Default 1024.
    pub max_idle_per_origin: usize,
    /// TLS client configuration; built from `webpki-roots` plus
    /// `extra_roots` when `None`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Extra trusted roots (DER), added to `webpki-roots`. A certificate
    /// given here and presented by a server as its own end-entity
    /// certificate is trusted too (a self-signed certificate), with its
    /// validity and name checked; see [`tls`].
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// A client certificate for mutual TLS.
    pub client_auth: Option<tls::ClientAuth>,
    /// DANGEROUS: accept any server certificate (expired, self-signed,
    /// another name). Only for tests against a throwaway server; the
    /// program's `-k/--insecure` sets it and warns. Default off.
    pub danger_accept_invalid_certs: bool,
    /// Name resolution; a pool of 2 threads when `None`.
    pub resolver: Option<Arc<dyn Resolver>>,
    /// How long a looked-up name's addresses serve new connections, as
    /// curl's DNS cache. Uploads needing a name that is being looked up
    /// wait for that one lookup. Default 60 s (curl's); zero keeps none.
    pub dns_cache_timeout: Duration,
    /// Bytes one upload may write per loop turn before others get a turn.
    pub write_budget: usize,
    /// When to use `sendfile(2)` on plain TCP.
    pub sendfile: Sendfile,
    /// Uploads waiting for a place in flight (submitted, not started) at
    /// most; one more fails at once with code 200 ("upload queue is full").
    /// Default 65,536.
    pub max_queued: usize,
    /// The low-speed limit, as curl's `--speed-limit`: an upload that moves
    /// fewer than this many bytes per second (both directions), averaged over
    /// `low_speed_time`, fails with a timeout (204). 0 turns it off.
    /// Default 1 byte/s.
    pub low_speed_limit: u64,
    /// The window of the low-speed limit, as curl's `--speed-time`.
    /// Default 30 s.
    pub low_speed_time: Duration,
    /// Response bytes kept in memory for all uploads together (each upload
    /// also has `limits.max_body_bytes`); an upload whose response would go
    /// over it fails with code 200. Default 256 MiB.
    pub max_buffered_response_bytes: usize,
    /// Retries with backoff (see [`retry`]); none by default.
    pub retry: retry::RetryPolicy,
    /// The HTTP proxies to use; see [`proxy`]. Default: the environment's
    /// (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl reads
    /// them), read once when the engine starts; `Some(Proxies::default())`
    /// for none.
    pub proxies: Option<proxy::Proxies>,
    /// Bodies of at least this many bytes are sent with `Expect:
    /// 100-continue`: the body waits for `100 Continue`, or for a few round
    /// trips (4 × the connect RTT, at least 100 ms, at most 1 s) and then
    /// goes anyway; a final answer instead (401, 413…) is the result and no
    /// body is sent; a 417 sends it again without `Expect`. Default 1 MiB (as
    /// curl); `None` never.
    pub expect_continue_threshold: Option<u64>,
    /// Redirects followed (301/302/303 as browsers, 307/308 with the whole
    /// body again). Default 10; 0 follows none.
    pub max_redirects: u32,
    /// Follow a redirect from `https` to `http`. Default off.
    pub allow_https_to_http: bool,
    /// Every upload's progress counts body bytes the peer acknowledged
    /// ([`UploadRequest::progress_acked`](crate::UploadRequest::progress_acked)). Default off: kernel-accepted.
    pub progress_acked: bool,
    /// Opens connections; plain TCP ([`TcpConnector`](crate::TcpConnector) with `sendfile`
    /// above) when `None`. TLS is layered on whatever it returns.
    pub connector: Option<Arc<dyn Connector>>,
    /// The HTTP version of uploads that do not choose one. Default
    /// [`HttpVersion::Auto`](crate::HttpVersion::Auto): HTTP/2 where TLS
    /// negotiates it.
    pub http: crate::request::HttpVersion,
    /// Most streams one HTTP/2 connection carries at once (the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` bounds it too); beyond, another
    /// connection opens. Default `None`: the server's limit.
    pub max_streams_per_connection: Option<u32>,
    /// An HTTP/2 connection the server has sent nothing on for this long is
    /// pinged before it takes another stream, and the stream waits for the
    /// answer (one round trip). A connection whose path died silently (a
    /// NAT that forgot it, a peer that vanished) then costs a ping, not an
    /// upload. Chromium checks a connection quiet for 10 s the same way.
    /// Default 10 s.
    pub http2_ping_after: Duration,
    /// No answer to that ping for this long: the connection takes no new
    /// stream (it closes once its streams are over) and the waiting uploads
    /// go on another. Default 3 s.
    pub http2_ping_timeout: Duration,
    /// Raise this process's soft `RLIMIT_NOFILE` to its hard limit at start
    /// (the program does; a library leaves the process alone). Default off.
    pub raise_fd_limit: bool,
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("happy_eyeballs_delay", &self.happy_eyeballs_delay)
            .field("idle_timeout", &self.idle_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("resend_reused", &self.resend_reused)
            .field("max_in_flight", &self.max_in_flight)
            .field("limits", &self.limits)
            .field("keep_alive", &self.keep_alive)
            .field("sendfile", &self.sendfile)
            .field("max_queued", &self.max_queued)
            .field("low_speed_limit", &self.low_speed_limit)
            .field("low_speed_time", &self.low_speed_time)
            .field("max_buffered_response_bytes", &self.max_buffered_response_bytes)
            .field("raise_fd_limit", &self.raise_fd_limit)
            .field("extra_roots", &self.extra_roots.len())
            .field("client_auth", &self.client_auth.is_some())
            .field("danger_accept_invalid_certs", &self.danger_accept_invalid_certs)
            .field("max_idle_per_origin", &self.max_idle_per_origin)
            .field("tls", &self.tls.is_some())
            .field("resolver", &self.resolver.is_some())
            .field("dns_cache_timeout", &self.dns_cache_timeout)
            .field("write_budget", &self.write_budget)
            .field("retry", &self.retry)
            .field("proxies", &self.proxies.is_some())
            .field("expect_continue_threshold", &self.expect_continue_threshold)
            .field("max_redirects", &self.max_redirects)
            .field("allow_https_to_http", &self.allow_https_to_http)
            .field("progress_acked", &self.progress_acked)
            .field("http", &self.http)
            .field("max_streams_per_connection", &self.max_streams_per_connection)
            .field("http2_ping_after", &self.http2_ping_after)
            .field("http2_ping_timeout", &self.http2_ping_timeout)
            .field("connector", &self.connector.is_some())
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            connect_timeout: Duration::from_secs(30),
            happy_eyeballs_delay: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(30),
            resend_reused: true,
            max_in_flight: 256,
            limits: Limits::default(),
            keep_alive: true,
            max_idle_per_origin: 1024,
            tls: None,
            extra_roots: Vec::new(),
            client_auth: None,
            danger_accept_invalid_certs: false,
            resolver: None,
            dns_cache_timeout: Duration::from_secs(60),
            write_budget: 4 << 20,
            sendfile: Sendfile::Auto,
            max_queued: 65_536,
            low_speed_limit: 1,
            low_speed_time: Duration::from_secs(30),
            max_buffered_response_bytes: 256 << 20,
            raise_fd_limit: false,
            connector: None,
            max_redirects: 10,
            retry: retry::RetryPolicy::default(),
            proxies: None,
            expect_continue_threshold: Some(1 << 20),
            allow_https_to_http: false,
            progress_acked: false,
            http: crate::request::HttpVersion::Auto,
            max_streams_per_connection: None,
            http2_ping_after: Duration::from_secs(10),
            http2_ping_timeout: Duration::from_secs(3),
        }
    }
}

impl EngineConfig {
    /// Checks the settings `Engine::new` relies on; the error names the field.
    /// Durations may be as long as `Duration::MAX` (no deadline), never zero.
    pub fn validate(&self) -> Result<(), UploadError> {
        let zero = [
            ("connect_timeout", self.connect_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("low_speed_time", self.low_speed_time.is_zero()),
            ("max_in_flight", self.max_in_flight == 0),
            ("write_budget", self.write_budget == 0),
            ("limits.max_head_bytes", self.limits.max_head_bytes == 0),
            ("limits.max_headers", self.limits.max_headers == 0),
        ];
        match zero.iter().find(|(_, bad)| *bad) {
            Some((field, _)) => Err(UploadError::new(
                ErrorKind::InvalidArgument,
                format!("invalid engine config: {field} must be greater than zero"),
            )),
            None => Ok(()),
        }
    }

    /// Adds every certificate of a PEM file to the trusted roots; returns how
    /// many were added.
    pub fn add_root_pem(&mut self, pem: &[u8]) -> Result<usize, UploadError> {
        use rustls::pki_types::pem::PemObject;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| UploadError::new(ErrorKind::InvalidArgument, format!("bad PEM: {e}")))?;
            self.extra_roots.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(UploadError::new(ErrorKind::InvalidArgument, "no certificate in PEM"));
        }
        Ok(added)
    }

    /// The TLS configuration the engine will use (see [`tls`]).
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, UploadError> {
        if let Some(tls) = &self.tls {
            return Ok(Arc::clone(tls));
        }
        tls::client_config(&tls::Trust {
            extra_roots: &self.extra_roots,
            client_auth: self.client_auth.as_ref(),
            danger_accept_invalid_certs: self.danger_accept_invalid_certs,
        })
    }

    /// Builds the TLS configuration now and keeps it in [`EngineConfig::tls`],
    /// so that engines started from clones of this configuration share it:
    /// one session cache (a new connection on any of them resumes a session
    /// another made) and one set of verified chains, as the connections of
    /// one reqwest client or one curl multi handle share theirs. A
    /// configuration with `tls` set already is left as it is.
    ///
    /// ```
    /// use uploadtask_engine::EngineConfig;
    ///
    /// let mut config = EngineConfig::default();
    /// config.share_tls().unwrap();
    /// let (a, b) = (config.clone(), config);
    /// assert!(std::sync::Arc::ptr_eq(a.tls.as_ref().unwrap(), b.tls.as_ref().unwrap()));
    /// ```
    pub fn share_tls(&mut self) -> Result<(), UploadError> {
        if self.tls.is_none() {
            self.tls = Some(self.tls_config()?);
        }
        Ok(())
    }

    /// Sets the client certificate (mutual TLS) from PEM: a chain, leaf
    /// first, and its private key.
    pub fn add_client_auth_pem(&mut self, certs_pem: &[u8], key_pem: &[u8]) -> Result<(), UploadError> {
        self.client_auth = Some(tls::ClientAuth::from_pem(certs_pem, key_pem)?);
        Ok(())
    }
}
