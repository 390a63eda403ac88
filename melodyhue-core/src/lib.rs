#![doc = include_str!("../README.md")]

pub mod color;
pub mod mail;
pub mod secrets;
pub mod spotify;

#[cfg(feature = "testing")]
pub mod testing;
pub mod model;
pub mod store;
pub mod auth;
pub mod clock;
pub mod config;
pub mod service;

mod app;
pub use app::{App, AppBuilder, StartError};
pub mod api;
