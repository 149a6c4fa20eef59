//! The instance-wait loop: one listing per round for all the instances
//! still booting (never one GET per instance), backing off per
//! [`PollPolicy`], until each is running or failed.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use vre_core::{CloudResource, Error, ResourceStatus, Result, StepProgress};

use crate::answer::still_running;
use crate::poll::PollPolicy;

/// What one listing round saw of one awaited instance.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// Still booting: its current view when the listing showed it, `None`
    /// when the cloud does not list it yet (right after the create call).
    Pending(Option<CloudResource>),
    /// Running or failed (a failed one carries `ResourceStatus::Failed`):
    /// the wait is over for it.
    Settled(CloudResource),
}

impl Observed {
    /// Classifies by the view's status: `Pending` keeps waiting, any other
    /// status settles it.
    pub fn by_status(view: CloudResource) -> Self {
        if view.status == ResourceStatus::Pending {
            Observed::Pending(Some(view))
        } else {
            Observed::Settled(view)
        }
    }
}

/// The names of `resources`, comma-separated (for a timeout's message).
pub fn names(resources: &[CloudResource]) -> String {
    resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Which instances each listing round asks about, and when the deadline
/// ends the wait: the two ways the clouds' waits have always worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounds {
    /// Only the instances still booting (a settled one is done with), and no
    /// sleep that would end past the deadline: EC2, whose listing filters by
    /// instance id.
    Waiting,
    /// Every instance, every round, so one that ran and then failed before
    /// the others came up is reported failed (and replaced by the engine);
    /// the deadline is checked after each round: clouds whose one listing
    /// returns the whole cluster anyway (Compute Engine, ARM).
    All,
}

/// Waits until every instance in `instances` is settled and returns their
/// latest views, in the order given.
///
/// Each round calls `list` once with the instances it asks about (as they
/// were given; which ones, per `rounds`) and expects one [`Observed`] per
/// instance, in the same order; `list` should ask the cloud with as few list
/// calls as it can (one per round, filtered to the cluster). After each round
/// `progress(settled, total)` is called. Between rounds the loop sleeps per
/// `policy`; past the deadline (per `rounds`) it returns `timed_out(still
/// waiting)` instead. A view without a key gets the key of the instance it
/// answers for.
pub async fn wait_instances<L, Fut>(
    policy: &PollPolicy,
    rounds: Rounds,
    instances: &[CloudResource],
    timeout: Duration,
    mut list: L,
    mut progress: impl FnMut(usize, usize),
    timed_out: impl FnOnce(&[CloudResource]) -> Error,
) -> Result<Vec<CloudResource>>
where
    L: FnMut(Vec<CloudResource>) -> Fut,
    Fut: Future<Output = Result<Vec<Observed>>>,
{
    let started = Instant::now();
    let mut latest: Vec<CloudResource> = instances.to_vec();
    let mut waiting: Vec<usize> = (0..instances.len()).collect();
    let mut attempt = 0;
    loop {
        let ask: Vec<usize> = match rounds {
            Rounds::Waiting => waiting.clone(),
            Rounds::All => (0..instances.len()).collect(),
        };
        let asked: Vec<CloudResource> = ask.iter().map(|&i| instances[i].clone()).collect();
        let seen = list(asked).await?;
        if seen.len() != ask.len() {
            return Err(Error::orchestrator(
                "instance wait",
                format!("a listing round answered for {} of {} instances", seen.len(), ask.len()),
            ));
        }
        let mut still = Vec::new();
        for (&i, observed) in ask.iter().zip(seen) {
            match observed {
                Observed::Pending(view) => {
                    if let Some(v) = view {
                        latest[i] = v;
                    }
                    still.push(i);
                }
                Observed::Settled(v) => latest[i] = v,
            }
        }
        waiting = still;
        progress(instances.len() - waiting.len(), instances.len());
        if waiting.is_empty() {
            break;
        }
        let delay = policy.delay(attempt, None);
        let past_deadline = match rounds {
            Rounds::Waiting => started.elapsed() + delay > timeout,
            Rounds::All => started.elapsed() >= timeout,
        };
        if past_deadline {
            let pending: Vec<CloudResource> = waiting.iter().map(|&i| latest[i].clone()).collect();
            return Err(timed_out(&pending));
        }
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
    for (view, asked) in latest.iter_mut().zip(instances) {
        if view.key.is_none() {
            view.key = asked.key.clone();
        }
    }
    Ok(latest)
}

/// How a provider words its instance wait.
#[derive(Clone, Debug)]
pub struct WaitWording<'a> {
    /// The count in the step's progress (`instances running or failed`).
    pub settled: &'a str,
    /// What the instances are called on this cloud (`virtual machines`).
    pub things: &'a str,
    /// The state a timed-out instance did not reach (`to be RUNNING`).
    pub until: &'a str,
    /// Where the user can look at the ones still waiting.
    pub hint: String,
}

