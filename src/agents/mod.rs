//! What troupe knows about each agent CLI lives in that CLI's module and nowhere else.

pub mod claude;
pub mod transcript;
