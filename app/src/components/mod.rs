//! Pieces several pages use.

pub mod forms;
pub mod nav;
pub mod pager;
pub mod ticker;
