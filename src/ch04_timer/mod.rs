//! Chapter 4: one timer for every sleep (the lead writes this module; this
//! placeholder only declares the timing wheel).

pub mod wheel;
