//! A slab: a `Vec` whose slots are reused, so an index names a live entry.
//!
//! The executor keeps the tasks a runtime owns in one: insertion and removal are O(1), and a task
//! remembers its index to take itself out when it completes. (The reactor keeps its sources in a
//! registry of its own, whose entries are never freed: see `reactor/mod.rs`.)

/// One slot of the slab.
#[derive(Debug)]
enum Entry<T> {
    /// A live value.
    Occupied(T),
    /// A free slot; holds the index of the next free slot (`usize::MAX` ends the list).
    Vacant(usize),
}

/// A vector of reusable slots.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    /// The slots, occupied or free.
    entries: Vec<Entry<T>>,
    /// Head of the free list threaded through the `Vacant` entries (`usize::MAX` when empty).
    next_free: usize,
    /// How many slots are occupied.
    len: usize,
}

impl<T> Slab<T> {
    /// An empty slab.
    pub(crate) const fn new() -> Self {
        Slab {
            entries: Vec::new(),
            next_free: usize::MAX,
            len: 0,
        }
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` and returns its index.
    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        if self.next_free == usize::MAX {
            self.entries.push(Entry::Occupied(value));
            return self.entries.len() - 1;
        }
        let index = self.next_free;
        match std::mem::replace(&mut self.entries[index], Entry::Occupied(value)) {
            Entry::Vacant(next) => self.next_free = next,
            Entry::Occupied(_) => unreachable!("the free list points at an occupied slot"),
        }
        index
    }

    /// Removes and returns the value at `index`, if that slot is live.
    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        let slot = self.entries.get_mut(index)?;
        if let Entry::Vacant(_) = slot {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(slot, Entry::Vacant(self.next_free)) else {
            unreachable!("checked above");
        };
        self.next_free = index;
        self.len -= 1;
        Some(value)
    }

    /// Removes every value, returning them.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.next_free = usize::MAX;
        self.len = 0;
        std::mem::take(&mut self.entries)
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Occupied(value) => Some(value),
                Entry::Vacant(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn freed_slots_are_reused_and_stale_indexes_miss() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "a stale index misses");
        let c = slab.insert("c");
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(slab.remove(b), Some("b"));
        let d = slab.insert("d");
        assert_eq!(d, b);
        assert_eq!(slab.len(), 2);
        let mut all = slab.drain();
        all.sort();
        assert_eq!(all, ["c", "d"]);
        assert_eq!(slab.len(), 0);
    }
}
