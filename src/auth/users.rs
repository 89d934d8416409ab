//! Local users: a TOML file of ids, argon2id password hashes, tenants, roles and attributes.
//!
//! This is the simplest way in: no IdP, just a file the operator edits, with hashes printed by
//! `tinybird-bff hash-password`. Only argon2id PHC strings are accepted, so a plain-text
//! password or a weaker scheme pasted into the file is refused at start-up instead of silently
//! working. Verification runs argon2 on the blocking pool, and an unknown id is checked
//! against a dummy hash with the same cost, so response time does not reveal which ids exist.
//! Nothing holding a password or a hash implements `Debug` in a way that would print it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::user::User;

/// argon2id of [`DUMMY_PASSWORD`] with the argon2 crate's default (OWASP) parameters, the same
/// ones [`hash_password`] uses; checked against when the id is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$PEIp3SpESMk8v5DWvJrPZw$tm8ivd7IRHtxkxf3SJmUjk7s0qyKMEzhSvFtqDs3Fkc";
/// The password [`DUMMY_HASH`] was made from; only tests use it, to prove the hash is real.
#[cfg(test)]
const DUMMY_PASSWORD: &str = "tinybird-bff dummy password for unknown users";

/// The command that prints a valid hash; named in every hash-related error.
const HASH_COMMAND: &str = "`tinybird-bff hash-password`";

/// A user from the users file.
///
/// The password hash is private and left out of `Debug`: it is only ever used by
/// [`UserDirectory::verify`].
#[derive(Clone)]
pub struct UserRecord {
    /// What the grants see once the password has been checked.
    pub user: User,
    /// A friendly name for the UI; the id is shown when absent.
    pub display_name: Option<String>,
    /// argon2id PHC string, validated at load time.
    password_hash: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("display_name", &self.display_name)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Everything wrong with a users file, each message naming the file, the user and the fix.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    /// The file could not be read at all.
    #[error("cannot read users file {origin}: {source}; check the path and its permissions")]
    Read {
        /// The file name.
        origin: String,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// Not valid TOML, or not the expected shape (unknown key, wrong type, missing field).
    // The message comes without toml's source snippet: the offending line may hold a secret.
    #[error(
        "{origin}: line {line}, column {column}: {message}; fix that spot (each [[users]] entry takes id, password_hash, tenant, roles, display_name, attributes)"
    )]
    Parse {
        /// The file name.
        origin: String,
        /// 1-based line of the problem (0 when toml gives no position).
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// toml's description of the problem.
        message: String,
    },
    /// A user with an empty (or all-blank) id.
    #[error("{origin}: user #{index}: id is empty; give every user a non-empty id")]
    EmptyId {
        /// The file name.
        origin: String,
        /// 1-based position of the user in the file.
        index: usize,
    },
    /// Two users share an id, so one of them could never log in.
    #[error(
        "{origin}: user #{index} ({id}): id is already used by user #{first_index}; ids must be unique"
    )]
    DuplicateId {
        /// The file name.
        origin: String,
        /// 1-based position of the second user with this id.
        index: usize,
        /// The duplicated id.
        id: String,
        /// 1-based position of the first user with this id.
        first_index: usize,
    },
    /// The password hash is missing, not a PHC string, or not argon2id.
    #[error(
        "{origin}: user #{index} ({id}): password_hash {problem}; generate one with {HASH_COMMAND}"
    )]
    BadHash {
        /// The file name.
        origin: String,
        /// 1-based position of the user in the file.
        index: usize,
        /// The user's id.
        id: String,
        /// What is wrong; never contains the value itself, which may be a plain password.
        problem: String,
    },
}

/// The users file as written; `deny_unknown_fields` so typos are errors, not ignored keys.
/// No `Debug`: it holds password hashes (or whatever was pasted in their place).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    id: String,
    password_hash: String,
    tenant: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    display_name: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// The loaded users, keyed by id. Cheap to clone and shareable across tasks.
#[derive(Clone, Debug, Default)]
pub struct UserDirectory {
    /// Immutable after load, so sharing needs no lock.
    users: Arc<BTreeMap<String, UserRecord>>,
}

