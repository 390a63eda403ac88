#![doc = include_str!("../README.md")]

pub mod color;
pub mod mail;
pub mod secrets;
pub mod spotify;

#[cfg(feature = "testing")]
pub mod testing;
