//! Chapter 1 (placeholder; issue 2 writes it).
#![forbid(unsafe_code)]
