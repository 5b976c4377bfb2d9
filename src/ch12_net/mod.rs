//! # Chapter 12 — waiting on sockets: a selector, `TcpListener`, `TcpStream`
//!
//! (story doc: written below)

#![deny(unsafe_code)]

pub mod selector;
pub mod sys;
pub mod tcp;

pub use selector::{Direction, Selector};
pub use tcp::{
    Accept, LINE_LIMIT, LineReader, ReadFuture, TcpListener, TcpStream, WriteAll, WriteFuture,
};
