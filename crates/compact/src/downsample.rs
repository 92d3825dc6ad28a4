//! Downsampling (filled in below).
