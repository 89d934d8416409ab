//! The CSRF check (`crate::auth::csrf`) as a route layer, for the login routes. The data
//! routes check it while resolving their request (`crate::http::context`), unless the request
//! carries an `Authorization` header (a bearer request has no cookie to ride on; see
//! `crate::auth::bearer` for the invariant that makes skipping it safe).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use reqwest::Url;

use crate::auth::csrf;
use crate::error::AppError;

/// Refuses any request that fails the CSRF check against the public URL and the allowed app
/// origins (`[cors]`).
pub async fn require(
    State(origins): State<Arc<(Url, Vec<String>)>>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let (public_url, allowed) = &*origins;
    csrf::check(
        request.headers(),
        csrf::Origins {
            public_url,
            allowed,
        },
    )?;
    Ok(next.run(request).await)
}
