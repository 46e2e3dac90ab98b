//! Packet reformat contexts: the header bytes an encapsulation action inserts.
//!
//! Software steering does not put encapsulation headers in its STEs: it allocates a
//! reformat context in the firmware (`ALLOC_PACKET_REFORMAT_CONTEXT`) and the STE's
//! insert-with-pointer (v1) or encap (v0) action names the context id.

use std::collections::BTreeMap;

use super::counter::check_uid;
use super::FwError;

/// The largest reformat data the simulator accepts: the 10-bit size field's range.
pub const MAX_REFORMAT_DATA: usize = (1 << 10) - 1;

/// One reformat context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reformat {
    /// Context id (`packet_reformat_id`).
    pub id: u32,
    /// The user context that made it.
    pub uid: u16,
    /// `reformat_type` (L2-to-L2 tunnel, L2-to-L3 tunnel, ...), kept as given.
    pub reformat_type: u8,
    /// The header bytes.
    pub data: Vec<u8>,
}

/// The firmware's reformat contexts.
#[derive(Debug, Default)]
pub struct Reformats {
    by_id: BTreeMap<u32, Reformat>,
    next: u32,
}

impl Reformats {
    /// Stores a context and returns its id.
    pub fn alloc(&mut self, uid: u16, reformat_type: u8, data: &[u8]) -> Result<u32, FwError> {
        if data.is_empty() || data.len() > MAX_REFORMAT_DATA {
            return Err(FwError::BadReformatSize(data.len()));
        }
        // Ids start at 1 so that a zero pointer in an STE never names a context.
        let id = self
            .next
            .checked_add(1)
            .ok_or(FwError::Exhausted("reformat ids"))?;
        self.next = id;
        self.by_id.insert(
            id,
            Reformat {
                id,
                uid,
                reformat_type,
                data: data.to_vec(),
            },
        );
        Ok(id)
    }

    /// Frees a context.
    pub fn dealloc(&mut self, uid: u16, id: u32) -> Result<(), FwError> {
        let r = self.by_id.get(&id).ok_or(FwError::NoSuchReformat(id))?;
        check_uid(r.uid, uid)?;
        self.by_id.remove(&id);
        Ok(())
    }

    /// A live context.
    pub fn get(&self, id: u32) -> Option<&Reformat> {
        self.by_id.get(&id)
    }

    /// Live contexts.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// No live context.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_get_dealloc() {
        let mut r = Reformats::default();
        let id = r.alloc(3, 0, &[1, 2, 3]).unwrap();
        assert_eq!(r.get(id).unwrap().data, vec![1, 2, 3]);
        assert!(matches!(r.dealloc(4, id), Err(FwError::UidMismatch { .. })));
        r.dealloc(3, id).unwrap();
        assert!(r.get(id).is_none());
        assert_eq!(r.dealloc(3, id), Err(FwError::NoSuchReformat(id)));
        assert_eq!(r.alloc(3, 0, &[]), Err(FwError::BadReformatSize(0)));
        assert!(r.is_empty());
    }
}
