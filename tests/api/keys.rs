//! Tenant API keys (docs/api-keys.md): the store on SQLite and a real PostgreSQL, the service
//! as two instances see it, the management routes and the CLI.

mod cli;
mod pg;
mod routes;
mod service;
mod store;
mod usage;
mod using;
