//! rthanos binary placeholder.
fn main() {}
