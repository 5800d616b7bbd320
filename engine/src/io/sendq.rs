//! How many bytes a TCP socket still holds unsent or unacknowledged: the
//! kernel's `write_seq - snd_una`, the number `ioctl(SIOCOUTQ)` gives. It
//! is asked through a `NETLINK_SOCK_DIAG` lookup of the socket by its two
//! addresses (the `idiag_wqueue` of the answer), in safe code: one `send`
//! and one `recv` per question. Linux only; elsewhere every question
//! fails with `Unsupported`.
//!
//! ```
//! use uploadtask_engine::io::sendq::{parse_reply, request};
//!
//! let local = "127.0.0.1:40000".parse().unwrap();
//! let peer = "127.0.0.1:8080".parse().unwrap();
//! let message = request(7, local, peer);
//! assert_eq!(message.len(), 72);
//! assert_eq!(&message[4..6], &20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
//! // A truncated answer is an error, never a number.
//! assert!(parse_reply(7, &message[..10]).is_err());
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::io::transport::Transport;
use crate::proto::exchange::Exchange;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const HEADER: usize = 16;
/// `inet_diag_msg`: family, state, timer, retrans, sockid (48), expires,
/// rqueue, wqueue, uid, inode.
const WQUEUE_AT: usize = 4 + 48 + 4 + 4;

/// The lookup of the TCP socket `local` → `peer`, numbered `seq`.
pub fn request(seq: u32, local: SocketAddr, peer: SocketAddr) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[0..4].copy_from_slice(&72u32.to_ne_bytes());
    out[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    // inet_diag_req_v2
    out[16] = if local.is_ipv4() { 2 } else { 10 }; // AF_INET, AF_INET6
    out[17] = 6; // IPPROTO_TCP
    out[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
                                                          // inet_diag_sockid: ports and addresses in network order.
    out[24..26].copy_from_slice(&local.port().to_be_bytes());
    out[26..28].copy_from_slice(&peer.port().to_be_bytes());
    put_ip(&mut out[28..44], local);
    put_ip(&mut out[44..60], peer);
    // interface 0 (any); cookie INET_DIAG_NOCOOKIE.
    out[64..72].fill(0xff);
    out
}

fn put_ip(out: &mut [u8], addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => out[..4].copy_from_slice(&v4.ip().octets()),
        SocketAddr::V6(v6) => out.copy_from_slice(&v6.ip().octets()),
    }
}

/// The unacknowledged bytes in the kernel's answer to request `seq`.
pub fn parse_reply(seq: u32, mut bytes: &[u8]) -> io::Result<u64> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag answer");
    while bytes.len() >= HEADER {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
        let got = u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if len < HEADER || len > bytes.len() {
            return Err(bad());
        }
        let payload = &bytes[HEADER..len];
        if got == seq {
            match kind {
                SOCK_DIAG_BY_FAMILY => {
                    let field = payload.get(WQUEUE_AT..WQUEUE_AT + 4).ok_or_else(bad)?;
                    return Ok(u64::from(u32::from_ne_bytes([field[0], field[1], field[2], field[3]])));
                }
                NLMSG_ERROR => {
                    let field = payload.get(..4).ok_or_else(bad)?;
                    let errno = i32::from_ne_bytes([field[0], field[1], field[2], field[3]]);
                    return Err(io::Error::from_raw_os_error(errno.checked_neg().unwrap_or(0)));
                }
                NLMSG_DONE => return Err(io::ErrorKind::NotFound.into()),
                _ => {}
            }
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        bytes = bytes.get(next..).unwrap_or(&[]);
    }
    Err(bad())
}

