//! What touches the system: transports (TCP, TLS over any transport, the
//! scripted one for tests), file sources, the resolver's threads, the
//! kernel's send-queue answers, the pump that moves bytes between an
//! exchange and a transport, and the engine thread's signal mask.

pub mod pump;
pub mod resolver;
#[cfg(any(test, feature = "testing"))]
pub mod scripted;
pub mod sendq;
pub(crate) mod sigpipe;
pub mod source;
pub mod tls;
pub mod transport;
