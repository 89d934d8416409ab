//! `[oidc.<name>]` tables: identity providers, as written and as validated.
//!
//! A provider does one or both of: OIDC login for browsers (needs `client_id`), and accepting
//! its access tokens as `Authorization: Bearer` on `/api/token` and the proxy (needs
//! `bearer_audiences`). Validation reports every problem with its key and the fix, like the
//! rest of the config; the client secret comes from the environment, never the TOML.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use reqwest::Url;
use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::claims_map::ClaimsMapping;
use crate::auth::idp_token::DEFAULT_ALGORITHMS;
use crate::config::problem::{EnvLookup, Problem};

/// Authorization request parameters the login flow sets itself.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// `[oidc.<name>]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The issuer URL exactly as the provider writes `iss` (discovery is read from it).
    pub issuer: String,
    /// Label of the login button (default: the table name).
    #[serde(default)]
    pub display_name: Option<String>,
    /// OAuth client id; enables `/auth/<name>/login`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Environment variable holding the client secret (or `<VAR>_FILE`); none = public client.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes asked for at login (must include `openid`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Extra authorization request parameters (Auth0 `audience`, `organization`, `prompt`...).
    #[serde(default)]
    pub auth_params: BTreeMap<String, String>,
    /// Also read the userinfo endpoint at login and merge its claims over the ID token's.
    #[serde(default)]
    pub userinfo: bool,
    /// Accept this provider's access tokens as bearers when `aud` names one of these.
    #[serde(default)]
    pub bearer_audiences: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: String,
    /// Minimum time between two JWKS (or discovery) fetches.
    #[serde(default = "default_cooldown")]
    pub jwks_cooldown: String,
    /// Keys are refetched when older than this.
    #[serde(default = "default_max_age")]
    pub jwks_max_age: String,
    /// Accepted signature algorithms (default: every RSA, EC and EdDSA one).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// From claims to user attributes.
    #[serde(default)]
    pub claims: ClaimsMapping,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}
fn default_leeway() -> String {
    "30s".into()
}
fn default_cooldown() -> String {
    "60s".into()
}
fn default_max_age() -> String {
    "1h".into()
}

/// The browser login half of a provider.
#[derive(Debug, Clone)]
pub struct OidcClient {
    /// OAuth client id.
    pub client_id: String,
    /// Client secret for the token endpoint (`client_secret_basic`); `None` for public clients.
    pub client_secret: Option<SecretString>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Extra authorization request parameters.
    pub auth_params: BTreeMap<String, String>,
    /// Read userinfo at login.
    pub userinfo: bool,
}

/// A validated provider.
#[derive(Debug, Clone)]
pub struct OidcProviderSettings {
    /// The table name: appears in `/auth/<name>/...` routes.
    pub name: String,
    /// Label for the login page.
    pub display_name: String,
    /// Expected `iss`, verbatim.
    pub issuer: String,
    /// Login settings, when login is enabled.
    pub client: Option<OidcClient>,
    /// Audiences accepted on bearer tokens; empty disables bearer tokens.
    pub bearer_audiences: Vec<String>,
    /// Clock skew allowance.
    pub leeway: Duration,
    /// JWKS refetch cool-down.
    pub jwks_cooldown: Duration,
    /// JWKS maximum age.
    pub jwks_max_age: Duration,
    /// Accepted signature algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Claims mapping.
    pub claims: ClaimsMapping,
}

