//! Shared helpers of the MelodyHue example programs.