impl UserDirectory {
    /// Parses a users file. `origin` is the file name used in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, UsersFileError> {
        let file: UsersFile = toml::from_str(text).map_err(|e| parse_error(text, origin, &e))?;
        let mut users = BTreeMap::new();
        let mut first_index: BTreeMap<String, usize> = BTreeMap::new();
        for (i, entry) in file.users.into_iter().enumerate() {
            let index = i + 1;
            if entry.id.trim().is_empty() {
                return Err(UsersFileError::EmptyId {
                    origin: origin.to_owned(),
                    index,
                });
            }
            if let Some(&first) = first_index.get(&entry.id) {
                return Err(UsersFileError::DuplicateId {
                    origin: origin.to_owned(),
                    index,
                    id: entry.id,
                    first_index: first,
                });
            }
            if let Err(problem) = check_argon2id(&entry.password_hash) {
                return Err(UsersFileError::BadHash {
                    origin: origin.to_owned(),
                    index,
                    id: entry.id,
                    problem: problem.to_owned(),
                });
            }
            first_index.insert(entry.id.clone(), index);
            let record = UserRecord {
                user: User {
                    id: entry.id.clone(),
                    tenant: entry.tenant,
                    roles: entry.roles,
                    attributes: entry.attributes,
                },
                display_name: entry.display_name,
                password_hash: entry.password_hash,
            };
            users.insert(entry.id, record);
        }
        Ok(Self {
            users: Arc::new(users),
        })
    }

    /// Reads and parses a users file; errors name the file as given.
    pub fn load(path: &Path) -> Result<Self, UsersFileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Read {
            origin: origin.clone(),
            source,
        })?;
        Self::from_toml(&text, &origin)
    }

    /// The record for `id`, without checking any password.
    pub fn get(&self, id: &str) -> Option<&UserRecord> {
        self.users.get(id)
    }

    /// All user ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Verifies the password off the async runtime (`tokio::task::spawn_blocking`). For an
    /// unknown user it verifies against a fixed dummy argon2id hash with the same parameters,
    /// so timing does not reveal which ids exist. Returns the user only on a match.
    pub async fn verify(&self, id: &str, password: &str) -> Option<User> {
        let (record, phc) = self.candidate(id);
        let matched = verify_blocking(phc.to_owned(), SecretString::from(password)).await;
        // Both branches above ran argon2; only now does it matter whether the id exists.
        record.filter(|_| matched).map(|r| r.user.clone())
    }

    /// The record (if any) and the hash to check the password against: the dummy for an
    /// unknown id, so [`Self::verify`] always does the same work.
    fn candidate(&self, id: &str) -> (Option<&UserRecord>, &str) {
        match self.users.get(id) {
            Some(record) => (Some(record), record.password_hash.as_str()),
            None => (None, DUMMY_HASH),
        }
    }
}

/// Hashes a password with argon2id (OWASP-recommended default params of the argon2 crate) and
/// a random salt: what `tinybird-bff hash-password` prints.
pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt length");
    argon2id()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id with default parameters and a 16-byte salt cannot fail")
        .to_string()
}

/// argon2id, version 19, default parameters: what we hash with. Verification takes the
/// parameters from the stored hash instead.
fn argon2id() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Password checks running at once. Each is CPU-bound and holds argon2's memory (19 MiB with
/// the default parameters), so a login flood must queue here rather than start one check per
/// request: unbounded, 32 concurrent attempts already meant 600 MiB.
static VERIFY_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(cores.clamp(1, 8))
});

/// Runs the (deliberately slow) check on the blocking pool; any failure counts as no match.
async fn verify_blocking(phc: String, password: SecretString) -> bool {
    let Ok(_slot) = VERIFY_SLOTS.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_phc(&phc, password.expose_secret()))
        .await
        .unwrap_or(false)
}

/// argon2's own verification (constant-time comparison), with the parameters of the hash.
///
/// Each check allocates argon2's working memory (19 MiB with the default parameters) and frees
/// it. The binary runs on mimalloc, which hands such blocks back to the OS; under glibc's
/// malloc, freed blocks of that size raised its mmap threshold and then stayed pinned in the
/// heap, and a login flood grew the process by 19 MiB per attempt
/// (`tests/api/attacks/overload.rs` bounds it).
fn verify_phc(phc: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Checks that `phc` is an argon2id PHC string that argon2 can verify against. The error
/// describes the problem without repeating the value.
fn check_argon2id(phc: &str) -> Result<(), &'static str> {
    if phc.trim().is_empty() {
        return Err("is empty");
    }
    let hash = PasswordHash::new(phc).map_err(|_| {
        if phc.starts_with("$2") {
            "looks like bcrypt, which is not accepted (only argon2id is)"
        } else {
            "is not an argon2id PHC string (a plain-text password?)"
        }
    })?;
    match hash.algorithm.as_str() {
        "argon2id" => {}
        "argon2i" | "argon2d" => return Err("uses argon2i/argon2d; only argon2id is accepted"),
        _ => return Err("is not an argon2id PHC string"),
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("is an incomplete argon2id PHC string (salt or hash missing)");
    }
    Params::try_from(&hash).map_err(|_| "has invalid argon2 parameters (m, t, p)")?;
    Ok(())
}

