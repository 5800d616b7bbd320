//! Certificate chains the webpki verifier accepted, kept so that a new
//! connection presenting the very same chain for the very same name skips
//! the path check (parsing and one signature per certificate), as browsers
//! cache verification results. Each handshake still checks the server's
//! signature over the handshake, so the server must hold the key.
//!
//! ```text
//!             insert (webpki said yes, every validity period parsed)
//!   absent ─────────────────────────────────────────────▶ kept
//!     ▲                                                    │
//!     │  evicted (least recently used, when full)          │ lookup: same name,
//!     └────────────────────────────────────────────────────┤ same bytes, now in
//!                                                          │ every certificate's
//!                                                          ▼ validity period
//!                                                        hit (webpki skipped)
//! ```
//!
//! The answer of webpki for one chain and one name depends on the time only
//! through the certificates' validity periods (the roots are fixed per
//! engine, and no revocation lists are configured), so a kept entry answers
//! only while `now` lies in every presented certificate's period; outside,
//! the chain goes to webpki again, which says why it is refused.

use std::sync::Mutex;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// How many chains are kept: one per origin a client uploads to at once is
/// the usual need.
pub(super) const KEPT: usize = 16;

/// Chains accepted before (see the module doc). Shared by the engines of a
/// client through their rustls configuration; the lock is held for a
/// comparison of a few kilobytes, once per full handshake.
#[derive(Debug, Default)]
pub(super) struct VerifiedChains {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    kept: Vec<Entry>,
    /// Ticks on every hit and insert: the least recently used goes first.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    name: ServerName<'static>,
    /// End entity first, then the intermediates as presented.
    chain: Vec<CertificateDer<'static>>,
    /// The latest `notBefore` and the earliest `notAfter` of the chain.
    not_before: u64,
    not_after: u64,
    used: u64,
}

impl Entry {
    fn is(&self, end_entity: &[u8], intermediates: &[CertificateDer<'_>], name: &ServerName<'_>) -> bool {
        self.name == *name
            && self.chain.len() == intermediates.len() + 1
            && self.chain[0].as_ref() == end_entity
            && self.chain[1..]
                .iter()
                .zip(intermediates)
                .all(|(a, b)| a.as_ref() == b.as_ref())
    }
}

impl VerifiedChains {
    /// Whether this chain was accepted for this name before and `now` lies
    /// in every one of its certificates' validity periods.
    pub(super) fn contains(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Entries { kept, clock } = &mut *entries;
        let Some(entry) = kept.iter_mut().find(|e| e.is(end_entity, intermediates, name)) else {
            return false;
        };
        let now = now.as_secs();
        if now < entry.not_before || now > entry.not_after {
            return false;
        }
        *clock += 1;
        entry.used = *clock;
        true
    }

    /// Keeps a chain webpki accepted for `name`. A chain with a certificate
    /// whose validity period does not parse is not kept.
    pub(super) fn insert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) {
        let mut window = (0u64, u64::MAX);
        for cert in std::iter::once(end_entity).chain(intermediates) {
            let Some((not_before, not_after)) = super::validity(cert) else {
                return;
            };
            window = (window.0.max(not_before), window.1.min(not_after));
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Entries { kept, clock } = &mut *entries;
        *clock += 1;
        if let Some(entry) = kept.iter_mut().find(|e| e.is(end_entity, intermediates, name)) {
            entry.used = *clock;
            return;
        }
        let entry = Entry {
            name: name.to_owned(),
            chain: std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect(),
            not_before: window.0,
            not_after: window.1,
            used: *clock,
        };
        if kept.len() < KEPT {
            kept.push(entry);
        } else if let Some(oldest) = kept.iter_mut().min_by_key(|e| e.used) {
            *oldest = entry;
        }
    }
}
