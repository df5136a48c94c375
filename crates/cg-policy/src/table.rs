//! [`DecisionTable`]: decisions memoised per attribute tuple. Cedar runs once per distinct
//! tuple; every further item with the same tuple costs one hash lookup.

use rustc_hash::FxHashMap;

use crate::engine::{Decided, EvalContext, Policy, most_protective};
use crate::facts::{ItemFacts, Tuple};

/// A memo of decisions for one policy, purpose and cut-off.
#[derive(Debug)]
pub struct DecisionTable<'p> {
    policy: &'p Policy,
    ctx: EvalContext,
    index: FxHashMap<u64, u32>,
    decided: Vec<Decided>,
}

impl<'p> DecisionTable<'p> {
    /// An empty table.
    pub fn new(policy: &'p Policy, ctx: EvalContext) -> DecisionTable<'p> {
        DecisionTable {
            policy,
            ctx,
            index: FxHashMap::default(),
            decided: Vec::new(),
        }
    }

    /// The context the table decides in.
    pub fn context(&self) -> &EvalContext {
        &self.ctx
    }

    /// The id of the decision for a tuple key, evaluating it on first sight.
    pub fn id_for_tuple(&mut self, tuple: &Tuple) -> u32 {
        let key = tuple.key();
        if let Some(id) = self.index.get(&key) {
            return *id;
        }
        let d = self.policy.evaluate_tuple(tuple, &self.ctx.purpose);
        let id = self.decided.len() as u32;
        self.decided.push(d);
        self.index.insert(key, id);
        id
    }

    /// Looks a key up without evaluating (the hot path once the table is filled).
    #[inline]
    pub fn lookup(&self, key: u64) -> Option<u32> {
        self.index.get(&key).copied()
    }

    /// The decision with `id`.
    pub fn get(&self, id: u32) -> Option<&Decided> {
        self.decided.get(id as usize)
    }

    /// Decides an item (the most protective over its residences).
    pub fn decide(&mut self, item: &ItemFacts<'_>) -> Decided {
        match self.policy.tuples(item, &self.ctx) {
            Err(v) => Decided {
                verdict: v,
                policies: Vec::new(),
            },
            Ok(tuples) => {
                let ids: Vec<u32> = tuples.iter().map(|t| self.id_for_tuple(t)).collect();
                if ids.len() == 1 {
                    return self.decided[ids[0] as usize].clone();
                }
                most_protective(
                    ids.iter()
                        .map(|i| self.decided[*i as usize].clone())
                        .collect(),
                )
            }
        }
    }

    /// Distinct tuples evaluated so far.
    pub fn len(&self) -> usize {
        self.decided.len()
    }

    /// Whether nothing was evaluated yet.
    pub fn is_empty(&self) -> bool {
        self.decided.is_empty()
    }
}
