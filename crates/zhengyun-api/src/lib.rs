//! Zhengyun control-plane HTTP API.
