//! Zhengyun metering: ledger maths, rate cards and statements. Pure: no kube, no HTTP.
