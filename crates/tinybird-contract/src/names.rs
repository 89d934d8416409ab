//! Which names can be Tinybird pipe names: a rule both the proxy (before a name goes into an
//! upstream URL) and the local endpoint (before it looks one up) apply.

/// Whether `name` can be a pipe name: `[A-Za-z_][A-Za-z0-9_]*`, 1 to 128 characters.
pub fn is_valid_pipe_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && name.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_names() {
        for good in ["top_products_2", "_x", &"a".repeat(128)] {
            assert!(is_valid_pipe_name(good), "{good}");
        }
        for bad in ["", "2top", "top-products", "tôp", &"a".repeat(129)] {
            assert!(!is_valid_pipe_name(bad), "{bad}");
        }
    }
}
