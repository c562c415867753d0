//! [`FleetClient`]: the handle callers share; it owns the zenoh session, the loop thread and
//! the plan feed, and prepares items in the callers' threads.

use crate::item::{Item, SubmitError};
use crate::model::{read_config, ModelInfo};
use crate::options::ServiceOptions;
use crate::plan_feed::feed_plans;
use crate::prepare::Preparer;
use crate::service_loop::{ServiceLoop, Wake, STAGE0_WAIT};
use crate::snapshot::ServiceSnapshot;
use crate::state::State;
use crate::submitted::Submitted;
use anyhow::{anyhow, Context as _, Result};
use quantpipe_actors::runtime::client::{node_stats, Event, PlanWatch, Stage0};
use quantpipe_actors::runtime::config::Settings;
use quantpipe_actors::runtime::transport::unix_ns;
use quantpipe_batching::{BatchConfig, ResendRule};
use quantpipe_messages::{Keys, NodeStats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::pubsub::Subscriber;
use zenoh::{Session, Wait};

/// The latest deadline a request may have (a century: "no deadline").
const FARTHEST_DEADLINE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A connection to a fleet, shared by many callers (cloning shares it).
#[derive(Clone)]
pub struct FleetClient {
    inner: Arc<Inner>,
}

struct Inner {
    model: ModelInfo,
    options: ServiceOptions,
    preparer: Preparer,
    state: Arc<Mutex<State>>,
    keys: Keys,
    session: Session,
    loop_tx: Sender<Wake>,
    threads: Mutex<Option<Threads>>,
}

/// What runs beside the callers, stopped once.
struct Threads {
    service: JoinHandle<()>,
    plans: JoinHandle<()>,
    stop_plans: Arc<AtomicBool>,
    nudge_plans: Sender<Event>,
    _results: Subscriber<()>,
}

impl FleetClient {
    /// Opens a zenoh session from `settings`, waits for the leader's plan
    /// (`settings.client.plan_wait_s`) and for stage 0 to listen, and starts the loop.
    pub fn connect(settings: &Settings, options: ServiceOptions) -> Result<FleetClient> {
        let session = zenoh::open(settings.zenoh_config()?)
            .wait()
            .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
        Self::start(session.clone(), settings, options).inspect_err(|_| {
            if let Err(e) = session.close().wait() {
                tracing::warn!("closing the zenoh session: {e}");
            }
        })
    }

    fn start(
        session: Session,
        settings: &Settings,
        options: ServiceOptions,
    ) -> Result<FleetClient> {
        let keys = Keys::new(&settings.fleet);
        let config = read_config(&settings.model_dir)?;
        let max_tokens = options.max_tokens.unwrap_or(settings.client.max_len);
        let model = ModelInfo::read(&settings.model_dir, &options, max_tokens)?;
        let preparer = Preparer::new(&settings.model_dir, &config, &model)?;

        let (loop_tx, wakes) = channel();
        let results = {
            let tx = loop_tx.clone();
            session
                .declare_subscriber(keys.result(&settings.name))
                .callback(move |s| {
                    let _ = tx.send(Wake::Result(s.payload().to_bytes().into_owned()));
                })
                .wait()
                .map_err(|e| anyhow!("subscribing to results: {e}"))?
        };
        let watch = PlanWatch::declare(&session, &keys)?;
        let plan_wait = Duration::from_secs_f64(settings.client.plan_wait_s);
        let plan = watch.next(Instant::now() + plan_wait)?.ok_or_else(|| {
            anyhow!(
                "no plan from the leader of fleet {} within {plan_wait:?}: is the leader up and \
                 are the expected nodes alive?",
                keys.fleet
            )
        })?;
        let stage0 = Stage0::declare(&session, &keys, &settings.name)?;
        stage0.wait_listening(STAGE0_WAIT)?;
        tracing::info!(
            "serving {} at plan epoch {} ({} stage(s), microbatches of {})",
            model.name,
            plan.epoch,
            plan.stages.len(),
            plan.ubatch
        );

        let state = Arc::new(Mutex::new(State::new(
            plan,
            BatchConfig {
                ubatch: 1,
                max_delay: options.max_delay,
                capacity: options.queue_items.max(1),
            },
            ResendRule::within(Duration::from_secs_f64(settings.client.result_timeout_s)),
            settings.client.window,
        )));
        let service = ServiceLoop {
            state: state.clone(),
            wakes,
            stage0,
            fleet: settings.fleet.clone(),
            client: settings.name.clone(),
            run: unix_ns() ^ ((std::process::id() as u64) << 32),
            window: settings.client.window,
            pixel_shape: model.image_shape,
        };
        let service = std::thread::Builder::new()
            .name("qp-service".into())
            .spawn(move || service.run())
            .context("starting the service loop")?;
        let stop_plans = Arc::new(AtomicBool::new(false));
        let nudge_plans = watch.sender();
        let plans = {
            let (tx, stop) = (loop_tx.clone(), stop_plans.clone());
            let stall = Duration::from_secs_f64(settings.client.stall_s.max(0.1));
            std::thread::Builder::new()
                .name("qp-plans".into())
                .spawn(move || feed_plans(watch, tx, stall, stop))
                .context("starting the plan feed")?
        };
        Ok(FleetClient {
            inner: Arc::new(Inner {
                model,
                options,
                preparer,
                state,
                keys,
                session,
                loop_tx,
                threads: Mutex::new(Some(Threads {
                    service,
                    plans,
                    stop_plans,
                    nudge_plans,
                    _results: results,
                })),
            }),
        })
    }

    /// What the fleet serves.
    pub fn model(&self) -> &ModelInfo {
        &self.inner.model
    }

    /// Validates and preprocesses every item (in the caller's thread: a bad item never reaches
    /// a stage), then queues them all or none. `deadline`: `None` = `options.default_deadline`.
    pub fn submit(
        &self,
        items: Vec<Item>,
        deadline: Option<Duration>,
    ) -> Result<Submitted, SubmitError> {
        let inputs = self.inner.preparer.prepare(items)?;
        let now = Instant::now();
        let deadline = deadline_at(now, deadline.unwrap_or(self.inner.options.default_deadline));
        let results = self.inner.lock().admit(inputs, now, deadline)?;
        self.inner
            .loop_tx
            .send(Wake::Submitted)
            .map_err(|_| SubmitError::Unavailable("the service loop stopped".into()))?;
        Ok(Submitted { results })
    }

    /// The service's figures now.
    pub fn snapshot(&self) -> ServiceSnapshot {
        self.inner.lock().snapshot()
    }

    /// Stats of every node of the current plan (nodes that do not answer within `limit` are
    /// left out).
    pub fn node_stats(&self, limit: Duration) -> Vec<NodeStats> {
        let nodes: Vec<String> = {
            let s = self.inner.lock();
            s.plan().stages.iter().map(|st| st.node.clone()).collect()
        };
        nodes
            .iter()
            .filter_map(|node| {
                node_stats(&self.inner.session, &self.inner.keys, node, limit)
                    .map_err(|e| tracing::debug!("stats of {node}: {e:#}"))
                    .ok()
            })
            .collect()
    }

    /// Stops the loop (for every clone of this handle); items still waiting get
    /// [`ItemError::Closed`](crate::ItemError::Closed).
    pub fn close(self) {
        self.inner.stop();
    }
}

/// The instant `wait` after `now`; a wait past what an `Instant` holds (a caller's "never") is
/// capped rather than a panic.
fn deadline_at(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .unwrap_or_else(|| now + FARTHEST_DEADLINE)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the loop, then the plan feed, then the session; later calls do nothing.
    fn stop(&self) {
        let Some(t) = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let _ = self.loop_tx.send(Wake::Stop);
        if t.service.join().is_err() {
            tracing::warn!("the service loop panicked");
        }
        // Answers anything admitted after the loop's last look.
        self.lock().close();
        t.stop_plans.store(true, Ordering::Release);
        let _ = t.nudge_plans.send(Event::Result(Vec::new()));
        if t.plans.join().is_err() {
            tracing::warn!("the plan feed panicked");
        }
        drop(t._results);
        if let Err(e) = self.session.close().wait() {
            tracing::warn!("closing the zenoh session: {e}");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_can_be_shared_between_threads() {
        fn shared<T: Send + Sync + Clone>() {}
        shared::<FleetClient>();
    }

    #[test]
    fn a_deadline_past_what_an_instant_holds_is_capped() {
        let now = Instant::now();
        assert_eq!(deadline_at(now, Duration::MAX), now + FARTHEST_DEADLINE);
        assert_eq!(
            deadline_at(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
