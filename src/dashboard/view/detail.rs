//! What one run's page adds to its record: what it waits for, its children, its attempts as
//! the run's event log recorded them, and the first events of that log.

use serde::Serialize;

use super::{lower, time};
use crate::dashboard::failure::Failure;
use crate::dashboard::App;
use crate::store::{RunFilter, RunId, WaitingFor};
use crate::{RunEvent, RunEventKind};

/// The most children a run's page lists (the rest: `runs?parent={id}`).
pub(crate) const CHILDREN_SHOWN: u32 = 50;
/// The most events of a run's log its page renders (the live stream goes on from there).
pub(crate) const EVENTS_SHOWN: i64 = 200;
/// The most status changes and attempts a run's history shows.
const HISTORY_SHOWN: i64 = 200;

/// What a waiting run waits for.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Waiting {
    /// A signal of this name, until the deadline.
    Signal { name: String, deadline: String },
    /// A durable sleep.
    Sleep { until: String },
    /// Its children to end.
    Children { left: u32 },
    /// Something this dashboard does not know yet.
    Other { what: String },
}

impl Waiting {
    pub(crate) fn of(w: WaitingFor) -> Waiting {
        match w {
            WaitingFor::Signal { name, deadline } => Waiting::Signal {
                name,
                deadline: time(deadline),
            },
            WaitingFor::Sleep { until } => Waiting::Sleep { until: time(until) },
            WaitingFor::Children { left } => Waiting::Children { left },
            // A kind added after this dashboard was written.
            #[allow(unreachable_patterns)]
            other => Waiting::Other {
                what: format!("{other:?}"),
            },
        }
    }

    /// One line for a person.
    pub(crate) fn describe(&self) -> String {
        match self {
            Waiting::Signal { name, deadline } => {
                format!("the signal `{name}` (until {deadline})")
            }
            Waiting::Sleep { until } => format!("a durable sleep until {until}"),
            Waiting::Children { left } => format!("{left} child run(s) to end"),
            Waiting::Other { what } => what.clone(),
        }
    }
}

/// A child run, as its parent's page lists it.
#[derive(Debug, Serialize)]
pub(crate) struct Child {
    pub(crate) id: RunId,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) created_at: String,
    pub(crate) finished_at: Option<String>,
}

/// One event of a run's log, as the page and the event stream show it.
#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    pub(crate) offset: u64,
    pub(crate) at: String,
    /// `emitted`, `status`, `retrying` or `other`.
    pub(crate) kind: &'static str,
    /// An emit's topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) topic: Option<String>,
    /// An emit's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<serde_json::Value>,
    /// An `emit_live` (not stored: it has no offset of its own).
    pub(crate) live: bool,
    /// A status change's new status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<String>,
    /// A new attempt's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) attempt: Option<u32>,
    /// A new attempt's: the error the attempt before it failed with, if the store has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The run ended with this event: nothing follows.
    pub(crate) terminal: bool,
    /// One line for a person.
    pub(crate) text: String,
}

impl EventView {
    pub(crate) fn of(event: &RunEvent) -> EventView {
        let mut view = EventView {
            offset: event.offset,
            at: time(event.at),
            kind: "other",
            topic: None,
            value: None,
            live: false,
            status: None,
            attempt: None,
            error: None,
            terminal: event.is_terminal(),
            text: String::new(),
        };
        match &event.kind {
            RunEventKind::Emitted { topic, value, live } => {
                view.kind = "emitted";
                view.text = value.to_string();
                view.topic = Some(topic.clone());
                view.value = Some(value.clone());
                view.live = *live;
            }
            RunEventKind::Status(status) => {
                view.kind = "status";
                view.text = lower(status);
                view.status = Some(lower(status));
            }
            RunEventKind::Retrying { attempt } => {
                view.kind = "retrying";
                view.text = format!("attempt {attempt} started (the one before failed)");
                view.attempt = Some(*attempt);
            }
            // A kind added after this dashboard was written (waiting, resumed, ..).
            #[allow(unreachable_patterns)]
            other => view.text = format!("{other:?}"),
        }
        view
    }
}

/// The parts of a run's page beyond its record.
#[derive(Debug, Serialize)]
pub(crate) struct Detail {
    /// Its children, newest first, at most [`CHILDREN_SHOWN`].
    pub(crate) children: Vec<Child>,
    /// It has more children than listed.
    pub(crate) more_children: bool,
    /// Its status changes and new attempts, oldest first, from its event log; a new attempt
    /// carries the error of the one before (the last attempt's is the run's `error`).
    pub(crate) history: Vec<EventView>,
    /// The first events of its log.
    pub(crate) events: Vec<EventView>,
    /// The offset the live stream goes on from.
    pub(crate) events_next: u64,
}

pub(crate) async fn detail(app: &App, id: RunId) -> Result<Detail, Failure> {
    let Some(store) = app.runner.store() else {
        return Err(crate::store::StoreError::NoStore.into());
    };
    let filter = RunFilter::new().parent(id).limit(CHILDREN_SHOWN + 1);
    let mut listed = store.list_runs(&filter).await?;
    let more_children = listed.len() > CHILDREN_SHOWN as usize;
    listed.truncate(CHILDREN_SHOWN as usize);
    let children = listed
        .into_iter()
        .map(|c| Child {
            id: c.id,
            name: c.name,
            status: lower(c.status),
            created_at: time(c.created_at),
            finished_at: c.finished_at.map(time),
        })
        .collect();
    let views = |rows: Vec<crate::store::events::EventRow>| {
        rows.into_iter()
            .filter_map(RunEvent::from_row)
            .map(|e| EventView::of(&e))
            .collect::<Vec<_>>()
    };
    let history = store
        .read_status_events(id, 0, HISTORY_SHOWN)
        .await?
        .into_iter()
        .filter_map(|row| {
            // A `retry` row's topic is the error of the attempt before.
            let error = (row.kind == "retry").then(|| row.topic.clone()).flatten();
            let mut view = EventView::of(&RunEvent::from_row(row)?);
            if let (Some(error), Some(attempt)) = (error, view.attempt) {
                view.text = format!("attempt {}: {error}", attempt.saturating_sub(1));
                view.error = Some(error);
            }
            Some(view)
        })
        .collect();
    let rows = store.read_events(id, 0, EVENTS_SHOWN).await?;
    let events_next = rows
        .last()
        .map_or(0, |r| u64::try_from(r.seq).unwrap_or(0) + 1);
    Ok(Detail {
        children,
        more_children,
        history,
        events: views(rows),
        events_next,
    })
}
