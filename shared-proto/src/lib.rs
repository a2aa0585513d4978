//! What crosses lwsd's process boundaries (being written).
