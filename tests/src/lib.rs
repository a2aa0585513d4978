//! Helpers for lwsd's end-to-end tests (being written).
