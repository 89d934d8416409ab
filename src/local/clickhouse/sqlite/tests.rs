//! ch_* function tests.
