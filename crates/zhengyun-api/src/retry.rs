//! Writes made again on a fresh read when the cluster refuses them with 409 Conflict.
//!
//! The operator writes status all the time, which moves an object's resourceVersion: a
//! replace carrying the version the API read fails with 409 even when nobody touched the spec
//! it decided on. Each attempt reads the object again, decides again (and may refuse, or file a
//! change request instead) and writes; only a conflict makes another attempt, at most
//! [`WRITE_ATTEMPTS`] in all. A caller's own precondition (`If-Match`) is never retried: its
//! conflict is the caller's answer.

use std::future::Future;

/// The most attempts of one write.
pub const WRITE_ATTEMPTS: u32 = 5;

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// Written (or decided without a write): the answer.
    Done(T),
    /// The cluster refused the write because the object changed since it was read.
    Conflict(kube::Error),
}

/// Whether the cluster refused a write because the object changed meanwhile.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The outcome of a write as an [`Attempt`]: a conflict is worth another attempt when
/// `retry` (no caller precondition); any other error, or a conflict not to retry, is an error.
pub fn written<T, E: From<kube::Error>>(
    result: Result<T, kube::Error>,
    retry: bool,
) -> Result<Attempt<T>, E> {
    match result {
        Ok(done) => Ok(Attempt::Done(done)),
        Err(error) if retry && is_conflict(&error) => Ok(Attempt::Conflict(error)),
        Err(error) => Err(error.into()),
    }
}

/// Runs `attempt` (numbered from 1) until it is done or fails, making it again after each
/// conflict, at most [`WRITE_ATTEMPTS`] times; the last conflict is returned as the error.
pub async fn on_conflict<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: From<kube::Error>,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Attempt<T>, E>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await? {
            Attempt::Done(done) => return Ok(done),
            Attempt::Conflict(error) if n >= WRITE_ATTEMPTS => return Err(error.into()),
            Attempt::Conflict(_) => n += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("the object has been modified", "Conflict")
                .with_code(409)
                .boxed(),
        )
    }

    #[tokio::test]
    async fn a_write_that_conflicts_is_made_again_until_it_is_done() {
        let done: Result<u32, kube::Error> = on_conflict(|n| async move {
            if n < 3 {
                Ok(Attempt::Conflict(conflict()))
            } else {
                Ok(Attempt::Done(n))
            }
        })
        .await;
        assert_eq!(done.expect("done"), 3);
    }

    #[tokio::test]
    async fn a_write_that_keeps_conflicting_gives_up_after_the_last_attempt_with_the_conflict() {
        let mut attempts = 0;
        let result: Result<(), kube::Error> = on_conflict(|_| {
            attempts += 1;
            async { Ok(Attempt::Conflict(conflict())) }
        })
        .await;
        assert!(result.as_ref().is_err_and(is_conflict), "{result:?}");
        assert_eq!(attempts, WRITE_ATTEMPTS);
    }

    #[test]
    fn a_conflict_is_retried_only_without_a_caller_precondition() {
        let retried: Result<Attempt<()>, kube::Error> = written(Err(conflict()), true);
        assert!(matches!(retried, Ok(Attempt::Conflict(_))));
        let refused: Result<Attempt<()>, kube::Error> = written(Err(conflict()), false);
        assert!(refused.is_err_and(|e| is_conflict(&e)));
    }
}
