//! `GET /api/openapi.json`: generated from the handlers' annotations, it must name every route
//! the router serves, and its schemas must be the shapes the BFF really answers with.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::spawn_app;

/// Every `.route("<path>", ...)` of src/http/router.rs, but the catch-all 404 of `/api/*`.
fn router_paths() -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/router.rs"))
            .unwrap();
    let mut paths = BTreeSet::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let quoted = rest.trim_start().strip_prefix('"').unwrap();
        let path = &quoted[..quoted.find('"').unwrap()];
        if !path.contains("{*") {
            paths.insert(path.to_owned());
        }
    }
    paths
}

/// The property names of `schema` in the document, through `allOf` and `$ref` (a flattened
/// struct is an `allOf`).
fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect(doc, &doc["components"]["schemas"][schema], &mut out);
    assert!(!out.is_empty(), "no properties for schema {schema}");
    out
}

fn collect(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return collect(doc, &doc["components"]["schemas"][name], out);
    }
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect(doc, part, out);
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn the_document_names_every_route_and_the_shapes_the_bff_answers_with() {
    let app = spawn_app().await;
    let r = app.get("api/openapi.json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routed = router_paths();
    assert!(routed.len() >= 14, "{routed:?}");
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes with no #[utoipa::path] (add it and list the handler in http/openapi.rs): {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} says what it answers"
            );
        }
    }

    // The real answers have the documented shapes.
    let alice = app.session_for("alice").await;
    let token: Value = alice
        .post(format!("{}api/token", app.url))
        .header("X-BFF-CSRF", "1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&token), properties(&doc, "TokenResponse"));
    let me: Value = alice
        .get(format!("{}api/me", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&me), properties(&doc, "MeResponse"));
    let user = properties(&doc, "SessionUser");
    assert!(
        keys(&me["user"]).is_subset(&user),
        "{} within {user:?}",
        me["user"]
    );
    assert_eq!(keys(&me["pipes"][0]), properties(&doc, "PipeAccess"));
    let providers: Value = app.get("api/providers").await.json().await.unwrap();
    assert_eq!(keys(&providers), properties(&doc, "ProvidersResponse"));
    let refused: Value = app.get("api/me").await.json().await.unwrap();
    assert_eq!(keys(&refused), properties(&doc, "ErrorBody"));
    app.stop().await;
}
