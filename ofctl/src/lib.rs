//! Shared code of the ferrovs CLIs.
