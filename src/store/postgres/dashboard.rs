//! The PgStore's dashboard statements (see `store/dashboard.rs`; its retry and manual fire
//! are shared: `store/dialect/runs.rs`).

use super::PgStore;
use crate::store::dashboard::dashboard_statements;

dashboard_statements!(PgStore, sqlx::Postgres, ("strpos(input, ", ") > 0"));
