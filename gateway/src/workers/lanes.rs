//! Bounded concurrency for a worker: [`run_lanes`] fetches claimed work in
//! batches and runs up to `concurrency` items at once, each on its own task.
//! Items carry a *lane* (a sender, a recipient): two items of one lane never
//! run at the same time and start in the order they were fetched, so what one
//! person sends or receives stays in order while different people's work runs
//! side by side. An item already running or waiting is never taken twice, even
//! if the store hands it out again.
//!
//! A fetch is a claim, and a claim is a write that waits its turn for the
//! database's write lock. Under load every finished item upstream wakes the
//! worker, so a wake that finds items running waits [`GATHER`] for the wakes
//! that follow it and fetches them all at once (at most one claim per
//! [`GATHER`] where it was one per item: issue 14); an idle worker fetches
//! at once, so a quiet gateway adds no latency.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::Backoff;

/// How long a wake that finds the worker busy waits for the wakes behind it
/// before fetching.
pub const GATHER: Duration = Duration::from_millis(4);

/// One piece of claimed work.
pub trait Item: Send + 'static {
    /// Identifies the item (a row id): the same item fetched twice is taken once.
    type Id: Eq + Hash + Clone + Send + 'static;
    /// Items of one lane run one at a time, in order.
    type Lane: Eq + Hash + Clone + Send + 'static;
    fn id(&self) -> Self::Id;
    fn lane(&self) -> Self::Lane;
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct LaneConfig {
    pub name: &'static str,
    /// Items at once (at least 1).
    pub concurrency: usize,
    /// How often to look for work when nobody wakes the worker.
    pub poll: Duration,
}

/// Runs for ever: `fetch(room)` claims up to `room` items; `work(item)` does one.
/// A fetch error backs off (the store is out of reach); `work` handles its own
/// errors. Wakes early on `wake`.
pub async fn run_lanes<T, F, FFut, W, WFut>(config: LaneConfig, wake: Arc<Notify>, mut fetch: F, work: W)
where
    T: Item,
    F: FnMut(usize) -> FFut,
    FFut: Future<Output = Result<Vec<T>, store::Error>>,
    W: Fn(T) -> WFut,
    WFut: Future<Output = ()> + Send + 'static,
{
    let concurrency = config.concurrency.max(1);
    let mut backoff = Backoff::new(config.name);
    let mut running: JoinSet<(T::Id, T::Lane)> = JoinSet::new();
    let mut waiting: VecDeque<T> = VecDeque::new();
    let mut taken: HashSet<T::Id> = HashSet::new();
    let mut busy: HashSet<T::Lane> = HashSet::new();
    // Fetch when there is room and maybe work: at the start, when woken (new
    // work), on the poll, and after a fetch that came back full. A fetch that
    // came back short took all there was, so a finished item alone is no
    // reason to ask again (under load that halved the claims: each a write).
    let mut look = true;
    let mut more = false;
    // A wake that found the worker busy: fetch at this instant.
    let mut gathering: Option<tokio::time::Instant> = None;
    loop {
        if look && waiting.len() < concurrency {
            look = false;
            let room = concurrency * 2 - waiting.len();
            match fetch(room).await {
                Ok(items) => {
                    backoff.succeed();
                    let full = items.len() >= room;
                    let mut new = false;
                    for item in items {
                        if taken.insert(item.id()) {
                            waiting.push_back(item);
                            new = true;
                        }
                    }
                    // A full batch may have more behind it: look again at
                    // once if it brought anything new, else when an item ends
                    // (a fetch may hand out again what the worker holds).
                    more = full;
                    look = full && new;
                }
                Err(error) => {
                    let wait = backoff.fail(&error);
                    // Try again after the wait, or once a running item ends.
                    more = true;
                    if running.is_empty() {
                        tokio::time::sleep(wait).await;
                        look = true;
                        continue;
                    }
                }
            }
        }
        // Start what may start: the first waiting item of each idle lane.
        while running.len() < concurrency {
            let Some(at) = waiting.iter().position(|item| !busy.contains(&item.lane())) else {
                break;
            };
            let item = waiting.remove(at).expect("position is in range");
            let (id, lane) = (item.id(), item.lane());
            busy.insert(lane.clone());
            let job = work(item);
            running.spawn(async move {
                job.await;
                (id, lane)
            });
        }
        if look && waiting.len() < concurrency {
            continue;
        }
        tokio::select! {
            done = running.join_next(), if !running.is_empty() => {
                if let Some(done) = done {
                    match done {
                        Ok((id, lane)) => {
                            taken.remove(&id);
                            busy.remove(&lane);
                            // Idle now: what the wake gathered goes at once.
                            look |= more || (gathering.is_some() && running.is_empty());
                        }
                        // A task that panicked: its id and lane are unknown here, so
                        // start over from the store (claims keep it safe).
                        Err(error) => {
                            tracing::error!(worker = config.name, %error, "a worker task failed");
                            rebuild(&mut running, &mut waiting, &mut taken, &mut busy).await;
                            look = true;
                        }
                    }
                }
            }
            () = wake.notified() => {
                if running.is_empty() {
                    look = true;
                } else {
                    gathering.get_or_insert_with(|| tokio::time::Instant::now() + GATHER);
                }
            }
            () = sleep_until(gathering), if gathering.is_some() => look = true,
            () = tokio::time::sleep(config.poll) => look = true,
        }
        if look {
            // The fetch ahead takes what the wake was gathering.
            gathering = None;
        }
    }
}

