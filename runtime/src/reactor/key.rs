//! How epoll names a source: its address, with the registration's generation above it.
//!
//! epoll hands back, with each event, the 64-bit value it was given when the fd was added. The
//! reactor gives it the address of the source's [`ScheduledIo`], so that an event leads straight
//! to its source with no lock and no lookup. Sources are never freed, only reused (see the
//! `Registry` in `mod.rs`), so the address stays valid; the generation tells an event meant for
//! an earlier registration of the same memory from one meant for the current one.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::source::ScheduledIo;

/// A key holds the source's address in its low 48 bits, which is all that user-space addresses
/// use on 64-bit Linux, and the registration's generation above them.
const GENERATION_SHIFT: u32 = 48;
/// The address part of a key.
const ADDRESS_MASK: usize = match 1usize.checked_shl(GENERATION_SHIFT) {
    Some(bit) => bit - 1,
    // A 32-bit address fills the key: no room for a generation.
    None => usize::MAX,
};
/// The generations a key can tell apart (65,536 on 64-bit; they wrap around).
const GENERATION_MASK: usize = match (!ADDRESS_MASK).checked_shr(GENERATION_SHIFT) {
    Some(mask) => mask,
    None => 0,
};

/// A registration's key: its source's address, with the registration's generation in the bits
/// above. Only [`Generation::key`] makes one, and [`SourceKey::from_epoll`] takes one back from
/// epoll, so the address part of a key always names a source that its reactor's registry keeps
/// (and never frees) for as long as the reactor lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceKey(usize);

impl SourceKey {
    /// The key as epoll stores it.
    pub(crate) fn get(self) -> usize {
        self.0
    }

    /// Takes back a key that epoll reported.
    ///
    /// # Safety
    /// `key` must be the value of a [`SourceKey::get`] that was handed to this reactor's epoll:
    /// epoll reports only what it was given, and `polling` drops the keys it uses itself.
    /// (Which also means a runtime must not be used on both sides of a `fork`: the child's
    /// epoll would report the parent's keys.)
    #[inline]
    pub(crate) unsafe fn from_epoll(key: usize) -> SourceKey {
        SourceKey(key)
    }

    /// The address of the source the key names.
    #[inline]
    pub(crate) fn address(self) -> *const ScheduledIo {
        (self.0 & ADDRESS_MASK) as *const ScheduledIo
    }
}

/// The generation of a source's memory: bumped each time a registration ends, so that the keys
/// of earlier registrations name nothing.
#[derive(Debug, Default)]
pub(crate) struct Generation(AtomicUsize);

impl Generation {
    /// The key of the current registration of the source at `address`. `None` if the address
    /// does not leave the generation bits free (64-bit Linux hands out such addresses only to a
    /// program that asks).
    pub(crate) fn key(&self, address: *const ScheduledIo) -> Option<SourceKey> {
        let address = address as usize;
        if address & !ADDRESS_MASK != 0 {
            return None;
        }
        let generation = self.0.load(Ordering::Acquire) & GENERATION_MASK;
        Some(SourceKey(
            address | generation.checked_shl(GENERATION_SHIFT).unwrap_or(0),
        ))
    }

    /// Whether `key` was made by the current registration (and not an earlier one).
    #[inline]
    pub(crate) fn matches(&self, key: SourceKey) -> bool {
        let generation = self.0.load(Ordering::Acquire);
        generation & GENERATION_MASK == key.0.checked_shr(GENERATION_SHIFT).unwrap_or(0)
    }

    /// Ends the current registration: from now on its key names nothing.
    pub(crate) fn retire(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}
