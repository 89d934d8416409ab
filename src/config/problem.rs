//! What every config section reports and reads with: a [`Problem`] (the key, what is wrong,
//! how to fix it), where secrets come from ([`EnvLookup`], [`read_secret`]), and the parsers of
//! values several sections share. A leaf: sections in the services import it, it imports none.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// One thing wrong with the config: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key (`tinybird.host`, `grants[1].pipes`, ...) or file.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A problem at `key`.
pub fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Reads environment variables; a function so tests and the demo can supply their own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An `IP:port` address at `key`, or a problem pushed on `problems`.
pub fn parse_addr(value: &str, key: &str, problems: &mut Vec<Problem>) -> Option<SocketAddr> {
    value
        .parse()
        .map_err(|_| problems.push(problem(key, format!("{value:?} is not an IP:port address, e.g. \"127.0.0.1:3000\" or \"0.0.0.0:3000\""))))
        .ok()
}

/// A duration (`"10m"`, `"90s"`, `"12h"`) at `key`, or a problem pushed on `problems`.
pub fn parse_duration(value: &str, key: &str, problems: &mut Vec<Problem>) -> Option<Duration> {
    humantime::parse_duration(value)
        .map_err(|e| {
            problems.push(problem(
                key,
                format!(
                    "{value:?} is not a duration ({e}); write e.g. \"10m\", \"90s\" or \"12h\""
                ),
            ))
        })
        .ok()
}

/// A secret from `$VAR`, or from the file `$VAR_FILE` names (relative to `base`); `Ok(None)`
/// when neither is set. A file's final newline is dropped, anything else kept verbatim (so a
/// stray space is reported by whoever checks the secret's shape, not silently trimmed).
pub fn read_secret(var: &str, base: &Path, env: EnvLookup<'_>) -> Result<Option<String>, String> {
    let file_var = format!("{var}_FILE");
    match (env(var), env(&file_var)) {
        (Some(_), Some(_)) => Err(format!("both {var} and {file_var} are set: keep one")),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(base.join(&file))
                .map_err(|e| format!("{file_var} names {file:?}, which cannot be read: {e}"))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Ok(Some(text.strip_suffix('\r').unwrap_or(text).to_owned()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_variable_or_the_file_it_names() {
        let dir = std::env::temp_dir().join(format!("tbff-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s"), "p.secret \n").unwrap();
        let env = |k: &str| match k {
            "A" => Some("from-env".to_owned()),
            "B_FILE" => Some("s".to_owned()),
            "C" | "C_FILE" => Some("x".to_owned()),
            "D_FILE" => Some("missing".to_owned()),
            _ => None,
        };
        assert_eq!(read_secret("A", &dir, &env), Ok(Some("from-env".into())));
        assert_eq!(read_secret("B", &dir, &env), Ok(Some("p.secret ".into())));
        assert!(
            read_secret("C", &dir, &env)
                .unwrap_err()
                .contains("keep one")
        );
        assert!(
            read_secret("D", &dir, &env)
                .unwrap_err()
                .contains("cannot be read")
        );
        assert_eq!(read_secret("E", &dir, &env), Ok(None));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