/// [`wait_instances`] reporting the count of settled instances through
/// `progress`, and on timeout naming the instances still waiting in the
/// cloud's own `wording`.
pub async fn wait_instances_reported<L, Fut>(
    policy: &PollPolicy,
    instances: &[CloudResource],
    timeout: Duration,
    list: L,
    progress: &StepProgress,
    wording: WaitWording<'_>,
) -> Result<Vec<CloudResource>>
where
    L: FnMut(Vec<CloudResource>) -> Fut,
    Fut: Future<Output = Result<Vec<Observed>>>,
{
    let WaitWording {
        settled,
        things,
        until,
        hint,
    } = wording;
    wait_instances(
        policy,
        Rounds::All,
        instances,
        timeout,
        list,
        |done, total| progress.count(settled, done as u64, total as u64),
        |pending| still_running(format!("{things} {} {until}", names(pending)), timeout, hint),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use vre_core::{ResourceKey, ResourceKind, Role};

    fn booting(name: &str) -> CloudResource {
        CloudResource::new(ResourceKind::Instance, format!("id-{name}"), name)
            .with_key(ResourceKey::server(Role::Service, 1))
            .with_status(ResourceStatus::Pending)
    }

    /// A cloud whose instances boot after a number of listings each.
    struct FakeLister {
        boots_after: HashMap<String, usize>,
        rounds: Mutex<Vec<Vec<String>>>,
    }

    impl FakeLister {
        fn observe(&self, asked: Vec<CloudResource>) -> Vec<Observed> {
            let mut rounds = self.rounds.lock().unwrap();
            rounds.push(asked.iter().map(|r| r.name.clone()).collect());
            let n = rounds.len();
            asked
                .into_iter()
                .map(|r| match self.boots_after[&r.name] {
                    0 => Observed::Pending(None),
                    b if n >= b => Observed::by_status(
                        CloudResource::new(ResourceKind::Instance, r.id, r.name).with_status(ResourceStatus::Ready),
                    ),
                    _ => Observed::by_status(r.with_status(ResourceStatus::Pending)),
                })
                .collect()
        }
    }

    fn lister(boots: &[(&str, usize)]) -> Arc<FakeLister> {
        Arc::new(FakeLister {
            boots_after: boots.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
            rounds: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn one_listing_per_round_for_the_instances_still_booting() {
        let fake = lister(&[("a", 1), ("b", 3)]);
        let mut seen_progress = Vec::new();
        let started = Instant::now();
        let f = fake.clone();
        let out = wait_instances(
            &PollPolicy::default(),
            Rounds::Waiting,
            &[booting("a"), booting("b")],
            Duration::from_secs(600),
            |asked| {
                let f = f.clone();
                async move { Ok(f.observe(asked)) }
            },
            |done, total| seen_progress.push((done, total)),
            |_| panic!("no timeout"),
        )
        .await
        .unwrap();
        assert_eq!(
            *fake.rounds.lock().unwrap(),
            [vec!["a", "b"], vec!["b"], vec!["b"]].map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        );
        assert_eq!(seen_progress, [(1, 2), (1, 2), (2, 2)]);
        // 2 s, then 4 s between the rounds
        assert_eq!(started.elapsed(), Duration::from_secs(6));
        assert!(out.iter().all(|r| r.status == ResourceStatus::Ready));
        // the views had no key: they keep the one they answer for
        assert_eq!(out[1].key, Some(ResourceKey::server(Role::Service, 1)));
        assert_eq!(out[1].name, "b");
    }

    /// Waits on "a" (never listed) and "b" (up after one round) with a 10 s
    /// timeout; returns the error, the virtual time spent and the rounds.
    async fn time_out(rounds: Rounds) -> (Error, Duration, usize) {
        let fake = lister(&[("a", 0), ("b", 1)]);
        let started = Instant::now();
        let f = fake.clone();
        let e = wait_instances(
            &PollPolicy::default(),
            rounds,
            &[booting("a"), booting("b")],
            Duration::from_secs(10),
            |asked| {
                let f = f.clone();
                async move { Ok(f.observe(asked)) }
            },
            |_, _| {},
            |pending| Error::Timeout {
                what: names(pending),
                after: Duration::from_secs(10),
                hint: String::new(),
            },
        )
        .await
        .unwrap_err();
        let n = fake.rounds.lock().unwrap().len();
        (e, started.elapsed(), n)
    }

    #[tokio::test(start_paused = true)]
    async fn instances_never_listed_time_out_without_sleeping_past_the_deadline() {
        let (e, elapsed, rounds) = time_out(Rounds::Waiting).await;
        assert!(matches!(&e, Error::Timeout { what, .. } if what == "a"), "{e}");
        // rounds at 0, 2 and 6 s; the next would start at 14 s
        assert_eq!(elapsed, Duration::from_secs(6));
        assert_eq!(rounds, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn listing_errors_end_the_wait() {
        let e = wait_instances(
            &PollPolicy::fast(),
            Rounds::Waiting,
            &[booting("a")],
            Duration::from_secs(10),
            |_| async { Err(Error::input("x", "listing failed")) },
            |_, _| {},
            |_| panic!("no timeout"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "x: listing failed");
    }

    #[tokio::test(start_paused = true)]
    async fn every_round_rereads_every_instance_so_a_later_failure_is_seen() {
        // "a" runs at once, then fails in the third round, before "b" is up
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let r = rounds.clone();
        let out = wait_instances(
            &PollPolicy::default(),
            Rounds::All,
            &[booting("a"), booting("b")],
            Duration::from_secs(600),
            |asked: Vec<CloudResource>| {
                let r = r.clone();
                async move {
                    let mut rounds = r.lock().unwrap();
                    rounds.push(asked.iter().map(|x| x.name.clone()).collect::<Vec<_>>());
                    let n = rounds.len();
                    Ok(asked
                        .into_iter()
                        .map(|x| {
                            let status = match (x.name.as_str(), n) {
                                ("a", 3..) => ResourceStatus::Failed {
                                    reason: "host lost".into(),
                                },
                                ("a", _) | ("b", 4..) => ResourceStatus::Ready,
                                _ => ResourceStatus::Pending,
                            };
                            Observed::by_status(x.with_status(status))
                        })
                        .collect())
                }
            },
            |_, _| {},
            |_| panic!("no timeout"),
        )
        .await
        .unwrap();
        assert!(rounds.lock().unwrap().iter().all(|asked| asked.len() == 2));
        assert!(matches!(&out[0].status, ResourceStatus::Failed { reason } if reason == "host lost"));
        assert_eq!(out[1].status, ResourceStatus::Ready);
    }

    #[tokio::test(start_paused = true)]
    async fn rereading_rounds_check_the_deadline_after_each_round() {
        let (e, elapsed, rounds) = time_out(Rounds::All).await;
        assert!(matches!(&e, Error::Timeout { what, .. } if what == "a"), "{e}");
        // rounds at 0, 2, 6 and 14 s: the last one starts past the deadline
        assert_eq!(elapsed, Duration::from_secs(14));
        assert_eq!(rounds, 4);
    }
}
