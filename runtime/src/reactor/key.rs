//! How epoll names a source: its address, with the registration's generation above it.
//!
//! epoll hands back, with each event, the 64-bit value it was given when the fd was added. The
//! reactor gives it the address of the source's `ScheduledIo`, so that an event leads straight
//! to its source with no lock and no lookup. Sources are never freed, only reused (see the
//! `Registry` in `mod.rs`), so the address stays valid; the generation tells an event meant for
//! an earlier registration of the same memory from one meant for the current one.

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
/// above.
///
/// # Invariant
/// The address part names a source that its reactor's registry keeps (and never frees) for as
/// long as the reactor lives: only `ScheduledIo::key` makes a key, from the source's own address
/// ([`SourceKey::new`] is private to the reactor), and [`SourceKey::from_epoll`] takes back only
/// what epoll was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceKey(usize);

impl SourceKey {
    /// The key of the source at `address` under `generation`. `None` if the address does not
    /// leave the generation bits free (64-bit Linux hands out such addresses only to a program
    /// that asks).
    pub(super) fn new(address: usize, generation: usize) -> Option<SourceKey> {
        if address & !ADDRESS_MASK != 0 {
            return None;
        }
        let generation = generation & GENERATION_MASK;
        Some(SourceKey(
            address | generation.checked_shl(GENERATION_SHIFT).unwrap_or(0),
        ))
    }

    /// The key as epoll stores it.
    pub(crate) fn get(self) -> usize {
        self.0
    }

    /// Takes back a key that epoll reported.
    ///
    /// # Safety
    /// `key` must be the value of a [`SourceKey::get`] that was handed to this reactor's epoll:
    /// epoll reports only what it was given, and `Events::iter` drops the keys that are not
    /// sources' (the reactor's own wake-up, `polling`'s notifier). (Which also means a runtime must not be used on both sides of a `fork`: the child's
    /// epoll would report the parent's keys.)
    #[inline]
    pub(crate) unsafe fn from_epoll(key: usize) -> SourceKey {
        SourceKey(key)
    }

    /// The address of the source the key names.
    #[inline]
    pub(super) fn address(self) -> usize {
        self.0 & ADDRESS_MASK
    }

    /// Whether the key was made under `generation` (compared in the bits a key keeps of it).
    #[inline]
    pub(super) fn has_generation(self, generation: usize) -> bool {
        generation & GENERATION_MASK == self.0.checked_shr(GENERATION_SHIFT).unwrap_or(0)
    }
}

/// The encoding, checked without a reactor (Miri runs these:
/// `cargo +nightly miri test -p ripple-runtime --lib miri_`).
#[cfg(all(test, target_pointer_width = "64"))]
mod miri_checked {
    use super::*;

    #[test]
    fn miri_a_key_gives_back_its_address_and_tells_its_generation_from_others() {
        let source = Box::new(0u64);
        let address = &*source as *const u64 as usize;
        for generation in [0, 1, 2, GENERATION_MASK - 1, GENERATION_MASK] {
            let key = SourceKey::new(address, generation).expect("a heap address fits in 48 bits");
            assert_eq!(key.address(), address);
            assert!(key.has_generation(generation));
            assert!(!key.has_generation(generation.wrapping_add(1)));
            // What epoll hands back is what it was given.
            // SAFETY: `key.get()` is a key made by `SourceKey::new`.
            let back = unsafe { SourceKey::from_epoll(key.get()) };
            assert_eq!(back, key);
        }
        // Generations wrap: 65,536 registrations later, the same key comes back.
        assert_eq!(
            SourceKey::new(address, GENERATION_MASK + 1),
            SourceKey::new(address, 0)
        );
    }

    #[test]
    fn miri_an_address_above_48_bits_has_no_key() {
        assert_eq!(SourceKey::new(1 << 48, 0), None);
        assert_eq!(SourceKey::new(usize::MAX, 3), None);
    }
}
