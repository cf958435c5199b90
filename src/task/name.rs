//! [`IntoTaskName`]: what [`Task::new`](super::Task::new) takes as a name, stored inline
//! when short, with no `String` made for a `&str`.

use std::borrow::Cow;

use compact_str::CompactString;

/// A task's name, as [`Task::new`](crate::Task::new), [`Task::named`](crate::Task::named)
/// and [`TaskDef::new`](crate::TaskDef::new) take it: whatever converts into a `String`
/// (`&str`, `String`, `&String`, `Cow<str>`, `Box<str>`, `char`). A name of up to 24 bytes
/// is kept inline in the task: a `&str` costs no allocation, where `impl Into<String>` made
/// a `String` for every task (and freed it once the name was copied).
///
/// ```
/// use std::borrow::Cow;
/// use taskrunner::{Task, TaskContext};
///
/// let handler = |_: TaskContext| async { Ok::<_, String>(()) };
/// let owned = String::from("fetch");
/// assert_eq!(Task::new("fetch", handler).name(), "fetch");
/// assert_eq!(Task::new(&owned, handler).name(), "fetch");
/// assert_eq!(Task::new(Cow::Borrowed("fetch"), handler).name(), "fetch");
/// assert_eq!(Task::new(owned, handler).name(), "fetch");
/// ```
pub trait IntoTaskName {
    /// The name, inline when short.
    #[doc(hidden)]
    fn into_task_name(self) -> TaskName;
}

/// A task's name as a task holds it (see [`IntoTaskName`]).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskName(pub(crate) CompactString);

impl IntoTaskName for &str {
    #[inline]
    fn into_task_name(self) -> TaskName {
        TaskName(CompactString::new(self))
    }
}

impl IntoTaskName for &mut str {
    fn into_task_name(self) -> TaskName {
        TaskName(CompactString::new(&*self))
    }
}

impl IntoTaskName for String {
    fn into_task_name(self) -> TaskName {
        TaskName(CompactString::from(self))
    }
}

impl IntoTaskName for &String {
    fn into_task_name(self) -> TaskName {
        TaskName(CompactString::new(self))
    }
}

impl IntoTaskName for Cow<'_, str> {
    fn into_task_name(self) -> TaskName {
        TaskName(CompactString::from(self))
    }
}

impl IntoTaskName for Box<str> {
    fn into_task_name(self) -> TaskName {
        TaskName(CompactString::from(self))
    }
}

impl IntoTaskName for char {
    fn into_task_name(self) -> TaskName {
        TaskName(CompactString::new(self.encode_utf8(&mut [0; 4])))
    }
}

impl IntoTaskName for TaskName {
    fn into_task_name(self) -> TaskName {
        self
    }
}
