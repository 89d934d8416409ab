//! Micro-benchmarks of the per-request hot functions (run with `cargo bench`).
//!
//! No assertions and no targets here: side-by-side comparisons live in `bench/run`.

use std::time::Duration;

use tinybird_bff::grants::{GrantConfig, Grants};
use tinybird_bff::tinybird::AdminToken;
use tinybird_bff::tinybird::mint::{
    DEFAULT_NAME_TEMPLATE, MintParams, NameTemplate, TokenPlan, mint,
};
use tinybird_bff::tinybird::params::Params;
use tinybird_bff::user::User;

fn main() {
    divan::main();
}

fn grants() -> Grants {
    let config: toml::Value = toml::from_str(tinybird_bff::demo::CONFIG).unwrap();
    let grants: Vec<GrantConfig> = config["grants"].clone().try_into().unwrap();
    Grants::compile(&grants).unwrap()
}

fn alice() -> User {
    User {
        id: "alice".into(),
        tenant: Some("acme".into()),
        roles: vec!["viewer".into()],
        attributes: [("region".to_owned(), "eu".to_owned())].into(),
    }
}

/// Grant evaluation: matching plus rendering the fixed params (3 pipes).
#[divan::bench]
fn evaluate_grants(bencher: divan::Bencher<'_, '_>) {
    let grants = grants();
    let user = alice();
    bencher.bench(|| grants.evaluate(divan::black_box(&user)).unwrap());
}

/// Claim building and HS256 signing for 3 pipes with fixed params.
#[divan::bench]
fn build_and_sign_claims(bencher: divan::Bencher<'_, '_>) {
    let access = grants().evaluate(&alice()).unwrap();
    let key = AdminToken::generate("ws");
    let plan = TokenPlan {
        name: "alice@acme".into(),
        ttl: Duration::from_secs(600),
        rps: Some(20),
    };
    let params = MintParams {
        workspace_id: "ws",
        signing_key: key.secret(),
        plan: &plan,
    };
    bencher.bench(|| mint(divan::black_box(&access), &params, 1_800_000_000));
}

/// Rendering the JWT `name` template for a user (kept per user after the first).
#[divan::bench]
fn render_name(bencher: divan::Bencher<'_, '_>) {
    let name = NameTemplate::compile(DEFAULT_NAME_TEMPLATE).unwrap();
    let user = alice();
    bencher.bench(|| name.render(divan::black_box(&user)).unwrap());
}

/// Proxy param rewriting: parse the client's query, force the fixed param, drop `token`, serialise.
#[divan::bench]
fn rewrite_params(bencher: divan::Bencher<'_, '_>) {
    let query = "limit=10&org_id=globex&from=ts-sdk&token=abc&org_id=initech&days=30";
    bencher.bench(|| {
        let mut params = Params::parse(divan::black_box(query)).unwrap();
        params.set("org_id", "acme");
        params.remove("token");
        params.to_query_string()
    });
}
