//! Routes: which shard holds each installed value of a matcher that places its rules
//! by thread ([`super::ShardPlacement::Thread`]).
//!
//! A matcher that places a rule in the shard its tags hash to finds a duplicate in that
//! shard. One that places a rule in the inserting thread's own shard has to look for
//! duplicates elsewhere: here. A route maps a digest of a rule's tags on one side (a
//! keyed hash, see [`Routes::digest`]) to the shard that holds the rules with that
//! digest, and counts those rules' handles. An insert claims its digest first: a
//! digest with a route goes to the route's shard, where the engine then finds a
//! duplicate; a new digest gets a route to the thread's shard. A removal gives its
//! claim back once the rule's handle is gone, and the last one removes the route.
//!
//! Two values whose digests are equal share a route: they then live in one shard,
//! which costs nothing but the placement. So a route keeps only 32 bits of the digest
//! (8 choose the stripe, 24 are kept in the route's word), which at a million values
//! puts about a hundred pairs of them together; what has to hold is that a route's
//! count never falls below the handles its shard holds under it, or a duplicate could
//! go to another shard. Hence every claim is given back exactly once, when the engine
//! has let go of the handle (or never took it).
//!
//! The routes are split into stripes by the digest's top bits, each an open-addressed
//! table of 4-byte routes (linear probing, deletion by shifting back) behind its own
//! lock on cache lines of its own, so two threads meet on a stripe's lock rarely, and a stripe's
//! growth or shrinking moves only its own routes.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::matching::DomainSide;

/// log2 of the stripes.
const LOG_STRIPES: u32 = 8;

/// An odd constant with well-mixed bits (2^64 over the golden ratio), for the digest's
/// tag boundaries and finalizer.
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// The 128-bit product of `a` and `b`, its halves folded together.
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The fewest slots of a stripe's table.
const MIN_SLOTS: usize = 16;

/// A route in one 32-bit word: the digest's key bits, the shard, and the handle count,
/// whose part beyond [`COUNT_MAX`] a stripe keeps aside. 0 is an empty slot (a route
/// counts at least one handle).
const COUNT_BITS: u32 = 4;
const SHARD_BITS: u32 = 4;
const KEY_BITS: u32 = 24;
const COUNT_MAX: u32 = (1 << COUNT_BITS) - 1;
const KEY_MASK: u64 = (1 << KEY_BITS) - 1;
const _: () = assert!(KEY_BITS + SHARD_BITS + COUNT_BITS == u32::BITS);
const _: () = assert!(LOG_STRIPES + KEY_BITS <= u64::BITS);
const _: () = assert!(super::MAX_SHARDS as u32 <= 1 << SHARD_BITS);

fn pack(key: u32, shard: u8, count: u32) -> u32 {
    key << (SHARD_BITS + COUNT_BITS) | u32::from(shard) << COUNT_BITS | count
}

fn key_of(route: u32) -> u32 {
    route >> (SHARD_BITS + COUNT_BITS)
}

fn shard_of(route: u32) -> u8 {
    ((route >> COUNT_BITS) & ((1 << SHARD_BITS) - 1)) as u8
}

fn count_of(route: u32) -> u32 {
    route & COUNT_MAX
}

/// The routes of one matcher. See the module documentation.
pub(crate) struct Routes {
    /// Unique in the process: names the matcher in the threads' shard assignments.
    id: u64,
    /// The digest's key: random per matcher (the second word odd).
    seed: [u64; 2],
    /// The shard the next thread to insert is given (modulo the shard count).
    next_home: AtomicUsize,
    stripes: Box<[Stripe]>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("routes", &self.len())
            .finish_non_exhaustive()
    }
}

/// One stripe's lock, alone on its cache line.
#[repr(align(64))]
struct Stripe(Mutex<Table>);

