//! The bounds on what a server sends: [`Limits`].

/// Limits applied to what a server sends. Every buffer the codecs let grow is
/// bounded by one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest response head (status line and headers), in bytes. Default 64 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in one response head. Default 128.
    pub max_headers: usize,
    /// Most 1xx interim responses skipped before the final one. Default 16.
    pub max_interim_responses: usize,
    /// Longest chunk-size line, extensions included, in bytes. Default 4 KiB.
    pub max_chunk_line: usize,
    /// Largest trailer section of a chunked body, in bytes. Default 16 KiB.
    pub max_trailer_bytes: usize,
    /// Largest response body kept, in bytes. Default 16 MiB.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: 128,
            max_interim_responses: 16,
            max_chunk_line: 4 * 1024,
            max_trailer_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}
