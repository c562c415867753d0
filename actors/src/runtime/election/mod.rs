//! Leader election among `candidate` nodes: a fleet with no configured leader (or whose leader
//! died) elects one.
//!
//! A candidate holds the liveliness token `qp/<fleet>/candidate/<name>`; whoever hosts the
//! planner holds `qp/<fleet>/leader/<name>`. Liveliness subscribers on both token sets, declared
//! with history ([`watch_tokens`]), tell the [`Leadership`] actor each token that comes or goes;
//! it applies [`crate::runtime::membership::elected`] ([`rules`]): when this candidate has been
//! the elected one for [`SETTLE`] (a timer, restarted by any break) it starts the planner
//! ([`start_leading`]), whose first plan gets an epoch above the one the stages run; when a
//! configured leader (or a smaller-named candidate that claimed at the same moment) leads, it
//! steps down.

pub mod rules;
mod token_watch;

pub use rules::{next_step, Observed, Settle, Step, TokenKind, SETTLE};
pub use token_watch::{watch_tokens, TokenWatch};

use crate::runtime::config::LeaderSettings;
use crate::runtime::planner_actor::{start_leading, Leading};
use actix::prelude::*;
use quantpipe_messages::Keys;
use std::time::Instant;
use zenoh::Session;

/// A candidate's view of who leads; hosts the planner while this candidate leads.
pub struct Leadership {
    session: Session,
    keys: Keys,
    name: String,
    settings: LeaderSettings,
    /// The hosted planner while this candidate leads.
    planner: Option<Leading>,
    seen: Observed,
    settle: Settle,
    /// The look due when the settle period ends, while one is set.
    look_again: Option<SpawnHandle>,
}

impl Leadership {
    pub fn new(session: Session, keys: Keys, name: String, settings: LeaderSettings) -> Self {
        Leadership {
            session,
            keys,
            name,
            settings,
            planner: None,
            seen: Observed::default(),
            settle: Settle::new(SETTLE),
            look_again: None,
        }
    }

    /// Applies [`next_step`] to what is seen now; while a settle period runs, looks again when
    /// it ends.
    fn look(&mut self, ctx: &mut Context<Self>) {
        let leading = self.planner.is_some();
        let now = Instant::now();
        match next_step(
            &self.name,
            leading,
            self.seen.clone(),
            &mut self.settle,
            now,
        ) {
            Step::Stay => {}
            Step::Lead => self.lead(),
            Step::StepDown => self.step_down(),
        }
        if let (None, Some(due)) = (&self.look_again, self.settle.due()) {
            let wait = due.saturating_duration_since(now);
            self.look_again = Some(ctx.run_later(wait, |act, ctx| {
                act.look_again = None;
                act.look(ctx);
            }));
        }
    }

    fn lead(&mut self) {
        tracing::warn!(
            "{} elected leader (leaders {:?}; candidates {:?})",
            self.name,
            self.seen.leaders,
            self.seen.candidates
        );
        self.planner = Some(start_leading(
            self.session.clone(),
            self.keys.clone(),
            self.name.clone(),
            self.settings.clone(),
        ));
    }

    fn step_down(&mut self) {
        tracing::warn!(
            "{} stops leading: leaders {:?} are alive",
            self.name,
            self.seen.leaders
        );
        if let Some(leading) = self.planner.take() {
            leading.step_down();
        }
    }
}

impl Actor for Leadership {
    type Context = Context<Self>;
}

/// A leader or candidate token appeared (`alive`) or went.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct TokenEvent {
    pub kind: TokenKind,
    pub name: String,
    pub alive: bool,
}

impl Handler<TokenEvent> for Leadership {
    type Result = ();
    fn handle(&mut self, ev: TokenEvent, ctx: &mut Context<Self>) {
        self.seen.apply(ev.kind, &ev.name, ev.alive);
        self.look(ctx);
    }
}

/// The token subscribers are declared: from now on this candidate may be elected.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Watching;

impl Handler<Watching> for Leadership {
    type Result = ();
    fn handle(&mut self, _: Watching, ctx: &mut Context<Self>) {
        self.look(ctx);
    }
}
