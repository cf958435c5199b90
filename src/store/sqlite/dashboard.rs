//! The SqliteStore's dashboard statements (see `store/dashboard.rs`; its retry and manual
//! fire are shared: `store/dialect/runs.rs`).

use super::SqliteStore;
use crate::store::dashboard::dashboard_statements;

dashboard_statements!(SqliteStore, sqlx::Sqlite, ("instr(input, ", ") > 0"));
