//! The lwsd supervisor (being written).
