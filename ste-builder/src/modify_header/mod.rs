//! Modify-header actions: converting the user's PRM modify actions (set, add, copy of a
//! packet field) into the hardware's per-format action words, and the action lists that
//! rewrite an L2 header after L3 decapsulation.
