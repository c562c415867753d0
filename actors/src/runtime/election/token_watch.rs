//! The liveliness subscribers that tell a [`Leadership`] which leader and candidate tokens come
//! and go: declared with history, so the tokens already alive arrive first as appearances.

use super::rules::TokenKind;
use super::{Leadership, TokenEvent, Watching};
use actix::prelude::*;
use anyhow::{anyhow, Result};
use quantpipe_messages::Keys;
use zenoh::pubsub::Subscriber;
use zenoh::sample::SampleKind;
use zenoh::{Session, Wait};

/// The two subscribers; dropping this stops the events.
pub struct TokenWatch {
    _leaders: Subscriber<()>,
    _candidates: Subscriber<()>,
}

/// Starts telling `to` about the leader and candidate tokens. Call off the arbiter (zenoh's
/// blocking declarations refuse a current-thread runtime).
pub fn watch_tokens(session: Session, keys: Keys, to: Addr<Leadership>) -> Result<TokenWatch> {
    let watch = TokenWatch {
        _leaders: subscribe(&session, &keys, TokenKind::Leader, to.clone())?,
        _candidates: subscribe(&session, &keys, TokenKind::Candidate, to.clone())?,
    };
    to.do_send(Watching);
    Ok(watch)
}

fn subscribe(
    session: &Session,
    keys: &Keys,
    kind: TokenKind,
    to: Addr<Leadership>,
) -> Result<Subscriber<()>> {
    let selector = match kind {
        TokenKind::Leader => keys.leaders(),
        TokenKind::Candidate => keys.candidates(),
    };
    let k = keys.clone();
    session
        .liveliness()
        .declare_subscriber(selector.clone())
        .history(true)
        .callback(move |sample| {
            let Some(name) = k.token_name(kind.segment(), sample.key_expr().as_str()) else {
                return;
            };
            to.do_send(TokenEvent {
                kind,
                name: name.to_owned(),
                alive: sample.kind() == SampleKind::Put,
            });
        })
        .wait()
        .map_err(|e| anyhow!("watching the tokens {selector}: {e}"))
}
