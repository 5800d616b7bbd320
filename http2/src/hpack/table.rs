//! The dynamic table (RFC 7541 §2.3.2, §4): newest entry first, each
//! counted as its name and value plus 32 bytes, the oldest evicted to make
//! room; an entry larger than the whole table empties it.

use std::collections::VecDeque;

/// Bytes an entry costs beyond its name and value.
const ENTRY_OVERHEAD: usize = 32;

/// One entry: a name and its value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// A decoder's dynamic table.
#[derive(Debug, Default)]
pub struct DynamicTable {
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    /// An empty table of at most `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// Its size as the RFC counts it.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `index` (0: the newest).
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(index).map(|(n, v)| (&n[..], &v[..]))
    }

    /// A new maximum size (a table size update): entries are evicted to fit.
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Adds an entry, evicting the oldest to make room.
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let cost = name.len() + value.len() + ENTRY_OVERHEAD;
        if cost > self.max_size {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - cost);
        self.entries.push_front((name.into(), value.into()));
        self.size += cost;
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some((name, value)) = self.entries.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= name.len() + value.len() + ENTRY_OVERHEAD;
        }
    }
}
