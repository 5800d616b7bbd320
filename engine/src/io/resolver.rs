//! Name resolution off the loop. IP literals resolve inline; names go to a
//! small pool of blocking threads, whose answers come back through the
//! loop's channel and waker.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
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
///
/// Bounded both ways: the pool starts with a few threads and grows, one
/// thread at a time, when a lookup arrives and none is idle, up to
/// `max_threads` (so a few hung lookups do not hold up the others); at most
/// `max_pending` lookups wait or run, and one more fails at once. A hung
/// lookup is ended for its upload by the engine's connect timeout; its
/// thread is freed when the system's resolver gives up.
pub struct ThreadPoolResolver {
    jobs: Mutex<mpsc::Sender<Job>>,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    counts: Arc<Counts>,
    max_threads: usize,
    max_pending: usize,
}

type Job = (String, u16, ResolveDone);

#[derive(Default)]
struct Counts {
    threads: AtomicUsize,
    idle: AtomicUsize,
    pending: AtomicUsize,
}

impl std::fmt::Debug for ThreadPoolResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolResolver")
            .field("threads", &self.counts.threads.load(Ordering::Relaxed))
            .field("max_threads", &self.max_threads)
            .field("max_pending", &self.max_pending)
            .finish()
    }
}

impl ThreadPoolResolver {
    /// A pool starting with `threads` resolver threads (at least one),
    /// growing up to 16 (or `threads`, if more), with at most 4,096 lookups
    /// pending. The threads end when the resolver is dropped.
    pub fn new(threads: usize) -> io::Result<Self> {
        ThreadPoolResolver::with_limits(threads, threads.max(16), 4096)
    }

    /// A pool starting with `threads` threads, growing up to `max_threads`,
    /// refusing lookups beyond `max_pending` waiting or running.
    pub fn with_limits(threads: usize, max_threads: usize, max_pending: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pool = ThreadPoolResolver {
            jobs: Mutex::new(tx),
            receiver: Arc::new(Mutex::new(rx)),
            counts: Arc::new(Counts::default()),
            max_threads: max_threads.max(threads).max(1),
            max_pending: max_pending.max(1),
        };
        for _ in 0..threads.max(1) {
            pool.spawn()?;
        }
        Ok(pool)
    }

    fn spawn(&self) -> io::Result<()> {
        let rx = Arc::clone(&self.receiver);
        let counts = Arc::clone(&self.counts);
        let number = counts.threads.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name(format!("uploadtask-dns-{number}"))
            .spawn(move || loop {
                counts.idle.fetch_add(1, Ordering::AcqRel);
                // A poisoned lock only means another resolver thread panicked.
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(poisoned) => poisoned.into_inner().recv(),
                };
                counts.idle.fetch_sub(1, Ordering::AcqRel);
                let Ok((host, port, done)) = job else {
                    counts.threads.fetch_sub(1, Ordering::AcqRel);
                    return;
                };
                let result = (host.as_str(), port).to_socket_addrs().map(Iterator::collect);
                counts.pending.fetch_sub(1, Ordering::AcqRel);
                done(result);
            });
        if let Err(e) = spawned {
            self.counts.threads.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
        Ok(())
    }
}

impl Resolver for ThreadPoolResolver {
    fn resolve(&self, host: &str, port: u16, done: ResolveDone) {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return done(Ok(vec![SocketAddr::new(ip, port)]));
        }
        if self.counts.pending.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
            self.counts.pending.fetch_sub(1, Ordering::AcqRel);
            let message = format!("resolver overloaded: {} lookups pending", self.max_pending);
            return done(Err(io::Error::new(io::ErrorKind::WouldBlock, message)));
        }
        let grow = self.counts.idle.load(Ordering::Acquire) == 0
            && self.counts.threads.load(Ordering::Acquire) < self.max_threads;
        if grow {
            if let Err(e) = self.spawn() {
                log::warn!("uploadtask: cannot add a resolver thread: {e}");
            }
        }
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send((host.to_string(), port, done)),
            Err(poisoned) => poisoned.into_inner().send((host.to_string(), port, done)),
        };
        if let Err(mpsc::SendError((_, _, done))) = sent {
            self.counts.pending.fetch_sub(1, Ordering::AcqRel);
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