/// Sleeps until `at` (never called without one).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// After a task failed without saying which it was: wait for the others, and
/// forget everything taken, so the next fetch sees the store as it is.
async fn rebuild<T: Item>(
    running: &mut JoinSet<(T::Id, T::Lane)>,
    waiting: &mut VecDeque<T>,
    taken: &mut HashSet<T::Id>,
    busy: &mut HashSet<T::Lane>,
) {
    while running.join_next().await.is_some() {}
    waiting.clear();
    taken.clear();
    busy.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Job {
        id: u32,
        lane: u32,
    }

    impl Item for Job {
        type Id = u32;
        type Lane = u32;
        fn id(&self) -> u32 {
            self.id
        }
        fn lane(&self) -> u32 {
            self.lane
        }
    }

    /// 60 jobs in 6 lanes, fetched in small batches with repeats: each runs
    /// exactly once, never more than `concurrency` at once, never two of a lane at
    /// once, and each lane in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_runs_once_within_the_bounds_and_lanes_keep_their_order() {
        sixty_jobs(5, Duration::from_millis(5)).await;
    }

    /// Full batches that repeat what the worker already holds (as a claim may
    /// after a lease lapsed), and no wake after the first and
    /// no poll within the test: the worker still asks again as items end, so
    /// nothing waits for the poll.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_behind_a_full_batch_of_repeats_is_fetched_without_a_wake() {
        sixty_jobs(usize::MAX, Duration::from_secs(3600)).await;
    }

    /// Runs 60 jobs through [`run_lanes`] (concurrency 4, fetches of at most
    /// `cap`) and checks how they ran; all must be done within 30 seconds.
    async fn sixty_jobs(cap: usize, poll: Duration) {
        let pending: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new((0..60).collect()));
        let ran: Arc<Mutex<Vec<(u32, u32)>>> = Arc::new(Mutex::new(Vec::new()));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let lanes_now: Arc<Mutex<HashSet<u32>>> = Arc::default();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let done_tx = Arc::new(Mutex::new(Some(done_tx)));
        let config = LaneConfig {
            name: "test",
            concurrency: 4,
            poll,
        };
        let fetch = {
            let pending = Arc::clone(&pending);
            move |room: usize| {
                // Hands out the oldest undone jobs, again and again until done (as
                // a store whose claims lapsed would).
                let batch: Vec<Job> = pending
                    .lock()
                    .unwrap()
                    .iter()
                    .take(room.min(cap))
                    .map(|&id| Job { id, lane: id % 6 })
                    .collect();
                async move { Ok(batch) }
            }
        };
        let work = {
            let (pending, ran, now, most, lanes_now) = (pending, Arc::clone(&ran), now, Arc::clone(&most), lanes_now);
            move |job: Job| {
                let (pending, ran, now, most, lanes_now, done_tx) = (
                    Arc::clone(&pending),
                    Arc::clone(&ran),
                    Arc::clone(&now),
                    Arc::clone(&most),
                    Arc::clone(&lanes_now),
                    Arc::clone(&done_tx),
                );
                async move {
                    assert!(
                        lanes_now.lock().unwrap().insert(job.lane),
                        "two jobs of lane {} at once",
                        job.lane
                    );
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    ran.lock().unwrap().push((job.lane, job.id));
                    now.fetch_sub(1, Ordering::SeqCst);
                    lanes_now.lock().unwrap().remove(&job.lane);
                    let mut pending = pending.lock().unwrap();
                    pending.retain(|&id| id != job.id);
                    if pending.is_empty()
                        && let Some(tx) = done_tx.lock().unwrap().take()
                    {
                        let _ = tx.send(());
                    }
                }
            }
        };
        let runner = tokio::spawn(run_lanes(config, Arc::new(Notify::new()), fetch, work));
        tokio::time::timeout(Duration::from_secs(30), done_rx)
            .await
            .unwrap()
            .unwrap();
        runner.abort();
        let ran = ran.lock().unwrap().clone();
        let mut ids: Vec<u32> = ran.iter().map(|&(_, id)| id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..60).collect::<Vec<_>>(), "each job exactly once");
        assert!(most.load(Ordering::SeqCst) <= 4, "at most 4 at once");
        assert!(most.load(Ordering::SeqCst) >= 2, "jobs ran side by side");
        for lane in 0..6 {
            let order: Vec<u32> = ran.iter().filter(|(l, _)| *l == lane).map(|&(_, id)| id).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(order, sorted, "lane {lane} in order");
        }
    }

    /// Work that arrives while the worker is busy, announced by a wake and
    /// nothing else (the poll is an hour off): the wake waits to gather
    /// others, then the work is fetched and runs while the first item still
    /// runs. Each wake is answered; none is lost while gathering.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wake_while_busy_is_answered_after_gathering_not_at_the_poll() {
        let pending: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(vec![0]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
        let (ran_tx, mut ran_rx) = tokio::sync::mpsc::unbounded_channel();
        let config = LaneConfig {
            name: "test",
            concurrency: 4,
            poll: Duration::from_secs(3600),
        };
        let fetch = {
            let (pending, fetches) = (Arc::clone(&pending), Arc::clone(&fetches));
            move |room: usize| {
                fetches.fetch_add(1, Ordering::SeqCst);
                // Claimed: handed out once.
                let batch: Vec<Job> = {
                    let mut pending = pending.lock().unwrap();
                    let n = room.min(pending.len());
                    pending.drain(..n).map(|id| Job { id, lane: id }).collect()
                };
                async move { Ok(batch) }
            }
        };
        let work = move |job: Job| {
            let (release_rx, ran_tx) = (Arc::clone(&release_rx), ran_tx.clone());
            async move {
                if job.id == 0 {
                    // The long item: runs until the test lets it go.
                    let rx = release_rx.lock().await.take().unwrap();
                    let _ = rx.await;
                }
                ran_tx.send(job.id).unwrap();
            }
        };
        let wake = Arc::new(Notify::new());
        let runner = tokio::spawn(run_lanes(config, Arc::clone(&wake), fetch, work));
        while fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for id in 1..=5 {
            pending.lock().unwrap().push(id);
            wake.notify_one();
            let ran = tokio::time::timeout(Duration::from_secs(10), ran_rx.recv()).await;
            assert_eq!(ran.unwrap(), Some(id), "fetched on the wake while item 0 runs");
        }
        release_tx.send(()).unwrap();
        assert_eq!(ran_rx.recv().await, Some(0));
        runner.abort();
    }
}
