//! One outgoing link's bitwidth choice on a node: a [`Policy`] whose size table follows the
//! shapes the stage actually sends.
//!
//! The policy budgets bytes per message, so it needs the exact payload size at each bitwidth;
//! that depends on the shapes crossing the cut (the microbatch's items, a text batch's sequence
//! length), which a node only learns from its first output. The table is therefore built at
//! the first message and rebuilt whenever the shapes change, keeping what the policy learnt
//! about the link. Observations that arrive before any message (there can be none: they are
//! acknowledgements of messages) are ignored.

use crate::policy::{
    Policy, PolicyConfig, PolicyKind, TransferRate, WindowChoice, WindowObservation,
};
use crate::sizes::{allowed_bits, SizeTable};
use quantpipe_messages::Bits;

#[derive(Debug, Clone)]
pub struct LinkPolicy {
    cfg: PolicyConfig,
    policy: Option<Policy>,
    shapes: Vec<Vec<usize>>,
}

impl LinkPolicy {
    /// A link's policy; `cfg.items_per_message` is replaced by each message's own item count.
    /// For `fixed`, `min_bits` is irrelevant and lowered to `max_bits` where it is above it.
    pub fn new(mut cfg: PolicyConfig) -> Result<Self, String> {
        if cfg.kind == PolicyKind::Fixed && cfg.min_bits.get() > cfg.max_bits.get() {
            cfg.min_bits = cfg.max_bits;
        }
        cfg.validate()?;
        Ok(LinkPolicy {
            cfg,
            policy: None,
            shapes: Vec::new(),
        })
    }

    pub fn kind(&self) -> PolicyKind {
        self.cfg.kind
    }

    /// The bitwidth of the next message, whose tensors have `shapes` (first dimension: items).
    pub fn bits_for(&mut self, shapes: &[Vec<usize>]) -> Result<Bits, String> {
        if self.cfg.kind == PolicyKind::Fixed {
            return Ok(self.cfg.max_bits);
        }
        if self.policy.is_none() || shapes != self.shapes.as_slice() {
            let items = shapes
                .first()
                .and_then(|s| s.first())
                .copied()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("no items in a message of shapes {shapes:?}"))?;
            let sizes = SizeTable::from_shapes(
                shapes,
                &allowed_bits(self.cfg.min_bits, self.cfg.max_bits),
            )?;
            match &mut self.policy {
                Some(p) => p.set_sizes(sizes, items as f64)?,
                None => {
                    let mut cfg = self.cfg.clone();
                    cfg.items_per_message = items as f64;
                    self.policy = Some(Policy::new(cfg, sizes)?);
                }
            }
            self.shapes = shapes.to_vec();
        }
        Ok(self.policy.as_mut().expect("built above").next_bits())
    }

    /// One message's transfer, as soon as its arrival is known.
    pub fn on_transfer(&mut self, t: TransferRate) -> Option<WindowChoice> {
        self.policy.as_mut().map(|p| p.on_transfer(t))
    }

    /// A closed measurement window.
    pub fn on_window(&mut self, obs: WindowObservation) -> Option<WindowChoice> {
        self.policy.as_mut().map(|p| p.on_window(obs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: PolicyKind, max: u8, min: u8) -> PolicyConfig {
        PolicyConfig {
            kind,
            max_bits: Bits::new(max).unwrap(),
            min_bits: Bits::new(min).unwrap(),
            target_items_per_s: 10.0,
            items_per_message: 1.0,
            window_s: 1.0,
        }
    }

    #[test]
    fn fixed_sends_the_plan_bitwidth_whatever_min_bits_says() {
        let mut l = LinkPolicy::new(cfg(PolicyKind::Fixed, 4, 6)).unwrap();
        assert_eq!(l.bits_for(&[vec![8, 10]]).unwrap().get(), 4);
        assert!(l.on_window(WindowObservation::default()).is_none());
    }

    #[test]
    fn adaptive_sizes_follow_the_shapes_sent() {
        let mut l = LinkPolicy::new(cfg(PolicyKind::Heuristic, 32, 2)).unwrap();
        let t = TransferRate {
            mbps: 1.0,
            at_s: 0.0,
            queued: true,
            items: 1,
        };
        assert!(l.on_transfer(t).is_none(), "nothing sent yet");
        // Before any measurement, the highest bitwidth.
        assert_eq!(l.bits_for(&[vec![4, 1000]]).unwrap(), Bits::RAW);
        // 4 items of 1000 values at 10 items/s: a 0.4 s budget. At 0.2 Mbit/s that is 10 kB,
        // which 16-bit codes (8 kB + headers) fit and raw f32 (16 kB) does not.
        let c = l
            .on_window(WindowObservation {
                mbps: Some(0.2),
                utilisation: 1.0,
                items_per_s: 10.0,
                probes_only: false,
            })
            .unwrap();
        assert_eq!(c.lo.get(), 16);
        // Half the items per message: half the budget and half the sizes, the same choice.
        assert_eq!(l.bits_for(&[vec![2, 1000]]).unwrap().get(), 16);
        // Longer rows (2000 values) at 4 items: double the size, same 10 kB budget: 9-bit
        // codes (9 kB + headers) fit, 10-bit ones (10 kB + headers) do not.
        assert_eq!(l.bits_for(&[vec![4, 2000]]).unwrap().get(), 9);
        assert!(l.bits_for(&[vec![0, 10]]).unwrap_err().contains("no items"));
    }

    #[test]
    fn adaptive_policies_refuse_a_plan_bitwidth_below_min_bits() {
        let err = LinkPolicy::new(cfg(PolicyKind::Controller, 4, 6)).unwrap_err();
        assert!(err.contains("min_bits 6"), "{err}");
    }
}
