//! Shared helpers of the MelodyHue example programs.
//!
//! - [`memory_store`]: a storage backend of your own, checked by the conformance kit.

pub mod memory_store;
