//! Translator tests.