/// An open-addressed table of routes: a power-of-two number of slots, at most three
/// quarters used, every route within an unbroken run of used slots from its home slot
/// (its key's low bits).
#[derive(Default)]
struct Table {
    slots: Vec<u32>,
    len: usize,
    /// The handles of a route beyond the [`COUNT_MAX`] its word counts, by key (routes
    /// shared by that many identical rules are rare).
    more: HashMap<u32, u64>,
}

impl Routes {
    pub(crate) fn new() -> Routes {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Routes {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            next_home: AtomicUsize::new(0),
            seed: {
                // The standard library's per-instance random keys, drawn out as words.
                let keys = RandomState::new();
                [keys.hash_one(0u64), keys.hash_one(1u64) | 1]
            },
            stripes: (0..1 << LOG_STRIPES)
                .map(|_| Stripe(Mutex::new(Table::default())))
                .collect(),
        }
    }

    /// The digest of a rule's `tags` on `side` (its tags in chain order), keyed by the
    /// matcher's random seed. A folded multiply per 8 bytes, then a finalizer that
    /// spreads every input bit over the bits [`Routes::stripe`] and the routes' keys
    /// use: not a cryptographic hash, but with a collision costing only two values'
    /// placement together (and a longer probe in one stripe), it need not be, and it
    /// costs a fraction of SipHash's instructions.
    pub(crate) fn digest<'t>(
        &self,
        side: DomainSide,
        tags: impl IntoIterator<Item = &'t [u8]>,
    ) -> u64 {
        let [s0, s1] = self.seed;
        let mut h = s0 ^ side as u64;
        for tag in tags {
            let mut words = tag.chunks_exact(8);
            for word in &mut words {
                let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
                h = fold_mul(h ^ w, s1);
            }
            let rest = words.remainder();
            if !rest.is_empty() {
                let mut w = [0u8; 8];
                w[..rest.len()].copy_from_slice(rest);
                h = fold_mul(h ^ u64::from_le_bytes(w), s1);
            }
            // Tag boundaries count: [a, bc] and [ab, c] differ.
            h = fold_mul(h ^ tag.len() as u64, MIX);
        }
        // SplitMix64's finalizer: every bit of `h` reaches every bit of the digest.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }

    fn stripe(&self, digest: u64) -> (MutexGuard<'_, Table>, u32) {
        let stripe = &self.stripes[(digest >> (u64::BITS - LOG_STRIPES)) as usize];
        // A panic under a stripe's lock cannot leave a route half-written (each change
        // is a store of whole words); a half-done rehash loses routes, which at worst
        // places later duplicates of those values in other shards, as a crash would.
        let table = stripe.0.lock().unwrap_or_else(|e| e.into_inner());
        (table, (digest & KEY_MASK) as u32)
    }

    /// Claims one handle's place under `digest`: returns the shard its route names, or,
    /// for a digest without a route, makes one to `shard` and returns that.
    pub(crate) fn claim(&self, digest: u64, shard: u8) -> u8 {
        let (mut t, key) = self.stripe(digest);
        match t.find(key) {
            Some(i) => {
                let route = t.slots[i];
                if count_of(route) < COUNT_MAX {
                    t.slots[i] = route + 1;
                } else {
                    *t.more.entry(key).or_default() += 1;
                }
                shard_of(route)
            }
            None => {
                t.add(pack(key, shard, 1));
                shard
            }
        }
    }

    /// Gives back one claim under `digest` (whose handle the engine no longer holds):
    /// the last one removes the route.
    pub(crate) fn release(&self, digest: u64) {
        let (mut t, key) = self.stripe(digest);
        let Some(i) = t.find(key) else {
            debug_assert!(false, "a claim given back twice");
            return;
        };
        match count_of(t.slots[i]) {
            COUNT_MAX => {
                if let Some(more) = t.more.get_mut(&key) {
                    *more -= 1;
                    if *more == 0 {
                        t.more.remove(&key);
                    }
                    return;
                }
                t.slots[i] -= 1;
            }
            1 => t.remove_at(i),
            _ => t.slots[i] -= 1,
        }
    }

    /// Routes now (each stripe counted under its lock, one after the other).
    pub(crate) fn len(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).len)
            .sum()
    }

    /// Host bytes of the routes' tables.
    pub(crate) fn host_bytes(&self) -> usize {
        let tables: usize = self
            .stripes
            .iter()
            .map(|s| {
                s.0.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .slots
                    .capacity()
                    * std::mem::size_of::<u32>()
            })
            .sum();
        tables + std::mem::size_of_val::<[Stripe]>(&self.stripes)
    }
}

