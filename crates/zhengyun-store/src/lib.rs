//! Zhengyun store: the SQL ledger, audit log and API tokens.
