//! The PRM command interface: input mailbox bytes in, output mailbox (status, syndrome, data) out.
