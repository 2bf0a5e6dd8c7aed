//! One module a page.

pub mod account;
pub mod auth;
pub mod certificates;
pub mod clusters;
pub mod getting_started;
pub mod home;
pub mod network_tools;
pub mod operator;
pub mod rtp;
pub mod server;
pub mod server_tools;
pub mod servers;
pub mod sip_users;
