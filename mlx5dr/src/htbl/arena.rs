//! [`Arena`]: host records addressed by `u32` ids, stored in fixed-size pages.
//!
//! Pages instead of one growing vector: growth allocates one page at a time, so a million
//! records cost a million records plus at most one page, not up to twice that as a
//! doubling vector would, and no record ever moves.

/// The id no record has: "none" in links between records.
pub(super) const NIL: u32 = u32::MAX;

/// Records per page.
const PAGE: usize = 512;

/// Pages an arena keeps when its last record goes: beyond them, an emptied arena gives
/// all of its memory back (a matcher side whose million rules were all removed frees
/// tens of megabytes of records), while a small one that empties and fills again
/// allocates nothing.
const KEEP_PAGES: usize = 16;

/// One page of records: a fixed-size array, so an index masked to the page needs no
/// bounds check.
type Page<T> = Box<[Option<T>; PAGE]>;

/// Records of type `T` with stable `u32` ids; freed ids are reused.
///
/// Invariant: `live` counts the `Some` slots; every id in `free` names a `None` slot
/// below `next`; slots at `next` and above were never used (they are `None`, so a
/// lookup needs no check against `next`).
pub(super) struct Arena<T> {
    pages: Vec<Page<T>>,
    free: Vec<u32>,
    /// Ids below this were handed out at least once.
    next: u32,
    live: u32,
}

impl<T> Arena<T> {
    pub(super) fn new() -> Arena<T> {
        Arena {
            pages: Vec::new(),
            free: Vec::new(),
            next: 0,
            live: 0,
        }
    }

    /// Stores `value`, returning its id.
    pub(super) fn insert(&mut self, value: T) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.next;
                if id as usize == self.pages.len() * PAGE {
                    self.pages.push(new_page());
                }
                self.next += 1;
                id
            }
        };
        let slot = self.slot_mut(id);
        debug_assert!(slot.is_none());
        *slot = Some(value);
        self.live += 1;
        id
    }

    /// Takes the record `id` out; `None` if there is none.
    #[inline]
    pub(super) fn remove(&mut self, id: u32) -> Option<T> {
        if id >= self.next {
            return None;
        }
        let value = self.slot_mut(id).take()?;
        self.live -= 1;
        if self.live == 0 && self.pages.len() > KEEP_PAGES {
            self.release();
        } else {
            self.free.push(id);
        }
        Some(value)
    }

    /// Gives every page back (the arena is empty); kept out of line so that `remove`
    /// inlines into the engine's removal path.
    #[cold]
    #[inline(never)]
    fn release(&mut self) {
        *self = Arena::new();
    }

    pub(super) fn get(&self, id: u32) -> Option<&T> {
        let (p, o) = split(id);
        self.pages.get(p)?[o].as_ref()
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let (p, o) = split(id);
        self.pages.get_mut(p)?[o].as_mut()
    }

    /// The slot of an id below `next` (its page exists).
    fn slot_mut(&mut self, id: u32) -> &mut Option<T> {
        let (p, o) = split(id);
        &mut self.pages[p][o]
    }

    /// Live records.
    pub(super) fn len(&self) -> usize {
        self.live as usize
    }

    /// The live records with their ids.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .take(self.next as usize)
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }

    /// Takes every record out.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.live = 0;
        self.next = 0;
        self.free.clear();
        self.pages
            .drain(..)
            .flat_map(|p| (p as Box<[Option<T>]>).into_vec().into_iter().flatten())
    }

    /// Host bytes held: the pages and the free list.
    pub(super) fn host_bytes(&self) -> usize {
        self.pages.len() * PAGE * std::mem::size_of::<Option<T>>()
            + self.pages.capacity() * std::mem::size_of::<Page<T>>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }
}

impl<T> std::ops::Index<u32> for Arena<T> {
    type Output = T;

    /// The record `id`. Ids come from the engine's own links, which always name live
    /// records (ids from outside are checked with [`Arena::get`]).
    #[inline]
    fn index(&self, id: u32) -> &T {
        match self.get(id) {
            Some(v) => v,
            None => broken_link(id),
        }
    }
}

impl<T> std::ops::IndexMut<u32> for Arena<T> {
    #[inline]
    fn index_mut(&mut self, id: u32) -> &mut T {
        match self.get_mut(id) {
            Some(v) => v,
            None => broken_link(id),
        }
    }
}

// Kept out of line so that indexing inlines into the engine's hot paths.
#[cold]
#[inline(never)]
fn broken_link(id: u32) -> ! {
    panic!("no record {id}: a broken link in the hash-table records")
}

fn split(id: u32) -> (usize, usize) {
    (id as usize / PAGE, id as usize % PAGE)
}

/// A page of empty slots, built on the heap (a page can be large for the stack).
fn new_page<T>() -> Page<T> {
    let slots: Box<[Option<T>]> = (0..PAGE).map(|_| None).collect();
    match slots.try_into() {
        Ok(page) => page,
        Err(_) => unreachable!("{PAGE} slots make a page"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_reused() {
        let mut a = Arena::new();
        let ids: Vec<u32> = (0..1200u32).map(|i| a.insert(i * 10)).collect();
        assert_eq!(ids, (0..1200).collect::<Vec<_>>());
        assert_eq!(a.len(), 1200);
        assert_eq!(a.remove(7), Some(70));
        assert_eq!(a.remove(7), None);
        assert_eq!(a.get(7), None);
        assert_eq!(a.remove(5000), None);
        assert_eq!(a[1199], 11990);
        assert_eq!(a.insert(1), 7);
        assert_eq!(a.insert(2), 1200);
        assert_eq!(a.len(), 1201);
        assert_eq!(a.iter().count(), 1201);
        assert_eq!(a.iter().find(|(i, _)| *i == 7).map(|(_, v)| *v), Some(1));
        assert_eq!(a.drain().count(), 1201);
        assert_eq!(a.len(), 0);
        assert_eq!(a.insert(3), 0);
    }

    /// An arena of more than `KEEP_PAGES` pages frees them with its last record, and ids
    /// start again from 0; one of `KEEP_PAGES` keeps its pages and free list.
    #[test]
    fn an_emptied_large_arena_gives_its_pages_back() {
        let n = (KEEP_PAGES * PAGE) as u32;
        let mut small = Arena::new();
        for i in 0..n {
            small.insert(i);
        }
        let pages = small.host_bytes();
        for i in 0..n {
            assert_eq!(small.remove(i), Some(i));
        }
        assert_eq!(small.host_bytes(), pages + n as usize * 4);
        assert_eq!(small.insert(7), n - 1, "the last id freed");

        let mut large = Arena::new();
        for i in 0..=n {
            large.insert(i);
        }
        for i in (0..=n).rev() {
            assert_eq!(large.remove(i), Some(i));
        }
        assert_eq!((large.len(), large.host_bytes()), (0, 0));
        assert_eq!(large.get(3), None);
        assert_eq!(large.insert(9), 0);
        assert_eq!(large[0], 9);
    }
}
