//! Session tests over an in-memory duplex.
