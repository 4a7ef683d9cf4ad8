//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas of the operator
//! never reconcile at once, with the `kube-lease-manager` crate.
//!
//! A candidate campaigns until it holds the Lease, then renews it `grace` before it runs out.
//! A leader whose renewal fails stops leading at once, while its claim still holds, and campaigns
//! again as a new candidate (`<holder>-<n>`): it leads again only by winning the Lease like any
//! standby, once its old claim has run out or was released, never by trusting a claim it could
//! not renew. On shutdown a leader releases the Lease, so that a standby takes over at once.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

/// Where the Lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name and a random suffix).
    pub holder: String,
    /// How long a leader's claim lasts without renewal (at least 3 s).
    pub ttl: Duration,
}

impl LeaseConfig {
    /// The Lease's duration in whole seconds, at least 3.
    fn seconds(&self) -> u64 {
        self.ttl.as_secs().max(3)
    }

    /// How long before its claim runs out a leader renews it: a third of the duration, so that
    /// a renewal that fails leaves that long to stop before another replica may take over.
    fn grace(&self) -> u64 {
        (self.seconds() / 3).max(1)
    }

    /// The identity of this replica's `round`-th candidacy (0: the first).
    fn identity(&self, round: u32) -> String {
        if round == 0 {
            self.holder.clone()
        } else {
            format!("{}-{round}", self.holder)
        }
    }
}

/// Campaigns for the Lease until `stop` says so, publishing on `leading` whether this replica
/// leads; releases the Lease on the way out if it holds it.
pub async fn campaign(
    client: Client,
    config: LeaseConfig,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let retry = Duration::from_secs(config.grace());
    let mut round = 0;
    loop {
        let built = tokio::select! {
            built = candidate(&client, &config, round) => built,
            _ = stop.wait_for(|s| *s) => break,
        };
        round += 1;
        let manager = match built {
            Ok(manager) => manager,
            Err(error) => {
                tracing::warn!(%error, lease = %config.name, "unable to read the leader Lease; retrying");
                if pause(retry, &mut stop).await {
                    break;
                }
                continue;
            }
        };
        if hold(&manager, &config, &leading, &mut stop).await {
            if *leading.borrow()
                && let Err(error) = manager.release().await
            {
                tracing::warn!(%error, "unable to release the leader Lease");
            }
            break;
        }
        // Renewal failed: stop leading now, while the claim still holds, and campaign anew.
        leading.send_replace(false);
        if pause(retry, &mut stop).await {
            break;
        }
    }
    leading.send_replace(false);
}

/// A fresh candidate for the Lease, creating the Lease if there is none.
async fn candidate(
    client: &Client,
    config: &LeaseConfig,
    round: u32,
) -> kube_lease_manager::Result<LeaseManager> {
    LeaseManagerBuilder::new(client.clone(), &config.name)
        .with_namespace(&config.namespace)
        .with_identity(config.identity(round))
        .with_duration(config.seconds())
        .with_grace(config.grace())
        .build()
        .await
}

/// Follows `manager` until `stop` (returns `true`) or until a call to the API server fails
/// (returns `false`), publishing each change of leadership on `leading`.
async fn hold(
    manager: &LeaseManager,
    config: &LeaseConfig,
    leading: &watch::Sender<bool>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            changed = manager.changed() => match changed {
                Ok(now) => {
                    leading.send_replace(now);
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %config.name, "unable to renew or read the leader Lease");
                    return false;
                }
            },
            _ = stop.wait_for(|s| *s) => return true,
        }
    }
}

/// Waits `period`; `true` if `stop` came first.
async fn pause(period: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seconds: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "kube-system".into(),
            name: "zhengyun-operator".into(),
            holder: "op-a".into(),
            ttl: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn a_leader_renews_a_third_of_its_lease_before_it_runs_out() {
        assert_eq!((config(15).seconds(), config(15).grace()), (15, 5));
        assert_eq!((config(3).seconds(), config(3).grace()), (3, 1));
        assert_eq!(
            (config(1).seconds(), config(1).grace()),
            (3, 1),
            "at least 3 s"
        );
    }

    #[test]
    fn each_new_candidacy_has_an_identity_of_its_own() {
        let c = config(15);
        assert_eq!(c.identity(0), "op-a");
        assert_eq!(c.identity(2), "op-a-2");
    }
}
