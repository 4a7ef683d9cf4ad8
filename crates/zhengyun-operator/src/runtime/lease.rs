//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas of the operator
//! never reconcile at once. Every write carries the Lease's resourceVersion as a precondition:
//! of two candidates racing for an expired Lease exactly one wins, the other gets 409 Conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
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
    /// How long a leader's claim lasts without renewal.
    pub ttl: Duration,
}

/// The outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// We hold the Lease until at least `ttl` from now.
    Leading,
    /// Another live replica holds it.
    Following,
}

/// A candidate for the Lease.
#[derive(Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaseLock {
    /// A candidate using `client`.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self { api, config }
    }

    /// Takes the Lease if it is free or expired, renews it if it is ours.
    pub async fn try_acquire_or_renew(&self) -> Result<Leadership, kube::Error> {
        let now = Timestamp::now();
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.claim(now, None)),
            };
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = current.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.config.holder.as_str());
        if !ours && !expired(&spec, now) {
            return Ok(Leadership::Following);
        }
        let mut next = current;
        next.spec = Some(self.claim(now, Some(&spec)));
        self.write(
            self.api
                .replace(&self.config.name, &PostParams::default(), &next)
                .await,
        )
    }

    /// Gives the Lease up (on graceful shutdown) so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut current) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = current.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.holder.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api
            .replace(&self.config.name, &PostParams::default(), &current)
            .await?;
        Ok(())
    }

    fn claim(&self, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let ours = previous.and_then(|p| p.holder_identity.as_deref())
            == Some(self.config.holder.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.holder.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.ttl.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: if ours {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    fn write(&self, result: Result<Lease, kube::Error>) -> Result<Leadership, kube::Error> {
        match result {
            Ok(_) => Ok(Leadership::Leading),
            // Someone else wrote first (409) or created it first (409 AlreadyExists).
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Leadership::Following),
            Err(e) => Err(e),
        }
    }

    /// Keeps trying every `ttl / 3`, publishing the current leadership on `tx`. Returns when
    /// `shutdown` fires (releasing the Lease if held).
    pub async fn run(self, tx: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let period = self.config.ttl / 3;
        let mut last_success = tokio::time::Instant::now();
        loop {
            match self.try_acquire_or_renew().await {
                Ok(state) => {
                    last_success = tokio::time::Instant::now();
                    tx.send_replace(state == Leadership::Leading);
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.config.name, "unable to renew the leader Lease");
                    // A leader that cannot renew must stop acting before its claim runs out.
                    if last_success.elapsed() >= period * 2 {
                        tx.send_replace(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.changed() => break,
            }
        }
        if *tx.borrow()
            && let Err(e) = self.release().await
        {
            tracing::warn!(error = %e, "unable to release the leader Lease");
        }
        tx.send_replace(false);
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(MicroTime(renewed)) = spec.renew_time else {
        return true;
    };
    let ttl = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    renewed
        .saturating_add(ttl)
        .map(|until| until < now)
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_secs_ago: i64, ttl: i32) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(ttl),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_renewed_within_its_duration_is_held() {
        assert!(!expired(&spec(5, 15), Timestamp::now()));
    }

    #[test]
    fn a_lease_not_renewed_for_longer_than_its_duration_is_free() {
        assert!(expired(&spec(20, 15), Timestamp::now()));
    }

    #[test]
    fn a_released_lease_is_free() {
        assert!(expired(&LeaseSpec::default(), Timestamp::now()));
    }
}
