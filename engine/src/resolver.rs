//! Name resolution off the loop. IP literals resolve inline; names go to a
//! small pool of blocking threads, whose answers come back through the
//! loop's channel and waker.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Called once with the addresses (in the order to try) or an error.
pub type ResolveDone = Box<dyn FnOnce(io::Result<Vec<SocketAddr>>) + Send>;

/// Resolves host names. Implementations must not block the caller: answer
/// inline only when that is instant, else from another thread.
pub trait Resolver: Send + Sync {
    /// Resolves `host` (a name or IP literal, IPv6 without brackets) for `port`.
    fn resolve(&self, host: &str, port: u16, done: ResolveDone);
}

/// IP literals inline; names with `ToSocketAddrs` on a pool of threads.
pub struct ThreadPoolResolver {
    jobs: Mutex<mpsc::Sender<(String, u16, ResolveDone)>>,
}

impl std::fmt::Debug for ThreadPoolResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadPoolResolver")
    }
}

impl ThreadPoolResolver {
    /// A pool of `threads` resolver threads (at least one). They end when
    /// the resolver is dropped.
    pub fn new(threads: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<(String, u16, ResolveDone)>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("uploadtask-dns-{i}"))
                .spawn(move || loop {
                    // A poisoned lock only means another resolver thread panicked.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    let Ok((host, port, done)) = job else { return };
                    done((host.as_str(), port).to_socket_addrs().map(Iterator::collect));
                })?;
        }
        Ok(ThreadPoolResolver { jobs: Mutex::new(tx) })
    }
}

impl Resolver for ThreadPoolResolver {
    fn resolve(&self, host: &str, port: u16, done: ResolveDone) {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return done(Ok(vec![SocketAddr::new(ip, port)]));
        }
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send((host.to_string(), port, done)),
            Err(poisoned) => poisoned.into_inner().send((host.to_string(), port, done)),
        };
        if let Err(mpsc::SendError((_, _, done))) = sent {
            done(Err(io::Error::other("resolver pool stopped")));
        }
    }
}

/// A fixed map from host name to IP addresses, for tests. IP literals
/// resolve to themselves; unknown names fail.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    hosts: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty map.
    pub fn new() -> Self {
        StaticResolver::default()
    }

    /// Maps `host` to `addrs`, tried in order.
    pub fn insert(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.hosts.insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, host: &str, port: u16, done: ResolveDone) {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return done(Ok(vec![SocketAddr::new(ip, port)]));
        }
        done(match self.hosts.get(&host.to_ascii_lowercase()) {
            Some(addrs) => Ok(addrs.iter().map(|&ip| SocketAddr::new(ip, port)).collect()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("unknown host {host}"))),
        })
    }
}
