//! Token lookup and verification against the behaviour read in Tinybird's server.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::*;

const WS: &str = "ws-1";

fn admin() -> AdminToken {
    AdminToken::new("p.admin-token-for-tests").unwrap()
}

fn keys<'a>(admin: &'a AdminToken, statics: &'a [StaticToken]) -> Keys<'a> {
    Keys {
        admin,
        workspace_id: WS,
        statics,
    }
}

fn jwt(payload: Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn valid(now: i64) -> Value {
    json!({"workspace_id": WS, "name": "n", "exp": now + 60, "scopes": []})
}

fn refusal(token: Option<&str>, now: i64) -> String {
    let admin = admin();
    match authenticate(token, &keys(&admin, &[]), now) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => {
            assert_eq!(e.status.as_u16(), 403);
            e.message
        }
    }
}

fn headers(authorization: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", authorization.parse().unwrap());
    h
}

#[test]
fn the_token_parameter_comes_first_then_exactly_bearer_space_token() {
    let with_param = Params::parse("token=from-param").unwrap();
    let none = Params::default();
    assert_eq!(
        presented_token(&with_param, &headers("Bearer from-header")),
        Some("from-param")
    );
    assert_eq!(presented_token(&none, &headers("Bearer t")), Some("t"));
    for refused in [
        "bearer t",
        "BEARER t",
        "Bearer  t",
        "Bearer t x",
        "Bearer",
        "Bearer ",
        "Token t",
        "t",
    ] {
        assert_eq!(
            presented_token(&none, &headers(refused)),
            None,
            "{refused:?}"
        );
    }
    assert_eq!(presented_token(&none, &HeaderMap::new()), None);
    assert_eq!(
        presented_token(&Params::parse("token=").unwrap(), &headers("Bearer t")),
        Some("t"),
        "an empty parameter is no token"
    );
}

#[test]
fn no_token_is_tinybirds_bare_refusal() {
    assert_eq!(refusal(None, 0), "invalid authentication token");
}

#[test]
fn a_bad_jwt_is_echoed_whole_as_tinybird_does() {
    let now = 1_000;
    let key = admin();
    let expired = jwt(
        json!({"workspace_id": WS, "name": "n", "exp": now, "scopes": []}),
        key.bytes(),
    );
    assert_eq!(
        refusal(Some(&expired), now),
        format!("invalid authentication token. Invalid token b'{expired}': Signature has expired")
    );
    let forged = jwt(valid(now), b"another-workspace-key");
    assert_eq!(
        refusal(Some(&forged), now),
        format!(
            "invalid authentication token. Invalid token b'{forged}': Signature verification failed"
        )
    );
    let garbage = "not-a-jwt";
    assert_eq!(
        refusal(Some(garbage), now),
        "invalid authentication token. Invalid token b'not-a-jwt': Not enough segments"
    );
    let unknown_static = "p.not-this-workspace";
    assert!(
        refusal(Some(unknown_static), now)
            .contains("b'p.not-this-workspace': Signature verification failed")
    );
    let no_exp = jwt(
        json!({"workspace_id": WS, "name": "n", "scopes": []}),
        key.bytes(),
    );
    assert_eq!(
        refusal(Some(&no_exp), now),
        format!(
            "invalid authentication token. Unexpected error decoding / validating token b'{no_exp}': Token is missing the \"exp\" claim"
        )
    );
}

#[test]
fn the_workspace_is_checked_before_the_signature() {
    let now = 1_000;
    let no_ws = jwt(
        json!({"name": "n", "exp": now + 60, "scopes": []}),
        b"whatever",
    );
    assert_eq!(
        refusal(Some(&no_ws), now),
        "invalid authentication token. Workspace ID missing in JWT token"
    );
    let other = jwt(
        json!({"workspace_id": "ws-2", "name": "n", "exp": now + 60, "scopes": []}),
        b"x",
    );
    assert_eq!(
        refusal(Some(&other), now),
        "invalid authentication token. Workspace with ID ws-2 not found"
    );
}

#[test]
fn exp_has_no_leeway_nbf_is_enforced_and_iat_is_not_checked() {
    let key = admin();
    let k = keys(&key, &[]);
    let now = 1_000;
    let at = |exp: i64| {
        jwt(
            json!({"workspace_id": WS, "name": "n", "exp": exp, "scopes": []}),
            key.bytes(),
        )
    };
    assert!(authenticate(Some(&at(now + 1)), &k, now).is_ok());
    assert!(
        authenticate(Some(&at(now)), &k, now).is_err(),
        "exp == now is expired"
    );
    let future_iat = jwt(
        json!({"workspace_id": WS, "name": "n", "exp": now + 60, "iat": now + 3_600, "scopes": []}),
        key.bytes(),
    );
    assert!(
        authenticate(Some(&future_iat), &k, now).is_ok(),
        "a future iat is accepted"
    );
    let early = jwt(
        json!({"workspace_id": WS, "name": "n", "exp": now + 60, "nbf": now + 1, "scopes": []}),
        key.bytes(),
    );
    let message = authenticate(Some(&early), &k, now).unwrap_err().message;
    assert!(
        message.ends_with("The token is not yet valid (nbf)"),
        "{message}"
    );
    assert!(message.contains(&early), "echoed: {message}");
    let ripe = jwt(
        json!({"workspace_id": WS, "name": "n", "exp": now + 60, "nbf": now, "scopes": []}),
        key.bytes(),
    );
    assert!(authenticate(Some(&ripe), &k, now).is_ok());
    let float = jwt(
        json!({"workspace_id": WS, "name": "n", "exp": now as f64 + 60.5, "scopes": []}),
        key.bytes(),
    );
    let message = authenticate(Some(&float), &k, now).unwrap_err().message;
    assert!(
        message.ends_with("Expiration Time claim (exp) must be an integer."),
        "{message}"
    );
}

#[test]
fn admin_and_static_tokens_are_recognised() {
    let key = admin();
    let statics = [StaticToken {
        name: "usage".into(),
        token: secrecy::SecretString::from("p.static-usage-token"),
        scopes: vec![StaticScope::parse("DATASOURCES:READ:tinybird.pipe_stats_rt").unwrap()],
    }];
    let k = keys(&key, &statics);
    assert!(matches!(
        authenticate(Some("p.admin-token-for-tests"), &k, 0),
        Ok(Caller::Admin)
    ));
    let Ok(Caller::Static(found)) = authenticate(Some("p.static-usage-token"), &k, 0) else {
        panic!("static token not recognised");
    };
    assert_eq!(found.name, "usage");
    assert!(found.pipe_access_is_refused());
    assert!(StaticScope::parse("ADMIN").is_err());
    assert!(StaticScope::parse("PIPES:READ:").is_err());
}

impl StaticToken {
    fn pipe_access_is_refused(&self) -> bool {
        Caller::Static(self.clone())
            .pipe_access("top_products", "t_1")
            .is_err()
    }
}

#[test]
fn python_bytes_repr_matches_python() {
    assert_eq!(python_bytes_repr("abc.def"), "b'abc.def'");
    assert_eq!(python_bytes_repr("it's"), "b\"it's\"");
    assert_eq!(python_bytes_repr("a'b\"c"), "b'a\\'b\"c'");
    assert_eq!(
        python_bytes_repr("t\\\n\u{1}é"),
        "b't\\\\\\n\\x01\\xc3\\xa9'"
    );
}
