//! Happy Eyeballs through the real loop and real sockets: a name whose
//! first address (`::1`) drops SYNs (a listener whose accept queue is
//! full) beside a server on `127.0.0.1` connects through the second after
//! the attempt delay, byte-exact; a name whose every address drops SYNs
//! fails with 204 at the one connect timeout, naming the addresses tried;
//! an abort during the race closes every attempt; the descriptors return
//! to where they were. One test: it counts this process's descriptors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use uploadtask_engine::{Engine, EngineConfig, ErrorKind, SourceSpec, StaticResolver, UploadRequest};
use uploadtask_tests::{content_length, open_fds, read_head, run_upload, sha256_hex, submit_collect, RawServer};

/// A listener on `addr` whose accept queue is full: SYNs to it get no
/// answer. Holds the listener and the connections that fill it.
struct Blackhole {
    _listener: socket2::Socket,
    _fillers: Vec<socket2::Socket>,
}

fn blackhole(addr: SocketAddr) -> Blackhole {
    use socket2::{Domain, Socket, Type};
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let listener = Socket::new(domain, Type::STREAM, None).unwrap();
    if addr.is_ipv6() {
        listener.set_only_v6(true).unwrap();
    }
    listener.set_reuse_address(true).unwrap();
    listener.bind(&addr.into()).unwrap();
    listener.listen(0).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let filler = Socket::new(domain, Type::STREAM, None).unwrap();
        filler.set_nonblocking(true).unwrap();
        let _ = filler.connect(&addr.into());
        fillers.push(filler);
    }
    std::thread::sleep(Duration::from_millis(100));
    Blackhole {
        _listener: listener,
        _fillers: fillers,
    }
}

/// A server answering each request with the sha256 of its body.
fn digest_server() -> RawServer {
    RawServer::start(|mut stream, _| loop {
        let head = read_head(&mut stream);
        if head.is_empty() {
            return;
        }
        let mut body = vec![0u8; content_length(&head)];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let digest = sha256_hex(&body);
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{digest}", digest.len());
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    })
}

fn engine_for(names: &[(&str, Vec<SocketAddr>)], connect_timeout: Duration) -> Engine {
    let mut resolver = StaticResolver::new();
    for (name, addrs) in names {
        let ips: Vec<std::net::IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
        resolver = resolver.insert(name, &ips);
    }
    Engine::new(EngineConfig {
        resolver: Some(Arc::new(resolver)),
        connect_timeout,
        ..EngineConfig::default()
    })
    .unwrap()
}

#[test]
fn a_dead_address_family_costs_one_attempt_delay() {
    let fds_before = open_fds();
    {
        let server = digest_server();
        let port = server.addr().port();
        let _dead_v6 = blackhole(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)));
        let v4 = SocketAddr::from(([127, 0, 0, 1], port));
        let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port));
        // The default connect timeout (30 s); the overall timeout of 10 s
        // fails the upload if the dead address is waited for.
        let engine = engine_for(&[("dual.test", vec![v6, v4])], Duration::from_secs(30));
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let digest = sha256_hex(&body);
        let request = || {
            UploadRequest::new(format!("http://dual.test:{port}/up"))
                .raw_body(SourceSpec::Memory(body.clone().into()))
                .timeout(Duration::from_secs(10))
        };
        let response = run_upload(&engine, request()).result.expect("through 127.0.0.1");
        assert_eq!(
            (response.status, String::from_utf8_lossy(&response.body)),
            (200, digest.clone().into())
        );
        assert_eq!(engine.stats().unwrap().connections, 1, "the loser was closed");
        engine.shutdown();
        drop(server);
    }
    {
        // Every address drops SYNs: 204 at the connect timeout, naming them.
        let v4_dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let port = v4_dead.port();
        let _a = blackhole(v4_dead);
        let v6_dead = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port));
        let _b = blackhole(v6_dead);
        let engine = engine_for(&[("dead.test", vec![v6_dead, v4_dead])], Duration::from_millis(800));
        let request =
            UploadRequest::new(format!("http://dead.test:{port}/up")).raw_body(SourceSpec::Memory(vec![1; 10].into()));
        let error = run_upload(&engine, request).result.unwrap_err();
        assert_eq!((error.kind, error.code()), (ErrorKind::Timeout, 204));
        assert_eq!(
            error.message,
            format!("connect timeout: no address of dead.test answered in 800 ms (tried {v6_dead}, {v4_dead})")
        );
        engine.shutdown();
        // An abort during the race closes every attempt.
        let engine = engine_for(&[("dead.test", vec![v6_dead, v4_dead])], Duration::from_secs(30));
        let request =
            UploadRequest::new(format!("http://dead.test:{port}/up")).raw_body(SourceSpec::Memory(vec![1; 10].into()));
        let (id, outcome) = submit_collect(&engine, request);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(engine.stats().unwrap().connections, 2, "both attempts under way");
        engine.abort(id);
        let outcome = outcome.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::Aborted);
        assert_eq!(engine.stats().unwrap().connections, 0);
        engine.shutdown();
    }
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
}
