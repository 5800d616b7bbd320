//! Slab keys with a generation, one type for both slabs (uploads and
//! connections): the index of a slot and the generation of its occupant,
//! so that a stale key (a timer, a resolver answer, a poll event for a
//! closed socket) can never reach a newer occupant of a reused slot. The
//! marker type keeps an upload's key and a connection's apart.

use std::marker::PhantomData;

use mio::Token;

/// Marks a key of the uploads' slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum OfUpload {}

/// Marks a key of the connections' slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum OfConn {}

/// A slot's index and its occupant's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SlotKey<T> {
    index: usize,
    generation: u32,
    of: PhantomData<T>,
}

/// An upload's key.
pub(crate) type Key = SlotKey<OfUpload>;
/// A connection's key.
pub(crate) type ConnKey = SlotKey<OfConn>;

impl<T> SlotKey<T> {
    pub(crate) fn new(index: usize, generation: u32) -> Self {
        SlotKey {
            index,
            generation,
            of: PhantomData,
        }
    }

    pub(crate) fn index(self) -> usize {
        self.index
    }

    pub(crate) fn generation(self) -> u32 {
        self.generation
    }

    /// The poller token: the generation in the high 32 bits, the index
    /// below (on a 32-bit target, the index alone).
    pub(crate) fn token(self) -> Token {
        let generation = (self.generation as usize).checked_shl(32).unwrap_or(0);
        Token(generation | (self.index & 0xffff_ffff))
    }

    pub(crate) fn from_token(token: Token) -> Self {
        SlotKey::new(token.0 & 0xffff_ffff, token.0.checked_shr(32).unwrap_or(0) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_index_and_generation() {
        let key = ConnKey::new(7, 3);
        assert_eq!(ConnKey::from_token(key.token()), key);
        assert_ne!(ConnKey::new(7, 4).token(), key.token());
    }
}
