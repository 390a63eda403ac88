#![doc = include_str!("../README.md")]

pub mod color;
pub mod mail;
pub mod secrets;
pub mod spotify;

pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
mod metrics;
pub mod model;
#[cfg(feature = "server")]
pub mod server;
pub mod service;
pub mod store;

mod app;
pub use app::{App, AppBuilder, StartError};
pub mod api;
