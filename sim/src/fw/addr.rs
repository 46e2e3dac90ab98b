//! Entry addresses of firmware objects.
//!
//! Software steering reaches a firmware-owned flow table or a TIR by hitting an ICM
//! address the firmware reported for it. These addresses hold nothing; the NIC
//! recognises them. The firmware takes them, one 64-byte line each, from a window of
//! the address space that no SW-ICM range uses, and gives them back when the object goes.

use std::collections::BTreeMap;

use crate::endpoint::Terminal;

/// One address line.
const LINE: u64 = 64;

/// The window and the addresses handed out, each with its meaning.
#[derive(Debug, Clone)]
pub struct AddrWindow {
    base: u64,
    lines: u64,
    /// Lines never handed out start here (relative line number).
    next: u64,
    /// Lines handed back, reused first.
    free: Vec<u64>,
    used: BTreeMap<u64, Terminal>,
}

impl AddrWindow {
    /// A window of `2^log_size` bytes at `base`.
    pub fn new(base: u64, log_size: u8) -> AddrWindow {
        AddrWindow {
            base,
            lines: (1u64 << log_size.min(47)) / LINE,
            next: 0,
            free: Vec::new(),
            used: BTreeMap::new(),
        }
    }

    /// Hands out an address that means `what`; `None` when the window is full.
    pub fn alloc(&mut self, what: Terminal) -> Option<u64> {
        let addr = match self.free.pop() {
            Some(addr) => addr,
            None if self.next < self.lines => {
                self.next += 1;
                self.base + (self.next - 1) * LINE
            }
            None => return None,
        };
        self.used.insert(addr, what);
        Some(addr)
    }

    /// Takes `addr` back; it is unknown again.
    pub fn release(&mut self, addr: u64) {
        if self.used.remove(&addr).is_some() {
            self.free.push(addr);
        }
    }

    /// What `addr` means, if it was handed out.
    pub fn get(&self, addr: u64) -> Option<Terminal> {
        self.used.get(&addr).copied()
    }

    /// Addresses in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_lines_and_reuses_them() {
        let mut w = AddrWindow::new(0x8000_0000, 7);
        let a = w.alloc(Terminal::FlowTable(1)).unwrap();
        let b = w.alloc(Terminal::Tir(2)).unwrap();
        assert_eq!((a, b), (0x8000_0000, 0x8000_0040));
        assert_eq!(w.alloc(Terminal::Drop), None);
        assert_eq!(w.get(b), Some(Terminal::Tir(2)));
        w.release(a);
        assert_eq!(w.get(a), None);
        assert_eq!(w.alloc(Terminal::Qp(9)), Some(a));
        assert_eq!(w.in_use(), 2);
    }
}