impl Table {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, key: u32) -> usize {
        key as usize & self.mask()
    }

    /// The slot of the route with `key`.
    fn find(&self, key: u32) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(key);
        loop {
            match self.slots[i] {
                0 => return None,
                r if key_of(r) == key => return Some(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    /// Adds `route`, whose key has no route yet.
    fn add(&mut self, route: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize((self.slots.len() * 2).max(MIN_SLOTS));
        }
        self.place(route);
        self.len += 1;
    }

    fn place(&mut self, route: u32) {
        let mut i = self.home(key_of(route));
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = route;
    }

    /// Removes the route in slot `i`, shifting back the routes after it that may fill
    /// the gap (no tombstones), and halves a table an eighth full.
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.mask();
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let route = self.slots[j];
            if route == 0 {
                break;
            }
            // A route may move back to the gap unless its home lies after the gap, up
            // to where it sits.
            let home = self.home(key_of(route));
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(i) & mask {
                self.slots[i] = route;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.len -= 1;
        if self.len * 8 < self.slots.len() && self.slots.len() > MIN_SLOTS {
            self.resize(self.slots.len() / 2);
        }
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        for route in old.into_iter().filter(|&r| r != 0) {
            self.place(route);
        }
    }
}

/// How many matchers' shard assignments a thread remembers ([`Routes::home`]); a
/// thread that has inserted into more since is given a shard again, which only moves
/// where its later rules go.
const HOMES_KEPT: usize = 16;

thread_local! {
    /// This thread's shard in the matchers it inserted into lately, by [`Routes::id`],
    /// the oldest first.
    static HOMES: RefCell<Vec<(u64, u8)>> = const { RefCell::new(Vec::new()) };
}

impl Routes {
    /// The calling thread's shard in this matcher of `shards` shards: given out in turn
    /// to the threads as they first insert into it, so that up to `shards` threads each
    /// have one of their own. Placement only decides where rules go, never whether a
    /// duplicate is found (the routes do that), so a thread given another shard later
    /// is merely slower for a while.
    pub(crate) fn home(&self, shards: usize) -> u8 {
        let give = || (self.next_home.fetch_add(1, Ordering::Relaxed) % shards) as u8;
        HOMES.with(|homes| {
            let Ok(mut homes) = homes.try_borrow_mut() else {
                return give();
            };
            if let Some(&(_, home)) = homes.iter().find(|(id, _)| *id == self.id) {
                return home;
            }
            let home = give();
            if homes.len() == HOMES_KEPT {
                homes.remove(0);
            }
            homes.push((self.id, home));
            home
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The digest whose stripe is `stripe` and whose key is `key`.
    fn digest(stripe: u64, key: u64) -> u64 {
        stripe << (u64::BITS - LOG_STRIPES) | key
    }

    /// The shard and handle count of the route of `d`.
    fn route_of(r: &Routes, d: u64) -> Option<(u8, u64)> {
        let (t, key) = r.stripe(d);
        let more = t.more.get(&key).copied().unwrap_or(0);
        t.find(key)
            .map(|i| (shard_of(t.slots[i]), u64::from(count_of(t.slots[i])) + more))
    }

    #[test]
    fn a_claim_makes_a_route_and_later_claims_follow_it() {
        let r = Routes::new();
        let d = digest(3, 77);
        assert_eq!(r.claim(d, 5), 5);
        assert_eq!(r.claim(d, 9), 5);
        assert_eq!(route_of(&r, d), Some((5, 2)));
        r.release(d);
        assert_eq!(route_of(&r, d), Some((5, 1)));
        r.release(d);
        assert_eq!(route_of(&r, d), None);
        assert_eq!(r.len(), 0);
        // Gone: the next claim makes a new route.
        assert_eq!(r.claim(d, 9), 9);
    }

    /// The host bytes counted are the stripes and each table's 4-byte slots.
    #[test]
    fn host_bytes_count_four_bytes_a_slot() {
        let r = Routes::new();
        let stripes = std::mem::size_of::<Stripe>() << LOG_STRIPES;
        assert_eq!(r.host_bytes(), stripes);
        // Thirteen routes in one stripe outgrow its 16 slots (three quarters at most).
        for k in 0..13 {
            r.claim(digest(4, k), 0);
        }
        assert_eq!(r.stripe(digest(4, 0)).0.slots.len(), 2 * MIN_SLOTS);
        assert_eq!(r.host_bytes(), stripes + 2 * MIN_SLOTS * 4);
    }

    #[test]
    fn counts_beyond_a_words_ceiling_are_kept_aside() {
        let r = Routes::new();
        let d = digest(0, 1);
        let n = u64::from(COUNT_MAX) + 5;
        for _ in 0..n {
            assert_eq!(r.claim(d, 2), 2);
        }
        assert_eq!(route_of(&r, d), Some((2, n)));
        for k in (1..n).rev() {
            r.release(d);
            assert_eq!(route_of(&r, d), Some((2, k)));
        }
        r.release(d);
        assert_eq!(route_of(&r, d), None);
        assert!(r.stripe(d).0.more.is_empty());
    }

    #[test]
    fn the_digest_depends_on_side_tags_and_key() {
        let (a, b) = (Routes::new(), Routes::new());
        let tags: [&[u8]; 2] = [&[1; 16], &[2; 16]];
        let d = a.digest(DomainSide::FdbRx, tags);
        assert_eq!(d, a.digest(DomainSide::FdbRx, tags));
        assert_ne!(d, a.digest(DomainSide::FdbTx, tags));
        assert_ne!(d, a.digest(DomainSide::FdbRx, [tags[1], tags[0]]));
        assert_ne!(d, b.digest(DomainSide::FdbRx, tags));
    }

    #[test]
    fn threads_get_shards_in_turn_and_keep_them() {
        let (a, b) = (Routes::new(), Routes::new());
        assert_eq!((a.home(3), a.home(3), b.home(3)), (0, 0, 0));
        std::thread::scope(|s| {
            let other = s.spawn(|| (a.home(3), b.home(3))).join().unwrap();
            assert_eq!(other, (1, 1));
            assert_eq!(a.home(3), 0);
            assert_eq!(s.spawn(|| a.home(3)).join().unwrap(), 2);
        });
        // A thread that went through more matchers than it keeps gets a new shard.
        let many: Vec<Routes> = (0..HOMES_KEPT).map(|_| Routes::new()).collect();
        for r in &many {
            r.home(3);
        }
        assert_eq!(b.home(3), 2);
    }

    /// Tags that differ in a few low bits, as a 5-tuple matcher's consecutive values
    /// do, still spread evenly over the stripes and the keys within them.
    #[test]
    fn similar_tags_spread_over_stripes_and_keys() {
        let r = Routes::new();
        let n: u32 = 1 << 16;
        let mut stripes = vec![0u32; 1 << LOG_STRIPES];
        let mut keys = std::collections::HashSet::new();
        for i in 0..n {
            let mut tag = [0u8; 16];
            tag[12..].copy_from_slice(&i.to_be_bytes());
            let d = r.digest(DomainSide::NicRx, [&[7u8; 16][..], &tag[..]]);
            stripes[(d >> (u64::BITS - LOG_STRIPES)) as usize] += 1;
            keys.insert(d & KEY_MASK);
        }
        let mean = n / (1 << LOG_STRIPES);
        for (k, &c) in stripes.iter().enumerate() {
            assert!(
                c > mean / 2 && c < mean * 2,
                "stripe {k}: {c} of mean {mean}"
            );
        }
        // 2^16 values in 2^24 keys: about 128 pairs collide at random.
        let collisions = n as usize - keys.len();
        assert!(collisions < 400, "{collisions} collisions");
    }

    /// Values as a matcher's rules often are, alike but for a few bytes here and
    /// there (addresses and ports), collide in the 32 bits a route keeps about as often
    /// as random values would: about `n^2 / 2^33` pairs.
    #[test]
    fn alike_values_collide_no_more_than_random_ones() {
        let r = Routes::new();
        let mut seen = std::collections::HashSet::new();
        let mut n = 0u64;
        // Two bytes varying at each of the 16 positions of the second tag, or at the
        // first tag's end, with one more byte set.
        for pos in 0..17usize {
            for v in 0..1u32 << 13 {
                let (mut t0, mut t1) = ([3u8; 16], [0u8; 16]);
                let b = (v as u16).to_le_bytes();
                if pos == 16 {
                    t0[14..].copy_from_slice(&b);
                } else {
                    t1[pos] = b[0];
                    t1[(pos + 7) % 16] = b[1];
                }
                t1[(pos + 3) % 16] ^= 0x40;
                let d = r.digest(DomainSide::FdbTx, [&t0[..], &t1[..]]);
                let identity = (d >> (u64::BITS - LOG_STRIPES), d & KEY_MASK);
                n += 1;
                seen.insert(identity);
            }
        }
        let collisions = n - seen.len() as u64;
        let expected = n * n / (1 << 33);
        assert!(
            collisions <= 4 * expected + 8,
            "{collisions} collisions of {n}, {expected} expected"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Claim(u64, u8),
        Release(usize),
    }

    proptest! {
        /// Against a map: routes, shards and counts agree after any sequence of claims
        /// and releases, keys crowded into few stripes and home slots (so runs wrap
        /// and deletions shift), the tables growing and shrinking.
        #[test]
        fn routes_match_a_map(ops in prop::collection::vec(
            prop_oneof![
                (0u64..2, 0u64..200).prop_map(|(s, k)| Op::Claim(digest(s, k * 64 + k % 3), (k % 16) as u8)),
                // A few values claimed often: counts beyond a word's.
                (0u64..3).prop_map(|k| Op::Claim(digest(1, k), 1)),
                any::<usize>().prop_map(Op::Release),
            ],
            1..600,
        )) {
            let r = Routes::new();
            let mut model: HashMap<u64, (u8, u64)> = HashMap::new();
            let mut claimed: Vec<u64> = Vec::new();
            for op in ops {
                match op {
                    Op::Claim(d, want) => {
                        let e = model.entry(d).or_insert((want, 0));
                        e.1 += 1;
                        prop_assert_eq!(r.claim(d, want), e.0);
                        claimed.push(d);
                    }
                    Op::Release(i) if !claimed.is_empty() => {
                        let d = claimed.swap_remove(i % claimed.len());
                        r.release(d);
                        let e = model.get_mut(&d).unwrap();
                        e.1 -= 1;
                        if e.1 == 0 {
                            model.remove(&d);
                        }
                    }
                    Op::Release(_) => {}
                }
                prop_assert_eq!(r.len(), model.len());
            }
            for (&d, &want) in &model {
                prop_assert_eq!(route_of(&r, d), Some(want));
            }
            for d in claimed {
                r.release(d);
            }
            prop_assert_eq!(r.len(), 0);
            // Every table shrank back.
            let stripe = std::mem::size_of::<Stripe>() + MIN_SLOTS * 4;
            prop_assert!(r.host_bytes() <= stripe << LOG_STRIPES);
        }
    }
}
