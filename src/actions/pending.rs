//! Plans that outlive one request: a front end that cannot ask and apply in one step (the web
//! page) keeps the calls a statement planned here, shows them, and applies them when the same
//! person confirms. A plan is applied at most once and only within [`PLAN_LIFETIME`], so a
//! replayed or stale confirmation changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Call, CallResult, Permissions};

pub const PLAN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Plans kept at most; the oldest go first (each is small, but a loop of plan requests must not
/// grow memory without bound).
const MAX_PLANS: usize = 1000;

/// One call of a plan as a person reads it: each input's label with the id it resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    pub number: usize,
    pub action: &'static str,
    /// `(input, label, id)`, in the action's input order.
    pub inputs: Vec<(&'static str, String, Option<String>)>,
    /// Why the call will be `denied` when applied (a disabled step of an offboarding).
    pub denied: Option<String>,
}

impl PlannedCall {
    pub fn new(number: usize, call: &Call, permissions: &Permissions) -> PlannedCall {
        let names = call.def().map(|d| d.inputs).unwrap_or_default();
        let inputs = names
            .iter()
            .zip(&call.args)
            .filter(|(_, arg)| !arg.label.is_empty())
            .map(|(input, arg)| (input.name, arg.label.clone(), arg.id.clone()))
            .collect();
        PlannedCall {
            number,
            action: call.action,
            inputs,
            denied: permissions.refusal(call.action).map(|e| e.to_string()),
        }
    }
}

/// A plan's state, as a front end shows it.
#[derive(Debug, Clone)]
pub enum PlanState {
    Waiting { expires_in: Duration },
    Applied(Vec<CallResult>),
    Expired,
}

#[derive(Debug)]
struct Pending {
    owner: String,
    calls: Vec<(usize, Call)>,
    created: Instant,
    results: Option<Vec<CallResult>>,
}

/// Why a confirmation applies nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no such plan; plan the action again")]
    Unknown,
    #[error("this plan was already applied; nothing was applied again")]
    AlreadyApplied,
    #[error("this plan expired after 10 minutes without confirmation; nothing was applied, plan the action again")]
    Expired,
}

#[derive(Debug, Default)]
pub struct PendingPlans {
    plans: Mutex<HashMap<String, Pending>>,
}

impl PendingPlans {
    /// Keeps `calls` for `owner` (a session); the id names the plan in the confirmation.
    pub fn propose(&self, owner: &str, calls: Vec<(usize, Call)>) -> String {
        let id = crate::listen::random_token();
        let Ok(mut plans) = self.plans.lock() else { return id };
        if plans.len() >= MAX_PLANS
            && let Some(oldest) = plans.iter().min_by_key(|(_, p)| p.created).map(|(k, _)| k.clone())
        {
            plans.remove(&oldest);
        }
        plans.insert(id.clone(), Pending { owner: owner.to_string(), calls, created: Instant::now(), results: None });
        id
    }

    /// The plan's calls and state, for its owner only.
    pub fn show(&self, owner: &str, id: &str) -> Result<(Vec<(usize, Call)>, PlanState), Refusal> {
        let plans = self.plans.lock().map_err(|_| Refusal::Unknown)?;
        let plan = plans.get(id).filter(|p| p.owner == owner).ok_or(Refusal::Unknown)?;
        let state = match &plan.results {
            Some(r) => PlanState::Applied(r.clone()),
            None => match PLAN_LIFETIME.checked_sub(plan.created.elapsed()) {
                Some(left) => PlanState::Waiting { expires_in: left },
                None => PlanState::Expired,
            },
        };
        Ok((plan.calls.clone(), state))
    }

    /// Takes the plan for applying: it can be taken once, by its owner, before it expires.
    pub fn take(&self, owner: &str, id: &str) -> Result<Vec<(usize, Call)>, Refusal> {
        let mut plans = self.plans.lock().map_err(|_| Refusal::Unknown)?;
        let plan = plans.get_mut(id).filter(|p| p.owner == owner).ok_or(Refusal::Unknown)?;
        if plan.results.is_some() {
            return Err(Refusal::AlreadyApplied);
        }
        if plan.created.elapsed() > PLAN_LIFETIME {
            return Err(Refusal::Expired);
        }
        // Marked applied before anything runs, so a second confirmation racing this one is refused.
        plan.results = Some(Vec::new());
        Ok(plan.calls.clone())
    }

    /// What applying the plan gave, shown when its page is opened again.
    pub fn record(&self, id: &str, results: Vec<CallResult>) {
        if let Ok(mut plans) = self.plans.lock()
            && let Some(plan) = plans.get_mut(id)
        {
            plan.results = Some(results);
        }
    }

    #[doc(hidden)]
    /// Ages every plan by `by` (tests of expiry).
    pub fn age_all(&self, by: Duration) {
        if let Ok(mut plans) = self.plans.lock() {
            for p in plans.values_mut() {
                p.created = p.created.checked_sub(by).unwrap_or(p.created);
            }
        }
    }
}
