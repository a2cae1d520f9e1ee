//! A team of threads for the model's parallel loops.
//!
//! Decoding one token runs about 150 short parallel loops (a few matrix
//! products and the attention of each layer), each a few tens of microseconds
//! long. A general-purpose pool puts its idle threads to sleep between them
//! and pays a wake-up each time (measured here: about a tenth of decoding
//! time in the scheduler). The team's threads instead spin for a short while
//! after each loop, as llama.cpp's do, and only then sleep, so the model keeps
//! its cores while it is generating and gives them back when it is idle.
//!
//! Soundness. [`Team::run`] hands its members a borrowed closure through a
//! pointer whose lifetime is erased, so it must not return while a member
//! may still call it. It takes `&mut self`: the borrow checker then proves
//! that one `run` at a time uses the shared state (the pointer, the task
//! counters, `done`), so the `done` count it waits for counts only its own
//! members' passes. (With `&self` on a `Sync` team, two threads could run at
//! once, each overwrite the other's closure and counters, and one return
//! while a member still ran its freed closure.) A member takes the pointer
//! only after it sees the loop's epoch, and signals `done` only after its
//! last call, with release ordering that `run`'s acquiring wait pairs with.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle member spins before it sleeps.
const SPIN: Duration = Duration::from_micros(300);

type Task = dyn Fn(usize) + Sync;

struct Shared {
    /// Bumped for every loop (and at shutdown); members wait for it to change.
    epoch: AtomicUsize,
    /// The loop's body, valid from the epoch's bump until every member is done.
    task: Mutex<Option<TaskPtr>>,
    tasks: AtomicUsize,
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

/// The closure of the loop in progress, its lifetime erased.
#[derive(Clone, Copy)]
struct TaskPtr(*const Task);
// SAFETY: sending the pointer to a member shares the closure with it, which
// is sound because the closure is `Sync` (`Task` requires it), and it is only
// dereferenced while `run` keeps the closure alive (see the module's notes).
unsafe impl Send for TaskPtr {}

pub struct Team {
    shared: Arc<Shared>,
    members: Vec<JoinHandle<()>>,
}

impl Team {
    /// A team of `size` threads in all: the caller of [`Team::run`] and `size - 1` members.
    pub fn new(size: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            task: Mutex::new(None),
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let members = (1..size.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("wick-model-{i}"))
                    .spawn(move || member(&shared))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { shared, members })
    }

    pub fn size(&self) -> usize {
        self.members.len() + 1
    }

    /// Calls `f(0)` … `f(n - 1)`, spread over the team, and returns when all
    /// are done (also when `f` panics: then it panics too, after the members).
    ///
    /// `&mut self` is what makes this sound: see the module's notes.
    pub fn run(&mut self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        if self.members.is_empty() || n <= 1 {
            (0..n).for_each(f);
            return;
        }
        // SAFETY: only the lifetime changes (same type, same layout). The
        // erased reference is shared with the members only until they have
        // all counted themselves `done` below, which this function waits for
        // (even if `f` panics) before it returns and `f`'s borrow ends; and
        // `&mut self` keeps any other `run` from reusing the slot meanwhile.
        let erased: *const Task =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Task>(f) };
        *s.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(TaskPtr(erased));
        s.tasks.store(n, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        s.done.store(0, Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        // The members use `f` until they are done: wait for them even if a task panics here.
        let mine = catch_unwind(AssertUnwindSafe(|| work(s, f)));
        while s.done.load(Ordering::Acquire) < self.members.len() {
            std::hint::spin_loop();
        }
        *s.task.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let theirs = s.panicked.swap(false, Ordering::Relaxed);
        if let Err(panic) = mine {
            std::panic::resume_unwind(panic);
        }
        if theirs {
            panic!("a model thread panicked");
        }
    }
}

/// Takes tasks until none are left.
fn work(s: &Shared, f: &(dyn Fn(usize) + Sync + '_)) {
    let n = s.tasks.load(Ordering::Relaxed);
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        f(i);
    }
}

fn member(s: &Shared) {
    let mut seen = 0;
    loop {
        // Spin, then sleep, until the next loop (or shutdown).
        let started = Instant::now();
        let mut spins = 0u32;
        while s.epoch.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && started.elapsed() > SPIN {
                let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while s.epoch.load(Ordering::SeqCst) == seen {
                    guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        }
        seen = s.epoch.load(Ordering::Acquire);
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        let task = *s.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(TaskPtr(f)) = task {
            // SAFETY: `run` stored this pointer before bumping the epoch we
            // saw, and keeps the closure alive until `done` counts this
            // member, which happens only after its last call below.
            let f = unsafe { &*f };
            if catch_unwind(AssertUnwindSafe(|| work(s, f))).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for m in self.members.drain(..) {
            let _ = m.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_loops() {
        let mut team = Team::new(3).unwrap();
        for round in 0..2000 {
            let n = round % 17;
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            team.run(n, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "round {round}"
            );
        }
    }

    #[test]
    fn members_wake_after_sleeping() {
        let mut team = Team::new(2).unwrap();
        std::thread::sleep(SPIN * 4);
        let sum = AtomicUsize::new(0);
        team.run(100, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 4950);
    }

    #[test]
    fn a_panicking_task_is_reported_to_the_caller() {
        let mut team = Team::new(2).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            team.run(64, &|i| assert!(i != 40, "task 40"));
        }));
        assert!(result.is_err());
        // The team still works afterwards.
        let count = AtomicUsize::new(0);
        team.run(10, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }
}
