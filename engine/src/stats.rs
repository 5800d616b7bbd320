//! What an engine holds, counted: [`Stats`].

/// Counts of what an engine holds; see [`Engine::stats`](crate::engine::Engine::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Uploads in the slab (queued or in flight).
    pub uploads: usize,
    /// Uploads holding a place in flight.
    pub in_flight: usize,
    /// Uploads waiting for a place.
    pub queued: usize,
    /// Connections open (busy, connecting or idle).
    pub connections: usize,
    /// Idle connections in the pool.
    pub idle_connections: usize,
    /// Timer entries (stale ones dropped first).
    pub timers: usize,
    /// Response bytes held for uploads in flight.
    pub buffered_response_bytes: usize,
    /// Uploads submitted and not yet ended, as the submitters count them.
    pub admitted: usize,
    /// Requests sent again on a new connection after their reused
    /// connection failed before any response byte, since the engine started
    /// ([`EngineConfig::resend_reused`](crate::config::EngineConfig::resend_reused)).
    pub resent: u64,
    /// Origins not pooled for now, as their connections closed right after
    /// their first answer.
    pub origins_not_pooled: usize,
    /// Connections opened since the engine started (connect attempts that
    /// lost a Happy Eyeballs race included).
    pub connections_opened: u64,
    /// Of those, the ones that spoke HTTP/2.
    pub http2_connections_opened: u64,
}
