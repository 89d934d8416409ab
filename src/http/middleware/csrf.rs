//! The CSRF check (`crate::auth::csrf`) as route layers: always, or unless the request carries
//! an `Authorization` header (a bearer request has no cookie to ride on; see
//! `crate::auth::bearer` for the invariant that makes skipping it safe).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use reqwest::Url;

use crate::auth::csrf;
use crate::error::AppError;

/// Refuses any request that fails the CSRF check against `public_url`.
pub async fn require(
    State(public_url): State<Url>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    csrf::check(request.headers(), &public_url)?;
    Ok(next.run(request).await)
}

/// CSRF check for cookie-authenticated requests only: requests with an `Authorization`
/// header skip it.
pub async fn unless_bearer(
    State(public_url): State<Url>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if !request.headers().contains_key(header::AUTHORIZATION) {
        csrf::check(request.headers(), &public_url)?;
    }
    Ok(next.run(request).await)
}