/// Turns toml's error into line/column plus message, leaving out the source snippet.
fn parse_error(text: &str, origin: &str, err: &toml::de::Error) -> UsersFileError {
    let (line, column) = match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            (line, column)
        }
        None => (0, 0),
    };
    UsersFileError::Parse {
        origin: origin.to_owned(),
        line,
        column,
        message: err.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(hash: &str) -> String {
        format!(
            r#"
[[users]]
id = "alice"
password_hash = "{hash}"
tenant = "acme"
roles = ["viewer"]
display_name = "Alice"
[users.attributes]
region = "eu"
"#
        )
    }

    fn err(text: &str) -> String {
        UserDirectory::from_toml(text, "users.toml")
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn hashed_password_verifies_and_wrong_one_does_not() {
        let dir =
            UserDirectory::from_toml(&file_with(&hash_password("s3cret")), "users.toml").unwrap();
        let user = dir.verify("alice", "s3cret").await.expect("right password");
        assert_eq!(user.tenant.as_deref(), Some("acme"));
        assert_eq!(user.roles, ["viewer"]);
        assert_eq!(user.attributes["region"], "eu");
        assert_eq!(
            dir.get("alice").unwrap().display_name.as_deref(),
            Some("Alice")
        );
        assert!(dir.verify("alice", "S3cret").await.is_none());
        assert!(dir.verify("alice", "").await.is_none());
        assert_eq!(dir.ids().collect::<Vec<_>>(), ["alice"]);
    }

    #[tokio::test]
    async fn unknown_user_is_checked_against_the_real_dummy_hash() {
        let dir = UserDirectory::from_toml(&file_with(&hash_password("pw")), "u").unwrap();
        // An unknown id goes down the same path, with the dummy hash...
        let (record, phc) = dir.candidate("mallory");
        assert!(record.is_none());
        assert_eq!(phc, DUMMY_HASH);
        // ...which is a genuine, full-cost argon2id hash (it verifies its own password), so
        // checking it costs what checking a real user costs.
        assert!(verify_phc(DUMMY_HASH, DUMMY_PASSWORD));
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let (params, default) = (Params::try_from(&dummy).unwrap(), Params::default());
        let cost = |p: &Params| (p.m_cost(), p.t_cost(), p.p_cost());
        assert_eq!(cost(&params), cost(&default));
        assert!(check_argon2id(DUMMY_HASH).is_ok());
        // Even the dummy's own password never logs anyone in.
        assert!(dir.verify("mallory", DUMMY_PASSWORD).await.is_none());
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let hash = hash_password("pw");
        let dir = UserDirectory::from_toml(&file_with(&hash), "u").unwrap();
        let shown = format!("{dir:?} {:?}", dir.get("alice").unwrap());
        assert!(shown.contains("alice") && shown.contains("<redacted>"));
        assert!(!shown.contains(&hash) && !shown.contains("argon2"));
    }

    #[test]
    fn non_argon2id_hashes_are_refused_without_echoing_them() {
        let plain = err(&file_with("hunter2"));
        assert!(
            plain.starts_with("users.toml: user #1 (alice): password_hash"),
            "{plain}"
        );
        assert!(plain.contains("tinybird-bff hash-password") && !plain.contains("hunter2"));
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert!(err(&file_with(bcrypt)).contains("bcrypt"));
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$PEIp3SpESMk8v5DWvJrPZw$tm8ivd7IRHtxkxf3SJmUjk7s0qyKMEzhSvFtqDs3Fkc";
        assert!(err(&file_with(argon2i)).contains("only argon2id"));
        assert!(err(&file_with("")).contains("is empty"));
        assert!(err(&file_with("$argon2id$v=19$m=19456,t=2,p=1")).contains("incomplete"));
    }

    #[test]
    fn ids_must_be_present_and_unique() {
        let hash = hash_password("pw");
        let two = |a: &str, b: &str| {
            format!(
                "[[users]]\nid = \"{a}\"\npassword_hash = \"{hash}\"\n\
                 [[users]]\nid = \"{b}\"\npassword_hash = \"{hash}\"\n"
            )
        };
        assert_eq!(
            err(&two("bob", "bob")),
            "users.toml: user #2 (bob): id is already used by user #1; ids must be unique"
        );
        assert!(err(&two("bob", " ")).starts_with("users.toml: user #2: id is empty"));
        let ok = UserDirectory::from_toml(&two("bob", "carol"), "u").unwrap();
        assert_eq!(ok.ids().collect::<Vec<_>>(), ["bob", "carol"]);
        assert!(
            UserDirectory::from_toml("", "u")
                .unwrap()
                .ids()
                .next()
                .is_none()
        );
    }

    #[test]
    fn toml_errors_name_file_and_line_but_not_the_line_text() {
        let bad_syntax = err("[[users]]\nid = \"a\"\npassword_hash = \"oops-unterminated\n");
        assert!(
            bad_syntax.starts_with("users.toml: line 3,"),
            "{bad_syntax}"
        );
        assert!(!bad_syntax.contains("oops-unterminated"), "{bad_syntax}");
        let unknown = err("[[users]]\nid = \"a\"\npassword = \"x\"\n");
        assert!(
            unknown.contains("line 3") && unknown.contains("password"),
            "{unknown}"
        );
        let missing = err("[[users]]\nid = \"a\"\n");
        assert!(missing.contains("password_hash"), "{missing}");
    }

    #[test]
    fn load_reports_missing_file_by_path() {
        let e = UserDirectory::load(Path::new("/nonexistent/users.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read users file /nonexistent/users.toml")
        );
    }
}
