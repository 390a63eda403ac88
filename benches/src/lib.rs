//! Shared helpers of the MelodyHue benchmarks.
