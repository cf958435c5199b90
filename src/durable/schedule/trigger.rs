//! [`DurableSchedule::trigger`]: one run now, outside the timetable.

use super::DurableSchedule;
use crate::store::{RunId, StoreError};

impl DurableSchedule {
    /// Submits one run of the schedule now, whatever its status and timetable (the next
    /// fires are unchanged): its id, or `None` if there is no such schedule. The run is an
    /// ordinary durable run tagged with the schedule, claimed by any process that
    /// registered its definition.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] or [`StoreError::Unavailable`] if the store cannot be written.
    pub async fn trigger(&self) -> Result<Option<RunId>, StoreError> {
        match self.durable.store.trigger_schedule(&self.name).await? {
            Some((id, queue)) => {
                self.durable.wake_queue(&queue);
                Ok(Some(id))
            }
            None => Ok(None),
        }
    }
}
