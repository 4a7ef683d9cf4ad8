//! Zhengyun operator: kube-rs controllers that reconcile bureaus and environments.
