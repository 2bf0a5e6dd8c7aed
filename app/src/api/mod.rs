//! Server functions, grouped by area. Each checks the session first and scopes what it reads
//! or writes to the caller's account; the types they carry live in [`crate::model`].
//!
//! Endpoints are named (`/api/<name>`) so that tests and scripts can call them directly.

pub mod account;
pub mod auth;
pub mod catalog;
pub mod certificates;
pub mod clusters;
pub mod config;
pub mod operator;
pub mod servers;
pub mod sip_users;
