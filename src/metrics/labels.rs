//! Bounded label values: the first `N` distinct values keep their own label, every later one
//! is folded into [`OTHER`], so tenants or pipe names chosen by clients cannot grow the
//! number of series without bound.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use super::OTHER;

/// Admits at most `max` distinct values; later ones read as [`OTHER`].
#[derive(Debug)]
pub struct LabelCap {
    max: usize,
    /// Values admitted so far; never shrinks, so a label keeps its series for the process life.
    seen: Mutex<HashSet<String>>,
}

impl LabelCap {
    /// A cap of `max` distinct values.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// `value` if already admitted or there is room; otherwise [`OTHER`].
    pub fn fold(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(value) {
            return value.to_owned();
        }
        if value == OTHER || seen.len() >= self.max {
            return OTHER.to_owned();
        }
        seen.insert(value.to_owned());
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_cap_admits_the_first_values_and_folds_the_rest() {
        let cap = LabelCap::new(2);
        assert_eq!(cap.fold("acme"), "acme");
        assert_eq!(cap.fold("globex"), "globex");
        assert_eq!(cap.fold("initech"), OTHER);
        // Admitted values stay admitted.
        assert_eq!(cap.fold("acme"), "acme");
        assert_eq!(cap.fold("initech"), OTHER);
        // A tenant literally named "other" does not take a slot.
        let cap = LabelCap::new(1);
        assert_eq!(cap.fold(OTHER), OTHER);
        assert_eq!(cap.fold("acme"), "acme");
    }
}
