//! ferrovs VMM launcher.
