//! OpenFlow 1.0 / 1.3 codec.
