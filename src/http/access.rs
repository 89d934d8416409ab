//! Who, then what: the sequence every route that reads data follows, written once.
//!
//! 1. the request's user (401 without one);
//! 2. the CSRF check when a cookie-authenticated request changes something or may (a `POST`
//!    without an `Authorization` header; bearer requests carry no cookie to ride on);
//! 3. what the user's grants give them (403 naming the grant and attribute that failed).

use std::sync::Arc;

use axum::http::{HeaderMap, Method, header};
use reqwest::Url;

use super::extract::CurrentUser;
use crate::auth::csrf;
use crate::error::AppError;
use crate::grants::{Access, Grants};
use crate::user::User;

/// Steps 1 and 2: the user, with the CSRF check a cookie `POST` needs.
pub fn signed_in(
    user: Result<CurrentUser, AppError>,
    method: &Method,
    headers: &HeaderMap,
    public_url: &Url,
) -> Result<User, AppError> {
    let CurrentUser(user) = user?;
    if method == Method::POST && !headers.contains_key(header::AUTHORIZATION) {
        csrf::check(headers, public_url)?;
    }
    Ok(user)
}

/// Step 3: what `user` may read (kept per user), or a 403 that says why not.
pub fn grants_of(grants: &Grants, user: &User) -> Result<Arc<Access>, AppError> {
    grants.evaluate_cached(user).map_err(AppError::from)
}