/// Validates every `[oidc.<name>]`; problems name `oidc.<name>.<key>`.
pub fn validate(
    raw: &BTreeMap<String, OidcProviderConfig>,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<Vec<OidcProviderSettings>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (name, p) in raw {
        let at = |key: &str| format!("oidc.{name}.{key}");
        let mut push = |key: &str, message: String| {
            problems.push(Problem {
                key: at(key),
                message,
            })
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            push("", "the provider name appears in URLs (/auth/<name>/login): use lowercase letters, digits, `-` or `_`".into());
        }
        if !issuer_ok(&p.issuer) {
            push(
                "issuer",
                format!(
                    "{:?} is not an issuer URL: write it exactly as the provider's `iss` claim, e.g. \"https://example.eu.auth0.com/\" (https; http only for localhost)",
                    p.issuer
                ),
            );
        }
        let client = match &p.client_id {
            Some(id) if id.trim().is_empty() => {
                push("client_id", "is empty: set the client id from the provider's application settings, or remove it to disable login".into());
                None
            }
            Some(id) => {
                if !p.scopes.iter().any(|s| s == "openid") {
                    push(
                        "scopes",
                        "must include \"openid\" (it is what makes the provider send an ID token)"
                            .into(),
                    );
                }
                for key in p.auth_params.keys() {
                    if RESERVED_PARAMS.contains(&key.as_str()) {
                        push(
                            "auth_params",
                            format!("{key:?} is set by the login flow itself: remove it"),
                        );
                    }
                }
                let secret = match &p.client_secret_env {
                    Some(var) => read_secret(var, base, env)
                        .map_err(|m| push("client_secret_env", m))
                        .ok(),
                    None => Some(None),
                };
                secret.map(|client_secret| OidcClient {
                    client_id: id.clone(),
                    client_secret,
                    scopes: p.scopes.clone(),
                    auth_params: p.auth_params.clone(),
                    userinfo: p.userinfo,
                })
            }
            None => {
                if p.client_secret_env.is_some() || p.userinfo {
                    push("client_id", "is required when client_secret_env or userinfo is set (they belong to the login flow)".into());
                }
                None
            }
        };
        if p.client_id.is_none() && p.bearer_audiences.is_empty() {
            push("", "does nothing: set client_id (browser login) and/or bearer_audiences (accept the provider's access tokens)".into());
        }
        if p.bearer_audiences.iter().any(|a| a.trim().is_empty()) {
            push(
                "bearer_audiences",
                "has an empty audience: list the `aud` values your API's access tokens carry"
                    .into(),
            );
        }
        let mut duration =
            |key: &str, value: &str, max: Duration| match humantime::parse_duration(value) {
                Ok(d) if d <= max => Some(d),
                Ok(_) => {
                    push(
                        key,
                        format!(
                            "{value:?} is too long: at most {}",
                            humantime::format_duration(max)
                        ),
                    );
                    None
                }
                Err(e) => {
                    push(
                        key,
                        format!("{value:?} is not a duration ({e}); write e.g. \"30s\" or \"5m\""),
                    );
                    None
                }
            };
        let leeway = duration("leeway", &p.leeway, Duration::from_secs(300));
        let cooldown = duration("jwks_cooldown", &p.jwks_cooldown, Duration::from_secs(3600));
        let max_age = duration(
            "jwks_max_age",
            &p.jwks_max_age,
            Duration::from_secs(7 * 86400),
        );
        let algorithms = match &p.algorithms {
            None => Some(DEFAULT_ALGORITHMS.to_vec()),
            Some(names) => {
                let parsed: Vec<_> = names
                    .iter()
                    .map(|n| {
                        n.parse::<Algorithm>()
                            .ok()
                            .filter(|a| DEFAULT_ALGORITHMS.contains(a))
                            .ok_or(n)
                    })
                    .collect();
                let bad: Vec<_> = parsed.iter().filter_map(|r| r.err()).collect();
                if !bad.is_empty() || names.is_empty() {
                    push(
                        "algorithms",
                        format!(
                            "{bad:?} refused: list asymmetric algorithms (RS256, PS256, ES256, ES384, EdDSA, ...); HS* and none are never accepted from a provider"
                        ),
                    );
                    None
                } else {
                    Some(parsed.into_iter().flatten().collect())
                }
            }
        };
        for attribute in p.claims.attribute_names() {
            if attribute.is_empty()
                || !attribute
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                push(
                    "claims.attributes",
                    format!(
                        "{attribute:?} cannot be used in grant templates (user.attributes.<name>): use letters, digits and `_`"
                    ),
                );
            }
        }
        if let (Some(leeway), Some(jwks_cooldown), Some(jwks_max_age), Some(algorithms)) =
            (leeway, cooldown, max_age, algorithms)
        {
            out.push(OidcProviderSettings {
                name: name.clone(),
                display_name: p.display_name.clone().unwrap_or_else(|| name.clone()),
                issuer: p.issuer.clone(),
                client,
                bearer_audiences: p.bearer_audiences.clone(),
                leeway,
                jwks_cooldown,
                jwks_max_age,
                algorithms,
                claims: p.claims.clone(),
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// https, or http on a loopback host (local providers in development and tests).
pub fn issuer_ok(issuer: &str) -> bool {
    Url::parse(issuer).is_ok_and(|u| {
        u.query().is_none()
            && u.fragment().is_none()
            && match u.scheme() {
                "https" => u.host().is_some(),
                "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
                _ => false,
            }
    })
}

/// Reads a secret from `$VAR`, or from the file `$VAR_FILE` names.
fn read_secret(var: &str, base: &Path, env: EnvLookup<'_>) -> Result<Option<SecretString>, String> {
    match crate::config::problem::read_secret(var, base, env)? {
        None => Err(format!(
            "set {var} (or {var}_FILE) to the client secret, or remove client_secret_env for a public client"
        )),
        Some(text) if text.is_empty() => Err(format!("{var} is empty")),
        Some(text) => Ok(Some(SecretString::from(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        toml_text: &str,
        env: &[(&str, &str)],
    ) -> Result<Vec<OidcProviderSettings>, Vec<String>> {
        let raw: BTreeMap<String, OidcProviderConfig> = toml::from_str(toml_text).unwrap();
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        validate(&raw, Path::new("."), &lookup)
            .map_err(|ps| ps.into_iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn a_keycloak_provider_validates_with_its_secret_from_the_environment() {
        let ok = check(
            r#"[keycloak]
            issuer = "https://sso.example.com/realms/acme"
            client_id = "bff"
            client_secret_env = "KC_SECRET"
            bearer_audiences = ["bff-api"]
            claims = { tenant = "org.id", roles = "realm_access.roles" }"#,
            &[("KC_SECRET", "s3cret")],
        )
        .unwrap();
        assert_eq!(ok[0].display_name, "keycloak");
        assert!(ok[0].client.as_ref().unwrap().client_secret.is_some());
        assert_eq!(ok[0].leeway, Duration::from_secs(30));
    }

    #[test]
    fn every_mistake_is_reported_with_its_key_and_fix() {
        let errs = check(
            r#"[Bad]
            issuer = "http://idp.example.com"
            client_id = "bff"
            client_secret_env = "MISSING"
            scopes = ["profile"]
            auth_params = { state = "x" }
            algorithms = ["HS256"]
            leeway = "1h""#,
            &[],
        )
        .unwrap_err();
        for want in [
            "oidc.Bad.: the provider name",
            "oidc.Bad.issuer",
            "oidc.Bad.client_secret_env: set MISSING",
            "oidc.Bad.scopes",
            "oidc.Bad.auth_params: \"state\"",
            "oidc.Bad.algorithms",
            "oidc.Bad.leeway",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{want} not in {errs:#?}"
            );
        }
        let errs = check("[idle]\nissuer = \"https://idp.example.com\"", &[]).unwrap_err();
        assert!(errs[0].contains("does nothing"), "{errs:?}");
    }

    #[test]
    fn http_issuers_are_only_for_loopback() {
        assert!(issuer_ok("http://127.0.0.1:4000"));
        assert!(issuer_ok("https://tenant.eu.auth0.com/"));
        assert!(!issuer_ok("http://idp.example.com"));
        assert!(!issuer_ok("https://idp.example.com/?x=1"));
    }
}