/// A netlink socket for the questions (one per engine loop).
#[derive(Debug)]
pub struct SendQueues {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl SendQueues {
    /// Opens the netlink socket (non-blocking: the kernel answers during
    /// the `send`, so the `recv` never waits).
    #[cfg(target_os = "linux")]
    pub fn open() -> io::Result<SendQueues> {
        use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(rustix::net::netlink::SOCK_DIAG),
        )?;
        Ok(SendQueues {
            fd,
            seq: 0,
            buf: vec![0; 8192],
        })
    }

    /// Not on this system.
    #[cfg(not(target_os = "linux"))]
    pub fn open() -> io::Result<SendQueues> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Bytes the socket `local` → `peer` holds unsent or unacknowledged.
    #[cfg(target_os = "linux")]
    pub fn unacked(&mut self, local: SocketAddr, peer: SocketAddr) -> io::Result<u64> {
        use rustix::net::{recv, send, RecvFlags, SendFlags};
        self.seq = self.seq.wrapping_add(1);
        let message = request(self.seq, local, peer);
        send(&self.fd, &message, SendFlags::empty())?;
        // Answers to earlier questions that were never read are skipped.
        for _ in 0..4 {
            let (_, n) = recv(&self.fd, &mut self.buf[..], RecvFlags::empty())?;
            match parse_reply(self.seq, &self.buf[..n.min(self.buf.len())]) {
                Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
                result => return result,
            }
        }
        Err(io::Error::new(io::ErrorKind::InvalidData, "no sock_diag answer"))
    }

    /// Not on this system.
    #[cfg(not(target_os = "linux"))]
    pub fn unacked(&mut self, _local: SocketAddr, _peer: SocketAddr) -> io::Result<u64> {
        let _ = (&self.seq, &self.buf);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Asks the kernel what peers acknowledged (this module); opened on
/// first use. Where that is impossible, acknowledged progress stays at
/// zero until the response (late, never ahead), and that is logged once.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    queues: Option<SendQueues>,
    unavailable: bool,
}

impl Acks {
    pub(crate) fn ask(&mut self, transport: &mut dyn Transport, exchange: &mut Exchange, now: Instant) {
        if self.unavailable {
            return;
        }
        let Some((local, peer)) = transport.tcp_addrs() else {
            return;
        };
        if self.queues.is_none() {
            match SendQueues::open() {
                Ok(queues) => self.queues = Some(queues),
                Err(e) => {
                    self.unavailable = true;
                    log::warn!("uploadtask: acknowledged progress is not available here ({e})");
                    return;
                }
            }
        }
        let Some(queues) = self.queues.as_mut() else { return };
        match queues.unacked(local, peer) {
            Ok(unacked) => exchange.handle_unacked(transport.wire_written(), unacked, now),
            Err(e) => log::debug!("uploadtask: no acknowledged count for {local} -> {peer}: {e}"),
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_real_socket_reports_what_the_peer_has_not_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let mut queues = SendQueues::open().expect("netlink");
        let (local, peer) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
        assert_eq!(queues.unacked(local, peer).unwrap(), 0);
        client.write_all(&[7u8; 1000]).unwrap();
        // On loopback the peer's kernel acknowledges at once (it has the
        // bytes in its receive buffer): nothing stays unacknowledged.
        let mut unacked = u64::MAX;
        for _ in 0..100 {
            unacked = queues.unacked(local, peer).unwrap();
            if unacked == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(unacked, 0);
        // A socket that does not exist.
        let nowhere = "127.0.0.1:1".parse().unwrap();
        assert!(queues.unacked(local, nowhere).is_err());
    }

    #[test]
    fn error_and_foreign_answers() {
        let mut error = vec![0u8; 36];
        error[0..4].copy_from_slice(&36u32.to_ne_bytes());
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[8..12].copy_from_slice(&5u32.to_ne_bytes());
        error[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        assert_eq!(parse_reply(5, &error).unwrap_err().raw_os_error(), Some(2));
        assert!(parse_reply(6, &error).is_err(), "another question's answer");
        let mut lying = error.clone();
        lying[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_reply(5, &lying).is_err());
    }
}
