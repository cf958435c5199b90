//! A queue's `global_budget`, held by its claims: the units charged in the window are the
//! `taskrunner_charges` rows younger than it (older ones are deleted first); a claim picks
//! its candidates in claim order and takes them while their estimates fit what is left
//! ([`plan`]), claims exactly those (by id), and stores each estimate as its attempt's row,
//! at the claim's time. All inside the claim's transaction, under the lock the claim's
//! global limits take (SQLite's one writer, PostgreSQL's advisory lock on the queue).

mod claim;
pub(crate) use claim::{
    charges_in_window, claim_budgeted, claim_picked, insert_charges, prune_charges, refuse_runs,
};

/// A run a budgeted claim may take: its id, its estimate (0 without one) and whether it
/// resumes after a wait (its first claim reserved its estimate: a wait reserves nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) id: i64,
    pub(crate) cost: i64,
    pub(crate) resumed: bool,
}

/// What a budgeted claim does with its candidates.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The runs it claims, each with the units it reserves.
    pub(crate) claim: Vec<(i64, i64)>,
    /// The runs whose estimate is more than the whole budget: they could never start, so
    /// they fail (and hold nothing back).
    pub(crate) refuse: Vec<i64>,
}

/// Takes `candidates` (in claim order) while each one's estimate fits in `room` (the
/// budget's `units` less what the window holds; negative while a charge above its estimate
/// has taken the window over), stopping at the first that does not fit: it reserves the
/// window, nothing behind it is taken before it (it is never starved by smaller ones). A
/// run without an estimate (or resumed after a wait) fits whenever the window is not over.
pub(crate) fn plan(candidates: &[Candidate], units: i64, mut room: i64) -> Plan {
    let mut plan = Plan::default();
    for c in candidates {
        if !c.resumed && c.cost > units {
            plan.refuse.push(c.id);
            continue;
        }
        let need = if c.resumed { 0 } else { c.cost.max(0) };
        if need > room {
            break;
        }
        room -= need;
        plan.claim.push((c.id, need));
    }
    plan
}

/// The error a run refused by [`plan`] fails with.
pub(crate) fn refused(queue: &str, units: i64) -> String {
    format!(
        "its estimated cost (RunOptions::cost) is more than the whole global budget of queue \
         `{queue}` ({units} units a window), so it could never start: submit it with a lower \
         estimate, or raise the queue's global_budget"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, cost: i64) -> Candidate {
        Candidate {
            id,
            cost,
            resumed: false,
        }
    }

    #[test]
    fn takes_the_prefix_that_fits_and_stops_at_the_first_that_does_not() {
        let runs = [run(1, 40), run(2, 50), run(3, 5)];
        let plan = plan(&runs, 100, 80);
        // 40 fits, 50 does not: 3 (which would fit) waits behind it.
        assert_eq!(plan.claim, vec![(1, 40)]);
        assert!(plan.refuse.is_empty());
    }

    #[test]
    fn an_overshot_window_takes_nothing_not_even_free_runs() {
        let runs = [run(1, 0), run(2, 0)];
        assert!(plan(&runs, 100, -1).claim.is_empty());
        assert_eq!(plan(&runs, 100, 0).claim, vec![(1, 0), (2, 0)]);
    }

    #[test]
    fn an_estimate_over_the_whole_budget_is_refused_and_blocks_nothing() {
        let runs = [run(1, 101), run(2, 100)];
        let plan = plan(&runs, 100, 100);
        assert_eq!(plan.refuse, vec![1]);
        assert_eq!(plan.claim, vec![(2, 100)]);
    }

    #[test]
    fn a_resumed_run_reserves_nothing() {
        let resumed = Candidate {
            id: 1,
            cost: 500,
            resumed: true,
        };
        let plan = plan(&[resumed, run(2, 10)], 100, 10);
        assert_eq!(plan.claim, vec![(1, 0), (2, 10)]);
    }
}
